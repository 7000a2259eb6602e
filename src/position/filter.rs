//! The tracker: a forward filter (an HMM) over the space's states, one belief per tag.
//!
//! Each step moves the belief through the space's moves (so it walks corridors, never through
//! walls, and changes floor only along a lift or stairs link), then weighs every state by how well
//! its fingerprint matches what the tag hears. Matching ignores a common offset (a phone in a
//! pocket hears everything a few dB quieter than the calibration robot did). The belief is kept
//! sparse, so a step costs what the tag's neighbourhood costs, not the building. Pure: time comes
//! in with the scan.

use super::radio::RadioMap;
use std::sync::Arc;

/// One anchor heard at one strength.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub anchor: u16,
    pub rssi: f32,
}

/// What a tag heard (or was heard by) at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Scan {
    pub t_ms: i64,
    pub readings: Vec<Reading>,
}

/// A position estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub t_ms: i64,
    /// Space level index.
    pub level: u16,
    pub x: f64,
    pub y: f64,
    /// The most likely state (on `level`), for routing from it.
    pub state: u32,
    /// Root-mean-square distance of the belief from (x, y), metres.
    pub spread_m: f64,
    /// From a fixed point (kiosk, QR marker), not from radio.
    pub exact: bool,
}

/// One tag's belief and recent readings.
#[derive(Debug, Clone, Default)]
pub struct Track {
    support: Vec<(u32, f32)>,
    /// The last reading per anchor: (anchor, rssi, when).
    heard: Vec<(u16, f32, i64)>,
    /// When each anchor last heard the tag, within [`UNHEARD_MS`].
    recent: Vec<(u16, i64)>,
    last_step_ms: Option<i64>,
    last: Option<Estimate>,
    lost_steps: u32,
    /// The walk's recent velocity (metres per second), from successive estimates on one level:
    /// people keep walking the way they were going, so the belief drifts with them.
    velocity: (f64, f64),
    /// The belief's own mean at the last step (before it was carried forward to "now").
    filtered: Option<Estimate>,
}

impl Track {
    pub fn estimate(&self) -> Option<Estimate> {
        self.last
    }
}

/// What one scan did.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Update {
    /// The estimate after the scan (the previous one when the scan was pooled for the next step).
    pub estimate: Option<Estimate>,
    /// Readings ignored: impossible strength, an anchor the map does not know, or older than
    /// what the tag already used.
    pub rejected: u32,
}

/// RSSI outside this range is not a real BLE reading.
pub const RSSI_RANGE: (f32, f32) = (-120.0, 0.0);
/// At most this many steps of movement between two scans (after a long gap the belief is wide
/// enough; more steps only cost time).
const MAX_STEPS: i64 = 8;
/// Mass spread over the states near the loudest anchor each step, so a belief that went wrong
/// can recover where the radio says the tag is.
const INJECT: f32 = 1e-4;
/// States below this fraction of the most likely one are dropped.
const PRUNE: f32 = 1e-5;
/// The most states a belief keeps.
const MAX_SUPPORT: usize = 4096;
/// A heard anchor that the state's fingerprint says is out of range counts this far off (dB).
const MISS_DB: f64 = 12.0;
/// How far a tag's gain typically differs from the calibration's (dB, one standard deviation).
const OFFSET_SD_DB: f64 = 8.0;
/// A tag's gain may differ from the calibration's by up to this much (dB).
const MAX_OFFSET_DB: f64 = 15.0;
/// How much of the walk's velocity carries over from one estimate to the next.
const VELOCITY_KEEP: f64 = 0.5;
/// The share of a step's moves that ignores the walk's direction (people stop and turn).
const STAY_OPEN: f32 = 0.05;
/// Steps in a row in which no state explains the readings before the belief starts over.
const LOST_AFTER: u32 = 5;
/// An anchor that should hear the tag where a state is, and has not for this long, counts
/// against that state (as a reading at the sensitivity, at most [`MISS_DB`] off)...
const UNHEARD_MS: i64 = 3_000;
/// An unheard anchor counts at most this far off (dB): gateways miss reports now and then.
const UNHEARD_CAP_DB: f64 = 6.0;
/// ...provided the anchor is alive: it reported some tag within this long (one that has never
/// reported counts as alive for this long after the tracker's first reading, then as off).
const ALIVE_MS: i64 = 120_000;
/// `alive` of an anchor known to work (replays of a working installation).
const WORKING: i64 = i64::MAX;

/// The filter over one radio map, with scratch space for its steps. One per owner (an actor,
/// a replay); tracks are the per-tag state it updates.
pub struct Tracker {
    radio: Arc<RadioMap>,
    dense: Vec<f32>,
    touched: Vec<u32>,
    /// Per anchor: when it last reported any tag (a silent anchor may be off, and says nothing);
    /// `i64::MIN` never, [`WORKING`] known to work.
    alive: Vec<i64>,
    /// The first reading this tracker took.
    first_ms: Option<i64>,
}

impl Tracker {
    pub fn new(radio: Arc<RadioMap>) -> Tracker {
        let n = radio.space.len();
        let anchors = radio.anchors();
        Tracker { radio, dense: vec![0.0; n], touched: Vec::new(), alive: vec![i64::MIN; anchors], first_ms: None }
    }

    /// Every anchor works (a replay or simulation of a working installation): an anchor that
    /// does not hear a tag always counts against the states it should hear it at.
    pub fn all_anchors_working(&mut self) {
        self.alive.fill(WORKING);
    }

    fn alive(&self, anchor: u16, t_ms: i64) -> bool {
        match self.alive[anchor as usize] {
            WORKING => true,
            i64::MIN => self.first_ms.is_some_and(|f| t_ms.saturating_sub(f) <= ALIVE_MS),
            last => t_ms.saturating_sub(last) <= ALIVE_MS,
        }
    }

    pub fn radio(&self) -> &Arc<RadioMap> {
        &self.radio
    }

    /// Takes one scan into `track`; steps the filter when a step's time has passed.
    pub fn update(&mut self, track: &mut Track, scan: &Scan) -> Update {
        let p = self.radio.file.params;
        let mut rejected = 0;
        if let Some(last) = track.last_step_ms {
            if scan.t_ms < last - p.hold_ms {
                return Update { estimate: track.last, rejected: scan.readings.len() as u32 };
            }
        }
        for r in &scan.readings {
            let valid = (r.anchor as usize) < self.radio.anchors() && r.rssi.is_finite() && r.rssi >= RSSI_RANGE.0 && r.rssi <= RSSI_RANGE.1;
            if !valid {
                rejected += 1;
                continue;
            }
            match track.heard.iter_mut().find(|h| h.0 == r.anchor) {
                Some(h) if h.2 <= scan.t_ms => *h = (r.anchor, r.rssi, scan.t_ms),
                Some(_) => rejected += 1,
                None => track.heard.push((r.anchor, r.rssi, scan.t_ms)),
            }
            match track.recent.iter_mut().find(|h| h.0 == r.anchor) {
                Some(h) => h.1 = h.1.max(scan.t_ms),
                None => track.recent.push((r.anchor, scan.t_ms)),
            }
            let alive = &mut self.alive[r.anchor as usize];
            if *alive != WORKING {
                *alive = (*alive).max(scan.t_ms);
            }
            self.first_ms.get_or_insert(scan.t_ms);
        }
        let t = scan.t_ms;
        if let Some(last) = track.last_step_ms {
            if t - last < p.step_ms {
                return Update { estimate: track.last, rejected };
            }
        }
        track.heard.retain(|h| t - h.2 <= p.hold_ms);
        track.recent.retain(|h| t - h.1 <= UNHEARD_MS);
        if track.heard.is_empty() {
            return Update { estimate: track.last, rejected };
        }
        let steps = track.last_step_ms.map_or(0, |last| ((t - last) / p.step_ms).clamp(1, MAX_STEPS));
        track.last_step_ms = Some(t);
        let loudest = track.heard.iter().max_by(|a, b| a.1.total_cmp(&b.1)).map(|h| h.0).unwrap_or(0);
        if track.support.is_empty() || track.lost_steps >= LOST_AFTER {
            let start = self.radio.near_anchor(loudest);
            let w = 1.0 / start.len().max(1) as f32;
            track.support = start.iter().map(|&s| (s, w)).collect();
            track.lost_steps = 0;
        } else {
            for _ in 0..steps {
                self.propagate(track, p.step_ms);
            }
            self.inject(track, loudest);
        }
        let explained = self.weigh(track, t);
        track.lost_steps = if explained { 0 } else { track.lost_steps + 1 };
        let previous = track.filtered;
        track.filtered = self.estimate(track, t);
        track.velocity = match (previous, track.filtered) {
            (Some(a), Some(b)) if a.level == b.level && b.t_ms > a.t_ms => {
                let dt = (b.t_ms - a.t_ms) as f64 / 1000.0;
                let v = ((b.x - a.x) / dt, (b.y - a.y) / dt);
                let mixed = (VELOCITY_KEEP * track.velocity.0 + (1.0 - VELOCITY_KEEP) * v.0, VELOCITY_KEEP * track.velocity.1 + (1.0 - VELOCITY_KEEP) * v.1);
                let speed = mixed.0.hypot(mixed.1);
                let k = if speed > p.speed_m_s { p.speed_m_s / speed } else { 1.0 };
                (mixed.0 * k, mixed.1 * k)
            }
            _ => (0.0, 0.0),
        };
        // The readings are on average some hundreds of milliseconds old: carry the estimate
        // forward along the walk to now, onto the nearest walkable state.
        let age_s = track.heard.iter().map(|h| (t - h.2) as f64).sum::<f64>() / track.heard.len() as f64 / 1000.0;
        track.last = track.filtered.map(|e| {
            let (x, y) = (e.x + track.velocity.0 * age_s, e.y + track.velocity.1 * age_s);
            match self.radio.space.nearest(e.level, x, y, 2.0 * self.radio.space.params.reach_m) {
                Some(state) => Estimate { x, y, state, ..e },
                None => e,
            }
        });
        Update { estimate: track.last, rejected }
    }

    /// Puts the tag at a fixed point (a kiosk or QR scan): exact, whatever the radio said.
    pub fn fix(&mut self, track: &mut Track, level: u16, x: f64, y: f64, t_ms: i64) -> Option<Estimate> {
        let state = self.radio.space.nearest(level, x, y, 10.0)?;
        track.support = vec![(state, 1.0)];
        track.velocity = (0.0, 0.0);
        track.last_step_ms = Some(t_ms);
        track.filtered = None;
        track.lost_steps = 0;
        track.last = Some(Estimate { t_ms, level, x, y, state, spread_m: 0.0, exact: true });
        track.last
    }

    fn propagate(&mut self, track: &mut Track, step_ms: i64) {
        let space = &self.radio.space;
        // Where the walk would take the tag in one step, and how surely: a move's weight is
        // its share of the space's moves, tilted towards that displacement.
        let dt = step_ms as f64 / 1000.0;
        let drift = (track.velocity.0 * dt, track.velocity.1 * dt);
        let tilt = drift.0 != 0.0 || drift.1 != 0.0;
        let spread2 = 2.0 * (space.params.reach_m / 2.0).powi(2);
        let mut row: Vec<f32> = Vec::new();
        for &(s, p) in &track.support {
            let moves = space.moves(s);
            let from = space.states[s as usize];
            row.clear();
            let mut total = 0.0f32;
            for &(to, w) in moves {
                let w = if tilt {
                    let at = space.states[to as usize];
                    let off = (at.x - from.x - drift.0).powi(2) + (at.y - from.y - drift.1).powi(2);
                    w * (STAY_OPEN + (-off / spread2).exp() as f32)
                } else {
                    w
                };
                row.push(w);
                total += w;
            }
            for (&(to, _), &w) in moves.iter().zip(&row) {
                let cell = &mut self.dense[to as usize];
                if *cell == 0.0 {
                    self.touched.push(to);
                }
                *cell += p * w / total;
            }
        }
        self.gather(track);
    }

    /// Moves the scratch cells back into the belief and clears them for the next use.
    fn gather(&mut self, track: &mut Track) {
        track.support.clear();
        for &s in &self.touched {
            track.support.push((s, self.dense[s as usize]));
            self.dense[s as usize] = 0.0;
        }
        self.touched.clear();
    }

    /// A little mass near the loudest anchor, on the floors the belief is already on (a floor
    /// change needs a lift or stairs, or a belief that is lost).
    fn inject(&mut self, track: &mut Track, loudest: u16) {
        let space = &self.radio.space;
        let mut levels: Vec<u16> = track.support.iter().map(|&(s, _)| space.states[s as usize].level).collect();
        levels.sort_unstable();
        levels.dedup();
        if !levels.contains(&self.radio.anchor_levels[loudest as usize]) {
            return;
        }
        let near = self.radio.near_anchor(loudest);
        let w = INJECT / near.len().max(1) as f32;
        for &(s, p) in &track.support {
            self.dense[s as usize] = p;
            self.touched.push(s);
        }
        for &s in near {
            if self.dense[s as usize] == 0.0 {
                self.touched.push(s);
            }
            self.dense[s as usize] += w;
        }
        self.gather(track);
    }

    /// Multiplies in the readings' likelihood, normalises and prunes. False when no state of the
    /// belief explains the readings (the tag is somewhere else).
    fn weigh(&self, track: &mut Track, t_ms: i64) -> bool {
        let sigma = self.radio.file.params.sigma_db;
        let sensitivity = self.radio.file.path_loss.sensitivity_dbm;
        let heard = &track.heard;
        let recent = &track.recent;
        let mut logs: Vec<f64> = Vec::with_capacity(track.support.len());
        let mut best = f64::NEG_INFINITY;
        // How well the best state explains what was heard (the unheard anchors aside: they
        // weigh states against each other but never make the tag "lost").
        let mut best_fit = f64::NEG_INFINITY;
        for &(s, _) in &track.support {
            let fp = self.radio.fingerprint(s);
            let (mut sum, mut n, mut misses) = (0.0f64, 0usize, 0usize);
            for h in heard {
                let f = fp[h.0 as usize];
                if f.is_nan() {
                    misses += 1;
                } else {
                    sum += (f - h.1) as f64;
                    n += 1;
                }
            }
            // The common offset: its most likely value under a Gaussian prior of OFFSET_SD_DB
            // (shrunk towards zero when few anchors are compared), and that prior's cost.
            let k0 = (sigma / OFFSET_SD_DB).powi(2);
            let offset = if n > 0 { (sum / (n as f64 + k0)).clamp(-MAX_OFFSET_DB, MAX_OFFSET_DB) } else { 0.0 };
            let mut ss = misses as f64 * MISS_DB * MISS_DB + k0 * offset * offset;
            for h in heard {
                let f = fp[h.0 as usize];
                if !f.is_nan() {
                    ss += ((f - h.1) as f64 - offset).powi(2);
                }
            }
            best_fit = best_fit.max(-0.5 * ss / (sigma * sigma));
            // Anchors that should hear the tag here, are alive, and have not: as if heard at
            // the sensitivity.
            for &a in self.radio.loud_at(s) {
                if !self.alive(a, t_ms) || recent.iter().any(|h| h.0 == a) {
                    continue;
                }
                let over = fp[a as usize] as f64 - offset - sensitivity;
                if over > 0.0 {
                    ss += over.min(UNHEARD_CAP_DB).powi(2);
                }
            }
            let l = -0.5 * ss / (sigma * sigma);
            best = best.max(l);
            logs.push(l);
        }
        let mut total = 0.0f64;
        for (e, l) in track.support.iter_mut().zip(&logs) {
            e.1 *= (l - best).exp() as f32;
            total += e.1 as f64;
        }
        if total > 0.0 {
            let max = track.support.iter().map(|e| e.1).fold(0.0f32, f32::max) / total as f32;
            for e in track.support.iter_mut() {
                e.1 /= total as f32;
            }
            track.support.retain(|e| e.1 >= max * PRUNE);
            if track.support.len() > MAX_SUPPORT {
                track.support.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
                track.support.truncate(MAX_SUPPORT);
            }
        }
        // Explained: some state within 3σ (on average per reading).
        best_fit > -4.5
    }

    fn estimate(&self, track: &Track, t_ms: i64) -> Option<Estimate> {
        let space = &self.radio.space;
        let mut by_level: Vec<(u16, f64)> = Vec::new();
        for &(s, p) in &track.support {
            let l = space.states[s as usize].level;
            match by_level.iter_mut().find(|e| e.0 == l) {
                Some(e) => e.1 += p as f64,
                None => by_level.push((l, p as f64)),
            }
        }
        let level = by_level.iter().max_by(|a, b| a.1.total_cmp(&b.1))?.0;
        let (mut w, mut x, mut y, mut top) = (0.0, 0.0, 0.0, (0u32, -1.0f32));
        for &(s, p) in &track.support {
            let st = space.states[s as usize];
            if st.level == level {
                w += p as f64;
                x += p as f64 * st.x;
                y += p as f64 * st.y;
                if p > top.1 {
                    top = (s, p);
                }
            }
        }
        if w <= 0.0 {
            return None;
        }
        let (x, y) = (x / w, y / w);
        let var = track
            .support
            .iter()
            .filter(|&&(s, _)| space.states[s as usize].level == level)
            .map(|&(s, p)| p as f64 * ((space.states[s as usize].x - x).powi(2) + (space.states[s as usize].y - y).powi(2)))
            .sum::<f64>()
            / w;
        Some(Estimate { t_ms, level, x, y, state: top.0, spread_m: var.sqrt(), exact: false })
    }
}
