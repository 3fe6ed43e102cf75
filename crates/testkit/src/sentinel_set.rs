//! `SentinelSet`: a hermetic Redis sentinel set of the test's own — 1 primary, 2 replicas and 3
//! sentinels (master name `roomstate`) on free loopback ports in a fresh temp dir — so failover
//! tests can `DEBUG SLEEP`, kill and restart servers without disturbing other tests.
//! `SentinelSet::start()` is the production-like set; `SentinelSet::builder()` changes what a test
//! needs changed (the servers' `min-replicas-to-write`; passwords, an ACL user and TLS through
//! `Security`, with the fixture's own queries authenticating and using TLS too, and
//! `engine_settings` giving the engine what it needs to get in).
//!
//! Every wait is on a condition with a deadline; none is a bare sleep. A missing `redis-server` is
//! a failure that says what to run (`scripts/ensure-redis`), never a silent skip. Its processes
//! die with it (see `process`).

use std::{
    collections::BTreeMap,
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use roomstate_journal::{access, redis::RedisAccess};

use crate::{
    certs::TestCerts,
    ports::free_ports,
    process::{launch, os_args, require_redis_server, Kind, LaunchError, Proc},
    redis_admin::{
        self, fields, missing, named_primaries, online_replicas, query, role_of, wait_until,
    },
    redis_security::Security,
};

/// The master name the sentinels monitor.
pub const MASTER_NAME: &str = "roomstate";
/// How long `start` and the default waits may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);
/// Sentinel `down-after-milliseconds`.
pub const DOWN_AFTER_MS: u64 = 1000;
/// Sentinel `failover-timeout` (a failed election is retried after twice this).
pub const FAILOVER_TIMEOUT_MS: u64 = 3000;

/// The servers' `min-replicas-to-write` unless a test says otherwise: a deposed primary that
/// lost its replicas refuses writes (`NOREPLICAS`), as in production.
pub const DEFAULT_MIN_REPLICAS_TO_WRITE: u32 = 1;

pub struct SentinelSet {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    servers: Vec<Proc>,
    sentinels: Vec<Proc>,
    security: Security,
    certs: Option<TestCerts>,
    /// A manual failover asked for and not seen through yet: the primary it moves away from,
    /// and when it was last asked for.
    manual: std::sync::Mutex<Option<(String, Instant)>>,
}

/// How long a manual failover may take before it is asked for again: a sentinel aborts one
/// whose replica it does not see promoted within the failover timeout (another sentinel, not
/// yet told of the new epoch, can turn the promoted replica back in that window); twice that,
/// and a little, leaves the sentinels time to agree on the outcome first.
const MANUAL_FAILOVER_RETRY: Duration = Duration::from_millis(2 * FAILOVER_TIMEOUT_MS + 2000);

/// Configures a `SentinelSet` before it starts.
#[derive(Debug, Clone)]
pub struct Builder {
    min_replicas_to_write: u32,
    security: Security,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            min_replicas_to_write: DEFAULT_MIN_REPLICAS_TO_WRITE,
            security: Security::none(),
        }
    }
}

impl Builder {
    /// The servers' `min-replicas-to-write`. 0 lets a primary without replicas take writes, so
    /// nothing but the writer's own `WAIT` count can tell that no replica holds them.
    pub fn min_replicas_to_write(mut self, n: u32) -> Self {
        self.min_replicas_to_write = n;
        self
    }

    /// Passwords, an ACL user, TLS (see `Security`).
    pub fn security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    /// Starts the set and returns once it is healthy (see `SentinelSet::wait_healthy`).
    pub async fn start(self) -> SentinelSet {
        require_redis_server();
        self.security.check();
        let begun = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut set = SentinelSet::create(&self);
            match set.launch_all().await {
                Ok(()) => {
                    set.wait_healthy(DEADLINE).await;
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
}

impl SentinelSet {
    /// Starts a set with the default settings and returns once it is healthy (see
    /// `wait_healthy`).
    pub async fn start() -> SentinelSet {
        SentinelSet::builder().start().await
    }

    /// A set to configure before it starts.
    pub fn builder() -> Builder {
        Builder::default()
    }

    fn create(settings: &Builder) -> SentinelSet {
        let tmp = tempfile::Builder::new()
            .prefix("roomstate-sentinel-")
            .tempdir()
            .expect("temp dir for the sentinel set");
        let root = tmp.path().to_path_buf();
        let security = settings.security.clone();
        let certs = security.certs(&root.join("tls"));
        let ports = free_ports(6);
        let primary_port = ports[0];
        let servers: Vec<Proc> = (0..3)
            .map(|i| {
                let port = ports[i];
                let dir = root.join(format!("redis-{i}"));
                fs::create_dir_all(&dir).expect("server dir");
                let mut args = security.server_args(port, certs.as_ref());
                args.extend(server_args(&dir, settings.min_replicas_to_write));
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
        let sentinels: Vec<Proc> = (0..3)
            .map(|i| {
                let port = ports[3 + i];
                let dir = root.join(format!("sentinel-{i}"));
                fs::create_dir_all(&dir).expect("sentinel dir");
                let conf = dir.join("sentinel.conf");
                let config = format!(
                    "{}{}{}",
                    security.sentinel_lines(port, certs.as_ref()),
                    sentinel_config(&dir, primary_port),
                    security.sentinel_master_lines(MASTER_NAME)
                );
                fs::write(&conf, config).expect("sentinel config");
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
        for server in &servers {
            redis_admin::register(&server.addr(), security.admin_server_access(certs.as_ref()));
        }
        for sentinel in &sentinels {
            redis_admin::register(
                &sentinel.addr(),
                security.admin_sentinel_access(certs.as_ref()),
            );
        }
        SentinelSet {
            _tmp: tmp,
            root,
            servers,
            sentinels,
            security,
            certs,
            manual: std::sync::Mutex::new(None),
        }
    }

    async fn launch_all(&mut self) -> Result<(), LaunchError> {
        for i in 0..self.servers.len() {
            launch(&mut self.servers[i], true).await?;
        }
        // The sentinels learn the replicas from the primary's INFO when they first connect (and
        // then only every 10 s), so the replicas must be attached before the sentinels start.
        let primary = self.servers[0].addr();
        let replicas: Vec<String> = self.servers[1..].iter().map(Proc::addr).collect();
        wait_until("both replicas online on the primary", DEADLINE, || async {
            let online = online_replicas(&primary).await?;
            missing(&replicas, &online)
        })
        .await
        .map_err(LaunchError::Failed)?;
        for i in 0..self.sentinels.len() {
            launch(&mut self.sentinels[i], true).await?;
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

    /// Everything the engine needs to use this set (keys without `ROOMSTATE__`, for
    /// `TestApp`'s builder): `REDIS__SENTINELS`, and the credentials and TLS settings of its
    /// `Security`. A test that wants a wrong password sets the key again after these.
    pub fn engine_settings(&self) -> Vec<(String, String)> {
        let mut settings = vec![("REDIS__SENTINELS".to_owned(), self.sentinels_setting())];
        settings.extend(self.security.engine_settings(self.certs.as_ref()));
        settings
    }

    /// How a `RedisJournal` gets into this set (`RedisJournalConfig::access`).
    pub fn journal_access(&self) -> RedisAccess {
        let sentinels = self.security.admin_sentinel_access(self.certs.as_ref());
        debug_assert_eq!(sentinels.role(), access::Role::Sentinel);
        RedisAccess {
            servers: self.security.client_server_access(self.certs.as_ref()),
            sentinels,
        }
    }

    /// The locks this set runs with.
    pub fn security(&self) -> &Security {
        &self.security
    }

    /// The CA that signed the servers' and sentinels' certificates, with TLS.
    pub fn tls_ca_file(&self) -> Option<&Path> {
        self.certs.as_ref().map(|c| c.ca.as_path())
    }

    /// The primary the sentinels name now: the majority's answer, else the first one's.
    /// Panics if no sentinel answers.
    pub async fn primary(&self) -> String {
        self.try_primary()
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", self.logs()))
    }

    /// The 3 redis-servers' addresses.
    pub fn servers(&self) -> Vec<String> {
        self.servers.iter().map(Proc::addr).collect()
    }

    /// `"master"` or `"slave"` from `ROLE`; `None` when the server does not answer within ~1 s.
    pub async fn role(&self, addr: &str) -> Option<String> {
        role_of(addr).await.ok().map(|r| r.role)
    }

    /// Sends `DEBUG SLEEP secs` to the current primary without waiting for it to wake up (the
    /// command is on the wire when this returns); returns the primary's address. The connection
    /// authenticates (the `default` user) and uses TLS as the set does.
    pub async fn sleep_primary(&self, secs: u64) -> String {
        let primary = self.primary().await;
        let access = redis_admin::access_for(&primary);
        let mut conn = access
            .client(&primary)
            .map_err(|e| e.to_string())
            .and_then(|client| {
                client
                    .get_connection_with_timeout(Duration::from_secs(2))
                    .map_err(|e| access.describe(&e))
            })
            .unwrap_or_else(|e| {
                panic!("connecting to the primary {primary}: {e}\n{}", self.logs())
            });
        let command = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(secs)
            .get_packed_command();
        conn.send_packed_command(&command)
            .unwrap_or_else(|e| panic!("sending DEBUG SLEEP to {primary}: {e}"));
        // Keep the connection open until the reply (or the server's death) in the background.
        let _ = conn.set_read_timeout(Some(Duration::from_secs(secs + 30)));
        std::thread::spawn(move || {
            let _ = conn.recv_response();
        });
        primary
    }

    /// SIGKILLs the current primary's process; returns its address.
    pub async fn kill_primary(&mut self) -> String {
        let primary = self.primary().await;
        self.kill_server(&primary);
        primary
    }

    /// SIGKILLs one redis-server (no-op if it is not running).
    pub fn kill_server(&mut self, addr: &str) {
        self.server_mut(addr).kill();
    }

    /// The servers other than the primary the sentinels name now.
    pub async fn replicas(&self) -> Vec<String> {
        let primary = self.primary().await;
        self.servers()
            .into_iter()
            .filter(|s| *s != primary)
            .collect()
    }

    /// SIGKILLs every server but the primary, then waits until the primary lists no replica
    /// online (it has seen their links close, so nothing it takes from now on reaches a
    /// replica); returns the killed servers' addresses. The sentinels leave the primary alone:
    /// it is up.
    pub async fn kill_replicas(&mut self) -> Vec<String> {
        let primary = self.primary().await;
        let replicas: Vec<String> = self
            .servers()
            .into_iter()
            .filter(|s| *s != primary)
            .collect();
        for replica in &replicas {
            self.kill_server(replica);
        }
        let result = wait_until(
            &format!("the primary {primary} to list no replica online"),
            DEADLINE,
            || async {
                let online = online_replicas(&primary).await?;
                if online.is_empty() {
                    Ok(())
                } else {
                    Err(format!("it still lists {online:?}"))
                }
            },
        )
        .await;
        if let Err(e) = result {
            panic!("{e}\n{}", self.logs());
        }
        replicas
    }

    /// Starts a killed redis-server again on the same port and dir (AOF keeps its data), as a
    /// replica of nobody: the sentinels reconfigure it. That takes ~10 s here: a sentinel
    /// demotes a server that claims "master" only after it has reported so for 8 s (hard-coded
    /// in Redis), and learns the role from INFO, sent to replicas every 10 s. Until then it
    /// refuses writes with `NOREPLICAS` (unless the set was started with
    /// `min_replicas_to_write(0)`).
    pub async fn restart_server(&mut self, addr: &str) {
        let server = self.server_mut(addr);
        assert!(
            server.child.is_none(),
            "restart_server({addr}): it is still running; kill it first"
        );
        if let Err(e) = launch(server, false).await {
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
    pub async fn restart_all_servers(&mut self) {
        for addr in self.servers() {
            if self.server_mut(&addr).child.is_none() {
                self.restart_server(&addr).await;
            }
        }
    }

    /// `SENTINEL FAILOVER roomstate` on one sentinel (the first that accepts it; retried while
    /// they answer e.g. `-INPROG`, up to `DEADLINE`). `wait_for_new_primary` (or
    /// `nudge_manual_failover`) asks again if the sentinels abort it.
    pub async fn manual_failover(&self) {
        let old = self.majority_primary().await.ok();
        self.ask_for_failover(self.sentinels()).await;
        if let Some(old) = old {
            *self.manual_lock() = Some((old, Instant::now()));
        }
    }

    /// Asks for the manual failover again if one was asked for long enough ago and a majority
    /// of the sentinels still names the primary it was to move away from (the sentinels
    /// aborted it); forgets it once they name another.
    pub async fn nudge_manual_failover(&self) {
        let Some((old, asked)) = self.manual_lock().clone() else {
            return;
        };
        match self.majority_primary().await {
            Ok(primary) if primary != old => *self.manual_lock() = None,
            Ok(_) if asked.elapsed() >= MANUAL_FAILOVER_RETRY => {
                eprintln!(
                    "the manual failover away from {old} did not happen within {:?} (aborted by \
                     the sentinels?): asking again",
                    asked.elapsed()
                );
                // Only a sentinel that still sees `old` as primary: one that already follows a
                // new primary would fail that one over in turn.
                let named = named_primaries(&self.sentinels(), MASTER_NAME).await;
                let behind: Vec<String> = (self.sentinels().into_iter().zip(named))
                    .filter(|(_, primary)| primary.as_deref() == Some(old.as_str()))
                    .map(|(sentinel, _)| sentinel)
                    .collect();
                self.ask_for_failover(behind).await;
                *self.manual_lock() = Some((old, Instant::now()));
            }
            _ => {}
        }
    }

    fn manual_lock(&self) -> std::sync::MutexGuard<'_, Option<(String, Instant)>> {
        self.manual
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn ask_for_failover(&self, sentinels: Vec<String>) {
        let result = wait_until(
            "a sentinel to accept SENTINEL FAILOVER",
            DEADLINE,
            || async {
                let mut errors = Vec::new();
                for s in &sentinels {
                    let failover = redis::cmd("SENTINEL")
                        .arg("FAILOVER")
                        .arg(MASTER_NAME)
                        .clone();
                    match query::<String>(s, &failover).await {
                        Ok(_) => return Ok(()),
                        Err(e) => errors.push(format!("{s}: {e}")),
                    }
                }
                Err(errors.join("; "))
            },
        )
        .await;
        if let Err(e) = result {
            panic!("{e}\n{}", self.logs());
        }
    }

    /// Waits until the sentinels name a primary other than `old` and that server's `ROLE` says
    /// master; returns it.
    pub async fn wait_for_new_primary(&self, old: &str, deadline: Duration) -> String {
        let result = wait_until(&format!("a primary other than {old}"), deadline, || async {
            // A majority, not the first sentinel that answers: one sentinel's view during an
            // election can name a replica that the election does not end up promoting.
            let primary = self.majority_primary().await?;
            if primary == old {
                self.nudge_manual_failover().await;
                return Err(format!("the sentinels still name {old}"));
            }
            match role_of(&primary).await {
                Ok(r) if r.role == "master" => Ok(primary),
                Ok(r) => Err(format!(
                    "the sentinels name {primary}, whose role is {}",
                    r.role
                )),
                Err(e) => Err(format!("the sentinels name {primary}, which fails: {e}")),
            }
        })
        .await;
        result.unwrap_or_else(|e| panic!("{e}\n{}", self.logs()))
    }

    /// Waits until `addr` answers `ROLE` with `role` (`"master"` or `"slave"`).
    pub async fn wait_for_role(&self, addr: &str, role: &str, deadline: Duration) {
        let result = wait_until(&format!("{addr} to have role {role}"), deadline, || async {
            match role_of(addr).await {
                Ok(r) if r.role == role => Ok(()),
                Ok(r) => Err(format!("its role is {}", r.role)),
                Err(e) => Err(e),
            }
        })
        .await;
        if let Err(e) = result {
            panic!("{e}\n{}", self.logs());
        }
    }

    /// Waits until the set is as after `start`: every sentinel names the same primary, which is
    /// a master with both other servers attached and online; each sentinel sees the primary as
    /// up with no failover under way, both replicas up and both other sentinels up (so a
    /// failover can win a majority right away). Returns the primary.
    pub async fn wait_healthy(&self, deadline: Duration) -> String {
        wait_until("a healthy sentinel set", deadline, || self.health())
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", self.logs()))
    }

    /// The tail of every process's log, for failure messages.
    pub fn logs(&self) -> String {
        self.servers
            .iter()
            .chain(&self.sentinels)
            .map(Proc::log_tail)
            .collect()
    }

    fn server_mut(&mut self, addr: &str) -> &mut Proc {
        let known = self.servers();
        self.servers
            .iter_mut()
            .find(|s| s.addr() == addr)
            .unwrap_or_else(|| panic!("{addr} is not one of this set's servers {known:?}"))
    }

    /// Like `primary`, as a `Result`.
    async fn try_primary(&self) -> Result<String, String> {
        let answers: Vec<String> = named_primaries(&self.sentinels(), MASTER_NAME)
            .await
            .into_iter()
            .flatten()
            .collect();
        let majority = answers
            .iter()
            .find(|a| answers.iter().filter(|b| b == a).count() * 2 > self.sentinels.len());
        majority
            .or(answers.first())
            .cloned()
            .ok_or_else(|| "no sentinel names a primary".to_owned())
    }

    /// The primary a majority of the sentinels name.
    async fn majority_primary(&self) -> Result<String, String> {
        let answers: Vec<String> = named_primaries(&self.sentinels(), MASTER_NAME)
            .await
            .into_iter()
            .flatten()
            .collect();
        answers
            .iter()
            .find(|a| answers.iter().filter(|b| b == a).count() * 2 > self.sentinels.len())
            .cloned()
            .ok_or_else(|| format!("no majority of the sentinels names one primary: {answers:?}"))
    }

    /// `Ok(primary)` when healthy, else what is still missing.
    async fn health(&self) -> Result<String, String> {
        let servers = self.servers();
        let sentinels = self.sentinels();
        let mut named = Vec::new();
        for (s, answer) in sentinels
            .iter()
            .zip(named_primaries(&sentinels, MASTER_NAME).await)
        {
            named.push(answer.ok_or_else(|| format!("sentinel {s} names no primary"))?);
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

        let role = role_of(&primary)
            .await
            .map_err(|e| format!("primary {primary}: {e}"))?;
        if role.role != "master" {
            return Err(format!("primary {primary} has role {}", role.role));
        }
        let online = online_replicas(&primary).await?;
        missing(&replicas, &online).map_err(|e| format!("primary {primary}: {e}"))?;
        for r in &replicas {
            let role = role_of(r).await.map_err(|e| format!("replica {r}: {e}"))?;
            if role.role != "slave"
                || role.master.as_deref() != Some(primary.as_str())
                || role.state.as_deref() != Some("connected")
            {
                return Err(format!("replica {r}: ROLE says {role:?}"));
            }
        }

        for s in &sentinels {
            let master = fields(
                &query::<Vec<String>>(s, redis::cmd("SENTINEL").arg("MASTER").arg(MASTER_NAME))
                    .await?,
            );
            let flags = master.get("flags").map(String::as_str).unwrap_or("?");
            if flags != "master" {
                return Err(format!("sentinel {s}: the primary's flags are {flags}"));
            }
            let seen: Vec<BTreeMap<String, String>> = query::<Vec<Vec<String>>>(
                s,
                redis::cmd("SENTINEL").arg("REPLICAS").arg(MASTER_NAME),
            )
            .await?
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
            )
            .await?
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
            redis_admin::forget(&p.addr());
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

/// A server's arguments after those of its port and locks (`Security::server_args`).
fn server_args(dir: &Path, min_replicas_to_write: u32) -> Vec<OsString> {
    let mut args = os_args(&["--bind", "127.0.0.1", "--dir"]);
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
        &min_replicas_to_write.to_string(),
        "--min-replicas-max-lag",
        "2",
    ]));
    args
}

/// A sentinel's config after its port and locks (`Security::sentinel_lines`), written fresh
/// (never holding a `sentinel myid` line: each sentinel generates its own id and rewrites this
/// file); the master's credentials (`Security::sentinel_master_lines`) follow it.
fn sentinel_config(dir: &Path, primary_port: u16) -> String {
    format!(
        "bind 127.0.0.1\n\
         daemonize no\n\
         dir \"{dir}\"\n\
         sentinel monitor {MASTER_NAME} 127.0.0.1 {primary_port} 2\n\
         sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
         sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n\
         sentinel parallel-syncs {MASTER_NAME} 1\n",
        dir = dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A manual failover the sentinels did not carry out (as when they abort it) is asked for
    /// again by whoever waits for the new primary.
    #[actix_rt::test]
    async fn a_manual_failover_that_did_not_happen_is_asked_for_again() {
        let set = SentinelSet::start().await;
        let old = set.primary().await;
        // As if asked for long ago, and aborted: no failover is under way.
        *set.manual_lock() = Some((old.clone(), Instant::now() - MANUAL_FAILOVER_RETRY));
        let new = set
            .wait_for_new_primary(&old, Duration::from_secs(60))
            .await;
        assert_ne!(new, old);
        set.nudge_manual_failover().await;
        assert!(set.manual_lock().is_none(), "seen through: forgotten");
    }
}
