//! Which BLE tag (a wristband) belongs to which visit, durable: `DIR/tags.sqlite` (WAL,
//! `synchronous=FULL`). A binding acknowledged over HTTP survives `kill -9`; it ends with the
//! visit. Positions themselves are never written down: they live in memory for the visit only.

use rusqlite::{params, Connection, OptionalExtension};
use super::schema::Schema;
use std::path::Path;
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq)]
pub struct TagBinding {
    pub tag: String,
    /// The visit: the patient id, for the local day `day`.
    pub visit: String,
    /// Local date (`YYYY-MM-DD`) the binding belongs to; bindings of other days are over.
    pub day: String,
    pub bound_ms: i64,
}

/// What a bind found.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    /// Newly bound, or already bound to this visit.
    Ok { new: bool },
    /// The tag is bound to another visit today.
    InUse { visit: String },
}

pub struct TagStore {
    conn: Mutex<Connection>,
}

/// `tags.sqlite`'s schema (see [`super::schema`]).
pub static SCHEMA: Schema = Schema { file: "tags.sqlite", steps: &[v1] };

/// As of 0.1.0.
fn v1(c: &Connection) -> rusqlite::Result<()> {
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS tags (
            tag TEXT PRIMARY KEY, visit TEXT NOT NULL, day TEXT NOT NULL, bound_ms INTEGER NOT NULL);
         CREATE INDEX IF NOT EXISTS tags_visit ON tags (visit)",
    )
}

impl TagStore {
    pub fn open(path: &Path) -> Result<TagStore, super::SchemaError> {
        let conn = super::open_durable(path, &SCHEMA)?;
        Ok(TagStore { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Binds `tag` to `visit` for `day`. A binding left over from an earlier day is replaced.
    pub fn bind(&self, tag: &str, visit: &str, day: &str, now_ms: i64) -> rusqlite::Result<Bound> {
        let mut c = self.conn();
        let tx = c.transaction()?;
        let held: Option<(String, String)> = tx.query_row("SELECT visit, day FROM tags WHERE tag = ?1", [tag], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
        let out = match held {
            Some((v, d)) if d == day && v == visit => Bound::Ok { new: false },
            Some((v, d)) if d == day => Bound::InUse { visit: v },
            _ => {
                tx.execute(
                    "INSERT INTO tags (tag, visit, day, bound_ms) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (tag) DO UPDATE SET visit = ?2, day = ?3, bound_ms = ?4",
                    params![tag, visit, day, now_ms],
                )?;
                Bound::Ok { new: true }
            }
        };
        tx.commit()?;
        Ok(out)
    }

    /// Unbinds `tag` from `visit`; `false` when it was not bound to it.
    pub fn unbind(&self, tag: &str, visit: &str) -> rusqlite::Result<bool> {
        Ok(self.conn().execute("DELETE FROM tags WHERE tag = ?1 AND visit = ?2", params![tag, visit])? > 0)
    }

    /// Ends a visit: every tag bound to it is free again. Returns the tags freed.
    pub fn end_visit(&self, visit: &str) -> rusqlite::Result<Vec<String>> {
        let mut c = self.conn();
        let tx = c.transaction()?;
        let tags = {
            let mut st = tx.prepare("SELECT tag FROM tags WHERE visit = ?1 ORDER BY tag")?;
            let rows = st.query_map([visit], |r| r.get::<_, String>(0))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()?
        };
        tx.execute("DELETE FROM tags WHERE visit = ?1", [visit])?;
        tx.commit()?;
        Ok(tags)
    }

    /// Today's bindings; those of other days are deleted (their visits are over).
    pub fn load(&self, day: &str) -> rusqlite::Result<Vec<TagBinding>> {
        let c = self.conn();
        c.execute("DELETE FROM tags WHERE day <> ?1", [day])?;
        let mut st = c.prepare("SELECT tag, visit, day, bound_ms FROM tags ORDER BY bound_ms, tag")?;
        let rows = st.query_map([], |r| Ok(TagBinding { tag: r.get(0)?, visit: r.get(1)?, day: r.get(2)?, bound_ms: r.get(3)? }))?;
        rows.collect()
    }

    /// The tags bound to a visit.
    pub fn tags_of(&self, visit: &str) -> rusqlite::Result<Vec<String>> {
        let c = self.conn();
        let mut st = c.prepare("SELECT tag FROM tags WHERE visit = ?1 ORDER BY tag")?;
        let rows = st.query_map([visit], |r| r.get::<_, String>(0))?;
        rows.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_serves_one_visit_a_day_and_is_free_after_the_visit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tags.sqlite");
        let s = TagStore::open(&path).unwrap();
        assert_eq!(s.bind("wb-1", "P1", "2026-11-26", 1).unwrap(), Bound::Ok { new: true });
        assert_eq!(s.bind("wb-1", "P1", "2026-11-26", 2).unwrap(), Bound::Ok { new: false });
        assert_eq!(s.bind("wb-1", "P2", "2026-11-26", 3).unwrap(), Bound::InUse { visit: "P1".into() });
        assert_eq!(s.bind("wb-2", "P1", "2026-11-26", 4).unwrap(), Bound::Ok { new: true });
        drop(s);
        // Reopened: the bindings are there (durable), and yesterday's are gone at load.
        let s = TagStore::open(&path).unwrap();
        assert_eq!(s.load("2026-11-26").unwrap().len(), 2);
        assert!(!s.unbind("wb-1", "P2").unwrap(), "only its own visit unbinds a tag");
        assert_eq!(s.end_visit("P1").unwrap(), vec!["wb-1".to_owned(), "wb-2".to_owned()]);
        assert_eq!(s.bind("wb-1", "P2", "2026-11-26", 5).unwrap(), Bound::Ok { new: true });
        assert_eq!(s.bind("wb-1", "P3", "2026-11-27", 6).unwrap(), Bound::Ok { new: true }, "yesterday's binding does not hold a tag");
        assert!(s.load("2026-11-28").unwrap().is_empty());
    }
}
