//! Live positioning, pure: gateway reports and phone scans in, per-visit positions out.
//!
//! Tags (a wristband, a phone) are bound to a visit and unbound at its end; a reading about a tag
//! no visit holds is counted and dropped, and unbinding forgets the tag's track and trail, so a
//! position exists only while the visit does (and the trail only for `retention`). Every reading
//! that cannot be used — from a gateway the radio map does not know, an impossible strength, a
//! clock too far from ours, an unbound tag — is counted by reason and moves nobody. The owner
//! (an actor) passes the time in, publishes what comes out, and exports the counters.

use super::filter::{Estimate, Reading, Scan, Track, Tracker, RSSI_RANGE};
use super::radio::RadioMap;
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// One tag heard by a gateway, as ESPresense-style receivers publish it (extra fields such as
/// `distance` or `rssi@1m` are ignored).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TagHeard {
    /// The tag (or phone) identifier.
    pub id: String,
    pub rssi: f64,
    /// When it was heard, milliseconds since the epoch; the arrival time when absent.
    #[serde(default, alias = "t")]
    pub ts: Option<i64>,
}

/// A report on `gateways/{gateway}/scan`: one tag, or several heard in one sweep.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum GatewayReport {
    One(TagHeard),
    Many(Vec<TagHeard>),
}

/// Why readings were not used (the metric's `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dropped {
    /// The payload is not a report.
    Malformed,
    UnknownGateway,
    ImpossibleRssi,
    /// Its time is more than `max_skew_ms` ahead of ours or `max_age_ms` behind.
    ClockSkew,
    UnboundTag,
    /// Older than what the tag's track already used.
    Stale,
}

impl Dropped {
    pub const ALL: [Dropped; 6] = [Dropped::Malformed, Dropped::UnknownGateway, Dropped::ImpossibleRssi, Dropped::ClockSkew, Dropped::UnboundTag, Dropped::Stale];

    pub fn label(self) -> &'static str {
        match self {
            Dropped::Malformed => "malformed",
            Dropped::UnknownGateway => "unknown_gateway",
            Dropped::ImpossibleRssi => "impossible_rssi",
            Dropped::ClockSkew => "clock_skew",
            Dropped::UnboundTag => "unbound_tag",
            Dropped::Stale => "stale",
        }
    }
}

/// Limits of the live part.
#[derive(Debug, Clone, Copy)]
pub struct LiveRules {
    /// A reading stamped further ahead of our clock than this is refused.
    pub max_skew_ms: i64,
    /// A reading older than this when it arrives is refused.
    pub max_age_ms: i64,
    /// How long a visit's position trail is kept (the latest position stays while bound).
    pub retention_ms: i64,
    /// The most positions kept per visit.
    pub trail_cap: usize,
}

impl Default for LiveRules {
    fn default() -> Self {
        LiveRules { max_skew_ms: 5_000, max_age_ms: 30_000, retention_ms: 15 * 60_000, trail_cap: 1_000 }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BindError {
    #[error("tag {tag} is bound to another visit")]
    TagInUse { tag: String },
    #[error("tag id: 1 to 64 printable characters")]
    BadTag,
}

struct Bound {
    visit: String,
    track: Track,
    trail: VecDeque<Estimate>,
}

/// What changed: a visit's new position estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct Moved {
    pub visit: String,
    pub estimate: Estimate,
}

/// The live positions of one venue.
pub struct Positioning {
    tracker: Tracker,
    rules: LiveRules,
    /// Tag → its visit and track.
    tags: HashMap<String, Bound>,
    /// Visit → its tags (a wristband and a phone may both be bound).
    visits: HashMap<String, Vec<String>>,
    dropped: HashMap<Dropped, u64>,
    accepted: u64,
}

impl Positioning {
    pub fn new(radio: Arc<RadioMap>, rules: LiveRules) -> Positioning {
        Positioning { tracker: Tracker::new(radio), rules, tags: HashMap::new(), visits: HashMap::new(), dropped: HashMap::new(), accepted: 0 }
    }

    pub fn radio(&self) -> &Arc<RadioMap> {
        self.tracker.radio()
    }

    /// The venue map changed (a validated reload): track on `radio`, rebuilt from the same
    /// calibration against the new map. Bindings, trails and counters stay; each tag's track
    /// starts again from its next reading (its states belonged to the old map's space).
    pub fn remap(&mut self, radio: Arc<RadioMap>) {
        self.tracker = Tracker::new(radio);
        for b in self.tags.values_mut() {
            b.track = Track::default();
        }
    }

    /// Binds a tag to a visit (again to the same visit is a no-op).
    pub fn bind(&mut self, tag: &str, visit: &str) -> Result<(), BindError> {
        if tag.is_empty() || tag.len() > 64 || tag.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(BindError::BadTag);
        }
        match self.tags.get(tag) {
            Some(b) if b.visit == visit => return Ok(()),
            Some(_) => return Err(BindError::TagInUse { tag: tag.to_owned() }),
            None => {}
        }
        self.tags.insert(tag.to_owned(), Bound { visit: visit.to_owned(), track: Track::default(), trail: VecDeque::new() });
        self.visits.entry(visit.to_owned()).or_default().push(tag.to_owned());
        Ok(())
    }

    /// Ends a visit: its tags are free again and everything known of where it went is forgotten.
    pub fn end_visit(&mut self, visit: &str) -> usize {
        let tags = self.visits.remove(visit).unwrap_or_default();
        for t in &tags {
            self.tags.remove(t);
        }
        tags.len()
    }

    /// Unbinds one tag (the visit keeps its other tags).
    pub fn unbind(&mut self, tag: &str) -> bool {
        let Some(b) = self.tags.remove(tag) else { return false };
        if let Some(v) = self.visits.get_mut(&b.visit) {
            v.retain(|t| t != tag);
            if v.is_empty() {
                self.visits.remove(&b.visit);
            }
        }
        true
    }

    /// A gateway's MQTT payload, received at `now_ms`.
    pub fn gateway_report(&mut self, gateway: &str, payload: &[u8], now_ms: i64) -> Vec<Moved> {
        let heard = match serde_json::from_slice::<GatewayReport>(payload) {
            Ok(GatewayReport::One(h)) => vec![h],
            Ok(GatewayReport::Many(v)) => v,
            Err(_) => {
                self.drop(Dropped::Malformed, 1);
                return Vec::new();
            }
        };
        let Some(&anchor) = self.tracker.radio().anchor_ids.get(gateway) else {
            self.drop(Dropped::UnknownGateway, heard.len().max(1) as u64);
            return Vec::new();
        };
        let mut moved = Vec::new();
        for h in heard {
            let t = h.ts.unwrap_or(now_ms);
            if let Some(m) = self.reading(&h.id, anchor, h.rssi, t, now_ms) {
                moved.push(m);
            }
        }
        moved
    }

    /// A phone's scan of beacons (ids as the radio map names its anchors), for its visit.
    pub fn phone_scan(&mut self, tag: &str, beacons: &[(String, f64)], t_ms: i64, now_ms: i64) -> Option<Moved> {
        let mut last = None;
        for (id, rssi) in beacons {
            match self.tracker.radio().anchor_ids.get(id).copied() {
                Some(anchor) => last = self.reading(tag, anchor, *rssi, t_ms, now_ms).or(last),
                None => self.drop(Dropped::UnknownGateway, 1),
            }
        }
        last
    }

    fn reading(&mut self, tag: &str, anchor: u16, rssi: f64, t_ms: i64, now_ms: i64) -> Option<Moved> {
        if !rssi.is_finite() || rssi < RSSI_RANGE.0 as f64 || rssi > RSSI_RANGE.1 as f64 {
            self.drop(Dropped::ImpossibleRssi, 1);
            return None;
        }
        if t_ms > now_ms + self.rules.max_skew_ms || t_ms < now_ms - self.rules.max_age_ms {
            self.drop(Dropped::ClockSkew, 1);
            return None;
        }
        let Some(bound) = self.tags.get_mut(tag) else {
            self.drop(Dropped::UnboundTag, 1);
            return None;
        };
        let before = bound.track.estimate();
        let update = self.tracker.update(&mut bound.track, &Scan { t_ms, readings: vec![Reading { anchor, rssi: rssi as f32 }] });
        let visit = bound.visit.clone();
        if update.rejected > 0 {
            self.drop(Dropped::Stale, update.rejected as u64);
            return None;
        }
        self.accepted += 1;
        let estimate = update.estimate.filter(|e| Some(*e) != before)?;
        let bound = self.tags.get_mut(tag)?;
        bound.trail.push_back(estimate);
        while bound.trail.len() > self.rules.trail_cap || bound.trail.front().is_some_and(|e| e.t_ms < now_ms - self.rules.retention_ms) {
            bound.trail.pop_front();
        }
        Some(Moved { visit, estimate })
    }

    /// A fixed-point scan (kiosk, QR marker) by one of the visit's tags: exact, at once.
    pub fn fix(&mut self, visit: &str, level: u16, x: f64, y: f64, now_ms: i64) -> Option<Moved> {
        let tags = self.visits.get(visit)?.clone();
        let mut out = None;
        for t in tags {
            let bound = self.tags.get_mut(&t)?;
            if let Some(e) = self.tracker.fix(&mut bound.track, level, x, y, now_ms) {
                bound.trail.push_back(e);
                out = Some(Moved { visit: visit.to_owned(), estimate: e });
            }
        }
        out
    }

    /// The visit's latest position (the freshest of its tags).
    pub fn location(&self, visit: &str) -> Option<Estimate> {
        self.visits.get(visit)?.iter().filter_map(|t| self.tags.get(t)?.track.estimate()).max_by_key(|e| e.t_ms)
    }

    /// The visit's trail within the retention window, oldest first.
    pub fn trail(&self, visit: &str) -> Vec<Estimate> {
        let mut out: Vec<Estimate> = self.visits.get(visit).into_iter().flatten().filter_map(|t| self.tags.get(t)).flat_map(|b| b.trail.iter().copied()).collect();
        out.sort_by_key(|e| e.t_ms);
        out
    }

    /// Forgets trail entries older than the retention window.
    pub fn purge(&mut self, now_ms: i64) {
        let horizon = now_ms - self.rules.retention_ms;
        for b in self.tags.values_mut() {
            while b.trail.front().is_some_and(|e| e.t_ms < horizon) {
                b.trail.pop_front();
            }
        }
    }

    fn drop(&mut self, why: Dropped, n: u64) {
        *self.dropped.entry(why).or_default() += n;
    }

    /// Readings dropped, by reason.
    pub fn dropped(&self, why: Dropped) -> u64 {
        self.dropped.get(&why).copied().unwrap_or(0)
    }

    /// Readings used.
    pub fn accepted(&self) -> u64 {
        self.accepted
    }

    pub fn bound_tags(&self) -> usize {
        self.tags.len()
    }

    /// The visits holding at least one tag.
    pub fn visits(&self) -> impl Iterator<Item = &str> {
        self.visits.keys().map(String::as_str)
    }

    /// The tags bound to a visit.
    pub fn tags_of(&self, visit: &str) -> &[String] {
        self.visits.get(visit).map_or(&[], Vec::as_slice)
    }

    /// The visit a tag is bound to.
    pub fn visit_of(&self, tag: &str) -> Option<&str> {
        self.tags.get(tag).map(|b| b.visit.as_str())
    }
}
