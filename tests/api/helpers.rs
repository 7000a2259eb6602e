//! `spawn_app()`: the real `clinicflow serve` binary on port 0 with its own temp data dir.

#[path = "../support/server.rs"]
mod server;

use server::{spawn, Spawned};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

pub const TOKEN: &str = "test-staff-token-0123456789";

/// The instant every test server's clock starts at, unless `CLINICFLOW_TEST_AT` names another
/// (RFC 3339): a Monday morning in the demo hospital's zone, inside every opening hour. The
/// tests never read the machine's date, weekday, time of day or time zone; `scripts/test` runs
/// the clock-sensitive ones again at other instants (08:00, a Sunday afternoon, either side of
/// midnight, and in another process time zone).
pub const DEFAULT_TEST_AT: &str = "2026-12-07T10:00:00+08:00";

/// The pinned instant (Unix ms) servers of this run start at.
pub fn test_at_ms() -> i64 {
    let text = std::env::var("CLINICFLOW_TEST_AT").unwrap_or_else(|_| DEFAULT_TEST_AT.to_owned());
    chrono::DateTime::parse_from_rfc3339(&text).unwrap_or_else(|e| panic!("CLINICFLOW_TEST_AT={text:?}: {e}")).timestamp_millis()
}

/// Each data dir's clock: the pinned instant, and when its first server started. A server
/// started again on the same data dir (after `kill -9`) goes on from where the first one's
/// clock is now, as a real restart would; another data dir starts at the pinned instant again,
/// so a test does not inherit the minutes the suite has been running.
static CLOCKS: Mutex<Option<HashMap<PathBuf, (i64, Instant)>>> = Mutex::new(None);

fn clock_of(data: &Path) -> (i64, Instant) {
    let mut clocks = CLOCKS.lock().unwrap_or_else(|p| p.into_inner());
    *clocks.get_or_insert_with(HashMap::new).entry(data.to_owned()).or_insert_with(|| (test_at_ms(), Instant::now()))
}

/// The time on the clock of the servers of `data`, Unix ms.
pub fn now_ms_of(data: &Path) -> i64 {
    let (at, since) = clock_of(data);
    at + since.elapsed().as_millis() as i64
}

/// How long one "minute ago" of a HIS message's time is in the tests (ms): a minute, or, when
/// the pinned instant is within the first four hours of the hospital's day (00:01), the time
/// since midnight over 241, so times up to 240 "minutes" ago stay on today's service day — a
/// registration of an earlier day is refused — in the same order.
pub fn his_minute_ms() -> i64 {
    use chrono::TimeZone;
    let at = test_at_ms();
    let local = chrono_tz::Asia::Shanghai.from_utc_datetime(&chrono::DateTime::from_timestamp_millis(at).unwrap().naive_utc());
    let midnight = chrono_tz::Asia::Shanghai.from_local_datetime(&local.date_naive().and_hms_opt(0, 0, 0).unwrap()).unwrap().timestamp_millis();
    if at - midnight > 241 * 60_000 {
        60_000
    } else {
        ((at - midnight) / 241).max(1)
    }
}

fn rfc3339(ms: i64) -> String {
    use chrono::TimeZone;
    chrono::Utc.timestamp_millis_opt(ms).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub struct TestApp {
    pub base: String,
    /// The embedded MQTT broker's port, when it runs.
    pub mqtt_port: Option<u16>,
    /// HL7 over MLLP's port, when `--hl7` is on.
    pub hl7_port: Option<u16>,
    pub client: reqwest::Client,
    /// The server's data dir.
    pub data: std::path::PathBuf,
    child: Child,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh server on a fresh data dir with the demo hospital.
pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut app = start(dir.path(), None);
    app._dir = Some(dir);
    app
}

/// A server on `data` (kept by the caller, so a restart finds the same journal).
pub fn start(data: &Path, config: Option<&Path>) -> TestApp {
    start_with_env(data, config, &[])
}

/// `start` with extra environment (limits the tests shorten).
pub fn start_with_env(data: &Path, config: Option<&Path>, env: &[(&str, &str)]) -> TestApp {
    let mut args: Vec<String> = Vec::new();
    if let Some(c) = config {
        args.push("--config".into());
        args.push(c.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    launch(data, "127.0.0.1:0", &args, env)
}

/// `start` with extra `serve` arguments.
pub fn start_args(data: &Path, args: &[&str]) -> TestApp {
    launch(data, "127.0.0.1:0", args, &[])
}

/// `start` on a given HTTP address (a restart where open pages expect to find the server again).
pub fn start_at(data: &Path, http: &str) -> TestApp {
    launch(data, http, &[], &[])
}

/// `start` with the server's log (stderr) written to `log`, to read what it said.
pub fn start_logging_to(data: &Path, log: &Path) -> TestApp {
    launch_with(data, "127.0.0.1:0", &[], &[], Stdio::from(std::fs::File::create(log).expect("log file")))
}

/// [`start_logging_to`] with extra environment.
pub fn start_logging_with_env(data: &Path, log: &Path, env: &[(&str, &str)]) -> TestApp {
    launch_with(data, "127.0.0.1:0", &[], env, Stdio::from(std::fs::File::create(log).expect("log file")))
}

fn launch(data: &Path, http: &str, args: &[&str], env: &[(&str, &str)]) -> TestApp {
    launch_with(data, http, args, env, Stdio::inherit())
}

fn launch_with(data: &Path, http: &str, args: &[&str], env: &[(&str, &str)], stderr: Stdio) -> TestApp {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clinicflow"));
    // The embedded broker on a free port, so tests can run side by side.
    cmd.arg("serve").arg("--data").arg(data).arg("--http").arg(http).arg("--mqtt").arg("127.0.0.1:0").args(args);
    // The server's clock is the test's: pinned, and continuing across restarts on `data`.
    cmd.env("CLINICFLOW_CLOCK", rfc3339(now_ms_of(data)));
    cmd.env("CLINICFLOW_STAFF_TOKEN", TOKEN).env("RUST_LOG", "warn").stderr(stderr);
    // The caller's environment last, so it can say more (RUST_LOG) or pin another instant.
    cmd.envs(env.iter().copied());
    let Spawned { child, base, mqtt_port, hl7_port } = spawn(cmd);
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().expect("client");
    TestApp { base, client, data: data.to_owned(), child, mqtt_port, hl7_port, _dir: None }
}

impl TestApp {
    /// The server's clock now (Unix ms): the pinned test instant plus the time since this data
    /// dir's first server started. Never the machine's wall clock.
    pub fn now_ms(&self) -> i64 {
        now_ms_of(&self.data)
    }

    /// [`TestApp::now_ms`] as a UTC instant.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        use chrono::TimeZone;
        chrono::Utc.timestamp_millis_opt(self.now_ms()).unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Waits (bounded) for the server to end by itself; its exit status, `None` if it still runs.
    pub async fn exited_within(&mut self, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
        exited_within(&mut self.child, limit).await
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, no goodbye.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client.post(self.url(path)).bearer_auth(TOKEN).json(&body).send().await.expect("request")
    }

    pub async fn post_empty(&self, path: &str) -> reqwest::Response {
        self.client.post(self.url(path)).bearer_auth(TOKEN).send().await.expect("request")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).bearer_auth(TOKEN).send().await.expect("request")
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.expect("json")
    }

    /// Issue a walk-in ticket; returns the response body.
    pub async fn issue(&self, queue: &str, patient: &str) -> serde_json::Value {
        let r = self.post(&format!("/api/v1/queues/{queue}/tickets"), serde_json::json!({"patient_id": patient, "name": "张三丰"})).await;
        assert_eq!(r.status(), 201, "issue in {queue}");
        r.json().await.expect("json")
    }

    pub async fn call_next(&self, queue: &str, room: &str) -> Option<serde_json::Value> {
        let r = self.post(&format!("/api/v1/queues/{queue}/call-next"), serde_json::json!({"room": room})).await;
        match r.status().as_u16() {
            200 => Some(r.json().await.expect("json")),
            204 => None,
            s => panic!("call-next {queue}/{room}: {s} {}", r.text().await.unwrap_or_default()),
        }
    }

    /// What a client could observe of every queue: counts, rooms and the waiting line.
    pub async fn observable_state(&self) -> serde_json::Value {
        let mut v = self.get_json("/api/v1/queues").await;
        for q in v["queues"].as_array_mut().expect("queues") {
            for w in q["waiting"].as_array_mut().expect("waiting") {
                w.as_object_mut().expect("entry").remove("eta_secs");
            }
            q.as_object_mut().expect("queue").remove("mean_service_secs");
        }
        v
    }
}

/// Asks `probe` every 50 ms until it answers, for at most `limit`: the answer, or `None` when
/// time ran out. The one way the suite waits for what it cannot be told about (a child process,
/// a broker, a read model over HTTP, a browser page); everything else waits on events.
pub async fn poll<T, Fut>(limit: std::time::Duration, mut probe: impl FnMut() -> Fut) -> Option<T>
where
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Waits (bounded) for `child` to end by itself; its exit status, `None` if it still runs.
pub async fn exited_within(child: &mut Child, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
    poll(limit, || std::future::ready(child.try_wait().expect("child status"))).await
}

/// The body of an error response: `(status, code)`.
pub async fn error_code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    (status, v["error"]["code"].as_str().unwrap_or("<no code>").to_owned())
}
