//! Whole-map checks beyond single features: every department, room, amenity and fixed point can
//! be reached from every entrance under every profile (so the accessible profile proves a
//! step-free way to everything), and every way in leads back out.

use super::load::MapIssue;
use super::model::{PlaceKind, VenueMap};
use super::route::{Profile, RouteIndex};

fn file_of(kind: PlaceKind) -> &'static str {
    match kind {
        PlaceKind::Occupant => "occupant.geojson",
        PlaceKind::Amenity => "amenity.geojson",
        PlaceKind::Marker => "kiosk.geojson",
    }
}

pub fn reachability(map: &VenueMap) -> Vec<MapIssue> {
    let mut issues = Vec::new();
    let reversed = RouteIndex::reversed(&map.graph);
    for profile in Profile::ALL {
        for &entrance in &map.entrances {
            let dist = map.index.search(&[entrance], profile, |_| false).dist;
            for p in &map.places {
                if !dist[p.node.index()].is_finite() {
                    issues.push(MapIssue {
                        file: file_of(p.kind).to_owned(),
                        feature: Some(p.id.clone()),
                        message: format!(
                            "unreachable from entrance {} under profile {} (its node {} has no {} path)",
                            map.graph[entrance].id,
                            profile.name(),
                            map.graph[p.node].id,
                            if profile == Profile::Accessible { "step-free" } else { "walking" }
                        ),
                    });
                }
            }
            // And back out: a one-way corridor must not trap anyone. Searching the reversed
            // graph from the entrance finds every node that can reach it.
            let back = reversed.search(&[entrance], profile, |_| false).dist;
            for p in map.places.iter().filter(|p| dist[p.node.index()].is_finite() && !back[p.node.index()].is_finite()) {
                issues.push(MapIssue {
                    file: file_of(p.kind).to_owned(),
                    feature: Some(p.id.clone()),
                    message: format!("no way back to entrance {} under profile {}", map.graph[entrance].id, profile.name()),
                });
            }
        }
    }
    issues.sort_by(|a, b| (&a.file, &a.feature, &a.message).cmp(&(&b.file, &b.feature, &b.message)));
    issues.dedup();
    issues
}
