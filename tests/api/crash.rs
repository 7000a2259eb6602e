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
    while acked.load(Ordering::Relaxed) < 1500 {
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
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
    let mut issued = None;
    for _ in 0..300 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("clinicflow exited with {status} when its stdout was closed");
        }
        if let Ok(r) = client.post(&url).bearer_auth(TOKEN).json(&serde_json::json!({"patient_id": "p-1", "name": "张三"})).send().await {
            issued = Some(r.status().as_u16());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
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
