//! HIS registrations withdrawn (退号), durable (`DIR/his.sqlite`): written before the withdrawal
//! is applied, so a registration that arrives after its own withdrawal is never issued, even
//! across a restart.

use crate::domain::event::HisRef;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::Mutex;

/// Withdrawn registrations, durable.
pub struct HisStore {
    conn: Mutex<Connection>,
}

impl HisStore {
    pub fn open(path: &Path) -> rusqlite::Result<HisStore> {
        let conn = super::open_durable(path, "CREATE TABLE IF NOT EXISTS withdrawn (source TEXT NOT NULL, id TEXT NOT NULL, at_ms INTEGER NOT NULL, PRIMARY KEY (source, id))")?;
        Ok(HisStore { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a withdrawal; `false` when it was recorded before.
    pub fn withdraw(&self, his: &HisRef, at_ms: i64) -> rusqlite::Result<bool> {
        Ok(self.conn().execute("INSERT OR IGNORE INTO withdrawn (source, id, at_ms) VALUES (?1, ?2, ?3)", params![his.source, his.id, at_ms])? > 0)
    }

    pub fn is_withdrawn(&self, his: &HisRef) -> rusqlite::Result<bool> {
        Ok(self.conn().query_row("SELECT 1 FROM withdrawn WHERE source = ?1 AND id = ?2", params![his.source, his.id], |_| Ok(())).optional()?.is_some())
    }
}

