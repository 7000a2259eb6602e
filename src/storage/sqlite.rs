//! SQLite journal: WAL, `synchronous=FULL`, one writer connection.

use super::{JournalStore, NewEvent, StorageError, StoredEvent};
use crate::domain::ids::QueueId;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

pub struct SqliteJournal {
    conn: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq    INTEGER PRIMARY KEY,
    queue  TEXT NOT NULL,
    ticket TEXT,
    at_ms  INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    body   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_queue ON events(queue, seq);
CREATE INDEX IF NOT EXISTS events_queue_kind ON events(queue, kind, seq);
CREATE INDEX IF NOT EXISTS events_ticket ON events(ticket, seq);
CREATE INDEX IF NOT EXISTS events_at ON events(at_ms);
";

impl SqliteJournal {
    #[tracing::instrument(skip_all, fields(path = %path.display()))]
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let conn = Connection::open(path)?;
        // WAL lets readers run beside the writer; FULL syncs the WAL on every commit, so an
        // acknowledged command survives power loss, not only a process crash.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn })
    }
}

impl SqliteJournal {
    /// Run a query selecting `seq, queue, at_ms, body` and decode the events.
    fn select(&mut self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<StoredEvent>, StorageError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params, |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, String>(3)?)))?;
        rows.map(|row| {
            let (seq, queue, at, body) = row?;
            decode(seq, &queue, at, &body)
        })
        .collect()
    }
}

fn decode(seq: i64, queue: &str, at: i64, body: &str) -> Result<StoredEvent, StorageError> {
    let queue = QueueId::parse(queue).map_err(|e| StorageError::Corrupt { seq, reason: e.to_string() })?;
    let event = serde_json::from_str(body).map_err(|e| StorageError::Corrupt { seq, reason: e.to_string() })?;
    Ok(StoredEvent { seq, queue, at, event })
}

impl JournalStore for SqliteJournal {
    fn append(&mut self, batch: &[NewEvent]) -> Result<Vec<i64>, StorageError> {
        let tx = self.conn.transaction()?;
        let mut seqs = Vec::with_capacity(batch.len());
        {
            let mut stmt =
                tx.prepare_cached("INSERT INTO events (queue, ticket, at_ms, kind, body) VALUES (?1, ?2, ?3, ?4, ?5)")?;
            for e in batch {
                let body = serde_json::to_string(&e.event).map_err(|err| StorageError::Corrupt { seq: -1, reason: err.to_string() })?;
                stmt.execute(params![e.queue.as_str(), e.event.ticket().map(|t| t.as_str()), e.at, e.event.kind(), body])?;
                seqs.push(tx.last_insert_rowid());
            }
        }
        tx.commit()?;
        Ok(seqs)
    }

    fn load_current_day(&mut self, queue: &QueueId) -> Result<Vec<StoredEvent>, StorageError> {
        let start: i64 = self
            .conn
            .query_row(
                "SELECT MAX(seq) FROM events WHERE queue = ?1 AND kind = 'day_started'",
                params![queue.as_str()],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()?
            .flatten()
            .unwrap_or(0);
        // A policy changed on an earlier day still holds: its latest change comes first.
        let mut events = self.select(
            "SELECT seq, queue, at_ms, body FROM events WHERE queue = ?1 AND kind = 'policy_changed' AND seq < ?2 ORDER BY seq DESC LIMIT 1",
            params![queue.as_str(), start],
        )?;
        events.extend(self.select("SELECT seq, queue, at_ms, body FROM events WHERE queue = ?1 AND seq >= ?2 ORDER BY seq", params![queue.as_str(), start])?);
        Ok(events)
    }

    fn ticket_events(&mut self, ticket: &crate::domain::ids::TicketId, after: i64) -> Result<Vec<StoredEvent>, StorageError> {
        self.select("SELECT seq, queue, at_ms, body FROM events WHERE ticket = ?1 AND seq > ?2 ORDER BY seq", params![ticket.as_str(), after])
    }

    fn events_after(&mut self, after: i64, limit: usize) -> Result<Vec<StoredEvent>, StorageError> {
        self.select("SELECT seq, queue, at_ms, body FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2", params![after, limit as i64])
    }

    fn events_between(&mut self, from: i64, to: i64) -> Result<Vec<StoredEvent>, StorageError> {
        self.select("SELECT seq, queue, at_ms, body FROM events WHERE at_ms >= ?1 AND at_ms < ?2 ORDER BY seq", params![from, to])
    }

    fn last_seq(&mut self) -> Result<i64, StorageError> {
        Ok(self.conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?)
    }

    fn count(&mut self) -> Result<i64, StorageError> {
        Ok(self.conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::config::{Fairness, QueuePolicy};
    use crate::domain::event::Event;

    #[test]
    fn a_policy_change_outlives_the_day_it_was_made() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = SqliteJournal::open(&dir.path().join("j.sqlite")).unwrap();
        let q = QueueId::parse("q").unwrap();
        let other = QueueId::parse("other").unwrap();
        let day = |d: u32| Event::DayStarted { day: chrono::NaiveDate::from_ymd_opt(2026, 11, d).unwrap() };
        let policy = |n: u32| Event::PolicyChanged {
            policy: Box::new(QueuePolicy { fairness: Fairness { interleave: Some(n), ..Fairness::default() }, ..QueuePolicy::default() }),
            base: "x".into(),
        };
        let ev = |queue: &QueueId, event: Event| NewEvent { queue: queue.clone(), at: 0, event };
        j.append(&[ev(&q, day(23)), ev(&q, policy(1)), ev(&q, policy(2)), ev(&other, policy(3)), ev(&q, day(24)), ev(&q, day(25))]).unwrap();
        let loaded: Vec<Event> = j.load_current_day(&q).unwrap().into_iter().map(|e| e.event).collect();
        assert_eq!(loaded, vec![policy(2), day(25)], "the latest change of this queue, then today");
        let none: Vec<Event> = j.load_current_day(&QueueId::parse("third").unwrap()).unwrap().into_iter().map(|e| e.event).collect();
        assert!(none.is_empty());
    }
}
