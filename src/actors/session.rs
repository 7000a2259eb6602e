//! Patient push: one `PatientSession` actor per followed ticket owns that ticket's connections
//! (a patient's phone, a family member's phone) and its feed; the `SessionHub` routes the floor's
//! committed stream to the sessions of the tickets each commit touched and sends coalesced
//! position/ETA updates about once a second.
//!
//! A session reads its ticket's history from the journal once, when it starts (off the async
//! threads), and then follows the stream: the events a commit carries go into its feed as they
//! are, de-duplicated by journal position. Only a router that fell behind the stream sends the
//! sessions back to the journal.

use super::queue::QueueHandle;
use super::Floor;
use crate::domain::config::Hospital;
use crate::domain::event::Event;
use crate::domain::feed::TicketFeed;
use crate::domain::ids::{QueueId, TicketId};
use crate::domain::view::TicketView;
use crate::storage::JournalStore;
use crate::telemetry::Metrics;
use actix::prelude::*;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};

/// Limits of patient connections.
#[derive(Debug, Clone, Copy)]
pub struct PushLimits {
    /// Messages waiting for one connection. When full the client is too slow to read: it is
    /// disconnected with close code 4008 rather than let memory grow.
    pub outbox: usize,
    /// How often the server pings each connection.
    pub heartbeat: Duration,
    /// A connection silent (no frame, no pong) for this long is closed with 4001.
    pub idle_timeout: Duration,
    /// Position/ETA updates are coalesced to at most one per this interval.
    pub position_interval: Duration,
    /// How often patients with active orders are re-planned; a changed next stop is pushed.
    pub replan_interval: Duration,
}

impl Default for PushLimits {
    fn default() -> Self {
        Self { outbox: 256, heartbeat: Duration::from_secs(15), idle_timeout: Duration::from_secs(45), position_interval: Duration::from_secs(1), replan_interval: Duration::from_secs(20) }
    }
}

/// Close codes the server uses (documented in the README).
pub mod close {
    /// The client did not read fast enough; its outbox filled.
    pub const TOO_SLOW: u16 = 4008;
    /// No frame or pong within the idle timeout.
    pub const IDLE: u16 = 4001;
}

/// How the session ends a connection.
pub type Kill = oneshot::Sender<(u16, &'static str)>;

struct Conn {
    tx: mpsc::Sender<String>,
    kill: Option<Kill>,
}

type Journal = Arc<Mutex<Box<dyn JournalStore>>>;

pub struct PatientSession {
    ticket: TicketId,
    feed: TicketFeed,
    /// Usually one or two: a Vec is smaller than a map.
    conns: Vec<(u64, Conn)>,
    next_conn: u64,
    last_position: Option<(usize, Option<u64>, String)>,
    /// The ticket's patient (from the first connection's snapshot), for re-planning.
    patient: Option<crate::domain::ids::PatientId>,
    /// What was last pushed as the next stop (service, reason, wait in minutes), to push changes
    /// only.
    last_next: Option<String>,
    /// A re-plan is running; ticks meanwhile are skipped.
    planning: bool,
    /// The history is read: live commits go into the feed from now on (before, they are in the
    /// history being read).
    loaded: bool,
    /// Live guidance: where the ticket's queue is, the route being followed (the next stop's,
    /// or the way to the queue after "leave now"), whether the patient has left it, and when
    /// "leave now" was last weighed.
    guidance: Guidance,
    hub: SessionHub,
}

#[derive(Default)]
struct Guidance {
    dest: Option<String>,
    line: Option<crate::position::guidance::RouteLine>,
    follow: crate::position::guidance::Follow,
    leave: crate::position::guidance::LeaveNow,
    checking: bool,
    last_check_ms: i64,
    /// The attach snapshot's time until the call (waiting tickets), before any position round.
    snapshot_eta: Option<u64>,
}

/// How often "leave now" is weighed for a moving patient.
const LEAVE_CHECK_MS: i64 = 10_000;

impl PatientSession {
    /// Bring the feed up to date from the journal (when the session starts, and after the router
    /// fell behind the committed stream), then hand `then` the new frames. The read runs on a blocking thread, never on
    /// the thread all sessions share; this session handles nothing else meanwhile (`ctx.wait`),
    /// so its feed and its frames stay in journal order, while the other sessions go on.
    fn catch_up(&mut self, ctx: &mut Context<Self>, why: &'static str, then: fn(&mut Self, Vec<String>)) {
        self.hub.inner.metrics.push_history_reads.with_label_values(&[why]).inc();
        let journal = self.hub.inner.journal.clone();
        let (ticket, after) = (self.ticket.clone(), self.feed.last_journal_seq());
        let read = async move {
            tokio::task::spawn_blocking(move || journal.lock().unwrap_or_else(|p| p.into_inner()).ticket_events(&ticket, after))
                .await
                .unwrap_or_else(|e| Err(crate::storage::StorageError::Corrupt { seq: after, reason: format!("the history read stopped: {e}") }))
        };
        ctx.wait(read.into_actor(self).map(move |events, act, _| {
            let fresh = act.take_history(events);
            then(act, fresh);
        }));
    }

    /// The events read, into the feed; the frames they make.
    fn take_history(&mut self, events: Result<Vec<crate::storage::StoredEvent>, crate::storage::StorageError>) -> Vec<String> {
        let mut fresh = Vec::new();
        match events {
            Ok(events) => {
                for e in events {
                    if let Some(item) = self.feed.push(e.seq, &e.queue, e.at, &e.event, &self.hub.inner.hospital) {
                        fresh.push(item.text.to_string());
                    }
                }
            }
            Err(e) => tracing::error!(ticket = %self.ticket, error = %e, "reading the ticket's history"),
        }
        fresh
    }

    /// New feed items for the phones.
    fn send_fresh<'a>(&mut self, fresh: impl Iterator<Item = &'a str>) {
        let mut any = false;
        for text in fresh {
            any = true;
            self.send_all(text);
        }
        if any {
            // The place in line changed in kind (called, transferred …): the next position is news.
            self.last_position = None;
            self.guidance.snapshot_eta = None;
        }
    }

    fn send_all(&mut self, text: &str) {
        let metrics = &self.hub.inner.metrics;
        self.conns.retain_mut(|(_, c)| match c.tx.try_send(text.to_owned()) {
            Ok(()) => {
                metrics.push_messages.inc();
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                if let Some(k) = c.kill.take() {
                    let _ = k.send((close::TOO_SLOW, "outbox full: the client does not read"));
                }
                metrics.ws_disconnects.with_label_values(&["too_slow"]).inc();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
    }
}

impl Actor for PatientSession {
    type Context = Context<Self>;
}

/// Read the ticket's history: the hub sends it first, once the session is where the router
/// finds it, so a commit is either delivered live or already in the history read (or both:
/// the feed keeps one copy). No connection attaches before the feed is whole.
#[derive(Message)]
#[rtype(result = "()")]
struct Load;

impl Handler<Load> for PatientSession {
    type Result = ();
    fn handle(&mut self, _: Load, ctx: &mut Self::Context) {
        self.catch_up(ctx, "start", |act, _| act.loaded = true);
    }
}

/// A commit that touched this session's ticket, from the stream.
#[derive(Message)]
#[rtype(result = "()")]
struct Deliver(Arc<super::Committed>);

impl Handler<Deliver> for PatientSession {
    type Result = ();
    fn handle(&mut self, msg: Deliver, _: &mut Self::Context) {
        if !self.loaded {
            // Durable before it was published, so in the history about to be read.
            return;
        }
        let c = &msg.0;
        let mut fresh = Vec::new();
        for (seq, event) in c.seqs.iter().zip(&c.events) {
            if let Some(item) = self.feed.push(*seq, &c.queue, c.at, event, &self.hub.inner.hospital) {
                fresh.push(item.text.clone());
            }
        }
        let called = !fresh.is_empty() && c.events.iter().any(|e| matches!(e, crate::domain::event::Event::Called { ticket, .. } if *ticket == self.ticket));
        self.send_fresh(fresh.iter().map(|t| &**t));
        if called && !self.conns.is_empty() {
            self.hub.inner.metrics.call_to_phone_seconds.observe(c.durable.elapsed().as_secs_f64());
        }
    }
}

/// A new connection: it gets the snapshot, then the feed after `since` (if given), then live.
#[derive(Message)]
#[rtype(result = "u64")]
struct Attach {
    since: Option<u64>,
    snapshot: TicketView,
    tx: mpsc::Sender<String>,
    kill: Kill,
}

impl Handler<Attach> for PatientSession {
    type Result = u64;
    fn handle(&mut self, msg: Attach, _: &mut Self::Context) -> u64 {
        let id = self.next_conn;
        self.next_conn += 1;
        if self.patient.is_none() {
            self.patient = Some(msg.snapshot.patient_id.clone());
        }
        self.guidance.dest = Some(format!("department:{}", msg.snapshot.department));
        // The time until the call as the snapshot says, until the first position round.
        if msg.snapshot.status == crate::domain::queue::Status::Waiting {
            self.guidance.snapshot_eta = msg.snapshot.eta_secs;
        }
        let snapshot = serde_json::json!({"type": "snapshot", "seq": self.feed.last_seq(), "ticket": msg.snapshot});
        let mut first = vec![snapshot.to_string()];
        if let Some(since) = msg.since {
            first.extend(self.feed.since(since).iter().map(|i| i.text.to_string()));
        }
        let mut conn = Conn { tx: msg.tx, kill: Some(msg.kill) };
        for text in first {
            if conn.tx.try_send(text).is_err() {
                if let Some(k) = conn.kill.take() {
                    let _ = k.send((close::TOO_SLOW, "outbox full: the client does not read"));
                }
                return id;
            }
        }
        self.conns.push((id, conn));
        id
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Detach(u64);

impl Handler<Detach> for PatientSession {
    type Result = ();
    fn handle(&mut self, msg: Detach, ctx: &mut Self::Context) {
        self.conns.retain(|(id, _)| *id != msg.0);
        if self.conns.is_empty() {
            self.hub.forget(&self.ticket, &ctx.address(), self.patient.as_ref().map(|p| p.as_str()));
            ctx.stop();
        }
    }
}

/// The router fell behind the stream and commits were missed: read the ticket's new events from
/// the journal.
#[derive(Message)]
#[rtype(result = "()")]
struct CatchUp;

impl Handler<CatchUp> for PatientSession {
    type Result = ();
    fn handle(&mut self, _: CatchUp, ctx: &mut Self::Context) {
        self.catch_up(ctx, "resync", |act, fresh| act.send_fresh(fresh.iter().map(String::as_str)));
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Position {
    position: usize,
    eta_secs: Option<u64>,
    priority_ahead: usize,
    note: crate::domain::view::PositionNote,
}

impl Handler<Position> for PatientSession {
    type Result = ();
    fn handle(&mut self, msg: Position, _: &mut Self::Context) {
        let now = (msg.position, msg.eta_secs, msg.note.zh.clone());
        if self.last_position.as_ref() == Some(&now) {
            return;
        }
        self.last_position = Some(now);
        let text = serde_json::json!({
            "type": "position", "seq": self.feed.last_seq(), "ticket": self.ticket, "position": msg.position,
            "eta_secs": msg.eta_secs, "priority_ahead": msg.priority_ahead, "note": msg.note,
        });
        self.send_all(&text.to_string());
    }
}

/// Re-plan this session's patient if they have active orders (`patients`), or tell a patient
/// who had a next stop that they are done.
#[derive(Message)]
#[rtype(result = "()")]
struct Replan {
    patients: Arc<std::collections::HashSet<String>>,
    /// Why now, when it is not the regular round (`off_route`): planned and pushed even when
    /// nothing else changed.
    why: Option<&'static str>,
}

impl Handler<Replan> for PatientSession {
    type Result = ();
    fn handle(&mut self, msg: Replan, ctx: &mut Self::Context) {
        let (Some(patient), Some(guide)) = (self.patient.clone(), self.hub.inner.guide.clone()) else { return };
        if self.planning || (msg.why.is_none() && !msg.patients.contains(patient.as_str()) && self.last_next.is_none()) {
            return;
        }
        self.planning = true;
        let why = msg.why;
        let g = guide.clone();
        let fut = async move { g.next_stop(&patient, None, crate::map::Profile::Default, crate::map::model::Lang::Zh).await };
        ctx.spawn(fut.into_actor(self).map(move |res, act, _| {
            act.planning = false;
            let plan = match res {
                Ok(plan) => plan,
                Err(e) => {
                    tracing::debug!(ticket = %act.ticket, error = ?e, "re-plan");
                    return;
                }
            };
            let key = match &plan.next {
                None => "done".to_owned(),
                Some(next) => format!("{}|{}|{}", next.service, next.reasons.en, (next.expected_wait_s / 120.0).round()),
            };
            if why.is_none() && act.last_next.as_deref() == Some(key.as_str()) {
                return;
            }
            let done = key == "done";
            act.last_next = (!done).then_some(key);
            // Follow the patient along the route the phone now shows.
            act.guidance.line = plan.next.as_ref().and_then(|n| guide.route_line(&n.route));
            act.guidance.follow = Default::default();
            let text = serde_json::json!({"type": "next_stop", "seq": act.feed.last_seq(), "ticket": act.ticket, "done": done, "why": why, "plan": plan});
            act.send_all(&text.to_string());
        }));
    }
}

/// The patient's live position (at most about once a second): shown on the phone, followed
/// along the route, and weighed against the time until the call.
#[derive(Message)]
#[rtype(result = "()")]
struct Locate(Arc<super::positions::Located>);

impl Handler<Locate> for PatientSession {
    type Result = ();
    fn handle(&mut self, msg: Locate, ctx: &mut Self::Context) {
        use crate::position::guidance::OFF_ROUTE_M;
        let loc = msg.0;
        let guide = self.hub.inner.guide.clone();
        let mut frame = serde_json::json!({"type": "location", "seq": self.feed.last_seq(), "ticket": self.ticket, "location": &*loc});
        if let Some(d) = guide.as_ref().and_then(|g| g.on_drawing(&loc)) {
            frame["drawing"] = d;
        }
        let mut left_route = false;
        if let Some(line) = &self.guidance.line {
            let p = line.progress(&loc.level, loc.x, loc.y);
            let on = p.off_m <= OFF_ROUTE_M.max(2.0 * loc.spread_m);
            frame["route"] = serde_json::json!({
                "on_route": on,
                "off_m": p.off_m.is_finite().then(|| (p.off_m * 10.0).round() / 10.0),
                "remaining_m": p.remaining_m.round(), "remaining_s": p.remaining_s.round(),
            });
            left_route = self.guidance.follow.update(&p, loc.spread_m, loc.t);
        }
        self.send_all(&frame.to_string());
        if left_route {
            // Off the route for a while: plan again from where the patient is now.
            self.guidance.line = None;
            self.guidance.follow = Default::default();
            ctx.address().do_send(Replan { patients: Arc::new(Default::default()), why: Some("off_route") });
        }
        // "Leave now": a waiting ticket, a known time until the call, weighed every few seconds.
        let (Some(guide), Some(dest)) = (guide, self.guidance.dest.clone()) else { return };
        let eta = match &self.last_position {
            Some(p) => p.1,
            None => self.guidance.snapshot_eta,
        };
        let Some(eta) = eta else { return };
        if self.guidance.checking || loc.t - self.guidance.last_check_ms < LEAVE_CHECK_MS {
            return;
        }
        self.guidance.checking = true;
        self.guidance.last_check_ms = loc.t;
        let l = loc.clone();
        let fut = async move { tokio::task::spawn_blocking(move || guide.route_from(&l, &dest, crate::map::Profile::Default, crate::map::model::Lang::Zh)).await.ok().flatten() };
        ctx.spawn(fut.into_actor(self).map(move |res, act, _| {
            act.guidance.checking = false;
            let Some((route, walk_s)) = res else { return };
            // The wait may have moved while the route was computed: use the latest.
            let eta = act.last_position.as_ref().map_or(Some(eta), |p| p.1);
            let Some(eta) = eta else { return };
            if act.guidance.leave.update(walk_s, eta as f64) {
                act.guidance.line = act.hub.inner.guide.as_ref().and_then(|g| g.route_line(&route));
                act.guidance.follow = Default::default();
                let text = serde_json::json!({
                    "type": "leave_now", "seq": act.feed.last_seq(), "ticket": act.ticket,
                    "walk_s": walk_s.round(), "eta_secs": eta, "route": route,
                });
                act.send_all(&text.to_string());
            }
        }));
    }
}

struct HubInner {
    sessions: RwLock<HashMap<TicketId, Addr<PatientSession>>>,
    journal: Journal,
    hospital: Arc<Hospital>,
    metrics: Arc<Metrics>,
    /// Queues with changes since the last position round.
    dirty: Mutex<BTreeSet<QueueId>>,
    /// Patient → the tickets with a session, for live positions (which are per visit).
    by_patient: RwLock<HashMap<String, Vec<TicketId>>>,
    /// Plans next stops for patients with orders (absent in setups without the guide).
    guide: Option<super::guide::Guide>,
    /// The thread patient sessions, routers and the position ticker run on, apart from the
    /// queue actors: a burst of pushes to thousands of phones never delays a call.
    arbiter: actix_rt::ArbiterHandle,
}

/// Routes committed events to patient sessions. Cheap to clone.
#[derive(Clone)]
pub struct SessionHub {
    inner: Arc<HubInner>,
}

/// Why a connection could not attach.
#[derive(Debug, thiserror::Error)]
#[error("the patient session is unavailable")]
pub struct AttachError;

impl SessionHub {
    /// Start routing: one task follows the committed stream; one ticker sends positions.
    /// Must run inside an actix system.
    pub fn start(floor: &Floor, journal: Box<dyn JournalStore>, metrics: Arc<Metrics>, limits: PushLimits, guide: Option<super::guide::Guide>) -> Self {
        let hub = Self {
            inner: Arc::new(HubInner {
                sessions: RwLock::new(HashMap::new()),
                journal: Arc::new(Mutex::new(journal)),
                hospital: floor.hospital.clone(),
                metrics,
                dirty: Mutex::new(BTreeSet::new()),
                by_patient: RwLock::new(HashMap::new()),
                guide,
                arbiter: actix_rt::Arbiter::new().handle(),
            }),
        };
        hub.route(floor);
        let hub2 = hub.clone();
        let queues: HashMap<QueueId, QueueHandle> = floor.queues().map(|q| (q.id().clone(), q.clone())).collect();
        hub.inner.arbiter.spawn(async move {
            // Rounds are spread over the interval (a tenth of it per step) instead of one burst
            // for every queue at once; each queue is still updated at most once per interval.
            let step = limits.position_interval / 10;
            let mut tick = tokio::time::interval(step.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last: HashMap<QueueId, tokio::time::Instant> = HashMap::new();
            let per_step = queues.len().div_ceil(10).max(1);
            loop {
                tick.tick().await;
                hub2.send_positions(&queues, &mut last, per_step, limits.position_interval).await;
            }
        });
        if let Some(guide) = hub.inner.guide.clone() {
            let hub3 = hub.clone();
            hub.inner.arbiter.spawn(async move {
                let mut tick = tokio::time::interval(limits.replan_interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if hub3.sessions() == 0 {
                        continue;
                    }
                    // One query for who has active orders; only their sessions plan.
                    let store = guide.orders.clone();
                    let patients = match tokio::task::spawn_blocking(move || store.patients_with_active()).await {
                        Ok(Ok(p)) => Arc::new(p),
                        _ => continue,
                    };
                    for addr in hub3.inner.sessions.read().unwrap_or_else(|p| p.into_inner()).values() {
                        addr.do_send(Replan { patients: patients.clone(), why: None });
                    }
                }
            });
            // Live positions go to the sessions of the patient's tickets.
            let mut rx = guide.positions.subscribe();
            let hub4 = hub.clone();
            hub.inner.arbiter.spawn(async move {
                loop {
                    match rx.recv().await {
                        Ok(loc) => {
                            let tickets = hub4.inner.by_patient.read().unwrap_or_else(|p| p.into_inner()).get(&loc.patient).cloned().unwrap_or_default();
                            for addr in tickets.iter().filter_map(|t| hub4.get(t)) {
                                addr.do_send(Locate(loc.clone()));
                            }
                        }
                        // Positions are soon stale: a missed one is followed by the next.
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                }
            });
        }
        hub
    }

    /// Hand each commit to the sessions of the tickets it touched.
    fn route(&self, floor: &Floor) {
        let mut rx = floor.committed();
        let hub = self.clone();
        self.inner.arbiter.spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(c) => {
                        let tickets: BTreeSet<&TicketId> = c.events.iter().filter_map(Event::ticket).collect();
                        for addr in tickets.into_iter().filter_map(|t| hub.get(t)) {
                            addr.do_send(Deliver(c.clone()));
                        }
                        hub.inner.dirty.lock().unwrap_or_else(|p| p.into_inner()).insert(c.queue.clone());
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        // Missed events are in the journal: every session catches up from there.
                        tracing::warn!(missed = n, "push router lagged; sessions resync from the journal");
                        for addr in hub.inner.sessions.read().unwrap_or_else(|p| p.into_inner()).values() {
                            addr.do_send(CatchUp);
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
    }

    /// Send positions for up to `budget` changed queues not updated within `interval`.
    async fn send_positions(
        &self,
        queues: &HashMap<QueueId, QueueHandle>,
        last: &mut HashMap<QueueId, tokio::time::Instant>,
        budget: usize,
        interval: Duration,
    ) {
        let now = tokio::time::Instant::now();
        let due: Vec<QueueId> = {
            let mut dirty = self.inner.dirty.lock().unwrap_or_else(|p| p.into_inner());
            let due: Vec<QueueId> =
                dirty.iter().filter(|q| last.get(*q).map_or(true, |t| now.duration_since(*t) >= interval)).take(budget).cloned().collect();
            for q in &due {
                dirty.remove(q);
            }
            due
        };
        if due.is_empty() || self.inner.sessions.read().unwrap_or_else(|p| p.into_inner()).is_empty() {
            return;
        }
        for q in due {
            last.insert(q.clone(), now);
            let Some(handle) = queues.get(&q) else { continue };
            let Ok(positions) = handle.positions().await else { continue };
            {
                let sessions = self.inner.sessions.read().unwrap_or_else(|p| p.into_inner());
                for (ticket, s, note) in positions {
                    if let Some(addr) = sessions.get(&ticket) {
                        addr.do_send(Position { position: s.ahead, eta_secs: s.eta_secs, priority_ahead: s.priority_ahead, note });
                    }
                }
            }
            // Let the sessions work through this queue's updates before the next queue's.
            tokio::task::yield_now().await;
        }
    }

    fn get(&self, t: &TicketId) -> Option<Addr<PatientSession>> {
        self.inner.sessions.read().unwrap_or_else(|p| p.into_inner()).get(t).cloned()
    }

    fn forget(&self, t: &TicketId, addr: &Addr<PatientSession>, patient: Option<&str>) {
        let mut m = self.inner.sessions.write().unwrap_or_else(|p| p.into_inner());
        if m.get(t) == Some(addr) {
            m.remove(t);
            let mut by = self.inner.by_patient.write().unwrap_or_else(|p| p.into_inner());
            if let Some(ts) = patient.and_then(|p| by.get_mut(p)) {
                ts.retain(|x| x != t);
                if ts.is_empty() {
                    by.remove(patient.unwrap_or_default());
                }
            }
        }
    }

    fn session(&self, t: &TicketId) -> Addr<PatientSession> {
        let mut m = self.inner.sessions.write().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = m.get(t).filter(|a| a.connected()) {
            return a.clone();
        }
        let addr = PatientSession {
            ticket: t.clone(),
            feed: TicketFeed::new(t.clone()),
            conns: Vec::new(),
            next_conn: 0,
            last_position: None,
            patient: None,
            last_next: None,
            planning: false,
            loaded: false,
            guidance: Guidance::default(),
            hub: self.clone(),
        };
        let addr = PatientSession::start_in_arbiter(&self.inner.arbiter, move |_| addr);
        m.insert(t.clone(), addr.clone());
        // Found by the router from here on: now read the history.
        addr.do_send(Load);
        addr
    }

    /// Attach a connection to the ticket's session (started if needed). Returns the session's
    /// address, the connection id (for `detach`) and the receiver the session uses to end the
    /// connection (close code and reason).
    pub async fn attach(
        &self,
        ticket: &TicketId,
        since: Option<u64>,
        snapshot: TicketView,
        tx: mpsc::Sender<String>,
    ) -> Result<(Addr<PatientSession>, u64, oneshot::Receiver<(u16, &'static str)>), AttachError> {
        // A session that is stopping (its last connection just left) refuses; start a new one.
        for _ in 0..3 {
            let addr = self.session(ticket);
            let (kill, killed) = oneshot::channel();
            match addr.send(Attach { since, snapshot: snapshot.clone(), tx: tx.clone(), kill }).await {
                Ok(id) => {
                    let mut by = self.inner.by_patient.write().unwrap_or_else(|p| p.into_inner());
                    let ts = by.entry(snapshot.patient_id.as_str().to_owned()).or_default();
                    if !ts.contains(ticket) {
                        ts.push(ticket.clone());
                    }
                    drop(by);
                    self.inner.metrics.ws_connections.inc();
                    return Ok((addr, id, killed));
                }
                Err(_) => self.forget(ticket, &addr, Some(snapshot.patient_id.as_str())),
            }
        }
        Err(AttachError)
    }

    pub fn detach(&self, addr: &Addr<PatientSession>, conn: u64) {
        self.inner.metrics.ws_connections.dec();
        addr.do_send(Detach(conn));
    }

    pub fn sessions(&self) -> usize {
        self.inner.sessions.read().unwrap_or_else(|p| p.into_inner()).len()
    }
}
