//! Asking Redis sentinels who the primary is. redis-rs does not follow a failover by itself, so the
//! journal asks again after every failure; the failover demo and the test fixtures ask the same way.

use futures_util::future::join_all;
use redis::AsyncConnectionConfig;

use super::JournalError;

/// One sentinel's answer to `SENTINEL get-master-addr-by-name master`, as `host:port`; `None`
/// when it cannot be reached, does not answer in time, or knows no such primary.
pub async fn ask(addr: &str, master: &str, config: &AsyncConnectionConfig) -> Option<String> {
    let client = redis::Client::open(format!("redis://{addr}")).ok()?;
    let mut conn = client
        .get_multiplexed_async_connection_with_config(config)
        .await
        .ok()?;
    let reply: Option<(String, String)> = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(master)
        .query_async(&mut conn)
        .await
        .ok()?;
    reply.map(|(host, port)| format!("{host}:{port}"))
}

/// Every sentinel's answer, in the order of `addrs`.
pub async fn ask_all(
    addrs: &[String],
    master: &str,
    config: &AsyncConnectionConfig,
) -> Vec<Option<String>> {
    join_all(addrs.iter().map(|addr| ask(addr, master, config))).await
}

/// The addresses the sentinels name for `master`, the most-named first. During a failover the
/// sentinels may disagree for a moment; the majority's choice is the one to try first, and the
/// caller checks `ROLE` before trusting any of them.
pub async fn primary_candidates(
    addrs: &[String],
    master: &str,
    config: &AsyncConnectionConfig,
) -> Result<Vec<String>, JournalError> {
    let candidates = rank(ask_all(addrs, master, config).await);
    if candidates.is_empty() {
        return Err(JournalError::Unavailable(format!(
            "no sentinel of {} named a primary for {master}",
            addrs.join(",")
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
