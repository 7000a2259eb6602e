//! A ticket's feed: its journaled events as the patient's phone sees them, numbered 1, 2, 3 …
//! per ticket. The numbering comes from the journal alone, so it is the same after a restart and
//! a client that resumes with `since = N` gets exactly the events after N.

use super::announce;
use super::config::Hospital;
use super::event::{Event, TicketData, UnixMs};
use super::ids::{QueueId, TicketId};
use serde_json::{json, Value};

/// One numbered message of the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedItem {
    /// Per-ticket sequence number, from 1.
    pub seq: u64,
    /// Position in the journal (for de-duplicating live delivery against history).
    pub journal_seq: i64,
    /// The event kind (`called`, `recalled` …).
    pub kind: &'static str,
    /// The message as sent: serialized once, shared by every connection and kept compact.
    pub text: std::sync::Arc<str>,
}

impl FeedItem {
    /// The message as JSON (for webhooks and tests).
    pub fn message(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Default)]
pub struct TicketFeed {
    ticket: Option<TicketId>,
    number: String,
    masked_name: String,
    patient: String,
    items: Vec<FeedItem>,
}

impl TicketFeed {
    pub fn new(ticket: TicketId) -> Self {
        Self { ticket: Some(ticket), ..Self::default() }
    }

    pub fn last_seq(&self) -> u64 {
        self.items.len() as u64
    }

    pub fn last_journal_seq(&self) -> i64 {
        self.items.last().map_or(0, |i| i.journal_seq)
    }

    /// Items after `since` (all of them for `since = 0`).
    pub fn since(&self, since: u64) -> &[FeedItem] {
        let from = (since as usize).min(self.items.len());
        &self.items[from..]
    }

    fn learn(&mut self, t: &TicketData) {
        self.number = t.number.clone();
        self.masked_name = t.name.masked();
        self.patient = t.patient.to_string();
    }

    /// Add a journaled event. Returns the new item, or `None` if it was already in the feed (a
    /// live copy of history) or is not something a phone is told (an idempotency record).
    pub fn push(&mut self, journal_seq: i64, queue: &QueueId, at: UnixMs, event: &Event, hospital: &Hospital) -> Option<&FeedItem> {
        if journal_seq <= self.last_journal_seq() || event.ticket() != self.ticket.as_ref() {
            return None;
        }
        let room_fields = |room: &super::ids::RoomId, number: &str, masked: &str| {
            let (zh, en) = hospital.room(room).map_or((room.to_string(), String::new()), |r| (r.name.clone(), r.name_en.clone()));
            let a = announce::call(number, masked, &zh, &en);
            json!({"room": room, "room_name": zh, "room_name_en": en, "text_zh": a.text_zh, "text_en": a.text_en})
        };
        let body = match event {
            Event::TicketIssued { ticket, .. } => {
                self.learn(ticket);
                json!({"event": "issued", "number": ticket.number})
            }
            Event::TransferredIn { ticket, from, .. } => {
                self.learn(ticket);
                let name = hospital.queues.get(queue).map(|q| (q.name.clone(), q.name_en.clone())).unwrap_or_default();
                json!({"event": "transferred", "from": from, "to": queue, "queue_name": name.0, "queue_name_en": name.1})
            }
            Event::CarriedOver { ticket, .. } => {
                self.learn(ticket);
                json!({"event": "carried_over", "number": ticket.number})
            }
            Event::CheckedIn { late, reinserted, .. } => json!({"event": "checked_in", "late": late, "reinserted": reinserted}),
            Event::PreCalled { .. } => {
                let (zh, en) = hospital.queues.get(queue).map(|q| (q.name.clone(), q.name_en.clone())).unwrap_or_default();
                let a = announce::pre_call(&self.number, &zh, &en);
                json!({"event": "you_are_next", "text_zh": a.text_zh, "text_en": a.text_en})
            }
            Event::Called { room, .. } => {
                let mut v = room_fields(room, &self.number, &self.masked_name);
                v["event"] = json!("called");
                v
            }
            Event::Recalled { room, .. } => {
                let mut v = room_fields(room, &self.number, &self.masked_name);
                v["event"] = json!("recalled");
                v
            }
            Event::Started { room, .. } => json!({"event": "started", "room": room}),
            Event::Completed { room, .. } => json!({"event": "completed", "room": room}),
            Event::Missed { room, auto, .. } => json!({"event": "missed", "room": room, "auto": auto}),
            Event::Cancelled { .. } => json!({"event": "cancelled"}),
            // The phone hears about a transfer once, from the queue that takes the ticket in.
            Event::TransferredOut { .. } => return None,
            Event::Returned { doctor, .. } => json!({"event": "returned", "doctor": doctor}),
            Event::IdempotencyRecorded { .. }
            | Event::DayStarted { .. }
            | Event::RoomPaused { .. }
            | Event::RoomResumed { .. }
            | Event::PolicyChanged { .. } => return None,
        };
        let kind: &'static str = match body["event"].as_str() {
            Some("issued") => "issued",
            Some("transferred") => "transferred",
            Some("checked_in") => "checked_in",
            Some("you_are_next") => "you_are_next",
            Some("called") => "called",
            Some("recalled") => "recalled",
            Some("started") => "started",
            Some("completed") => "completed",
            Some("missed") => "missed",
            Some("cancelled") => "cancelled",
            Some("carried_over") => "carried_over",
            _ => "returned",
        };
        let seq = self.last_seq() + 1;
        let mut message = json!({"type": "event", "seq": seq, "ticket": self.ticket, "number": self.number, "patient_id": self.patient, "queue": queue, "at": at});
        if let (Some(m), Value::Object(b)) = (message.as_object_mut(), body) {
            m.extend(b);
        }
        self.items.push(FeedItem { seq, journal_seq, kind, text: message.to_string().into() });
        self.items.last()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::command::{Command, IssueTicket};
    use crate::domain::ids::*;
    use crate::domain::queue::QueueState;

    #[test]
    fn feed_numbers_from_the_journal_and_ignores_duplicates() {
        let h = Hospital::demo();
        let q = QueueId::parse("internal-medicine").unwrap();
        let mut s = QueueState::new(h.queues[&q].clone());
        let t = TicketId::parse("t1").unwrap();
        let mut log = Vec::new();
        let issue = Command::Issue(IssueTicket::walk_in(t.clone(), PatientId::parse("p").unwrap(), DisplayName::parse("张三丰").unwrap(), PriorityClass::parse("normal").unwrap()));
        let now = 1_795_482_000_000;
        log.extend(s.execute(&issue, now).unwrap().events);
        log.extend(s.execute(&Command::CallNext { room: RoomId::parse("c-101").unwrap(), caller: "n".into() }, now).unwrap().events);
        log.extend(s.execute(&Command::Recall { ticket: t.clone() }, now).unwrap().events);
        let mut feed = TicketFeed::new(t.clone());
        for (i, e) in log.iter().enumerate() {
            feed.push(i as i64 + 1, &q, now, e, &h);
            feed.push(i as i64 + 1, &q, now, e, &h); // a live copy of the same event
        }
        let kinds: Vec<_> = feed.since(0).iter().map(|i| i.kind.to_owned()).collect();
        assert_eq!(kinds, ["issued", "you_are_next", "called", "recalled"]);
        assert_eq!(feed.since(2).iter().map(|i| i.seq).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(feed.since(2)[0].message()["text_zh"], "请 A001 号 张*丰 到 101 诊室就诊");
        assert!(feed.since(9).is_empty());
    }
}
