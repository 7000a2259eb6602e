//! `DisplayFeed`: what every wall display shows, computed once from the floor's committed stream
//! (each commit carries its queue's board and the tickets it called: nothing is asked back) and
//! handed to every way a display is reached — the MQTT edge (retained `state`, `announce`) and
//! browser displays over `/ws/displays/{id}`. The edges only encode and send.

use super::{Committed, Floor};
use crate::domain::config::{DisplayConfig, Hospital};
use crate::domain::display::{display_state, queues_of, Board, DisplayState};
use crate::domain::event::Event;
use crate::domain::ids::QueueId;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use tokio::sync::broadcast;

/// Protocol version carried in every display payload as `v` (MQTT and WebSocket alike).
pub const PROTOCOL_VERSION: u32 = 1;
/// Display messages buffered for slow subscribers. A subscriber that falls further behind gets
/// `Lagged` and re-reads the latest states ([`DisplayFeed::latest`]); announcements it missed are
/// gone (a call older than the buffer is no longer worth speaking).
const FEED_CAPACITY: usize = 4_096;

/// One message for one display: the payload is the full JSON (with `v`, `display`, `at`).
#[derive(Debug, Clone)]
pub enum DisplayMessage {
    /// What the screen shows now (MQTT: retained `state`).
    State { display: String, payload: Arc<Value> },
    /// One call or recall to speak (MQTT: `announce`).
    Announce { display: String, payload: Arc<Value> },
}

#[derive(Clone)]
pub struct DisplayFeed {
    /// Follows each call until the displays acknowledge it (edges hand it their acks).
    pub desk: super::delivery::DeliveryDesk,
    tx: broadcast::Sender<DisplayMessage>,
    /// The latest state payload of each display: what a (re)connecting display is given first.
    latest: Arc<RwLock<HashMap<String, Arc<Value>>>>,
    hospital: Arc<Hospital>,
}

impl DisplayFeed {
    /// Start following the floor's committed stream. Must run inside an actix system (or a
    /// tokio runtime).
    pub async fn start(floor: &Floor, desk: super::delivery::DeliveryDesk) -> Self {
        let (tx, _) = broadcast::channel(FEED_CAPACITY);
        let feed = Self { desk, tx, latest: Arc::default(), hospital: floor.hospital.clone() };
        // Subscribed before the first boards are read: nothing committed in between is missed.
        let commits = floor.committed();
        let mut worker = Worker::new(floor.hospital.clone(), feed.clone());
        // Every display has a state before anyone asks.
        worker.resync(floor).await;
        actix_rt::spawn(worker.run(floor.clone(), commits));
        feed
    }

    pub fn subscribe(&self) -> broadcast::Receiver<DisplayMessage> {
        self.tx.subscribe()
    }

    /// The latest state of one display.
    pub fn latest(&self, display: &str) -> Option<Arc<Value>> {
        self.latest.read().unwrap_or_else(|p| p.into_inner()).get(display).cloned()
    }

    /// The latest state of every display (for a publisher that reconnected or lagged).
    pub fn all_latest(&self) -> Vec<(String, Arc<Value>)> {
        let m = self.latest.read().unwrap_or_else(|p| p.into_inner());
        self.hospital.displays.iter().filter_map(|d| m.get(&d.id).map(|v| (d.id.clone(), v.clone()))).collect()
    }

    pub fn display(&self, id: &str) -> Option<&DisplayConfig> {
        self.hospital.displays.iter().find(|d| d.id == id)
    }

    fn set_latest(&self, display: &str, payload: Arc<Value>) {
        self.latest.write().unwrap_or_else(|p| p.into_inner()).insert(display.to_owned(), payload);
    }
}

struct Worker {
    hospital: Arc<Hospital>,
    feed: DisplayFeed,
    displays: Vec<(DisplayConfig, Vec<QueueId>)>,
    /// The latest board of each queue, from its last commit.
    boards: BTreeMap<QueueId, Arc<Board>>,
    /// The last state sent per display: unchanged states are not re-sent.
    sent: HashMap<String, DisplayState>,
}

impl Worker {
    fn new(hospital: Arc<Hospital>, feed: DisplayFeed) -> Self {
        let displays = hospital.displays.iter().map(|d| (d.clone(), queues_of(d, &hospital))).collect();
        Self { hospital, feed, displays, boards: BTreeMap::new(), sent: HashMap::new() }
    }

    /// Follow the commits: each carries its queue's board and the tickets it called.
    async fn run(mut self, floor: Floor, mut commits: broadcast::Receiver<Arc<Committed>>) {
        loop {
            match commits.recv().await {
                Ok(c) => {
                    self.announce(&c);
                    // Most commits leave the board as it was (a ticket issued behind the first
                    // few, a patient started): no display changes then.
                    if self.boards.get(&c.queue).is_none_or(|b| **b != *c.board) {
                        self.boards.insert(c.queue.clone(), c.board.clone());
                        self.refresh(&[c.queue.clone()]);
                    }
                }
                // Missed commits: take every queue's board as it is now. The calls missed are
                // not spoken (a call that old is no longer worth speaking).
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "the display feed fell behind the commits; resyncing from the queues");
                    self.resync(&floor).await;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    }

    /// Ask every queue for its board (at start, and after missing commits); refresh everything.
    async fn resync(&mut self, floor: &Floor) {
        for q in floor.queues() {
            if let Ok(b) = q.board().await {
                self.boards.insert(q.id().clone(), b);
            }
        }
        let all: Vec<QueueId> = self.boards.keys().cloned().collect();
        self.refresh(&all);
    }

    /// Recompute the states of the displays showing any of `dirty`; send those that changed.
    fn refresh(&mut self, dirty: &[QueueId]) {
        let affected: Vec<usize> = (0..self.displays.len()).filter(|&i| self.displays[i].1.iter().any(|q| dirty.contains(q))).collect();
        for i in affected {
            let d = &self.displays[i].0;
            let state = display_state(d, &self.hospital, &self.boards);
            if self.sent.get(&d.id) == Some(&state) {
                continue;
            }
            let mut payload = json!({"v": PROTOCOL_VERSION, "display": d.id, "at": self.feed.desk.now_ms()});
            if let (Some(p), Ok(Value::Object(s))) = (payload.as_object_mut(), serde_json::to_value(&state)) {
                p.extend(s);
            }
            let payload = Arc::new(payload);
            self.feed.set_latest(&d.id, payload.clone());
            self.sent.insert(d.id.clone(), state);
            // No subscriber yet is fine: the latest state waits in `latest`.
            let _ = self.feed.tx.send(DisplayMessage::State { display: d.id.clone(), payload });
        }
    }

    /// One announcement per call or recall, to every display showing that room.
    fn announce(&self, c: &Committed) {
        for (event, seq) in c.events.iter().zip(&c.seqs) {
            let (ticket, room, kind, call) = match event {
                Event::Called { ticket, room, call, .. } => (ticket, room, "call", call),
                Event::Recalled { ticket, room, call } => (ticket, room, "recall", call),
                _ => continue,
            };
            let Some(t) = c.ticket(ticket) else { continue };
            let (zh, en) = self.hospital.room(room).map_or((room.to_string(), String::new()), |r| (r.name.clone(), r.name_en.clone()));
            let a = crate::domain::announce::call(&t.number, &t.masked_name, &zh, &en);
            let now = self.feed.desk.now_ms();
            for (d, _) in self.displays.iter().filter(|(d, _)| d.rooms.contains(room)) {
                self.feed.desk.sent(&d.id, *seq, &t.number, now);
                let payload = json!({
                    "v": PROTOCOL_VERSION, "display": d.id, "kind": kind, "seq": seq, "call": call, "at": now,
                    "queue": c.queue, "ticket": ticket, "number": t.number, "name": t.masked_name,
                    "room": room, "room_name": zh, "room_name_en": en, "text_zh": a.text_zh, "text_en": a.text_en,
                });
                let _ = self.feed.tx.send(DisplayMessage::Announce { display: d.id.clone(), payload: Arc::new(payload) });
            }
        }
    }
}
