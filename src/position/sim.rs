//! Simulated gateways and walks on a venue map, for tests, benches and demos: gateways hung as an
//! installer would, a walker following a route second by second, and what the gateways report
//! (log-distance path loss plus Gaussian noise, seeded).

use super::filter::{Reading, Scan};
use super::radio::{AnchorDef, RadioMap};
use crate::map::model::{EdgeKind, NodeKind};
use crate::map::{Profile, VenueMap};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// Gateways on every level, as an installer would hang them: one in each lift and stairs
/// lobby (where floors are told apart), then along the corridors, one every `gap` metres or so.
pub fn gateways(m: &VenueMap, gap: f64) -> Vec<AnchorDef> {
    let mut out: Vec<AnchorDef> = Vec::new();
    for n in m.graph.node_indices() {
        let node = &m.graph[n];
        if matches!(node.kind, NodeKind::Elevator | NodeKind::Stairs) {
            let level = m.levels[node.level].id.clone();
            if !out.iter().any(|g| g.level == level && (g.x - node.x).hypot(g.y - node.y) < 2.0) {
                out.push(AnchorDef { id: format!("gw-{}", out.len()), level, x: node.x, y: node.y, z: 2.8 });
            }
        }
    }
    for e in m.graph.edge_indices() {
        let edge = &m.graph[e];
        if edge.kind != EdgeKind::Corridor {
            continue;
        }
        let level = m.levels[m.graph[m.graph.edge_endpoints(e).unwrap().0].level].id.clone();
        let pts: Vec<[f64; 2]> = edge.coords.iter().map(|c| m.to_local(c[0], c[1])).collect();
        for w in pts.windows(2) {
            let len = (w[1][0] - w[0][0]).hypot(w[1][1] - w[0][1]);
            let mut at = 0.0;
            while at <= len {
                let (x, y) = (w[0][0] + at / len * (w[1][0] - w[0][0]), w[0][1] + at / len * (w[1][1] - w[0][1]));
                if !out.iter().any(|g| g.level == level && (g.x - x).hypot(g.y - y) < gap * 0.75) {
                    out.push(AnchorDef { id: format!("gw-{}", out.len()), level: level.clone(), x, y, z: 2.8 });
                }
                at += gap;
            }
        }
    }
    out
}

/// Where a walker is, second by second, along a route: 1.2 m/s on the flat, standing in the
/// lift or on the stairs for the link's time (on the new floor for its second half).
/// `None` when either end is unknown or there is no route.
pub fn walk_route(m: &VenueMap, from: &str, to: &str) -> Option<Vec<(usize, f64, f64)>> {
    let (f, t) = (m.resolve(from)?, m.resolve(to)?);
    let route = m.route(&f, &t, Profile::Default).ok()?;
    let mut points: Vec<(usize, f64, f64)> = Vec::new();
    let mut carry = 0.0;
    for (i, &e) in route.edges.iter().enumerate() {
        let edge = m.edge(e);
        let (a, b) = (&m.graph[route.nodes[i]], &m.graph[route.nodes[i + 1]]);
        if edge.kind.is_vertical() {
            let secs = (edge.seconds + edge.wait_seconds).round().max(2.0) as usize;
            for k in 0..secs {
                let on = if k < secs / 2 { a } else { b };
                points.push((on.level, on.x, on.y));
            }
            continue;
        }
        let pts: Vec<[f64; 2]> = edge.coords.iter().map(|c| m.to_local(c[0], c[1])).collect();
        for w in pts.windows(2) {
            let len = (w[1][0] - w[0][0]).hypot(w[1][1] - w[0][1]);
            let mut at = carry;
            while at < len {
                let k = at / len;
                points.push((a.level, w[0][0] + k * (w[1][0] - w[0][0]), w[0][1] + k * (w[1][1] - w[0][1])));
                at += 1.2;
            }
            carry = at - len;
        }
    }
    let last = &m.graph[*route.nodes.last()?];
    points.push((last.level, last.x, last.y));
    Some(points)
}

fn gaussian(rng: &mut StdRng) -> f64 {
    let (u, v): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// What the gateways report about a tag on `path`: each gateway that hears it, once a second
/// (a few milliseconds apart), path loss + 4 dB noise, the tag 5 dB quieter than the model.
pub fn gateway_scans(radio: &RadioMap, m: &VenueMap, path: &[(usize, f64, f64)], seed: u64) -> Vec<Vec<Scan>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let pl = radio.file.path_loss;
    path.iter()
        .enumerate()
        .map(|(sec, &(level, x, y))| {
            let mut scans = Vec::new();
            for (i, g) in radio.file.anchors.iter().enumerate() {
                let gl = radio.space.level_index(&g.level).unwrap() as usize;
                let floors = (m.levels[gl].ordinal - m.levels[level].ordinal).unsigned_abs();
                let rssi = pl.rssi_at(g, x, y, floors) - 5.0 + 4.0 * gaussian(&mut rng);
                if rssi >= -95.0 {
                    scans.push(Scan { t_ms: sec as i64 * 1000 + scans.len() as i64 * 7, readings: vec![Reading { anchor: i as u16, rssi: rssi as f32 }] });
                }
            }
            scans
        })
        .collect()
}


/// What the gateways publish on MQTT about `tag` walking `path` ([`gateway_scans`]): per second,
/// (gateway id, ESPresense-style JSON `{id, rssi, ts}`), `ts` counted from `start_ms`.
pub fn gateway_reports(radio: &RadioMap, m: &VenueMap, path: &[(usize, f64, f64)], seed: u64, tag: &str, start_ms: i64) -> Vec<Vec<(String, serde_json::Value)>> {
    gateway_scans(radio, m, path, seed)
        .into_iter()
        .map(|scans| {
            scans
                .iter()
                .map(|s| {
                    let r = s.readings[0];
                    let rssi = (r.rssi as f64 * 10.0).round() / 10.0;
                    (radio.file.anchors[r.anchor as usize].id.clone(), serde_json::json!({"id": tag, "rssi": rssi, "ts": start_ms + s.t_ms}))
                })
                .collect()
        })
        .collect()
}
