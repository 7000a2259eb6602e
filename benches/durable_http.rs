//! Durable commands per second over HTTP (issue + call-next against the real server binary, every
//! command committed to SQLite before its response), with latency percentiles, beside raw SQLite
//! inserts measured in the same run: batched rusqlite inserts here, and the shared Python peer
//! (`../shared/peers/sqlite_peer.py`) when it is present.
//!
//! `cargo bench --bench durable_http` runs the full load (20 s); under `cargo test` it runs a
//! one-second smoke version so CI keeps it compiling and working.

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

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
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
