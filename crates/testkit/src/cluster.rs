//! `TestCluster`: several `roomstate` engines run as one cluster (docs/api.md "A cluster of
//! engines") on a sentinel set of the test's own and one SQL store — each node an `EngineProcess`
//! on a free loopback port of its own (its advertise URL), with its own data dir and log, the
//! cluster's settings (a per-test secret, a short lease) and nothing else of the caller's
//! environment.
//!
//! The test breaks nodes the ways production does: `kill` (SIGKILL), `pause` / `resume`
//! (SIGSTOP / SIGCONT), `terminate` (SIGTERM, waiting for the exit status), and `restart` on the
//! same port, id and data dir. A `Roster`, shared with the test's client tasks, says which nodes
//! are up, so a client whose node went away picks another one. Every wait is on a condition with
//! a deadline (`wait_all_in_cluster`, `wait_for_owner_other_than`) and fails saying what it
//! waited for and what it saw last; none is a bare sleep. Dropping the cluster kills every node
//! (or terminates them, with `DropPolicy::Terminate`), and a failing test gets each node's log.

use std::{
    path::{Path, PathBuf},
    process::ExitStatus,
    sync::{Arc, Mutex},
    time::Duration,
};

use awc::{http::StatusCode, Client};
use serde_json::Value;

use crate::{
    app::{answered_close, eventually, TOKEN},
    engine::{DropPolicy, EngineProcess},
    ports::free_ports,
    redis_admin::wait_until,
    sentinel_set::SentinelSet,
};

/// The header that authenticates node-to-node calls (`/internal/cluster/...`).
pub const SECRET_HEADER: &str = "X-Roomstate-Cluster-Secret";
/// The lease a test cluster runs with unless the test says otherwise: short, so takeovers come
/// quickly, and long enough that a loaded 2-core machine does not lose leases by itself.
pub const DEFAULT_LEASE_MS: u64 = 1500;
/// How long a node may take to print its listening line.
pub const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long the cluster may take to agree (membership, ownership) before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// How long a node may take to exit after SIGTERM (it hands its rooms over first).
pub const EXIT_DEADLINE: Duration = Duration::from_secs(60);
/// How long one HTTP call of the fixture's own probes may take (a paused node never answers).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one HTTP call of the test may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines of each node's log that a failing test shows.
const LOG_TAIL_LINES: usize = 200;
/// Starts of one node on a port that turned out to be taken, before giving up.
const PORT_ATTEMPTS: usize = 5;

/// What the test has done to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Running (as far as the test knows: a node may still be joining).
    Up,
    /// SIGSTOPped: its sockets stay open and silent; a new connection would hang.
    Paused,
    /// Killed, or exited after SIGTERM.
    Down,
}

/// Who owns a room, as `GET /admin/rooms/{id}/owner` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub room: String,
    /// The owner's node id.
    pub node: String,
    /// The lease's fencing epoch; it only grows.
    pub epoch: u64,
}

impl Owner {
    fn parse(body: &Value) -> Result<Owner, String> {
        let field = |name: &str| {
            body[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("no string `{name}` in {body}"))
        };
        Ok(Owner {
            room: field("room")?,
            node: field("node")?,
            epoch: body["epoch"]
                .as_u64()
                .ok_or_else(|| format!("no integer `epoch` in {body}"))?,
        })
    }
}

/// The nodes' addresses and states, shared with the test's client tasks: a client that lost its
/// node asks it for another one that is up. Cheap to clone; the cluster keeps it current.
#[derive(Clone)]
pub struct Roster(Arc<Mutex<Vec<RosterEntry>>>);

#[derive(Clone)]
struct RosterEntry {
    id: String,
    base: String,
    state: NodeState,
}

impl Roster {
    fn with<T>(&self, f: impl FnOnce(&mut Vec<RosterEntry>) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn len(&self) -> usize {
        self.with(|nodes| nodes.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `http://127.0.0.1:PORT` of node `i`.
    pub fn base(&self, i: usize) -> String {
        self.with(|nodes| nodes[i].base.clone())
    }

    /// `ws://127.0.0.1:PORT{path}` of node `i`.
    pub fn ws_url(&self, i: usize, path: &str) -> String {
        format!("{}{path}", self.base(i).replacen("http", "ws", 1))
    }

    pub fn id(&self, i: usize) -> String {
        self.with(|nodes| nodes[i].id.clone())
    }

    pub fn state(&self, i: usize) -> NodeState {
        self.with(|nodes| nodes[i].state)
    }

    pub fn is_up(&self, i: usize) -> bool {
        self.state(i) == NodeState::Up
    }

    /// The nodes that are up, in index order.
    pub fn up(&self) -> Vec<usize> {
        self.with(|nodes| {
            (0..nodes.len())
                .filter(|&i| nodes[i].state == NodeState::Up)
                .collect()
        })
    }

    /// The first node that is up, starting at `from` and going round; `None` when none is.
    pub fn next_up(&self, from: usize) -> Option<usize> {
        self.with(|nodes| {
            let n = nodes.len();
            (0..n)
                .map(|k| (from + k) % n)
                .find(|&i| nodes[i].state == NodeState::Up)
        })
    }

    fn set_state(&self, i: usize, state: NodeState) {
        self.with(|nodes| nodes[i].state = state);
    }

    fn set_base(&self, i: usize, base: &str) {
        self.with(|nodes| nodes[i].base = base.to_owned());
    }
}

/// Configures a `TestCluster` before it starts.
pub struct ClusterBuilder {
    bin: PathBuf,
    nodes: usize,
    lease_ms: u64,
    env: Vec<(String, String)>,
    dir: Option<PathBuf>,
    on_drop: DropPolicy,
}

impl ClusterBuilder {
    /// How many nodes (default 2).
    pub fn nodes(mut self, n: usize) -> Self {
        assert!(n >= 1, "a cluster has at least one node");
        self.nodes = n;
        self
    }

    /// `cluster.lease_ms` of every node (default `DEFAULT_LEASE_MS`).
    pub fn lease_ms(mut self, ms: u64) -> Self {
        self.lease_ms = ms;
        self
    }

    /// Sets `ROOMSTATE__<key>` (key like `PRESENCE__HTTP_TTL_S`) on every node, after the
    /// cluster's own settings (so it can override them).
    pub fn setting(mut self, key: &str, value: impl ToString) -> Self {
        self.env
            .push((format!("ROOMSTATE__{key}"), value.to_string()));
        self
    }

    /// Keeps the nodes' data dirs and logs under `dir` (`node-<i>/`) instead of a temp dir that
    /// goes with the cluster (the demo keeps them).
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// What dropping the cluster does to nodes that still run (default `DropPolicy::Kill`).
    pub fn on_drop(mut self, policy: DropPolicy) -> Self {
        self.on_drop = policy;
        self
    }

    /// Starts every node on `set` (the journal) and `store_url` (the SQL store), then waits until
    /// each is ready and lists every node as alive (`wait_all_in_cluster`).
    pub async fn start(self, set: &SentinelSet, store_url: &str) -> TestCluster {
        let (tmp, root) = match &self.dir {
            Some(dir) => (None, dir.clone()),
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix("roomstate-cluster-")
                    .tempdir()
                    .expect("temp dir for the cluster");
                let root = tmp.path().to_path_buf();
                (Some(tmp), root)
            }
        };
        let secret = format!("{:032x}", rand::random::<u128>());
        let mut common = vec![
            ("ROOMSTATE__HTTP__WORKERS".to_owned(), "2".to_owned()),
            ("ROOMSTATE__ADMIN__TOKEN".to_owned(), TOKEN.to_owned()),
            ("RUST_LOG".to_owned(), "info".to_owned()),
            ("ROOMSTATE__JOURNAL__KIND".to_owned(), "redis".to_owned()),
            (
                "ROOMSTATE__REDIS__MIN_REPLICA_ACKS".to_owned(),
                "1".to_owned(),
            ),
            ("ROOMSTATE__STORE__URL".to_owned(), store_url.to_owned()),
            // Every test client and every node talk from 127.0.0.1: one per-address HTTP budget
            // for all of them would refuse the test's own load (429), not what it tests.
            (
                "ROOMSTATE__LIMITS__HTTP_RATE_PER_S".to_owned(),
                "0".to_owned(),
            ),
            ("ROOMSTATE__CLUSTER__ENABLED".to_owned(), "true".to_owned()),
            ("ROOMSTATE__CLUSTER__SECRET".to_owned(), secret.clone()),
            (
                "ROOMSTATE__CLUSTER__LEASE_MS".to_owned(),
                self.lease_ms.to_string(),
            ),
        ];
        common.extend(
            set.engine_settings()
                .into_iter()
                .map(|(key, value)| (format!("ROOMSTATE__{key}"), value)),
        );
        let ports = free_ports(self.nodes);
        let mut nodes = Vec::with_capacity(self.nodes);
        for (i, port) in ports.into_iter().enumerate() {
            let dir = root.join(format!("node-{i}"));
            std::fs::create_dir_all(dir.join("data"))
                .unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
            let mut node = Node {
                id: format!("node-{i}"),
                port,
                dir,
                common: common.clone(),
                extra: self.env.clone(),
                engine: None,
            };
            node.spawn(&self.bin, self.on_drop).await;
            nodes.push(node);
        }
        let roster = Roster(Arc::new(Mutex::new(
            nodes
                .iter()
                .map(|n| RosterEntry {
                    id: n.id.clone(),
                    base: n.base(),
                    state: NodeState::Up,
                })
                .collect(),
        )));
        let cluster = TestCluster {
            nodes,
            roster,
            secret,
            lease: Duration::from_millis(self.lease_ms),
            client: Client::builder()
                .max_http_version(awc::http::Version::HTTP_11)
                .timeout(REQUEST_TIMEOUT)
                .finish(),
            bin: self.bin,
            on_drop: self.on_drop,
            _tmp: tmp,
        };
        cluster.wait_all_in_cluster().await;
        eprintln!(
            "cluster started: {} ({})",
            (0..cluster.len())
                .map(|i| format!("{} at {}", cluster.node_id(i), cluster.node(i)))
                .collect::<Vec<_>>()
                .join(", "),
            root.display()
        );
        cluster
    }
}

/// One node: its fixed identity (id, port, dir) and the process while it runs.
struct Node {
    id: String,
    port: u16,
    dir: PathBuf,
    /// The cluster's settings (the journal, the store, the secret, the lease).
    common: Vec<(String, String)>,
    /// The test's own settings, after the cluster's.
    extra: Vec<(String, String)>,
    engine: Option<EngineProcess>,
}

impl Node {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("engine.log")
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut env = self.common.clone();
        env.extend([
            (
                "ROOMSTATE__DATA_DIR".to_owned(),
                self.dir.join("data").display().to_string(),
            ),
            (
                "ROOMSTATE__HTTP__BIND".to_owned(),
                format!("127.0.0.1:{}", self.port),
            ),
            ("ROOMSTATE__CLUSTER__NODE_ID".to_owned(), self.id.clone()),
            ("ROOMSTATE__CLUSTER__ADVERTISE_URL".to_owned(), self.base()),
        ]);
        env.extend(self.extra.iter().cloned());
        env
    }

    /// Starts the process on the node's port; if that port was taken meanwhile, on a new one
    /// (the node's advertise URL follows it). The wait for the listening line runs on the
    /// blocking pool, so the test's clients keep running meanwhile.
    async fn spawn(&mut self, bin: &Path, on_drop: DropPolicy) {
        assert!(self.engine.is_none(), "{} is already running", self.id);
        let log = self.log_path();
        for attempt in 1..=PORT_ATTEMPTS {
            let logged_before = std::fs::metadata(&log).map_or(0, |m| m.len() as usize);
            let (bin, env, log_path) = (bin.to_path_buf(), self.env(), log.clone());
            let spawned = actix_rt::task::spawn_blocking(move || {
                EngineProcess::spawn(&bin, &env, &log_path, START_DEADLINE, on_drop)
            })
            .await
            .unwrap_or_else(|e| panic!("starting {}: the spawning task failed: {e}", self.id));
            match spawned {
                Ok(engine) => {
                    assert_eq!(
                        engine.base,
                        self.base(),
                        "{} listens elsewhere than its advertise URL",
                        self.id
                    );
                    self.engine = Some(engine);
                    return;
                }
                Err(e) => {
                    let text = std::fs::read(&log).unwrap_or_default();
                    let new = String::from_utf8_lossy(text.get(logged_before..).unwrap_or(&[]));
                    if new.contains("Address already in use") && attempt < PORT_ATTEMPTS {
                        eprintln!(
                            "{}: port {} was taken meanwhile; trying another",
                            self.id, self.port
                        );
                        self.port = free_ports(1)[0];
                        continue;
                    }
                    panic!("starting {} on port {}: {e}", self.id, self.port);
                }
            }
        }
    }

    fn engine(&self) -> &EngineProcess {
        self.engine
            .as_ref()
            .unwrap_or_else(|| panic!("{} is not running", self.id))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_tail(&self, state: NodeState) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
        format!(
            "--- {} {} ({state:?}, {}, last {} lines) ---\n{}\n",
            self.id,
            self.base(),
            self.log_path().display(),
            tail.len(),
            tail.join("\n")
        )
    }
}

/// A running cluster of engines.
pub struct TestCluster {
    nodes: Vec<Node>,
    roster: Roster,
    secret: String,
    lease: Duration,
    client: Client,
    bin: PathBuf,
    on_drop: DropPolicy,
    _tmp: Option<tempfile::TempDir>,
}

impl TestCluster {
    /// A cluster of the binary `bin` (the tests pass `env!("CARGO_BIN_EXE_roomstate")`, the
    /// tools `engine::workspace_binary("roomstate")`).
    pub fn builder(bin: impl Into<PathBuf>) -> ClusterBuilder {
        ClusterBuilder {
            bin: bin.into(),
            nodes: 2,
            lease_ms: DEFAULT_LEASE_MS,
            env: Vec::new(),
            dir: None,
            on_drop: DropPolicy::Kill,
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s base URL, `http://127.0.0.1:PORT` (also its advertise URL).
    pub fn node(&self, i: usize) -> String {
        self.nodes[i].base()
    }

    /// Node `i`'s `cluster.node_id` (`node-<i>`).
    pub fn node_id(&self, i: usize) -> &str {
        &self.nodes[i].id
    }

    /// The index of the node with id `id`; panics naming the known ids when there is none.
    pub fn index_of(&self, id: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .unwrap_or_else(|| {
                let known: Vec<&str> = self.nodes.iter().map(|n| n.id.as_str()).collect();
                panic!("no node has the id {id:?}; the nodes are {known:?}")
            })
    }

    pub fn url(&self, i: usize, path: &str) -> String {
        format!("{}{path}", self.node(i))
    }

    pub fn ws_url(&self, i: usize, path: &str) -> String {
        format!("{}{path}", self.node(i).replacen("http", "ws", 1))
    }

    /// The cluster's `cluster.secret` (random per cluster).
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The nodes' `cluster.lease_ms`.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// The nodes' states, to share with client tasks.
    pub fn roster(&self) -> Roster {
        self.roster.clone()
    }

    pub fn state(&self, i: usize) -> NodeState {
        self.roster.state(i)
    }

    /// The nodes that are up, in index order.
    pub fn up(&self) -> Vec<usize> {
        self.roster.up()
    }

    /// Node `i`'s log (stderr) so far, across its restarts.
    pub fn log(&self, i: usize) -> String {
        self.nodes[i].log()
    }

    /// Node `i`'s process id; panics when it does not run.
    pub fn pid(&self, i: usize) -> u32 {
        self.nodes[i]
            .engine()
            .pid()
            .unwrap_or_else(|| panic!("{} is not running", self.nodes[i].id))
    }

    /// SIGKILL: node `i` crashes. Marked down first, so no client picks it meanwhile.
    pub fn kill(&mut self, i: usize) {
        self.roster.set_state(i, NodeState::Down);
        let node = &mut self.nodes[i];
        let mut engine = node
            .engine
            .take()
            .unwrap_or_else(|| panic!("kill: {} is not running", node.id));
        engine.kill();
    }

    /// SIGSTOP: node `i` freezes (its lease runs out while its sockets stay open).
    pub fn pause(&mut self, i: usize) {
        assert_eq!(
            self.state(i),
            NodeState::Up,
            "pause: {} is not up",
            self.nodes[i].id
        );
        self.roster.set_state(i, NodeState::Paused);
        self.nodes[i].engine().signal("STOP");
    }

    /// SIGCONT: a paused node `i` runs again.
    pub fn resume(&mut self, i: usize) {
        assert_eq!(
            self.state(i),
            NodeState::Paused,
            "resume: {} is not paused",
            self.nodes[i].id
        );
        self.nodes[i].engine().signal("CONT");
        self.roster.set_state(i, NodeState::Up);
    }

    /// SIGTERM, then waits for node `i` to exit (it hands its rooms over first); returns how it
    /// exited. Marked down first, so no client picks it meanwhile. The test's clients keep
    /// running while it waits.
    pub async fn terminate(&mut self, i: usize) -> ExitStatus {
        self.roster.set_state(i, NodeState::Down);
        let node = &mut self.nodes[i];
        let id = node.id.clone();
        let mut engine = node
            .engine
            .take()
            .unwrap_or_else(|| panic!("terminate: {id} is not running"));
        engine.terminate();
        actix_rt::task::spawn_blocking(move || engine.wait_exit(EXIT_DEADLINE))
            .await
            .unwrap_or_else(|e| panic!("{id}: the waiting task failed: {e}"))
            .unwrap_or_else(|e| panic!("{id} after SIGTERM: {e}"))
    }

    /// Starts a stopped or killed node `i` again with the same id, data dir and settings (and
    /// port, unless it was taken meanwhile), and waits until it is in the cluster.
    pub async fn restart(&mut self, i: usize) {
        assert_eq!(
            self.state(i),
            NodeState::Down,
            "restart: kill or terminate {} first",
            self.nodes[i].id
        );
        let (bin, on_drop) = (self.bin.clone(), self.on_drop);
        self.nodes[i].spawn(&bin, on_drop).await;
        self.roster.set_base(i, &self.nodes[i].base());
        let up: Vec<usize> = self.up().into_iter().chain([i]).collect();
        let result = wait_until(
            &format!("{} to rejoin the cluster", self.nodes[i].id),
            DEADLINE,
            || async {
                for &j in &up {
                    self.in_cluster(j, &up).await?;
                }
                Ok(())
            },
        )
        .await;
        if let Err(e) = result {
            panic!("{e}");
        }
        self.roster.set_state(i, NodeState::Up);
    }

    /// Waits until every node that is up answers `/readyz` with 200 and its `/admin/cluster`
    /// names itself and lists every up node as alive at its advertise URL.
    pub async fn wait_all_in_cluster(&self) {
        let up = self.up();
        let result = wait_until("every node up to be in the cluster", DEADLINE, || async {
            for &i in &up {
                self.in_cluster(i, &up).await?;
            }
            Ok(())
        })
        .await;
        if let Err(e) = result {
            panic!("{e}");
        }
    }

    /// `Ok` when node `i` is ready and lists every node of `expected` as alive.
    async fn in_cluster(&self, i: usize, expected: &[usize]) -> Result<(), String> {
        let id = self.node_id(i);
        let (status, ready) = self
            .try_request(i, "GET", "/readyz", None, &[], PROBE_TIMEOUT)
            .await?;
        if status != StatusCode::OK {
            return Err(format!("{id}: /readyz answers {status}: {ready}"));
        }
        let view = self.cluster_view(i).await?;
        if view["self"] != id {
            return Err(format!(
                "{id}: /admin/cluster names itself {}",
                view["self"]
            ));
        }
        for &j in expected {
            let other = self.node_id(j);
            let entry = view["nodes"]
                .as_array()
                .and_then(|nodes| nodes.iter().find(|n| n["id"] == other))
                .ok_or_else(|| format!("{id}: /admin/cluster does not list {other}: {view}"))?;
            if entry["alive"] != true {
                return Err(format!(
                    "{id}: /admin/cluster says {other} is not alive: {entry}"
                ));
            }
            if entry["advertise_url"] != self.node(j).as_str() {
                return Err(format!(
                    "{id}: /admin/cluster lists {other} at {}, not {}",
                    entry["advertise_url"],
                    self.node(j)
                ));
            }
        }
        Ok(())
    }

    /// `GET /admin/cluster` on node `i`.
    pub async fn cluster_view(&self, i: usize) -> Result<Value, String> {
        let (status, view) = self
            .try_request(
                i,
                "GET",
                "/admin/cluster",
                None,
                &admin_auth(),
                PROBE_TIMEOUT,
            )
            .await?;
        if status != StatusCode::OK {
            return Err(format!(
                "{}: /admin/cluster answers {status}: {view}",
                self.node_id(i)
            ));
        }
        Ok(view)
    }

    /// Who owns `room`, as node `i` says (`GET /admin/rooms/{id}/owner`).
    pub async fn owner_seen_by(&self, i: usize, room: &str) -> Result<Owner, String> {
        let path = format!("/admin/rooms/{room}/owner");
        let (status, body) = self
            .try_request(i, "GET", &path, None, &admin_auth(), PROBE_TIMEOUT)
            .await?;
        if status != StatusCode::OK {
            return Err(format!(
                "{}: {path} answers {status}: {body}",
                self.node_id(i)
            ));
        }
        let owner = Owner::parse(&body).map_err(|e| format!("{}: {path}: {e}", self.node_id(i)))?;
        if owner.room != room {
            return Err(format!(
                "{}: {path} names room {}",
                self.node_id(i),
                owner.room
            ));
        }
        Ok(owner)
    }

    /// Who owns `room`: the answer of the first node that is up and answers 200 (retried until
    /// one does, up to `DEADLINE`).
    pub async fn owner_of(&self, room: &str) -> Owner {
        let result = wait_until(
            &format!("a node to name the owner of {room}"),
            DEADLINE,
            || async {
                let mut errors = Vec::new();
                for i in self.up() {
                    match self.owner_seen_by(i, room).await {
                        Ok(owner) => return Ok(owner),
                        Err(e) => errors.push(e),
                    }
                }
                Err(errors.join("; "))
            },
        )
        .await;
        result.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits until every node that is up names one owner of `room` other than `old` (a node
    /// id), and that owner is up; returns it.
    pub async fn wait_for_owner_other_than(
        &self,
        room: &str,
        old: &str,
        deadline: Duration,
    ) -> Owner {
        let result = wait_until(
            &format!("every node up to name an owner of {room} other than {old}"),
            deadline,
            || async {
                let mut named: Option<Owner> = None;
                for i in self.up() {
                    let owner = self.owner_seen_by(i, room).await?;
                    if owner.node == old {
                        return Err(format!("{} still names {old}", self.node_id(i)));
                    }
                    match &named {
                        Some(first) if first.node != owner.node => {
                            return Err(format!(
                                "the nodes disagree: {} and {}",
                                first.node, owner.node
                            ))
                        }
                        _ => named = Some(owner),
                    }
                }
                let owner = named.ok_or("no node is up")?;
                let at = self.index_of(&owner.node);
                if !self.roster.is_up(at) {
                    return Err(format!(
                        "they name {}, which is {:?}",
                        owner.node,
                        self.state(at)
                    ));
                }
                Ok(owner)
            },
        )
        .await;
        result.unwrap_or_else(|e| panic!("{e}"))
    }

    /// A request to node `i` with extra `headers` and a JSON `body`; `Err` when no answer came
    /// within `timeout` (a node down or paused) instead of a panic.
    pub async fn try_request(
        &self,
        i: usize,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, String)],
        timeout: Duration,
    ) -> Result<(StatusCode, Value), String> {
        let bytes = body.map(|b| b.to_string().into_bytes());
        self.send(i, method, path, headers, bytes, timeout).await
    }

    /// Like `try_request`, with raw bytes as the body (`Content-Type: application/json`), for
    /// malformed input.
    pub async fn try_raw(
        &self,
        i: usize,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(StatusCode, Value), String> {
        self.send(i, method, path, headers, Some(body), timeout)
            .await
    }

    async fn send(
        &self,
        i: usize,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<(StatusCode, Value), String> {
        let what = || format!("{method} {path} on {}", self.node_id(i));
        let method = awc::http::Method::from_bytes(method.as_bytes())
            .map_err(|e| format!("{}: {e}", what()))?;
        let mut req = self
            .client
            .request(method, self.url(i, path))
            .timeout(timeout);
        for (name, value) in headers {
            req = req.insert_header((*name, value.as_str()));
        }
        let sent = match body {
            Some(body) => {
                req.insert_header(("Content-Type", "application/json"))
                    .send_body(body)
                    .await
            }
            None => req.send().await,
        };
        let mut resp = sent.map_err(|e| format!("{}: {e}", what()))?;
        let bytes = resp
            .body()
            .limit(64 << 20)
            .await
            .map_err(|e| format!("{}: reading the body: {e}", what()))?;
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok((resp.status(), json))
    }

    /// A request to node `i` (with the admin token when `admin`); panics naming the node when no
    /// answer comes.
    pub async fn request(
        &self,
        i: usize,
        method: &str,
        path: &str,
        body: Option<&Value>,
        admin: bool,
    ) -> (StatusCode, Value) {
        let headers = if admin { admin_auth() } else { Vec::new() };
        self.try_request(i, method, path, body, &headers, REQUEST_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn get(&self, i: usize, path: &str) -> (StatusCode, Value) {
        self.request(i, "GET", path, None, false).await
    }

    pub async fn post(&self, i: usize, path: &str, body: Value) -> (StatusCode, Value) {
        self.request(i, "POST", path, Some(&body), false).await
    }

    pub async fn put(&self, i: usize, path: &str, body: Value) -> (StatusCode, Value) {
        self.request(i, "PUT", path, Some(&body), false).await
    }

    /// A bodiless admin call (`Authorization: Bearer <admin token>`).
    pub async fn admin(&self, i: usize, method: &str, path: &str) -> (StatusCode, Value) {
        self.request(i, method, path, None, true).await
    }

    /// Creates a room through node `i`; returns its id.
    pub async fn create_room(&self, i: usize, title: &str) -> String {
        let (status, view) = self
            .post(i, "/rooms", serde_json::json!({ "title": title }))
            .await;
        assert_eq!(status, 201, "POST /rooms on {}: {view}", self.node_id(i));
        view["id"].as_str().expect("room id").to_owned()
    }

    /// Joins `user` to `room` through node `i` (HTTP); returns the room view.
    pub async fn join(&self, i: usize, room: &str, user: &str) -> Value {
        let path = format!("/rooms/{room}/join");
        let (status, view) = self
            .post(i, &path, serde_json::json!({ "user": user }))
            .await;
        assert_eq!(status, 200, "POST {path} on {}: {view}", self.node_id(i));
        view
    }

    pub async fn vote(&self, i: usize, room: &str, user: &str, side: &str) -> (StatusCode, Value) {
        self.put(
            i,
            &format!("/rooms/{room}/votes/{user}"),
            serde_json::json!({ "side": side }),
        )
        .await
    }

    pub async fn say(&self, i: usize, room: &str, user: &str, text: &str) -> (StatusCode, Value) {
        self.post(
            i,
            &format!("/rooms/{room}/messages"),
            serde_json::json!({ "user": user, "text": text }),
        )
        .await
    }

    /// `GET /rooms/{id}` on node `i`, which must answer 200.
    pub async fn room(&self, i: usize, room: &str) -> Value {
        let (status, view) = self.get(i, &format!("/rooms/{room}")).await;
        assert_eq!(
            status,
            200,
            "GET /rooms/{room} on {}: {view}",
            self.node_id(i)
        );
        view
    }

    /// `POST /admin/rooms/{id}/close` on node `i`.
    pub async fn close_room(&self, i: usize, room: &str) -> (StatusCode, Value) {
        self.admin(i, "POST", &format!("/admin/rooms/{room}/close"))
            .await
    }

    /// The close of `room` through node `i`, retried while it answers `503` (the room between
    /// owners, a failover or a store outage under way, as the contract allows); its final
    /// view. Panics on any other answer, or when it still answers `503` after `deadline`.
    pub async fn close_room_retried(&self, i: usize, room: &str, deadline: Duration) -> Value {
        let what = format!("the close of {room} through {}", self.node_id(i));
        eventually(&what, deadline, || async {
            let (status, view) = self.close_room(i, room).await;
            answered_close(status, view, &what)
        })
        .await
    }

    /// The metric `name` on node `i`'s `/metrics`, summed over its labels; 0 when it is not
    /// there yet.
    pub async fn metric(&self, i: usize, name: &str) -> f64 {
        let text = self.metrics_text(i).await;
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (sample, value) = line.rsplit_once(' ')?;
                let metric = sample.split_once('{').map_or(sample, |(metric, _)| metric);
                (metric == name).then(|| {
                    value
                        .parse::<f64>()
                        .unwrap_or_else(|e| panic!("{sample} = {value:?}: {e}"))
                })
            })
            .sum()
    }

    /// Node `i`'s `/metrics` text.
    pub async fn metrics_text(&self, i: usize) -> String {
        let (status, text) = self.get(i, "/metrics").await;
        assert_eq!(status, 200, "/metrics on {}: {text}", self.node_id(i));
        text.as_str().unwrap_or_default().to_owned()
    }
}

/// `Authorization: Bearer <admin token>`.
pub fn admin_auth() -> Vec<(&'static str, String)> {
    vec![("Authorization", format!("Bearer {TOKEN}"))]
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        for (i, node) in self.nodes.iter_mut().enumerate() {
            if panicking {
                eprintln!("{}", node.log_tail(self.roster.state(i)));
            }
            // A paused process takes SIGKILL as it is, but would sit out a SIGTERM.
            if self.roster.state(i) == NodeState::Paused {
                if let Some(engine) = node.engine.as_ref() {
                    engine.signal("CONT");
                }
            }
            node.engine.take();
        }
    }
}
