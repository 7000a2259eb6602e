//! Read models: what the API and screens show of a queue and a ticket. Computed from the state
//! and `now`, never stored.

use super::display::{Board, Waiting};
use super::event::{Slot, UnixMs, VisitKind};
use super::ids::{DoctorId, PatientId, PriorityClass, QueueId, RoomId, TicketId};
use super::queue::{QueueState, Standing, Status, Ticket};
use chrono::NaiveDate;
use serde::Serialize;

/// One ticket, as staff and its own patient see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TicketView {
    pub id: TicketId,
    /// The visit this ticket belongs to: its first ticket's id (this one's own for a first stop).
    pub visit: TicketId,
    /// The HIS registration the ticket is (adapter and the HIS's id), when it came from one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub his: Option<super::event::HisRef>,
    /// The visit's number: the same at every stop of the visit.
    pub number: String,
    pub queue: QueueId,
    pub queue_name: String,
    pub queue_name_en: String,
    /// The department the queue belongs to (a map place: `department:{id}`).
    pub department: String,
    pub status: Status,
    pub patient_id: PatientId,
    pub name: String,
    /// The name as public screens show it (张*丰).
    pub masked_name: String,
    pub priority: PriorityClass,
    pub kind: VisitKind,
    pub doctor: Option<DoctorId>,
    pub slot: Option<Slot>,
    /// Patients ahead (0 = next), while waiting.
    pub position: Option<usize>,
    /// Expected seconds until called, while waiting.
    pub eta_secs: Option<u64>,
    /// Of the patients ahead, those of a priority (or urgent) class.
    pub priority_ahead: Option<usize>,
    /// Times a later arrival was called first, counted while the queue has an overtake cap.
    pub passed_over: u32,
    /// The place in line in one sentence, while waiting.
    pub position_note: Option<PositionNote>,
    pub room: Option<RoomId>,
    pub room_name: Option<String>,
    pub room_name_en: Option<String>,
    pub calls: u32,
    pub misses: u32,
    pub issued_at: UnixMs,
    pub checked_in_at: Option<UnixMs>,
    pub called_at: Option<UnixMs>,
    pub finished_at: Option<UnixMs>,
    pub transferred_to: Option<QueueId>,
}

/// "2 priority patients ahead; you are next after them", in Chinese and English.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PositionNote {
    pub zh: String,
    pub en: String,
}

impl PositionNote {
    /// Explain a standing in one line.
    pub fn of(s: &Standing, cap: Option<u32>) -> Self {
        let normal = s.ahead.saturating_sub(s.priority_ahead);
        let p = s.priority_ahead;
        let plural = |n: usize, one: &str, many: &str| if n == 1 { format!("1 {one}") } else { format!("{n} {many}") };
        let (mut zh, mut en) = if s.ahead == 0 {
            ("下一位就是您".to_owned(), "You are next".to_owned())
        } else if normal == 0 {
            (format!("前面有 {p} 位优先患者，之后就是您"), format!("{} ahead; you are next after them", plural(p, "priority patient", "priority patients")))
        } else if p == 0 {
            (format!("前面还有 {} 位", s.ahead), format!("{} ahead of you", plural(s.ahead, "patient", "patients")))
        } else {
            (
                format!("前面 {} 位：{p} 位优先患者，{normal} 位按顺序", s.ahead),
                format!("{} ahead: {p} priority, {normal} in order of arrival", plural(s.ahead, "patient", "patients")),
            )
        };
        if s.aged {
            zh.push_str("；您已等候较久，顺序已提前");
            en.push_str("; moved up for waiting long");
        }
        if let Some(cap) = cap.filter(|c| s.passed_over >= *c && s.ahead > 0) {
            zh.push_str(&format!("；已被后来者超过 {cap} 次，本诊室下次叫号将叫您"));
            en.push_str(&format!("; passed over {cap} times, so the next free room calls you"));
        }
        Self { zh, en }
    }
}

/// A waiting patient on a queue snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitingEntry {
    pub ticket: TicketId,
    pub number: String,
    pub masked_name: String,
    pub priority: PriorityClass,
    pub kind: VisitKind,
    pub doctor: Option<DoctorId>,
    pub position: usize,
    pub eta_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoomView {
    pub id: RoomId,
    pub name: String,
    pub name_en: String,
    pub doctor: Option<DoctorId>,
    pub paused: bool,
    pub current_ticket: Option<TicketId>,
    pub current_number: Option<String>,
    pub current_masked_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Counts {
    pub booked: usize,
    pub waiting: usize,
    pub called: usize,
    pub in_service: usize,
    pub completed: usize,
    pub missed: usize,
    pub transferred: usize,
    pub cancelled: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueSnapshot {
    pub id: QueueId,
    pub name: String,
    pub name_en: String,
    pub prefix: String,
    pub department: super::ids::DepartmentId,
    pub day: Option<NaiveDate>,
    pub mean_service_secs: f64,
    pub counts: Counts,
    pub rooms: Vec<RoomView>,
    /// In calling order.
    pub waiting: Vec<WaitingEntry>,
}

impl QueueState {
    pub fn ticket_view(&self, id: &TicketId, now: UnixMs) -> Option<TicketView> {
        let t: &Ticket = self.ticket(id)?;
        let standing = self.standing(id, now);
        let room = t.room.as_ref().and_then(|r| self.spec().rooms.get(r));
        Some(TicketView {
            id: t.data.id.clone(),
            visit: t.data.visit.clone().unwrap_or_else(|| t.data.id.clone()),
            his: t.data.his.clone(),
            number: t.data.number.clone(),
            queue: self.id().clone(),
            queue_name: self.spec().name.clone(),
            queue_name_en: self.spec().name_en.clone(),
            department: self.spec().department.to_string(),
            status: t.status,
            patient_id: t.data.patient.clone(),
            name: t.data.name.as_str().to_owned(),
            masked_name: t.data.name.masked(),
            priority: t.data.class.clone(),
            kind: t.data.kind,
            doctor: t.data.doctor.clone(),
            slot: t.data.slot,
            position: standing.map(|s| s.ahead),
            eta_secs: standing.and_then(|s| s.eta_secs),
            priority_ahead: standing.map(|s| s.priority_ahead),
            passed_over: standing.map_or(0, |s| s.passed_over),
            position_note: standing.map(|s| PositionNote::of(&s, self.policy().fairness.max_overtakes)),
            room: t.room.clone(),
            room_name: room.map(|r| r.name.clone()),
            room_name_en: room.map(|r| r.name_en.clone()),
            calls: t.calls,
            misses: t.misses,
            issued_at: t.data.issued_at,
            checked_in_at: t.data.checked_in_at,
            called_at: t.called_at,
            finished_at: t.finished_at,
            transferred_to: t.transferred_to.clone(),
        })
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for t in self.tickets() {
            *match t.status {
                Status::Booked => &mut c.booked,
                Status::Waiting => &mut c.waiting,
                Status::Called => &mut c.called,
                Status::InService => &mut c.in_service,
                Status::Completed => &mut c.completed,
                Status::Missed => &mut c.missed,
                Status::Transferred => &mut c.transferred,
                Status::Cancelled => &mut c.cancelled,
            } += 1;
        }
        c
    }

    /// Every room of the queue, with who it is serving.
    pub fn room_views(&self) -> Vec<RoomView> {
        self.spec()
            .rooms
            .values()
            .map(|r| {
                let st = self.rooms().get(&r.id).cloned().unwrap_or_default();
                RoomView {
                    id: r.id.clone(),
                    name: r.name.clone(),
                    name_en: r.name_en.clone(),
                    doctor: r.doctor.clone(),
                    paused: st.paused,
                    current_number: st.current.as_ref().and_then(|c| self.ticket(c)).map(|t| t.data.number.clone()),
                    current_masked_name: st.current.as_ref().and_then(|c| self.ticket(c)).map(|t| t.data.name.masked()),
                    current_ticket: st.current,
                }
            })
            .collect()
    }

    /// What wall displays show of this queue at `now`: its rooms and the head of the line.
    pub fn board(&self, now: UnixMs) -> Board {
        let spec = self.spec();
        let rooms = self.room_views();
        let order = self.calling_front(now).map(|t| Waiting { number: t.data.number.clone(), masked_name: t.data.name.masked(), doctor: t.data.doctor.clone() });
        let head = Board::head(&rooms, order);
        Board { id: spec.id.clone(), name: spec.name.clone(), name_en: spec.name_en.clone(), rooms, head }
    }

    pub fn snapshot(&self, now: UnixMs) -> QueueSnapshot {
        let spec = self.spec();
        let rooms = self.room_views();
        let waiting = self
            .waiting_with_ahead(now)
            .into_iter()
            .map(|(t, ahead)| {
                let eta_secs = self.eta_secs(t, ahead);
                WaitingEntry {
                    ticket: t.data.id.clone(),
                    number: t.data.number.clone(),
                    masked_name: t.data.name.masked(),
                    priority: t.data.class.clone(),
                    kind: t.data.kind,
                    doctor: t.data.doctor.clone(),
                    position: ahead,
                    eta_secs,
                }
            })
            .collect();
        QueueSnapshot {
            id: spec.id.clone(),
            name: spec.name.clone(),
            name_en: spec.name_en.clone(),
            prefix: spec.prefix.clone(),
            department: spec.department.clone(),
            day: self.service_day(),
            mean_service_secs: self.mean_service_secs(),
            counts: self.counts(),
            rooms,
            waiting,
        }
    }
}
