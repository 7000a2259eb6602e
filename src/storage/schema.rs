//! Schema versions of the data dir's stores, and the migrations between them.
//!
//! Every SQLite store carries its schema version in `PRAGMA user_version` (in the file's header,
//! written in the same transaction as the migration that reaches it). Opening a store:
//!
//! - at the version this build writes: nothing to do;
//! - at an older one (a data dir of an earlier release): the steps from there run in one
//!   `BEGIN IMMEDIATE` transaction, so a migration happens once, whole or not at all, and is
//!   logged; two processes opening the same older store at once migrate it once;
//! - at a newer one (written by a later release): refused with [`SchemaError::Newer`], which
//!   names the file, both versions and what to do. Nothing is changed.
//!
//! Version 0 is "before versions" (releases up to 0.1.0 did not stamp their stores, except the
//! journal's chain marker): its step carries such files over, and creates a new file's tables.

use rusqlite::{Connection, TransactionBehavior};
use std::path::Path;

/// One step: takes a store from version `n` to `n + 1` (inside the migration's transaction).
pub type Step = fn(&Connection) -> rusqlite::Result<()>;

/// A store's schema: its file name in the data dir and its migration steps. The version this
/// build writes is the number of steps.
pub struct Schema {
    pub file: &'static str,
    pub steps: &'static [Step],
}

impl Schema {
    pub const fn version(&self) -> i64 {
        self.steps.len() as i64
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("{0}")]
    Db(#[from] rusqlite::Error),
    #[error(
        "{file} has schema version {found}, but this clinicflow ({release}) knows versions up to {known}: \
         the data dir was written by a newer release. Run that release (or a newer one) on it, or restore \
         a backup taken with this one into an empty dir; nothing was changed"
    )]
    Newer { file: String, found: i64, known: i64, release: &'static str },
}

/// This build's release, as data dirs and backups name it.
pub const RELEASE: &str = env!("CARGO_PKG_VERSION");

/// Brings `conn` (the store `schema` describes) to this build's version; see the module doc.
pub fn prepare(conn: &mut Connection, schema: &Schema) -> Result<(), SchemaError> {
    let known = schema.version();
    let found = user_version(conn)?;
    if found == known {
        return Ok(());
    }
    refuse_newer(schema.file, found, known)?;
    let (fresh, from) = {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another process may have migrated it while this one waited for the lock.
        let from = user_version(&tx)?;
        refuse_newer(schema.file, from, known)?;
        let fresh = from == 0 && tx.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))? == 0;
        for step in &schema.steps[from.max(0) as usize..] {
            step(&tx)?;
        }
        tx.pragma_update(None, "user_version", known)?;
        tx.commit()?;
        (fresh, from)
    };
    if fresh {
        tracing::debug!(file = schema.file, version = known, "store created");
    } else if from < known {
        tracing::info!(file = schema.file, from, to = known, release = RELEASE, "store migrated to this release's schema");
    }
    Ok(())
}

fn refuse_newer(file: &str, found: i64, known: i64) -> Result<(), SchemaError> {
    if found > known {
        return Err(SchemaError::Newer { file: file.to_owned(), found, known, release: RELEASE });
    }
    Ok(())
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Every store of a data dir, by file name.
pub fn stores() -> [&'static Schema; 5] {
    [&super::sqlite::SCHEMA, &super::his::SCHEMA, &super::orders::SCHEMA, &super::tags::SCHEMA, &super::WEBHOOK_CURSORS]
}

/// Refuses a data dir any of whose stores is newer than this build knows, before anything in it
/// is opened for writing (read only; absent stores are fine).
pub fn check_dir(dir: &Path) -> Result<(), SchemaError> {
    for s in stores() {
        let path = dir.join(s.file);
        if !path.exists() {
            continue;
        }
        refuse_newer(s.file, version_of(&path)?, s.version())?;
    }
    Ok(())
}

/// The schema version of the store at `path` (read only).
pub fn version_of(path: &Path) -> rusqlite::Result<i64> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    user_version(&conn)
}

/// Whether `table` has `column` (for steps that carry over files of before a column).
pub fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.query_row("SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2", [table, column], |r| r.get::<_, i64>(0)).map(|n| n > 0)
}

/// Whether `table` exists.
pub fn has_table(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", [table], |r| r.get::<_, i64>(0)).map(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1(c: &Connection) -> rusqlite::Result<()> {
        c.execute_batch("CREATE TABLE IF NOT EXISTS t (a INTEGER)")
    }
    fn v2(c: &Connection) -> rusqlite::Result<()> {
        if !has_column(c, "t", "b")? {
            c.execute_batch("ALTER TABLE t ADD COLUMN b TEXT")?;
        }
        Ok(())
    }
    fn broken(c: &Connection) -> rusqlite::Result<()> {
        c.execute_batch("CREATE TABLE half (x); SELECT * FROM no_such_table")
    }
    static ONE: Schema = Schema { file: "t.sqlite", steps: &[v1] };
    static TWO: Schema = Schema { file: "t.sqlite", steps: &[v1, v2] };
    static BROKEN: Schema = Schema { file: "t.sqlite", steps: &[v1, v2, broken] };

    #[test]
    fn an_older_store_is_migrated_once_and_a_newer_one_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite");
        let mut c = Connection::open(&path).unwrap();
        prepare(&mut c, &ONE).unwrap();
        c.execute("INSERT INTO t (a) VALUES (7)", []).unwrap();
        assert_eq!(version_of(&path).unwrap(), 1);

        prepare(&mut c, &TWO).unwrap();
        assert_eq!(version_of(&path).unwrap(), 2);
        assert!(has_column(&c, "t", "b").unwrap());
        assert_eq!(c.query_row("SELECT a FROM t", [], |r| r.get::<_, i64>(0)).unwrap(), 7, "rows kept");
        prepare(&mut c, &TWO).unwrap();

        // An older build meets it: refused, with both versions named, and nothing changed.
        let e = prepare(&mut c, &ONE).unwrap_err();
        assert!(matches!(e, SchemaError::Newer { found: 2, known: 1, .. }), "{e}");
        assert!(e.to_string().contains("t.sqlite has schema version 2") && e.to_string().contains("up to 1"), "{e}");
        assert_eq!(version_of(&path).unwrap(), 2);
        assert!(matches!(check_dir_of(&path, &ONE), Err(SchemaError::Newer { .. })));
    }

    fn check_dir_of(path: &Path, s: &Schema) -> Result<(), SchemaError> {
        refuse_newer(s.file, version_of(path)?, s.version())
    }

    #[test]
    fn a_failed_migration_leaves_the_store_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite");
        let mut c = Connection::open(&path).unwrap();
        prepare(&mut c, &TWO).unwrap();
        assert!(prepare(&mut c, &BROKEN).is_err());
        assert_eq!(version_of(&path).unwrap(), 2);
        assert!(!has_table(&c, "half").unwrap(), "the failed step's work is rolled back");
    }
}
