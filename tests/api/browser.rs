//! Headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`, which
//! `scripts/test` installs). One chromedriver per test; each `page()` is a browser session of
//! its own (a nurse's PC, a corridor screen, a patient's phone).

use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a page may take to show what a test waits for. Generous: CI machines are slow and
/// Chromium's first start is slower still. A wait ends as soon as the condition holds.
const WAIT: Duration = Duration::from_secs(30);

pub struct Driver {
    child: Child,
    url: String,
    _profiles: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(env: &str, candidates: &[&str]) -> String {
    if let Ok(p) = std::env::var(env) {
        return p;
    }
    for c in candidates {
        if std::path::Path::new(c).exists() {
            return (*c).to_owned();
        }
    }
    panic!("{} not found (tried {candidates:?}; set {env}): scripts/test installs chromium and chromium-driver", candidates[0]);
}

pub enum Screen {
    Desktop { width: u32, height: u32 },
    /// A phone: mobile emulation with this CSS viewport.
    Phone { width: u32, height: u32 },
}

impl Driver {
    pub async fn start() -> Driver {
        let bin = find("CHROMEDRIVER", &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]);
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let child = Command::new(bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let (http, status) = (&http, format!("{url}/status"));
        let status = &status;
        let up = crate::helpers::poll(WAIT, move || async move { http.get(status).send().await.ok().filter(|r| r.status().is_success()).map(|_| ()) }).await;
        assert!(up.is_some(), "chromedriver did not start");
        Driver { child, url, _profiles: tempfile::tempdir().expect("temp dir") }
    }

    /// A new browser window of its own profile.
    pub async fn page(&self, screen: Screen) -> Client {
        let profile = tempfile::tempdir_in(self._profiles.path()).expect("profile dir").keep();
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--hide-scrollbars".into(),
            "--autoplay-policy=no-user-gesture-required".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let mut options = json!({"binary": find("CHROMIUM", &["/usr/bin/chromium", "/usr/bin/chromium-browser"])});
        match screen {
            Screen::Desktop { width, height } => args.push(format!("--window-size={width},{height}")),
            Screen::Phone { width, height } => {
                options["mobileEmulation"] = json!({"deviceMetrics": {"width": width, "height": height, "pixelRatio": 2.0, "touch": true}});
            }
        }
        options["args"] = json!(args);
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), options);
        let page = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session");
        if let Screen::Desktop { width, height } = screen {
            viewport(&page, width, height).await;
        }
        page
    }
}

/// Wait until `condition` (a JavaScript expression) is true on the page; panic with `what` and
/// the page's text if it never is.
pub async fn until(page: &Client, condition: &str, what: &str) {
    let script = format!("try {{ return !!({condition}); }} catch (e) {{ return false; }}");
    let script = &script;
    let seen = crate::helpers::poll(WAIT, move || async move { (page.execute(script, vec![]).await.ok() == Some(Value::Bool(true))).then_some(()) }).await;
    if seen.is_none() {
        let text = page.execute("return document.body ? document.body.innerText : ''", vec![]).await.unwrap_or_default();
        panic!("{what}: not seen within {WAIT:?}; the page shows:\n{}", text.as_str().unwrap_or(""));
    }
}

/// Make the page's viewport (not the window around it) exactly `width` x `height` CSS pixels.
pub async fn viewport(page: &Client, width: u32, height: u32) {
    let frame = eval(page, "[window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]").await;
    let d = |i: usize| frame[i].as_u64().unwrap_or(0) as u32;
    page.set_window_size(width + d(0), height + d(1)).await.expect("resize");
    until(page, &format!("window.innerWidth === {width} && window.innerHeight === {height}"), "the viewport size").await;
}

/// Evaluate a JavaScript expression on the page.
pub async fn eval(page: &Client, expr: &str) -> Value {
    page.execute(&format!("return ({expr});"), vec![]).await.expect("script runs")
}

/// Save a screenshot as a test artifact: `target/test-artifacts/screenshots/{name}.png`.
pub async fn screenshot(page: &Client, name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts/screenshots");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    let png = page.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).expect("write screenshot");
    path
}
