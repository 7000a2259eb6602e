//! `ClinicQueue`: the one writer of one queue's state.
//!
//! A command is decided against the state, its events are handed to the journal writer, applied
//! to memory, and acknowledged only when the journal reports them durable. Commands to one queue
//! are decided strictly one after another (the actor's mailbox), so two rooms pressing call-next
//! at the same moment get different patients; their commits may share one transaction.

use super::Directory;
use crate::clock::now_ms;
use crate::domain::command::{Command, Idempotency};
use crate::domain::config::QueuePolicy;
use crate::domain::error::QueueError;
use crate::domain::event::{Event, TicketData, UnixMs};
use crate::domain::ids::{QueueId, TicketId};
use crate::domain::queue::QueueState;
use crate::domain::queue::Standing;
use crate::domain::view::{PositionNote, QueueSnapshot, TicketView};
use crate::storage::{JournalWriter, NewEvent, StorageError};
use crate::telemetry::Metrics;
use actix::prelude::*;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::broadcast;

/// Mailbox size of a queue actor. When full, senders wait (HTTP requests queue up in actix).
const MAILBOX: usize = 4_096;
/// Committed events kept for slow subscribers (display hub, patient sessions). A subscriber that
/// falls further behind gets `Lagged` and must resync from a snapshot.
const PUBLISH_BUFFER: usize = 1_024;

/// Events of one command after they are durable, for subscribers.
#[derive(Debug, Clone)]
pub struct Committed {
    pub queue: QueueId,
    pub at: UnixMs,
    pub seqs: Vec<i64>,
    pub events: Vec<Event>,
}

/// What a command returns to its caller.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The ticket the command acted on, after it (`None`: call-next found nobody).
    pub ticket: Option<TicketView>,
    /// Full ticket data after a `TransferOut`, for the destination queue.
    pub transferred: Option<TicketData>,
    /// An idempotent retry: nothing new happened.
    pub replayed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Rejected(#[from] QueueError),
    #[error("journal unavailable: {0}")]
    Unavailable(String),
}

pub struct ClinicQueue {
    state: QueueState,
    journal: JournalWriter,
    directory: Directory,
    metrics: Arc<Metrics>,
    published: broadcast::Sender<Arc<Committed>>,
}

impl Actor for ClinicQueue {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX);
        // The no-show rule: a called ticket whose grace ran out is marked missed by the server.
        // `overdue` is cheap (rooms' current tickets only); the command is checked again.
        ctx.run_interval(NO_SHOW_TICK, |actor, ctx| {
            let now = now_ms();
            for ticket in actor.state.overdue(now) {
                tracing::info!(queue = %actor.state.id(), %ticket, "no answer within the grace period: marking missed");
                ctx.address().do_send(Execute { cmd: Command::AutoMiss { ticket }, idem: None });
            }
        });
    }
}

/// How often a queue looks for called tickets whose no-show grace has run out.
const NO_SHOW_TICK: std::time::Duration = std::time::Duration::from_millis(500);

/// The calling policy in force, and whether it was changed at run time (not the config's).
#[derive(Message)]
#[rtype(result = "(QueuePolicy, bool)")]
struct GetPolicy;

impl Handler<GetPolicy> for ClinicQueue {
    type Result = MessageResult<GetPolicy>;
    fn handle(&mut self, _: GetPolicy, _: &mut Self::Context) -> Self::Result {
        let p = self.state.policy().clone();
        let changed = crate::domain::queue::policy_fingerprint(&p) != self.state.config_policy_fingerprint();
        MessageResult((p, changed))
    }
}

#[derive(Message)]
#[rtype(result = "Result<Outcome, CommandError>")]
struct Execute {
    cmd: Command,
    idem: Option<Idempotency>,
}

#[derive(Message)]
#[rtype(result = "QueueSnapshot")]
struct Snapshot;

#[derive(Message)]
#[rtype(result = "Option<TicketView>")]
struct GetTicket(TicketId);

/// One patient's tickets in this queue (not the tombstones of transfers out).
#[derive(Message)]
#[rtype(result = "Vec<TicketView>")]
struct PatientTickets(crate::domain::ids::PatientId);

/// Tickets that came from one HIS adapter (`source`), with their status; transferred-out copies
/// left out (the ticket is in its new queue).
#[derive(Message)]
#[rtype(result = "Vec<(crate::domain::event::HisRef, crate::domain::queue::Status)>")]
struct HisTickets(String);

impl Handler<HisTickets> for ClinicQueue {
    type Result = MessageResult<HisTickets>;
    fn handle(&mut self, msg: HisTickets, _: &mut Self::Context) -> Self::Result {
        MessageResult(
            self.state
                .tickets()
                .filter(|t| t.status != crate::domain::queue::Status::Transferred)
                .filter_map(|t| t.data.his.as_ref().filter(|h| h.source == msg.0).map(|h| (h.clone(), t.status)))
                .collect(),
        )
    }
}

/// Every waiting ticket with its position, ETA and the one-line explanation.
#[derive(Message)]
#[rtype(result = "Vec<(TicketId, Standing, PositionNote)>")]
struct Positions;

impl Handler<Positions> for ClinicQueue {
    type Result = MessageResult<Positions>;
    fn handle(&mut self, _: Positions, _: &mut Self::Context) -> Self::Result {
        let now = now_ms();
        let cap = self.state.policy().fairness.max_overtakes;
        MessageResult(self.state.standings(now).into_iter().map(|(t, s)| (t.data.id.clone(), s, PositionNote::of(&s, cap))).collect())
    }
}

impl Handler<Execute> for ClinicQueue {
    type Result = ResponseFuture<Result<Outcome, CommandError>>;

    fn handle(&mut self, msg: Execute, _ctx: &mut Self::Context) -> Self::Result {
        let started = Instant::now();
        let name = msg.cmd.name();
        let now = now_ms();
        let span = tracing::info_span!("command", queue = %self.state.id(), command = name);
        let _enter = span.enter();
        // Reserve room in the journal first, so a full or failed journal refuses the command
        // before any state changes.
        let slot = match self.journal.reserve() {
            Ok(slot) => slot,
            Err(e) => {
                tracing::warn!(error = %e, "command not journaled");
                self.metrics.commands.with_label_values(&[name, "unavailable"]).inc();
                return Box::pin(async move { Err(CommandError::Unavailable(e.to_string())) });
            }
        };
        // On a new service day yesterday's tickets leave the index; remember which they were.
        let yesterday: Vec<TicketId> = if self.state.service_day() != Some(self.state.day_of(now)) {
            self.state.tickets().map(|t| t.data.id.clone()).collect()
        } else {
            Vec::new()
        };
        let decision = match self.state.execute_with(&msg.cmd, msg.idem.as_ref(), now) {
            Ok(d) => d,
            Err(e) => {
                tracing::info!(error = %e, "command refused");
                self.metrics.commands.with_label_values(&[name, "rejected"]).inc();
                return Box::pin(async move { Err(CommandError::Rejected(e)) });
            }
        };
        if decision.events.is_empty() {
            // Nothing to journal (idempotent retry, call-next on an empty queue, pause of a paused room).
            let ticket = decision.subject.as_ref().and_then(|t| self.state.ticket_view(t, now));
            self.metrics.commands.with_label_values(&[name, "ok"]).inc();
            return Box::pin(async move { Ok(Outcome { ticket, transferred: None, replayed: decision.replayed }) });
        }
        let records: Vec<NewEvent> =
            decision.events.iter().map(|e| NewEvent { queue: self.state.id().clone(), at: now, event: e.clone() }).collect();
        let receipt = slot.send(records);
        self.index_tickets(&decision.events, &yesterday);
        if decision.events.iter().any(|e| matches!(e, Event::Called { .. })) {
            self.metrics.calls.with_label_values(&[self.state.id().as_str()]).inc();
        }
        self.metrics.queue_waiting.with_label_values(&[self.state.id().as_str()]).set(self.state.waiting_count() as i64);
        let ticket = decision.subject.as_ref().and_then(|t| self.state.ticket_view(t, now));
        let transferred = match &msg.cmd {
            Command::TransferOut { ticket, .. } => self.state.ticket(ticket).map(|t| t.data.clone()),
            _ => None,
        };
        let committed = Committed { queue: self.state.id().clone(), at: now, seqs: vec![], events: decision.events };
        let published = self.published.clone();
        let metrics = self.metrics.clone();
        Box::pin(async move {
            match receipt.await {
                Ok(Ok(seqs)) => {
                    metrics.command_seconds.with_label_values(&[name]).observe(started.elapsed().as_secs_f64());
                    metrics.commands.with_label_values(&[name, "ok"]).inc();
                    // No subscriber is fine; a lagging one resyncs.
                    let _ = published.send(Arc::new(Committed { seqs, ..committed }));
                    Ok(Outcome { ticket, transferred, replayed: false })
                }
                _ => {
                    metrics.commands.with_label_values(&[name, "unavailable"]).inc();
                    Err(CommandError::Unavailable(StorageError::Failed.to_string()))
                }
            }
        })
    }
}

impl ClinicQueue {
    /// Keep the ticket → queue index in step with the events just applied.
    fn index_tickets(&self, events: &[Event], before: &[TicketId]) {
        for e in events {
            match e {
                Event::DayStarted { .. } => self.directory.remove_all(before.iter(), self.state.id()),
                Event::TicketIssued { ticket, .. } | Event::TransferredIn { ticket, .. } | Event::CarriedOver { ticket, .. } => {
                    self.directory.insert(ticket.id.clone(), self.state.id().clone())
                }
                _ => {}
            }
        }
    }
}

impl Handler<Snapshot> for ClinicQueue {
    type Result = MessageResult<Snapshot>;
    fn handle(&mut self, _: Snapshot, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.state.snapshot(now_ms()))
    }
}

impl Handler<GetTicket> for ClinicQueue {
    type Result = MessageResult<GetTicket>;
    fn handle(&mut self, msg: GetTicket, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.state.ticket_view(&msg.0, now_ms()))
    }
}

impl Handler<PatientTickets> for ClinicQueue {
    type Result = MessageResult<PatientTickets>;
    fn handle(&mut self, msg: PatientTickets, _: &mut Self::Context) -> Self::Result {
        let now = now_ms();
        let ids: Vec<TicketId> = self
            .state
            .tickets()
            .filter(|t| t.data.patient == msg.0 && t.status != crate::domain::queue::Status::Transferred)
            .map(|t| t.data.id.clone())
            .collect();
        MessageResult(ids.iter().filter_map(|id| self.state.ticket_view(id, now)).collect())
    }
}

/// The way to reach one queue actor.
#[derive(Clone)]
pub struct QueueHandle {
    id: QueueId,
    addr: Addr<ClinicQueue>,
    published: broadcast::Sender<Arc<Committed>>,
}

impl QueueHandle {
    /// Start the actor on the current actix arbiter with a state rebuilt from the journal.
    pub fn start(state: QueueState, journal: JournalWriter, directory: Directory, metrics: Arc<Metrics>) -> Self {
        let (published, _) = broadcast::channel(PUBLISH_BUFFER);
        let id = state.id().clone();
        // A transferred ticket's tombstone stays here; the directory points to where it went.
        for t in state.tickets().filter(|t| t.status != crate::domain::queue::Status::Transferred) {
            directory.insert(t.data.id.clone(), id.clone());
        }
        metrics.queue_waiting.with_label_values(&[id.as_str()]).set(state.counts().waiting as i64);
        let actor = ClinicQueue { state, journal, directory, metrics, published: published.clone() };
        Self { id, addr: actor.start(), published }
    }

    pub fn id(&self) -> &QueueId {
        &self.id
    }

    pub async fn execute(&self, cmd: Command, idem: Option<Idempotency>) -> Result<Outcome, CommandError> {
        self.addr.send(Execute { cmd, idem }).await.map_err(|e| CommandError::Unavailable(e.to_string()))?
    }

    pub async fn snapshot(&self) -> Result<QueueSnapshot, CommandError> {
        self.addr.send(Snapshot).await.map_err(|e| CommandError::Unavailable(e.to_string()))
    }

    pub async fn ticket(&self, id: TicketId) -> Result<Option<TicketView>, CommandError> {
        self.addr.send(GetTicket(id)).await.map_err(|e| CommandError::Unavailable(e.to_string()))
    }

    pub async fn patient_tickets(&self, patient: crate::domain::ids::PatientId) -> Result<Vec<TicketView>, CommandError> {
        self.addr.send(PatientTickets(patient)).await.map_err(|e| CommandError::Unavailable(e.to_string()))
    }

    pub async fn his_tickets(&self, source: String) -> Result<Vec<(crate::domain::event::HisRef, crate::domain::queue::Status)>, CommandError> {
        self.addr.send(HisTickets(source)).await.map_err(|e| CommandError::Unavailable(e.to_string()))
    }

    /// The policy in force and whether it differs from the config file's.
    pub async fn policy(&self) -> Result<(QueuePolicy, bool), CommandError> {
        self.addr.send(GetPolicy).await.map_err(|e| CommandError::Unavailable(e.to_string()))
    }

    pub async fn positions(&self) -> Result<Vec<(TicketId, Standing, PositionNote)>, CommandError> {
        self.addr.send(Positions).await.map_err(|e| CommandError::Unavailable(e.to_string()))
    }

    /// Committed events of this queue, in commit order per command.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Committed>> {
        self.published.subscribe()
    }
}
