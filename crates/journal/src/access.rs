//! How the journal reaches a Redis process — a server (the primary, given as a URL or named by
//! the sentinels as `host:port`) or a sentinel: with which credentials, over TLS or not, trusting
//! which certificate authorities; and how a failure to reach one is put into words.
//!
//! Every connection the journal opens goes through an `Access`: the writer's, the recovery reads
//! (same connection), the sentinel look-ups (`sentinel`) and the failover watcher's pub/sub and
//! `SENTINEL MASTER` connections (`redis/watch.rs`). Servers and sentinels have one `Access`
//! each (`RedisAccess`), since they usually have different passwords.
//!
//! Secrets never leave this file in text: `Credentials` prints its password as `***`, a target
//! is shown through `roomstate_core::redact::url`, and `describe` words an authentication
//! failure (`WRONGPASS`, `NOAUTH`) by naming the settings to check, never their values.
//!
//! TLS is rustls with the `ring` provider, installed as the process default the first time a TLS
//! client is built (`install_crypto_provider`), so no OpenSSL is needed to build or run. Without
//! a CA of its own (`Tls::system_roots`), the system's roots are trusted; the server's
//! certificate must name the host connected to (an IP SAN for an address).

use std::{
    fmt,
    sync::{Arc, Once},
};

use redis::{
    aio::MultiplexedConnection, AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, ErrorKind,
    IntoConnectionInfo, RedisConnectionInfo, RedisError, TlsCertificates,
};
use roomstate_core::redact;

/// Which kind of Redis process an `Access` reaches; it decides which settings an
/// authentication failure points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A redis-server: the primary and its replicas.
    Server,
    /// A redis-sentinel.
    Sentinel,
}

impl Role {
    /// The settings that hold this role's credentials, for error messages.
    fn credential_settings(self) -> &'static str {
        match self {
            Role::Server => {
                "redis.username / redis.password (or the user and password in redis.url)"
            }
            Role::Sentinel => "redis.sentinel_username / redis.sentinel_password",
        }
    }
}

/// A password, and the ACL user it belongs to (none: Redis's `default` user, as `requirepass`
/// sets it). Its `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: Option<String>,
    password: String,
}

impl Credentials {
    pub fn new(username: Option<String>, password: impl Into<String>) -> Self {
        Self {
            username,
            password: password.into(),
        }
    }

    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// TLS settings: which certificate authorities to trust.
#[derive(Clone, PartialEq, Eq)]
pub struct Tls {
    /// PEM certificates of a private CA; `None`: the system's roots.
    ca_pem: Option<Arc<[u8]>>,
}

impl Tls {
    /// Trust the system's roots (Debian: the `ca-certificates` bundle).
    pub fn system_roots() -> Self {
        Self { ca_pem: None }
    }

    /// Trust the CA certificates in `pem` (and only those). Fails unless `pem` holds at least
    /// one certificate and every one of them parses.
    pub fn with_ca_pem(pem: Vec<u8>) -> Result<Self, AccessError> {
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| AccessError::Ca(format!("not a PEM certificate: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| AccessError::Ca(format!("not a usable CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(AccessError::Ca(
                "no certificate in it (expected -----BEGIN CERTIFICATE-----)".into(),
            ));
        }
        Ok(Self {
            ca_pem: Some(pem.into()),
        })
    }

    /// Whether a CA of its own replaces the system's roots.
    pub fn has_own_ca(&self) -> bool {
        self.ca_pem.is_some()
    }
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let trust = if self.ca_pem.is_some() {
            "own CA"
        } else {
            "system roots"
        };
        f.debug_struct("Tls").field("trust", &trust).finish()
    }
}

/// Why a target cannot be turned into a Redis client (nothing was sent anywhere).
#[derive(Debug, Clone, thiserror::Error)]
pub enum AccessError {
    /// Not a Redis URL nor `host:port`; the target is shown redacted.
    #[error("redis address {target}: {why}")]
    Address { target: String, why: String },
    #[error("redis TLS CA: {0}")]
    Ca(String),
}

/// How to reach one kind of Redis process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    role: Role,
    credentials: Option<Credentials>,
    tls: Option<Tls>,
}

impl Access {
    /// No credentials, no TLS.
    pub fn plain(role: Role) -> Self {
        Self {
            role,
            credentials: None,
            tls: None,
        }
    }

    /// Authenticate with `credentials` (for a URL target they replace any in the URL).
    pub fn with_credentials(mut self, credentials: Option<Credentials>) -> Self {
        self.credentials = credentials;
        self
    }

    /// Connect over TLS (`None`: as the target says — only a `rediss://` URL means TLS).
    pub fn with_tls(mut self, tls: Option<Tls>) -> Self {
        self.tls = tls;
        self
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
    }

    /// What the connection to `target` (a URL, or `host:port`) is made of: the address (TLS or
    /// not) and the user and password the handshake sends. A URL's own user and password count
    /// unless this access has credentials, which then replace them; `rediss://` means TLS even
    /// when this access does not ask for it.
    pub fn connection_info(&self, target: &str) -> Result<ConnectionInfo, AccessError> {
        let bad = |why: String| AccessError::Address {
            target: redact::url(target),
            why,
        };
        let info = if target.contains("://") {
            // redis-rs's own errors about a URL never include it.
            target
                .into_connection_info()
                .map_err(|e| bad(e.to_string()))?
        } else {
            let (host, port) = target
                .rsplit_once(':')
                .ok_or_else(|| bad("expected host:port".into()))?;
            let port: u16 = port
                .parse()
                .map_err(|_| bad(format!("port {port:?} is not a number")))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                return Err(bad("no host".into()));
            }
            ConnectionAddr::Tcp(host.to_owned(), port)
                .into_connection_info()
                .map_err(|e| bad(e.to_string()))?
        };
        let addr = match (info.addr().clone(), &self.tls) {
            (ConnectionAddr::Tcp(host, port), Some(_)) => ConnectionAddr::TcpTls {
                host,
                port,
                insecure: false,
                tls_params: None,
            },
            (addr @ ConnectionAddr::Unix(_), Some(_)) => {
                return Err(bad(format!("TLS is on, but {addr} is a unix socket")))
            }
            (addr, _) => addr,
        };
        let redis = match &self.credentials {
            Some(credentials) => {
                let mut redis = RedisConnectionInfo::default()
                    .set_db(info.redis_settings().db())
                    .set_protocol(info.redis_settings().protocol())
                    .set_password(&credentials.password);
                if let Some(user) = &credentials.username {
                    redis = redis.set_username(user);
                }
                redis
            }
            None => info.redis_settings().clone(),
        };
        Ok(info.set_addr(addr).set_redis_settings(redis))
    }

    /// A client for `target` (see `connection_info`), trusting this access's CA over TLS.
    pub fn client(&self, target: &str) -> Result<redis::Client, AccessError> {
        let info = self.connection_info(target)?;
        let tls = matches!(info.addr(), ConnectionAddr::TcpTls { .. });
        if tls {
            install_crypto_provider();
        }
        let ca = self.tls.as_ref().and_then(|t| t.ca_pem.as_ref());
        let client = match ca {
            Some(pem) if tls => redis::Client::build_with_tls(
                info,
                TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.to_vec()),
                },
            ),
            _ => redis::Client::open(info),
        };
        client.map_err(|e| AccessError::Address {
            target: redact::url(target),
            why: e.to_string(),
        })
    }

    /// A multiplexed connection to `target`, authenticated; on failure, why, in words
    /// (`describe`).
    pub async fn connect(
        &self,
        target: &str,
        config: &AsyncConnectionConfig,
    ) -> Result<MultiplexedConnection, String> {
        let client = self.client(target).map_err(|e| e.to_string())?;
        client
            .get_multiplexed_async_connection_with_config(config)
            .await
            .map_err(|e| self.describe(&e))
    }

    /// `error` in words an operator can act on, with no secret in them: an authentication
    /// failure says so and names the settings to check.
    pub fn describe(&self, error: &RedisError) -> String {
        describe(self.role, error)
    }
}

/// See `Access::describe`.
fn describe(role: Role, error: &RedisError) -> String {
    let settings = role.credential_settings();
    match (error.kind(), error.code()) {
        (_, Some("NOAUTH")) => format!(
            "authentication failed (NOAUTH: the {} requires a password and none was given); \
             set {settings}",
            what(role)
        ),
        (ErrorKind::AuthenticationFailed, _) | (_, Some("WRONGPASS")) => format!(
            "authentication failed (WRONGPASS: the {} refused the user name or password); \
             check {settings}",
            what(role)
        ),
        (_, Some("NOPERM")) => format!(
            "permission denied: {error} (the {} ACL user lacks a permission the journal needs; \
             give it +@all or at least the commands in docs/architecture.md)",
            what(role)
        ),
        _ => error.to_string(),
    }
}

fn what(role: Role) -> &'static str {
    match role {
        Role::Server => "server",
        Role::Sentinel => "sentinel",
    }
}

/// How the journal reaches the servers and the sentinels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisAccess {
    pub servers: Access,
    pub sentinels: Access,
}

impl Default for RedisAccess {
    /// No credentials, no TLS (a `rediss://` URL still means TLS).
    fn default() -> Self {
        Self {
            servers: Access::plain(Role::Server),
            sentinels: Access::plain(Role::Sentinel),
        }
    }
}

/// Installs rustls's `ring` provider as the process default, once; a provider that is already
/// installed (by the application) is left alone.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests;
