//! The HIS database poller against real PostgreSQL and MariaDB servers (Debian's, started by the
//! test): a registration table changes while clinicflow polls it through a view — new
//! registrations, 退号 by status and by deletion, a re-registration — and after each poll the
//! queue is exactly what the table says, in registration-time order. clinicflow reads with a
//! SELECT-only account, in read-only transactions (an UPDATE in its SQL fails, even with the
//! HIS's own account), and a view that lost a column or a database that is gone is an error in
//! `/api/v1/his`, never a stopped server. A `kill -9` in the middle of a poll loses nothing.

#[path = "../support/databases.rs"]
mod databases;

use crate::helpers::{start_with_env, TestApp};
use chrono::{Duration, NaiveDateTime, TimeZone, Utc};
use databases::Database;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The HIS's clock (Shanghai wall-clock time, the demo hospital's zone): `minutes` (at most 60)
/// before the pinned test instant. In the first hour after midnight the same order is squeezed
/// into the part of today that has passed (a minute becomes a second at 00:01), so every
/// registration is today's (clinicflow refuses an earlier day's rows) and none is in the
/// future (clinicflow places those at their arrival).
fn ago(minutes: i64) -> NaiveDateTime {
    let pinned = Utc.timestamp_millis_opt(crate::helpers::test_at_ms()).unwrap();
    let now = chrono_tz::Asia::Shanghai.from_utc_datetime(&pinned.naive_utc()).naive_local();
    let midnight = now.date().and_hms_opt(0, 0, 0).unwrap();
    if now - Duration::minutes(60) >= midnight {
        return now - Duration::minutes(minutes);
    }
    let today_ms = (now - midnight).num_milliseconds();
    midnight + Duration::milliseconds(today_ms * (60 - minutes.clamp(0, 60)) / 60)
}

/// The HIS's side of the test: its own table, changed with its own account.
enum His {
    Pg(sqlx::PgPool),
    My(sqlx::MySqlPool),
}

/// The version column: PostgreSQL's table has an integer row version, MariaDB's the time of the
/// last change (both kinds of cursor).
struct Table {
    his: His,
    version: i64,
}

/// A query with `args` bound (the same for either database).
macro_rules! bound {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::S(s) => q.bind(s.clone()),
                Arg::T(t) => q.bind(*t),
                Arg::I(i) => q.bind(*i),
            };
        }
        q
    }};
}

impl Table {
    async fn create(db: &Database, postgres: bool) -> Table {
        let his = if postgres { His::Pg(sqlx::PgPool::connect(&db.admin_url).await.unwrap()) } else { His::My(sqlx::MySqlPool::connect(&db.admin_url).await.unwrap()) };
        let t = Table { his, version: 0 };
        let (version_type, reader) = if postgres { ("BIGINT", "CREATE ROLE reader LOGIN PASSWORD 'reader-pw'") } else { ("DATETIME(6)", "CREATE USER 'reader'@'%' IDENTIFIED BY 'reader-pw'") };
        for sql in [
            format!(
                "CREATE TABLE registrations (reg_no VARCHAR(32) PRIMARY KEY, patient_no VARCHAR(32) NOT NULL, patient_name VARCHAR(64), dept_code VARCHAR(16) NOT NULL,
                 doctor_code VARCHAR(16), reg_time {ts} NOT NULL, state CHAR(1) NOT NULL, row_version {version_type} NOT NULL)",
                ts = if postgres { "TIMESTAMP" } else { "DATETIME" }
            ),
            // The HIS's codes (state '1' = 退号) to clinicflow's columns, in a view.
            "CREATE VIEW v_clinicflow AS SELECT reg_no AS registration_id, patient_no AS patient_id, patient_name, dept_code AS department, doctor_code AS doctor,
             reg_time AS registered_at, CASE state WHEN '1' THEN 'cancelled' ELSE 'registered' END AS status, row_version AS version FROM registrations"
                .into(),
            reader.into(),
            format!("GRANT SELECT ON {} TO {}", if postgres { "v_clinicflow" } else { "his.v_clinicflow" }, if postgres { "reader" } else { "'reader'@'%'" }),
        ] {
            t.exec(&sql, &[]).await;
        }
        t
    }

    async fn exec(&self, sql: &str, args: &[Arg]) {
        match &self.his {
            His::Pg(p) => {
                // `?` placeholders, numbered for PostgreSQL.
                let mut n = 0;
                let sql: String = sql.chars().map(|c| if c == '?' { n += 1; format!("${n}") } else { c.to_string() }).collect();
                bound!(sqlx::query(&sql), args).execute(p).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            His::My(p) => {
                bound!(sqlx::query(sql), args).execute(p).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
    }

    /// The next row version: an integer, or a later time.
    fn next_version(&mut self) -> Arg {
        self.version += 1;
        match self.his {
            His::Pg(_) => Arg::I(self.version),
            His::My(_) => Arg::T(NaiveDateTime::parse_from_str("2026-01-01 00:00:00", "%Y-%m-%d %H:%M:%S").unwrap() + Duration::seconds(self.version)),
        }
    }

    async fn register(&mut self, reg: &str, patient: &str, dept: &str, minutes_ago: i64) {
        let v = self.next_version();
        self.exec(
            "INSERT INTO registrations (reg_no, patient_no, patient_name, dept_code, doctor_code, reg_time, state, row_version) VALUES (?, ?, ?, ?, NULL, ?, '0', ?)",
            &[Arg::S(reg.into()), Arg::S(patient.into()), Arg::S("王小明".into()), Arg::S(dept.into()), Arg::T(ago(minutes_ago)), v],
        )
        .await;
    }

    /// 退号: the HIS marks the row.
    async fn withdraw(&mut self, reg: &str) {
        let v = self.next_version();
        self.exec("UPDATE registrations SET state = '1', row_version = ? WHERE reg_no = ?", &[v, Arg::S(reg.into())]).await;
    }

    /// The same registration back (a 退号 undone at the desk), at a new time.
    async fn reregister(&mut self, reg: &str, minutes_ago: i64) {
        let v = self.next_version();
        self.exec("UPDATE registrations SET state = '0', reg_time = ?, row_version = ? WHERE reg_no = ?", &[Arg::T(ago(minutes_ago)), v, Arg::S(reg.into())]).await;
    }

    /// 退号 the old way: the row is deleted (only a reconciliation can see it).
    async fn delete(&mut self, reg: &str) {
        self.exec("DELETE FROM registrations WHERE reg_no = ?", &[Arg::S(reg.into())]).await;
    }
}

enum Arg {
    S(String),
    T(NaiveDateTime),
    I(i64),
}

fn config(dir: &Path, extra: &str) -> PathBuf {
    let demo = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo-hospital.toml")).unwrap();
    let text = format!(
        "{demo}\n[his.departments]\n\"0101\" = \"internal-medicine\"\n\n[[his.poll]]\nname = \"his-db\"\nurl_env = \"TEST_HIS_READER_URL\"\ninterval_ms = 200\nreconcile_secs = 3600\ntimeout_secs = 3\n\
         query = \"SELECT * FROM v_clinicflow WHERE version >= {{cursor}} ORDER BY version\"\nsnapshot = \"SELECT * FROM v_clinicflow\"\n{extra}"
    );
    let path = dir.join("hospital.toml");
    std::fs::write(&path, text).unwrap();
    path
}

use crate::his::line;

/// A pass of `adapter` now; the status and the report (or error).
async fn poll(app: &TestApp, adapter: &str, body: Value) -> (u16, Value) {
    let r = app.post(&format!("/api/v1/his/{adapter}/poll"), body).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn adapter(app: &TestApp, name: &str) -> Value {
    let his = app.get_json("/api/v1/his").await;
    his["adapters"].as_array().unwrap().iter().find(|a| a["adapter"] == name).cloned().unwrap_or_else(|| panic!("{his}"))
}

/// The scenario both databases go through.
async fn the_queue_follows_the_table(db: &Database, postgres: bool, extra: &str) -> (TestApp, Table, tempfile::TempDir) {
    let mut table = Table::create(db, postgres).await;
    table.register("R1", "P-1", "0101", 40).await;
    table.register("R2", "P-2", "0101", 50).await;
    table.register("R3", "P-3", "0101", 45).await;
    table.register("R4", "P-4", "0101", 44).await;
    table.withdraw("R4").await;
    table.register("R5", "P-5", "X99", 30).await;

    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), extra);
    let app = start_with_env(&dir.path().join("data"), Some(&cfg), &[("TEST_HIS_READER_URL", &db.reader_url), ("TEST_HIS_ADMIN_URL", &db.admin_url)]);

    let (status, report) = poll(&app, "his-db", json!({})).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(line(&app).await, ["R2", "R3", "R1"], "registration time, not row order; the withdrawn one never");
    // The unknown department: refused, counted, named — at every pass that reads it.
    let a = adapter(&app, "his-db").await;
    assert!(a["errors"].as_u64().unwrap() >= 1 && a["last_error"].as_str().unwrap().contains("R5") && a["last_error"].as_str().unwrap().contains("X99"), "{a}");
    assert!(a["last_success"].is_i64() && a["polls"].as_u64().unwrap() >= 1 && a["cursor"].is_string(), "{a}");

    // The table changes while the server polls (every 200 ms): a new registration, a 退号, a
    // re-registration of the withdrawn R4 (later: at the back), a row deleted.
    table.register("R6", "P-6", "0101", 10).await;
    table.withdraw("R1").await;
    table.reregister("R4", 5).await;
    table.delete("R3").await;
    let (status, report) = poll(&app, "his-db", json!({})).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(line(&app).await, ["R2", "R3", "R6", "R4"], "changes read; a deleted row is not a change");
    let (status, report) = poll(&app, "his-db", json!({"reconcile": true})).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["reconciled"], true);
    assert_eq!(line(&app).await, ["R2", "R6", "R4"], "the reconciliation withdrew the deleted registration");
    // Nothing changes on another pass, and a withdrawn ticket is never called.
    let (_, report) = poll(&app, "his-db", json!({"reconcile": true})).await;
    assert_eq!((report["applied"].as_u64(), report["withdrawn"].as_u64()), (Some(0), Some(0)), "{report}");
    let called = app.call_next("internal-medicine", "c-101").await.unwrap();
    assert_eq!(called["his"], json!({"source": "his-db", "id": "R2"}));
    (app, table, dir)
}

#[tokio::test]
async fn a_postgresql_registration_view_is_polled_read_only_and_the_queue_matches_it() {
    let db = databases::postgres();
    // Two more adapters on the same database: one whose SQL writes (with the HIS's own account),
    // one whose view lacks a column.
    let extra = "\n[[his.poll]]\nname = \"writer\"\nurl_env = \"TEST_HIS_ADMIN_URL\"\ninterval_ms = 500\n\
                 query = \"UPDATE registrations SET state = '1' WHERE row_version >= {cursor} RETURNING reg_no AS registration_id\"\n\
                 snapshot = \"UPDATE registrations SET state = '1' RETURNING reg_no AS registration_id, patient_no AS patient_id, dept_code AS department, reg_time AS registered_at, 'registered' AS status, row_version AS version\"\n\
                 \n[[his.poll]]\nname = \"no-dept\"\nurl_env = \"TEST_HIS_READER_URL\"\ninterval_ms = 500\n\
                 query = \"SELECT registration_id, patient_id, registered_at, status, version FROM v_clinicflow WHERE version >= {cursor}\"\n\
                 snapshot = \"SELECT registration_id, patient_id, registered_at, status, version FROM v_clinicflow\"\n";
    let (app, table, _dir) = the_queue_follows_the_table(&db, true, extra).await;

    // clinicflow cannot write to the HIS, whatever its SQL says.
    let (status, err) = poll(&app, "writer", json!({})).await;
    assert_eq!((status, err["error"]["code"].as_str()), (502, Some("his_unavailable")), "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("read-only"), "{err}");
    let His::Pg(pool) = &table.his else { unreachable!() };
    let cancelled: i64 = sqlx::query_scalar("SELECT count(*) FROM registrations WHERE state = '1'").fetch_one(pool).await.unwrap();
    assert_eq!(cancelled, 1, "only the HIS's own 退号 (R1)");

    // A view without its department column: named, nothing applied.
    let (status, err) = poll(&app, "no-dept", json!({})).await;
    assert_eq!(status, 502, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("department"), "{err}");
    let a = adapter(&app, "no-dept").await;
    assert!(a["last_success"].is_null() && a["last_error"].as_str().unwrap().contains("department"), "{a}");

    // Bad requests of the poll endpoint.
    let (status, err) = poll(&app, "nope", json!({})).await;
    assert_eq!((status, err["error"]["code"].as_str()), (404, Some("unknown_adapter")));
    let (status, err) = poll(&app, "his-db", json!({"reconcile": "yes"})).await;
    assert_eq!((status, err["error"]["code"].as_str()), (422, Some("invalid_field")), "{err}");

    // The database goes away: errors, counted and shown; the server goes on serving.
    drop(db);
    let (status, err) = poll(&app, "his-db", json!({})).await;
    assert_eq!((status, err["error"]["code"].as_str()), (502, Some("his_unavailable")), "{err}");
    assert!(adapter(&app, "his-db").await["last_error"].as_str().unwrap().contains("HIS database"));
    let m = app.get("/metrics").await.text().await.unwrap();
    assert!(m.contains("clinicflow_his_polls_total{adapter=\"his-db\",result=\"error\"}"), "{m}");
    assert_eq!(line(&app).await, ["R6", "R4"], "the queue is untouched by the HIS being down");
}

#[tokio::test]
async fn a_mariadb_registration_view_with_a_timestamp_cursor_is_polled_and_the_queue_matches_it() {
    let db = databases::mariadb();
    let (app, _table, _dir) = the_queue_follows_the_table(&db, false, "").await;
    let a = adapter(&app, "his-db").await;
    assert!(a["cursor"].as_str().unwrap().starts_with("t:"), "a DATETIME version is a time cursor: {a}");
}

#[tokio::test]
async fn a_server_killed_in_the_middle_of_a_poll_loses_no_registration_and_issues_none_twice() {
    const N: i64 = 1500;
    let db = databases::postgres();
    let mut table = Table::create(&db, true).await;
    // One multi-row INSERT: the HIS's morning so far.
    // Spread over the last hour before the pinned instant (or the part of today there is).
    let (from, span) = (ago(60), ago(0) - ago(60));
    let at = |i: i64| (from + span * i as i32 / (N as i32 + 1)).format("%Y-%m-%d %H:%M:%S%.3f");
    let values: Vec<String> = (0..N).map(|i| format!("('K{i:04}', 'P-{i}', NULL, '0101', NULL, '{}', '0', {})", at(i), i + 1)).collect();
    let His::Pg(pool) = &table.his else { unreachable!() };
    sqlx::query(&format!("INSERT INTO registrations VALUES {}", values.join(","))).execute(pool).await.unwrap();
    table.version = N;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let data = dir.path().join("data");
    let env = [("TEST_HIS_READER_URL", db.reader_url.as_str())];
    let mut app = start_with_env(&data, Some(&cfg), &env);
    // Kill it while the first pass (the whole table) is being applied.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let seen = loop {
        let waiting = app.get_json("/api/v1/queues/internal-medicine").await["counts"]["waiting"].as_u64().unwrap();
        if waiting > 0 {
            break waiting;
        }
        assert!(std::time::Instant::now() < deadline, "no registration applied within 60 s");
    };
    app.kill9();
    assert!((seen as i64) < N, "killed mid-poll ({seen} of {N} applied)");

    let app = start_with_env(&data, Some(&cfg), &env);
    table.register("K-LATE", "P-LATE", "0101", 0).await;
    let (status, report) = poll(&app, "his-db", json!({})).await;
    assert_eq!(status, 200, "{report}");
    let q = app.get_json("/api/v1/queues/internal-medicine").await;
    let waiting = q["waiting"].as_array().unwrap();
    assert_eq!(waiting.len() as i64, N + 1, "every registration once: {}", q["counts"]);
    let numbers: std::collections::HashSet<&str> = waiting.iter().map(|w| w["number"].as_str().unwrap()).collect();
    assert_eq!(numbers.len() as i64, N + 1, "no number issued twice");
    let first = app.get_json(&format!("/api/v1/tickets/{}", waiting[0]["ticket"].as_str().unwrap())).await;
    let last = app.get_json(&format!("/api/v1/tickets/{}", waiting[N as usize]["ticket"].as_str().unwrap())).await;
    assert_eq!((first["his"]["id"].as_str(), last["his"]["id"].as_str()), (Some("K0000"), Some("K-LATE")), "registration order");
}
