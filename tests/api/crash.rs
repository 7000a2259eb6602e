//! SIGKILL during a burst of commands: every acknowledged command survives, nothing is duplicated.

use crate::helpers::{start, TOKEN};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const WORKERS: usize = 6;
const QUEUES: [(&str, &str); 3] = [("internal-medicine", "c-101"), ("surgery", "c-104"), ("pediatrics", "c-106")];

#[derive(Debug)]
enum Ack {
    Issued { id: String, number: String },
    Called { id: String },
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_commands_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut app = start(&data, None);
    let base = app.base.clone();
    let acked = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::new();

    // Workers issue and call as fast as they can until the server dies under them.
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (client, base, acked) = (client.clone(), base.clone(), acked.clone());
        workers.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            for i in 0.. {
                let (queue, room) = QUEUES[(w + i) % QUEUES.len()];
                let r = if i % 3 == 2 {
                    client.post(format!("{base}/api/v1/queues/{queue}/call-next")).bearer_auth(TOKEN).json(&serde_json::json!({"room": room})).send().await
                } else {
                    client
                        .post(format!("{base}/api/v1/queues/{queue}/tickets"))
                        .bearer_auth(TOKEN)
                        .json(&serde_json::json!({"patient_id": format!("w{w}-{i}"), "name": "张三"}))
                        .send()
                        .await
                };
                let Ok(r) = r else { break };
                let status = r.status().as_u16();
                let Ok(body) = r.json::<serde_json::Value>().await else { break };
                match status {
                    201 => acks.push(Ack::Issued { id: body["id"].as_str().unwrap().to_owned(), number: body["number"].as_str().unwrap().to_owned() }),
                    200 => acks.push(Ack::Called { id: body["id"].as_str().unwrap().to_owned() }),
                    _ => {}
                }
                acked.fetch_add(1, Ordering::Relaxed);
            }
            acks
        }));
    }
    // Kill in the middle of the burst: once a good number of commands were acknowledged.
    let midway = crate::helpers::poll(std::time::Duration::from_secs(120), || std::future::ready((acked.load(Ordering::Relaxed) >= 1500).then_some(()))).await;
    assert!(midway.is_some(), "1,500 commands acknowledged within two minutes");
    app.kill9();
    let mut acks = Vec::new();
    for w in workers {
        acks.extend(w.await.unwrap());
    }
    assert!(acks.len() >= 1500);

    let app = start(&data, None);
    let mut numbers: BTreeMap<String, String> = BTreeMap::new();
    let mut called = BTreeSet::new();
    for a in &acks {
        match a {
            Ack::Issued { id, number } => {
                numbers.insert(id.clone(), number.clone());
            }
            Ack::Called { id } => {
                called.insert(id.clone());
            }
        }
    }
    for (id, number) in &numbers {
        let t = app.get_json(&format!("/api/v1/tickets/{id}")).await;
        assert_eq!(&t["number"], number, "ticket {id} lost or renumbered");
        if called.contains(id) {
            assert_ne!(t["status"], "waiting", "acknowledged call of {id} lost");
        }
    }
    // Nothing duplicated: numbers unique per queue and every ticket accounted for once.
    for (queue, _) in QUEUES {
        let q = app.get_json(&format!("/api/v1/queues/{queue}")).await;
        let waiting: Vec<&str> = q["waiting"].as_array().unwrap().iter().map(|w| w["number"].as_str().unwrap()).collect();
        let unique: BTreeSet<_> = waiting.iter().collect();
        assert_eq!(unique.len(), waiting.len());
        let c = &q["counts"];
        let total: u64 = ["waiting", "called", "completed"].iter().map(|k| c[*k].as_u64().unwrap()).sum();
        let issued_here = numbers.values().filter(|n| n.starts_with(q["prefix"].as_str().unwrap())).count() as u64;
        assert!(total >= issued_here, "{queue}: {total} tickets on record, {issued_here} acknowledged");
        // The next number continues after everything on record, never reusing one.
        let next = app.issue(queue, "after-restart").await;
        let n: u64 = next["number"].as_str().unwrap()[1..].parse().unwrap();
        assert_eq!(n, total + 1, "{queue}: numbering continues");
    }
}

/// A supervisor that stops reading the server's stdout (or `clinicflow serve | head -1`) must not
/// take the server down: its console lines go to a pipe whose reader is already closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_does_not_stop_the_server() {
    let dir = tempfile::tempdir().unwrap();
    // A free port, found by binding and letting go (the server is told it explicitly, since its
    // stdout, where it would say which port it took, is unreadable).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_clinicflow"))
        .args(["serve", "--mqtt", "127.0.0.1:0", "--http", &format!("127.0.0.1:{port}"), "--data"])
        .arg(dir.path().join("data"))
        .env("CLINICFLOW_STAFF_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(writer)
        .spawn()
        .expect("start clinicflow");
    let mut child = KillOnDrop(child);
    let child = &mut child.0;
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/v1/queues/internal-medicine/tickets");
    let (client, url) = (&client, &url);
    let issued = crate::helpers::poll(std::time::Duration::from_secs(30), || {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("clinicflow exited with {status} when its stdout was closed");
        }
        async move { client.post(url).bearer_auth(TOKEN).json(&serde_json::json!({"patient_id": "p-1", "name": "张三"})).send().await.ok().map(|r| r.status().as_u16()) }
    })
    .await;
    assert_eq!(issued, Some(201), "the server answers while its stdout is closed");
    assert!(child.try_wait().unwrap().is_none(), "still running after printing its banner");
}

struct KillOnDrop(std::process::Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A replay (same `Idempotency-Key`) is answered only once the original is durable. Four clients
/// send one call-next with one key while other queues keep the journal busy; the moment one of
/// them is answered `200` with `Idempotent-Replayed: true`, the server is killed. After the
/// restart the ticket that answer named is called: what was acknowledged, even as a replay, was
/// on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_answer_is_never_ahead_of_the_disk() {
    use futures_util::stream::{FuturesUnordered, StreamExt};
    use std::sync::atomic::AtomicBool;
    const WINDOWS: usize = 12;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut replays_seen = 0;
    for window in 0..WINDOWS {
        let mut app = start(&data, None);
        app.issue("internal-medicine", &format!("rp-{window}")).await;
        // Background traffic on other queues: the journal writer is never idle.
        let stop = Arc::new(AtomicBool::new(false));
        let mut busy = Vec::new();
        for w in 0..3 {
            let (client, base, stop) = (app.client.clone(), app.base.clone(), stop.clone());
            busy.push(tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let queue = ["surgery", "pediatrics", "dermatology"][w];
                    let body = serde_json::json!({"patient_id": format!("bg-{window}-{w}-{i}"), "name": "李四"});
                    if client.post(format!("{base}/api/v1/queues/{queue}/tickets")).bearer_auth(TOKEN).json(&body).send().await.is_err() {
                        break;
                    }
                    i += 1;
                }
            }));
        }
        // Let the background traffic get going, then the four same-key presses at once.
        while app.get_json("/api/v1/queues/surgery").await["counts"]["waiting"].as_u64().unwrap() < 5 * (window as u64 + 1) {}
        let key = format!("press-{window}");
        let mut presses: FuturesUnordered<_> = (0..4)
            .map(|_| {
                app.client
                    .post(app.url("/api/v1/queues/internal-medicine/call-next"))
                    .bearer_auth(TOKEN)
                    .header("Idempotency-Key", key.clone())
                    .json(&serde_json::json!({"room": "c-101"}))
                    .send()
            })
            .collect();
        let mut replayed = None;
        while let Some(r) = presses.next().await {
            let r = r.expect("the server answers until it is killed");
            assert_eq!(r.status(), 200, "call-next with a patient waiting");
            if r.headers().get("idempotent-replayed").is_some_and(|v| v == "true") {
                replayed = Some(r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
                // Killed right after a replayed acknowledgement.
                app.kill9();
                break;
            }
        }
        drop(presses);
        stop.store(true, Ordering::Relaxed);
        app.kill9();
        for b in busy {
            let _ = b.await;
        }
        let Some(ticket) = replayed else { continue };
        replays_seen += 1;
        let app = start(&data, None);
        let t = app.get_json(&format!("/api/v1/tickets/{ticket}")).await;
        assert_eq!(t["status"], "called", "window {window}: a replayed call-next was acknowledged before the call was durable: {t}");
        assert_eq!(t["calls"], 1);
        drop(app);
    }
    assert!(replays_seen >= WINDOWS / 2, "only {replays_seen} of {WINDOWS} windows had a replay to check");
}

/// One flipped bit in a commit frame in the middle of `journal.sqlite-wal` after `kill -9`:
/// SQLite stops reading the WAL at that frame, so every commit after it would silently vanish
/// and its numbers be issued again. The server refuses to start instead, naming how far the
/// journal reaches and how far it was committed; `clinicflow journal verify` says the same.
#[tokio::test]
async fn a_damaged_wal_is_refused_with_the_position_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut app = start(&data, None);
    for i in 0..300 {
        app.issue(QUEUES[i % QUEUES.len()].0, &format!("wal-{i}")).await;
    }
    app.kill9();

    // The WAL's frames of its current generation (their salts match the header's).
    let wal = data.join("journal.sqlite-wal");
    let mut bytes = std::fs::read(&wal).unwrap();
    let page = u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
    let salts = bytes[16..24].to_vec();
    let (mut commits, mut at) = (Vec::new(), 32);
    while at + 24 + page <= bytes.len() && bytes[at + 8..at + 16] == salts[..] {
        if u32::from_be_bytes(bytes[at + 4..at + 8].try_into().unwrap()) != 0 {
            commits.push(at);
        }
        at += 24 + page;
    }
    assert!(commits.len() >= 10, "{} commit frames in the WAL", commits.len());
    let frame = commits[commits.len() / 2];
    bytes[frame + 24 + page / 2] ^= 0x01;
    let wal_len = bytes.len() as u64;
    std::fs::write(&wal, bytes).unwrap();

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_clinicflow"))
        .args(["serve", "--http", "127.0.0.1:0", "--mqtt", "off", "--data"])
        .arg(&data)
        .env("CLINICFLOW_STAFF_TOKEN", TOKEN)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let Some(status) = crate::helpers::exited_within(&mut child, std::time::Duration::from_secs(30)).await else {
        let _ = child.kill();
        panic!("the server started on a damaged journal");
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("is damaged") && stderr.contains("acknowledged events are missing") && stderr.contains("committed"), "{stderr}");

    assert_eq!(std::fs::metadata(&wal).map(|m| m.len()).ok(), Some(wal_len), "the damaged WAL is left as found (no checkpoint on close), for a repair");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clinicflow")).args(["journal", "verify", "--data"]).arg(&data).output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(std::fs::metadata(&wal).map(|m| m.len()).ok(), Some(wal_len));
    assert!(text.contains("DAMAGED") && text.contains("the journal ends at event") && text.contains("were committed"), "{text}");
}

/// `clinicflow journal verify` on a whole journal, while the server that writes it runs.
#[tokio::test]
async fn journal_verify_reports_a_whole_journal() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let app = start(&data, None);
    for i in 0..5 {
        app.issue("surgery", &format!("v-{i}")).await;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clinicflow")).args(["journal", "verify", "--data"]).arg(&data).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("whole") && text.contains("committed up to event"), "{text}");
}

/// A data dir on a small file system (a real tmpfs, mounted by the test): the journal fills it
/// and a commit fails. The server says so in its log and exits non-zero, so a supervisor
/// restarts it, instead of living on with every command refused; what it acknowledged before is
/// all there after the restart, with room on the disk again.
#[tokio::test]
async fn a_journal_write_error_stops_the_server_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let _mounted = Mount::new(&["-t", "tmpfs", "-o", "size=2m", "tmpfs"], None, &small);
    let data = small.join("data");
    let log = dir.path().join("server.log");
    let mut app = crate::helpers::start_logging_to(&data, &log);
    let mut acknowledged = Vec::new();
    let refused = loop {
        assert!(acknowledged.len() < 20_000, "2 MB never filled");
        let r = app
            .client
            .post(app.url("/api/v1/queues/surgery/tickets"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"patient_id": format!("full-{}", acknowledged.len()), "name": "王五"}))
            .send()
            .await;
        match r {
            Ok(r) if r.status() == 201 => acknowledged.push(r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned()),
            Ok(r) => break r.status().as_u16(),
            Err(_) => break 0,
        }
    };
    assert!(!acknowledged.is_empty(), "the server took commands before the disk filled");
    assert!(refused == 503 || refused == 0, "a full disk refuses with 503 (or the server is already gone): {refused}");
    let status = app.exited_within(std::time::Duration::from_secs(30)).await.expect("the server stops after a failed commit");
    assert!(!status.success(), "{status}");
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains("journal commit failed") && said.contains("supervisor restarts"), "{said}");

    // The supervisor's restart, with room again: everything acknowledged is there.
    let roomy = dir.path().join("roomy");
    std::fs::create_dir(&roomy).unwrap();
    for e in std::fs::read_dir(&data).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), roomy.join(e.file_name())).unwrap();
    }
    let app = start(&roomy, None);
    let q = app.get_json("/api/v1/queues/surgery").await;
    assert!(q["counts"]["waiting"].as_u64().unwrap() >= acknowledged.len() as u64);
    for id in acknowledged.iter().step_by(25).chain(acknowledged.last()) {
        assert_eq!(app.get_json(&format!("/api/v1/tickets/{id}")).await["status"], "waiting", "acknowledged ticket {id}");
    }
}

/// A read-only data dir (a read-only bind mount, as a mistaken deployment would have) is
/// refused at start with one clear message, not a panic.
#[tokio::test]
async fn a_read_only_data_dir_is_refused_with_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    drop(start(&data, None));
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let _bind = Mount::new(&["--bind"], Some(&data), &ro);
    assert!(std::process::Command::new("mount").args(["-o", "remount,bind,ro"]).arg(&ro).status().unwrap().success());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clinicflow"))
        .args(["serve", "--http", "127.0.0.1:0", "--mqtt", "off", "--data"])
        .arg(&ro)
        .env("CLINICFLOW_STAFF_TOKEN", TOKEN)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("is not writable") && !err.contains("panicked"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one message: {err}");
}

/// A file system mounted for one test (`mount ARGS [SOURCE] TARGET`; the tests run as root),
/// unmounted when it ends.
struct Mount(std::path::PathBuf);

impl Mount {
    fn new(args: &[&str], source: Option<&std::path::Path>, target: &std::path::Path) -> Mount {
        let ok = std::process::Command::new("mount").args(args).args(source).arg(target).status().unwrap().success();
        assert!(ok, "mount {args:?} {}", target.display());
        Mount(target.to_owned())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
