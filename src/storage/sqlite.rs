//! SQLite journal: WAL, `synchronous=FULL`, one writer connection.
//!
//! **A journal you can trust.** SQLite checksums its WAL frames but not its database pages, and
//! a damaged WAL frame silently ends what it reads of the WAL there: every commit after it
//! vanishes without a word. So each event row carries `chain`, a SHA-256 over the previous
//! row's chain and this row's columns, and after every commit the writer notes the newest
//! `(seq, chain)` in a small witness file beside the journal (`journal.sqlite-head`, written
//! without an fsync: after `kill -9` the OS still has it; after a power loss it may be older,
//! never newer). [`SqliteJournal::verify`] walks the chain and holds the journal against its
//! witness: a changed, missing or reordered event, or a journal that ends before what was
//! committed, is reported with its position, and `serve` refuses to start rather than issue
//! numbers again. `clinicflow journal verify --data DIR` does the same offline.

use super::schema::{has_column, Schema};
use super::{JournalStore, NewEvent, StorageError, StoredEvent};
use crate::domain::ids::QueueId;
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// A chain value: SHA-256.
pub type Chain = [u8; 32];

pub struct SqliteJournal {
    conn: Connection,
    /// The newest event's position and chain (0 and zeros when empty).
    head: (i64, Chain),
    /// Where the witness of the newest commit is written (the writer's copy only).
    witness: Option<Witness>,
}

/// The witness file, kept open by the writer (one write per commit, no open/close).
struct Witness {
    path: PathBuf,
    file: Option<std::fs::File>,
}

/// How much of the journal [`SqliteJournal::verify`] walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// Every event (`clinicflow journal verify`).
    Whole,
    /// The events after the last verified one (`journal.sqlite-verified`), when that one is
    /// still there with the chain it had; the whole journal otherwise (`serve` at start).
    SinceMark,
}

/// What [`SqliteJournal::verify`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The walk started after this event (0: the whole journal).
    pub from: i64,
    /// Events walked.
    pub events: i64,
    /// The newest position.
    pub last_seq: i64,
    /// Events from before chains were kept (checked by reading them only).
    pub unchained: i64,
    /// The newest commit the witness file names, when there is one.
    pub witnessed: Option<i64>,
}

/// Why the journal cannot be trusted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Damage {
    #[error("event {seq}: {reason}")]
    Event { seq: i64, reason: String },
    #[error("the journal ends at event {last_seq}, but events up to {witnessed} were committed (journal.sqlite-head): {} acknowledged events are missing — typically a damaged frame in journal.sqlite-wal, after which SQLite reads nothing more", witnessed - last_seq)]
    Truncated { last_seq: i64, witnessed: i64 },
}

/// The chain after `prev` for one row.
fn chain(prev: &Chain, seq: i64, queue: &str, ticket: Option<&str>, at: i64, kind: &str, body: &str) -> Chain {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_le_bytes());
    for part in [queue, ticket.unwrap_or(""), kind, body] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.update(at.to_le_bytes());
    h.finalize().into()
}

/// The witness file beside a journal.
pub fn witness_path(journal: &Path) -> PathBuf {
    beside(journal, "-head")
}

/// The mark of the last verified event beside a journal.
pub fn mark_path(journal: &Path) -> PathBuf {
    beside(journal, "-verified")
}

fn beside(journal: &Path, suffix: &str) -> PathBuf {
    let mut name = journal.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    journal.with_file_name(name)
}

/// The witness: `seq chain-hex` on one line. Unreadable is `None` (and said by the caller).
/// Notes the newest verified event (written whole, then renamed into place). A mark that cannot
/// be written is logged: the next start walks more.
fn write_mark(path: &Path, seq: i64, chain: &Chain) {
    let tmp = beside(path, ".tmp");
    let result = std::fs::write(&tmp, format!("{seq:020} {}\n", hex::encode(chain))).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "could not note the verified journal; the next start walks it whole");
    }
}

/// A `seq chain` line (the witness and the verification mark).
fn read_witness(path: &Path) -> Result<Option<(i64, Chain)>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mut parts = text.split_whitespace();
    let seq = parts.next().and_then(|s| s.parse::<i64>().ok());
    let chain = parts.next().and_then(|h| hex::decode(h).ok()).and_then(|b| Chain::try_from(b.as_slice()).ok());
    match (seq, chain) {
        (Some(seq), Some(chain)) => Ok(Some((seq, chain))),
        _ => Err(format!("{} is not a witness line", path.display())),
    }
}

/// `journal.sqlite`'s schema (see [`super::schema`]): version 2 as 0.1.0 left it (chains),
/// version 3 with the partial indexes in place of the index of every row by kind.
pub static SCHEMA: Schema = Schema { file: "journal.sqlite", steps: &[v1, v2, v3] };

/// The events (journals of before chains, and new files on their way to chains).
fn v1(c: &Connection) -> rusqlite::Result<()> {
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS events (
            seq    INTEGER PRIMARY KEY,
            queue  TEXT NOT NULL,
            ticket TEXT,
            at_ms  INTEGER NOT NULL,
            kind   TEXT NOT NULL,
            body   TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS events_queue ON events(queue, seq);
        CREATE INDEX IF NOT EXISTS events_ticket ON events(ticket, seq);
        CREATE INDEX IF NOT EXISTS events_at ON events(at_ms);",
    )
}

/// Chains: the rows of a journal from before chains stay unchained (read and decoded by
/// `verify`); every row from now on is chained.
fn v2(c: &Connection) -> rusqlite::Result<()> {
    if !has_column(c, "events", "chain")? {
        c.execute_batch("ALTER TABLE events ADD COLUMN chain BLOB")?;
    }
    Ok(())
}

/// Where each queue's day starts and its policy changes: partial indexes, so the rare rows they
/// hold are the only ones a commit adds to them (an index of every row by kind cost a quarter
/// of the writer's time).
fn v3(c: &Connection) -> rusqlite::Result<()> {
    c.execute_batch(
        "CREATE INDEX IF NOT EXISTS events_day_started ON events(queue, seq) WHERE kind = 'day_started';
        CREATE INDEX IF NOT EXISTS events_policy_changed ON events(queue, seq) WHERE kind = 'policy_changed';
        DROP INDEX IF EXISTS events_queue_kind;",
    )
}

impl SqliteJournal {
    #[tracing::instrument(skip_all, fields(path = %path.display()))]
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let mut conn = Connection::open(path)?;
        // WAL lets readers run beside the writer; FULL syncs the WAL on every commit, so an
        // acknowledged command survives power loss, not only a process crash.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        super::schema::prepare(&mut conn, &SCHEMA)?;
        let head = conn
            .query_row("SELECT seq, chain FROM events ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<Vec<u8>>>(1)?)))
            .optional()?
            .map(|(seq, c)| (seq, c.and_then(|c| Chain::try_from(c.as_slice()).ok()).unwrap_or([0; 32])))
            .unwrap_or((0, [0; 32]));
        Ok(Self { conn, head, witness: None })
    }

    /// The writer's journal: as [`SqliteJournal::open`], and every commit is noted in the
    /// witness file beside it.
    pub fn open_writer(path: &Path) -> Result<Self, StorageError> {
        let mut j = Self::open(path)?;
        j.witness = Some(Witness { path: witness_path(path), file: None });
        Ok(j)
    }

    /// Writes the witness of this journal's newest event beside it, synced: a copy of a journal
    /// (a backup) gets the witness of what it holds.
    pub fn write_witness(&self, journal_path: &Path) -> std::io::Result<()> {
        use std::io::Write as _;
        let mut f = std::fs::File::create(witness_path(journal_path))?;
        f.write_all(format!("{:020} {}\n", self.head.0, hex::encode(self.head.1)).as_bytes())?;
        f.sync_all()
    }

    /// Walks the chain (all of it, or what came after the last verification) and holds the
    /// journal against its witness (see the module doc). A walk that finds nothing wrong marks
    /// the newest event verified, so the next start walks only what came after it.
    #[tracing::instrument(skip_all)]
    pub fn verify(&mut self, journal_path: &Path, walk: Walk) -> Result<Result<Verified, Damage>, StorageError> {
        let mark = match walk {
            Walk::Whole => None,
            Walk::SinceMark => self.valid_mark(journal_path)?,
        };
        let from = mark.map_or(0, |(seq, _)| seq);
        let mut stmt = self.conn.prepare("SELECT seq, queue, ticket, at_ms, kind, body, chain FROM events WHERE seq > ?1 ORDER BY seq")?;
        let mut rows = stmt.query([from])?;
        let mut prev: Chain = mark.map_or([0; 32], |(_, c)| c);
        let (mut events, mut unchained, mut last_seq, mut chained_from) = (0i64, 0i64, from, mark.map(|(seq, _)| seq));
        let witness = read_witness(&witness_path(journal_path));
        let witnessed = match &witness {
            Ok(w) => *w,
            Err(e) => {
                tracing::warn!(error = %e, "the journal's witness file is unreadable; checking the chain alone");
                None
            }
        };
        let mut at_witness: Option<Chain> = mark.filter(|(seq, _)| witnessed.is_some_and(|(w, _)| w == *seq)).map(|(_, c)| c);
        while let Some(r) = rows.next()? {
            let (seq, queue, ticket, at, kind, body, stored): (i64, String, Option<String>, i64, String, String, Option<Vec<u8>>) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?);
            let damaged = |reason: String| self.keep_wal().map(|()| Err(Damage::Event { seq, reason }));
            if let Err(e) = decode(seq, &queue, at, &body) {
                return damaged(format!("not a readable event ({e})"));
            }
            match stored {
                None if chained_from.is_none() => unchained += 1,
                None => return damaged("its chain is missing where every event has one".into()),
                Some(c) => {
                    let start = chained_from.is_none();
                    chained_from.get_or_insert(seq);
                    // The first chained row after unchained ones starts from zeros.
                    let base = if start { [0; 32] } else { prev };
                    let want = chain(&base, seq, &queue, ticket.as_deref(), at, &kind, &body);
                    if c.as_slice() != want {
                        return damaged("its contents or its place do not match the chain: changed, or an event before it is missing".into());
                    }
                    prev = want;
                }
            }
            if witnessed.is_some_and(|(w, _)| w == seq) {
                at_witness = Some(prev);
            }
            events += 1;
            last_seq = seq;
        }
        if let Some((w, want)) = witnessed {
            if w > last_seq {
                self.keep_wal()?;
                return Ok(Err(Damage::Truncated { last_seq, witnessed: w }));
            }
            if chained_from.is_some_and(|from| w >= from) && at_witness != Some(want) {
                self.keep_wal()?;
                return Ok(Err(Damage::Event { seq: w, reason: "does not match what was committed there (journal.sqlite-head): the journal was rewritten or restored without its witness".into() }));
            }
        }
        if chained_from.is_some() {
            write_mark(&mark_path(journal_path), last_seq, &prev);
        }
        Ok(Ok(Verified { from, events, last_seq, unchained, witnessed: witnessed.map(|w| w.0) }))
    }

    /// The last verified event, when it is still in the journal with the chain it had then.
    fn valid_mark(&self, journal_path: &Path) -> Result<Option<(i64, Chain)>, StorageError> {
        let path = mark_path(journal_path);
        let (seq, want) = match read_witness(&path) {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(None),
            Err(e) => {
                tracing::warn!(error = %e, "the journal's verification mark is unreadable; walking the whole journal");
                return Ok(None);
            }
        };
        let stored: Option<Vec<u8>> = self.conn.query_row("SELECT chain FROM events WHERE seq = ?1", [seq], |r| r.get(0)).optional()?.flatten();
        if stored.as_deref() == Some(want.as_slice()) {
            Ok(Some((seq, want)))
        } else {
            tracing::warn!(seq, "the last verified event is not there as it was; walking the whole journal");
            Ok(None)
        }
    }

    /// A damaged journal is left exactly as found: closing the last connection would otherwise
    /// checkpoint the WAL into the database and delete it, and with it every frame after the
    /// damaged one, which a forensic repair may still recover.
    fn keep_wal(&self) -> Result<(), StorageError> {
        self.conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        Ok(())
    }

    /// Notes the newest commit in the witness file (no fsync: see the module doc). A witness
    /// that cannot be written is logged, not fatal: the journal itself is durable.
    fn witness_commit(&mut self) {
        let Some(w) = self.witness.as_mut() else { return };
        let line = format!("{:020} {}\n", self.head.0, hex::encode(self.head.1));
        if w.file.is_none() {
            match std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(&w.path) {
                Ok(f) => w.file = Some(f),
                Err(e) => {
                    tracing::warn!(path = %w.path.display(), error = %e, "opening the journal's witness");
                    return;
                }
            }
        }
        use std::os::unix::fs::FileExt as _;
        if let Some(Err(e)) = w.file.as_ref().map(|f| f.write_all_at(line.as_bytes(), 0)) {
            tracing::warn!(path = %w.path.display(), error = %e, "writing the journal's witness");
            // Opened again on the next commit.
            w.file = None;
        }
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
        let mut head = self.head;
        {
            let mut stmt =
                tx.prepare_cached("INSERT INTO events (seq, queue, ticket, at_ms, kind, body, chain) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?;
            for e in batch {
                let body = serde_json::to_string(&e.event).map_err(|err| StorageError::Corrupt { seq: -1, reason: err.to_string() })?;
                let (seq, ticket, kind) = (head.0 + 1, e.event.ticket().map(|t| t.as_str()), e.event.kind());
                let c = chain(&head.1, seq, e.queue.as_str(), ticket, e.at, kind, &body);
                stmt.execute(params![seq, e.queue.as_str(), ticket, e.at, kind, body, c.as_slice()])?;
                seqs.push(seq);
                head = (seq, c);
            }
        }
        tx.commit()?;
        self.head = head;
        self.witness_commit();
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

    fn issued(n: usize) -> NewEvent {
        let cmd = crate::domain::command::Command::Issue(crate::domain::command::IssueTicket::walk_in(crate::domain::ids::TicketId::parse(&format!("t{n}")).unwrap(), crate::domain::ids::PatientId::parse(&format!("p{n}")).unwrap(), crate::domain::ids::DisplayName::parse("张三丰").unwrap(), crate::domain::ids::PriorityClass::parse("normal").unwrap()));
        let hospital = crate::domain::config::Hospital::demo();
        let q = QueueId::parse("internal-medicine").unwrap();
        let mut state = crate::domain::queue::QueueState::new(hospital.queues[&q].clone());
        let event = state.execute(&cmd, 1_796_601_600_000).unwrap().events.into_iter().find(|e| matches!(e, Event::TicketIssued { .. })).unwrap();
        NewEvent { queue: q, at: 1_796_601_600_000 + n as i64, event }
    }

    /// A journal of `n` events, one commit each, written by the writer's journal.
    fn journal(dir: &Path, n: usize) -> PathBuf {
        let path = dir.join("journal.sqlite");
        let mut j = SqliteJournal::open_writer(&path).unwrap();
        for i in 0..n {
            j.append(&[issued(i)]).unwrap();
        }
        path
    }

    fn verify(path: &Path) -> Result<Verified, Damage> {
        SqliteJournal::open(path).unwrap().verify(path, Walk::Whole).unwrap()
    }

    fn verify_tail(path: &Path) -> Result<Verified, Damage> {
        SqliteJournal::open(path).unwrap().verify(path, Walk::SinceMark).unwrap()
    }

    #[test]
    fn a_start_walks_only_what_came_since_the_last_verification() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal(dir.path(), 20);
        assert_eq!(verify_tail(&path).map(|v| (v.from, v.events)), Ok((0, 20)), "no mark yet: the whole journal");
        SqliteJournal::open_writer(&path).unwrap().append(&[issued(20), issued(21)]).unwrap();
        assert_eq!(verify_tail(&path), Ok(Verified { from: 20, events: 2, last_seq: 22, unchained: 0, witnessed: Some(22) }));
        assert_eq!(verify_tail(&path).map(|v| (v.from, v.events)), Ok((22, 0)), "nothing new");

        // Damage after the mark is found by the next start.
        SqliteJournal::open_writer(&path).unwrap().append(&[issued(22), issued(23), issued(24)]).unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.execute("UPDATE events SET at_ms = at_ms + 1 WHERE seq = 24", []).unwrap();
        assert!(matches!(verify_tail(&path), Err(Damage::Event { seq: 24, .. })));
        conn.execute("UPDATE events SET at_ms = at_ms - 1 WHERE seq = 24", []).unwrap();
        assert_eq!(verify_tail(&path).map(|v| v.from), Ok(22));

        // Damage before the mark is for the whole walk (`journal verify`) to find …
        conn.execute("UPDATE events SET at_ms = at_ms + 1 WHERE seq = 3", []).unwrap();
        assert_eq!(verify_tail(&path).map(|v| v.from), Ok(25));
        assert!(matches!(verify(&path), Err(Damage::Event { seq: 3, .. })));
        conn.execute("UPDATE events SET at_ms = at_ms - 1 WHERE seq = 3", []).unwrap();
        // … and a marked event that is not as it was sends the start back to the whole walk.
        conn.execute("UPDATE events SET chain = zeroblob(32) WHERE seq = 25", []).unwrap();
        assert!(matches!(verify_tail(&path), Err(Damage::Event { seq: 25, .. })), "the whole walk names it");
    }

    #[test]
    fn a_whole_journal_verifies_against_its_witness() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal(dir.path(), 20);
        assert_eq!(verify(&path), Ok(Verified { from: 0, events: 20, last_seq: 20, unchained: 0, witnessed: Some(20) }));
        // Reopened, the chain goes on from its head.
        SqliteJournal::open_writer(&path).unwrap().append(&[issued(20), issued(21)]).unwrap();
        assert_eq!(verify(&path).map(|v| (v.last_seq, v.witnessed)), Ok((22, Some(22))));
    }

    #[test]
    fn a_changed_event_is_found_at_its_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal(dir.path(), 20);
        // One character of one event's body changes (bit rot in a database page).
        let conn = Connection::open(&path).unwrap();
        conn.execute("UPDATE events SET body = replace(body, '张三丰', '张三风') WHERE seq = 7", []).unwrap();
        assert!(matches!(verify(&path), Err(Damage::Event { seq: 7, .. })), "{:?}", verify(&path));
    }

    #[test]
    fn a_missing_event_is_found_where_the_chain_breaks() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal(dir.path(), 20);
        Connection::open(&path).unwrap().execute("DELETE FROM events WHERE seq = 12", []).unwrap();
        assert!(matches!(verify(&path), Err(Damage::Event { seq: 13, .. })));
    }

    #[test]
    fn a_journal_that_ends_before_its_last_commit_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal(dir.path(), 20);
        // The tail is gone (as when SQLite stops reading a damaged WAL frame), the witness stays.
        Connection::open(&path).unwrap().execute("DELETE FROM events WHERE seq > 14", []).unwrap();
        assert_eq!(verify(&path), Err(Damage::Truncated { last_seq: 14, witnessed: 20 }));
        // Without a witness (a journal from before them, or one restored on purpose) the chain
        // alone is checked.
        std::fs::remove_file(witness_path(&path)).unwrap();
        assert_eq!(verify(&path).map(|v| v.last_seq), Ok(14));
    }

    #[test]
    fn a_journal_from_before_chains_keeps_its_events_and_chains_the_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            v1(&conn).unwrap();
            for i in 0..3 {
                let e = issued(i);
                conn.execute(
                    "INSERT INTO events (queue, ticket, at_ms, kind, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![e.queue.as_str(), e.event.ticket().map(|t| t.as_str()), e.at, e.event.kind(), serde_json::to_string(&e.event).unwrap()],
                )
                .unwrap();
            }
        }
        SqliteJournal::open_writer(&path).unwrap().append(&[issued(3), issued(4)]).unwrap();
        assert_eq!(verify(&path), Ok(Verified { from: 0, events: 5, last_seq: 5, unchained: 3, witnessed: Some(5) }));
        assert_eq!(SqliteJournal::open(&path).unwrap().events_after(0, 10).unwrap().len(), 5);
    }

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
