//! CPU time of other processes over the measured window of a run (the engine, the Redis
//! servers): user + system seconds from `/proc/PID/stat` when measuring starts and when it ends.
//! Divided by the acks of the window it is the figure the targets are set in — CPU per
//! acknowledged mutation — which a noisy shared machine distorts far less than throughput. The
//! two parts are kept apart too: user space is what the engine's own code (and its libraries)
//! can cut; system time is the kernel's sends, receives, wake-ups and switches on its behalf.
//!
//! Each process's CPU is also split by thread name (`/proc/PID/task/*/comm`): the engine names
//! its threads for what they do (`roomstate-http`, `roomstate-rooms`, `roomstate-redis`), so a
//! change to one of them can be measured on its own, where the engine-wide figure moves within
//! the machine's noise. Beside each thread's CPU, its context switches (voluntary and not, from
//! `/proc/PID/task/*/status`): how often it slept and was woken, a count the machine's noise
//! moves far less than time, and what a change to the hops between threads changes.

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
    /// Of `us_per_ack`, the part in user space and the part in the kernel (system time).
    pub user_us_per_ack: f64,
    pub system_us_per_ack: f64,
    /// The same, per thread name.
    pub threads_us_per_ack: BTreeMap<String, f64>,
    /// Context switches per acknowledged mutation, per thread name.
    pub threads_switches_per_ack: BTreeMap<String, f64>,
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

    /// ` (switches per ack: name n, ...)` for the threads of `by_thread`; empty when that is.
    pub fn switches_by_thread(&self) -> String {
        let shown: Vec<String> = (self.threads_us_per_ack.iter())
            .filter(|(_, us)| **us >= 0.1)
            .map(|(name, _)| {
                let switches = self.threads_switches_per_ack.get(name).copied();
                format!("{name} {:.2}", switches.unwrap_or(0.0))
            })
            .collect();
        match shown.len() {
            0 | 1 => String::new(),
            _ => format!(" (switches per ack: {})", shown.join(", ")),
        }
    }
}

/// What the threads of one name used: CPU seconds and context switches.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ThreadUse {
    pub cpu_s: f64,
    pub switches: u64,
}

/// CPU a process used over a window: in all, in user space and in the kernel, and per thread
/// name.
#[derive(Debug, Clone, Default)]
pub struct Used {
    pub pid: u32,
    pub cpu_s: f64,
    pub user_s: f64,
    pub system_s: f64,
    pub threads: BTreeMap<String, ThreadUse>,
}

/// CPU seconds in user space and in the kernel (system time).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Times {
    pub user_s: f64,
    pub system_s: f64,
}

impl Times {
    pub fn total(self) -> f64 {
        self.user_s + self.system_s
    }
}

/// The user and system CPU seconds `pid` has used so far.
pub fn cpu_times(pid: u32) -> anyhow::Result<Times> {
    stat_times(&format!("/proc/{pid}/stat"))
}

/// What each named thread of `pid` has used so far: CPU seconds (user + system) and context
/// switches (threads of one name summed; a thread that ended is gone from the sum).
pub fn thread_use(pid: u32) -> anyhow::Result<BTreeMap<String, ThreadUse>> {
    let tasks = format!("/proc/{pid}/task");
    let mut by_name: BTreeMap<String, ThreadUse> = BTreeMap::new();
    for task in std::fs::read_dir(&tasks).with_context(|| format!("reading {tasks}"))? {
        let dir = task?.path();
        // A thread may end between the listing and the reads: skipped.
        let (Ok(name), Ok(times)) = (
            std::fs::read_to_string(dir.join("comm")),
            stat_times(&dir.join("stat").to_string_lossy()),
        ) else {
            continue;
        };
        // A kernel that does not count them (or a thread gone by now) counts none; its CPU stays.
        let switches = status_switches(&dir.join("status").to_string_lossy()).unwrap_or(0);
        let used = by_name.entry(name.trim().to_owned()).or_default();
        used.cpu_s += times.total();
        used.switches += switches;
    }
    Ok(by_name)
}

/// Voluntary plus involuntary context switches in a `/proc/.../status` file.
fn status_switches(path: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let count = |key: &str| -> anyhow::Result<u64> {
        let line = (status.lines())
            .find_map(|l| l.strip_prefix(key))
            .with_context(|| format!("no {key} in {path}"))?;
        Ok(line.trim().parse()?)
    };
    Ok(count("voluntary_ctxt_switches:")? + count("nonvoluntary_ctxt_switches:")?)
}

/// User and system CPU seconds in a `/proc/.../stat` file.
fn stat_times(path: &str) -> anyhow::Result<Times> {
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
    Ok(Times {
        user_s: ticks(11)? / hz,
        system_s: ticks(12)? / hz,
    })
}

/// Samples every watched process at `from` and at `until` (sleeping in between), so the figure
/// covers exactly the measured window of a run.
pub async fn over_window(
    watched: &[Watched],
    from: Instant,
    until: Instant,
) -> anyhow::Result<BTreeMap<String, Used>> {
    actix_rt::time::sleep_until(from.into()).await;
    let start: Vec<(Times, BTreeMap<String, ThreadUse>)> = watched
        .iter()
        .map(|w| Ok((cpu_times(w.pid)?, thread_use(w.pid)?)))
        .collect::<anyhow::Result<_>>()?;
    actix_rt::time::sleep_until(until.into()).await;
    let mut used = BTreeMap::new();
    for (w, (start, start_threads)) in watched.iter().zip(start) {
        let threads = thread_use(w.pid)?
            .into_iter()
            .map(|(name, end)| {
                let begun = start_threads.get(&name).copied().unwrap_or_default();
                // Never below 0: a thread of the name may have ended meanwhile.
                let used = ThreadUse {
                    cpu_s: (end.cpu_s - begun.cpu_s).max(0.0),
                    switches: end.switches.saturating_sub(begun.switches),
                };
                (name, used)
            })
            .collect();
        let end = cpu_times(w.pid)?;
        let (user_s, system_s) = (end.user_s - start.user_s, end.system_s - start.system_s);
        used.insert(
            w.name.clone(),
            Used {
                pid: w.pid,
                cpu_s: user_s + system_s,
                user_s,
                system_s,
                threads,
            },
        );
    }
    Ok(used)
}

/// CPU per ack for each watched process.
pub fn per_ack(used: BTreeMap<String, Used>, acked: u64) -> BTreeMap<String, CpuUse> {
    // Per acknowledged mutation (0 when nothing was acknowledged).
    let per = |x: f64| if acked > 0 { x / acked as f64 } else { 0.0 };
    used.into_iter()
        .map(|(name, used)| {
            let threads_us_per_ack = (used.threads.iter())
                .map(|(thread, t)| (thread.clone(), per(t.cpu_s) * 1e6))
                .collect();
            let threads_switches_per_ack = (used.threads.iter())
                .map(|(thread, t)| (thread.clone(), per(t.switches as f64)))
                .collect();
            let cpu = CpuUse {
                pid: used.pid,
                cpu_s: used.cpu_s,
                us_per_ack: per(used.cpu_s) * 1e6,
                user_us_per_ack: per(used.user_s) * 1e6,
                system_us_per_ack: per(used.system_s) * 1e6,
                threads_us_per_ack,
                threads_switches_per_ack,
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
        let before = cpu_times(std::process::id()).unwrap().total();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_times(std::process::id()).unwrap().total() >= before);
        assert!("engine=12".parse::<Watched>().is_ok());
        assert!("engine".parse::<Watched>().is_err());
    }

    #[test]
    fn splits_user_space_from_the_kernel() {
        let me = std::process::id();
        let before = cpu_times(me).unwrap();
        let started = std::time::Instant::now();
        // Arithmetic is user time; reading a /proc file is system time. Until the kernel has
        // counted a tick of each (at most a few seconds).
        let mut x = 0u64;
        loop {
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            for _ in 0..200 {
                let _ = std::hint::black_box(std::fs::read_to_string("/proc/self/stat"));
            }
            let now = cpu_times(me).unwrap();
            if now.user_s > before.user_s && now.system_s > before.system_s {
                return;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "user or system time not counted in 10 s: {before:?} then {now:?}"
            );
        }
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
                    let me = thread_use(std::process::id()).unwrap();
                    if me.get("busy-thread").is_some_and(|t| t.cpu_s > 0.0) {
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
        while thread_use(std::process::id())
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

    #[test]
    fn counts_a_threads_context_switches() {
        let (slept, has_slept) = std::sync::mpsc::channel::<()>();
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let sleeper = std::thread::Builder::new()
            .name("sleepy-thread".into())
            .spawn(move || {
                // Every sleep gives the CPU up: one voluntary switch each, however busy the
                // machine is.
                for _ in 0..20 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                slept.send(()).unwrap();
                // Stays (and is listed) until the test has read its count.
                let _ = finished.recv();
            })
            .unwrap();
        has_slept.recv().unwrap();
        let me = thread_use(std::process::id()).unwrap();
        let switches = me.get("sleepy-thread").map(|t| t.switches);
        assert!(
            switches.is_some_and(|n| n >= 20),
            "20 sleeps counted as {switches:?} switches"
        );
        done.send(()).unwrap();
        sleeper.join().unwrap();
    }

    #[test]
    fn switches_per_ack_are_per_thread_name() {
        let mut threads = BTreeMap::new();
        threads.insert(
            "roomstate-http".to_owned(),
            ThreadUse {
                cpu_s: 0.5,
                switches: 2500,
            },
        );
        threads.insert(
            "roomstate-rooms".to_owned(),
            ThreadUse {
                cpu_s: 0.2,
                switches: 1000,
            },
        );
        let used = Used {
            pid: 1,
            cpu_s: 0.7,
            user_s: 0.2,
            system_s: 0.5,
            threads,
        };
        let cpu = &per_ack(BTreeMap::from([("engine".to_owned(), used)]), 10_000)["engine"];
        assert_eq!(cpu.us_per_ack, 70.0);
        assert_eq!((cpu.user_us_per_ack, cpu.system_us_per_ack), (20.0, 50.0));
        assert_eq!(cpu.threads_switches_per_ack["roomstate-http"], 0.25);
        assert_eq!(cpu.threads_us_per_ack["roomstate-rooms"], 20.0);
        assert_eq!(
            cpu.switches_by_thread(),
            " (switches per ack: roomstate-http 0.25, roomstate-rooms 0.10)"
        );
    }
}
