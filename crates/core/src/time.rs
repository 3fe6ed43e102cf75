//! Timestamps as the API shows them: RFC 3339 UTC with millisecond precision.
//!
//! Every timestamp the engine makes is truncated to whole milliseconds at birth, so the value a
//! client saw in an ack is the value the journal replays and the SQL store returns.

use chrono::{DateTime, Datelike, SecondsFormat, SubsecRound, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// A point in time, UTC, millisecond precision.
pub type Timestamp = DateTime<Utc>;

/// Now, truncated to milliseconds.
pub fn now() -> Timestamp {
    Utc::now().trunc_subsecs(3)
}

/// Formats as `2026-11-26T06:24:03.123Z`.
pub fn format(t: &Timestamp) -> String {
    formatted(t).as_str().to_owned()
}

/// `t` as `format` writes it, without allocating in the common case: every event, message and
/// snapshot carries timestamps, and chrono's formatter (a `String` through its format machinery)
/// was ~4 % of the engine's instructions per acknowledged mutation (docs/benchmarks.md).
pub fn formatted(t: &Timestamp) -> Formatted {
    let day = t.date_naive();
    let time = t.time();
    match (u32::try_from(day.year()), time.nanosecond()) {
        // chrono gives a leap second nanoseconds from 1e9 up, and writes it as second 60.
        (Ok(year @ 0..=9999), nanos @ 0..=999_999_999) => {
            let mut text = *b"0000-00-00T00:00:00.000Z";
            decimal(&mut text[0..4], year);
            decimal(&mut text[5..7], day.month());
            decimal(&mut text[8..10], day.day());
            decimal(&mut text[11..13], time.hour());
            decimal(&mut text[14..16], time.minute());
            decimal(&mut text[17..19], time.second());
            decimal(&mut text[20..23], nanos / 1_000_000);
            Formatted(Text::Common(text))
        }
        _ => Formatted(Text::Other(t.to_rfc3339_opts(SecondsFormat::Millis, true))),
    }
}

/// Appends `t` as `format` writes it. The text up to the second is kept per thread and reused
/// while the timestamps written are in the same second (a batch's events and messages mostly
/// are), so most timestamps cost three digits: the calendar arithmetic and digit loops of
/// `formatted` were a quarter of what the hand-written JSON of an event costs (`crate::json`).
pub fn write(out: &mut String, t: &Timestamp) {
    let time = t.time();
    let millis = time.nanosecond() / 1_000_000;
    let second = (t.date_naive(), time.num_seconds_from_midnight());
    let mut uncommon = None;
    // A leap second's milliseconds (1000 and up) are not three digits; a thread that is ending
    // has no cache.
    let prefixed = millis <= 999
        && SECOND
            .try_with(|cached| {
                let mut cached = cached.borrow_mut();
                if cached.second != Some(second) {
                    let text = formatted(t);
                    // Only the common form has its milliseconds at a fixed place.
                    if !matches!(text.0, Text::Common(_)) {
                        uncommon = Some(text);
                        return false;
                    }
                    cached.prefix.clear();
                    cached.prefix.push_str(&text.as_str()[..20]);
                    cached.second = Some(second);
                }
                out.push_str(&cached.prefix);
                true
            })
            .unwrap_or(false);
    if !prefixed {
        out.push_str(uncommon.unwrap_or_else(|| formatted(t)).as_str());
        return;
    }
    for digit in [millis / 100, millis / 10 % 10, millis % 10] {
        out.push(char::from(b'0' + digit as u8));
    }
    out.push('Z');
}

/// The second `write` wrote last on this thread, and its text up to the milliseconds
/// (`YYYY-MM-DDTHH:MM:SS.`).
struct CachedSecond {
    second: Option<(chrono::NaiveDate, u32)>,
    prefix: String,
}

thread_local! {
    static SECOND: std::cell::RefCell<CachedSecond> = const {
        std::cell::RefCell::new(CachedSecond { second: None, prefix: String::new() })
    };
}

/// A formatted timestamp (`formatted`).
pub struct Formatted(Text);

enum Text {
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`, ASCII: a year from 0 to 9999, no leap second.
    Common([u8; 24]),
    /// What chrono writes for the rest (`+10000-…`, `…:60.000Z`).
    Other(String),
}

impl Formatted {
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Text::Common(text) => std::str::from_utf8(text).expect("digits and ASCII separators"),
            Text::Other(text) => text,
        }
    }
}

/// Writes `n` in decimal into `digits`, zero-padded to its width (the caller's `n` fits it).
fn decimal(digits: &mut [u8], mut n: u32) {
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Serde adapter for `Timestamp` fields (`#[serde(with = "crate::time::rfc3339")]`).
pub mod rfc3339 {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(formatted(t).as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// Serde adapter for `Option<Timestamp>` fields.
pub mod rfc3339_opt {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(formatted(t).as_str()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        let text = <Option<std::borrow::Cow<'de, str>>>::deserialize(d)?;
        text.map(|text| {
            DateTime::parse_from_rfc3339(&text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_millis() {
        let t = DateTime::parse_from_rfc3339("2026-11-26T06:24:03.123456Z")
            .unwrap()
            .with_timezone(&Utc)
            .trunc_subsecs(3);
        assert_eq!(format(&t), "2026-11-26T06:24:03.123Z");
    }

    #[test]
    fn formats_as_chrono_does_across_the_calendar() {
        let chrono = |t: &Timestamp| t.to_rfc3339_opts(SecondsFormat::Millis, true);
        // From year 0 to past 9999 in uneven steps (every month, day and hour get hit), with
        // sub-millisecond parts that must be cut, not rounded.
        let mut secs = DateTime::parse_from_rfc3339("0000-01-01T00:00:00Z")
            .unwrap()
            .timestamp();
        let day = |year, month, day| {
            chrono::NaiveDate::from_ymd_opt(year, month, day)
                .unwrap()
                .and_hms_milli_opt(10, 20, 30, 456)
                .unwrap()
                .and_utc()
        };
        let end = day(10_001, 1, 1).timestamp();
        let mut nanos = 0u32;
        let mut checked = 0;
        let mut written = String::new();
        while secs < end {
            let t = DateTime::from_timestamp(secs, nanos).unwrap();
            assert_eq!(format(&t), chrono(&t), "{secs} s {nanos} ns");
            written.clear();
            write(&mut written, &t);
            assert_eq!(written, chrono(&t), "{secs} s {nanos} ns");
            secs += 3_600 * 24 * 17 + 3_671;
            nanos = (nanos + 123_456_789) % 1_000_000_000;
            checked += 1;
        }
        assert!(checked > 200_000, "{checked}");
        for text in [
            "1999-12-31T23:59:59.999999Z",
            "2000-02-29T12:00:00.5Z",
            "9999-12-31T23:59:59.999Z",
        ] {
            let t = DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc);
            assert_eq!(format(&t), chrono(&t), "{text}");
        }
        for (t, text) in [
            (day(10_000, 1, 1), "+10000-01-01T10:20:30.456Z"),
            (day(-1, 6, 15), "-0001-06-15T10:20:30.456Z"),
        ] {
            assert_eq!(format(&t), chrono(&t));
            assert_eq!(format(&t), text);
        }
        let leap = DateTime::from_timestamp(1_483_228_799, 1_250_000_000).unwrap();
        assert_eq!(format(&leap), chrono(&leap));
        assert!(format(&leap).ends_with(":60.250Z"), "{}", format(&leap));
    }

    #[test]
    fn write_writes_what_format_does_within_a_second_and_across() {
        let base = DateTime::parse_from_rfc3339("2026-11-27T23:59:58Z")
            .unwrap()
            .timestamp();
        // Within one second, on to the next (and the next day), back again; then the forms
        // `write` does not keep: a leap second, a year past 9999, one before year 0.
        let mut times: Vec<Timestamp> = [0, 0, 0, 1, 1, 2, 0, 2, 3]
            .into_iter()
            .zip([0, 1, 999, 0, 500, 7, 998, 10, 999])
            .map(|(s, ms)| DateTime::from_timestamp(base + s, ms * 1_000_000).unwrap())
            .collect();
        times.push(DateTime::from_timestamp(1_483_228_799, 1_250_000_000).unwrap());
        times.push(DateTime::from_timestamp(1_483_228_799, 250_000_000).unwrap());
        times.push(DateTime::from_timestamp(253_402_300_800, 5_000_000).unwrap());
        times.push(DateTime::from_timestamp(-62_167_219_201, 0).unwrap());
        times.push(times[0]);
        let mut out = String::from("before:");
        for t in &times {
            let start = out.len();
            write(&mut out, t);
            assert_eq!(&out[start..], format(t), "{t:?}");
        }
        assert!(out.starts_with("before:2026-11-27T23:59:58.000Z"), "{out}");
    }

    #[test]
    fn now_has_no_sub_millisecond_part() {
        assert_eq!(now().timestamp_subsec_nanos() % 1_000_000, 0);
    }
}
