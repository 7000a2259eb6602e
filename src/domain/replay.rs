//! Replay a recorded day under another calling policy: the day's journal is turned back into
//! the commands that made it (rooms calling, patients checking in, staff recalling and
//! completing), those are run against a fresh queue with the policy, and the two runs are
//! compared: waits, overtakes, no-shows, refused commands.
//!
//! Commands that name "the room's patient" (recall, start, complete, skip) act on whoever that
//! room has in the replay, so service times and staff actions stay where they were in the day,
//! while the new policy chooses who is called. Automatic misses (过号 by the no-show rule) are
//! not replayed: the policy under test decides them. Pure: events in, numbers out.

use super::command::{Command, IssueTicket};
use super::config::{QueuePolicy, QueueSpec};
use super::event::{Event, UnixMs};
use super::ids::{RoomId, TicketId};
use super::queue::{QueueState, Status};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// How often, between recorded events, the no-show rule is looked at.
const NO_SHOW_STEP_MS: i64 = 5_000;

/// One run of a queue's day.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunNumbers {
    /// Patients called at least once.
    pub called: usize,
    /// Check-in to first call, minutes: mean, p90, max.
    pub mean_wait_min: f64,
    pub p90_wait_min: f64,
    pub max_wait_min: f64,
    /// Mean wait by priority class, minutes.
    pub mean_wait_by_class_min: BTreeMap<String, f64>,
    /// Times a patient was passed over by a later arrival (urgent calls not counted), in total
    /// and for the patient passed over most.
    pub overtakes: usize,
    pub max_overtakes: usize,
    /// Missed (过号), by staff and by the no-show rule.
    pub missed: usize,
    pub auto_missed: usize,
    /// Recorded commands the policy refused (recall limits …), by error.
    pub refused: BTreeMap<String, usize>,
    /// Tickets in the order they were first called.
    #[serde(skip)]
    pub call_order: Vec<TicketId>,
    #[serde(skip)]
    pub waits: BTreeMap<TicketId, f64>,
}

/// A queue's day, recorded and replayed.
#[derive(Debug, Clone, Serialize)]
pub struct QueueReplay {
    pub queue: String,
    pub recorded: RunNumbers,
    pub replayed: RunNumbers,
    /// Patients called in a different place in the order.
    pub moved: usize,
    /// The biggest changes in wait, minutes (negative: shorter), with the ticket's number.
    pub biggest_changes: Vec<(String, f64)>,
}

/// Replay one queue's events of one day (`events` in journal order, with their times) under
/// `policy`. `spec` is the queue as configured (its policy is the recorded one, changed at run
/// time only by the day's own `policy_changed` events).
pub fn replay_queue(spec: &Arc<QueueSpec>, events: &[(UnixMs, Event)], policy: &QueuePolicy) -> QueueReplay {
    let recorded = run(spec.clone(), events, None);
    let mut changed = (**spec).clone();
    changed.policy = policy.clone();
    let replayed = run(Arc::new(changed), events, Some(policy));
    let moved = recorded.call_order.iter().zip(&replayed.call_order).filter(|(a, b)| a != b).count()
        + recorded.call_order.len().abs_diff(replayed.call_order.len());
    let numbers: BTreeMap<&TicketId, String> = events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::TicketIssued { ticket, .. } | Event::TransferredIn { ticket, .. } => Some((&ticket.id, ticket.number.clone())),
            _ => None,
        })
        .collect();
    let mut changes: Vec<(String, f64)> = recorded
        .waits
        .iter()
        .filter_map(|(t, w)| replayed.waits.get(t).map(|r| (numbers.get(t).cloned().unwrap_or_else(|| t.to_string()), round1(r - w))))
        .filter(|(_, d)| d.abs() >= 0.1)
        .collect();
    changes.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then_with(|| a.0.cmp(&b.0)));
    changes.truncate(10);
    QueueReplay { queue: spec.id.to_string(), recorded, replayed, moved, biggest_changes: changes }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Run the day's commands; `policy` fixed (the replay) or `None` (the day as recorded,
/// including its own policy changes).
fn run(spec: Arc<QueueSpec>, events: &[(UnixMs, Event)], policy: Option<&QueuePolicy>) -> RunNumbers {
    let mut s = QueueState::new(spec.clone());
    let mut n = RunNumbers::default();
    let mut passed: BTreeMap<TicketId, usize> = BTreeMap::new();
    let mut wait_ms: BTreeMap<TicketId, i64> = BTreeMap::new();
    let mut last_at: Option<UnixMs> = None;
    for (at, e) in events {
        // The no-show rule runs on the server's timer: look between recorded events.
        if let Some(mut t) = last_at {
            while t + NO_SHOW_STEP_MS < *at {
                t += NO_SHOW_STEP_MS;
                auto_miss(&mut s, t, &mut n);
            }
        }
        auto_miss(&mut s, *at, &mut n);
        last_at = Some(*at);
        let Some(cmd) = command_for(&s, e, policy.is_some()) else { continue };
        let waiting: Vec<(TicketId, (i64, u64), bool)> = if matches!(cmd, Command::CallNext { .. }) {
            let ranks = &spec.ranks;
            s.waiting_order(*at).iter().map(|t| (t.data.id.clone(), (t.pos.map_or(0, |p| p.key), t.placement), ranks.is_urgent(t.pos.map_or(0, |p| p.rank)))).collect()
        } else {
            vec![]
        };
        match s.execute(&cmd, *at) {
            Ok(d) => {
                for ev in &d.events {
                    match ev {
                        Event::Called { ticket, room, .. } => {
                            let Some(t) = s.ticket(ticket) else { continue };
                            if !wait_ms.contains_key(ticket) {
                                n.call_order.push(ticket.clone());
                                if let Some(c) = t.data.checked_in_at {
                                    wait_ms.insert(ticket.clone(), (*at - c).max(0));
                                }
                            }
                            // Passed over: everyone who arrived earlier and this room could have called.
                            let me = waiting.iter().find(|(id, _, _)| id == ticket);
                            if let Some((_, arrival, urgent)) = me {
                                if !urgent {
                                    let doctor = spec.rooms.get(room).and_then(|r| r.doctor.clone());
                                    for (other, a, _) in &waiting {
                                        let callable = s.ticket(other).is_some_and(|o| o.data.doctor.is_none() || o.data.doctor == doctor);
                                        if a < arrival && callable {
                                            *passed.entry(other.clone()).or_default() += 1;
                                        }
                                    }
                                }
                            }
                        }
                        Event::Missed { auto, .. } => {
                            n.missed += 1;
                            n.auto_missed += usize::from(*auto);
                        }
                        _ => {}
                    }
                }
            }
            Err(e) => {
                *n.refused.entry(e.code().to_owned()).or_default() += 1;
            }
        }
    }
    let mut waits: Vec<f64> = wait_ms.values().map(|ms| *ms as f64 / 60_000.0).collect();
    waits.sort_by(f64::total_cmp);
    n.called = n.call_order.len();
    if !waits.is_empty() {
        n.mean_wait_min = round1(waits.iter().sum::<f64>() / waits.len() as f64);
        n.p90_wait_min = round1(waits[((waits.len() as f64 * 0.9).ceil() as usize).saturating_sub(1).min(waits.len() - 1)]);
        n.max_wait_min = round1(*waits.last().unwrap_or(&0.0));
    }
    let mut by_class: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for (t, ms) in &wait_ms {
        if let Some(ticket) = s.ticket(t) {
            let e = by_class.entry(ticket.data.class.to_string()).or_default();
            e.0 += *ms as f64 / 60_000.0;
            e.1 += 1;
        }
    }
    n.mean_wait_by_class_min = by_class.into_iter().map(|(c, (sum, k))| (c, round1(sum / k as f64))).collect();
    n.overtakes = passed.values().sum();
    n.max_overtakes = passed.values().copied().max().unwrap_or(0);
    n.waits = wait_ms.into_iter().map(|(t, ms)| (t, ms as f64 / 60_000.0)).collect();
    n
}

fn auto_miss(s: &mut QueueState, at: UnixMs, n: &mut RunNumbers) {
    for t in s.overdue(at) {
        if s.execute(&Command::AutoMiss { ticket: t }, at).is_ok() {
            n.missed += 1;
            n.auto_missed += 1;
        }
    }
}

/// The command a recorded event came from. Room actions go to the room's patient in this run.
fn command_for(s: &QueueState, e: &Event, fixed_policy: bool) -> Option<Command> {
    let current = |room: &RoomId| s.rooms().get(room).and_then(|r| r.current.clone());
    let live = |room: &RoomId| current(room).filter(|t| s.ticket(t).is_some_and(|t| matches!(t.status, Status::Called | Status::InService)));
    Some(match e {
        Event::TicketIssued { ticket, pos, .. } => Command::Issue(IssueTicket {
            ticket: ticket.id.clone(),
            patient: ticket.patient.clone(),
            name: ticket.name.clone(),
            class: ticket.class.clone(),
            slot: ticket.slot,
            doctor: ticket.doctor.clone(),
            check_in: pos.is_some(),
            visit: ticket.visit.clone().map(|v| (v, ticket.number.clone())),
            his: ticket.his.clone(),
            at: ticket.his.as_ref().and(ticket.checked_in_at),
        }),
        Event::CheckedIn { ticket, .. } => Command::CheckIn { ticket: ticket.clone(), at: None },
        Event::Called { room, caller, .. } => Command::CallNext { room: room.clone(), caller: caller.clone() },
        Event::Recalled { room, .. } => Command::Recall { ticket: live(room)? },
        Event::Started { room, .. } => Command::Start { ticket: live(room)? },
        Event::Completed { room, .. } => Command::Complete { ticket: live(room)? },
        Event::Missed { room, auto: false, .. } => Command::Skip { ticket: live(room)? },
        Event::Missed { auto: true, .. } => return None,
        Event::Cancelled { ticket } => Command::Cancel { ticket: ticket.clone() },
        Event::TransferredOut { ticket, to } => Command::TransferOut { ticket: ticket.clone(), to: to.clone() },
        Event::TransferredIn { ticket, from, .. } => Command::TransferIn { ticket: ticket.clone(), from: from.clone() },
        // Carried from the day before: it joins with its check-in time, as a transfer does.
        Event::CarriedOver { ticket, .. } => Command::TransferIn { ticket: ticket.clone(), from: s.id().clone() },
        Event::Returned { ticket, doctor, .. } => Command::Return { ticket: ticket.clone(), doctor: doctor.clone() },
        Event::RoomPaused { room } => Command::PauseRoom { room: room.clone() },
        Event::RoomResumed { room } => Command::ResumeRoom { room: room.clone() },
        Event::PolicyChanged { policy, .. } if !fixed_policy => Command::SetPolicy { policy: (**policy).clone() },
        Event::PolicyChanged { .. } | Event::DayStarted { .. } | Event::PreCalled { .. } | Event::IdempotencyRecorded { .. } => return None,
    })
}
