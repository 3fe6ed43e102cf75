//! Reading only what a client needs of a server frame — its type, its `seq`, an answer's `req` —
//! without parsing the rest: the sockets of a run get tens of thousands of `state` and `message`
//! frames a second, read by one client thread on the cores the engine runs on.
//!
//! Sound for the engine's frames: they are flat JSON objects, and a key such as `"seq":` cannot
//! occur inside a string value, where every `"` is escaped.

/// A server frame's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    State,
    Message,
    Ack,
    Error,
    Closed,
    Other,
}

/// What was read of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peeked<'a> {
    pub kind: Type,
    /// `seq` of a `state`, `message` or `ack` frame.
    pub seq: Option<u64>,
    /// `req` of an `ack` or `error` frame, when it is a string without escapes (the load
    /// generator's own are digits, or `v`/`m` and digits); `None` for `null`, a number, or a
    /// string with an escape, which this does not decode.
    pub req: Option<&'a str>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The string value right after `key` (`"key":"`), up to its closing quote.
fn string_after<'a>(text: &'a [u8], key: &[u8]) -> Option<&'a str> {
    let start = find(text, key)? + key.len();
    let len = text[start..].iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&text[start..start + len]).ok()
}

/// The unsigned integer right after `key` (`"key":`).
fn number_after(text: &[u8], key: &[u8]) -> Option<u64> {
    let start = find(text, key)? + key.len();
    let digits = text[start..].iter().take_while(|b| b.is_ascii_digit());
    let mut value: u64 = 0;
    let mut any = false;
    for &b in digits {
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        any = true;
    }
    any.then_some(value)
}

pub fn peek(text: &[u8]) -> Peeked<'_> {
    let kind = match string_after(text, b"\"type\":\"") {
        Some("state") => Type::State,
        Some("message") => Type::Message,
        Some("ack") => Type::Ack,
        Some("error") => Type::Error,
        Some("closed") => Type::Closed,
        _ => Type::Other,
    };
    let seq = match kind {
        Type::State | Type::Message | Type::Ack => number_after(text, b"\"seq\":"),
        _ => None,
    };
    let req = match kind {
        Type::Ack | Type::Error => {
            string_after(text, b"\"req\":\"").filter(|req| !req.contains('\\'))
        }
        _ => None,
    };
    Peeked { kind, seq, req }
}

#[cfg(test)]
mod tests {
    use roomstate_core::{
        protocol::{frames, ErrorCode},
        room::{ChatMessage, Counters, RoomId, RoomStatus, RoomView, UserName},
        time,
    };
    use serde_json::json;

    use super::*;

    /// Reads the frames as the engine encodes them (its own encoder), not as written by hand.
    #[test]
    fn reads_type_seq_and_req_of_the_engines_frames() {
        let view = RoomView {
            id: RoomId::parse("r_1").unwrap(),
            title: r#"a "seq": 5 title"#.into(),
            status: RoomStatus::Open,
            counters: Counters {
                participants: 2000,
                participants_peak: 2000,
                pro: 3,
                con: 4,
                messages: 9,
                seq: 123_456,
            },
            created_at: time::now(),
            closed_at: None,
        };
        let state = frames::state(&view);
        assert_eq!(
            peek(state.as_bytes()),
            Peeked {
                kind: Type::State,
                seq: Some(123_456),
                req: None
            }
        );
        let message = frames::message(&ChatMessage {
            seq: 77,
            user: UserName::parse("u1").unwrap(),
            text: r#"{"type":"ack","seq":1}"#.into(),
            sent_at: time::now(),
        });
        let peeked = peek(message.as_bytes());
        assert_eq!((peeked.kind, peeked.seq), (Type::Message, Some(77)));
        let ack = frames::ack(&json!("v12"), 88);
        assert_eq!(
            peek(ack.as_bytes()),
            Peeked {
                kind: Type::Ack,
                seq: Some(88),
                req: Some("v12")
            }
        );
        let error = frames::error(&json!("m3"), ErrorCode::Unavailable, "later");
        let peeked = peek(error.as_bytes());
        assert_eq!((peeked.kind, peeked.req), (Type::Error, Some("m3")));
        // An error of no request, and a `req` this does not decode, match no request.
        let unparsed = frames::error(&json!(null), ErrorCode::BadRequest, "not JSON");
        assert_eq!(peek(unparsed.as_bytes()).kind, Type::Error);
        assert_eq!(peek(unparsed.as_bytes()).req, None);
        for req in [r#"a"b"#, r"a\b"] {
            let escaped = frames::ack(&json!(req), 5);
            assert_eq!(peek(escaped.as_bytes()).req, None, "{escaped}");
        }
        assert_eq!(peek(b"{}").kind, Type::Other);
        assert_eq!(peek(b"not json").kind, Type::Other);
    }
}
