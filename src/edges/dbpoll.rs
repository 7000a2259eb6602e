//! The HIS database poller (`[[his.poll]]`): reads a view or intermediate table of today's
//! registrations from PostgreSQL or MySQL/MariaDB, read-only, and applies its rows as HIS facts.
//!
//! - Every `interval_ms`, the incremental `query` reads the rows changed since the cursor (the
//!   greatest `version` applied). The cursor is saved (`his.sqlite`) only after every row
//!   of the batch is applied, so a restart mid-poll reads the batch again — and applying it again
//!   changes nothing. A batch that moved the cursor is followed at once by the next.
//! - Every `reconcile_secs` (and first of all), the `snapshot` query reads all of today's
//!   registrations: rows clinicflow never saw are applied, and open tickets whose registration is
//!   gone from the view are withdrawn (退号) — unless more than half would go at once
//!   ([`crate::his::table::reconcile`]), which is refused as a broken view.
//! - Every read runs in `START TRANSACTION READ ONLY` (then rolled back): clinicflow never writes
//!   to the HIS database, whatever the configured SQL says. Give it a user with SELECT only.
//! - A failing database (down, wrong password, a view that lost a column) is logged, counted,
//!   shown in `/api/v1/his`, and retried after `interval_ms`, doubling to at most a minute; the
//!   server goes on.

use crate::actors::his::{ApplyError, Applied, HisDesk};
use crate::site::HisPoll;
use crate::his::table::{self, Cursor, Reconciliation, Row, Value};
use crate::his::Fact;
use serde::{Deserialize, Serialize};
use sqlx::{Column, Row as _, TypeInfo, ValueRef};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// The longest wait between retries of a failing database.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What an operator asks of a poll run now (`POST /api/v1/his/{adapter}/poll`).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollRequest {
    /// Read the whole snapshot and reconcile, not only the changes.
    #[serde(default)]
    pub reconcile: bool,
    /// Withdraw even when more than half of the open registrations would go.
    #[serde(default)]
    pub force: bool,
}

/// What one pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PollReport {
    pub reconciled: bool,
    pub rows: usize,
    pub applied: usize,
    pub repeats: usize,
    /// Rows refused (the first few reasons in `row_errors`).
    pub refused: usize,
    pub row_errors: Vec<String>,
    /// Open tickets withdrawn because the HIS no longer has their registration.
    pub withdrawn: usize,
    /// Why a reconciliation withdrew nothing although the view lost registrations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspicious: Option<String>,
    pub cursor: Option<String>,
}

type Ask = (PollRequest, oneshot::Sender<Result<PollReport, String>>);

/// Runs a poll now. Cheap to clone.
#[derive(Clone)]
pub struct PollHandle {
    tx: mpsc::Sender<Ask>,
}

impl PollHandle {
    /// Runs one pass as soon as the pass in progress (if any) ends; its report, or why it failed.
    pub async fn poll_now(&self, req: PollRequest) -> Result<PollReport, String> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((req, tx)).await.map_err(|_| "the poller has stopped".to_owned())?;
        rx.await.map_err(|_| "the poller has stopped".to_owned())?
    }
}

enum Db {
    Pg(sqlx::PgPool),
    My(sqlx::MySqlPool),
}

/// Starts the poller of one `[[his.poll]]` (a tokio task); connects lazily, so a database that
/// is down at start is retried like one that fails later.
pub fn start(cfg: HisPoll, url: &str, desk: HisDesk) -> anyhow::Result<PollHandle> {
    let timeout = Duration::from_secs(cfg.timeout_secs);
    let db = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Db::Pg(sqlx::postgres::PgPoolOptions::new().max_connections(1).acquire_timeout(timeout).connect_lazy(url)?)
    } else {
        let url = url.strip_prefix("mariadb://").map_or_else(|| url.to_owned(), |rest| format!("mysql://{rest}"));
        Db::My(sqlx::mysql::MySqlPoolOptions::new().max_connections(1).acquire_timeout(timeout).connect_lazy(&url)?)
    };
    let (tx, rx) = mpsc::channel(8);
    desk.register(&cfg.name);
    tokio::spawn(run(Poller { cfg, db, desk, cursor: None, refused: HashSet::new() }, rx));
    Ok(PollHandle { tx })
}

struct Poller {
    cfg: HisPoll,
    db: Db,
    desk: HisDesk,
    cursor: Option<Cursor>,
    /// Rows refused by the incremental query (id, version), so each is counted once.
    refused: HashSet<(String, String)>,
}

async fn run(mut p: Poller, mut asks: mpsc::Receiver<Ask>) {
    let name = p.cfg.name.clone();
    match p.desk.db({
        let n = name.clone();
        move |s| s.cursor(&n)
    })
    .await
    {
        Ok(c) => p.cursor = c.as_deref().and_then(Cursor::decode),
        Err(_) => tracing::warn!(adapter = %name, "HIS poller: the saved cursor could not be read; starting with a reconciliation"),
    }
    let interval = Duration::from_millis(p.cfg.interval_ms);
    let every = Duration::from_secs(p.cfg.reconcile_secs);
    let mut last_reconcile: Option<Instant> = None;
    let mut failures: u32 = 0;
    let mut next = Instant::now();
    loop {
        let ask = tokio::select! {
            _ = tokio::time::sleep_until(next) => None,
            a = asks.recv() => match a {
                Some(a) => Some(a),
                None => return,
            },
        };
        let req = ask.as_ref().map(|(r, _)| *r).unwrap_or_default();
        let reconcile = req.reconcile || p.cursor.is_none() || last_reconcile.is_none_or(|t| t.elapsed() >= every);
        let before = p.cursor.clone();
        let result = p.pass(reconcile, req.force).await;
        match &result {
            Ok(report) => {
                failures = 0;
                if reconcile {
                    last_reconcile = Some(Instant::now());
                }
                p.desk.polled(&name, Ok((report.cursor.clone(), reconcile)));
                // A batch that moved the cursor may have more behind it.
                next = if !reconcile && p.cursor != before { Instant::now() } else { Instant::now() + interval };
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                p.desk.polled(&name, Err(e.clone()));
                let wait = interval.saturating_mul(1 << failures.min(10).saturating_sub(1)).min(MAX_BACKOFF.max(interval));
                tracing::warn!(adapter = %name, error = %e, retry_in_ms = wait.as_millis() as u64, "HIS poll failed");
                next = Instant::now() + wait;
            }
        }
        if let Some((_, reply)) = ask {
            let _ = reply.send(result);
        }
    }
}

impl Poller {
    /// One pass: the changes since the cursor, or (`reconcile`) the whole snapshot and the
    /// withdrawal of what it lost.
    async fn pass(&mut self, reconcile: bool, force: bool) -> Result<PollReport, String> {
        let tz = self.desk.hospital().tz;
        let name = self.cfg.name.clone();
        let timeout = Duration::from_secs(self.cfg.timeout_secs);
        let (sql, cursor) = if reconcile { (self.cfg.snapshot.clone(), None) } else { (self.cfg.query.clone(), self.cursor.clone()) };
        let rows = tokio::time::timeout(timeout, self.db.read(&sql, cursor.as_ref()))
            .await
            .map_err(|_| format!("the HIS database did not answer within {} s", timeout.as_secs()))??;
        let mut report = PollReport { reconciled: reconcile, rows: rows.len(), ..Default::default() };
        if reconcile || self.refused.len() > 10_000 {
            self.refused.clear();
        }
        if let Some(first) = rows.first() {
            let columns: Vec<String> = first.0.iter().map(|(c, _)| c.clone()).collect();
            table::check_columns(&columns).map_err(|e| format!("{} query: {e}", if reconcile { "snapshot" } else { "incremental" }))?;
        }
        let today = crate::clock::today(&tz);
        let mut newest = self.cursor.clone();
        let mut live = HashSet::new();
        for row in &rows {
            let id = table::live_id(row);
            if let Some(id) = &id {
                live.insert(id.clone());
            }
            // Every readable version moves the cursor, a refused row's too: it is not read again
            // until it changes (or the next reconciliation reports it again).
            let version = table::row_version(row);
            if let Some(v) = version.clone() {
                newest = match newest {
                    None => Some(v),
                    Some(c) => Some(c.max(v).ok_or_else(|| "the version column changed type (integer or timestamp)".to_owned())?),
                };
            }
            let facts = match table::row_facts(row, &name, tz, today) {
                Ok(f) => f,
                Err(e) => {
                    // Counted once per row version (a `>=` query reads the last row again).
                    let key = (id.unwrap_or_default(), version.map(|v| v.encode()).unwrap_or_default());
                    if reconcile || self.refused.insert(key) {
                        self.refuse(&mut report, e.to_string());
                    }
                    continue;
                }
            };
            self.apply_all(&facts.facts, &mut report).await?;
        }
        if reconcile {
            let open = self.desk.tickets_of(&name).await.map_err(unavailable)?;
            match table::reconcile(&live, &open, force) {
                Reconciliation::Withdraw(gone) => {
                    let revision = newest.as_ref().map(|c| c.revision(tz));
                    for his in gone {
                        tracing::info!(adapter = %name, registration = %his.id, "HIS no longer has this registration: withdrawn (退号)");
                        self.apply_all(&[Fact::Cancelled { his, revision }], &mut report).await?;
                        report.withdrawn += 1;
                    }
                }
                Reconciliation::Suspicious { would_withdraw, open } => {
                    let why = format!("the snapshot lacks {would_withdraw} of {open} open registrations: nothing withdrawn (a broken view?); check it, then poll with force");
                    tracing::error!(adapter = %name, "{why}");
                    self.desk.note(&name, "error", Some(why.clone()));
                    report.suspicious = Some(why);
                }
            }
        }
        if newest != self.cursor {
            if let Some(c) = &newest {
                let (n, enc, now) = (name.clone(), c.encode(), crate::clock::now_ms());
                self.desk.db(move |s| s.set_cursor(&n, &enc, now)).await.map_err(unavailable)?;
            }
            self.cursor = newest;
        }
        report.cursor = self.cursor.as_ref().map(Cursor::encode);
        Ok(report)
    }

    async fn apply_all(&self, facts: &[Fact], report: &mut PollReport) -> Result<(), String> {
        for f in facts {
            match self.desk.apply(f).await {
                Ok(Applied::Changed) => {
                    report.applied += 1;
                    self.desk.note(&self.cfg.name, "applied", None);
                }
                Ok(Applied::Repeat) => report.repeats += 1,
                Err(ApplyError::Fact(e)) => {
                    let id = f.registration().map(|h| h.id.clone()).unwrap_or_default();
                    self.refuse(report, format!("registration {id}: {e}"));
                    // A booked appointment refused is not checked in either.
                    break;
                }
                Err(e) => return Err(unavailable(e)),
            }
        }
        Ok(())
    }

    fn refuse(&self, report: &mut PollReport, why: String) {
        tracing::info!(adapter = %self.cfg.name, error = %why, "HIS row refused");
        self.desk.note(&self.cfg.name, "error", Some(why.clone()));
        report.refused += 1;
        if report.row_errors.len() < 10 {
            report.row_errors.push(why);
        }
    }
}

fn unavailable(e: ApplyError) -> String {
    match e {
        ApplyError::Unavailable(m) => format!("not recorded (will retry): {m}"),
        ApplyError::Fact(f) => f.to_string(),
    }
}

impl Db {
    /// Runs `sql` in a read-only transaction, `{cursor}` bound to `cursor`.
    ///
    /// (`Executor::execute` with a `&str`, not `raw_sql`, for the transaction statements: the
    /// latter's future is not `Send` for every lifetime, launchbadge/sqlx#3150.)
    async fn read(&self, sql: &str, cursor: Option<&Cursor>) -> Result<Vec<Row>, String> {
        let db_err = |e: sqlx::Error| format!("HIS database: {e}");
        macro_rules! read_with {
            ($pool:expr, $postgres:expr, $row:ident) => {{
                let mut conn = $pool.acquire().await.map_err(db_err)?;
                sqlx::Executor::execute(&mut *conn, "START TRANSACTION READ ONLY").await.map_err(db_err)?;
                let (sql, binds) = table::bind_cursor(sql, $postgres);
                let mut q = sqlx::query(&sql);
                for _ in 0..binds {
                    q = match cursor {
                        Some(Cursor::Int(i)) => q.bind(*i),
                        Some(Cursor::Time(t)) => q.bind(*t),
                        Some(Cursor::TimeUtc(t)) => q.bind(*t),
                        None => return Err("the incremental query needs a cursor: reconcile first".into()),
                    };
                }
                let rows = q.fetch_all(&mut *conn).await;
                let _ = sqlx::Executor::execute(&mut *conn, "ROLLBACK").await;
                Ok(rows.map_err(db_err)?.iter().map($row).collect())
            }};
        }
        match self {
            Db::Pg(pool) => read_with!(pool, true, pg_row),
            Db::My(pool) => read_with!(pool, false, my_row),
        }
    }
}

/// Reads every column of a row into [`Value`]s, by the column's SQL type.
macro_rules! row_reader {
    ($name:ident, $row:ty, $value:ident) => {
        fn $name(r: &$row) -> Row {
            Row(r
                .columns()
                .iter()
                .map(|c| {
                    let i = c.ordinal();
                    let v = match r.try_get_raw(i) {
                        Ok(raw) if raw.is_null() => Value::Null,
                        Ok(raw) => {
                            let ty = raw.type_info().name().to_ascii_uppercase();
                            $value(r, i, &ty).unwrap_or_else(|e| Value::Unsupported(format!("{ty} ({e})")))
                        }
                        Err(e) => Value::Unsupported(e.to_string()),
                    };
                    (c.name().to_lowercase(), v)
                })
                .collect())
        }
    };
}

row_reader!(pg_row, sqlx::postgres::PgRow, pg_value);
row_reader!(my_row, sqlx::mysql::MySqlRow, my_value);

fn pg_value(r: &sqlx::postgres::PgRow, i: usize, ty: &str) -> Result<Value, sqlx::Error> {
    Ok(match ty {
        "INT2" => Value::Int(r.try_get::<i16, _>(i)?.into()),
        "INT4" => Value::Int(r.try_get::<i32, _>(i)?.into()),
        "INT8" => Value::Int(r.try_get::<i64, _>(i)?),
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" => Value::Text(r.try_get::<String, _>(i)?),
        "TIMESTAMP" => Value::Time(r.try_get(i)?),
        "TIMESTAMPTZ" => Value::TimeUtc(r.try_get(i)?),
        "DATE" => Value::Date(r.try_get(i)?),
        "FLOAT4" => Value::Float(r.try_get::<f32, _>(i)?.into()),
        "FLOAT8" => Value::Float(r.try_get::<f64, _>(i)?),
        "BOOL" => Value::Bool(r.try_get(i)?),
        other => Value::Unsupported(other.to_owned()),
    })
}

fn my_value(r: &sqlx::mysql::MySqlRow, i: usize, ty: &str) -> Result<Value, sqlx::Error> {
    Ok(match ty {
        "BOOLEAN" => Value::Bool(r.try_get(i)?),
        t if t.ends_with("INT UNSIGNED") => match i64::try_from(r.try_get::<u64, _>(i)?) {
            Ok(v) => Value::Int(v),
            Err(_) => Value::Unsupported(t.to_owned()),
        },
        t if t.ends_with("INT") => Value::Int(r.try_get::<i64, _>(i)?),
        "VARCHAR" | "CHAR" | "TEXT" | "TINYTEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM" | "SET" => Value::Text(r.try_get::<String, _>(i)?),
        "VARBINARY" | "BINARY" | "BLOB" | "TINYBLOB" | "MEDIUMBLOB" | "LONGBLOB" => match String::from_utf8(r.try_get::<Vec<u8>, _>(i)?) {
            Ok(s) => Value::Text(s),
            Err(_) => Value::Unsupported(format!("{ty} that is not UTF-8")),
        },
        "DATETIME" => Value::Time(r.try_get(i)?),
        "TIMESTAMP" => Value::TimeUtc(r.try_get(i)?),
        "DATE" => Value::Date(r.try_get(i)?),
        "FLOAT" => Value::Float(r.try_get::<f32, _>(i)?.into()),
        "DOUBLE" => Value::Float(r.try_get::<f64, _>(i)?),
        other => Value::Unsupported(other.to_owned()),
    })
}
