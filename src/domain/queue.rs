//! One queue's state machine: pure, deterministic, time passed in.
//!
//! `decide(cmd, now)` checks a command against the state and returns the events it causes
//! without changing anything; `apply(event)` changes the state and cannot fail. The actor calls
//! `decide`, journals the events, and applies them; start-up applies the journal. So the state
//! after a restart is exactly the state before it.

use super::command::{Command, Idempotency, IssueTicket};
use super::config::{DayEnd, LateReturn, QueuePolicy, QueueSpec};
use super::fair::Chooser;
use super::error::QueueError;
use super::event::{Event, Pos, TicketData, UnixMs, VisitKind, KEY_SCALE};
use super::ids::{DoctorId, QueueId, RoomId, TicketId};
use super::line::{self, Entry, Line};
use chrono::{NaiveDate, TimeZone};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Where a ticket is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Has an appointment, has not checked in (报到) yet.
    Booked,
    Waiting,
    Called,
    InService,
    Completed,
    /// Called and did not come (过号). Checking in again puts them back in line.
    Missed,
    Transferred,
    Cancelled,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        f.write_str(&s)
    }
}

/// `(rank, band, slot start, key, placement)`: see [`Pos`]. The reference definition of the
/// calling order, against which tests check the [`Line`] index.
#[cfg(test)]
pub(crate) type SortKey = (u8, u8, i64, i64, u64);

/// A ticket as this queue knows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ticket {
    #[serde(flatten)]
    pub data: TicketData,
    pub status: Status,
    /// Room that called it (while called, in service, and after).
    pub room: Option<RoomId>,
    pub called_at: Option<UnixMs>,
    /// The latest call or recall.
    pub last_call_at: Option<UnixMs>,
    /// When it was last marked missed.
    pub missed_at: Option<UnixMs>,
    pub started_at: Option<UnixMs>,
    pub finished_at: Option<UnixMs>,
    /// Times called, recalls included.
    pub calls: u32,
    /// Calls in the current round: 1 at the call, one more per recall (the recall and no-show
    /// rules count these).
    pub round_calls: u32,
    pub misses: u32,
    pub precalled: bool,
    pub transferred_to: Option<QueueId>,
    /// Order among the waiting; `None` when not waiting.
    #[serde(skip)]
    pub pos: Option<Pos>,
    /// Tie-break: later placements go after earlier ones with the same key.
    #[serde(skip)]
    pub placement: u64,
}

impl Ticket {
    #[cfg(test)]
    pub(crate) fn sort_key(&self, now: UnixMs) -> SortKey {
        let p = self.pos.unwrap_or(Pos { rank: u8::MAX, slot_start: None, key: i64::MAX });
        match p.slot_start {
            Some(s) if s <= now => (p.rank, 0, s, p.key, self.placement),
            _ => (p.rank, 1, 0, p.key, self.placement),
        }
    }

    /// May a room with `doctor` call this ticket?
    fn callable_by(&self, doctor: Option<&DoctorId>) -> bool {
        match &self.data.doctor {
            None => true,
            Some(d) => Some(d) == doctor,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct RoomState {
    pub paused: bool,
    /// The ticket called or in service in this room now.
    pub current: Option<TicketId>,
}

/// A command's result: the events to journal and the ticket it acted on.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub events: Vec<Event>,
    /// The ticket the command is about (the called one for call-next; `None` if nobody waits).
    pub subject: Option<TicketId>,
    /// True when an idempotent retry was recognised: nothing new happens.
    pub replayed: bool,
}

/// One queue's live state for the current service day.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueState {
    spec: Arc<QueueSpec>,
    day: Option<NaiveDate>,
    /// Numbers issued today (the next number is this + 1).
    issued: u32,
    tickets: BTreeMap<TicketId, Ticket>,
    rooms: BTreeMap<RoomId, RoomState>,
    /// Moving average of service time, ms.
    ewma_service_ms: f64,
    placements: u64,
    /// The largest place key in use: a new check-in's key is above it, so two check-ins in the
    /// same millisecond still leave room to insert between them (a missed patient's return).
    last_key: i64,
    idempotency: BTreeMap<String, (String, Option<TicketId>)>,
    /// The waiting tickets in plain order, kept by `apply`.
    line: Line,
    /// Priority calls in a row since the last normal one (for the interleave rule).
    streak: u32,
    /// Calls and recalls today: the number of the latest call (displays acknowledge by it).
    calls_today: u32,
    /// Fingerprint of the config file's policy, which a journaled policy change replaced.
    config_policy: String,
}

/// A ticket's place in line and expected wait.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Standing {
    /// Patients who will be called before this one (0 = next).
    pub ahead: usize,
    /// Of those, patients of a priority or urgent class.
    pub priority_ahead: usize,
    /// Expected seconds until called; `None` when every room that could call it is paused.
    pub eta_secs: Option<u64>,
    /// Times a later arrival was called before it.
    pub passed_over: u32,
    /// Moved up a rank by waiting (ageing).
    pub aged: bool,
}

/// How many picks of the calling order the head projection makes before it falls back to
/// projecting the whole line (enough for every display's list and the pre-call position).
const HEAD: usize = 8;

/// The fingerprint of a policy (which config policy a journaled change replaced).
pub fn policy_fingerprint(p: &QueuePolicy) -> String {
    use sha2::{Digest, Sha256};
    let json = serde_json::to_vec(p).unwrap_or_default();
    let d = Sha256::digest(&json);
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

impl QueueState {
    pub fn new(spec: Arc<QueueSpec>) -> Self {
        let rooms = spec.rooms.keys().map(|r| (r.clone(), RoomState::default())).collect();
        let ewma = f64::from(spec.policy.default_service_secs) * 1000.0;
        let config_policy = policy_fingerprint(&spec.policy);
        Self {
            spec,
            day: None,
            issued: 0,
            tickets: BTreeMap::new(),
            rooms,
            ewma_service_ms: ewma,
            placements: 0,
            last_key: i64::MIN,
            idempotency: BTreeMap::new(),
            line: Line::default(),
            streak: 0,
            calls_today: 0,
            config_policy,
        }
    }

    pub fn policy(&self) -> &QueuePolicy {
        &self.spec.policy
    }

    /// The fingerprint a [`Event::PolicyChanged`] names as its base.
    pub fn config_policy_fingerprint(&self) -> &str {
        &self.config_policy
    }

    fn chooser(&self, now: UnixMs) -> Chooser<'_> {
        Chooser { rules: &self.spec.policy.fairness, ranks: &self.spec.ranks, now }
    }

    /// Waiting entries in the order they will be called (the fairness rules applied to the
    /// plain order), as if rooms that can call anyone kept calling now.
    pub(super) fn calling_order(&self, now: UnixMs) -> Box<dyn Iterator<Item = &Entry> + '_> {
        if !self.spec.policy.fairness.active() {
            return Box::new(self.line.iter(now));
        }
        let plain: Vec<&Entry> = self.line.iter(now).collect();
        self.chooser(now).project(plain, self.streak)
    }

    /// The calling order when only its head is wanted: the first `k` from a projection of the
    /// line's front ([`Line::front`]: the first `k` per rank, and the tickets the overtake cap
    /// may reach), which does not grow with the line; further ones, if asked for, from the
    /// whole line's (the same order: a property test holds the two equal).
    pub(super) fn calling_head(&self, now: UnixMs, k: usize) -> Box<dyn Iterator<Item = &Entry> + '_> {
        let fairness = &self.spec.policy.fairness;
        if !fairness.active() {
            return Box::new(self.line.iter(now));
        }
        // Within `k` picks a ticket is passed over at most `k - 1` more times.
        let cap_from = fairness.max_overtakes.map(|c| c.saturating_sub(k.saturating_sub(1) as u32));
        let front = self.line.front(now, k, cap_from, |_| true);
        let head = self.chooser(now).project(front, self.streak).take(k);
        Box::new(head.chain(std::iter::once(()).flat_map(move |()| self.calling_order(now).skip(k))))
    }

    pub fn spec(&self) -> &Arc<QueueSpec> {
        &self.spec
    }
    pub fn id(&self) -> &QueueId {
        &self.spec.id
    }
    pub fn ticket(&self, id: &TicketId) -> Option<&Ticket> {
        self.tickets.get(id)
    }
    pub fn tickets(&self) -> impl Iterator<Item = &Ticket> {
        self.tickets.values()
    }
    pub fn rooms(&self) -> &BTreeMap<RoomId, RoomState> {
        &self.rooms
    }
    pub fn service_day(&self) -> Option<NaiveDate> {
        self.day
    }
    pub fn waiting_count(&self) -> usize {
        self.line.len()
    }
    pub fn mean_service_secs(&self) -> f64 {
        self.ewma_service_ms / 1000.0
    }

    /// The local date of `now` in the hospital's time zone.
    pub fn day_of(&self, now: UnixMs) -> NaiveDate {
        match self.spec.tz.timestamp_millis_opt(now) {
            chrono::LocalResult::Single(t) => t.date_naive(),
            // Out of chrono's range: keep the current day rather than invent one.
            _ => self.day.unwrap_or_default(),
        }
    }

    /// Waiting tickets in calling order at `now`.
    pub fn waiting_order(&self, now: UnixMs) -> Vec<&Ticket> {
        self.calling(now).collect()
    }

    /// Waiting tickets in calling order at `now`, one at a time (to take only the head).
    pub fn calling(&self, now: UnixMs) -> impl Iterator<Item = &Ticket> + '_ {
        self.calling_order(now).filter_map(|e| self.tickets.get(&e.id))
    }

    /// Whom a room with `doctor` calls next at `now`: the front of what it may call, or the
    /// fairness rules' pick among the candidates [`Line::front`] gives for one pick (or, with
    /// `whole`, among everyone it may call: the reference the property tests hold it to).
    pub(super) fn next_for(&self, doctor: Option<&DoctorId>, now: UnixMs, whole: bool) -> Option<&Entry> {
        let callable = |e: &Entry| e.callable_by(doctor);
        let fairness = &self.spec.policy.fairness;
        if !fairness.active() {
            return self.line.iter(now).find(|e| callable(e)); // the front of the line
        }
        let cands: Vec<&Entry> = if whole { self.line.iter(now).filter(|e| callable(e)).collect() } else { self.line.front(now, 1, fairness.max_overtakes, callable) };
        self.chooser(now).pick(&cands, self.streak, |i| cands[i].overtakes).map(|(i, _)| cands[i])
    }

    /// The head of the calling order, for those who look at the first few only (displays,
    /// "you are next"): its cost does not grow with the line (see [`QueueState::calling_head`]).
    pub fn calling_front(&self, now: UnixMs) -> impl Iterator<Item = &Ticket> + '_ {
        self.calling_head(now, HEAD).filter_map(|e| self.tickets.get(&e.id))
    }

    /// The number the next call or recall of the day gets.
    fn next_call(&self, new_day: bool) -> u32 {
        if new_day {
            1
        } else {
            self.calls_today.saturating_add(1)
        }
    }

    /// Calls and recalls made today.
    pub fn calls_today(&self) -> u32 {
        self.calls_today
    }

    /// Priority calls in a row since the last normal call.
    pub fn priority_streak(&self) -> u32 {
        self.streak
    }

    /// Times a waiting ticket has been passed over by later arrivals.
    pub fn passed_over(&self, t: &Ticket) -> u32 {
        t.pos.and_then(|p| self.line.get(p, t.placement)).map_or(0, |e| e.overtakes)
    }

    /// Rooms that may call `t` and are not paused.
    fn active_rooms_for(&self, t: &Ticket) -> usize {
        self.spec
            .rooms
            .values()
            .filter(|r| !self.rooms.get(&r.id).map_or(false, |s| s.paused))
            .filter(|r| t.callable_by(r.doctor.as_ref()))
            .count()
    }

    /// Place in line and ETA of a waiting ticket.
    pub fn standing(&self, id: &TicketId, now: UnixMs) -> Option<Standing> {
        let t = self.tickets.get(id).filter(|t| t.status == Status::Waiting)?;
        // Without fairness rules the calling order is the plain order: the last of a rank (the
        // ticket just issued, usually) is counted, not walked to.
        if !self.spec.policy.fairness.active() {
            let pos = t.pos?;
            if let Some((ahead, priority_ahead)) = self.line.counted_place(pos, t.placement, t.data.doctor.as_ref(), self.spec.ranks.normal, now) {
                let e = self.line.get(pos, t.placement)?;
                return Some(self.standing_of(t, e, ahead, priority_ahead, now));
            }
        }
        self.standing_walked(t, now)
    }

    /// The standing found by walking the calling order as far as the ticket, looking at nothing
    /// but the line's entries on the way (the ticket and its ETA are read once, at the end).
    pub(super) fn standing_walked(&self, t: &Ticket, now: UnixMs) -> Option<Standing> {
        let (e, ahead, priority_ahead) = self.places(now).find(|(u, _, _)| u.placement == t.placement)?;
        Some(self.standing_of(t, e, ahead, priority_ahead, now))
    }

    /// Every waiting ticket's standing, in calling order, from one projection of the line.
    pub fn standings(&self, now: UnixMs) -> Vec<(&Ticket, Standing)> {
        self.places(now)
            .filter_map(|(e, ahead, prio)| self.tickets.get(&e.id).map(|t| (t, self.standing_of(t, e, ahead, prio, now))))
            .collect()
    }

    fn standing_of(&self, t: &Ticket, e: &Entry, ahead: usize, priority_ahead: usize, now: UnixMs) -> Standing {
        let aged = self.chooser(now).effective_rank(e) < e.pos.rank;
        Standing { ahead, priority_ahead, eta_secs: self.eta_secs(t, ahead), passed_over: e.overtakes, aged }
    }

    /// The calling order with, for each entry, the patients ahead of it and how many of those
    /// are of a priority or urgent class (counted like `ahead`: everyone before a pooled ticket;
    /// the pooled ones and the same doctor's before a doctor-bound one).
    fn places(&self, now: UnixMs) -> impl Iterator<Item = (&Entry, usize, usize)> + '_ {
        let normal = self.spec.ranks.normal;
        let (mut prio_total, mut prio_pooled) = (0usize, 0usize);
        let mut prio_by_doctor: BTreeMap<&DoctorId, usize> = BTreeMap::new();
        line::with_ahead(self.calling_order(now)).map(move |(e, ahead)| {
            let priority_ahead = match &e.doctor {
                None => prio_total,
                Some(d) => prio_pooled + prio_by_doctor.get(d).copied().unwrap_or(0),
            };
            if e.pos.rank < normal {
                prio_total += 1;
                match &e.doctor {
                    None => prio_pooled += 1,
                    Some(d) => *prio_by_doctor.entry(d).or_default() += 1,
                }
            }
            (e, ahead, priority_ahead)
        })
    }

    /// Expected seconds until `t` is called with `ahead` patients before it: their turns shared
    /// by the active rooms that may call it, plus half a service for the room to free up.
    pub fn eta_secs(&self, t: &Ticket, ahead: usize) -> Option<u64> {
        let active = self.active_rooms_for(t);
        (active > 0).then(|| {
            let turns = ahead as f64 / active as f64 + 0.5;
            (turns * self.ewma_service_ms / 1000.0).round() as u64
        })
    }

    fn get(&self, id: &TicketId) -> Result<&Ticket, QueueError> {
        let t = self.tickets.get(id).ok_or_else(|| QueueError::UnknownTicket(id.clone()))?;
        if let (Status::Transferred, Some(to)) = (t.status, &t.transferred_to) {
            return Err(QueueError::Transferred { ticket: id.clone(), to: to.clone() });
        }
        Ok(t)
    }

    fn expect(&self, id: &TicketId, allowed: &[Status], action: &'static str) -> Result<&Ticket, QueueError> {
        let t = self.get(id)?;
        if allowed.contains(&t.status) {
            Ok(t)
        } else {
            Err(QueueError::IllegalTransition { ticket: id.clone(), status: t.status, action })
        }
    }

    fn room(&self, room: &RoomId) -> Result<&RoomState, QueueError> {
        self.rooms.get(room).ok_or_else(|| QueueError::UnknownRoom { room: room.clone(), queue: self.spec.id.clone() })
    }

    fn normal_pos(&self, t: &TicketData, checked_in_at: UnixMs, honour_slot: bool) -> Pos {
        Pos {
            rank: self.spec.rank_of(&t.class).unwrap_or(u8::MAX),
            slot_start: if honour_slot { t.slot.map(|s| s.start) } else { None },
            key: checked_in_at.saturating_mul(KEY_SCALE),
        }
    }

    /// A check-in now: by its time, after every key already in use (check-ins in the same
    /// millisecond get distinct keys, and a clock stepping back never reorders the line).
    fn fresh_pos(&self, t: &TicketData, now: UnixMs, honour_slot: bool) -> Pos {
        let p = self.normal_pos(t, now, honour_slot);
        Pos { key: p.key.max(self.last_key.saturating_add(1)), ..p }
    }

    /// The position just after the `n`-th waiting ticket that passes `filter` (or after the last
    /// of them when fewer wait); `fallback` when none does.
    fn pos_after(&self, n: u32, exclude: &TicketId, filter: impl Fn(&Ticket) -> bool, now: UnixMs, fallback: Pos) -> Pos {
        let order: Vec<&Ticket> = self.waiting_order(now).into_iter().filter(|t| &t.data.id != exclude).collect();
        let matching: Vec<usize> = order.iter().enumerate().filter(|(_, t)| filter(t)).map(|(i, _)| i).collect();
        if n == 0 {
            // In front of everyone it may be called with.
            return match matching.first().and_then(|&i| order[i].pos) {
                Some(p) => Pos { key: p.key.saturating_sub(1), ..p },
                None => fallback,
            };
        }
        let Some(&prev_idx) = matching.get((n as usize).min(matching.len()).wrapping_sub(1)) else {
            return fallback;
        };
        let Some(prev) = order[prev_idx].pos else { return fallback };
        let key = match order.get(prev_idx + 1).and_then(|t| t.pos) {
            Some(next) if next.rank == prev.rank && next.slot_start == prev.slot_start && next.key > prev.key + 1 => {
                prev.key + (next.key - prev.key) / 2
            }
            // Same key as `prev`; the later placement breaks the tie after it.
            Some(next) if next.rank == prev.rank && next.slot_start == prev.slot_start => prev.key,
            _ => prev.key.saturating_add(1),
        };
        Pos { key, ..prev }
    }

    /// The position a checking-in ticket takes: by slot and check-in time, or by the
    /// late-arrival rule, or re-inserted after a miss.
    fn check_in_pos(&self, t: &Ticket, now: UnixMs) -> (Pos, bool, bool) {
        let policy = &self.spec.policy;
        if t.status == Status::Missed {
            let fallback = self.fresh_pos(&t.data, now, false);
            if !self.within_return_window(t, now) {
                return (fallback, false, false);
            }
            return (self.pos_after(policy.missed_reinsert_after, &t.data.id, |_| true, now, fallback), false, true);
        }
        let late = t.data.slot.is_some_and(|s| now > s.end);
        if late {
            let fallback = self.fresh_pos(&t.data, now, false);
            let pos = match policy.late_arrival {
                super::config::LateArrival::WalkIn => fallback,
                super::config::LateArrival::InsertAfter { n } => self.pos_after(n, &t.data.id, |_| true, now, fallback),
            };
            return (pos, true, false);
        }
        (self.fresh_pos(&t.data, now, true), false, false)
    }

    /// Is a missed ticket checking in again within the policy's return window?
    fn within_return_window(&self, t: &Ticket, now: UnixMs) -> bool {
        match (self.spec.policy.calls.return_window_secs, t.missed_at) {
            (Some(w), Some(at)) => now.saturating_sub(at) <= i64::from(w) * 1000,
            _ => true,
        }
    }

    /// Called tickets the no-show rule marks missed at `now`: called `auto_miss_after_calls`
    /// times, not started, and `grace_secs` past the last call. The actor turns each into a
    /// `Command::AutoMiss`, checked again by `decide`.
    pub fn overdue(&self, now: UnixMs) -> Vec<TicketId> {
        let rules = &self.spec.policy.calls;
        let Some(n) = rules.auto_miss_after_calls else { return vec![] };
        let grace = i64::from(rules.grace_secs) * 1000;
        self.rooms
            .values()
            .filter_map(|r| r.current.as_ref())
            .filter_map(|id| self.tickets.get(id))
            .filter(|t| t.status == Status::Called && t.round_calls >= n)
            .filter(|t| t.last_call_at.is_some_and(|at| now.saturating_sub(at) >= grace))
            .map(|t| t.data.id.clone())
            .collect()
    }

    /// Check a command against the state; the events it causes, or why it is refused.
    /// Nothing changes until the events are applied.
    pub fn decide(&self, cmd: &Command, idem: Option<&Idempotency>, now: UnixMs) -> Result<Decision, QueueError> {
        if let Some(i) = idem {
            if let Some((fp, ticket)) = self.idempotency.get(&i.key) {
                if self.day == Some(self.day_of(now)) {
                    return if *fp == i.fingerprint {
                        Ok(Decision { events: vec![], subject: ticket.clone(), replayed: true })
                    } else {
                        Err(QueueError::IdempotencyConflict(i.key.clone()))
                    };
                }
            }
        }
        let mut events = Vec::new();
        let today = self.day_of(now);
        let new_day = self.day != Some(today);
        if new_day {
            // The day-end rule for what yesterday left open, then the new day, then what carries.
            if self.day.is_some() && self.spec.policy.day_end == DayEnd::Cancel {
                use Status::*;
                let open = self.tickets.values().filter(|t| matches!(t.status, Booked | Waiting | Called | Missed));
                events.extend(open.map(|t| Event::Cancelled { ticket: t.data.id.clone() }));
            }
            events.push(Event::DayStarted { day: today });
            events.extend(
                self.carried(now).into_iter().filter_map(|t| Some(Event::CarriedOver { ticket: t.data.clone(), seq: self.seq_of(t), pos: t.pos? })),
            );
        }
        let mut subject = self.decide_inner(cmd, now, new_day, &mut events)?;
        if matches!(cmd, Command::CallNext { .. }) && subject.is_none() {
            events.clear(); // nobody waits: nothing happens, not even a day change
        }
        if let Some(i) = idem {
            if !events.is_empty() {
                events.push(Event::IdempotencyRecorded { key: i.key.clone(), fingerprint: i.fingerprint.clone(), ticket: subject.clone() });
            }
        }
        if let Command::Issue(IssueTicket { ticket, .. }) = cmd {
            subject = Some(ticket.clone());
        }
        Ok(Decision { events, subject, replayed: false })
    }

    /// Tickets the `carry` day-end rule takes into a new day: the waiting ones, in plain order.
    fn carried(&self, now: UnixMs) -> Vec<&Ticket> {
        if self.day.is_none() || self.spec.policy.day_end != DayEnd::Carry {
            return vec![];
        }
        self.line.iter(now).filter_map(|e| self.tickets.get(&e.id)).collect()
    }

    /// The day's sequence number of a ticket (`A087` → 87).
    fn seq_of(&self, t: &Ticket) -> u32 {
        t.data.number.get(self.spec.prefix.len()..).and_then(|d| d.parse().ok()).unwrap_or(0)
    }

    fn decide_inner(&self, cmd: &Command, now: UnixMs, new_day: bool, ev: &mut Vec<Event>) -> Result<Option<TicketId>, QueueError> {
        use Status::*;
        // On a new day yesterday's tickets are gone (unless carried); refer to them as unknown.
        let carried = if new_day { self.carried(now) } else { vec![] };
        let fresh = |id: &TicketId| -> Result<(), QueueError> {
            if new_day && !carried.iter().any(|t| &t.data.id == id) {
                Err(QueueError::UnknownTicket(id.clone()))
            } else {
                Ok(())
            }
        };
        match cmd {
            Command::Issue(i) => {
                if !new_day && self.tickets.contains_key(&i.ticket) {
                    return Err(QueueError::DuplicateTicket(i.ticket.clone()));
                }
                if self.spec.rank_of(&i.class).is_none() {
                    return Err(QueueError::UnknownClass(i.class.clone()));
                }
                if let Some(s) = i.slot {
                    if s.end <= s.start {
                        return Err(QueueError::BadSlot);
                    }
                }
                if let Some(d) = &i.doctor {
                    if !self.spec.rooms.values().any(|r| r.doctor.as_ref() == Some(d)) {
                        return Err(QueueError::UnknownDoctor(d.clone()));
                    }
                }
                let base = if new_day { carried.iter().map(|t| self.seq_of(t)).max().unwrap_or(0) } else { self.issued };
                // A later stop of a visit keeps the visit's number and uses none of this queue's:
                // prefixes are unique per queue, so the number cannot collide with one issued here.
                let (seq, number) = match &i.visit {
                    Some((_, n)) => {
                        let letters = n.bytes().take_while(u8::is_ascii_uppercase).count();
                        let ok = (1..=4).contains(&letters)
                            && n.len() > letters
                            && n.len() <= 12
                            && n.bytes().skip(letters).all(|b| b.is_ascii_digit())
                            // This queue's own number only when it is this patient's already.
                            && (n[..letters] != self.spec.prefix || self.tickets.values().any(|t| &t.data.number == n && t.data.patient == i.patient));
                        if !ok {
                            return Err(QueueError::BadVisitNumber(n.clone()));
                        }
                        (base, n.clone())
                    }
                    None => (base + 1, format!("{}{:03}", self.spec.prefix, base + 1)),
                };
                let data = TicketData {
                    id: i.ticket.clone(),
                    number,
                    patient: i.patient.clone(),
                    name: i.name.clone(),
                    class: i.class.clone(),
                    slot: i.slot,
                    doctor: i.doctor.clone(),
                    kind: VisitKind::First,
                    issued_at: now,
                    checked_in_at: i.check_in.then_some(i.at.map_or(now, |a| a.min(now))),
                    visit: i.visit.as_ref().map(|(v, _)| v.clone()),
                    his: i.his.clone(),
                };
                let pos = match (i.check_in, i.at) {
                    (false, _) => None,
                    // Registered earlier by the HIS's clock: placed by that time among the others.
                    (true, Some(at)) => Some(self.normal_pos(&data, at.min(now), true)),
                    (true, None) => {
                        let as_ticket = self.blank(data.clone());
                        Some(if new_day { self.fresh_pos(&data, now, true) } else { self.check_in_pos(&as_ticket, now).0 })
                    }
                };
                ev.push(Event::TicketIssued { ticket: data, seq, pos });
                Ok(Some(i.ticket.clone()))
            }
            Command::CheckIn { ticket, at } => {
                fresh(ticket)?;
                let t = self.expect(ticket, &[Booked, Missed], "check in")?;
                if t.status == Missed {
                    let rules = &self.spec.policy.calls;
                    if let Some(max) = rules.max_misses {
                        if t.misses >= max {
                            return Err(QueueError::TooManyMisses { ticket: ticket.clone(), misses: t.misses });
                        }
                    }
                    if rules.late_return == LateReturn::Refuse && !self.within_return_window(t, now) {
                        return Err(QueueError::ReturnWindowClosed(ticket.clone()));
                    }
                }
                let (pos, late, reinserted) = match (t.status, at) {
                    // A booked patient who checked in at the HIS earlier is placed by that time
                    // among the others (a late one by the late-arrival rule, as any other).
                    (Booked, Some(a)) => {
                        let when = (*a).min(now);
                        match self.check_in_pos(t, when) {
                            (p, true, r) => (p, true, r),
                            _ => (self.normal_pos(&t.data, when, true), false, false),
                        }
                    }
                    _ => self.check_in_pos(t, now),
                };
                ev.push(Event::CheckedIn { ticket: ticket.clone(), pos, late, reinserted });
                Ok(Some(ticket.clone()))
            }
            Command::CallNext { room, caller } => {
                let rs = self.room(room)?;
                if rs.paused {
                    return Err(QueueError::RoomPaused(room.clone()));
                }
                if new_day && carried.is_empty() {
                    return Ok(None); // yesterday's line is closed
                }
                let doctor = self.spec.rooms.get(room).and_then(|r| r.doctor.as_ref());
                let Some(next) = self.next_for(doctor, now, false).and_then(|e| self.tickets.get(&e.id)) else { return Ok(None) };
                // Pressing "next" finishes whoever the room was seeing.
                if let Some(cur) = rs.current.as_ref().and_then(|c| self.tickets.get(c)) {
                    if matches!(cur.status, Called | InService) {
                        ev.push(self.completion(cur, room, now));
                    }
                }
                ev.push(Event::Called { ticket: next.data.id.clone(), room: room.clone(), caller: caller.clone(), call: self.next_call(new_day) });
                Ok(Some(next.data.id.clone()))
            }
            Command::Recall { ticket } | Command::Start { ticket } | Command::Skip { ticket } | Command::AutoMiss { ticket } => {
                fresh(ticket)?;
                let t = self.expect(ticket, &[Called], cmd.name())?;
                if let Command::Recall { .. } = cmd {
                    self.check_recall(t, now)?;
                }
                if let Command::AutoMiss { .. } = cmd {
                    if !self.overdue(now).contains(ticket) {
                        return Err(QueueError::NotOverdue(ticket.clone()));
                    }
                }
                let (ticket, room) = (ticket.clone(), t.room.clone().unwrap_or_else(unreachable_room));
                ev.push(match cmd {
                    Command::Recall { .. } => Event::Recalled { ticket: ticket.clone(), room, call: self.next_call(new_day) },
                    Command::Start { .. } => Event::Started { ticket: ticket.clone(), room },
                    Command::AutoMiss { .. } => Event::Missed { ticket: ticket.clone(), room, auto: true },
                    _ => Event::Missed { ticket: ticket.clone(), room, auto: false },
                });
                Ok(Some(ticket))
            }
            Command::SetPolicy { policy } => {
                policy.validate(&self.spec.ranks).map_err(QueueError::BadPolicy)?;
                if *policy == self.spec.policy {
                    return Ok(None);
                }
                ev.push(Event::PolicyChanged { policy: Box::new(policy.clone()), base: self.config_policy.clone() });
                Ok(None)
            }
            Command::Complete { ticket } => {
                fresh(ticket)?;
                let t = self.expect(ticket, &[Called, InService], "complete")?;
                let room = t.room.clone().unwrap_or_else(unreachable_room);
                ev.push(self.completion(t, &room, now));
                Ok(Some(ticket.clone()))
            }
            Command::Cancel { ticket } => {
                fresh(ticket)?;
                self.expect(ticket, &[Booked, Waiting, Called, Missed], "cancel")?;
                ev.push(Event::Cancelled { ticket: ticket.clone() });
                Ok(Some(ticket.clone()))
            }
            Command::TransferOut { ticket, to } => {
                fresh(ticket)?;
                if to == &self.spec.id {
                    return Err(QueueError::SameQueue);
                }
                self.expect(ticket, &[Booked, Waiting, Called, InService, Missed], "transfer")?;
                ev.push(Event::TransferredOut { ticket: ticket.clone(), to: to.clone() });
                Ok(Some(ticket.clone()))
            }
            Command::TransferIn { ticket, from } => {
                if let Some(t) = self.tickets.get(&ticket.id).filter(|_| !new_day) {
                    if t.status != Transferred {
                        return Err(QueueError::DuplicateTicket(ticket.id.clone()));
                    }
                }
                if self.spec.rank_of(&ticket.class).is_none() {
                    return Err(QueueError::UnknownClass(ticket.class.clone()));
                }
                let mut data = ticket.clone();
                // The slot and doctor belonged to the other queue.
                data.slot = None;
                if data.doctor.as_ref().is_some_and(|d| !self.spec.rooms.values().any(|r| r.doctor.as_ref() == Some(d))) {
                    data.doctor = None;
                }
                // Keeps its original check-in time, so it does not go to the back of the line.
                let pos = data.checked_in_at.map(|at| self.normal_pos(&data, at, false));
                ev.push(Event::TransferredIn { ticket: data, from: from.clone(), pos });
                Ok(Some(ticket.id.clone()))
            }
            Command::Return { ticket, doctor } => {
                fresh(ticket)?;
                let t = self.expect(ticket, &[Completed], "return")?;
                let doctor = doctor
                    .clone()
                    .or_else(|| t.room.as_ref().and_then(|r| self.spec.rooms.get(r)).and_then(|r| r.doctor.clone()));
                if let Some(d) = &doctor {
                    if !self.spec.rooms.values().any(|r| r.doctor.as_ref() == Some(d)) {
                        return Err(QueueError::UnknownDoctor(d.clone()));
                    }
                }
                let fallback = self.fresh_pos(&t.data, now, false);
                let same_doctor = |u: &Ticket| u.callable_by(doctor.as_ref());
                let pos = self.pos_after(self.spec.policy.return_insert_after, ticket, same_doctor, now, fallback);
                ev.push(Event::Returned { ticket: ticket.clone(), doctor, pos });
                Ok(Some(ticket.clone()))
            }
            Command::PauseRoom { room } => {
                if !self.room(room)?.paused {
                    ev.push(Event::RoomPaused { room: room.clone() });
                }
                Ok(None)
            }
            Command::ResumeRoom { room } => {
                if self.room(room)?.paused {
                    ev.push(Event::RoomResumed { room: room.clone() });
                }
                Ok(None)
            }
        }
    }

    /// The recall limits: how many, and how soon after the last call.
    fn check_recall(&self, t: &Ticket, now: UnixMs) -> Result<(), QueueError> {
        let rules = &self.spec.policy.calls;
        if let Some(max) = rules.max_recalls {
            if t.round_calls > max {
                return Err(QueueError::RecallLimit { ticket: t.data.id.clone(), max });
            }
        }
        let gap = i64::from(rules.min_recall_interval_secs) * 1000;
        if let Some(at) = t.last_call_at {
            let since = now.saturating_sub(at);
            if since < gap {
                let wait_secs = ((gap - since) as u64).div_ceil(1000);
                return Err(QueueError::RecallTooSoon { ticket: t.data.id.clone(), wait_secs });
            }
        }
        Ok(())
    }

    fn completion(&self, t: &Ticket, room: &RoomId, now: UnixMs) -> Event {
        let began = t.started_at.or(t.called_at);
        Event::Completed { ticket: t.data.id.clone(), room: room.clone(), service_ms: began.map(|b| (now - b).max(0)) }
    }

    fn blank(&self, data: TicketData) -> Ticket {
        Ticket {
            data,
            status: Status::Booked,
            room: None,
            called_at: None,
            last_call_at: None,
            missed_at: None,
            started_at: None,
            finished_at: None,
            calls: 0,
            round_calls: 0,
            misses: 0,
            precalled: false,
            transferred_to: None,
            pos: None,
            placement: 0,
        }
    }

    /// "You are next" (二次候诊) for waiting tickets now within the pre-call position that have not
    /// had it yet. Run after a command's events are applied; its events are journaled with them.
    pub fn precalls(&self, now: UnixMs) -> Vec<Event> {
        let k = self.spec.policy.precall_position as usize;
        if k == 0 {
            return vec![];
        }
        line::within(self.calling_head(now, HEAD), k)
            .filter(|(_, ahead)| *ahead < k)
            .filter_map(|(e, _)| self.tickets.get(&e.id))
            .filter(|t| !t.precalled)
            .map(|t| Event::PreCalled { ticket: t.data.id.clone() })
            .collect()
    }

    /// Waiting tickets in calling order, each with the number of patients ahead of it, in one
    /// pass: a pooled ticket waits behind everyone before it; a doctor-bound ticket behind the
    /// pooled ones and those bound to the same doctor.
    pub fn waiting_with_ahead(&self, now: UnixMs) -> Vec<(&Ticket, usize)> {
        line::with_ahead(self.calling_order(now)).filter_map(|(e, ahead)| self.tickets.get(&e.id).map(|t| (t, ahead))).collect()
    }

    /// Apply one event. Infallible: events were checked by `decide` before they were journaled.
    /// `at` is the time the event was recorded.
    pub fn apply(&mut self, event: &Event, at: UnixMs) {
        // Keep the line in step: out with the ticket's old place, in with its new one.
        fn place(s: &QueueState, id: Option<&TicketId>) -> Option<(Pos, u64)> {
            let t = s.tickets.get(id?).filter(|t| t.status == Status::Waiting)?;
            Some((t.pos?, t.placement))
        }
        let before = place(self, event.ticket());
        if let (Event::Called { room, .. }, Some((pos, placement))) = (event, before) {
            self.count_overtakes(room, pos, placement);
        }
        self.apply_inner(event, at);
        let after = place(self, event.ticket());
        if before.is_some() && before != after {
            if let Some((pos, placement)) = before {
                self.line.remove(pos, placement);
            }
        }
        if let Some((pos, placement)) = after.filter(|_| before != after) {
            if let Some(t) = event.ticket().and_then(|id| self.tickets.get(id)) {
                self.last_key = self.last_key.max(pos.key);
                self.line.insert(Entry { id: t.data.id.clone(), doctor: t.data.doctor.clone(), pos, placement, overtakes: 0 });
            }
        }
    }

    /// A ticket at `pos` is called in `room`: the passed-over counts of those who arrived before
    /// it and that room could have called go up (urgent calls excepted), and the interleave
    /// streak moves.
    fn count_overtakes(&mut self, room: &RoomId, pos: Pos, placement: u64) {
        let Some(called) = self.line.get(pos, placement).cloned() else { return };
        let chooser = self.chooser(0);
        let (streak, urgent) = (chooser.streak_after(self.streak, &called), chooser.is_urgent(&called));
        self.streak = streak;
        // Counted while a cap is on (one pass over the line per call); urgent calls never count.
        if urgent || self.spec.policy.fairness.max_overtakes.is_none() {
            return;
        }
        let doctor = self.spec.rooms.get(room).and_then(|r| r.doctor.clone());
        self.line.passed_over_by(called.arrival(), doctor.as_ref());
    }

    fn apply_inner(&mut self, event: &Event, at: UnixMs) {
        use Status::*;
        match event {
            Event::DayStarted { day } => {
                self.day = Some(*day);
                self.issued = 0;
                self.tickets.clear();
                self.line = Line::default();
                self.idempotency.clear();
                self.streak = 0;
                self.calls_today = 0;
                for r in self.rooms.values_mut() {
                    r.current = None;
                }
            }
            Event::TicketIssued { ticket, seq, pos } => {
                self.issued = self.issued.max(*seq);
                let mut t = self.blank(ticket.clone());
                if let Some(p) = pos {
                    t.status = Waiting;
                    t.pos = Some(*p);
                    self.placements += 1;
                    t.placement = self.placements;
                }
                self.tickets.insert(ticket.id.clone(), t);
            }
            Event::CheckedIn { ticket, pos, .. } => {
                self.placements += 1;
                let placement = self.placements;
                if let Some(t) = self.tickets.get_mut(ticket) {
                    t.status = Waiting;
                    t.pos = Some(*pos);
                    t.placement = placement;
                    t.precalled = false;
                    if t.data.checked_in_at.is_none() {
                        t.data.checked_in_at = Some(at);
                    }
                }
            }
            Event::CarriedOver { ticket, seq, pos } => {
                self.issued = self.issued.max(*seq);
                let mut t = self.blank(ticket.clone());
                t.status = Waiting;
                t.pos = Some(*pos);
                self.placements += 1;
                t.placement = self.placements;
                self.tickets.insert(ticket.id.clone(), t);
            }
            Event::PreCalled { ticket } => {
                if let Some(t) = self.tickets.get_mut(ticket) {
                    t.precalled = true;
                }
            }
            Event::Called { ticket, room, call, .. } => {
                self.calls_today = if *call > 0 { *call } else { self.calls_today.saturating_add(1) };
                if let Some(t) = self.tickets.get_mut(ticket) {
                    t.status = Called;
                    t.room = Some(room.clone());
                    t.called_at = Some(at);
                    t.last_call_at = Some(at);
                    t.calls += 1;
                    t.round_calls = 1;
                    t.pos = None;
                }
                if let Some(r) = self.rooms.get_mut(room) {
                    r.current = Some(ticket.clone());
                }
            }
            Event::Recalled { ticket, call, .. } => {
                self.calls_today = if *call > 0 { *call } else { self.calls_today.saturating_add(1) };
                if let Some(t) = self.tickets.get_mut(ticket) {
                    t.calls += 1;
                    t.round_calls += 1;
                    t.last_call_at = Some(at);
                }
            }
            Event::Started { ticket, .. } => {
                if let Some(t) = self.tickets.get_mut(ticket) {
                    t.status = InService;
                    t.started_at = Some(at);
                }
            }
            Event::Completed { ticket, room, service_ms } => {
                if let Some(t) = self.tickets.get_mut(ticket) {
                    t.status = Completed;
                    t.finished_at = Some(at);
                }
                self.release_room(room, ticket);
                if let Some(ms) = service_ms {
                    // Clamp so one forgotten "complete" does not wreck everyone's ETA.
                    let ms = (*ms as f64).clamp(10_000.0, 3.0 * 3_600_000.0);
                    let a = self.spec.policy.ewma_alpha;
                    self.ewma_service_ms = a * ms + (1.0 - a) * self.ewma_service_ms;
                }
            }
            Event::Missed { ticket, room, .. } => {
                if let Some(t) = self.tickets.get_mut(ticket) {
                    t.status = Missed;
                    t.misses += 1;
                    t.missed_at = Some(at);
                }
                self.release_room(room, ticket);
            }
            Event::Cancelled { ticket } => {
                if let Some(t) = self.tickets.get_mut(ticket) {
                    t.status = Cancelled;
                    t.pos = None;
                    t.finished_at = Some(at);
                    if let Some(room) = t.room.clone() {
                        self.release_room(&room, ticket);
                    }
                }
            }
            Event::TransferredOut { ticket, to } => {
                if let Some(t) = self.tickets.get_mut(ticket) {
                    t.status = Transferred;
                    t.pos = None;
                    t.transferred_to = Some(to.clone());
                    if let Some(room) = t.room.clone() {
                        self.release_room(&room, ticket);
                    }
                }
            }
            Event::TransferredIn { ticket, pos, .. } => {
                let mut t = self.blank(ticket.clone());
                if let Some(p) = pos {
                    t.status = Waiting;
                    t.pos = Some(*p);
                    self.placements += 1;
                    t.placement = self.placements;
                }
                self.tickets.insert(ticket.id.clone(), t);
            }
            Event::Returned { ticket, doctor, pos } => {
                self.placements += 1;
                let placement = self.placements;
                if let Some(t) = self.tickets.get_mut(ticket) {
                    t.status = Waiting;
                    t.data.kind = VisitKind::Return;
                    t.data.doctor = doctor.clone();
                    t.pos = Some(*pos);
                    t.placement = placement;
                    t.precalled = false;
                    t.finished_at = None;
                }
            }
            Event::RoomPaused { room } => {
                if let Some(r) = self.rooms.get_mut(room) {
                    r.paused = true;
                }
            }
            Event::RoomResumed { room } => {
                if let Some(r) = self.rooms.get_mut(room) {
                    r.paused = false;
                }
            }
            Event::PolicyChanged { policy, base } => {
                // A change made against an older config file gives way to the file as it is now.
                if *base == self.config_policy {
                    Arc::make_mut(&mut self.spec).policy = (**policy).clone();
                }
            }
            Event::IdempotencyRecorded { key, fingerprint, ticket } => {
                self.idempotency.insert(key.clone(), (fingerprint.clone(), ticket.clone()));
            }
        }
    }

    fn release_room(&mut self, room: &RoomId, ticket: &TicketId) {
        if let Some(r) = self.rooms.get_mut(room) {
            if r.current.as_ref() == Some(ticket) {
                r.current = None;
            }
        }
    }

    /// Decide, apply, and add the follow-up events (pre-calls) the new state calls for. On `Err`
    /// nothing changed. The returned events are exactly what must be journaled.
    pub fn execute_with(&mut self, cmd: &Command, idem: Option<&Idempotency>, now: UnixMs) -> Result<Decision, QueueError> {
        let mut d = self.decide(cmd, idem, now)?;
        if d.events.is_empty() {
            return Ok(d);
        }
        for e in &d.events {
            self.apply(e, now);
        }
        let follow = self.precalls(now);
        for e in &follow {
            self.apply(e, now);
        }
        d.events.extend(follow);
        Ok(d)
    }

    /// [`QueueState::execute_with`] without an idempotency key (tests, simulation, benches).
    pub fn execute(&mut self, cmd: &Command, now: UnixMs) -> Result<Decision, QueueError> {
        self.execute_with(cmd, None, now)
    }
}

/// A called ticket always has a room (set by `Called`); this is only reached if that invariant broke.
fn unreachable_room() -> RoomId {
    RoomId::parse("unknown").expect("static id is valid")
}
