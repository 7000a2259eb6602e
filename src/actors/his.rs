//! `HisDesk`: applies HIS facts from every adapter to the queues, idempotently, and keeps each
//! adapter's health (last success, last error, counts) for `/api/v1/his` and `/metrics`.
//!
//! A registration is the ticket [`crate::his::ticket_id`] derives from its HIS id: seen again
//! (anywhere on the floor, even after a transfer) it changes nothing. A withdrawal (退号) is
//! written down before it is applied ([`HisStore`], `DIR/his.sqlite`), so a registration that arrives after its
//! own withdrawal — messages cross, a poll reads an old row — is never issued, even across a
//! restart.

use super::{CommandError, Floor, FloorError};
use crate::clock::Clock;
use crate::domain::command::Command;
use crate::domain::error::QueueError;
use crate::his::{lifecycle, plan, ticket_of, Fact, FactError, Lifecycle, Planned};
use crate::storage::his::HisStore;
use crate::telemetry::Metrics;
use prometheus::{IntCounterVec, IntGaugeVec, Opts};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// What applying a fact did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// It changed the queues.
    Changed,
    /// It was applied before (or is moot: a withdrawal of a visit already over): nothing changed.
    Repeat,
}

/// Why a fact was not applied.
#[derive(Debug)]
pub enum ApplyError {
    /// The fact is wrong for this hospital (unknown department, …): the sender must fix it.
    Fact(FactError),
    /// The server could not apply it now (journal unavailable): the sender should resend.
    Unavailable(String),
}

/// One adapter's health, as the API shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AdapterStatus {
    pub adapter: String,
    /// The last message or poll that went through (Unix ms).
    pub last_success: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    pub messages: u64,
    pub errors: u64,
    /// Seconds since the last success (the HIS may be down, or quiet).
    pub lag_secs: Option<f64>,
    /// Database pollers: passes run, the cursor reached, the last reconciliation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub polls: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_reconcile: Option<i64>,
}

impl AdapterStatus {
    fn failed(&mut self, error: &str, at: i64) {
        self.errors += 1;
        self.last_error = Some(error.to_owned());
        self.last_error_at = Some(at);
    }
}

struct HisMetrics {
    messages: IntCounterVec,
    polls: IntCounterVec,
    last_success: IntGaugeVec,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct HisDesk {
    floor: Floor,
    orders: Arc<crate::storage::orders::OrderStore>,
    store: Arc<HisStore>,
    status: Arc<RwLock<BTreeMap<String, AdapterStatus>>>,
    metrics: Arc<HisMetrics>,
    /// Where the desk reads the time (re-registrations, withdrawals, adapter status).
    clock: Clock,
}

impl HisDesk {
    pub fn new(floor: Floor, store: Arc<HisStore>, orders: Arc<crate::storage::orders::OrderStore>, metrics: &Metrics, clock: Clock) -> HisDesk {
        let messages = IntCounterVec::new(
            Opts::new("clinicflow_his_messages_total", "HIS messages and facts by adapter and result (applied, repeat, error, rejected)"),
            &["adapter", "result"],
        )
        .expect("valid metric");
        let last_success = IntGaugeVec::new(Opts::new("clinicflow_his_last_success_timestamp_seconds", "When each HIS adapter last succeeded (Unix seconds)"), &["adapter"]).expect("valid metric");
        let polls = IntCounterVec::new(Opts::new("clinicflow_his_polls_total", "HIS database poll passes by adapter and result (ok, error)"), &["adapter", "result"]).expect("valid metric");
        metrics.register(Box::new(messages.clone()));
        metrics.register(Box::new(polls.clone()));
        metrics.register(Box::new(last_success.clone()));
        HisDesk { floor, orders, store, status: Arc::new(RwLock::new(BTreeMap::new())), metrics: Arc::new(HisMetrics { messages, polls, last_success }), clock }
    }

    /// Runs `f` on the HIS store off the async threads.
    pub async fn db<T: Send + 'static>(&self, f: impl FnOnce(&HisStore) -> rusqlite::Result<T> + Send + 'static) -> Result<T, ApplyError> {
        let s = self.store.clone();
        match tokio::task::spawn_blocking(move || f(&s)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(ApplyError::Unavailable(e.to_string())),
            Err(e) => Err(ApplyError::Unavailable(e.to_string())),
        }
    }

    /// Applies one fact. Safe to repeat.
    ///
    /// A registration withdrawn (退号) before it arrives is never issued; one the source brings
    /// back later (its revision newer than the withdrawal's) is a re-registration: a new ticket
    /// ([`crate::his::ticket_of`] of the next generation), at the back by its new time.
    pub async fn apply(&self, fact: &Fact) -> Result<Applied, ApplyError> {
        if let Fact::Registered(r) = fact {
            let tz = self.floor.hospital.tz;
            r.of_today(self.clock.local(&tz).date_naive(), tz).map_err(ApplyError::Fact)?;
        }
        let state = match fact.registration() {
            Some(h) => {
                let h = h.clone();
                self.db(move |s| s.state(&h)).await?
            }
            None => None,
        };
        let (generation, reregister) = match lifecycle(fact, state) {
            Lifecycle::Stale => return Ok(Applied::Repeat),
            Lifecycle::Apply { generation } => (generation, None),
            Lifecycle::Reregister { generation, revision } => (generation, Some(revision)),
        };
        let planned = plan(fact, &self.floor.hospital, generation).map_err(ApplyError::Fact)?;
        let unavailable = |e: FloorError| match e {
            FloorError::Command(CommandError::Unavailable(m)) => ApplyError::Unavailable(m),
            other => ApplyError::Unavailable(other.to_string()),
        };
        match (fact, planned) {
            (Fact::Registered(r), Planned::Issue { queue, cmd }) => {
                if let Some(rev) = reregister {
                    // Written first: a crash before the ticket is issued leaves a re-registration
                    // whose ticket the next delivery of the same fact issues.
                    let (h, now) = (r.his.clone(), self.clock.now_ms());
                    self.db(move |s| s.reregister(&h, generation, rev, now)).await?;
                } else if let Some(rev) = r.revision.filter(|&rev| state.is_none_or(|s| s.revision.is_none_or(|old| rev > old))) {
                    // Its newest revision, so a withdrawal older than it (late, or resent) is
                    // stale. Once per revision: a resend or a reconciliation writes nothing.
                    let (h, now) = (r.his.clone(), self.clock.now_ms());
                    self.db(move |s| s.registered(&h, generation, rev, now)).await?;
                }
                // Issued before (today, in any queue): the directory knows it, no queue asked.
                if self.floor.owner(&ticket_of(&r.his, generation)).is_ok() {
                    return Ok(Applied::Repeat);
                }
                match self.floor.execute(&queue, cmd, None).await {
                    Ok(_) => Ok(Applied::Changed),
                    Err(FloorError::Command(CommandError::Rejected(QueueError::DuplicateTicket(_)))) => Ok(Applied::Repeat),
                    Err(FloorError::Command(CommandError::Rejected(e))) => Err(ApplyError::Fact(FactError::new("registration", e.code(), e.to_string()))),
                    Err(e) => Err(unavailable(e)),
                }
            }
            (Fact::Cancelled { his, revision }, Planned::OnTicket { ticket, cmd }) => {
                // Written once per withdrawal (a reconciliation re-reads every cancelled row); the
                // cancel itself is always tried: a crash may have come between the two.
                let known = state.is_some_and(|s| s.withdrawn && s.generation == generation && (revision.is_none() || s.revision >= *revision));
                if !known {
                    let (h, rev, now) = (his.clone(), *revision, self.clock.now_ms());
                    self.db(move |s| s.withdraw(&h, generation, rev, now)).await?;
                }
                match self.floor.on_ticket(&ticket, cmd, None).await {
                    Ok(_) => Ok(Applied::Changed),
                    // Not here yet (remembered above), or no longer waiting: nothing to do.
                    Err(FloorError::UnknownTicket(_)) | Err(FloorError::Command(CommandError::Rejected(QueueError::UnknownTicket(_)))) => Ok(if known { Applied::Repeat } else { Applied::Changed }),
                    Err(FloorError::Command(CommandError::Rejected(_))) => Ok(Applied::Repeat),
                    Err(e) => Err(unavailable(e)),
                }
            }
            (Fact::CheckedIn { .. }, Planned::OnTicket { ticket, cmd: cmd @ Command::CheckIn { .. } }) => match self.floor.on_ticket(&ticket, cmd, None).await {
                Ok(_) => Ok(Applied::Changed),
                Err(FloorError::UnknownTicket(_)) | Err(FloorError::Command(CommandError::Rejected(QueueError::UnknownTicket(_)))) => {
                    Err(ApplyError::Fact(FactError::new("registration", "unknown_registration", "no ticket for this registration: its registration never arrived")))
                }
                Err(FloorError::Command(CommandError::Rejected(_))) => Ok(Applied::Repeat),
                Err(e) => Err(unavailable(e)),
            },
            (Fact::Ordered { .. }, Planned::Orders { patient, orders }) => {
                // Orders are for a patient clinicflow knows today: a ticket, or orders already.
                let known = !self.floor.patient_tickets(&patient).await.map_err(unavailable)?.is_empty();
                let (store, p, now) = (self.orders.clone(), patient.as_str().to_owned(), self.clock.now_ms());
                let result = tokio::task::spawn_blocking(move || -> rusqlite::Result<bool> {
                    if !known && !store.has_patient(&p)? {
                        return Ok(false);
                    }
                    store.put(&p, &orders, now)?;
                    Ok(true)
                })
                .await;
                match result {
                    Ok(Ok(true)) => Ok(Applied::Changed),
                    Ok(Ok(false)) => Err(ApplyError::Fact(FactError::new("patient", "unknown_patient", format!("no ticket or order for patient {patient} today")))),
                    Ok(Err(e)) => Err(ApplyError::Unavailable(e.to_string())),
                    Err(e) => Err(ApplyError::Unavailable(e.to_string())),
                }
            }
            (Fact::ResultsIn { .. }, Planned::Results { patient, orders }) => {
                let (store, p, now) = (self.orders.clone(), patient.as_str().to_owned(), self.clock.now_ms());
                let result = tokio::task::spawn_blocking(move || -> rusqlite::Result<bool> {
                    let held: Vec<_> = store.list(&p)?.into_iter().filter(|o| orders.contains(&o.id)).collect();
                    let fresh = held.iter().any(|o| o.results_ms.is_none());
                    for o in held.iter().filter(|o| o.results_ms.is_none()) {
                        store.set_results(&p, &o.id, now)?;
                    }
                    Ok(fresh)
                })
                .await;
                // Orders clinicflow does not hold (another clinic's patient) change nothing.
                match result {
                    Ok(Ok(true)) => Ok(Applied::Changed),
                    Ok(Ok(false)) => Ok(Applied::Repeat),
                    Ok(Err(e)) => Err(ApplyError::Unavailable(e.to_string())),
                    Err(e) => Err(ApplyError::Unavailable(e.to_string())),
                }
            }
            _ => Err(ApplyError::Fact(FactError::new("message", "unsupported", "this fact cannot be applied"))),
        }
    }

    /// Notes how a message (or a polled row) of `adapter` went (`result`: applied, repeat,
    /// error, rejected).
    pub fn note(&self, adapter: &str, result: &str, error: Option<String>) {
        self.metrics.messages.with_label_values(&[adapter, result]).inc();
        let now = self.clock.now_ms();
        self.with_status(adapter, |s| {
            s.messages += 1;
            if let Some(e) = &error {
                s.failed(e, now);
            }
        });
        if error.is_none() {
            self.succeeded(adapter);
        }
    }

    /// Notes a database poll pass: its cursor after, whether it reconciled, or why it failed.
    pub fn polled(&self, adapter: &str, outcome: Result<(Option<String>, bool), String>) {
        let ok = outcome.is_ok();
        self.metrics.polls.with_label_values(&[adapter, if ok { "ok" } else { "error" }]).inc();
        let now = self.clock.now_ms();
        self.with_status(adapter, |s| {
            *s.polls.get_or_insert(0) += 1;
            match &outcome {
                Ok((cursor, reconciled)) => {
                    s.cursor = cursor.clone();
                    if *reconciled {
                        s.last_reconcile = Some(now);
                    }
                }
                Err(e) => s.failed(e, now),
            }
        });
        if ok {
            self.succeeded(adapter);
        }
    }

    fn succeeded(&self, adapter: &str) {
        let now = self.clock.now_ms();
        self.with_status(adapter, |s| s.last_success = Some(now));
        self.metrics.last_success.with_label_values(&[adapter]).set(now / 1000);
    }

    fn with_status(&self, adapter: &str, f: impl FnOnce(&mut AdapterStatus)) {
        let mut all = self.status.write().unwrap_or_else(|p| p.into_inner());
        f(all.entry(adapter.to_owned()).or_insert_with(|| AdapterStatus { adapter: adapter.to_owned(), ..Default::default() }));
    }

    /// The ticket of a registration's current life, when there is one.
    pub async fn registration_ticket(&self, his: &crate::domain::event::HisRef) -> Option<crate::domain::view::TicketView> {
        let h = his.clone();
        let generation = self.db(move |s| s.state(&h)).await.ok().flatten().map_or(0, |s| s.generation);
        self.floor.ticket(&ticket_of(his, generation)).await.ok()
    }

    /// The open tickets (and their status) of an adapter's registrations, in every queue.
    pub async fn tickets_of(&self, adapter: &str) -> Result<Vec<(crate::domain::event::HisRef, crate::domain::queue::Status)>, ApplyError> {
        self.floor.his_tickets(adapter).await.map_err(|e| ApplyError::Unavailable(e.to_string()))
    }

    /// Makes an adapter known (listed before its first message).
    pub fn register(&self, adapter: &str) {
        self.with_status(adapter, |_| {});
    }

    pub fn status(&self) -> Vec<AdapterStatus> {
        let now = self.clock.now_ms();
        let mut all: Vec<AdapterStatus> = self.status.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        for s in &mut all {
            s.lag_secs = s.last_success.map(|t| (now - t).max(0) as f64 / 1000.0);
        }
        all
    }

    pub fn hospital(&self) -> &crate::domain::config::Hospital {
        &self.floor.hospital
    }
}
