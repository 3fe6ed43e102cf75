//! `RedisServer`: a standalone Redis of a test's own (no replicas, no sentinels) for the
//! plain-URL journal.

use crate::{
    ports::free_ports,
    process::{launch, os_args, require_redis_server, Kind, LaunchError, Proc},
    redis_admin::query,
};

/// A standalone Redis (no replicas, no sentinels) for the plain-URL journal, with every write
/// fsynced (`appendfsync always`): without replicas to `WAIT` for, that is what makes an
/// acknowledged write survive a `kill -9`.
pub struct RedisServer {
    _tmp: tempfile::TempDir,
    server: Proc,
}

impl RedisServer {
    pub async fn start() -> RedisServer {
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
            match launch(&mut server, true).await {
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
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.server.kill();
    }
}
