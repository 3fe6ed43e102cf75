//! Redis processes of a test's own (servers and sentinels): started with their own dir and log,
//! waited for until they answer `PING`, and killed with the test.
//!
//! No process outlives its owner: `Drop` of the owner SIGKILLs them, and each process is spawned
//! with `PR_SET_PDEATHSIG = SIGKILL` from a thread that lives as long as the test process, so
//! even a test binary killed with SIGKILL takes its Redis processes with it.

use std::{
    ffi::OsString,
    fs,
    io::{self, Write},
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{mpsc, OnceLock},
    time::{Duration, Instant},
};

use crate::{
    ports::addr,
    redis_admin::{query, POLL},
};

const REDIS_SERVER: &str = "redis-server";
/// How long a process may take to answer `PING` after it was started.
pub const START_DEADLINE: Duration = Duration::from_secs(30);
/// Lines of each process's log that a failure message shows.
pub const LOG_TAIL_LINES: usize = 80;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Server,
    Sentinel,
}

pub struct Proc {
    pub kind: Kind,
    pub name: String,
    pub port: u16,
    pub dir: PathBuf,
    /// Arguments for every start (a sentinel's config file comes first).
    pub args: Vec<OsString>,
    /// Extra arguments for the first start only (`--replicaof` of the initial replicas).
    pub first_args: Vec<OsString>,
    pub child: Option<Child>,
}

impl Proc {
    pub fn addr(&self) -> String {
        addr(self.port)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(match self.kind {
            Kind::Server => "redis-server.log",
            Kind::Sentinel => "sentinel.log",
        })
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Why a process did not come up.
pub enum LaunchError {
    /// Its port was taken between choosing and binding it: choose others.
    PortInUse,
    Failed(String),
}

impl Proc {
    /// The last `LOG_TAIL_LINES` lines of its log, with a header saying what it is.
    pub fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
        format!(
            "--- {} {} ({}, last {} lines) ---\n{}\n",
            self.name,
            self.addr(),
            if self.child.is_some() {
                "running"
            } else {
                "stopped"
            },
            tail.len(),
            tail.join("\n")
        )
    }
}

/// Panics, saying what to run, when `redis-server` cannot be started.
pub fn require_redis_server() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let checked =
        CHECKED.get_or_init(
            || match Command::new(REDIS_SERVER).arg("--version").output() {
                Ok(out) if out.status.success() => Ok(()),
                Ok(out) => Err(format!("`{REDIS_SERVER} --version` failed: {}", out.status)),
                Err(e) => Err(format!("`{REDIS_SERVER}` cannot be run: {e}")),
            },
        );
    if let Err(e) = checked {
        panic!(
            "{e}. The sentinel-set tests start their own Redis processes and need \
             redis-server (7.x) on the PATH: run `scripts/ensure-redis` (installs redis-server \
             and redis-tools with apt-get; it starts nothing)."
        );
    }
}

pub fn os_args(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// Starts `p` and waits until it answers `PING` (a server loading its AOF answers `-LOADING`).
pub async fn launch(p: &mut Proc, first: bool) -> Result<(), LaunchError> {
    assert!(p.child.is_none(), "{} is already running", p.name);
    let mut log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p.log_path())
        .expect("log file");
    let _ = writeln!(log, "=== fixture: starting {} on {} ===", p.name, p.addr());
    let mut command = Command::new(REDIS_SERVER);
    command
        .args(&p.args)
        .current_dir(&p.dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log);
    if first {
        command.args(&p.first_args);
    }
    let child =
        spawn(command).map_err(|e| LaunchError::Failed(format!("spawning {}: {e}", p.name)))?;
    p.child = Some(child);
    let addr = p.addr();
    let begun = Instant::now();
    loop {
        if let Some(status) = p.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
            p.child = None;
            let log = fs::read_to_string(p.log_path()).unwrap_or_default();
            let last_start = log.rsplit("=== fixture: starting").next().unwrap_or("");
            return Err(if last_start.contains("Address already in use") {
                LaunchError::PortInUse
            } else {
                LaunchError::Failed(format!("{} on {addr} exited at start: {status}", p.name))
            });
        }
        match query::<String>(&addr, &redis::cmd("PING")).await {
            Ok(_) => return Ok(()),
            Err(e) if begun.elapsed() > START_DEADLINE => {
                p.kill();
                return Err(LaunchError::Failed(format!(
                    "{} on {addr} did not answer PING within {START_DEADLINE:?}: {e}",
                    p.name
                )));
            }
            Err(_) => actix_rt::time::sleep(POLL).await,
        }
    }
}

/// Spawns `command` with `PR_SET_PDEATHSIG = SIGKILL`. The signal fires when the *thread* that
/// forked exits, so every spawn happens on one thread that lives as long as the test process.
fn spawn(mut command: Command) -> io::Result<Child> {
    type Request = (Command, mpsc::Sender<io::Result<Child>>);
    static SPAWNER: OnceLock<mpsc::Sender<Request>> = OnceLock::new();
    // SAFETY: the closure runs between fork and exec and only makes one async-signal-safe call.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("redis-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("spawner thread");
        tx
    });
    let (tx, rx) = mpsc::channel();
    spawner
        .send((command, tx))
        .expect("the spawner thread is gone");
    rx.recv().expect("the spawner thread is gone")
}
