//! Every rule of the room, one test each: `RoomState` driven directly, no actors or I/O.

use super::*;
use crate::time;

fn user(name: &str) -> UserName {
    UserName::parse(name).unwrap()
}

fn room() -> RoomState {
    RoomState::create(
        RoomId::parse("r_test").unwrap(),
        "Friday?".into(),
        time::now(),
    )
    .unwrap()
    .0
}

fn run(state: &mut RoomState, command: Command) -> Result<Change, RoomError> {
    state.apply(command, time::now())
}

fn join(state: &mut RoomState, name: &str, via: Via) -> Change {
    run(
        state,
        Command::Join {
            user: user(name),
            via,
        },
    )
    .unwrap()
}

fn vote(state: &mut RoomState, name: &str, side: Side) -> Result<Change, RoomError> {
    run(
        state,
        Command::Vote {
            user: user(name),
            side,
        },
    )
}

#[test]
fn creation_is_seq_one() {
    let (state, event) =
        RoomState::create(RoomId::parse("r_a").unwrap(), "t".into(), time::now()).unwrap();
    assert_eq!(event.seq, 1);
    assert_eq!(state.seq(), 1);
    assert_eq!(
        state.counters(),
        Counters {
            seq: 1,
            ..Counters::default()
        }
    );
}

#[test]
fn titles_are_checked() {
    let id = || RoomId::parse("r_a").unwrap();
    assert!(RoomState::create(id(), String::new(), time::now()).is_err());
    assert!(RoomState::create(id(), "   ".into(), time::now()).is_err());
    assert!(RoomState::create(id(), "é".repeat(200), time::now()).is_ok());
    assert!(RoomState::create(id(), "é".repeat(201), time::now()).is_err());
}

#[test]
fn join_counts_and_raises_the_peak() {
    let mut s = room();
    let c = join(&mut s, "alice", Via::Http);
    assert_eq!(c.event.as_ref().map(|e| e.seq), Some(2));
    join(&mut s, "bob", Via::Http);
    assert_eq!(s.counters().participants, 2);
    run(
        &mut s,
        Command::Leave {
            user: user("bob"),
            via: Via::Http,
        },
    )
    .unwrap();
    let c = s.counters();
    assert_eq!((c.participants, c.participants_peak, c.seq), (1, 2, 4));
}

#[test]
fn joining_twice_changes_nothing() {
    let mut s = room();
    join(&mut s, "alice", Via::Http);
    let again = join(&mut s, "alice", Via::Http);
    assert!(again.event.is_none());
    assert_eq!(s.seq(), 2);
}

#[test]
fn two_sockets_of_one_user_count_once() {
    let mut s = room();
    assert!(join(&mut s, "alice", Via::Socket).event.is_some());
    assert!(join(&mut s, "alice", Via::Socket).event.is_none());
    assert_eq!(s.counters().participants, 1);
    let leave = || Command::Leave {
        user: user("alice"),
        via: Via::Socket,
    };
    assert!(
        run(&mut s, leave()).unwrap().event.is_none(),
        "one socket still open"
    );
    assert_eq!(s.counters().participants, 1);
    let last = run(&mut s, leave()).unwrap();
    assert!(matches!(
        last.event.map(|e| e.kind),
        Some(EventKind::Left { .. })
    ));
    assert_eq!(s.counters().participants, 0);
}

#[test]
fn http_and_socket_presence_overlap() {
    let mut s = room();
    join(&mut s, "alice", Via::Socket);
    assert!(join(&mut s, "alice", Via::Http).event.is_none());
    let leave_http = run(
        &mut s,
        Command::Leave {
            user: user("alice"),
            via: Via::Http,
        },
    );
    assert!(
        leave_http.unwrap().event.is_none(),
        "the socket keeps alice present"
    );
    assert_eq!(s.counters().participants, 1);
}

#[test]
fn leaving_when_absent_is_a_no_op() {
    let mut s = room();
    let c = run(
        &mut s,
        Command::Leave {
            user: user("ghost"),
            via: Via::Http,
        },
    )
    .unwrap();
    assert!(c.event.is_none());
    assert_eq!(s.seq(), 1);
}

#[test]
fn voting_needs_presence() {
    let mut s = room();
    assert_eq!(
        vote(&mut s, "alice", Side::Pro),
        Err(RoomError::NotJoined(user("alice")))
    );
    assert_eq!(s.seq(), 1, "a refused command takes no seq");
}

#[test]
fn double_vote_is_accepted_and_changes_nothing() {
    let mut s = room();
    join(&mut s, "alice", Via::Http);
    let first = vote(&mut s, "alice", Side::Pro).unwrap();
    assert_eq!(first.counters.pro, 1);
    assert_eq!(first.counters.seq, 3);
    let again = vote(&mut s, "alice", Side::Pro).unwrap();
    assert!(again.event.is_none());
    assert_eq!((again.counters.pro, again.counters.seq), (1, 3));
}

#[test]
fn switching_moves_the_vote() {
    let mut s = room();
    join(&mut s, "alice", Via::Http);
    vote(&mut s, "alice", Side::Pro).unwrap();
    let c = vote(&mut s, "alice", Side::Con).unwrap().counters;
    assert_eq!((c.pro, c.con, c.seq), (0, 1, 4));
}

#[test]
fn retract_removes_the_vote_once() {
    let mut s = room();
    join(&mut s, "alice", Via::Http);
    vote(&mut s, "alice", Side::Con).unwrap();
    let c = run(
        &mut s,
        Command::Retract {
            user: user("alice"),
        },
    )
    .unwrap();
    assert!(c.event.is_some());
    assert_eq!((c.counters.con, c.counters.seq), (0, 4));
    let again = run(
        &mut s,
        Command::Retract {
            user: user("alice"),
        },
    )
    .unwrap();
    assert!(again.event.is_none(), "no vote: no new seq");
    assert_eq!(again.counters.seq, 4);
}

#[test]
fn retract_needs_presence() {
    let mut s = room();
    let r = run(&mut s, Command::Retract { user: user("bob") });
    assert_eq!(r, Err(RoomError::NotJoined(user("bob"))));
}

#[test]
fn a_vote_stays_counted_after_its_user_leaves() {
    let mut s = room();
    join(&mut s, "alice", Via::Http);
    vote(&mut s, "alice", Side::Pro).unwrap();
    run(
        &mut s,
        Command::Leave {
            user: user("alice"),
            via: Via::Http,
        },
    )
    .unwrap();
    let c = s.counters();
    assert_eq!((c.participants, c.pro), (0, 1));
    assert_eq!(
        vote(&mut s, "alice", Side::Con),
        Err(RoomError::NotJoined(user("alice")))
    );
}

#[test]
fn messages_need_presence_and_valid_text() {
    let mut s = room();
    let say = |text: &str| Command::Say {
        user: user("alice"),
        text: text.into(),
        key: None,
    };
    assert_eq!(
        run(&mut s, say("hi")),
        Err(RoomError::NotJoined(user("alice")))
    );
    join(&mut s, "alice", Via::Http);
    assert!(matches!(run(&mut s, say("")), Err(RoomError::Invalid(_))));
    assert!(matches!(
        run(&mut s, say(" \n")),
        Err(RoomError::Invalid(_))
    ));
    assert!(matches!(
        run(&mut s, say(&"x".repeat(2001))),
        Err(RoomError::Invalid(_))
    ));
    let c = run(&mut s, say(&"ü".repeat(2000))).unwrap();
    assert_eq!((c.counters.messages, c.counters.seq), (1, 3));
    let c = run(&mut s, say("again")).unwrap();
    assert_eq!(c.counters.messages, 2);
    let all = s.messages(0, u64::MAX, 10).unwrap();
    assert_eq!(all.iter().map(|m| m.seq).collect::<Vec<_>>(), [3, 4]);
    assert_eq!(s.messages(3, u64::MAX, 10).unwrap().len(), 1);
    assert_eq!(
        s.messages(0, 3, 10).unwrap().len(),
        1,
        "upto bounds the listing"
    );
    assert_eq!(
        s.messages(0, u64::MAX, 1).unwrap().len(),
        1,
        "limit bounds the listing"
    );
}

#[test]
fn a_closed_room_refuses_everything() {
    let mut s = room();
    join(&mut s, "alice", Via::Http);
    s.close(time::now());
    for command in [
        Command::Join {
            user: user("bob"),
            via: Via::Http,
        },
        Command::Leave {
            user: user("alice"),
            via: Via::Http,
        },
        Command::Vote {
            user: user("alice"),
            side: Side::Pro,
        },
        Command::Retract {
            user: user("alice"),
        },
        Command::Say {
            user: user("alice"),
            text: "hi".into(),
            key: None,
        },
    ] {
        assert_eq!(run(&mut s, command), Err(RoomError::Closed));
    }
    assert_eq!(s.view(s.counters()).status, RoomStatus::Closed);
}

#[test]
fn replay_rebuilds_what_was_acknowledged_with_nobody_present() {
    let (mut s, created) =
        RoomState::create(RoomId::parse("r_r").unwrap(), "t".into(), time::now()).unwrap();
    let mut log = vec![created];
    let mut record = |c: Change| log.extend(c.event);
    record(join(&mut s, "alice", Via::Http));
    record(join(&mut s, "bob", Via::Socket));
    record(vote(&mut s, "alice", Side::Pro).unwrap());
    record(vote(&mut s, "bob", Side::Con).unwrap());
    record(vote(&mut s, "bob", Side::Pro).unwrap());
    record(
        run(
            &mut s,
            Command::Say {
                user: user("bob"),
                text: "hi".into(),
                key: None,
            },
        )
        .unwrap(),
    );
    record(
        run(
            &mut s,
            Command::Leave {
                user: user("bob"),
                via: Via::Socket,
            },
        )
        .unwrap(),
    );

    let back = RoomState::replay(s.id(), &log).unwrap();
    let (live, replayed) = (s.counters(), back.counters());
    assert_eq!(
        replayed,
        Counters {
            participants: 0,
            ..live
        }
    );
    assert_eq!(replayed.participants_peak, 2);
    assert_eq!(back.votes(), s.votes());
    assert_eq!(
        back.recent_transcript(u64::MAX),
        s.recent_transcript(u64::MAX)
    );
}

#[test]
fn restore_from_a_snapshot_equals_a_full_replay() {
    let (mut s, created) =
        RoomState::create(RoomId::parse("r_s").unwrap(), "t".into(), time::now()).unwrap();
    let mut log = vec![created];
    log.extend(join(&mut s, "alice", Via::Http).event);
    log.extend(join(&mut s, "bob", Via::Http).event);
    log.extend(vote(&mut s, "alice", Side::Pro).unwrap().event);
    log.extend(
        run(
            &mut s,
            Command::Say {
                user: user("bob"),
                text: "a".into(),
                key: None,
            },
        )
        .unwrap()
        .event,
    );
    let snapshot = s.snapshot();
    assert_eq!(snapshot.seq, 5);
    log.extend(vote(&mut s, "bob", Side::Con).unwrap().event);
    log.extend(vote(&mut s, "alice", Side::Con).unwrap().event);
    log.extend(
        run(
            &mut s,
            Command::Say {
                user: user("bob"),
                text: "b".into(),
                key: None,
            },
        )
        .unwrap()
        .event,
    );

    let full = RoomState::replay(s.id(), &log).unwrap();
    // Untrimmed log (events up to the snapshot still there) and trimmed log alike.
    for events in [&log[..], &log[5..]] {
        let restored = RoomState::restore(&snapshot, events).unwrap();
        assert_eq!(restored.counters(), full.counters());
        assert_eq!(restored.votes(), full.votes());
        assert_eq!(
            restored.recent_transcript(u64::MAX),
            full.recent_transcript(u64::MAX)
        );
    }
    let gap = RoomState::restore(&snapshot, &log[6..]);
    assert!(matches!(
        gap,
        Err(ReplayError::Gap {
            expected: 6,
            found: 7,
            ..
        })
    ));
}

#[test]
fn peak_survives_replays_across_restarts() {
    // alice joins (peak 1); restart; bob joins (participants 1 again, peak still 1).
    let (mut s, created) =
        RoomState::create(RoomId::parse("r_p").unwrap(), "t".into(), time::now()).unwrap();
    let mut log = vec![created];
    log.extend(join(&mut s, "alice", Via::Http).event);
    let mut s = RoomState::replay(s.id(), &log).unwrap();
    log.extend(join(&mut s, "bob", Via::Http).event);
    let back = RoomState::replay(s.id(), &log).unwrap();
    assert_eq!(back.counters().participants_peak, 1);
    assert_eq!(back.counters().seq, 3);
}

#[test]
fn replay_reports_gaps_and_foreign_events() {
    let (mut s, created) =
        RoomState::create(RoomId::parse("r_g").unwrap(), "t".into(), time::now()).unwrap();
    let a = join(&mut s, "alice", Via::Http).event.unwrap();
    let b = join(&mut s, "bob", Via::Http).event.unwrap();
    let gap = RoomState::replay(s.id(), [&created, &b]);
    assert!(matches!(
        gap,
        Err(ReplayError::Gap {
            expected: 2,
            found: 3,
            ..
        })
    ));
    let dup = RoomState::replay(s.id(), [&created, &a, &a]);
    assert!(matches!(dup, Err(ReplayError::Gap { .. })));
    let headless = RoomState::replay(s.id(), [&a]);
    assert!(matches!(headless, Err(ReplayError::NoCreation { .. })));
    let other = RoomId::parse("r_other").unwrap();
    assert!(matches!(
        RoomState::replay(&other, [&created]),
        Err(ReplayError::NoCreation { .. })
    ));
}

fn key(k: &str) -> Option<IdempotencyKey> {
    Some(IdempotencyKey::parse(k).unwrap())
}

fn join_cmd(name: &str) -> Command {
    Command::Join {
        user: user(name),
        via: Via::Http,
    }
}

fn say_with(user_name: &str, text: &str, k: &str) -> Command {
    Command::Say {
        user: user(user_name),
        text: text.into(),
        key: key(k),
    }
}

#[test]
fn a_repeated_key_answers_with_the_first_seq_and_adds_nothing() {
    let mut s = room();
    run(&mut s, join_cmd("alice")).unwrap();
    let first = run(&mut s, say_with("alice", "hello", "k1")).unwrap();
    let seq = first.event.as_ref().unwrap().seq;
    let again = run(&mut s, say_with("alice", "hello", "k1")).unwrap();
    assert_eq!((again.event, again.repeat_of), (None, Some(seq)));
    assert_eq!(again.counters.messages, 1);
    assert_eq!(s.seq(), seq, "no new seq");
    // The same key from another user is another message.
    run(&mut s, join_cmd("bob")).unwrap();
    let bobs = run(&mut s, say_with("bob", "hello", "k1")).unwrap();
    assert!(bobs.event.is_some() && bobs.repeat_of.is_none());
    // A repeat is recognised before the presence rule (and before the text is checked).
    run(
        &mut s,
        Command::Leave {
            user: user("alice"),
            via: Via::Http,
        },
    )
    .unwrap();
    let gone = run(&mut s, say_with("alice", "", "k1")).unwrap();
    assert_eq!(gone.repeat_of, Some(seq));
    let fresh = run(&mut s, say_with("alice", "new", "k2"));
    assert_eq!(fresh, Err(RoomError::NotJoined(user("alice"))));
}

#[test]
fn keys_expire_after_ten_minutes() {
    let mut s = room();
    let t0 = time::now();
    s.apply(join_cmd("alice"), t0).unwrap();
    let first = s.apply(say_with("alice", "a", "k"), t0).unwrap();
    let seq = first.event.unwrap().seq;
    let nine = t0 + chrono::Duration::seconds(540);
    assert_eq!(
        s.apply(say_with("alice", "a", "k"), nine)
            .unwrap()
            .repeat_of,
        Some(seq)
    );
    let eleven = t0 + chrono::Duration::seconds(660);
    let later = s.apply(say_with("alice", "a", "k"), eleven).unwrap();
    assert!(later.event.is_some(), "an old key counts as new");
}

#[test]
fn keys_survive_replay_and_snapshots() {
    let mut s = room();
    let mut log = vec![];
    for command in [
        join_cmd("alice"),
        say_with("alice", "one", "k1"),
        say_with("alice", "two", "k2"),
    ] {
        if let Some(event) = run(&mut s, command).unwrap().event {
            log.push(event);
        }
    }
    let created = Event {
        room: s.id().clone(),
        seq: 1,
        at: time::now(),
        kind: EventKind::Created {
            title: "Friday?".into(),
        },
    };
    let full: Vec<Event> = std::iter::once(created).chain(log.clone()).collect();
    let mut replayed = RoomState::replay(s.id(), &full).unwrap();
    let repeat = run(&mut replayed, say_with("alice", "one", "k1")).unwrap();
    assert_eq!(repeat.repeat_of, Some(3), "recognised after a restart");

    let snapshot = s.snapshot();
    assert_eq!(snapshot.keys.len(), 2);
    let json = serde_json::to_string(&snapshot).unwrap();
    let back: Snapshot = serde_json::from_str(&json).unwrap();
    let mut restored = RoomState::restore(&back, []).unwrap();
    assert_eq!(
        run(&mut restored, say_with("alice", "two", "k2"))
            .unwrap()
            .repeat_of,
        Some(4)
    );
    // A snapshot written before keys existed still reads.
    let mut old: serde_json::Value = serde_json::from_str(&json).unwrap();
    old.as_object_mut().unwrap().remove("keys");
    let old: Snapshot = serde_json::from_value(old).unwrap();
    assert!(old.keys.is_empty());
}

#[test]
fn said_events_without_a_key_read_as_before() {
    let json = r#"{"type":"said","user":"alice","text":"hi"}"#;
    let kind: EventKind = serde_json::from_str(json).unwrap();
    assert_eq!(
        kind,
        EventKind::Said {
            user: user("alice"),
            text: "hi".into(),
            key: None
        }
    );
    assert_eq!(
        serde_json::to_string(&kind).unwrap(),
        json,
        "no key, no field"
    );
}

#[test]
fn memory_holds_a_bounded_transcript_and_says_what_it_lacks() {
    let mut s = room();
    s.bound_messages(3);
    join(&mut s, "alice", Via::Http);
    let say = |text: &str| Command::Say {
        user: user("alice"),
        text: text.into(),
        key: None,
    };
    for i in 0..5 {
        run(&mut s, say(&format!("m{i}"))).unwrap();
    }
    // Seqs 3..=7 are the five messages; 3 and 4 left memory.
    assert_eq!(s.counters().messages, 5, "the counter counts them all");
    assert_eq!(s.older_upto(), 4);
    let kept: Vec<u64> = s
        .recent_transcript(u64::MAX)
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(kept, [5, 6, 7]);
    assert!(
        s.messages(0, u64::MAX, 10).is_none(),
        "older ones: ask the journal"
    );
    assert!(s.messages(3, u64::MAX, 10).is_none());
    assert_eq!(s.messages(4, u64::MAX, 10).unwrap().len(), 3);

    // A snapshot carries the bounded part and what is missing; restored, it says the same.
    let snapshot = s.snapshot();
    assert_eq!(snapshot.messages.len(), 3);
    assert_eq!((snapshot.message_count, snapshot.older_upto), (Some(5), 4));
    let mut back = RoomState::restore(&snapshot, []).unwrap();
    back.bound_messages(3);
    assert_eq!(back.counters().messages, 5);
    assert!(back.messages(2, u64::MAX, 10).is_none());
    assert_eq!(back.messages(4, u64::MAX, 10).unwrap().len(), 3);
    // A snapshot from before the bound (whole transcript, no count) still reads.
    let mut old: serde_json::Value = serde_json::to_value(&snapshot).unwrap();
    old.as_object_mut().unwrap().remove("message_count");
    old.as_object_mut().unwrap().remove("older_upto");
    let old: Snapshot = serde_json::from_value(old).unwrap();
    let restored = RoomState::restore(&old, []).unwrap();
    assert_eq!(restored.counters().messages, 3);
    assert_eq!(restored.older_upto(), 0);
}
