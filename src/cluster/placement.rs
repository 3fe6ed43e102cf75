//! Where rooms go: a new room to the least-loaded live node, an orphaned room to the live node
//! that ranks highest for it (rendezvous hashing: every node computes the same choice from the
//! same node list, so they rarely race for a room, and a node's rooms spread over the others).
//! Pure: the choice never decides who owns a room — the claim in the journal does.

use roomstate_core::room::RoomId;
use roomstate_journal::redis::NodeRecord;

/// The live node with the fewest rooms; `extra` adds rooms placed since the counts were read.
/// Ties go to `me` (no forwarding), then to the lowest id.
pub(crate) fn least_loaded<'a>(
    serving: &[&'a NodeRecord],
    me: &str,
    extra: impl Fn(&str) -> u64,
) -> Option<&'a NodeRecord> {
    serving.iter().copied().min_by_key(|node| {
        (
            node.rooms.saturating_add(extra(&node.id)),
            node.id != me,
            node.id.clone(),
        )
    })
}

/// The node among `candidates` that takes `room` when its owner is gone.
pub(crate) fn successor<'a>(room: &RoomId, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .copied()
        .max_by_key(|node| (rank(node, room.as_str()), *node))
}

/// FNV-1a over the node id, a separator and the room id: stable across processes and builds
/// (unlike std's hasher, whose output may change with the compiler).
fn rank(node: &str, room: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in node.bytes().chain([0xff]).chain(room.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // FNV's low bits mix poorly for inputs that differ in their last bytes: finish with a
    // multiply-xorshift so the ranks of one room over several nodes are well spread.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^ (hash >> 33)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn node(id: &str, rooms: u64) -> NodeRecord {
        NodeRecord {
            id: id.into(),
            advertise_url: String::new(),
            rooms,
            beat: 0,
            started_ms: 0,
            leaving: false,
        }
    }

    #[test]
    fn a_new_room_goes_to_the_least_loaded_node_and_ties_stay_here() {
        let (a, b, c) = (node("a", 5), node("b", 2), node("c", 2));
        let serving = [&a, &b, &c];
        assert_eq!(least_loaded(&serving, "a", |_| 0).unwrap().id, "b");
        assert_eq!(least_loaded(&serving, "c", |_| 0).unwrap().id, "c");
        // Two rooms placed on b since the counts were read: c now.
        let extra = |id: &str| if id == "b" { 2 } else { 0 };
        assert_eq!(least_loaded(&serving, "a", extra).unwrap().id, "c");
        assert!(least_loaded(&[], "a", |_| 0).is_none());
    }

    #[test]
    fn every_node_picks_the_same_successor_and_a_dead_nodes_rooms_spread() {
        let rooms: Vec<RoomId> = (0..600)
            .map(|i| RoomId::parse(&format!("r_{i}")).unwrap())
            .collect();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for room in &rooms {
            let one = successor(room, &["a", "b", "c"]).unwrap();
            assert_eq!(Some(one), successor(room, &["c", "a", "b"]), "order-free");
            *counts.entry(one).or_default() += 1;
        }
        for node in ["a", "b", "c"] {
            let n = counts.get(node).copied().unwrap_or(0);
            assert!(
                (120..=280).contains(&n),
                "{node} got {n} of 600: {counts:?}"
            );
        }
        // Removing a node moves only its rooms.
        for room in &rooms {
            let before = successor(room, &["a", "b", "c"]).unwrap();
            let after = successor(room, &["a", "b"]).unwrap();
            if before != "c" {
                assert_eq!(before, after);
            }
        }
        assert!(successor(&rooms[0], &[]).is_none());
    }
}
