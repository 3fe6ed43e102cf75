//! `EngineProcess`: a `roomstate` binary as a child process, for the tests and the tools. It is
//! started on port 0 with the settings given, its stdout is read for the listening line (one
//! constant, `roomstate_core::banner`), its stderr goes to a log file, and it never outlives its
//! owner: dropping it kills the process (SIGKILL, or SIGTERM first for `DropPolicy::Terminate`).

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use roomstate_core::banner;

/// What dropping the handle does to a process that still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropPolicy {
    /// SIGKILL at once (tests: nothing may linger).
    Kill,
    /// SIGTERM, wait up to 20 s for a clean exit, then SIGKILL (tools that measure a run).
    Terminate,
}

/// Why an engine did not start.
#[derive(Debug)]
pub struct SpawnError(pub String);

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SpawnError {}

/// A running engine.
pub struct EngineProcess {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// From spawn to the listening line.
    pub startup: Duration,
    /// Every stdout line after the listening line arrives here.
    pub stdout: mpsc::Receiver<String>,
    /// Lines printed before the listening line (the first is always it).
    pub early_lines: Vec<String>,
    log: PathBuf,
    on_drop: DropPolicy,
}

/// The path of a binary of this workspace's target directory (e.g. `roomstate`), found next to
/// the running test or tool. Fails, saying what to build, when it is not there.
pub fn workspace_binary(name: &str) -> Result<PathBuf, SpawnError> {
    let exe = std::env::current_exe().map_err(|e| SpawnError(format!("current exe: {e}")))?;
    // target/<profile>/deps/<test> or target/<profile>/<tool>
    let candidates = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(name))
        .collect::<Vec<_>>();
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            SpawnError(format!(
                "no `{name}` binary next to {} (looked at {candidates:?}); build it first with \
                 `cargo build --workspace` (scripts/test does)",
                exe.display()
            ))
        })
}

impl EngineProcess {
    /// Starts `bin` with `ROOMSTATE__HTTP__BIND=127.0.0.1:0`, then `env`, stderr appended to `log`,
    /// and waits up to `deadline` for its listening line.
    pub fn spawn(
        bin: &Path,
        env: &[(String, String)],
        log: &Path,
        deadline: Duration,
        on_drop: DropPolicy,
    ) -> Result<EngineProcess, SpawnError> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| SpawnError(format!("engine log {}: {e}", log.display())))?;
        let started = Instant::now();
        let mut command = Command::new(bin);
        hermetic(&mut command);
        command
            .env("ROOMSTATE__HTTP__BIND", "127.0.0.1:0")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));
        let mut child = command
            .spawn()
            .map_err(|e| SpawnError(format!("starting {}: {e}", bin.display())))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            return Err(SpawnError("the engine's stdout is not piped".into()));
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut early_lines = Vec::new();
        let base = loop {
            let left = deadline.saturating_sub(started.elapsed());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let base = banner::parse_listening_line(&line).map(str::to_owned);
                    early_lines.push(line);
                    if let Some(base) = base {
                        break base;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    return Err(SpawnError(format!(
                        "the engine did not print its listening line within {deadline:?} \
                         (exit: {status:?}); its log ({}):\n{}",
                        log.display(),
                        std::fs::read_to_string(log).unwrap_or_default()
                    )));
                }
            }
        };
        Ok(EngineProcess {
            child: Some(child),
            base,
            startup: started.elapsed(),
            stdout: rx,
            early_lines,
            log: log.to_path_buf(),
            on_drop,
        })
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The engine's log (stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM without waiting.
    pub fn terminate(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, "TERM");
        }
    }

    /// Sends SIGSTOP or SIGCONT (`"STOP"`, `"CONT"`).
    pub fn signal(&self, name: &str) {
        if let Some(pid) = self.pid() {
            signal(pid, name);
        }
    }

    /// Waits up to `deadline` for the process to exit; kills it and fails after that.
    pub fn wait_exit(&mut self, deadline: Duration) -> Result<ExitStatus, SpawnError> {
        let Some(mut child) = self.child.take() else {
            return Err(SpawnError("the engine is not running".into()));
        };
        let end = Instant::now() + deadline;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(20)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(SpawnError(format!(
                        "the engine did not exit within {deadline:?}; killed it"
                    )));
                }
                Err(e) => return Err(SpawnError(format!("waiting for the engine: {e}"))),
            }
        }
    }

    /// SIGKILL, and reaps it: a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Leaves out every `ROOMSTATE*` variable of the caller's environment: an engine under test has
/// exactly the settings its test gives it.
fn hermetic(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ROOMSTATE") {
            command.env_remove(key);
        }
    }
}

/// What a short run of the binary (one that is expected to exit by itself: `--help`, a refused
/// configuration) printed, and how it ended.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `bin` with `args` and `env` (and nothing else of the caller's `ROOMSTATE*` environment)
/// until it exits, for at most `deadline`: a binary that does not exit by then is killed and the
/// call fails saying so, with what it printed.
pub fn run_to_exit(
    bin: &Path,
    args: &[&str],
    env: &[(String, String)],
    deadline: Duration,
) -> Result<Finished, SpawnError> {
    let mut command = Command::new(bin);
    hermetic(&mut command);
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|e| SpawnError(format!("starting {}: {e}", bin.display())))?;
    let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let out = read(child.stdout.take().map(|p| Box::new(p) as _));
    let err = read(child.stderr.take().map(|p| Box::new(p) as _));
    let end = Instant::now() + deadline;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SpawnError(format!(
                    "{} {args:?} did not exit within {deadline:?}; killed it. stdout:\n{}\nstderr:\n{}",
                    bin.display(),
                    out.join().unwrap_or_default(),
                    err.join().unwrap_or_default()
                )));
            }
            Err(e) => return Err(SpawnError(format!("waiting for {}: {e}", bin.display()))),
        }
    };
    Ok(Finished {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status();
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        if self.on_drop == DropPolicy::Terminate && self.child.is_some() {
            self.terminate();
            let _ = self.wait_exit(Duration::from_secs(20));
        }
        self.kill();
    }
}
