//! Asking Redis sentinels who the primary is. redis-rs does not follow a failover by itself, so the
//! journal asks again after every failure; the failover demo and the test fixtures ask the same way.
//!
//! Every sentinel is asked at once and the answers are ranked by votes (a majority's choice first)
//! — rather than redis-rs's `redis::sentinel`, which asks one sentinel after another and takes
//! the first answer: during a failover the sentinels may disagree for a moment, and the writer
//! passes over a candidate the failover fence names. Each sentinel is reached through the
//! sentinels' `Access` (password, TLS); a sentinel that cannot answer says why, so that "no
//! sentinel named a primary" can tell an outage from an authentication failure.

use futures_util::future::join_all;
use redis::AsyncConnectionConfig;

use super::{
    access::{Access, Role},
    JournalError,
};

/// One sentinel's answer to `SENTINEL get-master-addr-by-name master`, as `host:port`, asked
/// with no password and no TLS; `None` when it cannot be reached, does not answer in time, or
/// knows no such primary.
pub async fn ask(addr: &str, master: &str, config: &AsyncConnectionConfig) -> Option<String> {
    ask_via(&Access::plain(Role::Sentinel), addr, master, config)
        .await
        .ok()
        .flatten()
}

/// Every sentinel's answer (no password, no TLS), in the order of `addrs`.
pub async fn ask_all(
    addrs: &[String],
    master: &str,
    config: &AsyncConnectionConfig,
) -> Vec<Option<String>> {
    join_all(addrs.iter().map(|addr| ask(addr, master, config))).await
}

/// One sentinel's answer, reached through `access`: `Ok(None)` when it knows no such primary,
/// `Err(why)` when it cannot be reached, refuses the credentials, or does not answer in time.
pub async fn ask_via(
    access: &Access,
    addr: &str,
    master: &str,
    config: &AsyncConnectionConfig,
) -> Result<Option<String>, String> {
    let mut conn = access.connect(addr, config).await?;
    let reply: Option<(String, String)> = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(master)
        .query_async(&mut conn)
        .await
        .map_err(|e| access.describe(&e))?;
    Ok(reply.map(|(host, port)| format!("{host}:{port}")))
}

/// The addresses the sentinels (no password, no TLS) name for `master`, the most-named first.
/// See `primary_candidates_via`.
pub async fn primary_candidates(
    addrs: &[String],
    master: &str,
    config: &AsyncConnectionConfig,
) -> Result<Vec<String>, JournalError> {
    primary_candidates_via(&Access::plain(Role::Sentinel), addrs, master, config).await
}

/// The addresses the sentinels, reached through `access`, name for `master`, the most-named
/// first. During a failover the sentinels may disagree for a moment; the majority's choice is
/// the one to try first, and the caller checks `ROLE` before trusting any of them. When none
/// names one, the error says what each sentinel answered.
pub async fn primary_candidates_via(
    access: &Access,
    addrs: &[String],
    master: &str,
    config: &AsyncConnectionConfig,
) -> Result<Vec<String>, JournalError> {
    let answers = join_all(
        addrs
            .iter()
            .map(|addr| ask_via(access, addr, master, config)),
    )
    .await;
    let why: Vec<String> = addrs
        .iter()
        .zip(&answers)
        .filter_map(|(addr, answer)| match answer {
            Ok(Some(_)) => None,
            Ok(None) => Some(format!("{addr}: knows no primary {master}")),
            Err(e) => Some(format!("{addr}: {e}")),
        })
        .collect();
    let candidates = rank(answers.into_iter().map(|a| a.ok().flatten()).collect());
    if candidates.is_empty() {
        return Err(JournalError::Unavailable(format!(
            "no sentinel named a primary for {master} ({})",
            why.join("; ")
        )));
    }
    Ok(candidates)
}

/// The named addresses, most votes first (ties keep the order they were first named in).
pub fn rank(answers: Vec<Option<String>>) -> Vec<String> {
    let mut votes: Vec<(String, usize)> = Vec::new();
    for answer in answers.into_iter().flatten() {
        match votes.iter_mut().find(|(addr, _)| *addr == answer) {
            Some((_, n)) => *n += 1,
            None => votes.push((answer, 1)),
        }
    }
    votes.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    votes.into_iter().map(|(addr, _)| addr).collect()
}

#[cfg(test)]
mod tests {
    use super::rank;

    #[test]
    fn the_majority_comes_first() {
        let a = || Some("a:1".to_owned());
        let b = || Some("b:2".to_owned());
        assert_eq!(rank(vec![a(), b(), b()]), ["b:2", "a:1"]);
        assert_eq!(rank(vec![a(), None, b()]), ["a:1", "b:2"]);
        assert!(rank(vec![None, None]).is_empty());
    }
}
