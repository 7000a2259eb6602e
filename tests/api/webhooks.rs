//! Webhooks against a local receiver: signature, retries, idempotency ids, and delivery after a
//! crash while the receiver was down.

use crate::helpers::{start, TestApp};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "hook-secret-0123456789";

#[derive(Debug, Clone)]
struct Hit {
    headers: HashMap<String, String>,
    body: String,
    answered: u16,
}

/// A webhook receiver on loopback: fails the first `fail_first` attempts of each idempotency id
/// (all of them while `down` is set), then answers 200.
struct Receiver {
    url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    down: Arc<AtomicBool>,
}

async fn receiver(fail_first: usize) -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let hits = Arc::new(Mutex::new(Vec::<Hit>::new()));
    let down = Arc::new(AtomicBool::new(false));
    let (h, d) = (hits.clone(), down.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            let (h, d) = (h.clone(), d.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut b = [0u8; 4096];
                let head_end = loop {
                    let Ok(n) = s.read(&mut b).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&b[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let headers: HashMap<String, String> = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect();
                let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                while buf.len() < head_end + len {
                    let Ok(n) = s.read(&mut b).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&b[..n]);
                }
                let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
                let answered = {
                    let mut hits = h.lock().unwrap();
                    let id = headers.get("idempotency-key").cloned().unwrap_or_default();
                    let seen = hits.iter().filter(|x| x.headers.get("idempotency-key") == Some(&id)).count();
                    let status = if d.load(Ordering::SeqCst) || seen < fail_first { 500 } else { 200 };
                    hits.push(Hit { headers, body, answered: status });
                    status
                };
                let reply = format!("HTTP/1.1 {answered} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    Receiver { url, hits, down }
}

fn config_with_hook(dir: &std::path::Path, url: &str) -> std::path::PathBuf {
    let demo = include_str!("../../config/demo-hospital.toml");
    let hook = format!(
        "\n[[webhooks]]\nid = \"sms\"\nurl = \"{url}\"\nsecret = \"{SECRET}\"\nevents = [\"called\", \"recalled\"]\nmax_attempts = 50\nretry_initial_ms = 20\nretry_max_ms = 200\n"
    );
    let path = dir.join("hospital.toml");
    std::fs::write(&path, format!("{demo}{hook}")).unwrap();
    path
}

/// Wait until `pred` holds for the receiver's hits (bounded).
async fn until(r: &Receiver, what: &str, pred: impl Fn(&[Hit]) -> bool) -> Vec<Hit> {
    let seen = crate::helpers::poll(Duration::from_secs(30), || {
        let hits = r.hits.lock().unwrap();
        std::future::ready(pred(&hits).then(|| hits.clone()))
    })
    .await;
    seen.unwrap_or_else(|| panic!("timed out waiting for {what}: {:?}", r.hits.lock().unwrap()))
}

fn verify(hit: &Hit) {
    let ts = &hit.headers["x-clinicflow-timestamp"];
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{ts}.{}", hit.body).as_bytes());
    let expect = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(hit.headers["x-clinicflow-signature"], expect, "signature");
}

async fn issue_and_call(app: &TestApp) -> serde_json::Value {
    let t = app.issue("ent", "p-hook").await;
    app.call_next("ent", "c-204").await.unwrap();
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_retried_and_carry_an_idempotency_id() {
    let r = receiver(2).await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(&dir.path().join("data"), Some(&config_with_hook(dir.path(), &r.url)));
    let t = issue_and_call(&app).await;
    let id = t["id"].as_str().unwrap();
    app.post_empty(&format!("/api/v1/tickets/{id}/recall")).await;

    let hits = until(&r, "called and recalled delivered", |h| h.iter().filter(|x| x.answered == 200).count() >= 2).await;
    let delivered: Vec<&Hit> = hits.iter().filter(|x| x.answered == 200).collect();
    let kinds: Vec<&str> = delivered.iter().map(|h| h.headers["x-clinicflow-event"].as_str()).collect();
    assert_eq!(kinds, ["called", "recalled"], "only the configured kinds, in order");
    for d in &delivered {
        verify(d);
        let key = &d.headers["idempotency-key"];
        let attempts: Vec<&Hit> = hits.iter().filter(|h| &h.headers["idempotency-key"] == key).collect();
        assert_eq!(attempts.len(), 3, "two failures, then success");
        for a in &attempts {
            verify(a);
            assert_eq!(a.body.contains(key.as_str()), true);
        }
        let body: serde_json::Value = serde_json::from_str(&d.body).unwrap();
        assert_eq!(body["id"], key.as_str());
        assert_eq!(body["ticket"], t["id"]);
        assert_eq!(body["number"], t["number"]);
        assert_eq!(body["patient_id"], "p-hook");
        assert_eq!(body["room"], "c-204");
        assert!(body["text_zh"].as_str().unwrap().contains(t["number"].as_str().unwrap()));
    }
    let m = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("clinicflow_webhooks_total{hook=\"sms\",outcome=\"delivered\"} 2"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_is_delivered_after_a_crash_while_the_receiver_was_down() {
    let r = receiver(0).await;
    r.down.store(true, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = config_with_hook(dir.path(), &r.url);
    let mut app = start(&data, Some(&cfg));
    let t = issue_and_call(&app).await;
    // Calls keep working while the receiver is down.
    let t2 = app.issue("ent", "p-2").await;
    assert_eq!(app.call_next("ent", "c-204").await.unwrap()["id"], t2["id"]);
    until(&r, "a failed attempt", |h| !h.is_empty()).await;
    app.kill9();

    r.down.store(false, Ordering::SeqCst);
    let _app = start(&data, Some(&cfg));
    let hits = until(&r, "both calls delivered after the restart", |h| h.iter().filter(|x| x.answered == 200).count() >= 2).await;
    let delivered: Vec<serde_json::Value> = hits.iter().filter(|x| x.answered == 200).map(|h| serde_json::from_str(&h.body).unwrap()).collect();
    assert_eq!(delivered[0]["ticket"], t["id"]);
    assert_eq!(delivered[1]["ticket"], t2["id"]);
    // The id of the first delivery is the one the failed attempts carried.
    assert_eq!(hits[0].headers["idempotency-key"], delivered[0]["id"].as_str().unwrap());
}
