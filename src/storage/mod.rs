//! The journal: every state change, as an event, committed before it is acknowledged.
//!
//! [`JournalStore`] is the storage trait (SQLite today, PostgreSQL behind the same trait later).
//! [`JournalWriter`] owns one store on its own OS thread and commits whatever has queued up in
//! one transaction (group commit), so many queues' commands share one fsync.

mod sqlite;
mod writer;
pub mod backup;
pub mod his;
pub mod orders;
pub mod schema;
pub mod tags;

pub use schema::SchemaError;

/// A small durable SQLite file beside the journal (orders, tags, HIS withdrawals, webhook
/// cursors): WAL, `synchronous=FULL` (an acknowledged write survives `kill -9` and power loss),
/// brought to this build's `schema` (see [`schema`]).
pub fn open_durable(path: &std::path::Path, schema: &schema::Schema) -> Result<rusqlite::Connection, SchemaError> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    schema::prepare(&mut conn, schema)?;
    Ok(conn)
}

/// `webhooks.sqlite`: each outbound hook's cursor in the journal.
pub static WEBHOOK_CURSORS: schema::Schema = schema::Schema {
    file: "webhooks.sqlite",
    steps: &[|c| c.execute_batch("CREATE TABLE IF NOT EXISTS cursors (hook TEXT PRIMARY KEY, seq INTEGER NOT NULL)")],
};

pub use sqlite::{mark_path, witness_path, Damage, SqliteJournal, Verified, Walk};
pub use writer::{AppendReceipt, AppendSlot, JournalWriter, WriterLimits};

use crate::domain::event::{Event, UnixMs};
use crate::domain::ids::QueueId;

/// An event about to be journaled.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub queue: QueueId,
    pub at: UnixMs,
    pub event: Event,
}

/// An event read back, with its journal sequence number.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub seq: i64,
    pub queue: QueueId,
    pub at: UnixMs,
    pub event: Event,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("journal database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("{0}")]
    Schema(#[from] SchemaError),
    #[error("journal record {seq} is not a readable event: {reason}")]
    Corrupt { seq: i64, reason: String },
    #[error("journal writer stopped after an earlier failure")]
    Failed,
    #[error("journal is overloaded: {0} appends waiting")]
    Overloaded(usize),
}

/// Durable, ordered storage of events.
pub trait JournalStore: Send + 'static {
    /// Append `batch` in one transaction. When this returns `Ok`, the events are on disk.
    /// Returns their sequence numbers, in order.
    fn append(&mut self, batch: &[NewEvent]) -> Result<Vec<i64>, StorageError>;

    /// One queue's events from its latest `DayStarted` on, in order, preceded by its latest
    /// earlier `PolicyChanged` (a policy outlives the day): what rebuilds its live state.
    fn load_current_day(&mut self, queue: &QueueId) -> Result<Vec<StoredEvent>, StorageError>;

    /// Every event about one ticket, in order (the patient session's history, across queues).
    /// Events about one ticket after journal position `after`, in order (the patient's feed,
    /// across queues).
    fn ticket_events(&mut self, ticket: &crate::domain::ids::TicketId, after: i64) -> Result<Vec<StoredEvent>, StorageError>;

    /// Events of every queue after journal position `after`, at most `limit`, in order.
    fn events_after(&mut self, after: i64, limit: usize) -> Result<Vec<StoredEvent>, StorageError>;

    /// Events of every queue recorded in `[from, to)` (Unix ms), in journal order.
    fn events_between(&mut self, from: UnixMs, to: UnixMs) -> Result<Vec<StoredEvent>, StorageError>;

    /// The newest journal position (0 when empty).
    fn last_seq(&mut self) -> Result<i64, StorageError>;

    /// Total events in the journal (health and tests).
    fn count(&mut self) -> Result<i64, StorageError>;
}
