//! One entry of a room's log, as the journal's function writes it (`roomstate.lua`), read back.
//!
//! An entry holds what one batch appended to one room, and its id is `<last seq>-0`. Its fields:
//! - `e` <event JSON>: one event (every entry a journal wrote before runs existed, and a batch's
//!   lone event of a room), or
//! - `f` <first seq> `b` <the events' JSON, one per line>: the run of events `first..=last`
//!   (one entry per room per batch: Redis stores, replicates and logs one entry where it did one
//!   per event; docs/benchmarks.md "One log entry per room per batch");
//! - and `o` <epoch> when it was written under an owner's epoch above 0 (every event of the
//!   entry was).
//!
//! An event's JSON never holds a raw line break: JSON escapes control characters inside strings,
//! and the engine writes no whitespace between tokens. Readers check every event's seq and room
//! against its place; this module only cuts an entry into events.

/// An entry's field of one event.
pub(super) const EVENT: &str = "e";
/// An entry's field of the first seq of a run.
pub(super) const FIRST: &str = "f";
/// An entry's field of a run's events, one per line.
pub(super) const EVENTS: &str = "b";
/// An entry's field of the epoch its events were written under.
pub(super) const EPOCH: &str = "o";

/// The events of one entry, in seq order: `first..=last`, one JSON text per line of `body`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Run<'a> {
    pub(super) first: u64,
    pub(super) last: u64,
    body: &'a [u8],
}

impl<'a> Run<'a> {
    /// The events of the entry `id`, whose fields `field` looks up by name (`Ok(None)`: the
    /// entry has no such field; `Err`: it has one that is not a string).
    pub(super) fn read(
        id: &str,
        field: impl Fn(&str) -> Result<Option<&'a [u8]>, String>,
    ) -> Result<Run<'a>, String> {
        let last = seq_of(id).ok_or_else(|| format!("bad entry id {id}"))?;
        if let Some(body) = field(EVENTS)? {
            let first = field(FIRST)?
                .and_then(|f| std::str::from_utf8(f).ok()?.parse::<u64>().ok())
                .ok_or_else(|| format!("entry {id}: a run without a readable first seq"))?;
            if first == 0 || first > last {
                return Err(format!("entry {id}: a run from seq {first}"));
            }
            let lines = body.iter().filter(|b| **b == b'\n').count() as u64 + 1;
            if lines != last - first + 1 {
                return Err(format!(
                    "entry {id}: {lines} events for seqs {first} to {last}"
                ));
            }
            return Ok(Run { first, last, body });
        }
        match field(EVENT)? {
            Some(body) => Ok(Run {
                first: last,
                last,
                body,
            }),
            None => Err(format!("seq {last}: no event field")),
        }
    }

    /// Each event's seq and JSON, in order.
    pub(super) fn events(&self) -> impl Iterator<Item = (u64, &'a [u8])> + 'a {
        (self.first..=self.last).zip(self.body.split(|b| *b == b'\n'))
    }
}

/// The seq of an entry id `<seq>-0`.
pub(super) fn seq_of(id: &str) -> Option<u64> {
    id.split('-').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<'a>(id: &str, fields: &[(&str, &'a [u8])]) -> Result<Run<'a>, String> {
        let fields = fields.to_vec();
        Run::read(id, move |name| {
            Ok(fields.iter().find(|(n, _)| *n == name).map(|(_, v)| *v))
        })
    }

    fn events(run: Run<'_>) -> Vec<(u64, String)> {
        run.events()
            .map(|(seq, json)| (seq, String::from_utf8_lossy(json).into_owned()))
            .collect()
    }

    #[test]
    fn an_entry_of_one_event_and_a_run_are_read_as_seqs_and_lines() {
        let one = read("7-0", &[("e", b"{\"seq\":7}"), ("o", b"3")]).unwrap();
        assert_eq!(events(one), [(7, "{\"seq\":7}".to_owned())]);
        let run = read(
            "9-0",
            &[("f", b"7"), ("b", b"{\"a\":7}\n{\"a\":8}\n{\"a\":9}")],
        )
        .unwrap();
        assert_eq!((run.first, run.last), (7, 9));
        assert_eq!(
            events(run),
            [
                (7, "{\"a\":7}".to_owned()),
                (8, "{\"a\":8}".to_owned()),
                (9, "{\"a\":9}".to_owned())
            ]
        );
    }

    #[test]
    fn a_damaged_entry_is_refused_naming_what() {
        let err = |id, fields: &[(&str, &[u8])]| read(id, fields).unwrap_err();
        assert_eq!(err("x-0", &[("e", b"{}")]), "bad entry id x-0");
        assert_eq!(err("3-0", &[("x", b"{}")]), "seq 3: no event field");
        assert_eq!(
            err("3-0", &[("b", b"{}\n{}")]),
            "entry 3-0: a run without a readable first seq"
        );
        assert_eq!(
            err("3-0", &[("f", b"two"), ("b", b"{}\n{}")]),
            "entry 3-0: a run without a readable first seq"
        );
        assert_eq!(
            err("3-0", &[("f", b"4"), ("b", b"{}")]),
            "entry 3-0: a run from seq 4"
        );
        assert_eq!(
            err("3-0", &[("f", b"0"), ("b", b"{}")]),
            "entry 3-0: a run from seq 0"
        );
        assert_eq!(
            err("3-0", &[("f", b"1"), ("b", b"{}\n{}")]),
            "entry 3-0: 2 events for seqs 1 to 3"
        );
        assert_eq!(
            err("3-0", &[("f", b"2"), ("b", b"{}\n{}\n{}")]),
            "entry 3-0: 3 events for seqs 2 to 3"
        );
        let not_a_string = Run::read("3-0", |_| Err("its field is an integer".to_owned()));
        assert_eq!(not_a_string.unwrap_err(), "its field is an integer");
    }
}
