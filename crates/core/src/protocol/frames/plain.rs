//! The hot path's reading of a request frame: its fields by name, in one pass.
//!
//! serde reads an internally tagged enum (`ClientFrame`) by first copying the whole object into a
//! tree of its own, since the tag may come last, and then reading the variant from that tree:
//! ~2 300 instructions a frame, a tenth of a WebSocket ack's (docs/benchmarks.md, "Instructions
//! per ack"). This reader takes the fields as they come. It answers only for a plain frame —
//! keys without escapes, each at most once, `type` and `side` plain strings — and gives exactly
//! what `ClientFrame`'s own reading gives; for anything else it answers `None`, and the caller
//! reads the frame the enum's way, whose errors are the contract's messages.

use serde::{
    de::{Error as _, MapAccess, Visitor},
    Deserialize, Deserializer,
};
use serde_json::Value;

use super::ClientFrame;
use crate::room::Side;

/// `text` as a plain request frame, or `None` (see the module's notes).
pub(super) fn parse(text: &str) -> Option<ClientFrame> {
    let fields: Fields<'_> = serde_json::from_str(text).ok()?;
    let req = fields.req.unwrap_or(Value::Null);
    let frame = match (fields.kind?, fields.side, fields.text) {
        ("vote", Some(side), None) => ClientFrame::Vote {
            side: Side::parse(side)?,
            req,
        },
        ("retract", None, None) => ClientFrame::Retract { req },
        ("say", None, Some(text)) => ClientFrame::Say { text, req },
        _ => return None,
    };
    Some(frame)
}

/// A frame's fields, each read at most once.
#[derive(Default)]
struct Fields<'a> {
    kind: Option<&'a str>,
    side: Option<&'a str>,
    text: Option<String>,
    req: Option<Value>,
}

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(FieldsVisitor)
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a plain request frame")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
        let mut fields = Fields::default();
        while let Some(key) = map.next_key::<&'de str>()? {
            let first = match key {
                "type" => fields.kind.replace(map.next_value()?).is_none(),
                "side" => fields.side.replace(map.next_value()?).is_none(),
                "text" => fields.text.replace(map.next_value()?).is_none(),
                "req" => fields.req.replace(map.next_value()?).is_none(),
                _ => false,
            };
            if !first {
                return Err(A::Error::custom("not a plain request frame"));
            }
        }
        Ok(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames valid and not, plain and not: wherever this reader answers, the enum's reading
    /// gives the same frame.
    #[test]
    fn answers_only_as_the_enum_does() {
        let frames = [
            r#"{"type":"vote","side":"pro","req":"1"}"#,
            r#"{"req":{"a":[1,2.5,null]},"side":"con","type":"vote"}"#,
            r#"{"type":"vote","side":"con"}"#,
            r#"{"type":"vote","side":"pro","req":null}"#,
            r#"{"type":"retract","req":7}"#,
            r#"{"type":"retract"}"#,
            r#"{"type":"say","text":"hi \u00e9 \"x\"","req":"k-1"}"#,
            r#"  {"text":"","type":"say"}  "#,
            // Not plain, or not valid: the reader must not answer, or must agree.
            r#"{"type":"vote","side":"maybe"}"#,
            r#"{"type":"vote","side":null}"#,
            r#"{"type":"vote","side":{"pro":null}}"#,
            r#"{"type":{"vote":null},"side":"pro"}"#,
            r#"{"type":0,"side":"pro"}"#,
            r#"{"type":"vote"}"#,
            r#"{"type":"vote","side":"pro","text":"x"}"#,
            r#"{"type":"vote","side":"pro","side":"con"}"#,
            r#"{"type":"vote","side":"pro","extra":1}"#,
            r#"{"type":"retract","side":"pro"}"#,
            r#"{"type":"retract","text":null}"#,
            r#"{"type":"say","text":null}"#,
            r#"{"type":"say","text":5}"#,
            r#"{"type":"say","text":"hi","side":null}"#,
            r#"{"type":"say"}"#,
            r#"{"type":"dance"}"#,
            r#"{"typ\u0065":"vote","side":"pro"}"#,
            r#"{"type":"vot\u0065","side":"pro"}"#,
            r#"{"type":"vote","side":"pro"} x"#,
            r#"{"side":"pro"}"#,
            r#"{}"#,
            r#"[1,2]"#,
            r#""vote""#,
            r#"{nope"#,
            "",
        ];
        let mut answered = 0;
        for text in frames {
            let enum_reading = serde_json::from_str::<ClientFrame>(text).ok();
            if let Some(frame) = parse(text) {
                answered += 1;
                assert_eq!(Some(frame), enum_reading, "{text}");
            }
        }
        assert_eq!(answered, 8, "every plain valid frame takes the fast path");
    }
}
