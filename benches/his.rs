//! The HIS adapters under load, against the real server binary: HL7 v2 registrations over one
//! MLLP connection (each ACK after its fsync: round trip per message), and the database poller's
//! first pass over a PostgreSQL view of a morning's registrations (10 departments) and a
//! reconciliation that finds them all applied. Every registration is one durable journal
//! commit, so the peer is SQLite's one-transaction-per-append rate measured in the same run
//! (`../shared/peers/sqlite_peer.py`): the ceiling for registrations applied one at a time.
//!
//! `cargo bench --bench his` runs 2,000 messages and 5,000 rows; under `cargo test` a smoke run
//! (100 and 200) keeps it compiling and working. Needs PostgreSQL (scripts/test installs it).

#[path = "support/mod.rs"]
mod support;

#[path = "../tests/support/databases.rs"]
mod databases;

use chrono::TimeZone;
use std::io::{Read, Write};
use std::time::Instant;
use support::{percentile, Server, TOKEN};

const DEPARTMENTS: [&str; 10] = ["internal-medicine", "surgery", "pediatrics", "gynecology", "ophthalmology", "ent", "dermatology", "cardiology", "gastroenterology", "orthopedics"];

fn shanghai_now() -> chrono::NaiveDateTime {
    chrono_tz::Asia::Shanghai.from_utc_datetime(&chrono::Utc::now().naive_utc()).naive_local()
}

/// `n` A04 registrations over one MLLP connection: messages per second and the ACK round trip.
fn hl7(n: usize) -> (f64, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--mqtt".into(), "off".into(), "--hl7".into(), "127.0.0.1:0".into()]);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.hl7_port.expect("--hl7 is on"))).unwrap();
    stream.set_nodelay(true).unwrap();
    let at = shanghai_now().format("%Y%m%d%H%M%S").to_string();
    let mut rtts = Vec::with_capacity(n);
    let mut buf = vec![0u8; 4096];
    let start = Instant::now();
    for i in 0..n {
        let dept = DEPARTMENTS[i % DEPARTMENTS.len()];
        let msg = format!("MSH|^~\\&|HIS|H|CF|H|{at}||ADT^A04|B{i}|P|2.5\rEVN|A04|{at}\rPID|1||P{i}||王^小明\rPV1|1|O|{dept}||||||||||||||||V{i}\r");
        let t = Instant::now();
        stream.write_all(&[&[0x0b][..], msg.as_bytes(), &[0x1c, 0x0d]].concat()).unwrap();
        let mut got = Vec::new();
        while !got.ends_with(&[0x1c, 0x0d]) {
            let k = stream.read(&mut buf).unwrap();
            assert!(k > 0, "the server closed the connection");
            got.extend_from_slice(&buf[..k]);
        }
        assert!(String::from_utf8_lossy(&got).contains("MSA|AA"), "{}", String::from_utf8_lossy(&got));
        rtts.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    rtts.sort_by(|a, b| a.total_cmp(b));
    (rate, percentile(&rtts, 0.5), percentile(&rtts, 0.99))
}

async fn waiting(client: &reqwest::Client, base: &str) -> u64 {
    let v: serde_json::Value = client.get(format!("{base}/api/v1/queues")).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
    let qs = v.get("queues").cloned().unwrap_or(v);
    qs.as_array().unwrap().iter().map(|q| q["counts"]["waiting"].as_u64().unwrap_or(0)).sum()
}

/// A PostgreSQL view of `n` registrations: the first pass (rows applied per second) and a
/// reconciliation that finds every row applied (seconds).
fn poll(rt: &tokio::runtime::Runtime, n: usize) -> (f64, f64) {
    let db = databases::postgres();
    rt.block_on(async {
        let pool = sqlx::PgPool::connect(&db.admin_url).await.unwrap();
        for sql in [
            "CREATE TABLE registrations (reg_no TEXT PRIMARY KEY, patient_no TEXT NOT NULL, dept_code TEXT NOT NULL, reg_time TIMESTAMP NOT NULL, state CHAR(1) NOT NULL, row_version BIGINT NOT NULL)".to_owned(),
            "CREATE VIEW v_clinicflow AS SELECT reg_no AS registration_id, patient_no AS patient_id, dept_code AS department, reg_time AS registered_at, CASE state WHEN '1' THEN 'cancelled' ELSE 'registered' END AS status, row_version AS version FROM registrations".to_owned(),
            format!(
                "INSERT INTO registrations SELECT 'R' || i, 'P' || i, (ARRAY['{}'])[1 + i % 10], TIMESTAMP '{}' + i * INTERVAL '10 milliseconds', '0', i FROM generate_series(1, {n}) i",
                DEPARTMENTS.join("','"),
                (shanghai_now() - chrono::Duration::minutes(30)).max(shanghai_now().date().and_hms_opt(0, 0, 1).unwrap()).format("%Y-%m-%d %H:%M:%S")
            ),
        ] {
            sqlx::query(&sql).execute(&pool).await.unwrap();
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let demo = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo-hospital.toml")).unwrap();
    let cfg = dir.path().join("hospital.toml");
    std::fs::write(
        &cfg,
        format!(
            "{demo}\n[[his.poll]]\nname = \"his-db\"\nurl = \"{}\"\ninterval_ms = 3600000\nreconcile_secs = 3600\nquery = \"SELECT * FROM v_clinicflow WHERE version >= {{cursor}} ORDER BY version\"\nsnapshot = \"SELECT * FROM v_clinicflow ORDER BY registered_at\"\n",
            db.admin_url
        ),
    )
    .unwrap();
    let server = Server::start(&dir.path().join("data"), &["--mqtt".into(), "off".into(), "--config".into(), cfg.display().to_string()]);
    rt.block_on(async {
        let client = reqwest::Client::new();
        let poll = |body: serde_json::Value| {
            let r = client.post(format!("{}/api/v1/his/his-db/poll", server.base)).bearer_auth(TOKEN).json(&body).send();
            async move {
                let r = r.await.unwrap();
                assert_eq!(r.status(), 200);
                r.json::<serde_json::Value>().await.unwrap()
            }
        };
        // The first pass (the snapshot) starts with the server; this call returns after it.
        let start = Instant::now();
        poll(serde_json::json!({})).await;
        let first = start.elapsed().as_secs_f64();
        assert_eq!(waiting(&client, &server.base).await, n as u64, "every row a ticket");
        let start = Instant::now();
        let report = poll(serde_json::json!({"reconcile": true})).await;
        let again = start.elapsed().as_secs_f64();
        assert_eq!(report["repeats"].as_u64(), Some(n as u64), "{report}");
        (n as f64 / first, again)
    })
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (messages, rows) = if full { (2000, 5000) } else { (100, 200) };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (hl7_rate, p50, p99) = hl7(messages);
    let (poll_rate, reconcile_s) = poll(&rt, rows);
    let peer = support::peer("python3", "sqlite_peer.py", &[]);
    let peer_eps = peer.as_deref().and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok()).and_then(|v| v["per_event_txn_eps"].as_f64());
    let ratio = |x: f64| peer_eps.map(|p| x / p);
    println!(
        "{}",
        serde_json::json!({
            "bench": "clinicflow_his",
            "hl7_messages": messages, "hl7_msgs_per_s": hl7_rate, "hl7_ack_p50_ms": p50, "hl7_ack_p99_ms": p99,
            "poll_rows": rows, "poll_first_pass_rows_per_s": poll_rate, "poll_reconcile_all_known_s": reconcile_s,
            "peer_sqlite_per_event_txn_eps": peer_eps,
            "hl7_vs_peer": ratio(hl7_rate), "poll_vs_peer": ratio(poll_rate),
        })
    );
    println!(
        "clinicflow HIS: HL7 {hl7_rate:.0} registrations/s over one connection (ACK p50 {p50:.2} ms, p99 {p99:.2} ms); poll first pass {poll_rate:.0} rows/s, reconciliation of {rows} known rows {:.2} s; SQLite one transaction per append {}",
        reconcile_s,
        peer_eps.map_or("(peer not run)".to_owned(), |p| format!("{p:.0}/s"))
    );
}
