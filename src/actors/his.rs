//! `HisDesk`: applies HIS facts from every adapter to the queues, idempotently, and keeps each
//! adapter's health (last success, last error, counts) for `/api/v1/his` and `/metrics`.
//!
//! A registration is the ticket [`crate::his::ticket_id`] derives from its HIS id: seen again
//! (anywhere on the floor, even after a transfer) it changes nothing. A withdrawal (退号) is
//! written down before it is applied ([`HisStore`], `DIR/his.sqlite`), so a registration that arrives after its
//! own withdrawal — messages cross, a poll reads an old row — is never issued, even across a
//! restart.

use super::{CommandError, Floor, FloorError};
use crate::domain::command::Command;
use crate::domain::error::QueueError;
use crate::his::{plan, ticket_id, Fact, FactError, Planned};
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
}

struct HisMetrics {
    messages: IntCounterVec,
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
}

impl HisDesk {
    pub fn new(floor: Floor, store: Arc<HisStore>, orders: Arc<crate::storage::orders::OrderStore>, metrics: &Metrics) -> HisDesk {
        let messages = IntCounterVec::new(
            Opts::new("clinicflow_his_messages_total", "HIS messages and facts by adapter and result (applied, repeat, error, rejected)"),
            &["adapter", "result"],
        )
        .expect("valid metric");
        let last_success = IntGaugeVec::new(Opts::new("clinicflow_his_last_success_timestamp_seconds", "When each HIS adapter last succeeded (Unix seconds)"), &["adapter"]).expect("valid metric");
        metrics.register(Box::new(messages.clone()));
        metrics.register(Box::new(last_success.clone()));
        HisDesk { floor, orders, store, status: Arc::new(RwLock::new(BTreeMap::new())), metrics: Arc::new(HisMetrics { messages, last_success }) }
    }

    /// Applies one fact. Safe to repeat.
    pub async fn apply(&self, fact: &Fact) -> Result<Applied, ApplyError> {
        let planned = plan(fact, &self.floor.hospital).map_err(ApplyError::Fact)?;
        let store = |f: Box<dyn FnOnce(&HisStore) -> rusqlite::Result<bool> + Send>| {
            let s = self.store.clone();
            async move {
                match tokio::task::spawn_blocking(move || f(&s)).await {
                    Ok(Ok(v)) => Ok(v),
                    Ok(Err(e)) => Err(ApplyError::Unavailable(e.to_string())),
                    Err(e) => Err(ApplyError::Unavailable(e.to_string())),
                }
            }
        };
        let unavailable = |e: FloorError| match e {
            FloorError::Command(CommandError::Unavailable(m)) => ApplyError::Unavailable(m),
            other => ApplyError::Unavailable(other.to_string()),
        };
        match (fact, planned) {
            (Fact::Registered(r), Planned::Issue { queue, cmd }) => {
                let his = r.his.clone();
                if store(Box::new(move |s| s.is_withdrawn(&his))).await? {
                    return Ok(Applied::Repeat); // withdrawn before it arrived: never a ticket
                }
                if self.floor.ticket(&ticket_id(&r.his)).await.is_ok() {
                    return Ok(Applied::Repeat);
                }
                match self.floor.execute(&queue, cmd, None).await {
                    Ok(_) => Ok(Applied::Changed),
                    Err(FloorError::Command(CommandError::Rejected(QueueError::DuplicateTicket(_)))) => Ok(Applied::Repeat),
                    Err(FloorError::Command(CommandError::Rejected(e))) => Err(ApplyError::Fact(FactError::new("registration", e.code(), e.to_string()))),
                    Err(e) => Err(unavailable(e)),
                }
            }
            (Fact::Cancelled { his }, Planned::OnTicket { ticket, cmd }) => {
                let (h, now) = (his.clone(), super::now_ms());
                store(Box::new(move |s| s.withdraw(&h, now))).await?;
                match self.floor.on_ticket(&ticket, cmd, None).await {
                    Ok(_) => Ok(Applied::Changed),
                    // Not here yet (remembered above), or no longer waiting: nothing to do.
                    Err(FloorError::UnknownTicket(_)) | Err(FloorError::Command(CommandError::Rejected(QueueError::UnknownTicket(_)))) => Ok(Applied::Changed),
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
                let (store, p) = (self.orders.clone(), patient.as_str().to_owned());
                let result = tokio::task::spawn_blocking(move || -> rusqlite::Result<bool> {
                    if !known && !store.has_patient(&p)? {
                        return Ok(false);
                    }
                    store.put(&p, &orders, super::now_ms())?;
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
            _ => Err(ApplyError::Fact(FactError::new("message", "unsupported", "this fact cannot be applied"))),
        }
    }

    /// Notes how a message or poll of `adapter` went (`result`: applied, repeat, error, rejected).
    pub fn note(&self, adapter: &str, result: &str, error: Option<String>) {
        self.metrics.messages.with_label_values(&[adapter, result]).inc();
        let now = super::now_ms();
        let mut all = self.status.write().unwrap_or_else(|p| p.into_inner());
        let s = all.entry(adapter.to_owned()).or_insert_with(|| AdapterStatus { adapter: adapter.to_owned(), ..Default::default() });
        s.messages += 1;
        match error {
            None => {
                s.last_success = Some(now);
                self.metrics.last_success.with_label_values(&[adapter]).set(now / 1000);
            }
            Some(e) => {
                s.errors += 1;
                s.last_error = Some(e);
                s.last_error_at = Some(now);
            }
        }
    }

    /// Makes an adapter known (listed before its first message).
    pub fn register(&self, adapter: &str) {
        let mut all = self.status.write().unwrap_or_else(|p| p.into_inner());
        all.entry(adapter.to_owned()).or_insert_with(|| AdapterStatus { adapter: adapter.to_owned(), ..Default::default() });
    }

    pub fn status(&self) -> Vec<AdapterStatus> {
        self.status.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    pub fn hospital(&self) -> &crate::domain::config::Hospital {
        &self.floor.hospital
    }
}
