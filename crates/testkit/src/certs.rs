//! `TestCerts`: a certificate authority of a test's own and one certificate it signed for
//! `127.0.0.1` and `localhost` (SAN `IP:127.0.0.1`, `DNS:localhost`), made with the `openssl`
//! command-line tool into a directory the caller owns (the fixture's temp dir), for Redis
//! servers and sentinels with TLS. Every Redis process of a fixture uses the one certificate,
//! as a server and, for replication and the sentinels' links, as a client.
//!
//! A missing `openssl` is a failure that says what to install, never a skip.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

/// The files a TLS Redis needs (`tls-cert-file`, `tls-key-file`, `tls-ca-cert-file`).
#[derive(Debug, Clone)]
pub struct TestCerts {
    /// The CA's certificate (PEM): what clients trust (`redis.tls_ca_file`).
    pub ca: PathBuf,
    /// The server certificate (PEM), signed by the CA.
    pub cert: PathBuf,
    /// The server certificate's private key (PEM).
    pub key: PathBuf,
}

impl TestCerts {
    /// Makes a CA and a server certificate (EC P-256, valid for ten years) in `dir`.
    pub fn make(dir: &Path) -> TestCerts {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cert dir {}: {e}", dir.display()));
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "3650",
            "-subj",
            "/CN=roomstate test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(dir, &ca);
        let mut request = vec!["req"];
        request.extend(ec);
        request.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        openssl(dir, &request);
        fs::write(
            dir.join("server.ext"),
            "subjectAltName = IP:127.0.0.1, DNS:localhost\n\
             basicConstraints = CA:FALSE\n\
             keyUsage = critical, digitalSignature, keyEncipherment\n\
             extendedKeyUsage = serverAuth, clientAuth\n",
        )
        .expect("server.ext");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "3650",
                "-extfile",
                "server.ext",
            ],
        );
        TestCerts {
            ca: dir.join("ca.crt"),
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
        }
    }
}

/// Runs `openssl` in `dir`; fails the test saying what to install when it is missing.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "the TLS Redis fixtures make their certificates with the `openssl` command, which \
                 cannot be run ({e}): install it (`apt-get install openssl`)"
            )
        });
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
