//! User tokens for the tests, minted as an application's login service would (with the
//! `jsonwebtoken` crate), forged ones (`alg: none`, algorithm confusion), RSA and EC key pairs made
//! by the `openssl` command in a temp dir, and HTTP calls that show the `WWW-Authenticate` header.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::app::TestApp;

/// The HS256 secret of the token-mode test engines.
pub const SECRET: &str = "roomstate-test-secret-0123456789abcdef";

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Claims for `user`, valid for an hour, good for every room.
pub fn claims(user: &str) -> Value {
    json!({"sub": user, "exp": now() + 3600, "iat": now()})
}

/// An HS256 token signed with `SECRET`.
pub fn hs256(claims: &Value) -> String {
    hs256_with(SECRET.as_bytes(), claims)
}

/// An HS256 token signed with any bytes as the secret.
pub fn hs256_with(secret: &[u8], claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("HS256 signing")
}

/// A token with `header` and `claims` as given and `signature` as its third part, signed by
/// nobody: `alg: none` and other forgeries.
pub fn forged(header: &Value, claims: &Value, signature: &[u8]) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.{}",
        part(header),
        part(claims),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// A key pair on disk: the private key signs (as the login service), the public key file is what
/// the engine is given.
pub struct KeyPair {
    pub private_pem: Vec<u8>,
    pub public_pem: Vec<u8>,
    pub public_file: PathBuf,
    algorithm: Algorithm,
    _dir: tempfile::TempDir,
}

impl KeyPair {
    /// RSA 2048 (RS256).
    pub fn rsa() -> KeyPair {
        Self::generate(
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            Algorithm::RS256,
        )
    }

    /// EC P-256 (ES256).
    pub fn ec() -> KeyPair {
        Self::generate(
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            Algorithm::ES256,
        )
    }

    fn generate(params: &[&str], algorithm: Algorithm) -> KeyPair {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut genpkey = vec!["genpkey"];
        genpkey.extend(params);
        genpkey.extend(["-out", "private.pem"]);
        openssl(dir.path(), &genpkey);
        openssl(
            dir.path(),
            &[
                "pkey",
                "-in",
                "private.pem",
                "-pubout",
                "-out",
                "public.pem",
            ],
        );
        let read = |name: &str| std::fs::read(dir.path().join(name)).expect("key file");
        KeyPair {
            private_pem: read("private.pem"),
            public_pem: read("public.pem"),
            public_file: dir.path().join("public.pem"),
            algorithm,
            _dir: dir,
        }
    }

    /// A token signed with this pair's private key and algorithm.
    pub fn sign(&self, claims: &Value) -> String {
        let key = match self.algorithm {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&self.private_pem),
            _ => EncodingKey::from_ec_pem(&self.private_pem),
        }
        .expect("private key");
        encode(&Header::new(self.algorithm), claims, &key).expect("signing")
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
                "the auth tests make their RSA and EC keys with the `openssl` command, which \
                 could not be run ({e}); install it (Debian: apt-get install openssl)"
            )
        });
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An HTTP answer with the one header these tests look at.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub www_authenticate: Option<String>,
}

impl Answer {
    /// The body's `error` code.
    pub fn code(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
}

fn client() -> awc::Client {
    awc::Client::builder()
        .max_http_version(awc::http::Version::HTTP_11)
        .timeout(Duration::from_secs(30))
        .finish()
}

/// `method path` with an optional JSON body, an optional bearer token, and more headers.
pub async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    body: Option<&Value>,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
) -> Answer {
    let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client().request(method, app.url(path));
    if let Some(token) = bearer {
        req = req.insert_header(("Authorization", format!("Bearer {token}")));
    }
    for (name, value) in headers {
        req = req.insert_header((*name, *value));
    }
    let sent = match body {
        Some(body) => req.send_json(body).await,
        None => req.send().await,
    };
    let mut resp = sent.unwrap_or_else(|e| panic!("{path}: {e}"));
    let www_authenticate = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("ASCII header").to_owned());
    let bytes = resp.body().limit(1 << 20).await.expect("response body");
    Answer {
        status: resp.status().as_u16(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        www_authenticate,
    }
}

/// A WebSocket upgrade request that the engine is expected to refuse: its status, body and
/// challenge (a real WebSocket client sees only the status of a refused upgrade).
pub async fn refused_upgrade(app: &TestApp, path: &str, bearer: Option<&str>) -> Answer {
    let answer = call(
        app,
        "GET",
        path,
        None,
        bearer,
        &[
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
    )
    .await;
    assert_ne!(answer.status, 101, "{path} was upgraded");
    answer
}
