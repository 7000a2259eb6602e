//! Indoor maps and the router. Pure: no IO beyond [`load::read_dir`], no clock.
//!
//! - [`model`]: a venue's validated map — buildings, levels, places (departments, rooms,
//!   amenities, fixed points) and the navigation graph (petgraph), immutable once built and
//!   shared behind an `Arc`.
//! - [`load`]: GeoJSON files (IMDF feature types + `navigation.geojson`) → [`model::VenueMap`],
//!   every problem reported with its file and feature id.
//! - [`route`]: profiles (default, accessible, slow walker) and the shortest-time search.
//! - [`text`]: turn-by-turn steps in Chinese and English with landmarks.
//! - [`json`]: the wire form of a route.
//! - [`check`]: reachability of every place from every entrance under every profile.
//! - [`render`]: SVG of a level, with a route drawn.
//! - [`store`]: the maps being served, swapped whole on a validated reload.

pub mod check;
pub mod json;
pub mod load;
pub mod model;
pub mod render;
pub mod route;
pub mod store;
pub mod text;

#[cfg(test)]
mod tests;

pub use load::{load_dir, parse_files, MapIssue, MapIssues};
pub use model::{Labels, Place, PlaceKind, VenueMap};
pub use route::{Profile, Route, RouteError};

/// The demo hospital's map files, embedded so `clinicflow serve` needs nothing on disk.
pub const DEMO_MAP: &[(&str, &str)] = &[
    ("venue.geojson", include_str!("../../maps/demo-hospital/venue.geojson")),
    ("building.geojson", include_str!("../../maps/demo-hospital/building.geojson")),
    ("level.geojson", include_str!("../../maps/demo-hospital/level.geojson")),
    ("unit.geojson", include_str!("../../maps/demo-hospital/unit.geojson")),
    ("opening.geojson", include_str!("../../maps/demo-hospital/opening.geojson")),
    ("amenity.geojson", include_str!("../../maps/demo-hospital/amenity.geojson")),
    ("occupant.geojson", include_str!("../../maps/demo-hospital/occupant.geojson")),
    ("anchor.geojson", include_str!("../../maps/demo-hospital/anchor.geojson")),
    ("kiosk.geojson", include_str!("../../maps/demo-hospital/kiosk.geojson")),
    ("navigation.geojson", include_str!("../../maps/demo-hospital/navigation.geojson")),
];

/// The embedded demo hospital map, validated.
pub fn demo() -> VenueMap {
    let files: Vec<(String, String)> = DEMO_MAP.iter().map(|(n, t)| ((*n).to_owned(), (*t).to_owned())).collect();
    parse_files(&files).expect("the embedded demo map is valid (tested)")
}
