//! `Security`: how a test's Redis is locked, as production's is — `requirepass` on every server
//! (with `masterauth` for replication), optionally an ACL user for the clients, `requirepass` on
//! the sentinels (with `sentinel auth-user/auth-pass` for the monitored master and `sentinel
//! sentinel-pass` between sentinels, as Redis 7.0 needs), and TLS on every port (with
//! `tls-replication`, and certificates from `certs`). From one `Security` come the servers'
//! arguments, the sentinels' config lines, the fixture's own admin access, and the engine's
//! settings (`ROOMSTATE__REDIS__...`).
//!
//! Who authenticates as whom:
//! - the `default` user has the `requirepass` password: the fixture's admin queries use it;
//! - with an ACL user (`user <name> on ><pass> ~* &* +@all`), the engine, the replicas
//!   (`masteruser`) and the sentinels (`auth-user`) use that user; without one, the `default`
//!   user;
//! - the sentinels have one password of their own (`requirepass`, `sentinel-pass`).

use std::{ffi::OsString, path::Path};

use roomstate_journal::access::{Access, Credentials, Role, Tls};

use crate::{certs::TestCerts, process::os_args};

/// The locks on a test's Redis: none by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    password: Option<String>,
    acl_user: Option<(String, String)>,
    sentinel_password: Option<String>,
    tls: bool,
}

impl Security {
    /// No password, no TLS.
    pub fn none() -> Self {
        Self::default()
    }

    /// `requirepass password` on every server, `masterauth` for replication.
    pub fn requirepass(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self
    }

    /// An ACL user (`~* &* +@all`) that the engine, the replicas and the sentinels use instead
    /// of the `default` user. Needs `requirepass` (the `default` user keeps that password).
    pub fn acl_user(mut self, name: &str, password: &str) -> Self {
        self.acl_user = Some((name.to_owned(), password.to_owned()));
        self
    }

    /// `requirepass password` on every sentinel (and `sentinel sentinel-pass` between them).
    pub fn sentinel_requirepass(mut self, password: &str) -> Self {
        self.sentinel_password = Some(password.to_owned());
        self
    }

    /// TLS on every server and sentinel (`port 0`, `tls-port`), replication over TLS.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    pub fn uses_tls(&self) -> bool {
        self.tls
    }

    /// Panics with what is missing when the options do not fit together.
    pub(crate) fn check(&self) {
        assert!(
            self.acl_user.is_none() || self.password.is_some(),
            "Security::acl_user needs Security::requirepass (the default user's password, which \
             the fixture's own admin queries use)"
        );
    }

    /// The certificates, when TLS is on (made in `dir`).
    pub(crate) fn certs(&self, dir: &Path) -> Option<TestCerts> {
        self.tls.then(|| TestCerts::make(dir))
    }

    /// The user and password the clients of the servers use (`None`: no password).
    fn client_credentials(&self) -> Option<(Option<&str>, &str)> {
        match (&self.acl_user, &self.password) {
            (Some((user, pass)), _) => Some((Some(user.as_str()), pass.as_str())),
            (None, Some(pass)) => Some((None, pass.as_str())),
            (None, None) => None,
        }
    }

    /// A redis-server's arguments for listening on `port` (plain or TLS) with these locks.
    pub(crate) fn server_args(&self, port: u16, certs: Option<&TestCerts>) -> Vec<OsString> {
        let port = port.to_string();
        let mut args = match certs {
            Some(certs) => {
                let mut args = os_args(&["--port", "0", "--tls-port", &port]);
                for (flag, file) in [
                    ("--tls-cert-file", &certs.cert),
                    ("--tls-key-file", &certs.key),
                    ("--tls-ca-cert-file", &certs.ca),
                ] {
                    args.push(flag.into());
                    args.push(file.as_os_str().to_owned());
                }
                args.extend(os_args(&[
                    "--tls-replication",
                    "yes",
                    "--tls-auth-clients",
                    "no",
                ]));
                args
            }
            None => os_args(&["--port", &port]),
        };
        if let Some(password) = &self.password {
            args.extend(os_args(&["--requirepass", password]));
        }
        if let Some((user, pass)) = &self.acl_user {
            let rule = format!(">{pass}");
            args.extend(os_args(&["--user", user, "on", &rule, "~*", "&*", "+@all"]));
            args.extend(os_args(&["--masteruser", user]));
        }
        if let Some((_, pass)) = self.client_credentials() {
            args.extend(os_args(&["--masterauth", pass]));
        }
        args
    }

    /// A sentinel's config lines for listening on `port` (plain or TLS) with these locks.
    pub(crate) fn sentinel_lines(&self, port: u16, certs: Option<&TestCerts>) -> String {
        let mut lines = String::new();
        match certs {
            Some(certs) => {
                lines += &format!(
                    "port 0\ntls-port {port}\ntls-cert-file \"{}\"\ntls-key-file \"{}\"\n\
                     tls-ca-cert-file \"{}\"\ntls-replication yes\ntls-auth-clients no\n",
                    certs.cert.display(),
                    certs.key.display(),
                    certs.ca.display()
                );
            }
            None => lines += &format!("port {port}\n"),
        }
        if let Some(password) = &self.sentinel_password {
            lines +=
                &format!("requirepass \"{password}\"\nsentinel sentinel-pass \"{password}\"\n");
        }
        lines
    }

    /// The config lines about the monitored master, after `sentinel monitor`.
    pub(crate) fn sentinel_master_lines(&self, master: &str) -> String {
        let mut lines = String::new();
        if let Some((user, _)) = &self.acl_user {
            lines += &format!("sentinel auth-user {master} \"{user}\"\n");
        }
        if let Some((_, pass)) = self.client_credentials() {
            lines += &format!("sentinel auth-pass {master} \"{pass}\"\n");
        }
        lines
    }

    fn tls_access(&self, certs: Option<&TestCerts>) -> Option<Tls> {
        let certs = certs?;
        let pem = std::fs::read(&certs.ca).expect("the test CA certificate");
        Some(Tls::with_ca_pem(pem).expect("the test CA certificate parses"))
    }

    /// How the fixture's own admin queries reach a server: the `default` user.
    pub(crate) fn admin_server_access(&self, certs: Option<&TestCerts>) -> Access {
        Access::plain(Role::Server)
            .with_credentials(
                self.password
                    .as_ref()
                    .map(|p| Credentials::new(None, p.clone())),
            )
            .with_tls(self.tls_access(certs))
    }

    /// How the fixture's own admin queries reach a sentinel.
    pub(crate) fn admin_sentinel_access(&self, certs: Option<&TestCerts>) -> Access {
        Access::plain(Role::Sentinel)
            .with_credentials(
                self.sentinel_password
                    .as_ref()
                    .map(|p| Credentials::new(None, p.clone())),
            )
            .with_tls(self.tls_access(certs))
    }

    /// The engine's settings (keys as `TestApp`'s builder takes them, without `ROOMSTATE__`) for
    /// the right credentials and TLS: `REDIS__USERNAME`, `REDIS__PASSWORD`,
    /// `REDIS__SENTINEL_PASSWORD`, `REDIS__TLS`, `REDIS__TLS_CA_FILE`, as they apply.
    pub(crate) fn engine_settings(&self, certs: Option<&TestCerts>) -> Vec<(String, String)> {
        let mut settings = Vec::new();
        let mut set = |key: &str, value: String| settings.push((key.to_owned(), value));
        if let Some((user, pass)) = self.client_credentials() {
            if let Some(user) = user {
                set("REDIS__USERNAME", user.to_owned());
            }
            set("REDIS__PASSWORD", pass.to_owned());
        }
        if let Some(pass) = &self.sentinel_password {
            set("REDIS__SENTINEL_PASSWORD", pass.clone());
        }
        if let Some(certs) = certs {
            set("REDIS__TLS", "true".to_owned());
            set("REDIS__TLS_CA_FILE", certs.ca.display().to_string());
        }
        settings
    }

    /// The journal's access to the servers (for journal tests that open a `RedisJournal`).
    pub(crate) fn client_server_access(&self, certs: Option<&TestCerts>) -> Access {
        Access::plain(Role::Server)
            .with_credentials(
                self.client_credentials()
                    .map(|(user, pass)| Credentials::new(user.map(str::to_owned), pass)),
            )
            .with_tls(self.tls_access(certs))
    }
}
