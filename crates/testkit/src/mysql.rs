//! `TestDatabase`: a MariaDB database of a test's own, created when the test starts and dropped
//! in `Drop`, so tests never see each other's rows.
//!
//! A missing MariaDB, or a build without the feature `mysql`, is a failure that says what to do,
//! never a silent skip.

/// Base URL of the test server (no database); override with `ROOMSTATE_TEST_MYSQL_URL`.
pub const DEFAULT_URL: &str = "mysql://roomstate:roomstate@127.0.0.1:3306";
pub const URL_ENV: &str = "ROOMSTATE_TEST_MYSQL_URL";

/// Panics with how to build the tests when this build cannot speak MySQL.
pub fn require_feature() {
    if !cfg!(feature = "mysql") {
        panic!(
            "this test needs MySQL support: build with `--features mysql` \
             (`cargo test --workspace --all-features`)"
        );
    }
}

/// The server URL the tests use, without a trailing slash.
pub fn base_url() -> String {
    std::env::var(URL_ENV)
        .unwrap_or_else(|_| DEFAULT_URL.to_owned())
        .trim_end_matches('/')
        .to_owned()
}

/// A database named `roomstate_t_<random>` on the test server.
pub struct TestDatabase {
    base: String,
    name: String,
}

impl TestDatabase {
    pub fn create() -> TestDatabase {
        require_feature();
        let base = base_url();
        let name = format!("roomstate_t_{:016x}", rand::random::<u64>());
        imp::create(&base, &name);
        TestDatabase { base, name }
    }

    /// `mysql://.../roomstate_t_<random>`.
    pub fn url(&self) -> String {
        format!("{}/{}", self.base, self.name)
    }

    /// A proxy in front of the server (to play an outage or a hang of it), and this database's
    /// URL through it.
    pub fn behind_a_proxy(&self) -> (crate::tcp_proxy::TcpProxy, String) {
        use std::net::ToSocketAddrs;

        let (creds, server) = self
            .base
            .strip_prefix("mysql://")
            .and_then(|u| u.split_once('@'))
            .unwrap_or_else(|| panic!("not a mysql://user:pass@host:port URL: {}", self.base));
        let target = server
            .to_socket_addrs()
            .unwrap_or_else(|e| panic!("resolving {server}: {e}"))
            .next()
            .expect("an address for the MariaDB server");
        let proxy = crate::tcp_proxy::TcpProxy::start(target);
        let proxied = format!("mysql://{creds}@{}/{}", proxy.addr(), self.name);
        (proxy, proxied)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        imp::drop_database(&self.base, &self.name);
    }
}

#[cfg(feature = "mysql")]
mod imp {
    use diesel::{connection::SimpleConnection, Connection, MysqlConnection};

    fn connect(base: &str) -> MysqlConnection {
        MysqlConnection::establish(base).unwrap_or_else(|e| {
            panic!(
                "MariaDB is not reachable at {} ({e}). Start it with `sudo scripts/ensure-mariadb` \
                 (installs and starts MariaDB and creates the roomstate user), or point {} at a \
                 server where that user may create roomstate_* databases.",
                roomstate_core::redact::url(base),
                super::URL_ENV
            )
        })
    }

    pub fn create(base: &str, name: &str) {
        connect(base)
            .batch_execute(&format!(
                "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            ))
            .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
    }

    pub fn drop_database(base: &str, name: &str) {
        let dropped = MysqlConnection::establish(base)
            .map_err(|e| e.to_string())
            .and_then(|mut c| {
                c.batch_execute(&format!("DROP DATABASE IF EXISTS `{name}`"))
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = dropped {
            eprintln!("could not drop test database {name}: {e}");
        }
    }
}

#[cfg(not(feature = "mysql"))]
mod imp {
    pub fn create(_base: &str, _name: &str) {
        super::require_feature();
    }

    pub fn drop_database(_base: &str, _name: &str) {}
}
