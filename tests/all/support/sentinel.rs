//! `SentinelSet`: a hermetic Redis sentinel set of the test's own — 1 primary, 2 replicas and 3
//! sentinels (master name `roomstate`) on free loopback ports in a fresh temp dir — so failover
//! tests can `DEBUG SLEEP`, kill and restart servers without disturbing other tests.
//!
//! Every wait is on a condition with a deadline; none is a bare sleep. A missing `redis-server` is
//! a failure that says what to run (`scripts/ensure-redis`), never a silent skip.
//!
//! No process outlives the set: `Drop` SIGKILLs all of them (also while a test panics, then it
//! prints their logs), and each process is spawned with `PR_SET_PDEATHSIG = SIGKILL` from a
//! thread that lives as long as the test process, so even a test binary killed with SIGKILL takes
//! its Redis processes with it.
//!
//! Ports are picked at random *below* the kernel's ephemeral range and checked by binding them:
//! ports from `bind(127.0.0.1:0)` come from the same range as the local ports of outgoing
//! connections, and the sentinels open many (reconnecting to a killed server every second), so
//! such a port could be taken while its server is down — or a sentinel could connect to itself
//! on it (TCP simultaneous open) and believe the server is back.

use std::{
    collections::{BTreeMap, HashSet},
    ffi::OsString,
    fs,
    io::{self, Read, Write},
    net::{TcpListener, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{mpsc, Mutex, OnceLock},
    time::{Duration, Instant},
};

/// The master name the sentinels monitor.
pub const MASTER_NAME: &str = "roomstate";
/// How long `start` and the default waits may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);
/// Sentinel `down-after-milliseconds`.
pub const DOWN_AFTER_MS: u64 = 1000;
/// Sentinel `failover-timeout` (a failed election is retried after twice this).
pub const FAILOVER_TIMEOUT_MS: u64 = 3000;

const REDIS_SERVER: &str = "redis-server";
/// Per-request timeout of the fixture's own Redis connections.
const IO_TIMEOUT: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(50);
/// Lines of each process's log that `logs()` returns.
const LOG_TAIL_LINES: usize = 80;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Server,
    Sentinel,
}

struct Proc {
    kind: Kind,
    name: String,
    port: u16,
    dir: PathBuf,
    /// Arguments for every start (a sentinel's config file comes first).
    args: Vec<OsString>,
    /// Extra arguments for the first start only (`--replicaof` of the initial replicas).
    first_args: Vec<OsString>,
    child: Option<Child>,
}

impl Proc {
    fn addr(&self) -> String {
        addr(self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(match self.kind {
            Kind::Server => "redis-server.log",
            Kind::Sentinel => "sentinel.log",
        })
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Why a process did not come up.
enum LaunchError {
    /// Its port was taken between choosing and binding it: choose others.
    PortInUse,
    Failed(String),
}

pub struct SentinelSet {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    servers: Vec<Proc>,
    sentinels: Vec<Proc>,
}

impl SentinelSet {
    /// Starts the set and returns once it is healthy (see `wait_healthy`).
    pub fn start() -> SentinelSet {
        require_redis_server();
        let begun = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut set = SentinelSet::create();
            match set.launch_all() {
                Ok(()) => {
                    set.wait_healthy(DEADLINE);
                    eprintln!(
                        "sentinel set started in {:?}: servers {:?}, sentinels {:?} ({})",
                        begun.elapsed(),
                        set.servers(),
                        set.sentinels(),
                        set.root.display()
                    );
                    return set;
                }
                Err(LaunchError::PortInUse) if attempt < 5 => {
                    eprintln!("sentinel set: a chosen port was taken meanwhile; retrying");
                }
                Err(LaunchError::PortInUse) => {
                    panic!("sentinel set: ports kept being taken\n{}", set.logs())
                }
                Err(LaunchError::Failed(why)) => {
                    panic!("sentinel set did not start: {why}\n{}", set.logs())
                }
            }
        }
    }

    fn create() -> SentinelSet {
        let tmp = tempfile::Builder::new()
            .prefix("roomstate-sentinel-")
            .tempdir()
            .expect("temp dir for the sentinel set");
        let root = tmp.path().to_path_buf();
        let ports = free_ports(6);
        let primary_port = ports[0];
        let servers = (0..3)
            .map(|i| {
                let port = ports[i];
                let dir = root.join(format!("redis-{i}"));
                fs::create_dir_all(&dir).expect("server dir");
                let args = server_args(port, &dir);
                let first_args = if i == 0 {
                    vec![]
                } else {
                    os_args(&["--replicaof", "127.0.0.1", &primary_port.to_string()])
                };
                Proc {
                    kind: Kind::Server,
                    name: format!("redis-{i}"),
                    port,
                    dir,
                    args,
                    first_args,
                    child: None,
                }
            })
            .collect();
        let sentinels = (0..3)
            .map(|i| {
                let port = ports[3 + i];
                let dir = root.join(format!("sentinel-{i}"));
                fs::create_dir_all(&dir).expect("sentinel dir");
                let conf = dir.join("sentinel.conf");
                fs::write(&conf, sentinel_config(port, &dir, primary_port))
                    .expect("sentinel config");
                Proc {
                    kind: Kind::Sentinel,
                    name: format!("sentinel-{i}"),
                    port,
                    dir,
                    args: vec![conf.into_os_string(), "--sentinel".into()],
                    first_args: vec![],
                    child: None,
                }
            })
            .collect();
        SentinelSet {
            _tmp: tmp,
            root,
            servers,
            sentinels,
        }
    }

    fn launch_all(&mut self) -> Result<(), LaunchError> {
        for i in 0..self.servers.len() {
            launch(&mut self.servers[i], true)?;
        }
        // The sentinels learn the replicas from the primary's INFO when they first connect (and
        // then only every 10 s), so the replicas must be attached before the sentinels start.
        let primary = self.servers[0].addr();
        let replicas: Vec<String> = self.servers[1..].iter().map(Proc::addr).collect();
        wait_until("both replicas online on the primary", DEADLINE, || {
            let online = online_replicas(&primary)?;
            missing(&replicas, &online)
        })
        .map_err(LaunchError::Failed)?;
        for i in 0..self.sentinels.len() {
            launch(&mut self.sentinels[i], true)?;
        }
        Ok(())
    }

    /// The sentinels' addresses.
    pub fn sentinels(&self) -> Vec<String> {
        self.sentinels.iter().map(Proc::addr).collect()
    }

    /// `127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`, for `ROOMSTATE__REDIS__SENTINELS`.
    pub fn sentinels_setting(&self) -> String {
        self.sentinels().join(",")
    }

    /// The primary the sentinels name now: the majority's answer, else the first one's.
    /// Panics if no sentinel answers.
    pub fn primary(&self) -> String {
        self.try_primary()
            .unwrap_or_else(|e| panic!("{e}\n{}", self.logs()))
    }

    /// The 3 redis-servers' addresses.
    pub fn servers(&self) -> Vec<String> {
        self.servers.iter().map(Proc::addr).collect()
    }

    /// `"master"` or `"slave"` from `ROLE`; `None` when the server does not answer within ~1 s.
    pub fn role(&self, addr: &str) -> Option<String> {
        role_of(addr).ok().map(|r| r.role)
    }

    /// Sends `DEBUG SLEEP secs` to the current primary without waiting for it to wake up (the
    /// command is on the wire when this returns); returns the primary's address.
    pub fn sleep_primary(&self, secs: u64) -> String {
        let primary = self.primary();
        let mut stream = TcpStream::connect_timeout(
            &primary.parse().expect("primary address"),
            Duration::from_secs(2),
        )
        .unwrap_or_else(|e| panic!("connecting to the primary {primary}: {e}\n{}", self.logs()));
        let secs = secs.to_string();
        let command = format!(
            "*3\r\n$5\r\nDEBUG\r\n$5\r\nSLEEP\r\n${}\r\n{secs}\r\n",
            secs.len()
        );
        stream
            .write_all(command.as_bytes())
            .unwrap_or_else(|e| panic!("sending DEBUG SLEEP to {primary}: {e}"));
        // Keep the connection open until the reply (or the server's death) in the background.
        let _ = stream.set_read_timeout(Some(Duration::from_secs(
            secs.parse::<u64>().unwrap_or(0) + 30,
        )));
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let _ = stream.read(&mut buf);
        });
        primary
    }

    /// SIGKILLs the current primary's process; returns its address.
    pub fn kill_primary(&mut self) -> String {
        let primary = self.primary();
        self.kill_server(&primary);
        primary
    }

    /// SIGKILLs one redis-server (no-op if it is not running).
    pub fn kill_server(&mut self, addr: &str) {
        self.server_mut(addr).kill();
    }

    /// Starts a killed redis-server again on the same port and dir (AOF keeps its data), as a
    /// replica of nobody: the sentinels reconfigure it. That takes ~10 s here: a sentinel
    /// demotes a server that claims "master" only after it has reported so for 8 s (hard-coded
    /// in Redis), and learns the role from INFO, sent to replicas every 10 s. Until then it
    /// refuses writes with `NOREPLICAS` (`min-replicas-to-write 1`).
    pub fn restart_server(&mut self, addr: &str) {
        let server = self.server_mut(addr);
        assert!(
            server.child.is_none(),
            "restart_server({addr}): it is still running; kill it first"
        );
        if let Err(e) = launch(server, false) {
            let why = match e {
                LaunchError::PortInUse => format!("port of {addr} is taken by someone else"),
                LaunchError::Failed(why) => why,
            };
            panic!("restarting {addr}: {why}\n{}", self.logs());
        }
    }

    /// SIGKILLs the 3 redis-servers; the sentinels stay: Redis fully down.
    pub fn stop_all_servers(&mut self) {
        for server in &mut self.servers {
            server.kill();
        }
    }

    /// Starts every stopped redis-server again (see `restart_server`).
    pub fn restart_all_servers(&mut self) {
        for addr in self.servers() {
            if self.server_mut(&addr).child.is_none() {
                self.restart_server(&addr);
            }
        }
    }

    /// `SENTINEL FAILOVER roomstate` on one sentinel (the first that accepts it; retried while
    /// they answer e.g. `-INPROG`, up to `DEADLINE`).
    pub fn manual_failover(&self) {
        let sentinels = self.sentinels();
        let result = wait_until("a sentinel to accept SENTINEL FAILOVER", DEADLINE, || {
            let mut errors = Vec::new();
            for s in &sentinels {
                match query::<String>(s, redis::cmd("SENTINEL").arg("FAILOVER").arg(MASTER_NAME)) {
                    Ok(_) => return Ok(()),
                    Err(e) => errors.push(format!("{s}: {e}")),
                }
            }
            Err(errors.join("; "))
        });
        if let Err(e) = result {
            panic!("{e}\n{}", self.logs());
        }
    }

    /// Waits until the sentinels name a primary other than `old` and that server's `ROLE` says
    /// master; returns it.
    pub fn wait_for_new_primary(&self, old: &str, deadline: Duration) -> String {
        let result = wait_until(&format!("a primary other than {old}"), deadline, || {
            // A majority, not the first sentinel that answers: one sentinel's view during an
            // election can name a replica that the election does not end up promoting.
            let primary = self.majority_primary()?;
            if primary == old {
                return Err(format!("the sentinels still name {old}"));
            }
            match role_of(&primary) {
                Ok(r) if r.role == "master" => Ok(primary),
                Ok(r) => Err(format!(
                    "the sentinels name {primary}, whose role is {}",
                    r.role
                )),
                Err(e) => Err(format!("the sentinels name {primary}, which fails: {e}")),
            }
        });
        result.unwrap_or_else(|e| panic!("{e}\n{}", self.logs()))
    }

    /// Waits until `addr` answers `ROLE` with `role` (`"master"` or `"slave"`).
    pub fn wait_for_role(&self, addr: &str, role: &str, deadline: Duration) {
        let result = wait_until(
            &format!("{addr} to have role {role}"),
            deadline,
            || match role_of(addr) {
                Ok(r) if r.role == role => Ok(()),
                Ok(r) => Err(format!("its role is {}", r.role)),
                Err(e) => Err(e),
            },
        );
        if let Err(e) = result {
            panic!("{e}\n{}", self.logs());
        }
    }

    /// Waits until the set is as after `start`: every sentinel names the same primary, which is
    /// a master with both other servers attached and online; each sentinel sees the primary as
    /// up with no failover under way, both replicas up and both other sentinels up (so a
    /// failover can win a majority right away). Returns the primary.
    pub fn wait_healthy(&self, deadline: Duration) -> String {
        wait_until("a healthy sentinel set", deadline, || self.health())
            .unwrap_or_else(|e| panic!("{e}\n{}", self.logs()))
    }

    /// The tail of every process's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for p in self.servers.iter().chain(&self.sentinels) {
            let log = fs::read_to_string(p.log_path()).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            out.push_str(&format!(
                "--- {} {} ({}, last {} lines) ---\n{}\n",
                p.name,
                p.addr(),
                if p.child.is_some() {
                    "running"
                } else {
                    "stopped"
                },
                tail.len(),
                tail.join("\n")
            ));
        }
        out
    }

    fn server_mut(&mut self, addr: &str) -> &mut Proc {
        let known = self.servers();
        self.servers
            .iter_mut()
            .find(|s| s.addr() == addr)
            .unwrap_or_else(|| panic!("{addr} is not one of this set's servers {known:?}"))
    }

    /// Like `primary`, as a `Result`.
    fn try_primary(&self) -> Result<String, String> {
        let mut answers = Vec::new();
        let mut errors = Vec::new();
        for s in self.sentinels() {
            match master_addr(&s) {
                Ok(a) => answers.push(a),
                Err(e) => errors.push(format!("{s}: {e}")),
            }
        }
        let majority = answers
            .iter()
            .find(|a| answers.iter().filter(|b| b == a).count() * 2 > self.sentinels.len());
        majority
            .or(answers.first())
            .cloned()
            .ok_or_else(|| format!("no sentinel names a primary ({})", errors.join("; ")))
    }

    /// The primary a majority of the sentinels name.
    fn majority_primary(&self) -> Result<String, String> {
        let answers: Vec<String> = self
            .sentinels()
            .iter()
            .filter_map(|s| master_addr(s).ok())
            .collect();
        answers
            .iter()
            .find(|a| answers.iter().filter(|b| b == a).count() * 2 > self.sentinels.len())
            .cloned()
            .ok_or_else(|| format!("no majority of the sentinels names one primary: {answers:?}"))
    }

    /// `Ok(primary)` when healthy, else what is still missing.
    fn health(&self) -> Result<String, String> {
        let servers = self.servers();
        let sentinels = self.sentinels();
        let mut named = Vec::new();
        for s in &sentinels {
            named.push(master_addr(s).map_err(|e| format!("sentinel {s}: {e}"))?);
        }
        let primary = named[0].clone();
        if named.iter().any(|n| *n != primary) {
            return Err(format!("the sentinels disagree on the primary: {named:?}"));
        }
        if !servers.contains(&primary) {
            return Err(format!(
                "the sentinels name {primary}, not one of {servers:?}"
            ));
        }
        let replicas: Vec<String> = servers.into_iter().filter(|s| *s != primary).collect();

        let role = role_of(&primary).map_err(|e| format!("primary {primary}: {e}"))?;
        if role.role != "master" {
            return Err(format!("primary {primary} has role {}", role.role));
        }
        let online = online_replicas(&primary)?;
        missing(&replicas, &online).map_err(|e| format!("primary {primary}: {e}"))?;
        for r in &replicas {
            let role = role_of(r).map_err(|e| format!("replica {r}: {e}"))?;
            if role.role != "slave"
                || role.master.as_deref() != Some(primary.as_str())
                || role.state.as_deref() != Some("connected")
            {
                return Err(format!("replica {r}: ROLE says {role:?}"));
            }
        }

        for s in &sentinels {
            let master = fields(&query::<Vec<String>>(
                s,
                redis::cmd("SENTINEL").arg("MASTER").arg(MASTER_NAME),
            )?);
            let flags = master.get("flags").map(String::as_str).unwrap_or("?");
            if flags != "master" {
                return Err(format!("sentinel {s}: the primary's flags are {flags}"));
            }
            let seen: Vec<BTreeMap<String, String>> = query::<Vec<Vec<String>>>(
                s,
                redis::cmd("SENTINEL").arg("REPLICAS").arg(MASTER_NAME),
            )?
            .iter()
            .map(|r| fields(r))
            .collect();
            for r in &replicas {
                let entry = seen
                    .iter()
                    .find(|e| e.get("name") == Some(r))
                    .ok_or_else(|| format!("sentinel {s} does not know replica {r} yet"))?;
                let flags = entry.get("flags").map(String::as_str).unwrap_or("?");
                if flags != "slave" {
                    return Err(format!("sentinel {s}: replica {r} has flags {flags}"));
                }
            }
            let others: Vec<BTreeMap<String, String>> = query::<Vec<Vec<String>>>(
                s,
                redis::cmd("SENTINEL").arg("SENTINELS").arg(MASTER_NAME),
            )?
            .iter()
            .map(|r| fields(r))
            .collect();
            let up = others
                .iter()
                .filter(|o| o.get("flags").map(String::as_str) == Some("sentinel"))
                .count();
            if up < sentinels.len() - 1 {
                return Err(format!(
                    "sentinel {s} sees {up} other sentinels up ({} known)",
                    others.len()
                ));
            }
        }
        Ok(primary)
    }
}

impl Drop for SentinelSet {
    fn drop(&mut self) {
        for p in self.sentinels.iter_mut().chain(self.servers.iter_mut()) {
            p.kill();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- sentinel set ({}) ---\n{}",
                self.root.display(),
                self.logs()
            );
        }
    }
}

/// Panics, saying what to run, when `redis-server` cannot be started.
fn require_redis_server() {
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

fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

fn os_args(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

fn server_args(port: u16, dir: &Path) -> Vec<OsString> {
    let mut args = os_args(&["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"]);
    args.push(dir.as_os_str().to_owned());
    args.extend(os_args(&[
        "--daemonize",
        "no",
        "--appendonly",
        "yes",
        "--save",
        "",
        "--enable-debug-command",
        "local",
        "--repl-diskless-sync-delay",
        "0",
        "--min-replicas-to-write",
        "1",
        "--min-replicas-max-lag",
        "2",
    ]));
    args
}

/// A sentinel's config, written fresh (never holding a `sentinel myid` line: each sentinel
/// generates its own id and rewrites this file).
fn sentinel_config(port: u16, dir: &Path, primary_port: u16) -> String {
    format!(
        "port {port}\n\
         bind 127.0.0.1\n\
         daemonize no\n\
         dir \"{dir}\"\n\
         sentinel monitor {MASTER_NAME} 127.0.0.1 {primary_port} 2\n\
         sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
         sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n\
         sentinel parallel-syncs {MASTER_NAME} 1\n",
        dir = dir.display()
    )
}

/// Starts `p` and waits until it answers `PING` (a server loading its AOF answers `-LOADING`).
fn launch(p: &mut Proc, first: bool) -> Result<(), LaunchError> {
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
        match query::<String>(&addr, &mut redis::cmd("PING")) {
            Ok(_) => return Ok(()),
            Err(e) if begun.elapsed() > DEADLINE => {
                p.kill();
                return Err(LaunchError::Failed(format!(
                    "{} on {addr} did not answer PING within {DEADLINE:?}: {e}",
                    p.name
                )));
            }
            Err(_) => std::thread::sleep(POLL),
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

/// `n` distinct free loopback ports, chosen below the ephemeral range (see the module docs),
/// never handed out twice by this process.
fn free_ports(n: usize) -> Vec<u16> {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let ephemeral_low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_low);
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed = handed.get_or_insert_with(HashSet::new);
    let mut listeners = Vec::new();
    let mut ports = Vec::new();
    let mut tries = 0;
    while ports.len() < n {
        tries += 1;
        let port = if high > low + 1000 && tries < 10_000 {
            low + (rand::random::<u32>() % u32::from(high - low)) as u16
        } else {
            0
        };
        if port != 0 && handed.contains(&port) {
            continue;
        }
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            let port = l.local_addr().expect("local addr").port();
            if !handed.contains(&port) && !ports.contains(&port) {
                ports.push(port);
                listeners.push(l);
            }
        }
    }
    handed.extend(&ports);
    ports
}

/// Polls `probe` every 50 ms until it returns `Ok`, or returns the last error after `deadline`.
fn wait_until<T>(
    what: &str,
    deadline: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let begun = Instant::now();
    loop {
        match probe() {
            Ok(v) => return Ok(v),
            Err(e) if begun.elapsed() > deadline => {
                return Err(format!(
                    "timed out after {deadline:?} waiting for {what}; last: {e}"
                ))
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// One command on a fresh connection with ~1 s timeouts; any failure as text.
fn query<T: redis::FromRedisValue>(addr: &str, cmd: &mut redis::Cmd) -> Result<T, String> {
    let client = redis::Client::open(format!("redis://{addr}/")).map_err(|e| e.to_string())?;
    let mut con = client
        .get_connection_with_timeout(IO_TIMEOUT)
        .map_err(|e| format!("connect: {e}"))?;
    con.set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| con.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    cmd.query(&mut con).map_err(|e| e.to_string())
}

#[derive(Debug)]
struct Role {
    role: String,
    /// A replica's primary, `ip:port`.
    master: Option<String>,
    /// A replica's link state: `connect`, `connecting`, `sync` or `connected`.
    state: Option<String>,
}

fn role_of(addr: &str) -> Result<Role, String> {
    let reply = query::<Vec<redis::Value>>(addr, &mut redis::cmd("ROLE"))?;
    let text = |i: usize| -> Option<String> {
        reply
            .get(i)
            .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
    };
    let role = text(0).ok_or_else(|| format!("odd ROLE reply {reply:?}"))?;
    if role == "slave" {
        Ok(Role {
            role,
            master: Some(format!(
                "{}:{}",
                text(1).unwrap_or_default(),
                text(2).unwrap_or_default()
            )),
            state: text(3),
        })
    } else {
        Ok(Role {
            role,
            master: None,
            state: None,
        })
    }
}

/// `SENTINEL get-master-addr-by-name roomstate` as `ip:port`.
fn master_addr(sentinel: &str) -> Result<String, String> {
    let reply = query::<Option<Vec<String>>>(
        sentinel,
        redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(MASTER_NAME),
    )?;
    match reply.as_deref() {
        Some([ip, port]) => Ok(format!("{ip}:{port}")),
        other => Err(format!("odd get-master-addr-by-name reply {other:?}")),
    }
}

/// The replicas that `INFO replication` on `primary` lists as online, as `ip:port`.
fn online_replicas(primary: &str) -> Result<Vec<String>, String> {
    let info = query::<String>(primary, redis::cmd("INFO").arg("replication"))?;
    Ok(info
        .lines()
        .filter(|l| l.starts_with("slave") && l.contains(':'))
        .filter_map(|l| {
            let kv: BTreeMap<&str, &str> = l
                .split_once(':')?
                .1
                .split(',')
                .filter_map(|f| f.split_once('='))
                .collect();
            if kv.get("state") != Some(&"online") {
                return None;
            }
            Some(format!("{}:{}", kv.get("ip")?, kv.get("port")?))
        })
        .collect())
}

fn missing(wanted: &[String], have: &[String]) -> Result<(), String> {
    let missing: Vec<&String> = wanted.iter().filter(|w| !have.contains(w)).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "replicas not online: {missing:?} (online: {have:?})"
        ))
    }
}

/// A sentinel reply's flat `[key, value, ...]` list as a map.
fn fields(flat: &[String]) -> BTreeMap<String, String> {
    flat.chunks(2)
        .filter_map(|kv| match kv {
            [k, v] => Some((k.clone(), v.clone())),
            _ => None,
        })
        .collect()
}

/// A standalone Redis (no replicas, no sentinels) for the plain-URL journal, with every write
/// fsynced (`appendfsync always`): without replicas to `WAIT` for, that is what makes an
/// acknowledged write survive a `kill -9`.
pub struct RedisServer {
    _tmp: tempfile::TempDir,
    server: Proc,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        require_redis_server();
        for _ in 0..5 {
            let tmp = tempfile::Builder::new()
                .prefix("roomstate-redis-")
                .tempdir()
                .expect("temp dir for redis");
            let port = free_ports(1)[0];
            let dir = tmp.path().to_path_buf();
            let mut args = os_args(&["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"]);
            args.push(dir.as_os_str().to_owned());
            args.extend(os_args(&[
                "--daemonize",
                "no",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ]));
            let mut server = Proc {
                kind: Kind::Server,
                name: "redis".into(),
                port,
                dir,
                args,
                first_args: vec![],
                child: None,
            };
            match launch(&mut server, true) {
                Ok(()) => return RedisServer { _tmp: tmp, server },
                Err(LaunchError::PortInUse) => continue,
                Err(LaunchError::Failed(why)) => panic!("redis did not start: {why}"),
            }
        }
        panic!("redis: ports kept being taken");
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.server.addr())
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        self.server.kill();
    }

    /// Starts the killed server again on the same port and data.
    pub fn restart(&mut self) {
        match launch(&mut self.server, false) {
            Ok(()) => {}
            Err(LaunchError::PortInUse) => panic!("redis did not restart: its port was taken"),
            Err(LaunchError::Failed(why)) => panic!("redis did not restart: {why}"),
        }
    }

    /// Keys matching `pattern`.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        query(&self.server.addr(), redis::cmd("KEYS").arg(pattern)).expect("KEYS")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.server.kill();
    }
}
