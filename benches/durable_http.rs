//! Durable commands per second over HTTP against the real server binary (every command committed
//! to SQLite before its response), with latency percentiles, beside raw SQLite inserts measured
//! in the same run: batched rusqlite inserts here, and the shared Python peer
//! (`../shared/peers/sqlite_peer.py`) when it is present.
//!
//! `cargo bench --bench durable_http` runs the full load: with `wrk` installed (Debian's `wrk`),
//! an independent load generator drives issue / call-next / complete over every room of the demo
//! hospital (`benches/support/mix.lua`, one wrk thread) at 16 and 64 connections
//! (`BENCH_CONNECTIONS=16,64`), on empty lines and with 2,000 waiting in every queue
//! (`BENCH_WAITING=0,2000`, issued before the measurement), 20 s each (`BENCH_SECONDS`); without
//! wrk, the in-process client below. Under `cargo test` it runs a one-second smoke version of
//! the in-process client so CI keeps it compiling and working.

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{percentile, Server, TOKEN};

/// Raw SQLite: the journal's row shape, WAL + synchronous=FULL, 100 rows per transaction.
fn raw_sqlite_batched(dir: &std::path::Path, rows: usize) -> f64 {
    let conn = rusqlite::Connection::open(dir.join("raw.sqlite")).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch("CREATE TABLE e (seq INTEGER PRIMARY KEY, queue TEXT, ticket TEXT, at_ms INTEGER, kind TEXT, body TEXT)").unwrap();
    let body = "x".repeat(214);
    let start = Instant::now();
    for chunk in 0..rows / 100 {
        let tx = conn.unchecked_transaction().unwrap();
        {
            let mut st = tx.prepare_cached("INSERT INTO e (queue, ticket, at_ms, kind, body) VALUES (?1, ?2, ?3, ?4, ?5)").unwrap();
            for i in 0..100 {
                st.execute(rusqlite::params!["internal-medicine", format!("t{chunk}-{i}"), 0i64, "called", body]).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    rows as f64 / start.elapsed().as_secs_f64()
}

/// The demo hospital's queues (config/demo-hospital.toml).
const DEMO_QUEUES: [&str; 17] = [
    "internal-medicine", "surgery", "pediatrics", "gynecology", "ophthalmology", "ent", "dermatology", "cardiology", "gastroenterology",
    "orthopedics", "neurology", "respiratory", "lab", "ultrasound", "imaging", "ecg", "pharmacy",
];

fn list(var: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(var).ok().map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect()).unwrap_or_else(|| default.to_vec())
}

/// `waiting` tickets issued to every demo queue (16 requests at a time), before measuring.
fn fill(base: &str, waiting: usize) {
    if waiting == 0 {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let total = waiting * DEMO_QUEUES.len();
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (client, next, base) = (client.clone(), next.clone(), base.to_owned());
            tasks.push(tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= total {
                        break;
                    }
                    let q = DEMO_QUEUES[n % DEMO_QUEUES.len()];
                    let body = serde_json::json!({"patient_id": format!("fill-{n}"), "name": "李四", "priority": if n % 10 == 0 { "elderly" } else { "normal" }});
                    let r = client.post(format!("{base}/api/v1/queues/{q}/tickets")).bearer_auth(TOKEN).json(&body).send().await.expect("fill request");
                    assert!(r.status().is_success(), "fill: {}", r.status());
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

/// The wrk runs: every (waiting, connections) pair on a fresh server. `None` when wrk is missing.
fn with_wrk(seconds: u64) -> Option<Vec<(usize, usize, serde_json::Value)>> {
    if std::process::Command::new("wrk").arg("--version").output().is_err() {
        return None;
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/support/mix.lua");
    let mut out = Vec::new();
    for waiting in list("BENCH_WAITING", &[0, 2000]) {
        for connections in list("BENCH_CONNECTIONS", &[16, 64]) {
            let dir = tempfile::tempdir().unwrap();
            let server = Server::start(&dir.path().join("data"), &["--mqtt".into(), "off".into()]);
            let filled = Instant::now();
            fill(&server.base, waiting);
            let filled = filled.elapsed().as_secs_f64();
            let run = std::process::Command::new("wrk")
                .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency", "-s"])
                .arg(&script)
                .arg(format!("{}/", server.base))
                .env("BENCH_TOKEN", TOKEN)
                .output()
                .expect("wrk runs");
            let text = String::from_utf8_lossy(&run.stdout);
            let line = text.lines().rev().find(|l| l.starts_with('{')).unwrap_or("{}");
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            let ok = v["ok"].as_f64().unwrap_or(0.0);
            let secs = v["seconds"].as_f64().unwrap_or(f64::NAN);
            println!(
                "durable_http (wrk, 1 thread): {waiting} waiting per queue (filled in {filled:.1} s), {connections} connections, {seconds} s: {:.0} durable commands/s ({} ok, {} refused 409, {} failed, {} socket errors); latency ms p50 {} p90 {} p99 {} max {}",
                ok / secs, v["ok"], v["refused"], v["failed"], v["socket_errors"], v["p50_ms"], v["p90_ms"], v["p99_ms"], v["max_ms"]
            );
            out.push((waiting, connections, v));
        }
    }
    Some(out)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    if full {
        let seconds = std::env::var("BENCH_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
        if let Some(runs) = with_wrk(seconds) {
            let dir = tempfile::tempdir().unwrap();
            let raw = raw_sqlite_batched(dir.path(), 100_000);
            println!("raw SQLite (rusqlite, WAL, synchronous=FULL, 100 rows/txn): {raw:.0} rows/s");
            let peer = support::peer("python3", "sqlite_peer.py", &[]);
            println!("peer sqlite_peer.py: {}", peer.as_deref().unwrap_or("not found beside the project (../shared/peers)"));
            let peer: serde_json::Value = peer.and_then(|l| serde_json::from_str(&l).ok()).unwrap_or_default();
            for (waiting, connections, v) in runs {
                let per_sec = v["ok"].as_f64().unwrap_or(0.0) / v["seconds"].as_f64().unwrap_or(f64::NAN);
                println!(
                    "{}",
                    serde_json::json!({"bench": "durable_http", "generator": "wrk", "waiting_per_queue": waiting, "connections": connections,
                        "commands_per_sec": per_sec.round(), "p50_ms": v["p50_ms"], "p99_ms": v["p99_ms"], "refused_409": v["refused"],
                        "ratio_vs_peer_per_event_txn": peer["per_event_txn_eps"].as_f64().map(|x| per_sec / x),
                        "ratio_vs_raw_batched": per_sec / raw})
                );
            }
            return;
        }
        println!("wrk is not installed (apt-get install wrk): measuring with the in-process client instead");
    }
    let connections: usize = std::env::var("BENCH_CONNECTIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(16);
    let seconds = if full { 20u64 } else { 1 };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--mqtt".into(), "off".into()]);
    let queues: Vec<(&str, &str)> = vec![
        ("internal-medicine", "c-101"),
        ("surgery", "c-104"),
        ("pediatrics", "c-106"),
        ("gynecology", "c-201"),
        ("cardiology", "c-301"),
        ("orthopedics", "c-304"),
        ("lab", "lab-1"),
        ("pharmacy", "ph-1"),
    ];
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (latencies, elapsed) = rt.block_on(async {
        let client = reqwest::Client::builder().pool_max_idle_per_host(connections).build().unwrap();
        let base = Arc::new(server.base.clone());
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..connections {
            let (client, base, queues) = (client.clone(), base.clone(), queues.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = 0usize;
                while Instant::now() < deadline {
                    let (q, room) = queues[(c + i) % queues.len()];
                    let t = Instant::now();
                    // Two issues per call keeps the lines growing slowly, like a morning.
                    let r = if i % 3 == 2 {
                        client.post(format!("{base}/api/v1/queues/{q}/call-next")).bearer_auth(TOKEN).json(&serde_json::json!({"room": room})).send().await
                    } else {
                        client
                            .post(format!("{base}/api/v1/queues/{q}/tickets"))
                            .bearer_auth(TOKEN)
                            .json(&serde_json::json!({"patient_id": format!("c{c}-{i}"), "name": "张三丰"}))
                            .send()
                            .await
                    };
                    let r = r.expect("request");
                    assert!(r.status().is_success(), "{}", r.status());
                    let _ = r.bytes().await;
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    i += 1;
                }
                lat
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        (all, start.elapsed())
    });
    drop(server);
    let mut lat = latencies;
    lat.sort_by(|a, b| a.total_cmp(b));
    let per_sec = lat.len() as f64 / elapsed.as_secs_f64();
    let raw = raw_sqlite_batched(dir.path(), if full { 100_000 } else { 10_000 });
    println!(
        "durable_http: {} commands in {:.1} s over {connections} connections = {per_sec:.0} commands/s; latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}",
        lat.len(),
        elapsed.as_secs_f64(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.9),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN)
    );
    println!("raw SQLite (rusqlite, WAL, synchronous=FULL, 100 rows/txn): {raw:.0} rows/s");
    println!("ratio durable HTTP commands / raw batched SQLite rows: {:.3}", per_sec / raw);
    if full {
        match support::peer("python3", "sqlite_peer.py", &[]) {
            Some(line) => {
                println!("peer sqlite_peer.py: {line}");
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    for k in ["per_event_txn_eps", "batch100_eps"] {
                        if let Some(x) = v[k].as_f64() {
                            println!("ratio durable HTTP commands / peer {k}: {:.3}", per_sec / x);
                        }
                    }
                }
            }
            None => println!("peer sqlite_peer.py: not found beside the project (../shared/peers)"),
        }
    }
    println!(
        "{}",
        serde_json::json!({"bench": "durable_http", "commands_per_sec": per_sec.round(), "p50_ms": percentile(&lat, 0.5),
            "p99_ms": percentile(&lat, 0.99), "raw_sqlite_rows_per_sec": raw.round(), "ratio_vs_raw_sqlite": per_sec / raw, "full": full})
    );
}
