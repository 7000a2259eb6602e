//! What a hospital's IT team does around the server, black box: back it up while it serves and
//! restore the backup; upgrade over a data dir of an earlier release (the fixture
//! `tests/data/datadir-0.1.0`, written by release 0.1.0) and refuse one of a later release;
//! check a config before a restart, with `serve` refusing the same config in the same words.

use crate::helpers::{spawn_app, start, start_logging_with_env, TestApp};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clinicflow")).args(args).env("RUST_LOG", "warn").output().expect("run clinicflow")
}

async fn cli_async(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(&args)
    })
    .await
    .unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// The data dir release 0.1.0 left (two queues with tickets, one called, a patient's orders),
/// copied, so the tests never change the one in the repository.
fn fixture(into: &Path) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/datadir-0.1.0");
    let data = into.join("data");
    std::fs::create_dir_all(&data).unwrap();
    for f in std::fs::read_dir(&from).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), data.join(f.file_name())).unwrap();
    }
    data
}

/// The fixture was written at 09:00 on this day; its servers run later the same morning.
const FIXTURE_DAY_AT: &str = "2026-12-07T11:00:00+08:00";

fn schema_versions(data: &Path) -> Vec<(String, i64)> {
    ["journal.sqlite", "his.sqlite", "orders.sqlite", "tags.sqlite"]
        .iter()
        .map(|f| (f.to_string(), clinicflow::storage::schema::version_of(&data.join(f)).unwrap()))
        .collect()
}

fn current_versions() -> Vec<(String, i64)> {
    clinicflow::storage::schema::stores().iter().filter(|s| s.file != "webhooks.sqlite").map(|s| (s.file.to_string(), s.version())).collect()
}

#[tokio::test]
async fn a_data_dir_of_release_0_1_0_is_migrated_once_and_serves_what_it_held() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture(dir.path());
    assert_eq!(schema_versions(&data), [("journal.sqlite".into(), 2), ("his.sqlite".into(), 0), ("orders.sqlite".into(), 0), ("tags.sqlite".into(), 0)]);
    let log = dir.path().join("first.log");
    let env = [("CLINICFLOW_CLOCK", FIXTURE_DAY_AT), ("RUST_LOG", "info")];
    let mut app = start_logging_with_env(&data, &log, &env);

    let im = app.get_json("/api/v1/queues/internal-medicine").await;
    assert_eq!(im["day"], "2026-12-07");
    assert_eq!(im["counts"]["waiting"], 4, "{im}");
    assert_eq!(im["counts"]["called"], 1, "{im}");
    let room = im["rooms"].as_array().unwrap().iter().find(|r| r["id"] == "c-101").unwrap();
    assert_eq!(room["current_number"], "A001");
    let us = app.get_json("/api/v1/queues/ultrasound").await;
    assert_eq!(us["counts"]["waiting"], 3, "{us}");
    let orders = app.get_json("/api/v1/patients/FX-IM-3/orders").await;
    let codes: Vec<&str> = orders["orders"].as_array().unwrap().iter().map(|o| o["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["LAB-CBC", "ECG"], "{orders}");
    // Numbering goes on where 0.1.0 left it.
    assert_eq!(app.issue("internal-medicine", "FX-IM-6").await["number"], "A006");

    assert_eq!(schema_versions(&data), current_versions());
    let said = std::fs::read_to_string(&log).unwrap();
    for (file, from) in [("journal.sqlite", 2), ("his.sqlite", 0), ("orders.sqlite", 0), ("tags.sqlite", 0)] {
        let line = said.lines().find(|l| l.contains("store migrated") && l.contains(&format!("file=\"{file}\""))).unwrap_or_else(|| panic!("no migration of {file} logged:\n{said}"));
        assert!(line.contains(&format!("from={from}")), "{line}");
    }
    app.kill9();

    // Once: the next start finds nothing to migrate, and still has everything.
    let log = dir.path().join("second.log");
    let app = start_logging_with_env(&data, &log, &env);
    assert_eq!(app.get_json("/api/v1/queues/internal-medicine").await["counts"]["waiting"], 5);
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(!said.contains("store migrated"), "migrated twice:\n{said}");
    let out = cli(&["journal", "verify", "--data", &p(&data)]);
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test]
async fn a_data_dir_of_a_newer_release_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture(dir.path());
    // A later release stamped its orders store with a schema this build does not know.
    rusqlite::Connection::open(data.join("orders.sqlite")).unwrap().pragma_update(None, "user_version", 99).unwrap();
    let before = schema_versions(&data);

    let out = tokio::task::spawn_blocking({
        let data = data.clone();
        move || {
            Command::new(env!("CARGO_BIN_EXE_clinicflow"))
                .args(["serve", "--http", "127.0.0.1:0", "--mqtt", "off", "--data"])
                .arg(&data)
                .env("CLINICFLOW_CLOCK", FIXTURE_DAY_AT)
                .env("RUST_LOG", "warn")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(!out.status.success(), "served a newer data dir: {}", text(&out));
    let said = text(&out);
    assert!(said.contains("orders.sqlite has schema version 99") && said.contains("written by a newer release"), "{said}");
    assert!(!said.contains("listening on"), "{said}");
    assert_eq!(schema_versions(&data), before, "nothing migrated");

    let out = cli(&["backup", "--data", &p(&data), "--to", &p(&dir.path().join("b.tar.gz"))]);
    assert!(!out.status.success() && text(&out).contains("orders.sqlite has schema version 99"), "{}", text(&out));
    assert_eq!(schema_versions(&data), before);
}

/// One client per queue, each command after the last one's answer: issue, issue, call next. The
/// commands each queue acknowledged, in order.
#[derive(Debug, Clone)]
enum Op {
    Issued(String),
    Called(String),
}

struct Load {
    stop: Arc<AtomicBool>,
    /// Commands acknowledged, all queues.
    acked: tokio::sync::watch::Receiver<usize>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Op>>>,
    /// Each queue's acknowledged commands so far.
    progress: Vec<Arc<AtomicUsize>>,
}

async fn start_load(app: &TestApp, queues: &[(String, String)]) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let (acked, acked_rx) = tokio::sync::watch::channel(0usize);
    let acked = Arc::new(acked);
    let mut tasks = Vec::new();
    let mut progress = Vec::new();
    for (i, (queue, room)) in queues.iter().cloned().enumerate() {
        let (client, base, stop, acked) = (app.client.clone(), app.base.clone(), stop.clone(), acked.clone());
        let mine = Arc::new(AtomicUsize::new(0));
        progress.push(mine.clone());
        tasks.push(tokio::spawn(async move {
            let mut ops = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let op = if n % 3 == 0 {
                    let r = client.post(format!("{base}/api/v1/queues/{queue}/call-next")).bearer_auth(crate::helpers::TOKEN).json(&serde_json::json!({"room": room})).send().await.unwrap();
                    assert_eq!(r.status(), 200, "call-next in {queue}");
                    Op::Called(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned())
                } else {
                    let body = serde_json::json!({"patient_id": format!("LOAD-{i}-{n}"), "name": "王小明"});
                    let r = client.post(format!("{base}/api/v1/queues/{queue}/tickets")).bearer_auth(crate::helpers::TOKEN).json(&body).send().await.unwrap();
                    assert_eq!(r.status(), 201, "issue in {queue}");
                    Op::Issued(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned())
                };
                ops.push(op);
                mine.fetch_add(1, Ordering::SeqCst);
                acked.send_modify(|n| *n += 1);
            }
            ops
        }));
    }
    Load { stop, acked: acked_rx, tasks, progress }
}

impl Load {
    /// Until `n` more commands are acknowledged (bounded: the load never stalls for long).
    async fn wait_for(&mut self, n: usize) {
        let target = *self.acked.borrow() + n;
        let reached = self.acked.wait_for(|a| *a >= target);
        tokio::time::timeout(std::time::Duration::from_secs(60), reached).await.expect("the load stalled").expect("load running");
    }

    async fn finish(self) -> Vec<Vec<Op>> {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = Vec::new();
        for t in self.tasks {
            all.push(t.await.unwrap());
        }
        all
    }
}

async fn demo_queues(app: &TestApp, n: usize) -> Vec<(String, String)> {
    let v = app.get_json("/api/v1/queues").await;
    v["queues"].as_array().unwrap().iter().take(n).map(|q| (q["id"].as_str().unwrap().to_owned(), q["rooms"][0]["id"].as_str().unwrap().to_owned())).collect()
}

/// What the server says of a ticket, or `None` when it does not know it.
async fn ticket(app: &TestApp, id: &str) -> Option<Value> {
    let r = app.get(&format!("/api/v1/tickets/{id}")).await;
    match r.status().as_u16() {
        200 => Some(r.json().await.unwrap()),
        404 => None,
        s => panic!("ticket {id}: {s}"),
    }
}

#[tokio::test]
async fn a_backup_taken_under_load_restores_exactly_the_state_acknowledged_at_its_moment() {
    let app = spawn_app().await;
    let queues = demo_queues(&app, 3).await;
    let mut load = start_load(&app, &queues).await;
    load.wait_for(150).await;

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("under-load.tar.gz");
    let before: Vec<usize> = load.progress.iter().map(|p| p.load(Ordering::SeqCst)).collect();
    let out = cli_async(vec!["backup".into(), "--data".into(), p(&app.data), "--to".into(), p(&file)]).await;
    assert!(out.status.success(), "{}", text(&out));
    // The server goes on; what it acknowledges now is after the backup's moment.
    load.wait_for(90).await;
    let ops = load.finish().await;
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600, "the backup holds the secrets");
    }

    let restored = dir.path().join("restored");
    let out = cli(&["restore", "--from", &p(&file), "--data", &p(&restored)]);
    assert!(out.status.success(), "{}", text(&out));
    let out = cli(&["journal", "verify", "--data", &p(&restored)]);
    assert!(out.status.success(), "{}", text(&out));
    let back = start(&restored, None);

    // Each queue's commands are serial, so the moment of the backup is, in each queue, a point
    // in its sequence: everything before it restored, nothing after it.
    let (mut kept, mut total) = (0, 0);
    for (q, ops) in ops.iter().enumerate() {
        let mut seen = Vec::new();
        for op in ops {
            seen.push(match op {
                Op::Issued(id) => ticket(&back, id).await.is_some(),
                Op::Called(id) => ticket(&back, id).await.is_some_and(|t| t["status"] != "waiting"),
            });
        }
        let k = seen.iter().take_while(|s| **s).count();
        assert!(seen[k..].iter().all(|s| !s), "queue {}: restored commands are not a prefix of the acknowledged ones: {seen:?}", queues[q].0);
        assert!(k >= before[q], "queue {}: {k} commands restored, {} were acknowledged before the backup began", queues[q].0, before[q]);
        kept += k;
        total += ops.len();
    }
    eprintln!("backup under load: {kept} of {total} acknowledged commands restored; {} acknowledged before it began", before.iter().sum::<usize>());
    assert!(kept < total, "the commands after the backup ({} of them) are not in it", total - kept);

    // Taken at rest, a backup restores to the same state, whole, as the API shows it.
    let file = dir.path().join("at-rest.tar.gz");
    let out = cli(&["backup", "--data", &p(&app.data), "--to", &p(&file)]);
    assert!(out.status.success(), "{}", text(&out));
    let again = dir.path().join("again");
    let out = cli(&["restore", "--from", &p(&file), "--data", &p(&again)]);
    assert!(out.status.success(), "{}", text(&out));
    let same = start(&again, None);
    assert_eq!(same.observable_state().await, app.observable_state().await);
    for op in ops.iter().flatten() {
        let (Op::Issued(id) | Op::Called(id)) = op;
        let strip = |t: Option<Value>| {
            let mut t = t.expect("known");
            t.as_object_mut().unwrap().remove("eta_secs");
            t
        };
        assert_eq!(strip(ticket(&same, id).await), strip(ticket(&app, id).await));
    }
}

#[tokio::test]
async fn restore_refuses_a_damaged_backup_and_a_dir_in_use() {
    let app = spawn_app().await;
    app.issue("internal-medicine", "P-BK-1").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.tar.gz");
    let out = cli(&["backup", "--data", &p(&app.data), "--to", &p(&file)]);
    assert!(out.status.success(), "{}", text(&out));

    let busy = dir.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("notes.txt"), "keep me").unwrap();
    let out = cli(&["restore", "--from", &p(&file), "--data", &p(&busy)]);
    assert!(!out.status.success() && text(&out).contains("empty data dir"), "{}", text(&out));
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1, "nothing written into it");

    // A byte changed in the middle of the file: refused, and nothing restored.
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    let bad = dir.path().join("bad.tar.gz");
    std::fs::write(&bad, bytes).unwrap();
    let target = dir.path().join("from-bad");
    let out = cli(&["restore", "--from", &p(&bad), "--data", &p(&target)]);
    assert!(!out.status.success(), "restored a damaged backup: {}", text(&out));
    assert!(!target.join("journal.sqlite").exists(), "a damaged backup left a journal behind");

    let out = cli(&["restore", "--from", &p(&dir.path().join("missing.tar.gz")), "--data", &p(&target)]);
    assert!(!out.status.success() && text(&out).contains("missing.tar.gz"), "{}", text(&out));
}

#[tokio::test]
async fn config_check_names_every_problem_and_serve_refuses_the_config_in_the_same_words() {
    let demo = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo-hospital.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, &demo).unwrap();
    let out = cli(&["config", "check", &p(&good)]);
    assert!(out.status.success(), "{}", text(&out));
    let maps = Path::new(env!("CARGO_MANIFEST_DIR")).join("maps/demo-hospital");
    let out = cli(&["config", "check", "--config", &p(&good), "--map", &p(&maps)]);
    assert!(out.status.success(), "{}", text(&out));

    // Three mistakes in three places of the file.
    let bad_text = demo.replacen("timezone = \"Asia/Shanghai\"", "timezone = \"Asia/Shanghia\"", 1).replacen("prefix = \"A\"", "prefix = \"a1\"", 1)
        + "\n[[displays]]\nid = \"ghost-screen\"\nkind = \"door\"\nrooms = [\"c-999\"]\n";
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, bad_text).unwrap();
    let out = cli(&["config", "check", &p(&bad)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let checked = String::from_utf8_lossy(&out.stderr).into_owned();
    let wanted = ["unknown time zone \"Asia/Shanghia\"", "queue internal-medicine: prefix must be 1-4 capital letters", "device ghost-screen names unknown room c-999"];
    for w in wanted {
        assert!(checked.contains(&format!("{}: {w}", p(&bad))), "{w:?} not named:\n{checked}");
    }
    let problems: Vec<&str> = checked.lines().filter(|l| l.starts_with("  ")).map(str::trim).collect();
    assert_eq!(problems.len(), 3, "{checked}");

    let out = tokio::task::spawn_blocking({
        let bad = bad.clone();
        let data = dir.path().join("data");
        move || {
            Command::new(env!("CARGO_BIN_EXE_clinicflow"))
                .args(["serve", "--http", "127.0.0.1:0", "--mqtt", "off", "--config"])
                .arg(&bad)
                .arg("--data")
                .arg(&data)
                .env("RUST_LOG", "warn")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let served = String::from_utf8_lossy(&out.stderr);
    for line in &problems {
        assert!(served.lines().any(|l| l.trim() == *line), "serve does not say {line:?}:\n{served}");
    }
    assert!(!dir.path().join("data").join("journal.sqlite").exists(), "serve refused before touching the data dir");
}

#[tokio::test]
async fn a_new_data_dir_and_everything_in_it_are_the_servers_own() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("new").join("data");
    let app = start(&data, None);
    app.issue("internal-medicine", "P-PRIV-1").await;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "the data dir holds patients' names and the secrets");
    let files: Vec<PathBuf> = std::fs::read_dir(&data).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(files.iter().any(|f| f.ends_with("journal.sqlite")) && files.iter().any(|f| f.ends_with("patient-key")));
    for f in files {
        assert_eq!(mode(&f) & 0o077, 0, "{} is {:o}: readable by others", f.display(), mode(&f));
    }
}
