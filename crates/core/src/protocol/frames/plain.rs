//! The hot path's reading of a request frame: its fields by name, in one pass over the text.
//!
//! serde reads an internally tagged enum (`ClientFrame`) by first copying the whole object into a
//! tree of its own, since the tag may come last, and then reading the variant from that tree:
//! ~2 300 instructions a frame, a tenth of a WebSocket ack's (docs/benchmarks.md, "Instructions
//! per ack"); a serde visitor that took the fields as they came still spent ~1 600. This reader
//! scans the text itself. It answers only for a plain frame — an object whose keys have no
//! escapes and appear once, `type` and `side` strings without escapes, `text` a string, `req` a
//! string, number, boolean or null — and gives exactly what `ClientFrame`'s own reading gives
//! (an escaped string or a number is handed to serde_json whole, so its reading is serde_json's);
//! for anything else it answers `None`, and the caller reads the frame the enum's way, whose
//! errors are the contract's messages.

use serde_json::Value;

use super::ClientFrame;
use crate::room::Side;

/// `text` as a plain request frame, or `None` (see the module's notes).
pub(super) fn parse(text: &str) -> Option<ClientFrame> {
    let fields = Scanner { text, at: 0 }.fields()?;
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

/// A position in a frame's text. Every method answers `None` for what it does not take.
struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scanner<'a> {
    /// The whole text as one object of plain fields, with nothing but whitespace around it.
    fn fields(mut self) -> Option<Fields<'a>> {
        let mut fields = Fields::default();
        self.expect(b'{')?;
        if self.peek_token() == Some(b'}') {
            self.at += 1;
        } else {
            loop {
                let key = self.plain_string()?;
                self.expect(b':')?;
                let first = match key {
                    "type" => fields.kind.replace(self.plain_string()?).is_none(),
                    "side" => fields.side.replace(self.plain_string()?).is_none(),
                    "text" => fields.text.replace(self.string()?).is_none(),
                    "req" => fields.req.replace(self.scalar()?).is_none(),
                    _ => false,
                };
                if !first {
                    return None;
                }
                match self.next_byte()? {
                    b',' => continue,
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        self.skip_whitespace();
        (self.at == self.text.len()).then_some(fields)
    }

    fn skip_whitespace(&mut self) {
        let bytes = self.text.as_bytes();
        while bytes
            .get(self.at)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.at += 1;
        }
    }

    /// The next byte after any whitespace, not consumed.
    fn peek_token(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.text.as_bytes().get(self.at).copied()
    }

    /// The next byte after any whitespace, consumed.
    fn next_byte(&mut self) -> Option<u8> {
        let byte = self.peek_token()?;
        self.at += 1;
        Some(byte)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next_byte()? == byte).then_some(())
    }

    /// A string without escapes, borrowed from the text.
    fn plain_string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.at;
        let len = self.text.as_bytes()[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        // The string ends at its closing quote; a backslash or a raw control character first is
        // not plain.
        if self.text.as_bytes()[start + len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        self.text.get(start..start + len)
    }

    /// Any string: a plain one as it is, one with escapes read by serde_json.
    fn string(&mut self) -> Option<String> {
        let start = self.at;
        if let Some(plain) = self.plain_string() {
            return Some(plain.to_owned());
        }
        self.at = start;
        self.expect(b'"')?;
        let bytes = self.text.as_bytes();
        let mut at = self.at;
        // The closing quote is the first one not escaped; serde_json checks the rest.
        loop {
            match *bytes.get(at)? {
                b'"' => break,
                b'\\' => at += 2,
                _ => at += 1,
            }
        }
        let quoted = self.text.get(self.at - 1..=at)?;
        self.at = at + 1;
        serde_json::from_str(quoted).ok()
    }

    /// A string, number, boolean or null (an object or array is not plain).
    fn scalar(&mut self) -> Option<Value> {
        self.skip_whitespace();
        let rest = &self.text.as_bytes()[self.at..];
        let word = |w: &str| rest.starts_with(w.as_bytes());
        let (value, len) = match *rest.first()? {
            b'"' => return self.string().map(Value::String),
            b'n' if word("null") => (Value::Null, 4),
            b't' if word("true") => (Value::Bool(true), 4),
            b'f' if word("false") => (Value::Bool(false), 5),
            b'-' | b'0'..=b'9' => {
                let len = rest
                    .iter()
                    .position(|b| !matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                    .unwrap_or(rest.len());
                let number = self.text.get(self.at..self.at + len)?;
                (serde_json::from_str(number).ok()?, len)
            }
            _ => return None,
        };
        self.at += len;
        Some(value)
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
            // Valid, but a `req` that is an object or array is not plain.
            r#"{"req":{"a":[1,2.5,null]},"side":"con","type":"vote"}"#,
            r#"{"req":[],"type":"retract"}"#,
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
            // Edges a hand-written reader might get wrong.
            r#"{"type":"say","text":"a","text":"b"}"#,
            r#"{"type":"retract","req":1,"req":2}"#,
            "\u{feff}{\"type\":\"retract\"}",
            r#"{"type":"retract","req":1x}"#,
            r#"{"type":"retract","req":1.0}"#,
            r#"{"type":"retract","req":1e5}"#,
            r#"{"type":"retract","req":-}"#,
            r#"{"type":"retract","req":18446744073709551616}"#,
            r#"{"type":"retract","req":"a\/b"}"#,
            "{\"type\":\"say\",\"text\":\"del \u{7f} ok\"}",
            r#"{"type":"retract"}"req":1"#,
            r#"{"type":"retract",}"#,
            r#"{,"type":"retract"}"#,
            r#"{"type":"retract""req":1}"#,
            r#"{"type" "retract"}"#,
        ];
        let mut answered = 0;
        for text in frames {
            let enum_reading = serde_json::from_str::<ClientFrame>(text).ok();
            if let Some(frame) = parse(text) {
                answered += 1;
                assert_eq!(Some(frame), enum_reading, "{text}");
            }
        }
        assert_eq!(answered, 12, "every plain valid frame takes the fast path");
    }

    /// Every combination of fields, values (escaped, numeric, invalid) and whitespace: wherever
    /// this reader answers, the enum's reading gives the same frame, and every valid plain
    /// combination is answered.
    #[test]
    fn agrees_with_the_enum_over_combinations() {
        let kinds = [
            None,
            Some(r#""vote""#),
            Some(r#""retract""#),
            Some(r#""say""#),
            Some(r#""v\u006fte""#),
            Some("1"),
        ];
        let sides = [
            None,
            Some(r#""pro""#),
            Some(r#""con""#),
            Some(r#""Pro""#),
            Some("null"),
            Some(r#""p\"""#),
        ];
        let texts = [
            None,
            Some(r#""hi""#),
            Some(r#""""#),
            Some(r#""line\nbreak \"quoted\" \\ \u00e9 \ud83c\udf89""#),
            Some(r#""bad \x escape""#),
            Some(r#""lone \ud800 surrogate""#),
            Some("\"raw \u{1} control\""),
            Some(r#""unterminated"#),
            Some("null"),
            Some("5"),
        ];
        let reqs = [
            None,
            Some(r#""r-1""#),
            Some(r#""r\"2""#),
            Some("null"),
            Some("true"),
            Some("false"),
            Some("7"),
            Some("-0"),
            Some("2.5e3"),
            Some("1E400"),
            Some("01"),
            Some("1."),
            Some("--1"),
            Some("nul"),
            Some("truth"),
            Some("{}"),
        ];
        let spaces = ["", " ", "\n\t\r "];
        let (mut answered, mut valid_plain, mut tried) = (0, 0, 0);
        for kind in kinds {
            for side in sides {
                for text in texts {
                    for req in reqs {
                        let space = spaces[tried % spaces.len()];
                        tried += 1;
                        let fields: Vec<String> =
                            [("type", kind), ("side", side), ("text", text), ("req", req)]
                                .into_iter()
                                .filter_map(|(key, value)| {
                                    Some(format!(
                                        "{space}\"{key}\"{space}:{space}{}{space}",
                                        value?
                                    ))
                                })
                                .collect();
                        let frame = format!("{space}{{{}}}{space}", fields.join(","));
                        let enum_reading = serde_json::from_str::<ClientFrame>(&frame).ok();
                        // Not plain: an object as `req`, an escape in `type`.
                        let plain =
                            !matches!(req, Some("{}")) && !kind.is_some_and(|k| k.contains('\\'));
                        if plain && enum_reading.is_some() {
                            valid_plain += 1;
                        }
                        match parse(&frame) {
                            Some(read) => {
                                answered += 1;
                                assert_eq!(Some(read), enum_reading, "{frame}");
                            }
                            None => assert!(
                                enum_reading.is_none() || !plain,
                                "a valid plain frame not answered: {frame}"
                            ),
                        }
                    }
                }
            }
        }
        assert_eq!(answered, valid_plain, "{answered} of {tried} answered");
        assert!(
            valid_plain > 50,
            "only {valid_plain} of {tried} frames are valid and plain"
        );
    }
}
