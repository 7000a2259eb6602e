//! `ReportDesk`: the day's numbers (`GET /api/v1/reports/day`). Today's report is tallied as the
//! floor's committed stream goes by — the journal is read once, at start (and again only if the
//! desk falls behind the stream) — so asking for it costs no journal read however long the day.
//! Other days are read from the journal, off the async threads.

use super::{Committed, Floor};
use crate::clock::Clock;
use crate::domain::config::Hospital;
use crate::domain::event::UnixMs;
use crate::domain::report::{day_bounds, DayReport, DayTally};
use crate::storage::{JournalStore, SqliteJournal, StorageError};
use chrono::{NaiveDate, TimeZone};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// How long a request waits for the desk to take in the commits acknowledged before it; past
/// that the day is read from the journal instead.
const CATCH_UP: Duration = Duration::from_secs(2);

/// Cheap to clone.
#[derive(Clone)]
pub struct ReportDesk {
    inner: Arc<Inner>,
}

struct Inner {
    hospital: Arc<Hospital>,
    journal: PathBuf,
    floor: Floor,
    clock: Clock,
    /// The day being tallied live (`None` until the first read is done).
    today: Mutex<Option<DayTally>>,
    /// Commits taken in (counted like [`Floor::published`]).
    taken: watch::Sender<u64>,
}

impl ReportDesk {
    /// Start following the floor. Must run inside a tokio runtime.
    pub fn start(floor: &Floor, journal: PathBuf, clock: Clock) -> Self {
        let inner = Arc::new(Inner {
            hospital: floor.hospital.clone(),
            journal,
            floor: floor.clone(),
            clock,
            today: Mutex::new(None),
            taken: watch::channel(0).0,
        });
        // Subscribed before the first read: every commit is in the read, on the stream, or both
        // (told apart by journal position).
        let (rx, before) = floor.committed_counted();
        actix_rt::spawn(follow(inner.clone(), rx, before));
        Self { inner }
    }

    /// The report of `day` (the hospital's local date).
    pub async fn day(&self, day: NaiveDate) -> Result<DayReport, StorageError> {
        if let Some(r) = self.live(day).await {
            return Ok(r);
        }
        let (hospital, journal) = (self.inner.hospital.clone(), self.inner.journal.clone());
        tokio::task::spawn_blocking(move || read_day(&hospital, &journal, day).map(|(t, _)| t.report()))
            .await
            .map_err(|e| StorageError::Corrupt { seq: 0, reason: format!("the report read stopped: {e}") })?
    }

    /// Today's report from the tally, once it holds every commit acknowledged before now.
    async fn live(&self, day: NaiveDate) -> Option<DayReport> {
        let wanted = self.inner.floor.published();
        if !self.inner.today.lock().unwrap_or_else(|p| p.into_inner()).as_ref().is_some_and(|t| t.day() == day) {
            return None;
        }
        let mut taken = self.inner.taken.subscribe();
        tokio::time::timeout(CATCH_UP, taken.wait_for(|n| *n >= wanted)).await.ok()?.ok()?;
        let today = self.inner.today.lock().unwrap_or_else(|p| p.into_inner());
        today.as_ref().filter(|t| t.day() == day).map(DayTally::report)
    }
}

/// Read one day's events from the journal into a tally; with the last journal position read.
fn read_day(hospital: &Hospital, journal: &std::path::Path, day: NaiveDate) -> Result<(DayTally, i64), StorageError> {
    let (from, to) = day_bounds(hospital.tz, day);
    let mut reader = SqliteJournal::open(journal)?;
    let last = reader.last_seq()?;
    let mut tally = DayTally::new(day);
    for e in reader.events_between(from, to)?.into_iter().filter(|e| e.seq <= last) {
        tally.add(hospital, &e.queue, e.at, &e.event);
    }
    Ok((tally, last))
}

fn day_of(hospital: &Hospital, at: UnixMs) -> NaiveDate {
    hospital.tz.timestamp_millis_opt(at).single().map(|t| t.date_naive()).unwrap_or_default()
}

async fn follow(inner: Arc<Inner>, mut rx: broadcast::Receiver<Arc<Committed>>, mut taken: u64) {
    // Everything up to `read` is in the tally; commits on the stream after it are added. `None`:
    // the journal could not be read, there is no tally and requests read the journal.
    let mut read = load(&inner).await;
    inner.taken.send_replace(taken);
    loop {
        match rx.recv().await {
            Ok(c) => {
                if let Some(read) = read {
                    let mut today = inner.today.lock().unwrap_or_else(|p| p.into_inner());
                    let day = day_of(&inner.hospital, c.at);
                    // A new day: its tally starts empty (its first commit is this one or later;
                    // a late commit of the day before is left to the journal).
                    if today.as_ref().map_or(true, |t| t.day() < day) {
                        *today = Some(DayTally::new(day));
                    }
                    if let Some(t) = today.as_mut().filter(|t| t.day() == day) {
                        for (seq, e) in c.seqs.iter().zip(&c.events) {
                            if *seq > read {
                                t.add(&inner.hospital, &c.queue, c.at, e);
                            }
                        }
                    }
                }
                taken += 1;
                inner.taken.send_replace(taken);
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "the report desk fell behind the commits; reading today again from the journal");
                read = load(&inner).await;
                taken += n;
                inner.taken.send_replace(taken);
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
}

/// Tally today from the journal; the last journal position read (`None` when the read failed:
/// the desk then answers from the journal on each request).
async fn load(inner: &Arc<Inner>) -> Option<i64> {
    let today = day_of(&inner.hospital, inner.clock.now_ms());
    let (hospital, journal) = (inner.hospital.clone(), inner.journal.clone());
    match tokio::task::spawn_blocking(move || read_day(&hospital, &journal, today)).await {
        Ok(Ok((tally, last))) => {
            *inner.today.lock().unwrap_or_else(|p| p.into_inner()) = Some(tally);
            Some(last)
        }
        other => {
            if let Ok(Err(e)) = other {
                tracing::error!(error = %e, "reading today's events for the report; reports are read from the journal");
            }
            *inner.today.lock().unwrap_or_else(|p| p.into_inner()) = None;
            None
        }
    }
}
