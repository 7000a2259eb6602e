//! Where a patient is between fixed points: BLE readings → a position on the floor map.
//!
//! # Layout
//! - [`space`]: the walkable states of a venue and the moves between them (navigation graph or
//!   outline grid).
//! - [`radio`]: anchors, path loss and the per-state fingerprints (measured or predicted).
//! - [`filter`]: the map-constrained tracker, one sparse belief per tag.
//! - [`knn`]: the plain kNN baseline.
//! - [`guidance`]: a position against the route being followed; off-route and "leave now".
//! - [`live`]: gateway reports and phone scans → per-visit positions; tag binding, retention,
//!   dropped readings counted by reason.
//! - [`io`]: the CSV files (anchors, outlines, calibration, walks, paths).
//! - [`eval`]: scoring a recorded walk, tracker beside baseline.
//! - [`sim`]: simulated gateways and walks on a venue map (tests, benches).
//!
//! Pure, as the queue core is: time comes in with the scans; no IO beyond parsing text.

pub mod eval;
pub mod filter;
pub mod guidance;
pub mod io;
pub mod knn;
pub mod live;
pub mod radio;
pub mod sim;
pub mod space;

pub use filter::{Estimate, Reading, Scan, Track, Tracker, Update};
pub use radio::{RadioError, RadioMap, RadioMapFile};

use radio::{AnchorDef, PathLoss, Sample, TrackParams, VenueRef};

/// Builds a radio map file from calibration data: the anchors, the samples (none: the path-loss
/// model alone), the venue it is bound to. Fits the path-loss constants to the samples when
/// there are enough, and checks the result builds.
pub fn calibrate(
    anchors: Vec<AnchorDef>,
    samples: Vec<Sample>,
    venue: VenueRef,
    params: Option<TrackParams>,
    map: Option<&crate::map::VenueMap>,
) -> Result<(RadioMapFile, RadioMap), RadioError> {
    let params = params.unwrap_or(match venue {
        VenueRef::Outline { .. } => TrackParams::outline(),
        VenueRef::Map { .. } => TrackParams::venue(),
    });
    let path_loss = radio::fit_path_loss(&anchors, &samples, PathLoss::default()).unwrap_or_default();
    let file = RadioMapFile { format: radio::FORMAT, venue, anchors, path_loss, params, samples };
    let built = RadioMap::build(file.clone(), map)?;
    Ok((file, built))
}

#[cfg(test)]
mod tests;
