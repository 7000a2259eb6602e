//! `clinicflow position eval`: replays a recorded walk through the tracker and through the kNN
//! baseline, and scores both against the truth (per-scan positions) or a reference path
//! (cross-track error: the distance from each estimate to the nearest point of the path).

use super::filter::{Track, Tracker};
use super::io::WalkRow;
use super::knn::Knn;
use super::radio::RadioMap;
use super::space::dist_to_segment;
use serde::Serialize;
use std::sync::Arc;

/// What the estimates are scored against.
pub enum Reference<'a> {
    /// The walk's own `x,y` columns.
    Truth,
    /// A path the walk followed (segments).
    Path(&'a [[[f64; 2]; 2]]),
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct ErrorStats {
    pub n: usize,
    pub mean_m: f64,
    pub median_m: f64,
    pub p75_m: f64,
    pub p90_m: f64,
}

impl ErrorStats {
    pub fn of(mut errors: Vec<f64>) -> ErrorStats {
        errors.sort_by(f64::total_cmp);
        let n = errors.len();
        let q = |p: f64| if n == 0 { f64::NAN } else { errors[((p * (n - 1) as f64).round() as usize).min(n - 1)] };
        ErrorStats { n, mean_m: if n == 0 { f64::NAN } else { errors.iter().sum::<f64>() / n as f64 }, median_m: q(0.5), p75_m: q(0.75), p90_m: q(0.9) }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// `cross_track` (against a path) or `truth`.
    pub metric: &'static str,
    pub scans: usize,
    pub tracker: ErrorStats,
    /// Plain kNN (k = 10, missing = −100 dBm) on the same scans; absent without samples.
    pub baseline: Option<ErrorStats>,
    /// How much lower the tracker's median is than the baseline's, in percent.
    pub median_gain_pct: Option<f64>,
}

pub const BASELINE_K: usize = 10;

pub fn evaluate(radio: Arc<RadioMap>, walk: &[WalkRow], reference: Reference) -> EvalReport {
    let knn = (!radio.file.samples.is_empty()).then(|| Knn::new(&radio.file.samples, BASELINE_K));
    let mut tracker = Tracker::new(radio.clone());
    let mut track = Track::default();
    let error = |row: &WalkRow, x: f64, y: f64| -> Option<f64> {
        match &reference {
            Reference::Path(segs) => segs.iter().map(|s| dist_to_segment([x, y], s[0], s[1])).min_by(f64::total_cmp),
            Reference::Truth => row.truth.as_ref().map(|t| ((t.1 - x).powi(2) + (t.2 - y).powi(2)).sqrt()),
        }
    };
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for row in walk {
        let update = tracker.update(&mut track, &row.scan);
        let Some(est) = update.estimate else { continue };
        let Some(e) = error(row, est.x, est.y) else { continue };
        ours.push(e);
        if let Some((x, y)) = knn.as_ref().and_then(|k| k.locate(&row.scan.readings)) {
            base.extend(error(row, x, y));
        }
    }
    let tracker = ErrorStats::of(ours);
    let baseline = knn.map(|_| ErrorStats::of(base));
    EvalReport {
        metric: if matches!(reference, Reference::Path(_)) { "cross_track" } else { "truth" },
        scans: walk.len(),
        median_gain_pct: baseline.filter(|b| b.median_m > 0.0).map(|b| 100.0 * (b.median_m - tracker.median_m) / b.median_m),
        tracker,
        baseline,
    }
}
