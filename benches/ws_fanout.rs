//! Patient push at scale: N idle patient WebSockets (default 10,000) on loopback, then calls at
//! 50/s across 20 queues. Prints the server's resident memory per idle connection and
//! call-to-phone latency (from the nurse's call-next request to the phone's "called" frame,
//! durable commit included; and from the commit time stamped in the event), then runs the shared
//! Python `websockets` / Node `ws` fan-out peers (`../shared/peers/ws_bench.py`) in the same run
//! and prints the ratios.
//!
//! `cargo bench --bench ws_fanout` runs it fully (`WS_N` to change N); under `cargo test` it runs
//! a small smoke version (200 connections, 2 s).

#[path = "support/mod.rs"]
mod support;

use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{percentile, Server, TOKEN};

const QUEUES: usize = 20;

fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
            return r.rlim_cur;
        }
    }
    0
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

fn config() -> String {
    let mut s = String::from("site = \"bench\"\nname = \"bench\"\n[[departments]]\nid = \"d\"\nname = \"d\"\n");
    for q in 0..QUEUES {
        s += &format!("[[rooms]]\nid = \"r{q}\"\nname = \"{q} 诊室\"\nname_en = \"Room {q}\"\n");
    }
    for q in 0..QUEUES {
        let prefix: String = [(b'A' + (q / 26) as u8) as char, (b'A' + (q % 26) as u8) as char].iter().collect();
        s += &format!("[[queues]]\nid = \"q{q}\"\nname = \"q{q}\"\ndepartment = \"d\"\nprefix = \"{prefix}\"\nrooms = [\"r{q}\"]\n");
    }
    s
}

fn peer(kind: &str, n: usize) -> Option<serde_json::Value> {
    let mut envs = Vec::new();
    if let Ok(p) = std::env::var("PEER_NODE_PATH") {
        envs.push(("NODE_PATH", p));
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/peers/ws_bench.py");
    let out = std::process::Command::new("python3").arg(path).args(["--peer", kind, "--n", &n.to_string()]).envs(envs).output().ok()?;
    serde_json::from_str(String::from_utf8(out.stdout).ok()?.lines().last()?).ok()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = if full { std::env::var("WS_N").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000) } else { 200 };
    let call_secs = if full { 10 } else { 2 };
    let limit = raise_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bench.toml");
    std::fs::write(&cfg, config()).unwrap();
    let server = Server::start(&dir.path().join("data"), &["--mqtt".into(), "off".into(), "--config".into(), cfg.display().to_string()]);
    let (pid, base) = (server.pid(), server.base.clone());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let result = rt.block_on(async {
        let client = reqwest::Client::new();
        // One ticket per connection, spread over the queues.
        let tickets = Arc::new(Mutex::new(Vec::with_capacity(n)));
        let sem = Arc::new(tokio::sync::Semaphore::new(32));
        let mut jobs = Vec::new();
        for i in 0..n {
            let (client, base, tickets, sem) = (client.clone(), base.clone(), tickets.clone(), sem.clone());
            jobs.push(tokio::spawn(async move {
                let _p = sem.acquire().await.unwrap();
                let v: serde_json::Value = client
                    .post(format!("{base}/api/v1/queues/q{}/tickets", i % QUEUES))
                    .bearer_auth(TOKEN)
                    .json(&serde_json::json!({"patient_id": format!("p{i}"), "name": "张三丰"}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                tickets.lock().unwrap().push((v["id"].as_str().unwrap().to_owned(), v["access_token"].as_str().unwrap().to_owned()));
            }));
        }
        for j in jobs {
            j.await.unwrap();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss0 = rss_kb(pid);

        // Open the phones; each task records when its "called" arrives.
        let received: Arc<Mutex<HashMap<String, (Instant, i64)>>> = Arc::new(Mutex::new(HashMap::new()));
        let ws_base = base.replacen("http://", "ws://", 1);
        let connect_sem = Arc::new(tokio::sync::Semaphore::new(200));
        let t_conn = Instant::now();
        let mut opens = Vec::new();
        for (id, token) in tickets.lock().unwrap().clone() {
            let (received, ws_base, sem) = (received.clone(), ws_base.clone(), connect_sem.clone());
            opens.push(tokio::spawn(async move {
                let ws = {
                    let _p = sem.acquire().await.unwrap();
                    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{ws_base}/ws/tickets/{id}?token={token}")).await.expect("connect");
                    ws.next().await; // the snapshot
                    ws
                };
                tokio::spawn(async move {
                    let mut ws = ws;
                    while let Some(Ok(m)) = ws.next().await {
                        if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
                            if t.contains("\"event\":\"called\"") {
                                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                                received.lock().unwrap().insert(id.clone(), (Instant::now(), v["at"].as_i64().unwrap_or(0)));
                            }
                        }
                    }
                });
            }));
        }
        for o in opens {
            o.await.unwrap();
        }
        let connect_s = t_conn.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss1 = rss_kb(pid);

        // Calls at 50/s, round robin over the queues.
        let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
        let total = 50 * call_secs;
        let start = Instant::now();
        let mut calls = Vec::new();
        for k in 0..total {
            let at = start + Duration::from_millis(20 * k as u64);
            tokio::time::sleep_until(at.into()).await;
            let (client, base, sent) = (client.clone(), base.clone(), sent.clone());
            calls.push(tokio::spawn(async move {
                let q = k % QUEUES;
                let t0 = Instant::now();
                let r = client.post(format!("{base}/api/v1/queues/q{q}/call-next")).bearer_auth(TOKEN).json(&serde_json::json!({"room": format!("r{q}")})).send().await.unwrap();
                if r.status() == 200 {
                    let v: serde_json::Value = r.json().await.unwrap();
                    sent.lock().unwrap().insert(v["id"].as_str().unwrap().to_owned(), t0);
                }
            }));
        }
        for c in calls {
            c.await.unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while received.lock().unwrap().len() < sent.lock().unwrap().len() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let sent = sent.lock().unwrap().clone();
        let received = received.lock().unwrap().clone();
        let mut e2e: Vec<f64> = Vec::new();
        let mut from_commit: Vec<f64> = Vec::new();
        let now_wall = chrono::Utc::now().timestamp_millis();
        let now_mono = Instant::now();
        for (id, t0) in &sent {
            if let Some((t1, at)) = received.get(id) {
                e2e.push(t1.duration_since(*t0).as_secs_f64() * 1000.0);
                let recv_wall = now_wall as f64 - now_mono.duration_since(*t1).as_secs_f64() * 1000.0;
                from_commit.push(recv_wall - *at as f64);
            }
        }
        e2e.sort_by(|a, b| a.total_cmp(b));
        from_commit.sort_by(|a, b| a.total_cmp(b));
        serde_json::json!({
            "bench": "clinicflow_ws_fanout", "n": n, "fd_limit": limit, "connect_s": connect_s,
            "rss_before_kb": rss0, "rss_after_kb": rss1, "rss_per_conn_bytes": ((rss1 as f64 - rss0 as f64) * 1024.0 / n as f64).round(),
            "calls": sent.len(), "delivered": e2e.len(),
            "call_to_phone_p50_ms": percentile(&e2e, 0.5), "call_to_phone_p99_ms": percentile(&e2e, 0.99), "call_to_phone_max_ms": e2e.last(),
            "commit_to_phone_p50_ms": percentile(&from_commit, 0.5), "commit_to_phone_p99_ms": percentile(&from_commit, 0.99),
        })
    });
    drop(server);
    drop(rt);
    println!("{result}");
    println!(
        "clinicflow: {} phones, {:.1} KB/conn, call→phone p50 {:.1} ms p99 {:.1} ms ({} of {} calls delivered)",
        n,
        result["rss_per_conn_bytes"].as_f64().unwrap_or(f64::NAN) / 1024.0,
        result["call_to_phone_p50_ms"].as_f64().unwrap_or(f64::NAN),
        result["call_to_phone_p99_ms"].as_f64().unwrap_or(f64::NAN),
        result["delivered"],
        result["calls"]
    );
    if full && std::env::var("BENCH_PEERS").map_or(true, |v| v != "0") {
        for kind in ["py", "node"] {
            match peer(kind, n) {
                Some(p) if p.get("error").is_none() && p["rss_per_conn_bytes"].is_number() => {
                    println!("peer {kind}: {p}");
                    let ours = result["rss_per_conn_bytes"].as_f64().unwrap_or(f64::NAN);
                    let theirs = p["rss_per_conn_bytes"].as_f64().unwrap_or(f64::NAN);
                    let lat_ours = result["commit_to_phone_p99_ms"].as_f64().unwrap_or(f64::NAN);
                    let lat_theirs = p["lat_p99_ms"].as_f64().unwrap_or(f64::NAN);
                    println!("ratio vs {kind}: memory/conn {:.2}, p99 latency (commit→phone vs send→receive) {:.2}", ours / theirs, lat_ours / lat_theirs);
                }
                other => println!("peer {kind}: unavailable ({other:?}); see ../shared/peers/README.md for its setup"),
            }
        }
    }
}
