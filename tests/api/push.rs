//! Patient push over real WebSockets.

use crate::helpers::{spawn_app, start, TestApp};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

pub(crate) type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn ws_url(app: &TestApp, ticket: &str, token: &str, since: Option<u64>) -> String {
    let base = app.base.replacen("http://", "ws://", 1);
    match since {
        Some(s) => format!("{base}/ws/tickets/{ticket}?token={token}&since={s}"),
        None => format!("{base}/ws/tickets/{ticket}?token={token}"),
    }
}

pub(crate) async fn connect(app: &TestApp, t: &Value, since: Option<u64>) -> Ws {
    let url = ws_url(app, t["id"].as_str().unwrap(), t["access_token"].as_str().unwrap(), since);
    tokio_tungstenite::connect_async(url).await.expect("websocket connect").0
}

/// Next JSON message (pings are answered by the client library).
pub(crate) async fn next_json(ws: &mut Ws) -> Value {
    let wait = async {
        loop {
            let m = ws.next().await.expect("open").expect("frame");
            if let Message::Text(t) = m {
                return serde_json::from_str(&t).expect("json");
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(15), wait).await.expect("a message within 15 s")
}

/// Next feed event of one of `kinds`, skipping position updates and other events.
pub(crate) async fn next_event(ws: &mut Ws, kinds: &[&str]) -> Value {
    loop {
        let v = next_json(ws).await;
        if v["type"] == "event" && kinds.contains(&v["event"].as_str().unwrap_or("")) {
            return v;
        }
    }
}

/// The snapshot, then exactly the backlog it announces (events up to the snapshot's seq).
async fn snapshot_and_backlog(ws: &mut Ws, since: u64) -> (Value, Vec<Value>) {
    let snap = next_json(ws).await;
    assert_eq!(snap["type"], "snapshot");
    let last = snap["seq"].as_u64().unwrap();
    let mut backlog = Vec::new();
    while backlog.len() < last.saturating_sub(since) as usize {
        let v = next_json(ws).await;
        if v["type"] == "event" {
            backlog.push(v);
        }
    }
    (snap, backlog)
}

#[tokio::test]
async fn every_called_patient_hears_it_on_the_phone() {
    let app = spawn_app().await;
    let mut tickets = Vec::new();
    for i in 0..12 {
        tickets.push(app.issue("cardiology", &format!("p{i}")).await);
    }
    let mut sockets = Vec::new();
    for t in &tickets {
        let mut ws = connect(&app, t, None).await;
        let snap = next_json(&mut ws).await;
        assert_eq!(snap["type"], "snapshot");
        assert_eq!(snap["ticket"]["id"], t["id"]);
        assert_eq!(snap["ticket"]["status"], "waiting");
        sockets.push(ws);
    }
    // A family member follows the first ticket too.
    let mut family = connect(&app, &tickets[0], None).await;
    next_json(&mut family).await;

    let mut called = Vec::new();
    for i in 0..12 {
        let room = if i % 2 == 0 { "c-301" } else { "c-302" };
        called.push(app.call_next("cardiology", room).await.unwrap());
    }
    for (t, ws) in tickets.iter().zip(sockets.iter_mut()) {
        let c = called.iter().find(|c| c["id"] == t["id"]).unwrap();
        let ev = next_event(ws, &["called"]).await;
        assert_eq!(ev["ticket"], t["id"]);
        assert_eq!(ev["room"], c["room"]);
        let number = t["number"].as_str().unwrap();
        assert!(ev["text_zh"].as_str().unwrap().starts_with(&format!("请 {number} 号")), "{ev}");
        assert!(ev["seq"].as_u64().unwrap() >= 2);
    }
    let ev = next_event(&mut family, &["called"]).await;
    assert_eq!(ev["ticket"], tickets[0]["id"]);
}

#[tokio::test]
async fn resume_with_since_loses_nothing_and_repeats_nothing_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut app = start(&data, None);
    let first = app.issue("ent", "p0").await;
    let t = app.issue("ent", "p1").await;
    let id = t["id"].as_str().unwrap().to_owned();

    let mut ws = connect(&app, &t, Some(0)).await;
    let (snap, history) = snapshot_and_backlog(&mut ws, 0).await;
    let s = snap["seq"].as_u64().unwrap();
    assert_eq!(history[0]["event"], "issued");
    drop(ws); // the phone loses its connection

    app.call_next("ent", "c-204").await.unwrap(); // p0; t becomes next
    app.call_next("ent", "c-204").await.unwrap(); // t called
    app.post_empty(&format!("/api/v1/tickets/{id}/recall")).await;
    app.post_empty(&format!("/api/v1/tickets/{id}/recall")).await;
    assert_ne!(first["id"], t["id"]);

    let mut ws = connect(&app, &t, Some(s)).await;
    let (snap, missed) = snapshot_and_backlog(&mut ws, s).await;
    let seqs: Vec<u64> = missed.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    let expect: Vec<u64> = (s + 1..=snap["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, expect, "exactly the events after since, in order");
    let kinds: Vec<&str> = missed.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert!(kinds.ends_with(&["called", "recalled", "recalled"]), "{kinds:?}");
    drop(ws);

    // After kill -9 and a restart the numbering is the same and nothing is repeated.
    app.kill9();
    let app = start(&data, None);
    let mut ws = connect(&app, &t, Some(s)).await;
    let (snap2, again) = snapshot_and_backlog(&mut ws, s).await;
    assert_eq!(snap2["seq"], snap["seq"]);
    assert_eq!(again, missed);
    let last = snap2["seq"].as_u64().unwrap();
    let mut ws_tail = connect(&app, &t, Some(last)).await;
    let (_, none) = snapshot_and_backlog(&mut ws_tail, last).await;
    assert!(none.is_empty());

    app.post_empty(&format!("/api/v1/tickets/{id}/complete")).await;
    for w in [&mut ws, &mut ws_tail] {
        let done = next_event(w, &["completed", "called", "recalled", "issued", "you_are_next"]).await;
        assert_eq!(done["event"], "completed");
        assert_eq!(done["seq"].as_u64().unwrap(), last + 1);
    }
}

#[tokio::test]
async fn bad_tokens_are_refused_before_the_upgrade_and_garbage_is_survived() {
    let app = spawn_app().await;
    let a = app.issue("ent", "pa").await;
    let b = app.issue("ent", "pb").await;
    let base = app.base.replacen("http://", "ws://", 1);
    let aid = a["id"].as_str().unwrap();
    let status = |url: String| async move {
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
            Err(e) => panic!("unexpected {e}"),
            Ok(_) => 101,
        }
    };
    assert_eq!(status(format!("{base}/ws/tickets/{aid}")).await, 401);
    assert_eq!(status(format!("{base}/ws/tickets/{aid}?token=nonsense")).await, 403);
    assert_eq!(status(format!("{base}/ws/tickets/{aid}?token={}", b["access_token"].as_str().unwrap())).await, 403);
    assert_eq!(status(format!("{base}/ws/tickets/tnope?token={}", a["access_token"].as_str().unwrap())).await, 403);
    // A staff token in a URL is refused whatever it would open (URLs are logged).
    assert_eq!(status(format!("{base}/ws/tickets/tnope?token={}", crate::helpers::TOKEN)).await, 401);

    // Garbage text is ignored; the connection keeps working.
    let mut ws = connect(&app, &a, None).await;
    next_json(&mut ws).await;
    ws.send(Message::Text("{not json at all".into())).await.unwrap();
    app.call_next("ent", "c-204").await.unwrap();
    assert_eq!(next_event(&mut ws, &["called"]).await["ticket"], a["id"]);
    // A binary frame is refused with close code 1003.
    ws.send(Message::Binary(vec![0xff, 0x00, 0x13])).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("closed in time") {
            Some(Ok(Message::Close(Some(f)))) => {
                assert_eq!(u16::from(f.code), 1003);
                break;
            }
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

/// A phone that stops reading is cut off (close code 4008 once its outbox fills) while another
/// phone on the same ticket keeps receiving every event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_is_cut_off_and_others_keep_receiving() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let app = std::sync::Arc::new(crate::helpers::start_with_env(&dir.path().join("data"), None, &[("CLINICFLOW_WS_OUTBOX", "16")]));
    let t = app.issue("ent", "p1").await;
    let id = t["id"].as_str().unwrap().to_owned();
    app.call_next("ent", "c-204").await.unwrap();

    // The stalled phone: a raw socket with a tiny receive buffer that upgrades and never reads.
    let addr: std::net::SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut stalled = sock.connect(addr).await.unwrap();
    let req = format!(
        "GET /ws/tickets/{id}?token={} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        t["access_token"].as_str().unwrap()
    );
    stalled.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        stalled.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"));

    // The healthy phone counts every recall it hears.
    let mut good = connect(&app, &t, None).await;
    next_json(&mut good).await;
    let reader = tokio::spawn(async move {
        let mut heard = 0u64;
        loop {
            let v = next_json(&mut good).await;
            if v["event"] == "recalled" {
                heard += 1;
            }
            if v["event"] == "completed" {
                return heard;
            }
        }
    });

    let mut recalls = 0u64;
    let mut cut = false;
    while recalls < 30_000 && !cut {
        for _ in 0..250 {
            let r = app.post_empty(&format!("/api/v1/tickets/{id}/recall")).await;
            assert_eq!(r.status(), 200);
            recalls += 1;
        }
        let m = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        cut = m.lines().any(|l| l.starts_with("clinicflow_ws_disconnects_total{reason=\"too_slow\"}") && !l.ends_with(" 0"));
    }
    assert!(cut, "the stalled reader was never cut off after {recalls} recalls");
    app.post_empty(&format!("/api/v1/tickets/{id}/complete")).await;
    assert_eq!(reader.await.unwrap(), recalls, "the healthy phone missed events");

    // The stalled socket, read at last, ends: the server closed it.
    let drained = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = vec![0u8; 65536];
        loop {
            match stalled.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert_eq!(drained, Ok(true), "the stalled connection was closed by the server");
}

/// The phone follows its ticket into another queue.
#[tokio::test]
async fn the_session_follows_a_transfer() {
    let app = spawn_app().await;
    let t = app.issue("surgery", "p1").await;
    let mut ws = connect(&app, &t, None).await;
    next_json(&mut ws).await;
    let id = t["id"].as_str().unwrap();
    let r = app.post(&format!("/api/v1/tickets/{id}/transfer"), serde_json::json!({"to": "orthopedics"})).await;
    assert_eq!(r.status(), 200);
    let ev = next_event(&mut ws, &["transferred"]).await;
    assert_eq!(ev["from"], "surgery");
    assert_eq!(ev["to"], "orthopedics");
    assert_eq!(ev["number"], t["number"], "same number after the transfer");
    app.call_next("orthopedics", "c-304").await.unwrap();
    let called = next_event(&mut ws, &["called"]).await;
    assert_eq!(called["queue"], "orthopedics");
    assert_eq!(called["room"], "c-304");
}

/// The count of one labelled sample in the Prometheus text (0 when absent).
fn sample(metrics: &str, name_and_labels: &str) -> u64 {
    metrics.lines().find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok()).unwrap_or(0)
}

/// A phone's feed comes from the committed stream: the journal is read once, when the session
/// starts, and never again for the events that follow — through a transfer between queues, in
/// order, each event once.
#[tokio::test]
async fn a_followed_ticket_is_read_from_the_journal_once_and_then_followed_live() {
    let app = spawn_app().await;
    let t = app.issue("surgery", "p1").await;
    let id = t["id"].as_str().unwrap();
    let mut ws = connect(&app, &t, None).await;
    let snap = next_json(&mut ws).await;
    let mut seq = snap["seq"].as_u64().unwrap();
    let r = app.post(&format!("/api/v1/tickets/{id}/transfer"), serde_json::json!({"to": "orthopedics"})).await;
    assert_eq!(r.status(), 200);
    app.call_next("orthopedics", "c-304").await.unwrap();
    app.post_empty(&format!("/api/v1/tickets/{id}/recall")).await;
    app.post_empty(&format!("/api/v1/tickets/{id}/start")).await;
    app.post_empty(&format!("/api/v1/tickets/{id}/complete")).await;
    let mut kinds = Vec::new();
    while kinds.last() != Some(&"completed".to_owned()) {
        let v = next_json(&mut ws).await;
        if v["type"] != "event" {
            continue;
        }
        seq += 1;
        assert_eq!(v["seq"].as_u64(), Some(seq), "each event once, in order: {v}");
        kinds.push(v["event"].as_str().unwrap().to_owned());
    }
    assert_eq!(kinds, ["transferred", "you_are_next", "called", "recalled", "started", "completed"]);
    let m = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(sample(&m, r#"clinicflow_push_history_reads_total{why="start"}"#), 1, "one history read, when the phone came");
    assert_eq!(sample(&m, r#"clinicflow_push_history_reads_total{why="resync"}"#), 0);
}

/// A connection that never answers pings is closed after the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let env = [("CLINICFLOW_WS_HEARTBEAT_SECS", "1"), ("CLINICFLOW_WS_IDLE_SECS", "2")];
    let app = crate::helpers::start_with_env(&dir.path().join("data"), None, &env);
    let t = app.issue("ent", "p1").await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let req = format!(
        "GET /ws/tickets/{}?token={} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        t["id"].as_str().unwrap(),
        t["access_token"].as_str().unwrap()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    // Read (never answering pings) until the server closes; the last frame is a close with 4001.
    let mut all = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server did not close the silent connection");
    // A close frame: opcode 0x88, then the 2-byte code 4001 (0x0FA1).
    let pos = all.windows(2).rposition(|w| w[0] == 0x88).expect("a close frame");
    assert_eq!(&all[pos + 2..pos + 4], &[0x0f, 0xa1], "close code 4001");
    let m = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("clinicflow_ws_disconnects_total{reason=\"idle\"} 1"), "{m}");
}
