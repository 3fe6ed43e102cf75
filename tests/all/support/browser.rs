//! A real headless Chromium, driven over WebDriver: `Browser` starts Debian's `chromedriver` on a
//! free port (in its own process group, so every Chromium it starts dies with it), and each
//! `Session` is one browser window with a fresh profile: one user, whose browser prefers English
//! (`session`) or the languages a test names (`session_in`, e.g. Korean). The WebDriver protocol
//! is spoken with awc and serde_json, nothing more.
//!
//! Waiting is always on a condition in the page (`wait_for`, `wait_text`), with a deadline; a
//! test that times out prints what the page showed.

use std::{
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use awc::Client;
use serde_json::{json, Value};

/// What a test waits for one condition in a page: generous, the machine is small and shared.
pub const WAIT: Duration = Duration::from_secs(30);
/// How long chromedriver and a new browser may take to start.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// Between two looks at the page.
const POLL: Duration = Duration::from_millis(50);
/// The key WebDriver names the id of an element with.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// The Enter key, for `type_into`.
pub const ENTER: &str = "\u{E007}";

/// Finds `name` on the PATH.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

pub struct Browser {
    child: Child,
    base: String,
    chromium: PathBuf,
    client: Client,
    profiles: tempfile::TempDir,
}

/// Times chromedriver is started again after it exited before serving.
const DRIVER_TRIES: u32 = 3;

/// How one start of chromedriver went.
enum Launch {
    /// Serving on this port.
    Started(Child, String),
    /// It exited before it said it serves.
    Exited(String),
    /// Still running, but it did not say it serves within `START_DEADLINE` (killed).
    Silent,
}

/// Starts chromedriver on a port of its choosing and waits for it to say which.
fn launch_driver(driver: &std::path::Path) -> Launch {
    let mut child = Command::new(driver)
        .arg("--port=0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // Its own process group: Drop kills chromedriver and every Chromium it started.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", driver.display()));
    let stdout = child.stdout.take().expect("chromedriver stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                let _ = tx.send(rest.trim_end_matches('.').to_owned());
            }
        }
    });
    match rx.recv_timeout(START_DEADLINE) {
        Ok(port) => Launch::Started(child, port),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let status = child
                .wait()
                .map_or_else(|e| format!("no exit status: {e}"), |s| s.to_string());
            Launch::Exited(status)
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            let _ = child.kill();
            Launch::Silent
        }
    }
}

impl Browser {
    /// Starts chromedriver. Fails the test, saying what to run, when Chromium or chromedriver
    /// is missing: these tests are never skipped.
    pub async fn start() -> Browser {
        let (Some(chromium), Some(driver)) = (which("chromium"), which("chromedriver")) else {
            panic!(
                "the browser tests need Debian's chromium and chromedriver on the PATH; \
                 run scripts/ensure-browser (apt-get install chromium chromium-driver)"
            );
        };
        let profiles = tempfile::tempdir().expect("temp dir for browser profiles");
        // chromedriver picks its own free port (`--port=0`) and now and then exits at once
        // without serving (seen in CI: the port it picked was taken by the time it bound it).
        // Such an early exit is retried; one that starts and never says so fails the test.
        let mut tries = 0;
        let (child, port) = loop {
            tries += 1;
            match launch_driver(&driver) {
                Launch::Started(child, port) => break (child, port),
                Launch::Exited(status) if tries < DRIVER_TRIES => {
                    eprintln!(
                        "chromedriver exited before it started ({status}); starting it again"
                    );
                }
                Launch::Exited(status) => {
                    panic!("chromedriver exited before it started, {tries} times (last: {status})")
                }
                Launch::Silent => panic!("chromedriver did not start within {START_DEADLINE:?}"),
            }
        };
        Browser {
            child,
            base: format!("http://127.0.0.1:{port}"),
            chromium,
            client: Client::builder().timeout(START_DEADLINE).finish(),
            profiles,
        }
    }

    /// A new browser window with a fresh profile, preferring English.
    pub async fn session(&self, name: &str) -> Session {
        self.session_in(name, "en-US,en").await
    }

    /// A new browser window with a fresh profile whose preferred languages are `languages`
    /// (Accept-Language style, e.g. "ko-KR,ko"): its UI language is the first, and
    /// `navigator.languages` lists them all.
    pub async fn session_in(&self, name: &str, languages: &str) -> Session {
        let first = languages.split(',').next().unwrap_or("en-US");
        let profile = self.profiles.path().join(name);
        std::fs::create_dir_all(&profile).expect("profile dir");
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1100,1000".to_owned(),
            format!("--lang={first}"),
            format!("--user-data-dir={}", profile.display()),
        ];
        let body = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": self.chromium.display().to_string(),
                        "args": args,
                        "prefs": { "intl": { "accept_languages": languages } },
                    },
                },
            },
        });
        let value = call(
            &self.client,
            "POST",
            &format!("{}/session", self.base),
            Some(body),
        )
        .await
        .unwrap_or_else(|e| panic!("starting a Chromium session for {name}: {e}"));
        let id = value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {value}"));
        Session {
            client: self.client.clone(),
            url: format!("{}/session/{id}", self.base),
            name: name.to_owned(),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The group is chromedriver's pid (process_group(0)); a negative pid names the group.
        if let Ok(pgid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) with a process group we created; no memory is involved.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }
}

/// One WebDriver command; the `value` of the answer, or the WebDriver error as text.
async fn call(
    client: &Client,
    method: &str,
    url: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let method = awc::http::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    let request = client.request(method, url);
    let mut response = match body {
        Some(body) => request.send_json(&body).await,
        None => request.send().await,
    }
    .map_err(|e| format!("{url}: {e}"))?;
    let bytes = response
        .body()
        .limit(64 << 20)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let json: Value = serde_json::from_slice(&bytes).map_err(|e| format!("{url}: {e}"))?;
    let value = json.get("value").cloned().unwrap_or(Value::Null);
    if response.status().is_success() {
        Ok(value)
    } else {
        Err(format!(
            "{url}: {} {}: {}",
            response.status(),
            value["error"].as_str().unwrap_or("?"),
            value["message"].as_str().unwrap_or("?")
        ))
    }
}

/// One browser window: one user of the page.
pub struct Session {
    client: Client,
    url: String,
    pub name: String,
}

impl Session {
    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        call(&self.client, method, &format!("{}{path}", self.url), body)
            .await
            .unwrap_or_else(|e| panic!("[{}] {e}", self.name))
    }

    pub async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url }))).await;
    }

    /// Reloads the page, as the browser's reload button does.
    pub async fn reload(&self) {
        self.cmd("POST", "/refresh", Some(json!({}))).await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns what it returns.
    pub async fn eval(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// A Chrome DevTools command through chromedriver.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.cmd(
            "POST",
            "/goog/cdp/execute",
            Some(json!({ "cmd": cmd, "params": params })),
        )
        .await
    }

    /// Polls `script` until it returns something truthy; fails the test after `WAIT`, showing
    /// the last value and the page's text.
    pub async fn wait_for(&self, what: &str, script: &str, args: Value) -> Value {
        let end = Instant::now() + WAIT;
        loop {
            let value = self.eval(script, args.clone()).await;
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            if Instant::now() > end {
                let page = self
                    .eval(
                        "return document.body ? document.body.innerText : ''",
                        json!([]),
                    )
                    .await;
                panic!(
                    "[{}] timed out after {WAIT:?} waiting for {what}; the page shows:\n{}",
                    self.name,
                    page.as_str().unwrap_or_default()
                );
            }
            actix_rt::time::sleep(POLL).await;
        }
    }

    /// Waits until the text of `css` contains `needle`.
    pub async fn wait_text(&self, css: &str, needle: &str) {
        self.wait_for(
            &format!("{css} to contain {needle:?}"),
            "const e = document.querySelector(arguments[0]);
             return !!e && e.textContent.includes(arguments[1]);",
            json!([css, needle]),
        )
        .await;
    }

    /// Waits until attribute `attr` of `css` is `value`.
    pub async fn wait_attr(&self, css: &str, attr: &str, value: &str) {
        self.wait_for(
            &format!("{css}[{attr}={value:?}]"),
            "const e = document.querySelector(arguments[0]);
             return !!e && e.getAttribute(arguments[1]) === arguments[2];",
            json!([css, attr, value]),
        )
        .await;
    }

    /// The text of `css` now.
    pub async fn text(&self, css: &str) -> String {
        let value = self
            .eval(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                json!([css]),
            )
            .await;
        value
            .as_str()
            .unwrap_or_else(|| panic!("[{}] no element {css}", self.name))
            .to_owned()
    }

    /// Whether `css` is rendered (present and not hidden).
    pub async fn visible(&self, css: &str) -> bool {
        self.eval(
            "const e = document.querySelector(arguments[0]);
             return !!e && e.getClientRects().length > 0;",
            json!([css]),
        )
        .await
        .as_bool()
            == Some(true)
    }

    /// Waits for `css` to be shown and enabled, then returns its WebDriver id.
    async fn interactable(&self, css: &str) -> String {
        self.wait_for(
            &format!("{css} to be shown and enabled"),
            "const e = document.querySelector(arguments[0]);
             return !!e && e.getClientRects().length > 0 && !e.disabled;",
            json!([css]),
        )
        .await;
        let found = self
            .cmd(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("[{}] no element id for {css}: {found}", self.name))
            .to_owned()
    }

    /// A real click on `css` once it can take one.
    pub async fn click(&self, css: &str) {
        let id = self.interactable(css).await;
        self.cmd("POST", &format!("/element/{id}/click"), Some(json!({})))
            .await;
    }

    /// Clears the input `css` and types `text` into it with real key events (`ENTER` presses
    /// Enter).
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.interactable(css).await;
        self.cmd("POST", &format!("/element/{id}/clear"), Some(json!({})))
            .await;
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> Vec<u8> {
        let value = self.cmd("GET", "/screenshot", None).await;
        let text = value.as_str().expect("screenshot as base64");
        base64_decode(text).unwrap_or_else(|| panic!("[{}] screenshot is not base64", self.name))
    }

    /// Closes the window.
    pub async fn quit(self) {
        let _ = call(&self.client, "DELETE", &self.url, None).await;
    }
}

/// Standard base64 (with padding), as WebDriver sends screenshots.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let v = if i >= chunk.len() - pad {
                0
            } else {
                sextet(c)?
            };
            n |= v << (18 - 6 * i);
        }
        let full = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&full[..3usize.checked_sub(pad)?]);
    }
    Some(out)
}

#[test]
fn base64_decodes_padding() {
    assert_eq!(base64_decode("aGk=").as_deref(), Some(&b"hi"[..]));
    assert_eq!(base64_decode("aGV5").as_deref(), Some(&b"hey"[..]));
    assert_eq!(base64_decode("YQ==").as_deref(), Some(&b"a"[..]));
    assert_eq!(base64_decode("a$==").as_deref(), None);
}
