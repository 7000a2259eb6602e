//! The radio map: where the anchors (gateways, beacons) are, and what a tag hears at each state.
//!
//! Measured where a venue was calibrated (the mean RSSI of the calibration samples nearest each
//! state), predicted by a log-distance path-loss model elsewhere (its constants fitted to the
//! samples when there are any, textbook values when there are none). Both end up as one
//! fingerprint per state, so the filter has one emission model.

use super::space::{Space, SpaceParams};
use crate::map::VenueMap;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What a radio map file says (`clinicflow position calibrate` writes it; JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RadioMapFile {
    pub format: u32,
    pub venue: VenueRef,
    pub anchors: Vec<AnchorDef>,
    pub path_loss: PathLoss,
    pub params: TrackParams,
    /// The calibration samples, kept so the map can be rebuilt and the kNN baseline run.
    #[serde(default)]
    pub samples: Vec<Sample>,
}

pub const FORMAT: u32 = 1;

/// The venue the map is bound to: a venue of the atlas (by id), or a bare outline.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VenueRef {
    Map { id: String },
    Outline { id: String, outline: Vec<[f64; 2]> },
}

impl VenueRef {
    pub fn id(&self) -> &str {
        match self {
            VenueRef::Map { id } | VenueRef::Outline { id, .. } => id,
        }
    }
}

/// A fixed receiver (gateway) or transmitter (beacon), in the venue's local metres.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnchorDef {
    pub id: String,
    /// Level id; empty for an outline venue.
    #[serde(default)]
    pub level: String,
    pub x: f64,
    pub y: f64,
    /// Height above the floor (metres).
    #[serde(default = "default_z")]
    pub z: f64,
}

fn default_z() -> f64 {
    2.5
}

/// RSSI = `rssi_1m` − 10 · `exponent` · log10(d) − `floor_db` · floors between.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathLoss {
    pub rssi_1m: f64,
    pub exponent: f64,
    pub floor_db: f64,
    /// Below this, a reading is not heard.
    pub sensitivity_dbm: f64,
}

impl Default for PathLoss {
    /// Indoor BLE at 0 dBm, typical of hospital corridors.
    fn default() -> Self {
        PathLoss { rssi_1m: -59.0, exponent: 2.2, floor_db: 18.0, sensitivity_dbm: -100.0 }
    }
}

impl PathLoss {
    pub fn predict(&self, metres: f64, floors: u32) -> f64 {
        self.rssi_1m - 10.0 * self.exponent * metres.max(0.5).log10() - self.floor_db * floors as f64
    }

    /// What `anchor` hears from a tag carried at (x, y), `floors` floors away from it.
    pub fn rssi_at(&self, anchor: &AnchorDef, x: f64, y: f64, floors: u32) -> f64 {
        let d = ((anchor.x - x).powi(2) + (anchor.y - y).powi(2) + (anchor.z - TAG_HEIGHT_M).powi(2) + (floors as f64 * FLOOR_HEIGHT_M).powi(2)).sqrt();
        self.predict(d, floors)
    }
}

/// How the tracker moves and weighs evidence.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackParams {
    /// Distance between states (metres).
    pub spacing_m: f64,
    /// One filter step: scans closer together than this are pooled.
    pub step_ms: i64,
    /// Fastest walk considered (metres per second).
    pub speed_m_s: f64,
    /// A reading counts this long after it was heard (gateways report at their own pace).
    pub hold_ms: i64,
    /// The spread of an RSSI reading around its fingerprint (dB).
    pub sigma_db: f64,
}

impl TrackParams {
    pub fn outline() -> TrackParams {
        TrackParams { spacing_m: 0.25, step_ms: 333, speed_m_s: 1.5, hold_ms: 1000, sigma_db: 7.0 }
    }

    pub fn venue() -> TrackParams {
        TrackParams { spacing_m: 1.0, step_ms: 1000, speed_m_s: 2.0, hold_ms: 1200, sigma_db: 4.0 }
    }

    pub fn space(&self) -> SpaceParams {
        SpaceParams { spacing_m: self.spacing_m, reach_m: self.speed_m_s * self.step_ms as f64 / 1000.0 }
    }

    pub fn check(&self) -> Result<(), String> {
        let reach = self.speed_m_s * self.step_ms as f64 / 1000.0;
        let ok = |v: f64| v.is_finite() && v > 0.0;
        if !ok(self.spacing_m) || !ok(self.speed_m_s) || self.step_ms <= 0 || self.hold_ms < 0 || !ok(self.sigma_db) {
            return Err("params: every value must be positive".into());
        }
        if reach < self.spacing_m {
            return Err(format!("params: one step ({reach:.2} m = speed × step) must reach at least the spacing ({} m)", self.spacing_m));
        }
        if self.spacing_m < 0.05 {
            return Err("params.spacing_m: at least 0.05 m".into());
        }
        Ok(())
    }
}

/// One calibration sample: where it was taken and what each anchor was heard at (by anchor
/// index; `None` = not heard).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    #[serde(default)]
    pub level: String,
    pub x: f64,
    pub y: f64,
    pub rssi: Vec<Option<f32>>,
}

/// A radio map ready for the filter.
#[derive(Debug)]
pub struct RadioMap {
    pub file: RadioMapFile,
    pub space: Space,
    /// Anchor ids → index.
    pub anchor_ids: HashMap<String, u16>,
    /// The anchors' levels (space level indices).
    pub anchor_levels: Vec<u16>,
    /// `states × anchors`, NaN where the anchor is not heard.
    fingerprints: Vec<f32>,
    /// Per anchor: the states near it (where to look for a tag first heard there).
    near: Vec<Vec<u32>>,
    /// CSR per state: the anchors that should hear a tag there ([`LOUD_DB`] above the
    /// sensitivity), for the evidence of an anchor that did not.
    loud_offsets: Vec<u32>,
    loud: Vec<u16>,
    /// How many states got a measured fingerprint (the rest are predicted).
    pub measured_states: usize,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RadioError {
    #[error("venue {0}: not in the loaded maps")]
    UnknownVenue(String),
    #[error("anchor {anchor}: level {level} is not a level of the venue")]
    UnknownLevel { anchor: String, level: String },
    #[error("anchor {0}: listed twice")]
    DuplicateAnchor(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the venue has no walkable space")]
    Empty,
}

/// States within this distance of a sample take its readings.
const SAMPLE_REACH_M: f64 = 0.75;
/// The largest outline grid built (a 500 m × 500 m floor at 0.25 m).
const MAX_GRID_CELLS: f64 = 4_000_000.0;
/// How far from an anchor a tag first heard there is looked for.
const NEAR_ANCHOR_M: f64 = 12.0;
/// An anchor whose fingerprint at a state is this far above the sensitivity should hear a tag
/// there.
pub const LOUD_DB: f64 = 3.0;

impl RadioMap {
    /// Builds the space and the fingerprints. `venue` must be given for a map-bound file.
    pub fn build(file: RadioMapFile, venue: Option<&VenueMap>) -> Result<RadioMap, RadioError> {
        if file.format != FORMAT {
            return Err(RadioError::Invalid(format!("format {}: this build reads format {FORMAT}", file.format)));
        }
        file.params.check().map_err(RadioError::Invalid)?;
        let space = match (&file.venue, venue) {
            (VenueRef::Outline { outline, .. }, _) => {
                if outline.len() < 3 || outline.iter().flatten().any(|v| !v.is_finite()) {
                    return Err(RadioError::Invalid("venue.outline: at least three finite points".into()));
                }
                // An outline in the wrong unit (millimetres, degrees) must not build a grid of
                // billions of states.
                let extent = |k: usize| outline.iter().map(|p| p[k]).fold(f64::NEG_INFINITY, f64::max) - outline.iter().map(|p| p[k]).fold(f64::INFINITY, f64::min);
                let cells = (extent(0) / file.params.spacing_m + 1.0) * (extent(1) / file.params.spacing_m + 1.0);
                if cells > MAX_GRID_CELLS {
                    return Err(RadioError::Invalid(format!(
                        "venue.outline: {:.0} m × {:.0} m at {} m spacing is more than {MAX_GRID_CELLS} cells (is it in metres?)",
                        extent(0),
                        extent(1),
                        file.params.spacing_m
                    )));
                }
                // An outline says where the walls are, not where the furniture is: where an outline
                // venue was surveyed, its walkable space is where the survey went (states within
                // one grid spacing of a sample).
                let (samples, reach) = (&file.samples, file.params.spacing_m);
                let surveyed = |x: f64, y: f64| samples.iter().any(|s| (s.x - x).powi(2) + (s.y - y).powi(2) <= reach * reach);
                if samples.is_empty() {
                    Space::from_outline(outline, file.params.space(), |_, _| true)
                } else {
                    Space::from_outline(outline, file.params.space(), surveyed)
                }
            }
            (VenueRef::Map { id }, Some(map)) if &map.id == id => Space::from_venue(map, file.params.space()),
            (VenueRef::Map { id }, _) => return Err(RadioError::UnknownVenue(id.clone())),
        };
        if space.is_empty() {
            return Err(RadioError::Empty);
        }
        let mut anchor_ids = HashMap::new();
        let mut anchor_levels = Vec::new();
        for (i, a) in file.anchors.iter().enumerate() {
            if ![a.x, a.y, a.z].iter().all(|v| v.is_finite()) {
                return Err(RadioError::Invalid(format!("anchor {}: coordinates must be finite", a.id)));
            }
            if anchor_ids.insert(a.id.clone(), i as u16).is_some() {
                return Err(RadioError::DuplicateAnchor(a.id.clone()));
            }
            let level = if space.levels.len() == 1 && a.level.is_empty() {
                0
            } else {
                space.level_index(&a.level).ok_or_else(|| RadioError::UnknownLevel { anchor: a.id.clone(), level: a.level.clone() })?
            };
            anchor_levels.push(level);
        }
        if file.anchors.is_empty() || file.anchors.len() > u16::MAX as usize {
            return Err(RadioError::Invalid("anchors: between 1 and 65535".into()));
        }
        let ordinals: Vec<i32> = match venue {
            Some(map) if matches!(file.venue, VenueRef::Map { .. }) => map.levels.iter().map(|l| l.ordinal).collect(),
            _ => vec![0],
        };
        let n_anchors = file.anchors.len();
        for (i, s) in file.samples.iter().enumerate() {
            if s.rssi.len() != n_anchors || !s.x.is_finite() || !s.y.is_finite() {
                return Err(RadioError::Invalid(format!("samples[{i}]: needs finite x, y and one reading per anchor")));
            }
        }
        // Measured: the mean of the heard readings of the samples near each state.
        let mut sums = vec![(0.0f64, 0u32); space.len() * n_anchors];
        let mut has_sample = vec![false; space.len()];
        for s in &file.samples {
            let level = if s.level.is_empty() { Some(0) } else { space.level_index(&s.level) };
            let Some(level) = level else { continue };
            // A sample belongs to the state it was taken at (the nearest), within reach.
            if let Some(st) = space.nearest(level, s.x, s.y, SAMPLE_REACH_M.max(space.params.spacing_m)) {
                has_sample[st as usize] = true;
                for (a, r) in s.rssi.iter().enumerate() {
                    if let Some(r) = r {
                        let cell = &mut sums[st as usize * n_anchors + a];
                        cell.0 += *r as f64;
                        cell.1 += 1;
                    }
                }
            }
        }
        let mut fingerprints = vec![f32::NAN; space.len() * n_anchors];
        let mut measured_states = 0;
        for st in 0..space.len() {
            if has_sample[st] {
                measured_states += 1;
                for a in 0..n_anchors {
                    let (sum, n) = sums[st * n_anchors + a];
                    if n > 0 {
                        fingerprints[st * n_anchors + a] = (sum / n as f64) as f32;
                    }
                }
            }
        }
        for (st, state) in space.states.iter().enumerate() {
            if has_sample[st] {
                continue;
            }
            for (a, anchor) in file.anchors.iter().enumerate() {
                let floors = (ordinals.get(state.level as usize).copied().unwrap_or(0) - ordinals.get(anchor_levels[a] as usize).copied().unwrap_or(0)).unsigned_abs();
                // Kept below the sensitivity too: a faint reading far away is noise on a weak
                // signal, not a contradiction.
                fingerprints[st * n_anchors + a] = file.path_loss.rssi_at(anchor, state.x, state.y, floors) as f32;
            }
        }
        let near = file
            .anchors
            .iter()
            .enumerate()
            .map(|(a, anchor)| {
                let mut v = space.within(anchor_levels[a], anchor.x, anchor.y, NEAR_ANCHOR_M);
                if v.is_empty() {
                    v.extend(space.nearest(anchor_levels[a], anchor.x, anchor.y, 100.0));
                }
                v
            })
            .collect();
        let mut loud_offsets = Vec::with_capacity(space.len() + 1);
        let mut loud = Vec::new();
        loud_offsets.push(0);
        let floor = (file.path_loss.sensitivity_dbm + LOUD_DB) as f32;
        for st in 0..space.len() {
            for a in 0..n_anchors {
                let f = fingerprints[st * n_anchors + a];
                if f.is_finite() && f >= floor {
                    loud.push(a as u16);
                }
            }
            loud_offsets.push(loud.len() as u32);
        }
        Ok(RadioMap { file, space, anchor_ids, anchor_levels, fingerprints, near, loud_offsets, loud, measured_states })
    }

    pub fn anchors(&self) -> usize {
        self.file.anchors.len()
    }

    pub fn fingerprint(&self, state: u32) -> &[f32] {
        let n = self.anchors();
        &self.fingerprints[state as usize * n..(state as usize + 1) * n]
    }

    pub fn near_anchor(&self, anchor: u16) -> &[u32] {
        &self.near[anchor as usize]
    }

    /// The anchors that should hear a tag at `state`.
    pub fn loud_at(&self, state: u32) -> &[u16] {
        &self.loud[self.loud_offsets[state as usize] as usize..self.loud_offsets[state as usize + 1] as usize]
    }
}

/// Where a patient carries a tag or phone (metres above the floor).
pub const TAG_HEIGHT_M: f64 = 1.0;
/// Storey height, for the distance to an anchor on another floor.
pub const FLOOR_HEIGHT_M: f64 = 4.0;

/// Fits the path-loss constants to calibration samples (least squares on log-distance), or
/// `None` when there are too few heard readings to trust a fit.
pub fn fit_path_loss(anchors: &[AnchorDef], samples: &[Sample], base: PathLoss) -> Option<PathLoss> {
    let mut pts = Vec::new();
    for s in samples {
        for (a, r) in s.rssi.iter().enumerate() {
            let (Some(r), Some(anchor)) = (r, anchors.get(a)) else { continue };
            if !s.level.is_empty() && s.level != anchor.level {
                continue;
            }
            let d = ((s.x - anchor.x).powi(2) + (s.y - anchor.y).powi(2) + (anchor.z - TAG_HEIGHT_M).powi(2)).sqrt().max(0.5);
            pts.push((d.log10(), *r as f64));
        }
    }
    if pts.len() < 20 {
        return None;
    }
    let n = pts.len() as f64;
    let (mx, my) = (pts.iter().map(|p| p.0).sum::<f64>() / n, pts.iter().map(|p| p.1).sum::<f64>() / n);
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx <= 1e-9 {
        return None;
    }
    let slope = sxy / sxx;
    let exponent = (-slope / 10.0).clamp(1.0, 6.0);
    Some(PathLoss { rssi_1m: my + 10.0 * exponent * mx, exponent, ..base })
}
