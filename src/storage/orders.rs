//! Patients' orders, durable: one SQLite file (`DIR/orders.sqlite`, WAL, `synchronous=FULL`).
//! A request's orders are written in one transaction, so a bundle is stored whole or not at all,
//! and an acknowledged write survives `kill -9`.

use crate::plan::orders::{OrderIn, OrderStatus};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use super::schema::{has_column, Schema};
use std::path::Path;
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredOrder {
    pub id: String,
    pub code: String,
    pub service: String,
    pub status: OrderStatus,
    pub source: String,
    pub updated_ms: i64,
    /// When the HIS (or a lab system) said the order's results are in; none: not said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results_ms: Option<i64>,
}

pub struct OrderStore {
    conn: Mutex<Connection>,
}

/// `orders.sqlite`'s schema (see [`super::schema`]).
pub static SCHEMA: Schema = Schema { file: "orders.sqlite", steps: &[v1] };

/// As of 0.1.0; files from before results get the column.
fn v1(c: &Connection) -> rusqlite::Result<()> {
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS orders (
            patient TEXT NOT NULL, id TEXT NOT NULL, code TEXT NOT NULL, service TEXT NOT NULL,
            status TEXT NOT NULL, source TEXT NOT NULL, updated_ms INTEGER NOT NULL, results_ms INTEGER,
            PRIMARY KEY (patient, id))",
    )?;
    if !has_column(c, "orders", "results_ms")? {
        c.execute_batch("ALTER TABLE orders ADD COLUMN results_ms INTEGER")?;
    }
    Ok(())
}

impl OrderStore {
    pub fn open(path: &Path) -> Result<OrderStore, super::SchemaError> {
        let conn = super::open_durable(path, &SCHEMA)?;
        Ok(OrderStore { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Inserts or updates the orders (by id), all in one transaction.
    pub fn put(&self, patient: &str, orders: &[OrderIn], now_ms: i64) -> rusqlite::Result<()> {
        let mut c = self.conn();
        let tx = c.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO orders (patient, id, code, service, status, source, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (patient, id) DO UPDATE SET code = ?3, service = ?4, status = ?5, source = ?6, updated_ms = ?7",
            )?;
            for o in orders {
                st.execute(params![patient, o.id, o.code, o.service, o.status.as_str(), o.source, now_ms])?;
            }
        }
        tx.commit()
    }

    /// Sets one order's status; `None` when the patient has no such order.
    pub fn set_status(&self, patient: &str, id: &str, status: OrderStatus, now_ms: i64) -> rusqlite::Result<Option<StoredOrder>> {
        self.update_one(patient, id, "UPDATE orders SET status = ?3, updated_ms = ?4 WHERE patient = ?1 AND id = ?2", params![patient, id, status.as_str(), now_ms])
    }

    /// Runs `sql` (which names the order by ?1 patient, ?2 id) and reads the order back; `None`
    /// when the patient has no such order.
    fn update_one(&self, patient: &str, id: &str, sql: &str, p: &[&dyn rusqlite::ToSql]) -> rusqlite::Result<Option<StoredOrder>> {
        if self.conn().execute(sql, p)? == 0 {
            return Ok(None);
        }
        Ok(self.list(patient)?.into_iter().find(|o| o.id == id))
    }

    /// Records that an order's results are in (the first time said is kept; the order's status
    /// and time are untouched); `None` when the patient has no such order.
    pub fn set_results(&self, patient: &str, id: &str, now_ms: i64) -> rusqlite::Result<Option<StoredOrder>> {
        self.update_one(patient, id, "UPDATE orders SET results_ms = coalesce(results_ms, ?3) WHERE patient = ?1 AND id = ?2", params![patient, id, now_ms])
    }

    /// Marks the patient's active orders for `service` done (its queue completed their ticket).
    pub fn complete_service(&self, patient: &str, service: &str, now_ms: i64) -> rusqlite::Result<usize> {
        self.conn().execute(
            "UPDATE orders SET status = 'done', updated_ms = ?3 WHERE patient = ?1 AND service = ?2 AND status = 'active'",
            params![patient, service, now_ms],
        )
    }

    pub fn list(&self, patient: &str) -> rusqlite::Result<Vec<StoredOrder>> {
        let c = self.conn();
        let mut st = c.prepare_cached("SELECT id, code, service, status, source, updated_ms, results_ms FROM orders WHERE patient = ?1 ORDER BY rowid")?;
        let rows = st.query_map(params![patient], |r| {
            let status: String = r.get(3)?;
            Ok(StoredOrder {
                id: r.get(0)?,
                code: r.get(1)?,
                service: r.get(2)?,
                status: OrderStatus::parse(&status).unwrap_or(OrderStatus::Active),
                source: r.get(4)?,
                updated_ms: r.get(5)?,
                results_ms: r.get(6)?,
            })
        })?;
        rows.collect()
    }

    /// Patients with at least one active order.
    pub fn patients_with_active(&self) -> rusqlite::Result<std::collections::HashSet<String>> {
        let c = self.conn();
        let mut st = c.prepare_cached("SELECT DISTINCT patient FROM orders WHERE status = 'active'")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect()
    }

    pub fn has_patient(&self, patient: &str) -> rusqlite::Result<bool> {
        self.conn().query_row("SELECT 1 FROM orders WHERE patient = ?1 LIMIT 1", params![patient], |_| Ok(())).optional().map(|o| o.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_recorded_once_and_files_from_before_results_are_carried_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders.sqlite");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE orders (patient TEXT NOT NULL, id TEXT NOT NULL, code TEXT NOT NULL, service TEXT NOT NULL,
                    status TEXT NOT NULL, source TEXT NOT NULL, updated_ms INTEGER NOT NULL, PRIMARY KEY (patient, id));
                 INSERT INTO orders VALUES ('p-1', 'o-lab', 'LAB-CBC', 'blood', 'done', 'native', 5);",
            )
            .unwrap();
        }
        let s = OrderStore::open(&path).unwrap();
        assert_eq!(s.list("p-1").unwrap()[0].results_ms, None);
        let o = s.set_results("p-1", "o-lab", 100).unwrap().unwrap();
        assert_eq!((o.results_ms, o.updated_ms, o.status), (Some(100), 5, OrderStatus::Done), "status and time untouched");
        assert_eq!(s.set_results("p-1", "o-lab", 200).unwrap().unwrap().results_ms, Some(100), "the first word is kept");
        assert_eq!(s.set_results("p-1", "nope", 200).unwrap(), None);
        drop(s);
        assert_eq!(OrderStore::open(&path).unwrap().list("p-1").unwrap()[0].results_ms, Some(100), "durable");
    }
}
