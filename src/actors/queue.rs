//! `ClinicQueue`: the one writer of one queue's state.
//!
//! A command's path is decide → commit → apply → answer:
//! 1. **Decide** against `ahead` — the committed state plus every command already handed to the
//!    journal — so commands to one queue are decided strictly one after another (the actor's
//!    mailbox: two rooms pressing call-next at once get different patients) while their commits
//!    still share one group-commit transaction.
//! 2. **Commit**: the events go to the journal writer.
//! 3. **Apply**, in decision order, once the journal confirms them: only then does `state` (what
//!    snapshots, tickets, positions, the ticket directory and the committed stream show) change,
//!    and only then is the caller answered. A replay of an idempotency key, a refusal and a
//!    call-next that finds nobody are answered in the same order, after the commits they were
//!    decided on: nothing is answered from a state that is not on disk.
//! 4. A commit that fails leaves `state` exactly as it was; every command decided after it is
//!    refused too (they were decided on it) and `ahead` starts again from `state`.

use super::Directory;
use crate::clock::Clock;
use crate::domain::command::{Command, Idempotency};
use crate::domain::config::QueuePolicy;
use crate::domain::display::Board;
use crate::domain::error::QueueError;
use crate::domain::event::{Event, TicketData, UnixMs};
use crate::domain::ids::{QueueId, TicketId};
use crate::domain::queue::QueueState;
use crate::domain::queue::Standing;
use crate::domain::view::{PositionNote, QueueSnapshot, TicketView};
use crate::storage::{JournalWriter, NewEvent, StorageError};
use crate::telemetry::Metrics;
use actix::prelude::*;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{broadcast, oneshot};

/// Mailbox size of a queue actor. When full, senders wait (HTTP requests queue up in actix).
const MAILBOX: usize = 4_096;
/// Commits kept for slow followers (displays, patient sessions, webhooks). A follower that falls
/// further behind gets `Lagged` and resyncs (from the journal, or a queue's board).
const STREAM_BUFFER: usize = 8_192;

/// One command's effect once it is durable, self-contained: followers (displays, phones,
/// webhooks) take what they show from it and never call back into the queue or re-read the
/// journal for it.
#[derive(Debug, Clone)]
pub struct Committed {
    pub queue: QueueId,
    pub at: UnixMs,
    /// The journal position of each event.
    pub seqs: Vec<i64>,
    pub events: Vec<Event>,
    /// The tickets the events touched, as they stand after them.
    pub tickets: Vec<TicketView>,
    /// What wall displays show of the queue after them.
    pub board: Arc<Board>,
    /// When the queue published it, durable (latency figures start here).
    pub durable: std::time::Instant,
}

impl Committed {
    /// The view of one ticket the commit touched.
    pub fn ticket(&self, id: &TicketId) -> Option<&TicketView> {
        self.tickets.iter().find(|t| &t.id == id)
    }
}

/// The floor's committed stream: every queue's durable commands, in the order the queues applied
/// them. Per queue that is journal order; a ticket moving between queues is seen leaving before
/// it arrives (the second half is decided only after the first is applied). Across unrelated
/// queues the order may differ from the journal's: followers needing one total order (webhooks)
/// read the journal from their cursor.
#[derive(Clone)]
pub struct CommitStream {
    tx: broadcast::Sender<Arc<Committed>>,
    /// Records published so far: a follower that has taken this many has seen every command
    /// acknowledged before it looked (read-your-writes for followers that answer requests).
    /// Sending and counting happen under this lock, so a follower that subscribes under it
    /// knows exactly how many records came before its first.
    published: Arc<std::sync::Mutex<u64>>,
}

impl Default for CommitStream {
    fn default() -> Self {
        Self { tx: broadcast::channel(STREAM_BUFFER).0, published: Arc::default() }
    }
}

impl CommitStream {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Committed>> {
        self.tx.subscribe()
    }

    /// Subscribe, with how many records were published before the first one received.
    pub fn subscribe_counted(&self) -> (broadcast::Receiver<Arc<Committed>>, u64) {
        let n = self.published.lock().unwrap_or_else(|p| p.into_inner());
        (self.tx.subscribe(), *n)
    }

    /// How many records have been published.
    pub fn published(&self) -> u64 {
        *self.published.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, c: Committed) {
        let mut n = self.published.lock().unwrap_or_else(|p| p.into_inner());
        // No follower is fine; a lagging one resyncs.
        let _ = self.tx.send(Arc::new(c));
        *n += 1;
    }
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

/// A decided command waiting for its answer: for its own commit, or (no events) for the commits
/// decided before it.
struct InFlight {
    id: u64,
    /// The events to apply once durable; empty for an answer that only waits its turn.
    events: Vec<Event>,
    at: UnixMs,
    name: &'static str,
    started: Instant,
    /// What the decision said: the ticket acted on, a replay, or a refusal.
    decided: Result<(Option<TicketId>, bool), QueueError>,
    /// A transfer out: the ticket whose full data goes to the destination.
    transfer_out: Option<TicketId>,
    /// The journal's word: `Some(Ok(seqs))` durable, `Some(Err)` failed, `None` not yet.
    done: Option<Result<Vec<i64>, ()>>,
    answer: oneshot::Sender<Result<Outcome, CommandError>>,
}

pub struct ClinicQueue {
    /// What the journal confirmed, applied in journal order: what everyone else sees.
    state: QueueState,
    /// `state` plus the events of every command in flight: what the next command is decided
    /// against. Equal to `state` when nothing is in flight.
    ahead: QueueState,
    /// Decided commands not yet answered, in decision order (this queue's journal order).
    inflight: VecDeque<InFlight>,
    next_id: u64,
    /// Where the actor reads the time (the server's clock; a paused one in tests).
    clock: Clock,
    journal: JournalWriter,
    directory: Directory,
    metrics: Arc<Metrics>,
    stream: CommitStream,
}

impl Actor for ClinicQueue {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX);
        // The no-show rule: a called ticket whose grace ran out is marked missed by the server.
        // `overdue` is cheap (rooms' current tickets only); the command is checked again.
        ctx.run_interval(NO_SHOW_TICK, |actor, ctx| {
            let now = actor.clock.now_ms();
            // Decided against `ahead`, so a miss already on its way is not asked for again.
            for ticket in actor.ahead.overdue(now) {
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

/// What displays show of the queue now (to start with, or after missing commits).
#[derive(Message)]
#[rtype(result = "Arc<Board>")]
struct GetBoard;

impl Handler<GetBoard> for ClinicQueue {
    type Result = MessageResult<GetBoard>;
    fn handle(&mut self, _: GetBoard, _: &mut Self::Context) -> Self::Result {
        MessageResult(Arc::new(self.state.board(self.clock.now_ms())))
    }
}

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
        let now = self.clock.now_ms();
        let cap = self.state.policy().fairness.max_overtakes;
        MessageResult(self.state.standings(now).into_iter().map(|(t, s)| (t.data.id.clone(), s, PositionNote::of(&s, cap))).collect())
    }
}

impl Handler<Execute> for ClinicQueue {
    type Result = ResponseFuture<Result<Outcome, CommandError>>;

    fn handle(&mut self, msg: Execute, ctx: &mut Self::Context) -> Self::Result {
        let started = Instant::now();
        let name = msg.cmd.name();
        let now = self.clock.now_ms();
        let span = tracing::info_span!("command", queue = %self.state.id(), command = name);
        let _enter = span.enter();
        // Reserve room in the journal first, so a full or failed journal refuses the command
        // before anything is decided.
        let slot = match self.journal.reserve() {
            Ok(slot) => slot,
            Err(e) => {
                tracing::warn!(error = %e, "command not journaled");
                self.metrics.commands.with_label_values(&[name, "unavailable"]).inc();
                return Box::pin(async move { Err(CommandError::Unavailable(e.to_string())) });
            }
        };
        let (answer, answered) = oneshot::channel();
        let id = self.next_id;
        self.next_id += 1;
        let mut entry = InFlight { id, events: Vec::new(), at: now, name, started, decided: Ok((None, false)), transfer_out: None, done: None, answer };
        match self.ahead.execute_with(&msg.cmd, msg.idem.as_ref(), now) {
            Err(e) => {
                drop(slot);
                tracing::info!(error = %e, "command refused");
                entry.decided = Err(e);
                entry.done = Some(Ok(Vec::new()));
            }
            Ok(d) if d.events.is_empty() => {
                // Nothing to journal (an idempotent replay, call-next on an empty line, pausing a
                // paused room): answered once what it was decided on is durable.
                drop(slot);
                entry.decided = Ok((d.subject, d.replayed));
                entry.done = Some(Ok(Vec::new()));
            }
            Ok(d) => {
                let records: Vec<NewEvent> = d.events.iter().map(|e| NewEvent { queue: self.state.id().clone(), at: now, event: e.clone() }).collect();
                let receipt = slot.send(records);
                if let Command::TransferOut { ticket, .. } = &msg.cmd {
                    entry.transfer_out = Some(ticket.clone());
                }
                entry.decided = Ok((d.subject, false));
                entry.events = d.events;
                ctx.spawn(receipt.into_actor(self).map(move |r, act, _| act.confirmed(id, r.unwrap_or(Err(())))));
            }
        }
        self.inflight.push_back(entry);
        self.answer_ready();
        Box::pin(async move { answered.await.unwrap_or_else(|_| Err(CommandError::Unavailable(StorageError::Failed.to_string()))) })
    }
}

impl ClinicQueue {
    /// The journal's word on command `id`.
    fn confirmed(&mut self, id: u64, result: Result<Vec<i64>, ()>) {
        // Gone already when an earlier commit failed and took it along.
        if let Some(e) = self.inflight.iter_mut().find(|e| e.id == id) {
            e.done = Some(result);
        }
        self.answer_ready();
    }

    /// Apply and answer, in decision order, every command whose turn has come.
    fn answer_ready(&mut self) {
        while self.inflight.front().is_some_and(|e| e.done.is_some()) {
            let Some(mut e) = self.inflight.pop_front() else { break };
            match e.done.take() {
                Some(Ok(seqs)) => self.apply_committed(e, seqs),
                _ => self.commit_failed(e),
            }
        }
    }

    /// Durable: apply to `state`, keep the directory in step, publish, answer.
    fn apply_committed(&mut self, e: InFlight, seqs: Vec<i64>) {
        let name = e.name;
        let (subject, replayed) = match e.decided {
            Ok(d) => d,
            Err(err) => {
                self.metrics.commands.with_label_values(&[name, "rejected"]).inc();
                let _ = e.answer.send(Err(CommandError::Rejected(err)));
                return;
            }
        };
        let mut answer_view = None;
        if !e.events.is_empty() {
            // On a new service day yesterday's tickets leave the index; remember which they were.
            let yesterday: Vec<TicketId> = if e.events.iter().any(|ev| matches!(ev, Event::DayStarted { .. })) {
                self.state.tickets().map(|t| t.data.id.clone()).collect()
            } else {
                Vec::new()
            };
            for ev in &e.events {
                self.state.apply(ev, e.at);
            }
            self.index_tickets(&e.events, &yesterday);
            let queue = self.state.id().as_str();
            if e.events.iter().any(|ev| matches!(ev, Event::Called { .. })) {
                self.metrics.calls.with_label_values(&[queue]).inc();
            }
            self.metrics.queue_waiting.with_label_values(&[queue]).set(self.state.waiting_count() as i64);
            self.metrics.command_seconds.with_label_values(&[name]).observe(e.started.elapsed().as_secs_f64());
            let mut touched: Vec<&TicketId> = Vec::new();
            for t in e.events.iter().filter_map(Event::ticket) {
                if !touched.contains(&t) {
                    touched.push(t);
                }
            }
            let tickets: Vec<TicketView> = touched.into_iter().filter_map(|t| self.state.ticket_view(t, e.at)).collect();
            // The subject's view is among the touched ones: not computed twice.
            answer_view = subject.as_ref().and_then(|s| tickets.iter().find(|t| &t.id == s)).cloned();
            for ev in &e.events {
                if let Event::Called { ticket, .. } = ev {
                    // The first call's wait (a recall is not a new wait).
                    if let Some(t) = tickets.iter().find(|t| &t.id == ticket && t.calls == 1) {
                        if let (Some(from), Some(to)) = (t.checked_in_at, t.called_at) {
                            self.metrics.queue_wait_seconds.with_label_values(&[queue]).observe((to - from).max(0) as f64 / 1000.0);
                        }
                    }
                }
            }
            let board = Arc::new(self.state.board(e.at));
            self.stream.publish(Committed { queue: self.state.id().clone(), at: e.at, seqs, events: e.events, tickets, board, durable: std::time::Instant::now() });
        }
        self.metrics.commands.with_label_values(&[name, "ok"]).inc();
        let ticket = answer_view.or_else(|| subject.as_ref().and_then(|t| self.state.ticket_view(t, e.at)));
        let transferred = e.transfer_out.as_ref().and_then(|t| self.state.ticket(t)).map(|t| t.data.clone());
        let _ = e.answer.send(Ok(Outcome { ticket, transferred, replayed }));
    }

    /// The journal refused a commit: nothing of it is applied, and every command decided after
    /// it (on a state that included it) is refused as well; deciding starts again from `state`.
    fn commit_failed(&mut self, first: InFlight) {
        let refused = std::iter::once(first).chain(self.inflight.drain(..)).collect::<Vec<_>>();
        tracing::error!(queue = %self.state.id(), commands = refused.len(), "journal commit failed: the commands are refused, the state stays as it was");
        for e in refused {
            self.metrics.commands.with_label_values(&[e.name, "unavailable"]).inc();
            let _ = e.answer.send(Err(CommandError::Unavailable(StorageError::Failed.to_string())));
        }
        self.ahead = self.state.clone();
    }

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
        MessageResult(self.state.snapshot(self.clock.now_ms()))
    }
}

impl Handler<GetTicket> for ClinicQueue {
    type Result = MessageResult<GetTicket>;
    fn handle(&mut self, msg: GetTicket, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.state.ticket_view(&msg.0, self.clock.now_ms()))
    }
}

impl Handler<PatientTickets> for ClinicQueue {
    type Result = MessageResult<PatientTickets>;
    fn handle(&mut self, msg: PatientTickets, _: &mut Self::Context) -> Self::Result {
        let now = self.clock.now_ms();
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
}

impl QueueHandle {
    /// Start the actor on the current actix arbiter with a state rebuilt from the journal,
    /// publishing its commits on `stream` and reading the time from `clock`.
    pub fn start(state: QueueState, journal: JournalWriter, directory: Directory, stream: CommitStream, metrics: Arc<Metrics>, clock: Clock) -> Self {
        Self::start_on(&actix_rt::Arbiter::current(), state, journal, directory, stream, metrics, clock)
    }

    /// The same, on `arbiter`'s thread: the server runs its queues on threads of their own, so
    /// commands are never held up behind the followers of the committed stream.
    pub fn start_on(
        arbiter: &actix_rt::ArbiterHandle,
        state: QueueState,
        journal: JournalWriter,
        directory: Directory,
        stream: CommitStream,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Self {
        let id = state.id().clone();
        // A transferred ticket's tombstone stays here; the directory points to where it went.
        for t in state.tickets().filter(|t| t.status != crate::domain::queue::Status::Transferred) {
            directory.insert(t.data.id.clone(), id.clone());
        }
        metrics.queue_waiting.with_label_values(&[id.as_str()]).set(state.counts().waiting as i64);
        // From zero, so rates and "no call for 20 minutes" work before the first call.
        metrics.calls.with_label_values(&[id.as_str()]);
        metrics.queue_wait_seconds.with_label_values(&[id.as_str()]);
        let actor = ClinicQueue { ahead: state.clone(), state, inflight: VecDeque::new(), next_id: 0, clock, journal, directory, metrics, stream };
        Self { id, addr: ClinicQueue::start_in_arbiter(arbiter, move |_| actor) }
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

    pub async fn board(&self) -> Result<Arc<Board>, CommandError> {
        self.addr.send(GetBoard).await.map_err(|e| CommandError::Unavailable(e.to_string()))
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::command::IssueTicket;
    use crate::domain::config::{Hospital, QueuePolicy};
    use crate::domain::ids::{DisplayName, PatientId, PriorityClass, RoomId};
    use crate::storage::{JournalStore, SqliteJournal, StoredEvent, WriterLimits};
    use std::sync::atomic::{AtomicBool, Ordering};

    /// The real SQLite journal, refusing its commits while `fail` is set (a full disk, a lost
    /// controller): what the journal writer sees when the disk goes.
    struct FailingDisk {
        inner: SqliteJournal,
        fail: Arc<AtomicBool>,
    }

    impl JournalStore for FailingDisk {
        fn append(&mut self, batch: &[NewEvent]) -> Result<Vec<i64>, StorageError> {
            if self.fail.load(Ordering::SeqCst) {
                let full = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL);
                return Err(StorageError::Db(rusqlite::Error::SqliteFailure(full, Some("database or disk is full".into()))));
            }
            self.inner.append(batch)
        }
        fn load_current_day(&mut self, q: &QueueId) -> Result<Vec<StoredEvent>, StorageError> {
            self.inner.load_current_day(q)
        }
        fn ticket_events(&mut self, t: &TicketId, after: i64) -> Result<Vec<StoredEvent>, StorageError> {
            self.inner.ticket_events(t, after)
        }
        fn events_after(&mut self, after: i64, limit: usize) -> Result<Vec<StoredEvent>, StorageError> {
            self.inner.events_after(after, limit)
        }
        fn events_between(&mut self, from: UnixMs, to: UnixMs) -> Result<Vec<StoredEvent>, StorageError> {
            self.inner.events_between(from, to)
        }
        fn last_seq(&mut self) -> Result<i64, StorageError> {
            self.inner.last_seq()
        }
        fn count(&mut self) -> Result<i64, StorageError> {
            self.inner.count()
        }
    }

    fn issue(n: usize) -> Command {
        Command::Issue(IssueTicket::walk_in(TicketId::parse(&format!("t{n}")).unwrap(), PatientId::parse(&format!("p{n}")).unwrap(), DisplayName::parse("张三丰").unwrap(), PriorityClass::parse("normal").unwrap()))
    }

    fn call_next() -> Command {
        Command::CallNext { room: RoomId::parse("c-101").unwrap(), caller: "test".into() }
    }

    /// A queue actor of the demo's internal medicine on a journal whose disk can be made to fail.
    fn queue(dir: &std::path::Path) -> (QueueHandle, Arc<AtomicBool>, Directory, CommitStream) {
        let (q, fail, directory, _, stream) = queue_at(dir, Clock::server());
        (q, fail, directory, stream)
    }

    /// The same, reading the time from `clock`.
    fn queue_at(dir: &std::path::Path, clock: Clock) -> (QueueHandle, Arc<AtomicBool>, Directory, Clock, CommitStream) {
        let hospital = Hospital::demo();
        let spec = hospital.queues[&QueueId::parse("internal-medicine").unwrap()].clone();
        let fail = Arc::new(AtomicBool::new(false));
        let store = FailingDisk { inner: SqliteJournal::open(&dir.join("journal.sqlite")).unwrap(), fail: fail.clone() };
        let metrics = Arc::new(Metrics::new());
        let (journal, _) = JournalWriter::start(Box::new(store), WriterLimits::default(), metrics.clone());
        let directory = Directory::default();
        let stream = CommitStream::default();
        (QueueHandle::start(QueueState::new(spec), journal, directory.clone(), stream.clone(), metrics, clock.clone()), fail, directory, clock, stream)
    }

    /// 2026-12-07 10:00 in the demo hospital's zone (Asia/Shanghai).
    const MONDAY_10: UnixMs = 1_796_608_800_000;

    /// The next committed record with an event that satisfies `pred` (bounded wait).
    async fn committed(stream: &mut broadcast::Receiver<Arc<Committed>>, pred: impl Fn(&Event) -> bool) -> Arc<Committed> {
        let wait = async {
            loop {
                let c = stream.recv().await.expect("the queue publishes");
                if c.events.iter().any(&pred) {
                    return c;
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), wait).await.expect("committed within 10 s")
    }

    /// A queue on a manual clock at Monday 10:00 whose no-show rule misses a ticket called
    /// `after_calls` times and unanswered for `grace_secs`; one ticket issued and called.
    async fn called_under_no_show_rule(dir: &std::path::Path, after_calls: u32, grace_secs: u32) -> (QueueHandle, Clock, TicketView, CommitStream) {
        let (q, _, _, clock, stream) = queue_at(dir, Clock::manual(MONDAY_10));
        let mut policy = QueuePolicy::default();
        policy.calls.auto_miss_after_calls = Some(after_calls);
        policy.calls.grace_secs = grace_secs;
        q.execute(Command::SetPolicy { policy }, None).await.unwrap();
        q.execute(issue(0), None).await.unwrap();
        let called = q.execute(call_next(), None).await.unwrap().ticket.unwrap();
        (q, clock, called, stream)
    }

    #[actix_rt::test]
    async fn the_no_show_rule_runs_on_the_queues_clock() {
        let dir = tempfile::tempdir().unwrap();
        let (q, clock, called, commits) = called_under_no_show_rule(dir.path(), 1, 90).await;
        assert_eq!(called.called_at, Some(MONDAY_10), "the call is stamped on the queue's clock");
        let mut stream = commits.subscribe();

        // The grace runs on the queue's clock, not the machine's: 89 s on, still called.
        clock.advance(89_000);
        assert_eq!(q.ticket(called.id.clone()).await.unwrap().unwrap().status, crate::domain::queue::Status::Called);
        assert!(q.execute(Command::AutoMiss { ticket: called.id.clone() }, None).await.is_err(), "not due yet");
        // 91 s on: the queue's own timer marks it missed, at the queue's time.
        clock.advance(2_000);
        let c = committed(&mut stream, |e| matches!(e, Event::Missed { auto: true, .. })).await;
        assert_eq!(c.at, MONDAY_10 + 91_000);
        assert_eq!(q.ticket(called.id.clone()).await.unwrap().unwrap().status, crate::domain::queue::Status::Missed);
    }

    #[actix_rt::test]
    async fn a_ticket_called_fewer_times_than_the_rule_says_is_never_missed_by_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let (q, clock, called, commits) = called_under_no_show_rule(dir.path(), 2, 60).await;
        let mut stream = commits.subscribe();
        // One call of two, ten minutes on: still called, and the rule refuses to miss it.
        clock.advance(600_000);
        assert!(matches!(q.execute(Command::AutoMiss { ticket: called.id.clone() }, None).await, Err(CommandError::Rejected(_))));
        assert_eq!(q.ticket(called.id.clone()).await.unwrap().unwrap().status, crate::domain::queue::Status::Called);
        // The second call, then its grace: missed by the queue's own timer.
        q.execute(Command::Recall { ticket: called.id.clone() }, None).await.unwrap();
        clock.advance(61_000);
        let c = committed(&mut stream, |e| matches!(e, Event::Missed { auto: true, .. })).await;
        assert_eq!(c.at, MONDAY_10 + 661_000);
    }

    #[actix_rt::test]
    async fn a_new_day_on_the_queues_clock_starts_the_numbers_again() {
        let dir = tempfile::tempdir().unwrap();
        // 23:59:30 in Shanghai, Monday.
        let before_midnight = MONDAY_10 + (13 * 3600 + 59 * 60 + 30) * 1000;
        let (q, _, directory, clock, commits) = queue_at(dir.path(), Clock::manual(before_midnight));
        let late = q.execute(issue(0), None).await.unwrap().ticket.unwrap();
        assert_eq!(late.number, "A001");
        // One minute on: Tuesday 00:00:30. The next command starts the new day first.
        clock.advance(60_000);
        let mut stream = commits.subscribe();
        let first = q.execute(issue(1), None).await.unwrap().ticket.unwrap();
        assert_eq!(first.number, "A001", "numbers start again each day");
        let c = committed(&mut stream, |e| matches!(e, Event::DayStarted { .. })).await;
        let day = c.events.iter().find_map(|e| if let Event::DayStarted { day } = e { Some(day.to_string()) } else { None });
        assert_eq!(day.as_deref(), Some("2026-12-08"), "the hospital's day, whatever the machine's zone");
        assert!(q.ticket(late.id.clone()).await.unwrap().is_none(), "yesterday's ticket is closed with its day");
        assert!(directory.get(&late.id).is_none());
    }

    #[actix_rt::test]
    async fn a_commit_carries_what_its_followers_show() {
        let dir = tempfile::tempdir().unwrap();
        let (q, _, _, commits) = queue(dir.path());
        let mut stream = commits.subscribe();
        for n in 0..5 {
            q.execute(issue(n), None).await.unwrap();
        }
        let called = q.execute(call_next(), None).await.unwrap().ticket.unwrap();
        let c = committed(&mut stream, |e| matches!(e, Event::Called { .. })).await;
        // The called ticket as it is now: what a display announces and a phone is told.
        let t = c.ticket(&called.id).expect("the called ticket's view");
        assert_eq!((t.status, t.number.as_str(), t.masked_name.as_str()), (crate::domain::queue::Status::Called, called.number.as_str(), "张*丰"));
        assert_eq!(c.seqs.len(), c.events.len(), "every event with its journal position");
        // The board: the room serving the called number, the next ones in line.
        let room = c.board.rooms.iter().find(|r| r.id.as_str() == "c-101").unwrap();
        assert_eq!(room.current_number.as_deref(), Some(called.number.as_str()));
        let snap = q.snapshot().await.unwrap();
        let next: Vec<&str> = snap.waiting.iter().take(crate::domain::display::NEXT).map(|w| w.number.as_str()).collect();
        let head: Vec<&str> = c.board.head.iter().take(crate::domain::display::NEXT).map(|w| w.number.as_str()).collect();
        assert_eq!(head, next);
        assert_eq!(*q.board().await.unwrap(), *c.board, "the queue's board is the last commit's");
    }

    #[actix_rt::test]
    async fn a_failed_commit_leaves_the_queue_as_it_was_and_publishes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (q, fail, directory, commits) = queue(dir.path());
        let mut stream = commits.subscribe();
        for n in 0..2 {
            q.execute(issue(n), None).await.unwrap();
            assert!(stream.recv().await.is_ok(), "a durable command is published");
        }
        let before = q.snapshot().await.unwrap();

        // The disk fails under three commands decided one after another, in flight together.
        fail.store(true, Ordering::SeqCst);
        let (a, b, c) = tokio::join!(q.execute(call_next(), None), q.execute(issue(7), None), q.execute(call_next(), None));
        for r in [a, b, c] {
            assert!(matches!(r, Err(CommandError::Unavailable(_))), "{r:?}");
        }
        assert_eq!(q.snapshot().await.unwrap(), before, "nothing of a refused commit shows");
        assert!(q.ticket(TicketId::parse("t7").unwrap()).await.unwrap().is_none());
        assert!(directory.get(&TicketId::parse("t7").unwrap()).is_none(), "nor in the ticket directory");
        assert!(matches!(stream.try_recv(), Err(broadcast::error::TryRecvError::Empty)), "nor on the committed stream");

        // The journal holds exactly what was acknowledged.
        let mut reader = SqliteJournal::open(&dir.path().join("journal.sqlite")).unwrap();
        let issued = reader.events_after(0, 100).unwrap().iter().filter(|e| matches!(e.event, Event::TicketIssued { .. })).count();
        assert_eq!(issued, 2);
    }

    #[actix_rt::test]
    async fn a_replay_is_answered_after_the_original_is_durable_and_as_it() {
        let dir = tempfile::tempdir().unwrap();
        let (q, _, _, commits) = queue(dir.path());
        q.execute(issue(0), None).await.unwrap();
        let key = Idempotency { key: "press-1".into(), fingerprint: "call-next c-101".into() };
        let mut stream = commits.subscribe();
        // The original and its replays, decided one after another while the original commits.
        let (first, again, third) = tokio::join!(
            q.execute(call_next(), Some(key.clone())),
            q.execute(call_next(), Some(key.clone())),
            q.execute(call_next(), Some(key.clone()))
        );
        let (first, again, third) = (first.unwrap(), again.unwrap(), third.unwrap());
        assert!(!first.replayed && again.replayed && third.replayed);
        let called = first.ticket.unwrap();
        assert_eq!(called.status, crate::domain::queue::Status::Called);
        for r in [again, third] {
            let t = r.ticket.unwrap();
            assert_eq!((t.id.clone(), t.status, t.calls), (called.id.clone(), crate::domain::queue::Status::Called, 1), "the replay shows the durable call");
        }
        // One call on the committed stream, none for the replays.
        let c = stream.recv().await.unwrap();
        assert!(c.events.iter().any(|e| matches!(e, Event::Called { .. })));
        assert!(matches!(stream.try_recv(), Err(broadcast::error::TryRecvError::Empty)));
    }
}
