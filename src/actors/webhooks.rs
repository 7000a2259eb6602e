//! Outbound webhooks: each configured hook tails the journal from its own saved cursor and POSTs
//! every matching ticket event, HMAC-signed, retried with backoff, with an idempotency id.
//! The journal is the outbox: delivery is at least once across crashes, and a slow or dead
//! endpoint delays only its own hook, never a queue.

use super::Floor;
use crate::domain::config::Hospital;
use crate::site::WebhookConfig;
use crate::domain::feed::TicketFeed;
use crate::domain::ids::TicketId;
use crate::storage::{JournalStore, SqliteJournal, StoredEvent};
use crate::telemetry::Metrics;
use anyhow::Context as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Events read from the journal per round.
const BATCH: usize = 256;
/// Tickets whose numbers a hook remembers before it starts afresh (re-read from the journal).
const MAX_FEEDS: usize = 50_000;
/// How long one POST may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Cursor of each hook: the last journal position it has finished with.
struct Cursors(Mutex<rusqlite::Connection>);

impl Cursors {
    fn open(path: &Path) -> anyhow::Result<Self> {
        let c = crate::storage::open_durable(path, &crate::storage::WEBHOOK_CURSORS)?;
        Ok(Self(Mutex::new(c)))
    }
    fn get(&self, hook: &str) -> rusqlite::Result<Option<i64>> {
        use rusqlite::OptionalExtension;
        let c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        c.query_row("SELECT seq FROM cursors WHERE hook = ?1", [hook], |r| r.get(0)).optional()
    }
    fn set(&self, hook: &str, seq: i64) -> rusqlite::Result<()> {
        let c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        c.execute("INSERT INTO cursors (hook, seq) VALUES (?1, ?2) ON CONFLICT(hook) DO UPDATE SET seq = excluded.seq", rusqlite::params![hook, seq])?;
        Ok(())
    }
}

/// Start one delivery task per configured hook. Must run inside an actix system.
pub fn start(hospital: Arc<Hospital>, hooks: &[WebhookConfig], floor: &Floor, journal_path: &Path, data_dir: &Path, metrics: Arc<Metrics>) -> anyhow::Result<()> {
    if hooks.is_empty() {
        return Ok(());
    }
    let cursors = Arc::new(Cursors::open(&data_dir.join("webhooks.sqlite")).context("opening webhooks.sqlite")?);
    // The committed stream wakes the hooks; each reads what is new from its own cursor in the
    // journal (one total order, and what a hook has not finished survives a restart).
    let (wake_tx, wake_rx) = watch::channel(0u64);
    let mut rx = floor.committed();
    actix_rt::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => wake_tx.send_modify(|n| *n += 1),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    for hook in hooks.iter().cloned() {
        let journal = SqliteJournal::open(journal_path).context("opening the journal for webhooks")?;
        let start = match cursors.get(&hook.id)? {
            Some(seq) => seq,
            // A new hook starts with what happens from now on, not with the whole history.
            None => {
                let mut j = SqliteJournal::open(journal_path)?;
                let seq = j.last_seq()?;
                cursors.set(&hook.id, seq)?;
                seq
            }
        };
        let worker = HookWorker {
            hook,
            journal: Arc::new(Mutex::new(journal)),
            cursors: cursors.clone(),
            hospital: hospital.clone(),
            metrics: metrics.clone(),
            feeds: HashMap::new(),
            cursor: start,
        };
        actix_rt::spawn(worker.run(wake_rx.clone()));
    }
    Ok(())
}

struct HookWorker {
    hook: WebhookConfig,
    journal: Arc<Mutex<SqliteJournal>>,
    cursors: Arc<Cursors>,
    hospital: Arc<Hospital>,
    metrics: Arc<Metrics>,
    feeds: HashMap<TicketId, TicketFeed>,
    cursor: i64,
}

impl HookWorker {
    async fn run(mut self, mut wake: watch::Receiver<u64>) {
        let client = awc::Client::builder().timeout(REQUEST_TIMEOUT).finish();
        loop {
            let (journal, after) = (self.journal.clone(), self.cursor);
            let batch = tokio::task::spawn_blocking(move || journal.lock().unwrap_or_else(|p| p.into_inner()).events_after(after, BATCH)).await;
            let batch = match batch {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => {
                    tracing::error!(hook = %self.hook.id, error = %e, "reading the journal");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(_) => return,
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = wake.changed() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
            for e in batch {
                if let Some(message) = self.message(&e).await {
                    self.deliver(&client, e.seq, message).await;
                }
                self.cursor = e.seq;
            }
            let (cursors, hook, seq) = (self.cursors.clone(), self.hook.id.clone(), self.cursor);
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || cursors.set(&hook, seq)).await {
                tracing::error!(hook = %self.hook.id, error = %e, "saving the webhook cursor");
            }
        }
    }

    /// The phone's message for this event, if the hook wants it.
    async fn message(&mut self, e: &StoredEvent) -> Option<serde_json::Value> {
        let ticket = e.event.ticket()?.clone();
        if self.feeds.len() >= MAX_FEEDS {
            self.feeds.clear();
        }
        if !self.feeds.contains_key(&ticket) {
            // Learn the ticket's number and name from its earlier events.
            let (journal, t) = (self.journal.clone(), ticket.clone());
            let history = tokio::task::spawn_blocking(move || journal.lock().unwrap_or_else(|p| p.into_inner()).ticket_events(&t, 0)).await.ok()?.ok()?;
            let mut feed = TicketFeed::new(ticket.clone());
            for h in history.iter().filter(|h| h.seq < e.seq) {
                feed.push(h.seq, &h.queue, h.at, &h.event, &self.hospital);
            }
            self.feeds.insert(ticket.clone(), feed);
        }
        let feed = self.feeds.get_mut(&ticket)?;
        let item = feed.push(e.seq, &e.queue, e.at, &e.event, &self.hospital)?;
        (self.hook.events.is_empty() || self.hook.events.iter().any(|k| k == item.kind)).then(|| item.message())
    }

    /// POST until a 2xx or `max_attempts`; the idempotency id is the same on every attempt.
    async fn deliver(&self, client: &awc::Client, seq: i64, mut message: serde_json::Value) {
        let id = format!("{}-{}", self.hook.id, seq);
        let kind = message["event"].as_str().unwrap_or_default().to_owned();
        if let Some(m) = message.as_object_mut() {
            m.remove("type");
            m.insert("id".into(), id.clone().into());
            m.insert("hook".into(), self.hook.id.clone().into());
        }
        let body = message.to_string();
        let mut backoff = Duration::from_millis(self.hook.retry_initial_ms.max(1));
        for attempt in 1..=self.hook.max_attempts {
            let ts = (crate::clock::now_ms() / 1000).to_string();
            let signature = sign(&self.hook.secret, &ts, &body);
            let sent = client
                .post(&self.hook.url)
                .insert_header(("Content-Type", "application/json"))
                .insert_header(("Idempotency-Key", id.as_str()))
                .insert_header(("X-Clinicflow-Event", kind.as_str()))
                .insert_header(("X-Clinicflow-Timestamp", ts.as_str()))
                .insert_header(("X-Clinicflow-Signature", format!("sha256={signature}")))
                .send_body(body.clone())
                .await;
            let outcome = match sent {
                Ok(r) if r.status().is_success() => {
                    self.metrics.webhooks.with_label_values(&[&self.hook.id, "delivered"]).inc();
                    return;
                }
                Ok(r) => format!("HTTP {}", r.status()),
                Err(e) => e.to_string(),
            };
            self.metrics.webhooks.with_label_values(&[&self.hook.id, "retried"]).inc();
            tracing::warn!(hook = %self.hook.id, %id, attempt, error = %outcome, "webhook delivery failed");
            if attempt < self.hook.max_attempts {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(self.hook.retry_max_ms.max(1)));
            }
        }
        self.metrics.webhooks.with_label_values(&[&self.hook.id, "given_up"]).inc();
        tracing::error!(hook = %self.hook.id, %id, "webhook event given up after {} attempts", self.hook.max_attempts);
    }
}

/// `hex(HMAC-SHA256(secret, "{timestamp}.{body}"))`: what `X-Clinicflow-Signature` carries.
pub fn sign(secret: &str, timestamp: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}
