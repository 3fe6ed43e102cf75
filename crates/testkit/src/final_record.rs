//! Checks of a room's final record against what its clients were told, shared by the demos'
//! final-record checks: the tally must agree with the stored votes, and no seq may be
//! acknowledged twice or above the room's final seq.

use std::collections::BTreeMap;

use serde_json::Value;

/// Why the final view's `pro`/`con` disagree with the stored votes (user → side), if they do.
pub fn tally_mismatch(stored: &BTreeMap<String, String>, final_view: &Value) -> Option<String> {
    let pro = stored.values().filter(|s| *s == "pro").count() as u64;
    let con = stored.len() as u64 - pro;
    ((final_view["pro"].as_u64(), final_view["con"].as_u64()) != (Some(pro), Some(con))).then(
        || {
            format!(
                "final tally pro {} con {}, stored votes pro {pro} con {con}",
                final_view["pro"], final_view["con"]
            )
        },
    )
}

/// What is wrong with the acknowledged `seqs`: a seq acknowledged twice, or one above the final
/// view's `seq`.
pub fn seq_problems(seqs: impl IntoIterator<Item = u64>, final_view: &Value) -> Vec<String> {
    let mut seqs: Vec<u64> = seqs.into_iter().collect();
    seqs.sort_unstable();
    let total = seqs.len();
    seqs.dedup();
    let mut problems = Vec::new();
    if seqs.len() != total {
        problems.push(format!(
            "{} acknowledgements repeat a seq",
            total - seqs.len()
        ));
    }
    if let (Some(max), Some(final_seq)) = (seqs.last(), final_view["seq"].as_u64()) {
        if *max > final_seq {
            problems.push(format!(
                "seq {max} was acknowledged but the final seq is {final_seq}"
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_tally_that_disagrees_and_repeated_or_future_seqs_are_named() {
        let stored: BTreeMap<String, String> = [("a", "pro"), ("b", "con"), ("c", "pro")]
            .into_iter()
            .map(|(u, s)| (u.to_owned(), s.to_owned()))
            .collect();
        assert_eq!(tally_mismatch(&stored, &json!({"pro": 2, "con": 1})), None);
        assert!(tally_mismatch(&stored, &json!({"pro": 1, "con": 2})).is_some());
        let view = json!({"seq": 10});
        assert!(seq_problems([1, 2, 10], &view).is_empty());
        assert_eq!(seq_problems([1, 2, 2, 11], &view).len(), 2);
    }
}
