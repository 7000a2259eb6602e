//! Why the core refused a command. Mapped to HTTP status and a stable code in one place at the edge.

use super::config::PolicyError;
use super::ids::{DoctorId, PriorityClass, QueueId, RoomId, TicketId};
use super::queue::Status;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueueError {
    #[error("unknown ticket {0}")]
    UnknownTicket(TicketId),
    #[error("ticket {0} already exists")]
    DuplicateTicket(TicketId),
    #[error("room {room} does not call from queue {queue}")]
    UnknownRoom { room: RoomId, queue: QueueId },
    #[error("room {0} is paused")]
    RoomPaused(RoomId),
    #[error("unknown priority class {0}")]
    UnknownClass(PriorityClass),
    #[error("no room of this queue has doctor {0}")]
    UnknownDoctor(DoctorId),
    #[error("appointment slot ends before it starts")]
    BadSlot,
    #[error("cannot {action} ticket {ticket}: it is {status}")]
    IllegalTransition { ticket: TicketId, status: Status, action: &'static str },
    #[error("ticket {ticket} was transferred to queue {to}")]
    Transferred { ticket: TicketId, to: QueueId },
    #[error("cannot transfer a ticket to the queue it is in")]
    SameQueue,
    #[error("Idempotency-Key {0:?} was already used with a different request")]
    IdempotencyConflict(String),
    #[error("ticket {ticket} has been recalled the {max} times this queue allows")]
    RecallLimit { ticket: TicketId, max: u32 },
    #[error("ticket {ticket} was called moments ago; recall again in {wait_secs} s")]
    RecallTooSoon { ticket: TicketId, wait_secs: u64 },
    #[error("ticket {ticket} has missed {misses} calls; the patient must register again")]
    TooManyMisses { ticket: TicketId, misses: u32 },
    #[error("ticket {0} missed its call too long ago to come back; the patient must register again")]
    ReturnWindowClosed(TicketId),
    #[error("ticket {0} is not due for an automatic miss")]
    NotOverdue(TicketId),
    #[error("policy {0}")]
    BadPolicy(PolicyError),
    #[error("visit number {0:?} is not a number this patient may keep here")]
    BadVisitNumber(String),
}

impl QueueError {
    /// The stable error code clients see.
    pub fn code(&self) -> &'static str {
        use QueueError::*;
        match self {
            UnknownTicket(_) => "unknown_ticket",
            DuplicateTicket(_) => "duplicate_ticket",
            UnknownRoom { .. } => "unknown_room",
            RoomPaused(_) => "room_paused",
            UnknownClass(_) => "unknown_priority",
            UnknownDoctor(_) => "unknown_doctor",
            BadSlot => "invalid_slot",
            IllegalTransition { .. } => "illegal_transition",
            Transferred { .. } => "ticket_transferred",
            SameQueue => "same_queue",
            IdempotencyConflict(_) => "idempotency_key_reused",
            RecallLimit { .. } => "recall_limit",
            RecallTooSoon { .. } => "recall_too_soon",
            TooManyMisses { .. } => "too_many_misses",
            ReturnWindowClosed(_) => "return_window_closed",
            NotOverdue(_) => "not_overdue",
            BadPolicy(_) => "invalid_policy",
            BadVisitNumber(_) => "invalid_visit_number",
        }
    }
}
