//! The plain k-nearest-neighbour fingerprint, as the baseline every estimator is compared with:
//! each scan on its own, missing readings as −100 dBm, the mean position of the k calibration
//! samples closest in signal space.

use super::filter::Reading;
use super::radio::Sample;

pub const MISSING_DBM: f32 = -100.0;

pub struct Knn {
    samples: Vec<(f64, f64, Vec<f32>)>,
    k: usize,
}

impl Knn {
    pub fn new(samples: &[Sample], k: usize) -> Knn {
        Knn { samples: samples.iter().map(|s| (s.x, s.y, s.rssi.iter().map(|r| r.unwrap_or(MISSING_DBM)).collect())).collect(), k: k.max(1) }
    }

    /// The estimate for one scan, or `None` without calibration samples.
    pub fn locate(&self, readings: &[Reading]) -> Option<(f64, f64)> {
        let n = self.samples.first()?.2.len();
        let mut q = vec![MISSING_DBM; n];
        for r in readings {
            if let Some(v) = q.get_mut(r.anchor as usize) {
                *v = r.rssi;
            }
        }
        let mut d: Vec<(f32, usize)> = self.samples.iter().enumerate().map(|(i, s)| (s.2.iter().zip(&q).map(|(a, b)| (a - b) * (a - b)).sum::<f32>(), i)).collect();
        let k = self.k.min(d.len());
        d.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let (x, y) = d[..k].iter().fold((0.0, 0.0), |acc, &(_, i)| (acc.0 + self.samples[i].0, acc.1 + self.samples[i].1));
        Some((x / k as f64, y / k as f64))
    }
}
