//! `RedisServer`: a standalone Redis of a test's own (no replicas, no sentinels) for the
//! plain-URL journal. `RedisServer::start()` is an open one; `RedisServer::builder()` can lock it
//! with a password, an ACL user and TLS (`Security`), with the fixture's own queries
//! authenticating and using TLS too.

use std::path::Path;

use crate::{
    certs::TestCerts,
    ports::free_ports,
    process::{launch, os_args, require_redis_server, Kind, LaunchError, Proc},
    redis_admin::{self, query},
    redis_security::Security,
};

/// A standalone Redis (no replicas, no sentinels) for the plain-URL journal, with every write
/// fsynced (`appendfsync always`): without replicas to `WAIT` for, that is what makes an
/// acknowledged write survive a `kill -9`.
pub struct RedisServer {
    // Declared first: the process dies before its dir goes.
    server: Proc,
    security: Security,
    certs: Option<TestCerts>,
    _tmp: tempfile::TempDir,
}

/// Configures a `RedisServer` before it starts.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    security: Security,
}

impl Builder {
    /// A password, an ACL user, TLS (see `Security`; the sentinel options do not apply).
    pub fn security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    pub async fn start(self) -> RedisServer {
        require_redis_server();
        self.security.check();
        for _ in 0..5 {
            let tmp = tempfile::Builder::new()
                .prefix("roomstate-redis-")
                .tempdir()
                .expect("temp dir for redis");
            let certs = self.security.certs(&tmp.path().join("tls"));
            let port = free_ports(1)[0];
            let dir = tmp.path().to_path_buf();
            let mut args = self.security.server_args(port, certs.as_ref());
            args.extend(os_args(&["--bind", "127.0.0.1", "--dir"]));
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
            redis_admin::register(
                &server.addr(),
                self.security.admin_server_access(certs.as_ref()),
            );
            match launch(&mut server, true).await {
                Ok(()) => {
                    return RedisServer {
                        server,
                        security: self.security,
                        certs,
                        _tmp: tmp,
                    }
                }
                Err(LaunchError::PortInUse) => redis_admin::forget(&server.addr()),
                Err(LaunchError::Failed(why)) => {
                    redis_admin::forget(&server.addr());
                    panic!("redis did not start: {why}\n{}", server.log_tail())
                }
            }
        }
        panic!("redis: ports kept being taken");
    }
}

impl RedisServer {
    /// An open server (no password, no TLS).
    pub async fn start() -> RedisServer {
        Self::builder().start().await
    }

    /// A server to configure before it starts.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// `redis://127.0.0.1:P`, or `rediss://` with TLS; never with credentials (see
    /// `engine_settings`).
    pub fn url(&self) -> String {
        let scheme = if self.security.uses_tls() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://{}", self.server.addr())
    }

    /// `127.0.0.1:P`.
    pub fn addr(&self) -> String {
        self.server.addr()
    }

    /// The engine's settings for this server (keys without `ROOMSTATE__`): `REDIS__URL` and the
    /// credentials and TLS settings of its `Security`.
    pub fn engine_settings(&self) -> Vec<(String, String)> {
        let mut settings = vec![("REDIS__URL".to_owned(), self.url())];
        settings.extend(self.security.engine_settings(self.certs.as_ref()));
        settings
    }

    /// The CA that signed the server's certificate, with TLS.
    pub fn tls_ca_file(&self) -> Option<&Path> {
        self.certs.as_ref().map(|c| c.ca.as_path())
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        self.server.kill();
    }

    /// Starts the killed server again on the same port and data.
    pub async fn restart(&mut self) {
        match launch(&mut self.server, false).await {
            Ok(()) => {}
            Err(LaunchError::PortInUse) => panic!("redis did not restart: its port was taken"),
            Err(LaunchError::Failed(why)) => panic!("redis did not restart: {why}"),
        }
    }

    /// Keys matching `pattern`.
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        query(&self.server.addr(), redis::cmd("KEYS").arg(pattern))
            .await
            .unwrap_or_else(|e| panic!("KEYS {pattern}: {e}"))
    }

    /// The tail of the server's log, for failure messages.
    pub fn log(&self) -> String {
        self.server.log_tail()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.server.kill();
        redis_admin::forget(&self.server.addr());
    }
}
