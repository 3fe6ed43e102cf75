//! JSON text written by hand: the pieces the hot encoders (`room::json`, the server frames) are
//! made of, each writing the bytes serde_json writes for the same value.
//!
//! Why by hand: through serde, every field name of every event, message and frame went through
//! serde_json's escaper a byte at a time, behind its writer and formatter layers — 17 % of the
//! engine's instructions per WebSocket acknowledgement, the serialisation around it more
//! (docs/benchmarks.md, "Instructions per ack"). Written by hand, a field name is part of a constant piece of text, and a string
//! value is checked eight bytes at a time and copied whole when nothing in it needs escaping.
//! The serde derives stay the definition of each shape: every hand-written encoder is tested
//! byte for byte against serde_json on the same value.

use serde_json::Value;

use crate::time::{self, Timestamp};

/// Appends `text` as a JSON string: quoted, with `"`, `\` and control characters escaped as
/// serde_json escapes them (`\b \t \n \f \r` short, the rest `\u00xx`), every other character
/// as it is.
pub fn string(out: &mut String, text: &str) {
    out.reserve(text.len() + 2);
    out.push('"');
    if needs_no_escape(text.as_bytes()) {
        out.push_str(text);
    } else {
        escape(out, text);
    }
    out.push('"');
}

/// Whether no byte of `bytes` needs escaping: checked eight at a time, the last few padded with
/// spaces to a whole word.
fn needs_no_escape(bytes: &[u8]) -> bool {
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        if needs_escape(u64::from_le_bytes(
            *word.first_chunk::<8>().unwrap_or(&[0; 8]),
        )) {
            return false;
        }
    }
    let rest = words.remainder();
    let mut last = [b' '; 8];
    last[..rest.len()].copy_from_slice(rest);
    !needs_escape(u64::from_le_bytes(last))
}

/// Appends `text` with every byte that needs it escaped (between the quotes `string` writes).
fn escape(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (at, &byte) in text.as_bytes().iter().enumerate() {
        let Some(escape) = escape_of(byte) else {
            continue;
        };
        // Escaped bytes are ASCII, so `start..at` ends on a character boundary.
        out.push_str(&text[start..at]);
        match escape {
            Escape::Short(letter) => {
                out.push('\\');
                out.push(char::from(letter));
            }
            Escape::Unicode => {
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0xf)]));
            }
        }
        start = at + 1;
    }
    out.push_str(&text[start..]);
}

/// Whether any of the eight bytes of `word` is a control character, `"` or `\`.
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte below 0x20 borrows in `word - 0x20…`; a byte equal to `"` or `\` becomes zero after
    // the XOR and borrows in `- ONES`. `!word & HIGH` drops bytes of 0x80 and up, which only
    // seem to (a byte that truly matches stays below 0x80 in `word`).
    let control = word.wrapping_sub(ONES * 0x20);
    let quote = (word ^ (ONES * u64::from(b'"'))).wrapping_sub(ONES);
    let backslash = (word ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES);
    (control | quote | backslash) & !word & HIGH != 0
}

/// How serde_json escapes a byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// A backslash and this letter.
    Short(u8),
    /// `\u00xx`.
    Unicode,
}

/// How serde_json escapes `byte`, if it does.
fn escape_of(byte: u8) -> Option<Escape> {
    Some(match byte {
        b'"' => Escape::Short(b'"'),
        b'\\' => Escape::Short(b'\\'),
        0x08 => Escape::Short(b'b'),
        b'\t' => Escape::Short(b't'),
        b'\n' => Escape::Short(b'n'),
        0x0c => Escape::Short(b'f'),
        b'\r' => Escape::Short(b'r'),
        0x00..=0x1f => Escape::Unicode,
        _ => return None,
    })
}

/// Appends `n` in decimal.
pub fn uint(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// Appends `t` as a JSON string, as `time::rfc3339` serializes it.
pub fn timestamp(out: &mut String, t: &Timestamp) {
    out.push('"');
    time::write(out, t);
    out.push('"');
}

/// Appends any JSON value: a string or null here, anything else through serde_json (a client's
/// `req` is nearly always a string).
pub fn value(out: &mut String, value: &Value) {
    match value {
        Value::String(text) => string(out, text),
        Value::Null => out.push_str("null"),
        other => match serde_json::to_string(other) {
            Ok(text) => out.push_str(&text),
            // A `Value` always serializes (its map keys are strings); should it ever not,
            // `null` keeps the text JSON.
            Err(_) => out.push_str("null"),
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn quoted(text: &str) -> String {
        let mut out = String::new();
        string(&mut out, text);
        out
    }

    #[test]
    fn every_ascii_character_is_escaped_as_serde_json_escapes_it() {
        for byte in 0u8..0x80 {
            let one = char::from(byte).to_string();
            assert_eq!(
                quoted(&one),
                serde_json::to_string(&one).unwrap(),
                "{byte:#x}"
            );
            // In every position of a word and across word boundaries.
            for at in 0..17 {
                let text = format!("{}{one}{}", "a".repeat(at), "é".repeat(at % 5));
                assert_eq!(
                    quoted(&text),
                    serde_json::to_string(&text).unwrap(),
                    "{text:?}"
                );
            }
        }
    }

    #[test]
    fn strings_of_every_kind_match_serde_json() {
        let texts = [
            "",
            "plain",
            "exactly8",
            "sixteen bytes ok",
            "say \"hi\" \\ back",
            "\u{7f}\u{80}\u{ff}\u{2028}\u{2029}",
            "émoji 🎉 and 中文 with \n newline \t tab \r\u{0} nul \u{1f} unit sep",
            "\u{8}\u{c}\u{b}\u{1b}",
            "\"\"\"\"\"\"\"\"\\\\\\\\\\\\\\\\",
            "ends with a quote\"",
            "\\starts with a backslash",
        ];
        for text in texts {
            assert_eq!(
                quoted(text),
                serde_json::to_string(text).unwrap(),
                "{text:?}"
            );
        }
        // Every byte value from 0xa0 up as part of a character, next to ASCII ones.
        let wide: String = (0xa0u32..0x800).filter_map(char::from_u32).collect();
        let mixed = format!("{wide}\"{wide}\n{wide}");
        assert_eq!(quoted(&mixed), serde_json::to_string(&mixed).unwrap());
    }

    #[test]
    fn no_byte_at_or_above_0x80_counts_as_needing_escape() {
        for byte in 0x80u8..=0xff {
            let word = u64::from_le_bytes([byte, b'a', byte, byte, b'z', byte, byte, byte]);
            assert!(!needs_escape(word), "{byte:#x}");
        }
        for byte in 0u8..0x80 {
            let word = u64::from_le_bytes([b'a', b'a', b'a', byte, b'a', b'a', b'a', b'a']);
            assert_eq!(needs_escape(word), escape_of(byte).is_some(), "{byte:#x}");
        }
    }

    #[test]
    fn numbers_times_and_values_match_serde_json() {
        for n in [0, 1, 9, 10, 99, 12_345, u64::from(u32::MAX), u64::MAX] {
            let mut out = String::new();
            uint(&mut out, n);
            assert_eq!(out, serde_json::to_string(&n).unwrap());
        }
        let t = time::now();
        let mut out = String::new();
        timestamp(&mut out, &t);
        assert_eq!(out, serde_json::to_string(&time::format(&t)).unwrap());
        for v in [
            json!(null),
            json!("r\"1"),
            json!(7),
            json!(-7),
            json!(1.5),
            json!(true),
            json!([1, "a"]),
            json!({"a": {"b": null}}),
        ] {
            let mut out = String::new();
            value(&mut out, &v);
            assert_eq!(out, serde_json::to_string(&v).unwrap());
        }
    }
}
