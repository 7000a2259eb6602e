//! Commands to one queue, already parsed into domain types by an edge.

use super::config::QueuePolicy;
use super::event::{Slot, TicketData};
use super::ids::{DisplayName, DoctorId, PatientId, PriorityClass, QueueId, RoomId, TicketId};

#[derive(Debug, Clone, PartialEq)]
pub struct IssueTicket {
    /// Chosen by the edge (random), so the core stays deterministic.
    pub ticket: TicketId,
    pub patient: PatientId,
    pub name: DisplayName,
    pub class: PriorityClass,
    pub slot: Option<Slot>,
    /// Bind the ticket to one doctor: only that doctor's room calls it.
    pub doctor: Option<DoctorId>,
    /// Walk-ins are checked in at once; an appointment booked ahead waits for 报到.
    pub check_in: bool,
    /// A later stop of a visit: the visit's first ticket and its number, which this ticket
    /// keeps (one number per visit on every screen and the phone).
    pub visit: Option<(TicketId, String)>,
    /// The HIS registration it comes from.
    pub his: Option<super::event::HisRef>,
    /// When the patient registered or checked in, by the HIS's clock (never later than now): the
    /// line is ordered by it, not by when the message arrived.
    pub at: Option<super::event::UnixMs>,
}

impl IssueTicket {
    /// A walk-in: checked in now, any room may call it, no appointment, visit or HIS record.
    pub fn walk_in(ticket: TicketId, patient: PatientId, name: DisplayName, class: PriorityClass) -> Self {
        IssueTicket { ticket, patient, name, class, slot: None, doctor: None, check_in: true, visit: None, his: None, at: None }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Issue(IssueTicket),
    /// 报到. `at`: when, by the HIS's clock (never later than now): an appointment is placed by
    /// the time the patient checked in, not by when the message arrived.
    CheckIn { ticket: TicketId, at: Option<super::event::UnixMs> },
    CallNext { room: RoomId, caller: String },
    Recall { ticket: TicketId },
    Start { ticket: TicketId },
    Skip { ticket: TicketId },
    Complete { ticket: TicketId },
    Cancel { ticket: TicketId },
    /// First half of a transfer: the ticket leaves this queue.
    TransferOut { ticket: TicketId, to: QueueId },
    /// Second half: the ticket joins this queue keeping its original check-in time.
    TransferIn { ticket: TicketData, from: QueueId },
    /// Back with results (回诊), for `doctor` or the doctor who saw the patient.
    Return { ticket: TicketId, doctor: Option<DoctorId> },
    PauseRoom { room: RoomId },
    ResumeRoom { room: RoomId },
    /// The no-show rule's grace ran out (sent by the queue's own timer; refused unless due).
    AutoMiss { ticket: TicketId },
    /// Replace the calling policy (checked, then journaled).
    SetPolicy { policy: QueuePolicy },
}

impl Command {
    /// Stable name (metrics label, logs).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Issue(_) => "issue",
            Command::CheckIn { .. } => "check_in",
            Command::CallNext { .. } => "call_next",
            Command::Recall { .. } => "recall",
            Command::Start { .. } => "start",
            Command::Skip { .. } => "skip",
            Command::Complete { .. } => "complete",
            Command::Cancel { .. } => "cancel",
            Command::TransferOut { .. } => "transfer_out",
            Command::TransferIn { .. } => "transfer_in",
            Command::Return { .. } => "return",
            Command::PauseRoom { .. } => "pause_room",
            Command::ResumeRoom { .. } => "resume_room",
            Command::AutoMiss { .. } => "auto_miss",
            Command::SetPolicy { .. } => "set_policy",
        }
    }
}

/// An `Idempotency-Key` with a fingerprint of the request it came with.
#[derive(Debug, Clone, PartialEq)]
pub struct Idempotency {
    pub key: String,
    pub fingerprint: String,
}
