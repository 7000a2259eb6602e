//! Group commit: one OS thread owns the store; appends queue up on a bounded channel and
//! everything that has queued while the previous commit ran goes into the next transaction.

use super::{JournalStore, NewEvent, StorageError};
use crate::telemetry::Metrics;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// Limits of the writer; every buffer is bounded.
#[derive(Debug, Clone, Copy)]
pub struct WriterLimits {
    /// Appends waiting for the writer. When full, `try_append` refuses (the command gets 503)
    /// rather than letting memory grow.
    pub queue_capacity: usize,
    /// Most events committed in one transaction.
    pub max_batch_events: usize,
}

impl Default for WriterLimits {
    fn default() -> Self {
        Self { queue_capacity: 16_384, max_batch_events: 4_096 }
    }
}

struct Append {
    events: Vec<NewEvent>,
    /// How many events this append brought (its share of the batch's sequence numbers).
    count: usize,
    done: oneshot::Sender<Result<Vec<i64>, ()>>,
}

/// Resolves when the events are durable (their sequence numbers), or `Err` if the commit failed.
pub type AppendReceipt = oneshot::Receiver<Result<Vec<i64>, ()>>;

/// A reserved place in the writer's queue: sending cannot fail for lack of room.
pub struct AppendSlot<'a> {
    permit: mpsc::Permit<'a, Append>,
}

impl AppendSlot<'_> {
    pub fn send(self, events: Vec<NewEvent>) -> AppendReceipt {
        let (done, receipt) = oneshot::channel();
        let count = events.len();
        self.permit.send(Append { events, count, done });
        receipt
    }
}

/// Handle to the writer thread. Cheap to clone.
#[derive(Clone)]
pub struct JournalWriter {
    tx: mpsc::Sender<Append>,
    failed: Arc<AtomicBool>,
    /// Says `true` once a commit failed (see [`JournalWriter::failure`]).
    failure: tokio::sync::watch::Receiver<bool>,
    capacity: usize,
}

impl JournalWriter {
    /// Start the writer thread. It stops when every handle is dropped.
    pub fn start(mut store: Box<dyn JournalStore>, limits: WriterLimits, metrics: Arc<Metrics>) -> (Self, std::thread::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Append>(limits.queue_capacity);
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        let (failure_tx, failure) = tokio::sync::watch::channel(false);
        let handle = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || {
                let mut batch: Vec<Append> = Vec::new();
                let mut events: Vec<NewEvent> = Vec::new();
                while let Some(first) = rx.blocking_recv() {
                    let mut n = first.count;
                    batch.push(first);
                    while n < limits.max_batch_events {
                        match rx.try_recv() {
                            Ok(a) => {
                                n += a.count;
                                batch.push(a);
                            }
                            Err(_) => break,
                        }
                    }
                    for a in &mut batch {
                        events.append(&mut a.events);
                    }
                    let started = Instant::now();
                    let result = if flag.load(Ordering::Acquire) { Err(StorageError::Failed) } else { store.append(&events) };
                    metrics.journal_commit_seconds.observe(started.elapsed().as_secs_f64());
                    metrics.journal_batch_events.observe(events.len() as f64);
                    match result {
                        Ok(seqs) => {
                            let mut at = 0;
                            for a in batch.drain(..) {
                                let k = a.count.min(seqs.len() - at);
                                let _ = a.done.send(Ok(seqs[at..at + k].to_vec()));
                                at += k;
                            }
                        }
                        Err(e) => {
                            metrics.journal_failures.inc();
                            // Fail-stop: commands already decided after this one were decided on
                            // it, so none may be acknowledged; the server stops (see `failure`)
                            // and its restart rebuilds from what the journal holds.
                            if !flag.swap(true, Ordering::AcqRel) {
                                tracing::error!(error = %e, "journal commit failed; refusing every further command and stopping the server");
                                let _ = failure_tx.send(true);
                            }
                            for a in batch.drain(..) {
                                let _ = a.done.send(Err(()));
                            }
                        }
                    }
                    events.clear();
                }
            })
            .expect("spawning the journal thread only fails when the OS is out of threads");
        (Self { tx, failed, failure, capacity: limits.queue_capacity }, handle)
    }

    /// Resolves when a commit has failed: the server must stop (and be restarted by its
    /// supervisor) rather than live on refusing every command while its process looks healthy.
    pub fn failure(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.failure.clone();
        async move {
            // A closed channel (the writer gone) is a failure too.
            let _ = rx.wait_for(|failed| *failed).await;
        }
    }

    /// Reserve a place in the next commit without waiting. Refuses at once when the writer has
    /// failed or is full, so the caller can refuse the command before changing any state.
    pub fn reserve(&self) -> Result<AppendSlot<'_>, StorageError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(StorageError::Failed);
        }
        let permit = self.tx.try_reserve().map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StorageError::Overloaded(self.capacity),
            mpsc::error::TrySendError::Closed(_) => StorageError::Failed,
        })?;
        Ok(AppendSlot { permit })
    }

    pub fn healthy(&self) -> bool {
        !self.failed.load(Ordering::Acquire)
    }
}
