//! What a wall display shows, computed from each queue's [`Board`]. Pure.

use super::config::{DisplayConfig, DisplayKind, Hospital};
use super::ids::{DoctorId, QueueId, RoomId};
use super::view::RoomView;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// How many next numbers a display lists (per room on a door, per queue in a corridor).
pub const NEXT: usize = 3;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Patient {
    pub number: String,
    /// Masked: public screens never show full names.
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoomLine {
    pub room: RoomId,
    pub room_name: String,
    pub room_name_en: String,
    pub paused: bool,
    /// The patient called or being seen in this room.
    pub current: Option<Patient>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NextLine {
    pub queue: QueueId,
    pub queue_name: String,
    pub queue_name_en: String,
    pub next: Vec<Patient>,
}

/// The retained `state` of a display (without the envelope fields `v`, `display`, `at`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DisplayState {
    pub kind: DisplayKind,
    pub rooms: Vec<RoomLine>,
    pub next: Vec<NextLine>,
}

/// The queues a display's rooms call from, in config order, without repeats.
pub fn queues_of(display: &DisplayConfig, hospital: &Hospital) -> Vec<QueueId> {
    let mut out: Vec<QueueId> = Vec::new();
    for r in &display.rooms {
        for q in hospital.room_queues.get(r).into_iter().flatten() {
            if !out.contains(q) {
                out.push(q.clone());
            }
        }
    }
    out
}

/// What wall displays can show of one queue: its rooms and the head of its line. Published with
/// every commit, so displays never ask the queue; small whatever the line's length.
#[derive(Debug, Clone, PartialEq)]
pub struct Board {
    pub id: QueueId,
    pub name: String,
    pub name_en: String,
    pub rooms: Vec<RoomView>,
    /// The line's head in calling order: long enough to hold the first [`NEXT`] tickets any
    /// display can list (all of them, the pooled ones, and each room's doctor's), or all of it.
    pub head: Vec<Waiting>,
}

/// A waiting ticket at the head of a line.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    pub number: String,
    pub masked_name: String,
    pub doctor: Option<DoctorId>,
}

impl Board {
    /// Take tickets from the calling order until every display's list is full.
    ///
    /// A door lists the tickets its rooms may call (pooled ones and its doctors'); a corridor the
    /// whole line. So the head ends once it has `NEXT` tickets, `NEXT` a doctorless room may call,
    /// and `NEXT` each doctor's room may call.
    pub fn head(rooms: &[RoomView], order: impl Iterator<Item = Waiting>) -> Vec<Waiting> {
        let doctors: Vec<&DoctorId> = rooms.iter().filter_map(|r| r.doctor.as_ref()).collect();
        let doctorless = rooms.iter().any(|r| r.doctor.is_none());
        let (mut pooled, mut bound) = (0usize, vec![0usize; doctors.len()]);
        let mut head = Vec::new();
        for w in order {
            match &w.doctor {
                None => pooled += 1,
                Some(d) => {
                    for (x, n) in doctors.iter().zip(bound.iter_mut()) {
                        if *x == d {
                            *n += 1;
                        }
                    }
                }
            }
            head.push(w);
            let full = head.len() >= NEXT && (!doctorless || pooled >= NEXT) && bound.iter().all(|n| pooled + n >= NEXT);
            if full {
                break;
            }
        }
        head
    }
}

pub fn display_state(display: &DisplayConfig, hospital: &Hospital, boards: &BTreeMap<QueueId, Arc<Board>>) -> DisplayState {
    let queues = queues_of(display, hospital);
    let rooms = display
        .rooms
        .iter()
        .map(|r| {
            // A room serving several queues shows whichever has its current patient.
            let views: Vec<_> = queues.iter().filter_map(|q| boards.get(q)).flat_map(|s| s.rooms.iter().filter(|v| &v.id == r)).collect();
            let current = views.iter().find(|v| v.current_number.is_some());
            let first = views.first();
            RoomLine {
                room: r.clone(),
                room_name: first.map(|v| v.name.clone()).unwrap_or_default(),
                room_name_en: first.map(|v| v.name_en.clone()).unwrap_or_default(),
                paused: first.is_some_and(|v| v.paused),
                current: current.map(|v| Patient {
                    number: v.current_number.clone().unwrap_or_default(),
                    name: v.current_masked_name.clone().unwrap_or_default(),
                }),
            }
        })
        .collect();
    let next = queues
        .iter()
        .filter_map(|q| boards.get(q))
        .map(|s| {
            // A door shows who its own room (its doctor) will call; a corridor the queue's line.
            let doctors: Vec<_> = s.rooms.iter().filter(|v| display.rooms.contains(&v.id)).map(|v| v.doctor.clone()).collect();
            let next = s
                .head
                .iter()
                .filter(|w| display.kind == DisplayKind::Corridor || w.doctor.is_none() || doctors.iter().any(|d| d.as_ref() == w.doctor.as_ref()))
                .take(NEXT)
                .map(|w| Patient { number: w.number.clone(), name: w.masked_name.clone() })
                .collect();
            NextLine { queue: s.id.clone(), queue_name: s.name.clone(), queue_name_en: s.name_en.clone(), next }
        })
        .collect();
    DisplayState { kind: display.kind, rooms, next }
}
