//! The wire form of a route (`GET /route`, the next stop, the patient's push): both ends, totals,
//! the levels in order, turn-by-turn steps, the node path and GeoJSON per level.

use super::model::{Endpoint, Lang, VenueMap};
use super::text::steps;
use super::Route;
use serde_json::json;

pub fn route_json(
    m: &VenueMap,
    r: &Route,
    f: &Endpoint,
    t: &Endpoint,
    from: &str,
    to: &str,
    lang: Lang,
) -> serde_json::Value {
    let end = |e: &Endpoint, reference: &str, node| {
        let level = m.level_of(node);
        json!({"ref": reference, "name": e.label.get(lang), "names": e.label, "level": level.id, "floor": level.short_name.get(lang),
               "node": m.node(node).id, "place": e.place.map(|i| m.places[i].id.clone())})
    };
    let last = *r.nodes.last().expect("a route has a node");
    // The arrival place: for a department, the room actually reached.
    let arrived = m.places.iter().position(|p| p.node == last && t.place.is_some_and(|i| m.places[i].department.is_some() && p.department == m.places[i].department));
    let to_label = arrived.map(|i| m.places[i].name.clone()).unwrap_or_else(|| t.label.clone());
    let text = steps(m, r, &f.label, &to_label, lang);
    // One LineString per stretch on one level.
    let mut features = Vec::new();
    let mut cur: Vec<[f64; 2]> = Vec::new();
    let mut cur_level = m.node(r.nodes[0]).level;
    for (i, &e) in r.edges.iter().enumerate() {
        let (a, z) = (m.node(r.nodes[i]), m.node(r.nodes[i + 1]));
        if a.level != cur_level || z.level != a.level {
            if cur.len() >= 2 {
                features.push(json!({"type": "Feature", "properties": {"level": m.levels[cur_level].id}, "geometry": {"type": "LineString", "coordinates": cur}}));
            }
            cur = Vec::new();
            cur_level = z.level;
            if z.level != a.level {
                continue;
            }
        }
        for c in &m.edge(e).coords {
            if cur.last() != Some(c) {
                cur.push(*c);
            }
        }
    }
    if cur.len() >= 2 {
        features.push(json!({"type": "Feature", "properties": {"level": m.levels[cur_level].id}, "geometry": {"type": "LineString", "coordinates": cur}}));
    }
    let levels: Vec<&str> = {
        let mut v: Vec<&str> = Vec::new();
        for &n in &r.nodes {
            let id = m.level_of(n).id.as_str();
            if v.last() != Some(&id) {
                v.push(id);
            }
        }
        v
    };
    json!({
        "venue": m.id,
        "profile": r.profile.name(),
        "lang": lang,
        "from": end(f, from, r.nodes[0]),
        "to": end(&Endpoint { label: to_label.clone(), nodes: vec![last], place: arrived.or(t.place) }, to, last),
        "distance_m": (r.distance_m * 10.0).round() / 10.0,
        "duration_s": r.seconds.round(),
        "levels": levels,
        "steps": text,
        "path": r.nodes.iter().map(|&n| { let x = m.node(n); json!({"node": x.id, "level": m.levels[x.level].id, "lon": x.lon, "lat": x.lat}) }).collect::<Vec<_>>(),
        "geometry": {"type": "FeatureCollection", "features": features},
    })
}

