//! The day's numbers, computed from the journal: per queue, room and doctor — wait (check-in →
//! first call), walk (call → start), service (start, or call, → complete), idle time, no-shows,
//! volume by hour. Pure: the day's events in, a report out (JSON and CSV at the edge).

use super::config::Hospital;
use super::event::{Event, UnixMs};
use super::ids::{QueueId, RoomId, TicketId};
use chrono::{NaiveDate, TimeZone, Timelike};
use serde::Serialize;
use std::collections::BTreeMap;

/// Minutes: how many, mean, median, p90, max (`None` when nothing was measured).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Minutes {
    pub n: usize,
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub max: Option<f64>,
}

impl Minutes {
    fn of(ms: &[i64]) -> Self {
        if ms.is_empty() {
            return Self::default();
        }
        let mut v: Vec<f64> = ms.iter().map(|m| *m as f64 / 60_000.0).collect();
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).saturating_sub(1).min(v.len() - 1)];
        let r = |x: f64| (x * 100.0).round() / 100.0;
        Self { n: v.len(), mean: Some(r(v.iter().sum::<f64>() / v.len() as f64)), p50: Some(r(at(0.5))), p90: Some(r(at(0.9))), max: Some(r(v[v.len() - 1])) }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueDay {
    pub queue: String,
    pub name: String,
    /// Tickets issued here (and taken in by transfer).
    pub issued: usize,
    pub checked_in: usize,
    /// Distinct tickets called at least once.
    pub called: usize,
    /// Calls and recalls.
    pub calls: usize,
    pub recalls: usize,
    pub completed: usize,
    /// 过号, by staff or by the no-show rule (`auto_missed`).
    pub missed: usize,
    pub auto_missed: usize,
    pub cancelled: usize,
    pub transferred_out: usize,
    pub wait: Minutes,
    pub walk: Minutes,
    pub service: Minutes,
    /// Check-ins and calls per local hour (0–23).
    pub arrivals_by_hour: [usize; 24],
    pub calls_by_hour: [usize; 24],
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RoomDay {
    pub room: String,
    pub calls: usize,
    pub completed: usize,
    pub missed: usize,
    pub service: Minutes,
    /// Minutes with a patient called or in service, and minutes idle between the room's first
    /// call and its last release (a pause counts as idle).
    pub busy_min: f64,
    pub idle_min: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DoctorDay {
    pub doctor: String,
    pub completed: usize,
    pub missed: usize,
    pub service: Minutes,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DayReport {
    pub day: NaiveDate,
    pub queues: Vec<QueueDay>,
    pub rooms: Vec<RoomDay>,
    pub doctors: Vec<DoctorDay>,
}

#[derive(Debug, Clone, Default)]
struct TicketTrack {
    checked_in: Option<UnixMs>,
    first_call: Option<UnixMs>,
    called_at: Option<UnixMs>,
}

#[derive(Debug, Clone, Default)]
struct RoomTrack {
    busy_since: Option<UnixMs>,
    first: Option<UnixMs>,
    last: Option<UnixMs>,
    busy_ms: i64,
    service_ms: Vec<i64>,
    calls: usize,
    completed: usize,
    missed: usize,
}

/// `[local midnight, next local midnight)` of `day` in the hospital's time zone, Unix ms.
pub fn day_bounds(tz: chrono_tz::Tz, day: NaiveDate) -> (UnixMs, UnixMs) {
    let midnight = |d: NaiveDate| tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default()).earliest().map_or(0, |t| t.timestamp_millis());
    (midnight(day), midnight(day.succ_opt().unwrap_or(day)))
}

/// Build the report of `day` from that day's events (journal order, with times).
pub fn day_report(hospital: &Hospital, day: NaiveDate, events: &[(QueueId, UnixMs, Event)]) -> DayReport {
    let mut tally = DayTally::new(day);
    for (q, at, e) in events {
        tally.add(hospital, q, *at, e);
    }
    tally.report()
}

/// A day's report as its events come: what the report keeps of each event (counts, durations,
/// open calls). Fed event by event — from the journal, or live from the committed stream.
#[derive(Debug, Clone)]
pub struct DayTally {
    day: NaiveDate,
    queues: BTreeMap<QueueId, QueueDay>,
    waits: BTreeMap<QueueId, Vec<i64>>,
    walks: BTreeMap<QueueId, Vec<i64>>,
    services: BTreeMap<QueueId, Vec<i64>>,
    tickets: BTreeMap<(QueueId, TicketId), TicketTrack>,
    rooms: BTreeMap<RoomId, RoomTrack>,
    doctors: BTreeMap<String, (usize, usize, Vec<i64>)>,
}

impl DayTally {
    pub fn new(day: NaiveDate) -> Self {
        Self {
            day,
            queues: BTreeMap::new(),
            waits: BTreeMap::new(),
            walks: BTreeMap::new(),
            services: BTreeMap::new(),
            tickets: BTreeMap::new(),
            rooms: BTreeMap::new(),
            doctors: BTreeMap::new(),
        }
    }

    pub fn day(&self) -> NaiveDate {
        self.day
    }

    /// Count one event of queue `q` recorded at `at` (events of one ticket in the order they
    /// happened).
    pub fn add(&mut self, hospital: &Hospital, q: &QueueId, at: UnixMs, e: &Event) {
        let hour = |at: UnixMs| hospital.tz.timestamp_millis_opt(at).single().map_or(0, |t| t.hour() as usize).min(23);
        let doctor_of = |room: &RoomId| hospital.room(room).and_then(|r| r.doctor.as_ref()).map(|d| d.to_string());
        let Self { queues, waits, walks, services, tickets, rooms, doctors, .. } = self;
        let qd = queues.entry(q.clone()).or_insert_with(|| QueueDay {
            queue: q.to_string(),
            name: hospital.queues.get(q).map(|s| s.name.clone()).unwrap_or_default(),
            ..QueueDay::default()
        });
        match e {
            Event::TicketIssued { ticket, pos, .. } | Event::TransferredIn { ticket, pos, .. } => {
                qd.issued += 1;
                if pos.is_some() {
                    qd.checked_in += 1;
                    qd.arrivals_by_hour[hour(at)] += 1;
                    // A transfer keeps its original check-in time: the wait counts from there.
                    let since = if matches!(e, Event::TransferredIn { .. }) { ticket.checked_in_at.unwrap_or(at) } else { at };
                    tickets.entry((q.clone(), ticket.id.clone())).or_default().checked_in = Some(since);
                }
            }
            // Carried from yesterday: on today's line, but neither issued nor checked in today;
            // its wait counts from its check-in.
            Event::CarriedOver { ticket, .. } => {
                if let Some(c) = ticket.checked_in_at {
                    tickets.entry((q.clone(), ticket.id.clone())).or_default().checked_in = Some(c);
                }
            }
            Event::CheckedIn { ticket, .. } => {
                qd.checked_in += 1;
                qd.arrivals_by_hour[hour(at)] += 1;
                tickets.entry((q.clone(), ticket.clone())).or_default().checked_in.get_or_insert(at);
            }
            Event::Called { ticket, room, .. } => {
                qd.calls += 1;
                qd.calls_by_hour[hour(at)] += 1;
                let t = tickets.entry((q.clone(), ticket.clone())).or_default();
                if t.first_call.is_none() {
                    t.first_call = Some(at);
                    qd.called += 1;
                    if let Some(c) = t.checked_in {
                        waits.entry(q.clone()).or_default().push((at - c).max(0));
                    }
                }
                t.called_at = Some(at);
                let r = rooms.entry(room.clone()).or_default();
                r.calls += 1;
                r.first.get_or_insert(at);
                r.busy_since = Some(at);
            }
            Event::Recalled { .. } => {
                qd.calls += 1;
                qd.recalls += 1;
                qd.calls_by_hour[hour(at)] += 1;
            }
            Event::Started { ticket, .. } => {
                if let Some(c) = tickets.get(&(q.clone(), ticket.clone())).and_then(|t| t.called_at) {
                    walks.entry(q.clone()).or_default().push((at - c).max(0));
                }
            }
            Event::Completed { room, service_ms, .. } => {
                qd.completed += 1;
                let r = rooms.entry(room.clone()).or_default();
                r.completed += 1;
                release(r, at);
                let d = doctor_of(room).map(|d| doctors.entry(d).or_default());
                if let Some(ms) = service_ms {
                    services.entry(q.clone()).or_default().push(*ms);
                    r.service_ms.push(*ms);
                    if let Some(d) = d {
                        d.0 += 1;
                        d.2.push(*ms);
                    }
                } else if let Some(d) = d {
                    d.0 += 1;
                }
            }
            Event::Missed { room, auto, .. } => {
                qd.missed += 1;
                qd.auto_missed += usize::from(*auto);
                let r = rooms.entry(room.clone()).or_default();
                r.missed += 1;
                release(r, at);
                if let Some(d) = doctor_of(room) {
                    doctors.entry(d).or_default().1 += 1;
                }
            }
            Event::Cancelled { .. } => qd.cancelled += 1,
            Event::TransferredOut { .. } => qd.transferred_out += 1,
            _ => {}
        }
    }

    /// The report of what has been counted so far.
    pub fn report(&self) -> DayReport {
        let mut queues = self.queues.clone();
        for (q, qd) in queues.iter_mut() {
            qd.wait = Minutes::of(self.waits.get(q).map_or(&[][..], Vec::as_slice));
            qd.walk = Minutes::of(self.walks.get(q).map_or(&[][..], Vec::as_slice));
            qd.service = Minutes::of(self.services.get(q).map_or(&[][..], Vec::as_slice));
        }
        let rooms = self
            .rooms
            .iter()
            .map(|(id, r)| {
                let span = match (r.first, r.last) {
                    (Some(a), Some(b)) if b > a => b - a,
                    _ => 0,
                };
                let min = |ms: i64| (ms as f64 / 600.0).round() / 100.0;
                RoomDay {
                    room: id.to_string(),
                    calls: r.calls,
                    completed: r.completed,
                    missed: r.missed,
                    service: Minutes::of(&r.service_ms),
                    busy_min: min(r.busy_ms),
                    idle_min: min((span - r.busy_ms).max(0)),
                }
            })
            .collect();
        let doctors = self.doctors.iter().map(|(d, (completed, missed, ms))| DoctorDay { doctor: d.clone(), completed: *completed, missed: *missed, service: Minutes::of(ms) }).collect();
        DayReport { day: self.day, queues: queues.into_values().collect(), rooms, doctors }
    }
}

/// The room's patient left (completed or missed): the busy stretch ends.
fn release(r: &mut RoomTrack, at: UnixMs) {
    if let Some(since) = r.busy_since.take() {
        r.busy_ms += (at - since).max(0);
    }
    r.last = Some(at);
}

/// The report as CSV: one row per queue, room and doctor.
pub fn csv(r: &DayReport) -> String {
    let f = |x: Option<f64>| x.map(|v| format!("{v}")).unwrap_or_default();
    let mut out = String::from(
        "scope,id,issued,checked_in,called,calls,completed,missed,auto_missed,cancelled,wait_mean_min,wait_p90_min,walk_mean_min,service_mean_min,service_p90_min,busy_min,idle_min\n",
    );
    for q in &r.queues {
        out.push_str(&format!(
            "queue,{},{},{},{},{},{},{},{},{},{},{},{},{},{},,\n",
            q.queue, q.issued, q.checked_in, q.called, q.calls, q.completed, q.missed, q.auto_missed, q.cancelled,
            f(q.wait.mean), f(q.wait.p90), f(q.walk.mean), f(q.service.mean), f(q.service.p90)
        ));
    }
    for m in &r.rooms {
        out.push_str(&format!(
            "room,{},,,,{},{},{},,,,,,{},{},{},{}\n",
            m.room, m.calls, m.completed, m.missed, f(m.service.mean), f(m.service.p90), m.busy_min, m.idle_min
        ));
    }
    for d in &r.doctors {
        out.push_str(&format!("doctor,{},,,,,{},{},,,,,,{},{},,\n", d.doctor, d.completed, d.missed, f(d.service.mean), f(d.service.p90)));
    }
    out
}
