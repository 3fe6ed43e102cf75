//! How many mutations a cluster's nodes forwarded to the room's owner over the measured window
//! of a run: the sum over the nodes of `roomstate_cluster_forwarded_total{kind="command"}` on
//! `/metrics` when measuring starts and when it ends. A client whose node does not own its room
//! has each mutation forwarded (HTTP) or sent on by the node's mirror of the room (WebSocket);
//! divided by the acks of the window it is the forwarded share.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// The counter, as the engine names it (namespace `roomstate`).
const METRIC: &str = "roomstate_cluster_forwarded_total";
/// The kind of forwarded call that carries a mutation.
const KIND: &str = "command";
/// How long one `/metrics` read may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Mutations forwarded so far, summed over the nodes at `bases`.
pub async fn commands_forwarded(bases: &[String]) -> anyhow::Result<u64> {
    let client = awc::Client::builder()
        .timeout(TIMEOUT)
        .max_http_version(awc::http::Version::HTTP_11)
        .finish();
    let mut total = 0;
    for base in bases {
        let mut resp = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("GET {base}/metrics: {e}"))?;
        if !resp.status().is_success() {
            bail!("GET {base}/metrics answered {}", resp.status());
        }
        let body = resp
            .body()
            .limit(16 << 20)
            .await
            .with_context(|| format!("reading {base}/metrics"))?;
        total += forwarded_in(&String::from_utf8_lossy(&body))?;
    }
    Ok(total)
}

/// Reads the counter at `from` and at `until` (sleeping in between); returns the difference.
pub async fn over_window(bases: Vec<String>, from: Instant, until: Instant) -> anyhow::Result<u64> {
    actix_rt::time::sleep_until(from.into()).await;
    let start = commands_forwarded(&bases).await?;
    actix_rt::time::sleep_until(until.into()).await;
    Ok(commands_forwarded(&bases).await?.saturating_sub(start))
}

/// The counter's `kind="command"` sample in a Prometheus text exposition (0 when absent: nothing
/// forwarded yet).
fn forwarded_in(text: &str) -> anyhow::Result<u64> {
    let wanted = format!("kind=\"{KIND}\"");
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((sample, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some((name, labels)) = sample.split_once('{') else {
            continue;
        };
        if name == METRIC && labels.trim_end_matches('}').split(',').any(|l| l == wanted) {
            let value: f64 = value
                .parse()
                .with_context(|| format!("the value of {line:?}"))?;
            return Ok(value as u64);
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_command_sample_of_the_counter() {
        let text = "# HELP roomstate_cluster_forwarded_total Calls forwarded\n\
                    # TYPE roomstate_cluster_forwarded_total counter\n\
                    roomstate_cluster_forwarded_total{kind=\"socket\"} 12\n\
                    roomstate_cluster_forwarded_total{kind=\"command\"} 4521\n\
                    roomstate_other_total{kind=\"command\"} 7\n";
        assert_eq!(forwarded_in(text).unwrap(), 4521);
        assert_eq!(forwarded_in("roomstate_up 1\n").unwrap(), 0);
        assert!(forwarded_in("roomstate_cluster_forwarded_total{kind=\"command\"} x\n").is_err());
    }
}
