//! The cluster benchmark's closing summary on stdout: per deployment and transport, the values
//! of every round and their medians (acks/s; CPU per ack of the engine processes together, of the
//! Redis primary and of the load generator; the share forwarded between nodes), each cluster's
//! ratio to one engine, then the takeover times per lease. `scripts/bench-report` renders the
//! same from the JSON lines.

use super::{takeover::Takeover, throughput::Measured};
use crate::stats::median;

/// Prints the summary of `runs` and `takeovers`.
pub fn print(runs: &[Measured], takeovers: &[Takeover]) {
    println!();
    println!(
        "{:<16} {:<5} {:>24} {:>8} {:>12} {:>11} {:>10} {:>10}  ratio to one engine",
        "deployment",
        "via",
        "acks/s per round",
        "median",
        "engine µs/ack",
        "redis µs/ack",
        "load µs/ack",
        "forwarded"
    );
    let mut transports: Vec<&str> = Vec::new();
    for run in runs {
        if !transports.contains(&run.summary.transport.as_str()) {
            transports.push(&run.summary.transport);
        }
    }
    let mut groups: Vec<(&str, usize)> = runs.iter().map(|r| (r.deployment, r.nodes)).collect();
    groups.sort();
    groups.dedup();
    // One engine first.
    groups.sort_by_key(|(deployment, nodes)| (*deployment != "single", *nodes));
    for transport in transports {
        let mut base: Option<(f64, f64)> = None;
        for &(deployment, nodes) in &groups {
            let of: Vec<&Measured> = runs
                .iter()
                .filter(|r| {
                    r.deployment == deployment
                        && r.nodes == nodes
                        && r.summary.transport == transport
                })
                .collect();
            let Some(first) = of.first() else { continue };
            let values =
                |f: fn(&Measured) -> f64| -> Vec<f64> { of.iter().map(|r| f(r)).collect() };
            let acks = values(|r| r.summary.throughput);
            let per_round: Vec<String> = acks.iter().map(|a| format!("{a:.0}")).collect();
            let acks = median(&acks).unwrap_or(0.0);
            let engine = median(&values(|r| r.engine_us_per_ack)).unwrap_or(0.0);
            let redis = median(&values(|r| r.redis_us_per_ack)).unwrap_or(0.0);
            let load = median(&values(|r| r.load_us_per_ack)).unwrap_or(0.0);
            let forwarded = median(&values(|r| r.forwarded_share.unwrap_or(0.0)));
            let forwarded = match (first.forwarded_share, forwarded) {
                (Some(_), Some(share)) => format!("{:.0} %", share * 100.0),
                _ => "-".to_owned(),
            };
            let ratio = match base {
                None => {
                    base = Some((acks, engine));
                    "1.00x, 1.00x".to_owned()
                }
                Some((base_acks, base_engine)) => format!(
                    "{:.2}x acks/s, {:.2}x engine µs/ack",
                    acks / base_acks.max(f64::MIN_POSITIVE),
                    engine / base_engine.max(f64::MIN_POSITIVE)
                ),
            };
            println!(
                "{:<16} {:<5} {:>24} {:>8.0} {:>12.1} {:>11.1} {:>10.1} {:>10}  {ratio}",
                first.summary.target,
                transport,
                per_round.join(", "),
                acks,
                engine,
                redis,
                load,
                forwarded
            );
        }
    }
    let mut leases: Vec<(usize, u64)> = takeovers.iter().map(|t| (t.nodes, t.lease_ms)).collect();
    leases.sort();
    leases.dedup();
    for (nodes, lease_ms) in leases {
        let of: Vec<&Takeover> = takeovers
            .iter()
            .filter(|t| t.nodes == nodes && t.lease_ms == lease_ms)
            .collect();
        let all: Vec<f64> = of
            .iter()
            .flat_map(|t| t.takeover_ms.iter().copied())
            .collect();
        let per_kill: Vec<String> = of
            .iter()
            .map(|t| t.median_ms.map_or("-".to_owned(), |ms| format!("{ms:.0}")))
            .collect();
        let moved: usize = of.iter().map(|t| t.rooms_moved).sum();
        let not_resumed: usize = of.iter().map(|t| t.not_resumed).sum();
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
        let lowest = all.iter().copied().reduce(f64::min);
        let highest = all.iter().copied().reduce(f64::max);
        let middle = median(&all);
        println!(
            "takeover, {nodes} nodes, lease {lease_ms} ms: {} kills, {moved} rooms moved ({not_resumed} not resumed); kill to first ack per kill {} ms; over all rooms min {} ms, median {} ms ({:.2}x the lease), max {} ms",
            of.len(),
            per_kill.join(", "),
            ms(lowest),
            ms(middle),
            middle.unwrap_or(0.0) / lease_ms.max(1) as f64,
            ms(highest),
        );
    }
}
