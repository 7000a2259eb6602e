//! Backup and restore of a data dir, while the server runs.
//!
//! **Backup** (`clinicflow backup --data DIR --to FILE`): a read transaction is begun on every
//! store at once (the moment of the backup), then each store is copied page by page inside its
//! own transaction with SQLite's online backup API — WAL lets the server go on committing
//! meanwhile, and what it commits after that moment is not in the copy. The copies are brought
//! to this release's schema, checked (`quick_check`; the journal's whole hash chain, against the
//! witness of its newest event), and written with the secrets (staff token, patient and device
//! keys) and a manifest (release, schema versions, SHA-256 of every file, the journal's newest
//! event) into one gzip'd tar, mode 0600: it holds the secrets. It is written beside FILE and
//! renamed into place, so FILE is always a whole backup.
//!
//! **Restore** (`clinicflow restore --from FILE --data DIR`): only into an empty or new dir.
//! Every file is checked against the manifest, a backup of a newer release is refused, the
//! journal is walked whole, and only then are the files moved into DIR (0700, files 0600). A
//! server started on DIR has exactly the acknowledged state of the backup's moment.

use super::schema::{self, SchemaError};
use super::{SqliteJournal, Walk};
use anyhow::{bail, ensure, Context as _};
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{Read as _, Write};
use std::path::Path;

/// Files of a data dir that are secrets (not SQLite).
pub const SECRETS: [&str; 3] = ["staff-token", "patient-key", "device-key"];
const WITNESS: &str = "journal.sqlite-head";
const MANIFEST: &str = "manifest.json";
const FORMAT: &str = "clinicflow-backup";
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    /// The release that took it.
    pub release: String,
    /// When it was taken (the machine's clock, UTC).
    pub taken_at: String,
    pub files: Vec<FileEntry>,
    /// The journal's newest event in the backup, and how many events it holds.
    pub journal_last_seq: i64,
    pub journal_events: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
    /// A store's schema version (absent for secrets and the witness).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<i64>,
}

/// Takes a backup of `data` into `to`; see the module doc.
pub fn backup(data: &Path, to: &Path) -> anyhow::Result<Manifest> {
    ensure!(data.join("journal.sqlite").is_file(), "{} is not a clinicflow data dir (no journal.sqlite)", data.display());
    same_owner(data, "backup")?;
    schema::check_dir(data)?;
    let parent = to.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let stage = tempfile::Builder::new().prefix(".clinicflow-backup-").tempdir_in(parent).with_context(|| format!("making a staging dir in {}", parent.display()))?;
    restrict_dir(stage.path())?;

    // The moment of the backup: a read transaction on every store, begun together.
    let present: Vec<&schema::Schema> = schema::stores().into_iter().filter(|s| data.join(s.file).is_file()).collect();
    let mut sources = Vec::new();
    for s in &present {
        let c = Connection::open_with_flags(data.join(s.file), OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_context(|| format!("opening {}", s.file))?;
        c.busy_timeout(std::time::Duration::from_secs(10))?;
        c.execute_batch("BEGIN")?;
        c.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))?;
        sources.push((*s, c));
    }
    for (s, src) in &sources {
        let mut dst = Connection::open(stage.path().join(s.file))?;
        rusqlite::backup::Backup::new(src, &mut dst)?.step(-1).with_context(|| format!("copying {}", s.file))?;
    }
    drop(sources);
    for name in SECRETS {
        if data.join(name).is_file() {
            std::fs::copy(data.join(name), stage.path().join(name)).with_context(|| format!("copying {name}"))?;
        }
    }

    let (last_seq, events) = settle(stage.path(), &present, true)?;
    let mut files = Vec::new();
    for s in &present {
        files.push(entry(stage.path(), s.file, Some(s.version()))?);
    }
    files.push(entry(stage.path(), WITNESS, None)?);
    for name in SECRETS {
        if stage.path().join(name).is_file() {
            files.push(entry(stage.path(), name, None)?);
        }
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        release: schema::RELEASE.into(),
        taken_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        files,
        journal_last_seq: last_seq,
        journal_events: events,
    };

    let partial = tempfile::Builder::new().prefix(".clinicflow-backup-").suffix(".partial").tempfile_in(parent)?;
    {
        let gz = flate2::write::GzEncoder::new(partial.as_file(), flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let json = serde_json::to_vec_pretty(&manifest)?;
        append(&mut tar, MANIFEST, json.len() as u64, json.as_slice())?;
        for f in &manifest.files {
            // Streamed: a hospital's journal is gigabytes after a few years.
            let file = std::fs::File::open(stage.path().join(&f.name))?;
            append(&mut tar, &f.name, f.bytes, file)?;
        }
        tar.into_inner()?.finish()?;
    }
    partial.as_file().sync_all()?;
    partial.persist(to).with_context(|| format!("writing {}", to.display()))?;
    sync_dir(parent);
    Ok(manifest)
}

/// Restores the backup `from` into `data` (empty or absent); see the module doc.
pub fn restore(from: &Path, data: &Path) -> anyhow::Result<Manifest> {
    if data.exists() {
        ensure!(data.is_dir(), "{} is not a directory", data.display());
        let n = std::fs::read_dir(data)?.count();
        ensure!(n == 0, "restore goes into an empty data dir; {} has {n} entries (nothing was changed)", data.display());
        same_owner(data, "restore")?;
    }
    let parent = data.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let stage = tempfile::Builder::new().prefix(".clinicflow-restore-").tempdir_in(parent)?;
    restrict_dir(stage.path())?;

    let file = std::fs::File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut entries = tar.entries().with_context(|| format!("{} is not a clinicflow backup", from.display()))?;
    // The manifest comes first (backup writes it first): every file after it is checked
    // against it as it streams to disk.
    let manifest: Manifest = {
        let mut item = entries.next().transpose().with_context(|| format!("{} is damaged", from.display()))?.with_context(|| format!("{} is empty", from.display()))?;
        ensure!(item.path()?.as_os_str() == MANIFEST, "{} is not a clinicflow backup (no manifest first)", from.display());
        let mut json = Vec::new();
        item.by_ref().take(1 << 20).read_to_end(&mut json).with_context(|| format!("{} is damaged", from.display()))?;
        serde_json::from_slice(&json).with_context(|| format!("{}: its manifest is not readable", from.display()))?
    };
    ensure!(manifest.format == FORMAT, "{} is not a clinicflow backup", from.display());
    ensure!(
        manifest.format_version <= FORMAT_VERSION,
        "{} was written by clinicflow {} in backup format {}; this clinicflow ({}) reads up to format {FORMAT_VERSION}",
        from.display(),
        manifest.release,
        manifest.format_version,
        schema::RELEASE
    );
    for f in &manifest.files {
        let known = schema::stores().into_iter().find(|s| s.file == f.name);
        ensure!(known.is_some() || f.name == WITNESS || SECRETS.contains(&f.name.as_str()), "{}: unknown file {:?} in the backup", from.display(), f.name);
        if let (Some(s), Some(v)) = (known, f.schema_version) {
            if v > s.version() {
                return Err(SchemaError::Newer { file: f.name.clone(), found: v, known: s.version(), release: schema::RELEASE }.into());
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for item in entries {
        let mut item = item.with_context(|| format!("{} is damaged", from.display()))?;
        let name = item.path()?.to_string_lossy().into_owned();
        let Some(f) = manifest.files.iter().find(|f| f.name == name) else { bail!("{}: {name:?} is not in its manifest", from.display()) };
        ensure!(seen.insert(name.clone()), "{}: {name} twice", from.display());
        let (bytes, sha256) = write_private(&stage.path().join(&name), &mut item).with_context(|| format!("{} is damaged at {name}", from.display()))?;
        ensure!(bytes == f.bytes && sha256 == f.sha256, "{}: {name} does not match its checksum: the backup is damaged", from.display());
    }
    if let Some(f) = manifest.files.iter().find(|f| !seen.contains(&f.name)) {
        bail!("{}: {} is missing", from.display(), f.name);
    }
    let present: Vec<&schema::Schema> = schema::stores().into_iter().filter(|s| stage.path().join(s.file).is_file()).collect();
    let (last_seq, _) = settle(stage.path(), &present, false)?;
    ensure!(last_seq == manifest.journal_last_seq, "the restored journal ends at event {last_seq}, the manifest says {}", manifest.journal_last_seq);

    std::fs::create_dir_all(data)?;
    restrict_dir(data)?;
    for f in &manifest.files {
        std::fs::rename(stage.path().join(&f.name), data.join(&f.name))?;
    }
    sync_dir(data);
    Ok(manifest)
}

/// Brings the copies in `dir` to this release's schema, checks every store and walks the
/// journal whole (writing its witness first when `witness`), then folds each WAL into its file.
/// The journal's newest event and its event count.
fn settle(dir: &Path, stores: &[&schema::Schema], witness: bool) -> anyhow::Result<(i64, i64)> {
    let path = dir.join("journal.sqlite");
    let mut journal = SqliteJournal::open(&path).context("the copied journal")?;
    if witness {
        journal.write_witness(&path)?;
    }
    let verified = journal.verify(&path, Walk::Whole)?.map_err(|d| anyhow::anyhow!("the copied journal is damaged: {d}"))?;
    drop(journal);
    let _ = std::fs::remove_file(super::mark_path(&path));
    for s in stores {
        let mut c = Connection::open(dir.join(s.file))?;
        schema::prepare(&mut c, s)?;
        let check: String = c.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        ensure!(check == "ok", "{}: {check}", s.file);
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        c.pragma_update(None, "journal_mode", "DELETE")?;
        drop(c);
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(dir.join(format!("{}{suffix}", s.file)));
        }
    }
    Ok((verified.last_seq, verified.events))
}

fn entry(dir: &Path, name: &str, schema_version: Option<i64>) -> anyhow::Result<FileEntry> {
    let mut file = std::fs::File::open(dir.join(name)).with_context(|| format!("reading {name}"))?;
    let mut hashed: Hashed = Hashed::default();
    std::io::copy(&mut file, &mut hashed)?;
    Ok(FileEntry { name: name.into(), bytes: hashed.bytes, sha256: hex::encode(hashed.hash.finalize()), schema_version })
}

/// A sink (or a pass-through, `inner`) that counts and hashes what is written to it.
#[derive(Default)]
struct Hashed<W = std::io::Sink> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn append<W: Write>(tar: &mut tar::Builder<W>, name: &str, size: u64, data: impl std::io::Read) -> anyhow::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o600);
    h.set_mtime(0);
    h.set_cksum();
    tar.append_data(&mut h, name, data)?;
    Ok(())
}

/// Streams `from` into a new file at `path` (0600, synced): its size and SHA-256.
fn write_private(path: &Path, from: &mut impl std::io::Read) -> anyhow::Result<(u64, String)> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    let mut out = Hashed { inner: std::io::BufWriter::new(f), hash: Sha256::default(), bytes: 0 };
    std::io::copy(from, &mut out)?;
    let file = out.inner.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok((out.bytes, hex::encode(out.hash.finalize())))
}

fn restrict_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).with_context(|| format!("making {} private", dir.display()))
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// As root on a data dir someone else owns (the package's `clinicflow` user), files SQLite
/// creates would belong to root and lock the server out of its own data: refused.
fn same_owner(dir: &Path, what: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let owner = std::fs::metadata(dir)?.uid();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if me == 0 && owner != 0 {
        bail!("run {what} as the data dir's owner (uid {owner}), e.g. `sudo -u clinicflow clinicflow {what} ...`: as root it could leave files the server cannot open");
    }
    Ok(())
}
