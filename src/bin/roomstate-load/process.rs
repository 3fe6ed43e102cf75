//! Starting an engine binary for a measurement and reading its resident memory.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};

/// A running engine process, killed on drop.
pub struct Engine {
    child: Child,
    pub base: String,
    /// From spawn to the "listening on" line.
    pub startup: Duration,
}

impl Engine {
    /// Spawns `bin` with `env` (plus a free port) and waits for it to listen.
    pub fn spawn(bin: &Path, env: &[(String, String)], log: &Path) -> anyhow::Result<Engine> {
        let log_file = std::fs::File::create(log).with_context(|| format!("{}", log.display()))?;
        let started = Instant::now();
        let mut child = Command::new(bin)
            .env("ROOMSTATE__HTTP__BIND", "127.0.0.1:0")
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("engine stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("roomstate listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(300)) {
            Ok(base) => Ok(Engine {
                child,
                base,
                startup: started.elapsed(),
            }),
            Err(_) => {
                let _ = child.kill();
                bail!("the engine did not start; see {}", log.display())
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size in bytes (`VmRSS`).
    pub fn rss(&self) -> anyhow::Result<u64> {
        rss_of(self.pid())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn rss_of(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc/PID/status")?;
    Ok(kb * 1024)
}
