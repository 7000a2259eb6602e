//! Delivery assurance for wall displays: every call sent to a display is followed until the
//! display says it was shown and spoken. Late or missing acknowledgements and displays that went
//! offline raise alarms; a later acknowledgement or the display coming back clears them.
//!
//! Pure: the caller says when something was sent, acknowledged, or when time passed.

use super::event::UnixMs;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How long a display may take (`[delivery]` in the hospital config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryRules {
    /// A call not acknowledged as shown this many seconds after it was sent raises `not_shown`.
    pub shown_within_secs: u32,
    /// A call not acknowledged as spoken this many seconds after it was sent raises `not_spoken`
    /// (announcements queue, so this covers the ones waiting before it).
    pub spoken_within_secs: u32,
}

impl Default for DeliveryRules {
    fn default() -> Self {
        Self { shown_within_secs: 10, spoken_within_secs: 60 }
    }
}

/// An acknowledgement as a display sends it: MQTT `displays/{id}/ack`
/// `{"v": 1, "seq": 1042, "stage": "shown"}`, or on the browser display's socket the same with
/// `"type": "ack"`. `at` (the display's clock) is accepted and not trusted: delays are measured
/// on the server's clock.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckMessage {
    #[serde(default)]
    pub v: Option<u32>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    pub seq: i64,
    pub stage: Stage,
    #[serde(default)]
    pub at: Option<i64>,
    /// The queue call number, echoed back (informational).
    #[serde(default)]
    pub call: Option<u32>,
}

impl AckMessage {
    /// Parse an acknowledgement; `None` for anything else (counted by the caller).
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > 512 {
            return None;
        }
        let m: Self = serde_json::from_slice(bytes).ok()?;
        (m.kind.as_deref().is_none_or(|k| k == "ack") && m.v.is_none_or(|v| v == 1)).then_some(m)
    }
}

/// What a display acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The call is on the screen.
    Shown,
    /// Its announcement finished playing (or the display has no voice and showed it).
    Spoken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    NotShown,
    NotSpoken,
    Offline,
}

impl AlarmKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            AlarmKind::NotShown => "not_shown",
            AlarmKind::NotSpoken => "not_spoken",
            AlarmKind::Offline => "offline",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alarm {
    pub display: String,
    pub kind: AlarmKind,
    pub since: UnixMs,
    /// The call it is about (not for `offline`).
    pub seq: Option<i64>,
    pub number: Option<String>,
}

/// A raised or cleared alarm, for logs and metrics.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Raised(Alarm),
    Cleared(Alarm),
}

/// The result of one acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Acked {
    /// First acknowledgement of this stage: milliseconds from sent to it.
    Shown { delay_ms: i64 },
    Spoken { delay_ms: i64 },
    /// Already acknowledged (a repeat): nothing new.
    Repeat,
    /// Not a call this display was sent (or one forgotten long ago).
    Unknown,
}

#[derive(Debug, Clone, PartialEq)]
struct Pending {
    number: String,
    sent_at: UnixMs,
    shown_at: Option<UnixMs>,
}

/// Per display: delays measured and counts, for the API.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DisplayDelivery {
    pub sent: u64,
    pub shown: u64,
    pub spoken: u64,
    /// The latest call-to-shown and call-to-spoken delays, milliseconds.
    pub last_shown_ms: Option<i64>,
    pub last_spoken_ms: Option<i64>,
    pub last_ack_at: Option<UnixMs>,
    /// Calls sent and not yet acknowledged as spoken.
    pub unacknowledged: usize,
}

/// Calls remembered per display; older ones are forgotten (their alarm, if any, stays).
const KEEP_PER_DISPLAY: usize = 256;

#[derive(Debug, Clone, Default)]
pub struct Delivery {
    rules: DeliveryRules,
    pending: BTreeMap<String, BTreeMap<i64, Pending>>,
    stats: BTreeMap<String, DisplayDelivery>,
    alarms: BTreeMap<(String, AlarmKind), Alarm>,
}

impl Delivery {
    pub fn new(rules: DeliveryRules, displays: impl IntoIterator<Item = String>) -> Self {
        let stats = displays.into_iter().map(|d| (d, DisplayDelivery::default())).collect();
        Self { rules, pending: BTreeMap::new(), stats, alarms: BTreeMap::new() }
    }

    pub fn knows(&self, display: &str) -> bool {
        self.stats.contains_key(display)
    }

    /// A call (`seq`, the journal position) was sent to `display` at `at`.
    pub fn sent(&mut self, display: &str, seq: i64, number: &str, at: UnixMs) {
        let Some(st) = self.stats.get_mut(display) else { return };
        st.sent += 1;
        let p = self.pending.entry(display.to_owned()).or_default();
        p.insert(seq, Pending { number: number.to_owned(), sent_at: at, shown_at: None });
        while p.len() > KEEP_PER_DISPLAY {
            p.pop_first();
        }
        st.unacknowledged = p.len();
    }

    /// `display` acknowledged `stage` of call `seq` at `at`. Acknowledging a call also clears
    /// the display's alarms about it and about earlier calls.
    pub fn ack(&mut self, display: &str, seq: i64, stage: Stage, at: UnixMs) -> (Acked, Vec<Change>) {
        let Some(st) = self.stats.get_mut(display) else { return (Acked::Unknown, vec![]) };
        let Some(p) = self.pending.get_mut(display).and_then(|m| m.get_mut(&seq)) else { return (Acked::Unknown, vec![]) };
        st.last_ack_at = Some(at);
        let delay = (at - p.sent_at).max(0);
        let mut acked = Acked::Repeat;
        if p.shown_at.is_none() {
            p.shown_at = Some(at);
            st.shown += 1;
            st.last_shown_ms = Some(delay);
            acked = Acked::Shown { delay_ms: delay };
        }
        if let Some(m) = self.pending.get_mut(display) {
            // A display shows the latest calls and speaks in order: a later call shown means the
            // earlier ones were shown (or already scrolled away); a later call spoken means the
            // earlier ones were spoken before it.
            for (_, q) in m.range_mut(..seq) {
                q.shown_at.get_or_insert(at);
            }
            if stage == Stage::Spoken {
                st.spoken += 1;
                st.last_spoken_ms = Some(delay);
                acked = Acked::Spoken { delay_ms: delay };
                *m = m.split_off(&(seq + 1));
            }
            st.unacknowledged = m.len();
        }
        let mut kinds = vec![AlarmKind::NotShown];
        if stage == Stage::Spoken {
            kinds.push(AlarmKind::NotSpoken);
        }
        let cleared = self.clear(display, &kinds, |a| a.seq.is_some_and(|s| s <= seq));
        (acked, cleared)
    }

    /// The display said it is online or offline.
    pub fn status(&mut self, display: &str, online: bool, at: UnixMs) -> Vec<Change> {
        if !self.knows(display) {
            return vec![];
        }
        if online {
            return self.clear(display, &[AlarmKind::Offline], |_| true);
        }
        let key = (display.to_owned(), AlarmKind::Offline);
        if self.alarms.contains_key(&key) {
            return vec![];
        }
        let a = Alarm { display: display.to_owned(), kind: AlarmKind::Offline, since: at, seq: None, number: None };
        self.alarms.insert(key, a.clone());
        vec![Change::Raised(a)]
    }

    /// Raise alarms for calls whose acknowledgement is overdue at `now`. One alarm of a kind per
    /// display at a time: it names the first overdue call.
    pub fn tick(&mut self, now: UnixMs) -> Vec<Change> {
        let shown = i64::from(self.rules.shown_within_secs) * 1000;
        let spoken = i64::from(self.rules.spoken_within_secs) * 1000;
        let mut out = Vec::new();
        for (display, calls) in &self.pending {
            for (seq, p) in calls {
                let kind = if p.shown_at.is_none() && now - p.sent_at >= shown {
                    AlarmKind::NotShown
                } else if now - p.sent_at >= spoken {
                    AlarmKind::NotSpoken
                } else {
                    continue;
                };
                let key = (display.clone(), kind);
                if self.alarms.contains_key(&key) {
                    continue;
                }
                let a = Alarm { display: display.clone(), kind, since: now, seq: Some(*seq), number: Some(p.number.clone()) };
                self.alarms.insert(key, a.clone());
                out.push(Change::Raised(a));
            }
        }
        out
    }

    fn clear(&mut self, display: &str, kinds: &[AlarmKind], applies: impl Fn(&Alarm) -> bool) -> Vec<Change> {
        let mut out = Vec::new();
        for k in kinds {
            let key = (display.to_owned(), *k);
            if self.alarms.get(&key).is_some_and(&applies) {
                if let Some(a) = self.alarms.remove(&key) {
                    out.push(Change::Cleared(a));
                }
            }
        }
        // A cleared `not_shown` may leave later calls overdue: `tick` raises again for them.
        out
    }

    pub fn alarms(&self) -> Vec<Alarm> {
        self.alarms.values().cloned().collect()
    }

    pub fn stats(&self) -> &BTreeMap<String, DisplayDelivery> {
        &self.stats
    }

    pub fn display(&self, id: &str) -> Option<&DisplayDelivery> {
        self.stats.get(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> Delivery {
        Delivery::new(DeliveryRules { shown_within_secs: 5, spoken_within_secs: 30 }, ["d1".to_owned(), "d2".to_owned()])
    }

    #[test]
    fn acknowledged_calls_measure_delays_and_raise_nothing() {
        let mut d = book();
        d.sent("d1", 10, "A001", 1_000);
        assert_eq!(d.ack("d1", 10, Stage::Shown, 1_150).0, Acked::Shown { delay_ms: 150 });
        assert_eq!(d.ack("d1", 10, Stage::Shown, 1_200).0, Acked::Repeat);
        assert_eq!(d.ack("d1", 10, Stage::Spoken, 4_000).0, Acked::Spoken { delay_ms: 3_000 });
        assert_eq!(d.ack("d1", 10, Stage::Spoken, 4_100).0, Acked::Unknown, "done and forgotten");
        assert!(d.tick(100_000).is_empty());
        d.sent("d1", 11, "A002", 5_000);
        d.sent("d1", 12, "A003", 5_001);
        d.ack("d1", 12, Stage::Spoken, 9_000);
        let s = d.display("d1").unwrap();
        assert_eq!((s.sent, s.shown, s.spoken, s.unacknowledged), (3, 2, 2, 0), "spoken in order: 11 went before 12");
        assert_eq!(d.ack("d2", 10, Stage::Shown, 1).0, Acked::Unknown, "never sent to d2");
        assert_eq!(d.ack("nope", 10, Stage::Shown, 1).0, Acked::Unknown);
    }

    #[test]
    fn a_silent_display_raises_one_alarm_that_a_later_ack_clears() {
        let mut d = book();
        d.sent("d1", 1, "A001", 0);
        d.sent("d1", 2, "A002", 100);
        assert!(d.tick(4_999).is_empty(), "within the time");
        let raised = d.tick(5_100);
        assert_eq!(raised.len(), 1, "one alarm per kind and display");
        assert!(matches!(&raised[0], Change::Raised(a) if a.kind == AlarmKind::NotShown && a.seq == Some(1)));
        assert!(d.tick(6_000).is_empty(), "not raised twice");
        // Shown the later call: the alarm about the earlier one clears (the screen shows the latest).
        let (_, cleared) = d.ack("d1", 2, Stage::Shown, 6_500);
        assert_eq!(cleared.len(), 1);
        assert!(d.alarms().is_empty());
        assert!(d.tick(7_000).is_empty(), "call 1 counts as shown once a later call is");
        // Shown but never spoken: not_spoken after 30 s.
        let r = d.tick(30_000);
        assert!(r.iter().any(|c| matches!(c, Change::Raised(a) if a.kind == AlarmKind::NotSpoken)));
        d.ack("d1", 2, Stage::Spoken, 31_000);
        assert!(d.alarms().is_empty(), "spoken clears not_spoken for it and earlier calls");
    }

    #[test]
    fn offline_raises_and_online_clears() {
        let mut d = book();
        assert_eq!(d.status("d2", false, 5).len(), 1);
        assert!(d.status("d2", false, 6).is_empty());
        assert_eq!(d.alarms()[0].kind, AlarmKind::Offline);
        assert_eq!(d.status("d2", true, 7).len(), 1);
        assert!(d.alarms().is_empty());
        assert!(d.status("unknown", false, 1).is_empty());
    }

    #[test]
    fn memory_is_bounded_per_display() {
        let mut d = book();
        for i in 0..1_000 {
            d.sent("d1", i, "A001", i);
        }
        assert_eq!(d.display("d1").unwrap().unacknowledged, KEEP_PER_DISPLAY);
    }
}
