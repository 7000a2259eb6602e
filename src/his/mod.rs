//! Connecting to the hospital information system (HIS), pure: every adapter (HL7 v2 over MLLP
//! today) turns what the HIS says into the same [`Fact`]s, and [`plan`] turns a fact into the
//! queue command that applies it — idempotently, because the ticket's id is derived from the
//! HIS's registration id ([`ticket_id`]): a registration seen twice is the same ticket, a
//! cancellation (退号) finds its ticket without a lookup table, and the line is ordered by the
//! HIS's registration time, not by when the message arrived.
//!
//! # Layout
//! - [`hl7`]: HL7 v2 messages (ADT registrations and cancellations, SIU appointments, ORM/OML
//!   orders) to facts, and their ACK/NAK.
//! - [`soap`]: the WebService's envelopes (SOAP 1.1/1.2) to facts, results and faults; the WSDL.
//! - [`table`]: rows of a HIS database view of today's registrations to facts, the poll cursor,
//!   and the reconciliation of the queues with the view.

pub mod hl7;
pub mod soap;
pub mod table;

use crate::domain::command::{Command, IssueTicket};
use crate::domain::config::Hospital;
use crate::domain::event::{HisRef, Slot, UnixMs};
use crate::domain::ids::{DisplayName, DoctorId, PatientId, PriorityClass, QueueId, TicketId};
use sha2::{Digest, Sha256};

/// A registration (挂号) or an appointment booked in the HIS.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub his: HisRef,
    pub patient: String,
    pub name: String,
    /// The HIS's department (or clinic) code; mapped to a queue by the hospital config.
    pub department: String,
    /// The HIS's doctor code, when the registration is for one doctor.
    pub doctor: Option<String>,
    /// The consulting room (诊室) the HIS assigned, when it did: the ticket is for the doctor
    /// sitting there today (a room without one: the department's line).
    pub room: Option<String>,
    /// When the patient registered (or checked in), by the HIS's clock.
    pub at: UnixMs,
    /// An appointment's slot: the patient checks in (报到) when they come.
    pub slot: Option<Slot>,
    /// Orders this fact among the source's changes to the same registration (the message time,
    /// the row's version): a registration newer than its own withdrawal is a re-registration,
    /// an older one is a stale repeat. Unknown: never a re-registration.
    pub revision: Option<i64>,
}

impl Registration {
    /// Refuses a registration of an earlier service day than `today` (by its slot's start for
    /// an appointment, its time otherwise, in the hospital's zone): issued today it would go to
    /// the head of today's line. Every adapter applies it (the database poller's own check
    /// names its snapshot too).
    pub fn of_today(&self, today: chrono::NaiveDate, tz: chrono_tz::Tz) -> Result<(), FactError> {
        let (field, at) = match &self.slot {
            Some(s) => ("slot_start", s.start),
            None => ("registered_at", self.at),
        };
        let day = chrono::DateTime::from_timestamp_millis(at).map(|t| t.with_timezone(&tz).date_naive());
        match day {
            Some(d) if d >= today => Ok(()),
            d => Err(FactError::new(
                field,
                "not_today",
                format!("{} {}, not today ({today}): a registration of an earlier day is not issued", if field == "slot_start" { "the appointment was for" } else { "registered on" }, d.map(|d| d.to_string()).unwrap_or_else(|| "an unreadable day".into())),
            )),
        }
    }
}

/// What the HIS says happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    Registered(Registration),
    /// The registration was withdrawn (退号) or the visit cancelled: the ticket must never be called.
    /// A withdrawal older (`revision`) than the registration's re-registration changes nothing.
    Cancelled { his: HisRef, revision: Option<i64> },
    /// The patient checked in (报到) for an appointment, at `at` by the HIS's clock.
    CheckedIn { his: HisRef, at: Option<UnixMs> },
    /// Orders placed or cancelled for a patient (blood tests, an ultrasound, …), applied whole.
    Ordered { patient: String, orders: Vec<OrderFact> },
    /// The final results of these orders (the HIS's order ids) are in: a return visit waiting
    /// for them may be taken. Orders clinicflow does not hold (another clinic's, an inpatient's)
    /// are not an error: a results feed carries the whole hospital's.
    ResultsIn { patient: String, orders: Vec<String> },
}

/// One order of an [`Fact::Ordered`]: the HIS's order id, its code, whether it is cancelled.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderFact {
    pub id: String,
    pub code: String,
    pub cancelled: bool,
}

impl Fact {
    /// The registration the fact is about (none for orders).
    pub fn registration(&self) -> Option<&HisRef> {
        match self {
            Fact::Registered(r) => Some(&r.his),
            Fact::Cancelled { his, .. } | Fact::CheckedIn { his, .. } => Some(his),
            Fact::Ordered { .. } | Fact::ResultsIn { .. } => None,
        }
    }
}

/// Why a fact cannot be applied: the field (as the adapter names it: `PV1-3`, `department`) and
/// a stable code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FactError {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

impl FactError {
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        FactError { field: field.into(), code, message: message.into() }
    }
}

/// The ticket a HIS registration is: the same registration always gives the same id.
pub fn ticket_id(his: &HisRef) -> TicketId {
    ticket_of(his, 0)
}

/// The ticket of a registration's `generation`: 0 at first, one more at each re-registration
/// (a registration id the HIS brings back after its 退号), so each life is a ticket of its own.
pub fn ticket_of(his: &HisRef, generation: u32) -> TicketId {
    let key = match generation {
        0 => format!("his\0{}\0{}", his.source, his.id),
        g => format!("his\0{}\0{}\0{g}", his.source, his.id),
    };
    let digest = Sha256::digest(key.as_bytes());
    TicketId::parse(&format!("t{}", &hex::encode(digest)[..20])).expect("t + 20 hex digits is a ticket id")
}

/// What clinicflow remembers of a registration that was withdrawn or re-registered (none: the
/// first life, never withdrawn). Kept durable by `storage::his::HisStore`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrationState {
    /// 0 at first; one more at each re-registration ([`ticket_of`]).
    pub generation: u32,
    pub withdrawn: bool,
    /// The revision of the last withdrawal or re-registration, when the source gave one.
    pub revision: Option<i64>,
}

/// Where a fact about a registration stands against what is remembered of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Apply it to this generation's ticket.
    Apply { generation: u32 },
    /// A re-registration: remember the new generation (at this revision), then issue its ticket.
    Reregister { generation: u32, revision: i64 },
    /// Stale or repeated: nothing to do (a registration withdrawn before it arrived, a resend of
    /// a withdrawn life, a withdrawal older than the re-registration).
    Stale,
}

/// Decides a fact's place in its registration's life, given the newest revision seen of it. A
/// registration newer than its withdrawal is a re-registration; a withdrawal older than the
/// registration it meets is stale; at equal revisions the withdrawal wins (a 退号 never comes
/// before its registration). Without revisions a withdrawal is final. The changes of one
/// registration may thus arrive in any order: it ends live exactly when its newest change is a
/// registration (property-tested).
pub fn lifecycle(fact: &Fact, state: Option<RegistrationState>) -> Lifecycle {
    let Some(st) = state else { return Lifecycle::Apply { generation: 0 } };
    match fact {
        Fact::Registered(r) if st.withdrawn => match (r.revision, st.revision) {
            (Some(new), Some(old)) if new > old => Lifecycle::Reregister { generation: st.generation + 1, revision: new },
            _ => Lifecycle::Stale,
        },
        Fact::Cancelled { revision: Some(rev), .. } if !st.withdrawn && st.revision.is_some_and(|r| *rev < r) => Lifecycle::Stale,
        _ => Lifecycle::Apply { generation: st.generation },
    }
}

/// What applying a fact means for the queues.
#[derive(Debug, Clone, PartialEq)]
pub enum Planned {
    /// Issue this ticket in this queue (a duplicate means it was applied before).
    Issue { queue: QueueId, cmd: Command },
    /// A command on the registration's ticket, wherever it is now.
    OnTicket { ticket: TicketId, cmd: Command },
    /// Orders to store for the patient, in one transaction.
    Orders { patient: PatientId, orders: Vec<crate::plan::orders::OrderIn> },
    /// Orders of the patient whose results are in.
    Results { patient: PatientId, orders: Vec<String> },
}

/// Which queue a HIS department code means: the `[his]` mapping, or a queue or department id
/// spelled the same way.
pub fn queue_for(hospital: &Hospital, code: &str) -> Option<QueueId> {
    if let Some(q) = hospital.his.departments.get(code) {
        return Some(q.clone());
    }
    if let Ok(q) = QueueId::parse(code) {
        if hospital.queues.contains_key(&q) {
            return Some(q);
        }
    }
    hospital.queues.iter().find(|(_, spec)| spec.department.as_str() == code).map(|(id, _)| id.clone())
}

/// The queue command for a fact about a registration in its `generation` (see [`ticket_of`]),
/// checked against the hospital: unknown departments and doctors, bad patient ids and names are
/// refused naming the field; nothing is applied.
pub fn plan(fact: &Fact, hospital: &Hospital, generation: u32) -> Result<Planned, FactError> {
    let ticket_id = |his: &HisRef| ticket_of(his, generation);
    match fact {
        Fact::Registered(r) => {
            let queue = queue_for(hospital, &r.department)
                .ok_or_else(|| FactError::new("department", "unknown_department", format!("no queue for HIS department {:?} (map it under [his.departments])", r.department)))?;
            let doctor = match &r.doctor {
                None => None,
                Some(code) => {
                    let d = hospital.his.doctors.get(code).cloned().or_else(|| DoctorId::parse(code).ok().filter(|d| hospital.doctors.iter().any(|x| &x.id == d)));
                    // A doctor the queue does not know is not an error of the registration: the
                    // patient waits for the department (pooled), as at a registration desk.
                    d.filter(|d| hospital.queues.get(&queue).is_some_and(|q| q.rooms.values().any(|room| room.doctor.as_ref() == Some(d))))
                }
            };
            // A room the HIS assigned: the doctor sitting there (an unknown room, or one without
            // a doctor today, is not an error: the patient waits for the department).
            let doctor = doctor.or_else(|| {
                let code = r.room.as_deref()?;
                let spec = hospital.queues.get(&queue)?;
                let room = hospital.his.rooms.get(code).cloned().or_else(|| crate::domain::ids::RoomId::parse(code).ok())?;
                spec.rooms.get(&room)?.doctor.clone()
            });
            let patient = PatientId::parse(&r.patient).map_err(|e| FactError::new("patient", "invalid_patient", e.to_string()))?;
            let name = DisplayName::parse(if r.name.trim().is_empty() { &r.patient } else { &r.name }).map_err(|e| FactError::new("name", "invalid_name", e.to_string()))?;
            if r.slot.is_some_and(|s| s.end <= s.start) {
                return Err(FactError::new("slot", "invalid_slot", "the slot ends before it starts"));
            }
            let cmd = Command::Issue(IssueTicket {
                ticket: ticket_id(&r.his),
                patient,
                name,
                class: PriorityClass::parse("normal").expect("valid"),
                slot: r.slot,
                doctor,
                check_in: r.slot.is_none(),
                visit: None,
                his: Some(r.his.clone()),
                at: Some(r.at),
            });
            Ok(Planned::Issue { queue, cmd })
        }
        Fact::Cancelled { his, .. } => Ok(Planned::OnTicket { ticket: ticket_id(his), cmd: Command::Cancel { ticket: ticket_id(his) } }),
        Fact::CheckedIn { his, at } => Ok(Planned::OnTicket { ticket: ticket_id(his), cmd: Command::CheckIn { ticket: ticket_id(his), at: *at } }),
        Fact::Ordered { patient, orders } => {
            use crate::plan::orders::{OrderIn, OrderStatus};
            let patient = PatientId::parse(patient).map_err(|e| FactError::new("patient", "invalid_patient", e.to_string()))?;
            let orders = orders
                .iter()
                .map(|o| {
                    let service = hospital.service_for_code(&o.code).ok_or_else(|| FactError::new("code", "unknown_code", format!("order {}: no service does code {:?} (add it to a [[services]] codes list)", o.id, o.code)))?;
                    if o.id.is_empty() || o.id.len() > 64 {
                        return Err(FactError::new("order", "invalid_field", "order ids are 1 to 64 characters"));
                    }
                    Ok(OrderIn { id: o.id.clone(), code: o.code.clone(), service: service.id.clone(), status: if o.cancelled { OrderStatus::Cancelled } else { OrderStatus::Active }, source: "hl7" })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Planned::Orders { patient, orders })
        }
        Fact::ResultsIn { patient, orders } => {
            let patient = PatientId::parse(patient).map_err(|e| FactError::new("patient", "invalid_patient", e.to_string()))?;
            Ok(Planned::Results { patient, orders: orders.clone() })
        }
    }
}

#[cfg(test)]
mod tests;
