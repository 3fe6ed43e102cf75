//! The WebSocket frames of docs/api.md: client request frames in, server frames out, as JSON text.
//!
//! Pure (de)serialization: what a frame looks like, never when or to whom it is sent.

mod plain;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ErrorCode;
use crate::{
    json,
    room::{ChatMessage, RoomView, Side},
};

/// A request from a client.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Vote for a side (or move the vote); answered with `ack` or `error`.
    Vote {
        side: Side,
        /// Any JSON value the client chooses, echoed in the answer; on a `say`, a string is
        /// also the message's idempotency key.
        #[serde(default)]
        req: Value,
    },
    /// Take the vote back.
    Retract {
        /// Echoed in the answer.
        #[serde(default)]
        req: Value,
    },
    /// Post a chat message.
    Say {
        /// 1 to 2000 characters, not blank.
        #[cfg_attr(feature = "json-schema", schemars(length(min = 1, max = crate::room::state::MAX_TEXT_CHARS)))]
        text: String,
        /// Echoed in the answer; a string is also the message's idempotency key (itself if it
        /// is 1 to 64 characters of `[A-Za-z0-9_.:-]`, else its digest).
        #[serde(default)]
        req: Value,
    },
}

impl ClientFrame {
    /// The client's request id, echoed in the answer.
    pub fn req(&self) -> &Value {
        match self {
            ClientFrame::Vote { req, .. }
            | ClientFrame::Retract { req }
            | ClientFrame::Say { req, .. } => req,
        }
    }
}

/// A frame that could not be understood, with the `req` to echo if one could be read.
#[derive(Debug, Clone, PartialEq)]
pub struct BadFrame {
    pub req: Value,
    pub message: String,
}

/// Parses a text frame. The `req` of a frame that is JSON but not a valid request is still
/// echoed, so a client can match the error to its request.
pub fn parse(text: &str) -> Result<ClientFrame, BadFrame> {
    // The hot path reads a plain frame in one pass (`plain`); any other is read as the enum, and
    // only a bad frame is read again, loosely, for its `req`.
    if let Some(frame) = plain::parse(text) {
        return Ok(frame);
    }
    serde_json::from_str(text).map_err(|error| match serde_json::from_str::<Value>(text) {
        Ok(value) => BadFrame {
            req: value.get("req").cloned().unwrap_or(Value::Null),
            message: format!("bad request frame: {error}"),
        },
        Err(e) => BadFrame {
            req: Value::Null,
            message: format!("frame is not JSON: {e}"),
        },
    })
}

// The definition of each server frame's JSON. Only `error` frames are encoded through it; the
// others are written by hand (below), and only the tests build those variants, to hold the
// hand-written frames to them (the JSON Schemas read the type). A plain comment: a doc comment
// is the schema's description.
/// A frame from the server.
#[derive(Serialize)]
#[cfg_attr(not(test), allow(dead_code))]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
enum ServerFrame<'a> {
    /// The room view: first after the upgrade, then whenever the counters change.
    State(&'a RoomView),
    /// A chat message, in seq order, none skipped.
    Message(&'a ChatMessage),
    /// The final room view; the server then closes the socket with code 1000.
    Closed(&'a RoomView),
    /// The request `req` is durable with seq `seq`.
    Ack { req: &'a Value, seq: u64 },
    /// The request `req` was refused (`req` is null when the frame could not be parsed).
    Error {
        req: &'a Value,
        error: ErrorCode,
        message: &'a str,
    },
}

/// The JSON Schemas (draft 2020-12) of the WebSocket frames, by file name: `client-frames`
/// (what a client may send) and `server-frames` (what the server sends). docs/schemas/ holds
/// them as committed files, checked against these by the engine's tests.
#[cfg(feature = "json-schema")]
pub fn json_schemas() -> [(&'static str, Value); 2] {
    [
        (
            "client-frames",
            schemars::schema_for!(ClientFrame).to_value(),
        ),
        (
            "server-frames",
            schemars::schema_for!(ServerFrame<'static>).to_value(),
        ),
    ]
}

/// Sent instead of a frame that could not be encoded.
pub const ENCODING_FAILED: &str =
    r#"{"type":"error","req":null,"error":"internal","message":"frame encoding failed"}"#;

fn encode(frame: &ServerFrame<'_>) -> String {
    // Plain structs of strings and numbers do not fail to serialize; if one ever did, the
    // client still gets a well-formed frame saying so.
    serde_json::to_string(frame).unwrap_or_else(|_| ENCODING_FAILED.to_owned())
}

// The frames every acknowledgement and broadcast sends are written by hand (`crate::json`), byte
// for byte what `encode` writes for the same `ServerFrame` (the tests hold them equal).

pub fn state(view: &RoomView) -> String {
    view_frame("{\"type\":\"state\",", view)
}

pub fn message(message: &ChatMessage) -> String {
    let mut out = String::with_capacity(112 + message.text.len());
    out.push_str("{\"type\":\"message\",");
    message.write_json_fields(&mut out);
    out.push('}');
    out
}

pub fn closed(view: &RoomView) -> String {
    view_frame("{\"type\":\"closed\",", view)
}

fn view_frame(head: &str, view: &RoomView) -> String {
    let mut out = String::with_capacity(256 + view.title.len());
    out.push_str(head);
    view.write_json_fields(&mut out);
    out.push('}');
    out
}

pub fn ack(req: &Value, seq: u64) -> String {
    ack_to(&Req::of(req), seq)
}

pub fn error(req: &Value, error: ErrorCode, message: &str) -> String {
    encode(&ServerFrame::Error {
        req,
        error,
        message,
    })
}

/// A request's `req`, already written as JSON: what a socket keeps of a request until it is
/// answered (the parsed value of a large `req` takes many times its text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Req(Box<str>);

impl Req {
    pub fn of(req: &Value) -> Self {
        let mut out = String::new();
        json::value(&mut out, req);
        Self(out.into_boxed_str())
    }

    /// Its length as JSON, in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `ack`, for a `req` kept as JSON.
pub fn ack_to(req: &Req, seq: u64) -> String {
    let mut out = String::with_capacity(40 + req.len());
    out.push_str("{\"type\":\"ack\",\"req\":");
    out.push_str(&req.0);
    out.push_str(",\"seq\":");
    json::uint(&mut out, seq);
    out.push('}');
    out
}

/// `error`, for a `req` kept as JSON (written by hand, as `encode` writes it).
pub fn error_to(req: &Req, error: ErrorCode, message: &str) -> String {
    let mut out = String::with_capacity(64 + req.len() + message.len());
    out.push_str("{\"type\":\"error\",\"req\":");
    out.push_str(&req.0);
    out.push_str(",\"error\":");
    json::string(&mut out, error.as_str());
    out.push_str(",\"message\":");
    json::string(&mut out, message);
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_every_request_kind() {
        assert_eq!(
            parse(r#"{"type":"vote","side":"pro","req":"1"}"#),
            Ok(ClientFrame::Vote {
                side: Side::Pro,
                req: json!("1")
            })
        );
        assert_eq!(
            parse(r#"{"type":"retract","req":"2"}"#),
            Ok(ClientFrame::Retract { req: json!("2") })
        );
        assert_eq!(
            parse(r#"{"type":"say","text":"hi","req":"3"}"#),
            Ok(ClientFrame::Say {
                text: "hi".into(),
                req: json!("3")
            })
        );
    }

    #[test]
    fn bad_frames_echo_req_when_they_can() {
        let garbage = parse("{nope").unwrap_err();
        assert_eq!(garbage.req, Value::Null);
        let wrong_side = parse(r#"{"type":"vote","side":"maybe","req":"r9"}"#).unwrap_err();
        assert_eq!(wrong_side.req, json!("r9"));
        assert!(parse(r#"{"type":"dance","req":"x"}"#).is_err());
        assert!(parse(r#"{"type":"say","text":5,"req":"x"}"#).is_err());
        assert!(parse(r#"[1,2]"#).is_err());
    }

    #[test]
    fn server_frames_have_the_contract_shape() {
        let ack: Value = serde_json::from_str(&ack(&json!("r1"), 7)).unwrap();
        assert_eq!(ack, json!({"type": "ack", "req": "r1", "seq": 7}));
        let err: Value =
            serde_json::from_str(&error(&Value::Null, ErrorCode::BadRequest, "m")).unwrap();
        assert_eq!(
            err,
            json!({"type": "error", "req": null, "error": "bad_request", "message": "m"})
        );
    }

    #[test]
    fn hand_written_frames_match_the_serde_encoding() {
        use crate::room::{Counters, RoomId, RoomStatus, UserName};
        use crate::time;

        for req in [
            json!("r1"),
            json!("say \"hi\"\n"),
            json!(null),
            json!(7),
            json!({"a": [1]}),
        ] {
            for seq in [0, 1, u64::MAX] {
                assert_eq!(ack(&req, seq), encode(&ServerFrame::Ack { req: &req, seq }));
            }
            for (code, message) in [
                (ErrorCode::RateLimited, "slow \"down\"\n"),
                (ErrorCode::Unavailable, ""),
            ] {
                assert_eq!(
                    error_to(&Req::of(&req), code, message),
                    error(&req, code, message)
                );
            }
        }
        for (closed_at, status) in [
            (None, RoomStatus::Open),
            (Some(time::now()), RoomStatus::Closed),
        ] {
            let view = RoomView {
                id: RoomId::generate(),
                title: "Tabs \t or \"spaces\"? 🎉".into(),
                status,
                counters: Counters {
                    participants: 3,
                    participants_peak: 9,
                    pro: 2,
                    con: 1,
                    messages: 40,
                    seq: 77,
                },
                created_at: time::now(),
                closed_at,
            };
            assert_eq!(state(&view), encode(&ServerFrame::State(&view)));
            assert_eq!(closed(&view), encode(&ServerFrame::Closed(&view)));
        }
        let said = ChatMessage {
            seq: 12,
            user: UserName::parse("alice").unwrap(),
            text: "line one\nline \\two\u{1}".into(),
            sent_at: time::now(),
        };
        assert_eq!(message(&said), encode(&ServerFrame::Message(&said)));
    }
}
