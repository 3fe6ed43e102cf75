//! `TestApp`: the real `roomstate` binary, started on a free port with its own data dir, and
//! driven over HTTP. Stopping it with SIGTERM, killing it with SIGKILL and restarting it on the
//! same data dir are what the durability tests are made of.

use std::{
    path::{Path, PathBuf},
    process::ExitStatus,
    time::{Duration, Instant},
};

use awc::{http::StatusCode, Client};
use serde_json::Value;

use crate::engine::{DropPolicy, EngineProcess};

/// The admin token every test engine runs with.
pub const TOKEN: &str = "test-admin-token";

/// How long an engine may take to start or stop before the test fails.
const START_DEADLINE: Duration = Duration::from_secs(60);

pub struct TestApp {
    engine: Option<EngineProcess>,
    pub base: String,
    bin: PathBuf,
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    env: Vec<(String, String)>,
    client: Client,
}

/// Configures and starts a `TestApp`.
pub struct Builder {
    bin: PathBuf,
    env: Vec<(String, String)>,
}

impl Builder {
    /// Sets `ROOMSTATE__<key>` (key like `PRESENCE__HTTP_TTL_S`).
    pub fn setting(mut self, key: &str, value: impl ToString) -> Self {
        self.env
            .push((format!("ROOMSTATE__{key}"), value.to_string()));
        self
    }

    pub fn start(self) -> TestApp {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let mut app = TestApp::spawn(&self.bin, &dir, self.env);
        app._tmp = Some(tmp);
        app
    }
}

impl TestApp {
    /// An engine from the binary `bin` (the tests pass `env!("CARGO_BIN_EXE_roomstate")`).
    pub fn builder(bin: impl Into<PathBuf>) -> Builder {
        Builder {
            bin: bin.into(),
            env: Vec::new(),
        }
    }

    fn spawn(bin: &Path, dir: &Path, env: Vec<(String, String)>) -> TestApp {
        let mut all = vec![
            ("ROOMSTATE__HTTP__WORKERS".to_owned(), "2".to_owned()),
            (
                "ROOMSTATE__DATA_DIR".to_owned(),
                dir.join("data").display().to_string(),
            ),
            ("ROOMSTATE__ADMIN__TOKEN".to_owned(), TOKEN.to_owned()),
            ("RUST_LOG".to_owned(), "info".to_owned()),
        ];
        all.extend(env.iter().cloned());
        let engine = EngineProcess::spawn(
            bin,
            &all,
            &dir.join("engine.log"),
            START_DEADLINE,
            DropPolicy::Kill,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        TestApp {
            base: engine.base.clone(),
            engine: Some(engine),
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            _tmp: None,
            env,
            client: Client::builder().timeout(Duration::from_secs(60)).finish(),
        }
    }

    /// The engine's log so far (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("engine.log")).unwrap_or_default()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("{}{}", self.base.replacen("http", "ws", 1), path)
    }

    /// SIGTERM, then waits for the exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.terminate();
        self.wait_exit()
    }

    fn engine(&self) -> &EngineProcess {
        self.engine.as_ref().expect("engine running")
    }

    /// The engine's process id.
    pub fn pid(&self) -> u32 {
        self.engine().pid().expect("engine running")
    }

    /// Sends SIGTERM without waiting.
    pub fn terminate(&self) {
        self.engine().terminate();
    }

    /// Waits for the engine to exit (after `terminate`).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut engine = self.engine.take().expect("engine running");
        engine
            .wait_exit(START_DEADLINE)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) {
        if let Some(mut engine) = self.engine.take() {
            engine.kill();
        }
    }

    /// A new engine on the same data dir and settings (after `stop` or `kill`).
    pub fn restart(&mut self) {
        assert!(self.engine.is_none(), "stop or kill the engine first");
        let mut next = TestApp::spawn(&self.bin, &self.dir, self.env.clone());
        self.engine = next.engine.take();
        self.base = std::mem::take(&mut next.base);
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = token {
            req = req.insert_header(("Authorization", format!("Bearer {token}")));
        }
        let mut resp = match body {
            Some(body) => req.send_json(body).await,
            None => req.send().await,
        }
        .unwrap_or_else(|e| panic!("{path}: {e}"));
        let bytes = resp.body().limit(64 << 20).await.expect("response body");
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (resp.status(), json)
    }

    /// A PUT that gives up after `timeout`: `None` if no answer came by then (the request may
    /// still be applied later).
    pub async fn put_within(
        &self,
        path: &str,
        body: Value,
        timeout: Duration,
    ) -> Option<(StatusCode, Value)> {
        let mut resp = self
            .client
            .put(self.url(path))
            .timeout(timeout)
            .send_json(&body)
            .await
            .ok()?;
        let bytes = resp.body().limit(1 << 20).await.ok()?;
        Some((
            resp.status(),
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// A bodiless request with one extra header.
    pub async fn request_with_header(
        &self,
        method: &str,
        path: &str,
        header: (&str, String),
    ) -> (StatusCode, Value) {
        let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
        let mut resp = self
            .client
            .request(method, self.url(path))
            .insert_header(header)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let bytes = resp.body().limit(64 << 20).await.expect("response body");
        (
            resp.status(),
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Sends raw bytes as a body (for malformed input).
    pub async fn raw(&self, method: &str, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
        let mut resp = self
            .client
            .request(method, self.url(path))
            .insert_header(("Content-Type", "application/json"))
            .send_body(body)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let bytes = resp.body().limit(64 << 20).await.expect("response body");
        (
            resp.status(),
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.request("GET", path, None, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.request("POST", path, Some(&body), None).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.request("PUT", path, Some(&body), None).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.request("DELETE", path, None, None).await
    }

    /// `POST /admin/rooms/{id}/close` with the admin token.
    pub async fn close_room(&self, id: &str) -> (StatusCode, Value) {
        let path = format!("/admin/rooms/{id}/close");
        self.request("POST", &path, None, Some(TOKEN)).await
    }

    /// The close of `id`, retried while it answers `503` (a failover, a takeover or a store
    /// outage under way, as the contract allows); its final view. Panics on any other answer,
    /// or when it still answers `503` after `deadline`.
    pub async fn close_room_retried(&self, id: &str, deadline: Duration) -> Value {
        eventually(&format!("the close of {id}"), deadline, || async {
            let (status, view) = self.close_room(id).await;
            answered_close(status, view, "the close")
        })
        .await
    }

    /// Creates a room and returns its id.
    pub async fn create_room(&self, title: &str) -> String {
        let (status, view) = self
            .post("/rooms", serde_json::json!({ "title": title }))
            .await;
        assert_eq!(status, 201, "{view}");
        view["id"].as_str().expect("room id").to_owned()
    }

    pub async fn join(&self, room: &str, user: &str) -> Value {
        let (status, view) = self
            .post(
                &format!("/rooms/{room}/join"),
                serde_json::json!({ "user": user }),
            )
            .await;
        assert_eq!(status, 200, "{view}");
        view
    }

    pub async fn vote(&self, room: &str, user: &str, side: &str) -> (StatusCode, Value) {
        self.put(
            &format!("/rooms/{room}/votes/{user}"),
            serde_json::json!({ "side": side }),
        )
        .await
    }

    pub async fn say(&self, room: &str, user: &str, text: &str) -> (StatusCode, Value) {
        self.post(
            &format!("/rooms/{room}/messages"),
            serde_json::json!({ "user": user, "text": text }),
        )
        .await
    }

    pub async fn room(&self, room: &str) -> Value {
        let (status, view) = self.get(&format!("/rooms/{room}")).await;
        assert_eq!(status, 200, "{view}");
        view
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- engine log ({}) ---\n{}",
                self.dir.display(),
                self.log()
            );
        }
    }
}

/// A close's answer: its final view on `200`, `None` on `503` (retry); panics on anything else.
pub(crate) fn answered_close(status: StatusCode, view: Value, what: &str) -> Option<Value> {
    match status.as_u16() {
        200 => Some(view),
        503 => None,
        other => panic!("{what} answered {other}: {view}"),
    }
}

/// Polls `probe` until it returns `Some`, or fails the test after `deadline`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        actix_rt::time::sleep(Duration::from_millis(25)).await;
    }
}
