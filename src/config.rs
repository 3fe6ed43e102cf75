//! Settings: the embedded `config/default.toml`, then the file named by `ROOMSTATE_CONFIG`, then
//! `ROOMSTATE__SECTION__KEY` environment variables. Validated once, here, with clear messages;
//! nothing else in the engine reads the environment.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use config::{Config, Environment, File, FileFormat};
use roomstate_core::redact;
use roomstate_journal::{
    access::{Access, Credentials, Role, Tls},
    redis::RedisAccess,
};
use serde::Deserialize;

use crate::{
    auth::{self, CreateRooms, Policy, Verifier},
    edge::{AllowedOrigins, EdgePolicy, TrustedProxies},
};

const DEFAULTS: &str = include_str!("../config/default.toml");

/// Why the settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading settings: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid settings: {0}")]
    Invalid(String),
}

/// Everything configurable: every key of docs/api.md "Settings".
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where the local journal and the SQLite store live.
    pub(crate) data_dir: PathBuf,
    pub(crate) http: HttpSettings,
    pub(crate) admin: AdminSettings,
    pub(crate) journal: JournalSettings,
    pub(crate) redis: RedisSettings,
    pub(crate) store: StoreSettings,
    pub(crate) presence: PresenceSettings,
    pub(crate) limits: LimitSettings,
    pub(crate) rooms: RoomThreadSettings,
    pub(crate) auth: AuthSettings,
    pub(crate) log: LogSettings,
    pub(crate) cluster: ClusterConfig,
}

/// `[cluster]`: several engines sharing one Redis journal and one store (docs/api.md, "A cluster
/// of engines").
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClusterConfig {
    /// Join the cluster on the configured Redis journal.
    pub(crate) enabled: bool,
    /// Unique per node; default: the host name and the `http.bind` port.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub(crate) node_id: Option<String>,
    /// Where other nodes reach this one; default `http://` + `http.bind`.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub(crate) advertise_url: Option<String>,
    /// Authenticates node-to-node calls; required when enabled.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub(crate) secret: Option<String>,
    /// How long a silent node keeps its rooms, in milliseconds.
    pub(crate) lease_ms: u64,
}

impl std::fmt::Debug for ClusterConfig {
    /// Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("enabled", &self.enabled)
            .field("node_id", &self.node_id)
            .field("advertise_url", &self.advertise_url)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .field("lease_ms", &self.lease_ms)
            .finish()
    }
}

/// The cluster settings after validation, defaults filled in.
#[derive(Clone)]
pub(crate) struct ClusterPlan {
    pub(crate) node_id: String,
    pub(crate) advertise_url: String,
    pub(crate) secret: String,
    pub(crate) lease: std::time::Duration,
}

impl std::fmt::Debug for ClusterPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterPlan")
            .field("node_id", &self.node_id)
            .field("advertise_url", &self.advertise_url)
            .field("secret", &"***")
            .field("lease", &self.lease)
            .finish()
    }
}

/// The shortest secret a cluster takes: node-to-node calls can close rooms.
const MIN_CLUSTER_SECRET_BYTES: usize = 16;
/// `cluster.lease_ms` bounds: shorter than a heartbeat round trip under load makes nodes look
/// dead; longer than ten minutes leaves a dead node's rooms unserved for that long.
const LEASE_MS_RANGE: std::ops::RangeInclusive<u64> = 200..=600_000;

impl ClusterConfig {
    /// This node's id (given, or the host name and the bind port), checked either way: the
    /// Redis journal records it as the owner of the rooms this engine claims, in a cluster or
    /// not.
    fn node_id(&self, bind: &SocketAddr) -> Result<String, ConfigError> {
        let id = match &self.node_id {
            Some(id) => id.clone(),
            None => default_node_id(&host_name(), bind.port()),
        };
        let fine = !id.is_empty()
            && id.len() <= 64
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
        if !fine {
            return Err(ConfigError::Invalid(format!(
                "cluster.node_id {id:?} must be 1 to 64 characters of A-Z a-z 0-9 - _ . :"
            )));
        }
        Ok(id)
    }

    /// The plan of an enabled cluster, or why it cannot run.
    fn plan(
        &self,
        node_id: String,
        bind: &SocketAddr,
        journal: JournalKind,
    ) -> Result<Option<ClusterPlan>, ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if !self.enabled {
            return Ok(None);
        }
        if journal != JournalKind::Redis {
            return invalid(
                "cluster.enabled needs journal.kind = \"redis\": the nodes share one Redis \
                 journal (and one SQL store)"
                    .into(),
            );
        }
        let Some(secret) = self.secret.clone() else {
            return invalid(
                "cluster.enabled needs cluster.secret (ROOMSTATE__CLUSTER__SECRET), the same on \
                 every node: it authenticates node-to-node calls"
                    .into(),
            );
        };
        if secret.len() < MIN_CLUSTER_SECRET_BYTES {
            return invalid(format!(
                "cluster.secret must be at least {MIN_CLUSTER_SECRET_BYTES} bytes (e.g. \
                 `openssl rand -base64 24`)"
            ));
        }
        // It travels in a header: other bytes cannot be sent, and spaces at its ends are cut
        // off on the way.
        if !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return invalid(
                "cluster.secret must be printable ASCII without spaces (it is sent in a header; \
                 e.g. `openssl rand -base64 24`)"
                    .into(),
            );
        }
        if !LEASE_MS_RANGE.contains(&self.lease_ms) {
            return invalid(format!(
                "cluster.lease_ms must be {} to {}, got {}",
                LEASE_MS_RANGE.start(),
                LEASE_MS_RANGE.end(),
                self.lease_ms
            ));
        }
        let advertise_url = match &self.advertise_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{bind}"),
        };
        if advertise_url.starts_with("https://") {
            return invalid(format!(
                "cluster.advertise_url {advertise_url:?}: the nodes call each other over plain \
                 HTTP (their calls carry the cluster's secret); give an http:// URL on a network \
                 only the nodes reach"
            ));
        }
        if !advertise_url.starts_with("http://") || advertise_url.len() <= "http://".len() {
            return invalid(format!(
                "cluster.advertise_url {advertise_url:?} must be an http:// URL other nodes \
                 reach this one at"
            ));
        }
        if self.advertise_url.is_none() && bind.ip().is_unspecified() {
            return invalid(format!(
                "http.bind {bind} listens on every address, so other nodes cannot be told one: \
                 set cluster.advertise_url"
            ));
        }
        if self.advertise_url.is_none() && bind.port() == 0 {
            return invalid(format!(
                "http.bind {bind} takes any free port, so other nodes cannot be told which: set \
                 cluster.advertise_url (or a fixed port)"
            ));
        }
        Ok(Some(ClusterPlan {
            node_id,
            advertise_url,
            secret,
            lease: std::time::Duration::from_millis(self.lease_ms),
        }))
    }
}

/// The machine's host name (for the default node id).
/// The host name and the port. A host name too long for a 64-character id (a long pod name
/// must not stop an engine that was given no id) keeps its start and ends in a hash of the
/// whole name: replicas whose names differ only at the end (a pod's random suffix) keep ids of
/// their own.
fn default_node_id(host: &str, port: u16) -> String {
    let port = format!(":{port}");
    if host.chars().count() + port.len() <= 64 {
        return format!("{host}{port}");
    }
    // FNV-1a: the same on every build and platform (an id outlives the binary that chose it).
    let hash = (host.bytes()).fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let kept: String = host.chars().take(64 - port.len() - 9).collect();
    format!("{kept}-{:08x}{port}", hash as u32)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// How the engine writes its log (stderr).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogSettings {
    pub(crate) format: LogFormat,
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoomThreadSettings {
    /// Threads the room actors run on; 0 means one per core.
    pub(crate) threads: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpSettings {
    /// Listen address.
    pub(crate) bind: String,
    /// A second listen address that alone serves `/metrics` and `/admin/*` (the public one then
    /// answers them 404); none: `bind` serves everything. An empty value counts as unset.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub(crate) internal_bind: Option<String>,
    /// HTTP worker threads; 0 means one per core.
    pub(crate) workers: usize,
    /// Seconds to wait for in-flight requests at shutdown.
    pub(crate) shutdown_timeout_s: u64,
    /// CIDR blocks of the reverse proxies whose `X-Forwarded-For` is believed. A list, or one
    /// comma-separated string (as environment variables give it).
    #[serde(default, deserialize_with = "string_or_list")]
    pub(crate) trusted_proxies: Vec<String>,
    /// Origins of the web pages that may open sockets and read answers (CORS), or `"*"`; empty:
    /// the same origin only.
    #[serde(default, deserialize_with = "string_or_list")]
    pub(crate) allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdminSettings {
    /// Serve the /admin routes.
    pub(crate) enabled: bool,
    /// Bearer token for /admin.
    pub(crate) token: Option<String>,
}

/// `auth.mode`: whether clients are believed or prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AuthMode {
    Open,
    Token,
}

/// docs/api.md "Users and tokens". `mode` has no embedded default, so that the engine can tell a
/// file (or an environment) that chose it from one that never thought about it.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthSettings {
    pub(crate) mode: Option<AuthMode>,
    /// Shared secret for HS256 tokens.
    pub(crate) hs256_secret: Option<String>,
    /// PEM public key for RS256 or ES256 tokens.
    pub(crate) public_key_file: Option<PathBuf>,
    pub(crate) create_rooms: CreateRooms,
}

impl std::fmt::Debug for AuthSettings {
    /// Never prints the secret, only whether there is one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("mode", &self.mode)
            .field("hs256_secret", &self.hs256_secret.as_ref().map(|_| "***"))
            .field("public_key_file", &self.public_key_file)
            .field("create_rooms", &self.create_rooms)
            .finish()
    }
}

/// Which durability log to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum JournalKind {
    Local,
    Redis,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JournalSettings {
    pub(crate) kind: JournalKind,
    /// Events a room may hold that are not yet durable before it answers 503.
    pub(crate) max_pending: usize,
    /// Durable events between two snapshots of a room.
    pub(crate) snapshot_every: u64,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedisSettings {
    /// A plain Redis URL (`redis://` or `rediss://`, credentials allowed in it). An empty value
    /// counts as unset.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub(crate) url: Option<String>,
    /// Sentinel addresses; take precedence over `url`. A list, or one comma-separated string
    /// (as environment variables give it).
    #[serde(default, deserialize_with = "string_or_list")]
    pub(crate) sentinels: Vec<String>,
    /// The sentinels' name for the primary.
    pub(crate) master_name: String,
    /// Replicas that must hold a batch before it is acknowledged.
    pub(crate) min_replica_acks: u32,
    /// While batches for several rooms follow each other, a batch starts at most once per this
    /// many milliseconds, so more rooms' writes share it (0: off).
    pub(crate) commit_delay_ms: u64,
    /// The servers' ACL user (none: the `default` user); needs `password`.
    pub(crate) username: Option<String>,
    /// The servers' password (`requirepass`, or the ACL user's).
    pub(crate) password: Option<String>,
    /// The sentinels' ACL user; needs `sentinel_password`.
    pub(crate) sentinel_username: Option<String>,
    /// The sentinels' password (their `requirepass`).
    pub(crate) sentinel_password: Option<String>,
    /// TLS to the servers and the sentinels (a `rediss://` URL turns it on too).
    pub(crate) tls: bool,
    /// PEM certificates of the CA to trust over TLS; none: the system's roots.
    pub(crate) tls_ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for RedisSettings {
    /// Never prints a password: the URL's is redacted, the others show only whether there is one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "***");
        f.debug_struct("RedisSettings")
            .field("url", &self.url.as_deref().map(redact::url))
            .field("sentinels", &self.sentinels)
            .field("master_name", &self.master_name)
            .field("min_replica_acks", &self.min_replica_acks)
            .field("commit_delay_ms", &self.commit_delay_ms)
            .field("username", &self.username)
            .field("password", &hidden(&self.password))
            .field("sentinel_username", &self.sentinel_username)
            .field("sentinel_password", &hidden(&self.sentinel_password))
            .field("tls", &self.tls)
            .field("tls_ca_file", &self.tls_ca_file)
            .finish()
    }
}

impl RedisSettings {
    /// How the journal reaches the servers and the sentinels: credentials where they belong, TLS
    /// when `tls` or a `rediss://` URL asks for it, the CA file read and checked. Refuses a user
    /// without a password, credentials both in `url` and in `username`/`password`, sentinel
    /// credentials without sentinels, and a CA file without TLS. An empty value counts as unset
    /// (how an environment unsets a key).
    fn access(&self) -> Result<RedisAccess, ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let given = |v: &Option<String>| v.as_deref().filter(|v| !v.is_empty()).map(str::to_owned);
        let pair = |user: &Option<String>, password: &Option<String>, names: (&str, &str)| match (
            given(user),
            given(password),
        ) {
            (Some(_), None) => Err(ConfigError::Invalid(format!(
                "{} is set but {} is not: an ACL user needs its password",
                names.0, names.1
            ))),
            (user, Some(password)) => Ok(Some(Credentials::new(user, password))),
            (None, None) => Ok(None),
        };
        let servers = pair(
            &self.username,
            &self.password,
            ("redis.username", "redis.password"),
        )?;
        let sentinels = pair(
            &self.sentinel_username,
            &self.sentinel_password,
            ("redis.sentinel_username", "redis.sentinel_password"),
        )?;
        let url = given(&self.url).filter(|_| self.sentinels.is_empty());
        if let Some(url) = &url {
            let authority = url.split_once("://").map_or("", |(_, rest)| {
                rest.split(['/', '?', '#']).next().unwrap_or("")
            });
            if authority.contains('@') && servers.is_some() {
                return invalid(format!(
                    "redis.url ({}) carries a user or password, and redis.username / \
                     redis.password are set too: give the credentials one way (better the \
                     settings, e.g. ROOMSTATE__REDIS__PASSWORD, than the URL)",
                    redact::url(url)
                ));
            }
            if sentinels.is_some() {
                return invalid(
                    "redis.sentinel_username / redis.sentinel_password are set, but there are no \
                     redis.sentinels to use them on"
                        .into(),
                );
            }
        }
        let tls = self.tls || url.as_deref().is_some_and(|u| u.starts_with("rediss://"));
        let ca_file = self
            .tls_ca_file
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty());
        let tls = match (tls, ca_file) {
            (false, None) => None,
            (false, Some(_)) => {
                return invalid(
                    "redis.tls_ca_file is set but TLS is off: set redis.tls = true \
                     (ROOMSTATE__REDIS__TLS=true) or use a rediss:// redis.url"
                        .into(),
                )
            }
            (true, None) => Some(Tls::system_roots()),
            (true, Some(path)) => {
                let pem = std::fs::read(path).map_err(|e| {
                    ConfigError::Invalid(format!(
                        "redis.tls_ca_file {}: cannot read it: {e}",
                        path.display()
                    ))
                })?;
                let tls = Tls::with_ca_pem(pem).map_err(|e| {
                    ConfigError::Invalid(format!("redis.tls_ca_file {}: {e}", path.display()))
                })?;
                Some(tls)
            }
        };
        Ok(RedisAccess {
            servers: Access::plain(Role::Server)
                .with_credentials(servers)
                .with_tls(tls.clone()),
            sentinels: Access::plain(Role::Sentinel)
                .with_credentials(sentinels)
                .with_tls(tls),
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoreSettings {
    /// `sqlite://path` or `mysql://...`; default `sqlite://<data_dir>/roomstate.db`. An empty
    /// value counts as unset.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub(crate) url: Option<String>,
    /// Seconds one store operation may take before it counts as failed (1–300).
    pub(crate) timeout_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PresenceSettings {
    /// Idle seconds after which an HTTP join lapses.
    pub(crate) http_ttl_s: u64,
    /// Seconds a silent WebSocket is kept before it is dropped.
    pub(crate) ws_timeout_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitSettings {
    pub(crate) max_body_bytes: usize,
    pub(crate) max_frame_bytes: usize,
    pub(crate) ws_rate_per_s: u32,
    pub(crate) ws_burst: u32,
    /// 0 turns the HTTP limiter off.
    pub(crate) http_rate_per_s: u32,
    pub(crate) http_burst: u32,
    /// Open rooms a process holds; `POST /rooms` past it is 503.
    pub(crate) max_open_rooms: usize,
    /// Open WebSockets a process holds; an upgrade past it is 503.
    pub(crate) max_sockets: usize,
    /// Open WebSockets of one client (an address, or an IPv6 /64); an upgrade past it is 429.
    pub(crate) max_sockets_per_client: usize,
    /// Bytes a socket's outgoing buffer may hold (written, not yet taken by the client) before
    /// the socket is dropped.
    pub(crate) ws_send_buffer_bytes: usize,
    /// Chat messages a room keeps in memory; older ones are read from the journal.
    pub(crate) room_messages_in_memory: usize,
}

/// Where the settings came from, for the rules that depend on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Only the embedded defaults and environment variables: a developer's machine.
    EmbeddedDefaults,
    /// A settings file named by `ROOMSTATE_CONFIG`.
    File(PathBuf),
}

/// Settings after validation, with derived values filled in.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub(crate) settings: Settings,
    pub(crate) origin: Origin,
    /// The admin token in force; `generated` is true when it was made up at start.
    pub(crate) admin_token: Option<AdminToken>,
    pub(crate) store_url: String,
    /// How the Redis journal reaches the servers and the sentinels (credentials, TLS; checked).
    pub(crate) redis_access: RedisAccess,
    /// How clients prove who they are (the key, if any, already read and checked).
    pub(crate) auth: Policy,
    /// Trusted proxies and allowed origins, parsed.
    pub(crate) edge: EdgePolicy,
    /// This engine's node id (recorded as the owner of the rooms it claims in Redis).
    pub(crate) node_id: String,
    /// With `cluster.enabled`: the cluster settings.
    pub(crate) cluster: Option<ClusterPlan>,
}

#[derive(Debug, Clone)]
pub(crate) struct AdminToken {
    pub(crate) token: String,
    pub(crate) generated: bool,
}

impl Settings {
    /// Loads from the process environment.
    pub fn load() -> Result<Loaded, ConfigError> {
        let file = std::env::var_os("ROOMSTATE_CONFIG").map(PathBuf::from);
        Self::load_from(file, std::env::vars())
    }

    /// Loads with `file` (the `--config` option) in place of `ROOMSTATE_CONFIG`, when given.
    pub fn load_with(file: Option<PathBuf>) -> Result<Loaded, ConfigError> {
        let file = file.or_else(|| std::env::var_os("ROOMSTATE_CONFIG").map(PathBuf::from));
        Self::load_from(file, std::env::vars())
    }

    /// The embedded defaults, then `file`, then the `ROOMSTATE__*` variables of `env`, merged but
    /// not yet typed.
    fn merged(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(path) = file {
            // Always TOML, whatever the file is named.
            let name = path.to_string_lossy();
            builder = builder.add_source(File::new(&name, FileFormat::Toml).required(true));
        }
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("ROOMSTATE__"))
            .collect();
        // No `try_parsing`: values stay strings (so a token like `0123` stays `0123`) and serde
        // converts them for typed fields; the sentinel list is split by `string_or_list`.
        builder = builder.add_source(
            Environment::with_prefix("ROOMSTATE")
                .prefix_separator("__")
                .separator("__")
                .source(Some(env)),
        );
        Ok(builder.build()?)
    }

    /// The merged settings as TOML with every secret replaced by `***` and every URL redacted
    /// (`roomstate check-config`), after checking they are valid.
    pub fn describe(
        file: Option<PathBuf>,
        env: impl IntoIterator<Item = (String, String)> + Clone,
    ) -> Result<String, ConfigError> {
        Self::load_from(file.clone(), env.clone())?;
        let mut tree: toml::Value = Self::merged(file.as_deref(), env)?.try_deserialize()?;
        redact_secrets(&mut tree);
        toml::to_string_pretty(&tree).map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// Loads from an optional file and the given environment (testable without touching the
    /// process environment).
    pub fn load_from(
        file: Option<PathBuf>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let builder = Self::merged(file.as_deref(), env)?;
        let settings: Settings = builder.try_deserialize()?;
        let origin = match file {
            Some(path) => Origin::File(path),
            None => Origin::EmbeddedDefaults,
        };
        settings.validate(origin)
    }

    fn validate(self, origin: Origin) -> Result<Loaded, ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.http.bind.parse::<SocketAddr>().is_err() {
            return invalid(format!(
                "http.bind {:?} is not an address like 127.0.0.1:8080",
                self.http.bind
            ));
        }
        if let Some(internal) = &self.http.internal_bind {
            let Ok(addr) = internal.parse::<SocketAddr>() else {
                return invalid(format!(
                    "http.internal_bind {internal:?} is not an address like 127.0.0.1:9090"
                ));
            };
            if addr.port() != 0 && self.http.bind.parse::<SocketAddr>().ok() == Some(addr) {
                return invalid(format!(
                    "http.internal_bind is http.bind ({addr}): the internal listener needs an \
                     address of its own (or leave it unset to serve everything on http.bind)"
                ));
            }
        }
        if self.http.workers > MAX_THREADS || self.rooms.threads > MAX_THREADS {
            return invalid(format!(
                "http.workers and rooms.threads are at most {MAX_THREADS} (0: one per core), got \
                 {} and {}",
                self.http.workers, self.rooms.threads
            ));
        }
        if !(1..=MAX_STORE_TIMEOUT_S).contains(&self.store.timeout_s) {
            return invalid(format!(
                "store.timeout_s is {}: from 1 to {MAX_STORE_TIMEOUT_S} seconds",
                self.store.timeout_s
            ));
        }
        if self.presence.http_ttl_s == 0 || self.presence.ws_timeout_s == 0 {
            return invalid("presence.http_ttl_s and presence.ws_timeout_s must be > 0".into());
        }
        if self.limits.max_body_bytes == 0 || self.limits.max_frame_bytes == 0 {
            return invalid("limits.max_body_bytes and limits.max_frame_bytes must be > 0".into());
        }
        if self.limits.ws_rate_per_s == 0 || self.limits.ws_burst == 0 {
            return invalid("limits.ws_rate_per_s and limits.ws_burst must be > 0".into());
        }
        if self.limits.room_messages_in_memory == 0 {
            return invalid("limits.room_messages_in_memory must be > 0".into());
        }
        if self.limits.max_sockets == 0 || self.limits.max_sockets_per_client == 0 {
            return invalid(
                "limits.max_sockets and limits.max_sockets_per_client must be > 0".into(),
            );
        }
        if self.limits.max_open_rooms == 0 {
            return invalid("limits.max_open_rooms must be > 0".into());
        }
        let least_buffer = (self.limits.max_frame_bytes)
            .saturating_add(ANSWER_ENVELOPE_BYTES)
            .max(MIN_WS_SEND_BUFFER_BYTES);
        if self.limits.ws_send_buffer_bytes < least_buffer {
            return invalid(format!(
                "limits.ws_send_buffer_bytes must be at least {least_buffer} (the larger of \
                 {MIN_WS_SEND_BUFFER_BYTES}, which a 2000-character message fits in, and \
                 limits.max_frame_bytes + {ANSWER_ENVELOPE_BYTES}: an answer echoes its \
                 frame's req, which may be nearly the whole frame), got {}",
                self.limits.ws_send_buffer_bytes
            ));
        }
        let edge = self.http.edge()?;
        if self.journal.max_pending == 0 || self.journal.snapshot_every == 0 {
            return invalid("journal.max_pending and journal.snapshot_every must be > 0".into());
        }
        if self.journal.kind == JournalKind::Redis
            && self.redis.url.is_none()
            && self.redis.sentinels.is_empty()
        {
            return invalid("journal.kind = \"redis\" needs redis.sentinels or redis.url".into());
        }
        if self.redis.commit_delay_ms > MAX_COMMIT_DELAY_MS {
            return invalid(format!(
                "redis.commit_delay_ms is at most {MAX_COMMIT_DELAY_MS} (it adds up to that much \
                 to every acknowledgement under load), got {}",
                self.redis.commit_delay_ms
            ));
        }
        let redis_access = match self.journal.kind {
            JournalKind::Redis => self.redis.access()?,
            JournalKind::Local => RedisAccess::default(),
        };
        let admin_token = match (&self.admin.token, self.admin.enabled, &origin) {
            (_, false, _) => None,
            (Some(token), true, _) if token.trim().is_empty() => {
                return invalid("admin.token is empty".into())
            }
            (Some(token), true, _) => Some(AdminToken {
                token: token.clone(),
                generated: false,
            }),
            (None, true, Origin::EmbeddedDefaults) => Some(AdminToken {
                token: generate_token(),
                generated: true,
            }),
            (None, true, Origin::File(path)) => {
                return invalid(format!(
                    "admin routes are enabled but no admin.token is set (config {}); set \
                     admin.token or ROOMSTATE__ADMIN__TOKEN, or admin.enabled = false",
                    path.display()
                ))
            }
        };
        let store_url = self.store.url.clone().unwrap_or_else(|| {
            format!("sqlite://{}", self.data_dir.join("roomstate.db").display())
        });
        if let Err(error) = roomstate_store::Store::check_url(&store_url) {
            return invalid(format!("store.url: {error}"));
        }
        let auth = self.auth.policy(&origin, admin_token.is_some())?;
        let bind: SocketAddr = self
            .http
            .bind
            .parse()
            .map_err(|_| ConfigError::Invalid("http.bind is not an address".into()))?;
        let node_id = self.cluster.node_id(&bind)?;
        let cluster = self
            .cluster
            .plan(node_id.clone(), &bind, self.journal.kind)?;
        Ok(Loaded {
            settings: self,
            origin,
            admin_token,
            store_url,
            redis_access,
            auth,
            edge,
            node_id,
            cluster,
        })
    }
}

/// The smallest `limits.ws_send_buffer_bytes`: above the largest frame the engine sends of its
/// own (a message of 2000 characters, each escaped to at most 6 bytes of JSON, and its envelope), so a
/// socket that takes what it is sent is never dropped for one frame.
const MIN_WS_SEND_BUFFER_BYTES: usize = 16 * 1024;

/// Room for what an `ack` or `error` frame holds besides the `req` it echoes (a string `req` is
/// at most a whole client frame): `limits.ws_send_buffer_bytes` is at least
/// `limits.max_frame_bytes` + this, so the answer to a long `req` fits a buffer with nothing
/// else waiting in it.
const ANSWER_ENVELOPE_BYTES: usize = 1024;

/// The most HTTP workers, and room threads: actix-server's own bound on workers.
pub(crate) const MAX_THREADS: usize = 512;

/// `http.workers` or `rooms.threads` as threads to start: 0 is one per core (at most
/// `MAX_THREADS`).
pub(crate) fn threads_or_per_core(threads: usize) -> usize {
    match threads {
        0 => std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .min(MAX_THREADS),
        n => n,
    }
}

/// The longest `store.timeout_s`: a close waits this long (and 5 s more) at most.
const MAX_STORE_TIMEOUT_S: u64 = 300;

/// The longest `redis.commit_delay_ms`: a state reaches every socket within 100 ms
/// (docs/api.md), and a delay is added to every acknowledgement under load.
const MAX_COMMIT_DELAY_MS: u64 = 50;

impl HttpSettings {
    /// `trusted_proxies` and `allowed_origins`, parsed; an entry that is not one names itself.
    fn edge(&self) -> Result<EdgePolicy, ConfigError> {
        let proxies = TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|e| ConfigError::Invalid(format!("http.trusted_proxies: {e}")))?;
        let origins = AllowedOrigins::parse(&self.allowed_origins)
            .map_err(|e| ConfigError::Invalid(format!("http.allowed_origins: {e}")))?;
        Ok(EdgePolicy { proxies, origins })
    }
}

impl AuthSettings {
    /// Every rule about `[auth]`, checked at start: the mode a file must choose, exactly one key
    /// in token mode, a usable key, a `create_rooms` somebody can satisfy. Reads the key file.
    fn policy(&self, origin: &Origin, admin_enabled: bool) -> Result<Policy, ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        // An empty value (`ROOMSTATE__AUTH__HS256_SECRET=`) is how environments unset things.
        let secret = self.hs256_secret.as_deref().filter(|s| !s.is_empty());
        let key_file = self
            .public_key_file
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty());
        let mode = match (self.mode, origin) {
            (Some(mode), _) => mode,
            (None, Origin::EmbeddedDefaults) => AuthMode::Open,
            (None, Origin::File(path)) if admin_enabled => {
                return invalid(format!(
                    "the config file {} serves admin routes but does not choose auth.mode; add\n  \
                     [auth]\n  mode = \"token\"   # user calls need a JWT (docs/auth.md), with \
                     auth.hs256_secret or auth.public_key_file\nor `mode = \"open\"` (clients \
                     name their user and are believed), or set ROOMSTATE__AUTH__MODE",
                    path.display()
                ))
            }
            (None, Origin::File(_)) => AuthMode::Open,
        };
        if mode == AuthMode::Open {
            if secret.is_some() || key_file.is_some() {
                let which = if secret.is_some() {
                    "auth.hs256_secret"
                } else {
                    "auth.public_key_file"
                };
                return invalid(format!(
                    "{which} is set but auth.mode is \"open\", where no token is checked; set \
                     auth.mode = \"token\" (ROOMSTATE__AUTH__MODE=token) to use it, or remove it"
                ));
            }
            if self.create_rooms == CreateRooms::Users {
                return invalid(
                    "auth.create_rooms = \"users\" needs user tokens: set auth.mode = \"token\", \
                     or choose \"anyone\" or \"admin\""
                        .into(),
                );
            }
        }
        if self.create_rooms == CreateRooms::Admin && !admin_enabled {
            return invalid(
                "auth.create_rooms = \"admin\" but admin routes are off (admin.enabled = false): \
                 nobody could create a room"
                    .into(),
            );
        }
        let dev_default = self.mode.is_none() && *origin == Origin::EmbeddedDefaults;
        if mode == AuthMode::Open {
            return Ok(Policy::open(self.create_rooms, dev_default));
        }
        let verifier = match (secret, key_file) {
            (None, None) => {
                return invalid(format!(
                    "auth.mode = \"token\" needs a key: auth.hs256_secret \
                     (ROOMSTATE__AUTH__HS256_SECRET; HS256, at least {} bytes) or \
                     auth.public_key_file (ROOMSTATE__AUTH__PUBLIC_KEY_FILE; a PEM public key for \
                     RS256 or ES256)",
                    auth::MIN_SECRET_BYTES
                ))
            }
            (Some(_), Some(_)) => {
                return invalid(
                    "auth.hs256_secret and auth.public_key_file are both set; set exactly one \
                     (tokens are verified with one key and its one algorithm)"
                        .into(),
                )
            }
            (Some(secret), None) => Verifier::hs256(secret)
                .map_err(|e| ConfigError::Invalid(format!("auth.hs256_secret {e}")))?,
            (None, Some(path)) => {
                let pem = std::fs::read(path).map_err(|e| {
                    ConfigError::Invalid(format!(
                        "auth.public_key_file {}: cannot read it: {e}",
                        path.display()
                    ))
                })?;
                Verifier::public_key_pem(&pem, &path.display().to_string()).map_err(|e| {
                    ConfigError::Invalid(format!("auth.public_key_file {} {e}", path.display()))
                })?
            }
        };
        Ok(Policy {
            verifier: Some(verifier),
            create_rooms: self.create_rooms,
            dev_default: false,
        })
    }
}

impl StoreSettings {
    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_s)
    }
}

impl PresenceSettings {
    pub(crate) fn http_ttl(&self) -> Duration {
        Duration::from_secs(self.http_ttl_s)
    }

    pub(crate) fn ws_timeout(&self) -> Duration {
        Duration::from_secs(self.ws_timeout_s)
    }
}

impl Loaded {
    /// How the log should be written (`log.format`), for setting up logging before the run.
    pub fn log_format(&self) -> LogFormat {
        self.settings.log.format
    }
}

/// Replaces every secret in a settings tree by `***` (keys naming a token, password or secret)
/// and shows every URL without its password.
fn redact_secrets(value: &mut toml::Value) {
    if let toml::Value::Table(table) = value {
        for (key, value) in table.iter_mut() {
            let secret = ["token", "password", "secret"]
                .iter()
                .any(|word| key.contains(word));
            match value {
                // Whatever its type: a numeric token is read as text, and is as secret.
                other if secret && !other.is_table() => *other = toml::Value::String("***".into()),
                toml::Value::String(text) if key.ends_with("url") => {
                    *text = roomstate_core::redact::url(text)
                }
                other => redact_secrets(other),
            }
        }
    }
}

/// An optional string where an empty one (how an environment unsets a key) is none.
fn empty_as_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = Option::<String>::deserialize(d)?;
    Ok(value.filter(|v| !v.trim().is_empty()))
}

fn string_or_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Either::deserialize(d)? {
        Either::One(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        Either::Many(list) => list,
    })
}

fn generate_token() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
