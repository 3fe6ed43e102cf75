//! CPU time of other processes over the measured window of a run (the engine, the Redis
//! servers): user + system seconds from `/proc/PID/stat` when measuring starts and when it ends.
//! Divided by the acks of the window it is the figure the targets are set in — CPU per
//! acknowledged mutation — which a noisy shared machine distorts far less than throughput.
//!
//! Each process's CPU is also split by thread name (`/proc/PID/task/*/comm`): the engine names
//! its threads for what they do (`roomstate-http`, `roomstate-rooms`, `roomstate-redis`), so a
//! change to one of them can be measured on its own, where the engine-wide figure moves within
//! the machine's noise.

use std::{collections::BTreeMap, time::Instant};

use anyhow::{bail, Context as _};
use serde::Serialize;

/// A process to watch, as given on the command line (`NAME=PID`).
#[derive(Debug, Clone)]
pub struct Watched {
    pub name: String,
    pub pid: u32,
}

impl std::str::FromStr for Watched {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let Some((name, pid)) = s.split_once('=') else {
            bail!("expected NAME=PID, got {s:?}");
        };
        Ok(Watched {
            name: name.to_owned(),
            pid: pid.parse().with_context(|| format!("pid in {s:?}"))?,
        })
    }
}

/// CPU one process used over the window.
#[derive(Debug, Clone, Serialize)]
pub struct CpuUse {
    pub pid: u32,
    pub cpu_s: f64,
    /// Microseconds of CPU per acknowledged mutation.
    pub us_per_ack: f64,
    /// The same, per thread name.
    pub threads_us_per_ack: BTreeMap<String, f64>,
}

impl CpuUse {
    /// ` (name µs, ...)` for the threads that took at least 0.1 µs per ack, when there are
    /// two or more of them; empty otherwise.
    pub fn by_thread(&self) -> String {
        let shown: Vec<String> = (self.threads_us_per_ack.iter())
            .filter(|(_, us)| **us >= 0.1)
            .map(|(name, us)| format!("{name} {us:.1}"))
            .collect();
        match shown.len() {
            0 | 1 => String::new(),
            _ => format!(" ({})", shown.join(", ")),
        }
    }
}

/// CPU a process used over a window: in all, and per thread name.
#[derive(Debug, Clone, Default)]
pub struct Used {
    pub pid: u32,
    pub cpu_s: f64,
    pub threads: BTreeMap<String, f64>,
}

/// User + system CPU seconds `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    stat_seconds(&format!("/proc/{pid}/stat"))
}

/// User + system CPU seconds each named thread of `pid` has used so far (threads of one name
/// summed; a thread that ended is gone from the sum).
pub fn thread_seconds(pid: u32) -> anyhow::Result<BTreeMap<String, f64>> {
    let tasks = format!("/proc/{pid}/task");
    let mut by_name = BTreeMap::new();
    for task in std::fs::read_dir(&tasks).with_context(|| format!("reading {tasks}"))? {
        let dir = task?.path();
        // A thread may end between the listing and the reads: skipped.
        let (Ok(name), Ok(seconds)) = (
            std::fs::read_to_string(dir.join("comm")),
            stat_seconds(&dir.join("stat").to_string_lossy()),
        ) else {
            continue;
        };
        *by_name.entry(name.trim().to_owned()).or_insert(0.0) += seconds;
    }
    Ok(by_name)
}

/// User + system CPU seconds in a `/proc/.../stat` file.
fn stat_seconds(path: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) may hold spaces; the fields after its closing paren are plain.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("odd /proc/PID/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the paren: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .context("short /proc/PID/stat")?
            .parse::<f64>()?)
    };
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    Ok((ticks(11)? + ticks(12)?) / hz)
}

/// Samples every watched process at `from` and at `until` (sleeping in between), so the figure
/// covers exactly the measured window of a run.
pub async fn over_window(
    watched: &[Watched],
    from: Instant,
    until: Instant,
) -> anyhow::Result<BTreeMap<String, Used>> {
    actix_rt::time::sleep_until(from.into()).await;
    let start: Vec<(f64, BTreeMap<String, f64>)> = watched
        .iter()
        .map(|w| Ok((cpu_seconds(w.pid)?, thread_seconds(w.pid)?)))
        .collect::<anyhow::Result<_>>()?;
    actix_rt::time::sleep_until(until.into()).await;
    let mut used = BTreeMap::new();
    for (w, (start, start_threads)) in watched.iter().zip(start) {
        let threads = thread_seconds(w.pid)?
            .into_iter()
            .map(|(name, end)| {
                let begun = start_threads.get(&name).copied().unwrap_or(0.0);
                // Never below 0: a thread of the name may have ended meanwhile.
                let seconds = (end - begun).max(0.0);
                (name, seconds)
            })
            .collect();
        let cpu_s = cpu_seconds(w.pid)? - start;
        let pid = w.pid;
        used.insert(
            w.name.clone(),
            Used {
                pid,
                cpu_s,
                threads,
            },
        );
    }
    Ok(used)
}

/// CPU per ack for each watched process.
pub fn per_ack(used: BTreeMap<String, Used>, acked: u64) -> BTreeMap<String, CpuUse> {
    let per = |cpu_s: f64| {
        if acked > 0 {
            cpu_s * 1e6 / acked as f64
        } else {
            0.0
        }
    };
    used.into_iter()
        .map(|(name, used)| {
            let threads_us_per_ack = used
                .threads
                .iter()
                .map(|(thread, cpu_s)| (thread.clone(), per(*cpu_s)))
                .collect();
            let cpu = CpuUse {
                pid: used.pid,
                cpu_s: used.cpu_s,
                us_per_ack: per(used.cpu_s),
                threads_us_per_ack,
            };
            (name, cpu)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_cpu_time() {
        let before = cpu_seconds(std::process::id()).unwrap();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_seconds(std::process::id()).unwrap() >= before);
        assert!("engine=12".parse::<Watched>().is_ok());
        assert!("engine".parse::<Watched>().is_err());
    }

    #[test]
    fn splits_a_process_by_thread_name() {
        let busy = std::thread::Builder::new()
            .name("busy-thread".into())
            .spawn(|| {
                let started = std::time::Instant::now();
                let mut x = 0u64;
                // Until the kernel has counted a tick of it (at most a few seconds).
                while started.elapsed() < std::time::Duration::from_secs(5) {
                    for i in 0..1_000_000u64 {
                        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                    }
                    let me = thread_seconds(std::process::id()).unwrap();
                    if me.get("busy-thread").is_some_and(|s| *s > 0.0) {
                        return;
                    }
                }
                panic!("no CPU counted for the busy thread in 5 s");
            })
            .unwrap();
        busy.join()
            .expect("the busy thread's CPU is counted under its name");
        // A joined thread may still be finishing its exit, listed a moment longer.
        let joined = std::time::Instant::now();
        while thread_seconds(std::process::id())
            .unwrap()
            .contains_key("busy-thread")
        {
            assert!(
                joined.elapsed() < std::time::Duration::from_secs(10),
                "an ended thread is still counted 10 s after it was joined"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
