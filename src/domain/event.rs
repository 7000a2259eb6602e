//! Events: the core's output and the journal's content. Replaying a queue's events in order
//! through [`QueueState::apply`](super::queue::QueueState::apply) rebuilds its state exactly.

use super::config::QueuePolicy;
use super::ids::{DisplayName, DoctorId, PatientId, PriorityClass, QueueId, RoomId, TicketId};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, UTC. The core never reads a clock: time comes in.
pub type UnixMs = i64;

/// An appointment slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub start: UnixMs,
    pub end: UnixMs,
}

/// A waiting ticket's place in the order. Tickets compare by
/// `(rank, band, slot_start, key, placement)`, where `band` is 0 once `slot_start` has passed
/// (an appointment whose slot has started goes before walk-ins) and 1 otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pos {
    pub rank: u8,
    pub slot_start: Option<UnixMs>,
    /// Check-in time x [`KEY_SCALE`] for a normal arrival; between two neighbours for an insertion.
    pub key: i64,
}

/// Room between the keys of two check-ins one millisecond apart, for insertions.
pub const KEY_SCALE: i64 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitKind {
    /// First consultation of this visit.
    First,
    /// Back with results (回诊).
    Return,
}

/// Everything about a ticket that travels with it to another queue.
/// Where a ticket came from in the hospital information system: the adapter (`source`) and the
/// HIS's own registration id, kept so the two systems reconcile.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HisRef {
    pub source: String,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketData {
    pub id: TicketId,
    pub number: String,
    pub patient: PatientId,
    pub name: DisplayName,
    pub class: PriorityClass,
    pub slot: Option<Slot>,
    pub doctor: Option<DoctorId>,
    pub kind: VisitKind,
    pub issued_at: UnixMs,
    pub checked_in_at: Option<UnixMs>,
    /// The visit's first ticket, when this is a later stop of it (the number is the visit's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visit: Option<TicketId>,
    /// The HIS registration this ticket is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub his: Option<HisRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A new service day: numbers restart, yesterday's tickets leave the live state.
    DayStarted { day: NaiveDate },
    TicketIssued { ticket: TicketData, seq: u32, pos: Option<Pos> },
    CheckedIn { ticket: TicketId, pos: Pos, late: bool, reinserted: bool },
    PreCalled { ticket: TicketId },
    /// `call`: this queue's call number of the day (calls and recalls, 1, 2, 3 …), which
    /// displays acknowledge; 0 in journals written before it existed.
    Called {
        ticket: TicketId,
        room: RoomId,
        caller: String,
        #[serde(default)]
        call: u32,
    },
    Recalled {
        ticket: TicketId,
        room: RoomId,
        #[serde(default)]
        call: u32,
    },
    Started { ticket: TicketId, room: RoomId },
    Completed { ticket: TicketId, room: RoomId, service_ms: Option<i64> },
    /// 过号: by staff, or by the server when the no-show rule's grace ran out (`auto`).
    Missed {
        ticket: TicketId,
        room: RoomId,
        #[serde(default)]
        auto: bool,
    },
    Cancelled { ticket: TicketId },
    TransferredOut { ticket: TicketId, to: QueueId },
    TransferredIn { ticket: TicketData, from: QueueId, pos: Option<Pos> },
    Returned { ticket: TicketId, doctor: Option<DoctorId>, pos: Pos },
    RoomPaused { room: RoomId },
    RoomResumed { room: RoomId },
    /// A waiting ticket carried into the new day (the `carry` day-end rule), with its number.
    CarriedOver { ticket: TicketData, seq: u32, pos: Pos },
    /// The queue's calling policy changed at run time (checked before it was journaled). `base`
    /// fingerprints the config's policy it replaced: if the config file changes later, the file
    /// wins again.
    PolicyChanged { policy: Box<QueuePolicy>, base: String },
    /// An `Idempotency-Key` was used; a retry with the same key and body returns `ticket` again.
    IdempotencyRecorded { key: String, fingerprint: String, ticket: Option<TicketId> },
}

impl Event {
    /// The ticket this event is about, if any (journal index for per-ticket replay).
    pub fn ticket(&self) -> Option<&TicketId> {
        use Event::*;
        match self {
            TicketIssued { ticket, .. } | TransferredIn { ticket, .. } | CarriedOver { ticket, .. } => Some(&ticket.id),
            CheckedIn { ticket, .. }
            | PreCalled { ticket }
            | Called { ticket, .. }
            | Recalled { ticket, .. }
            | Started { ticket, .. }
            | Completed { ticket, .. }
            | Missed { ticket, .. }
            | Cancelled { ticket }
            | TransferredOut { ticket, .. }
            | Returned { ticket, .. } => Some(ticket),
            IdempotencyRecorded { ticket, .. } => ticket.as_ref(),
            DayStarted { .. } | RoomPaused { .. } | RoomResumed { .. } | PolicyChanged { .. } => None,
        }
    }

    /// Stable name of the event kind (journal column, metrics label).
    pub fn kind(&self) -> &'static str {
        use Event::*;
        match self {
            DayStarted { .. } => "day_started",
            TicketIssued { .. } => "ticket_issued",
            CheckedIn { .. } => "checked_in",
            PreCalled { .. } => "pre_called",
            Called { .. } => "called",
            Recalled { .. } => "recalled",
            Started { .. } => "started",
            Completed { .. } => "completed",
            Missed { .. } => "missed",
            Cancelled { .. } => "cancelled",
            TransferredOut { .. } => "transferred_out",
            TransferredIn { .. } => "transferred_in",
            Returned { .. } => "returned",
            RoomPaused { .. } => "room_paused",
            RoomResumed { .. } => "room_resumed",
            PolicyChanged { .. } => "policy_changed",
            CarriedOver { .. } => "carried_over",
            IdempotencyRecorded { .. } => "idempotency_recorded",
        }
    }
}
