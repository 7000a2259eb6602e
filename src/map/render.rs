//! SVG of one level: units, openings, places, and a route's part on that level drawn over it.

use super::model::{PlaceKind, VenueMap};
use super::route::Route;
use std::fmt::Write as _;

/// Pixels per metre.
const SCALE: f64 = 8.0;
const PAD: f64 = 24.0;

/// Escape text for XML and HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn fill(category: &str) -> &'static str {
    match category {
        "walkway" => "#f4f1ea",
        "restroom" | "restroom.male" | "restroom.female" => "#dbeafe",
        "drinkingfountain" => "#cffafe",
        "room" => "#ffffff",
        _ => "#f8fafc",
    }
}

/// The level `level` (index into `map.levels`) as an SVG document, with `route` drawn if given.
/// Where a level's drawing puts local metres: its size in pixels and the corner it starts from.
struct Frame {
    minx: f64,
    maxy: f64,
    w: f64,
    h: f64,
}

impl Frame {
    fn of(map: &VenueMap, level: usize) -> Frame {
        // Bounds: the outline, or everything on the level.
        let mut pts: Vec<[f64; 2]> = map.levels[level].outline.clone();
        pts.extend(map.units.iter().filter(|u| u.level == level).flat_map(|u| u.ring.iter().copied()));
        pts.extend(map.graph.node_weights().filter(|n| n.level == level).map(|n| [n.x, n.y]));
        let (minx, maxx) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p[0]), b.max(p[0])));
        let (miny, maxy) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p[1]), b.max(p[1])));
        let (minx, maxx, miny, maxy) = if minx.is_finite() { (minx, maxx, miny, maxy) } else { (0.0, 1.0, 0.0, 1.0) };
        Frame { minx, maxy, w: (maxx - minx) * SCALE + 2.0 * PAD, h: (maxy - miny) * SCALE + 2.0 * PAD + 28.0 }
    }

    fn px(&self, p: [f64; 2]) -> (f64, f64) {
        ((p[0] - self.minx) * SCALE + PAD, (self.maxy - p[1]) * SCALE + PAD + 28.0)
    }
}

/// Where `(x, y)` (local metres) falls in the level's drawing, as fractions of its width and
/// height (0..1 from the top left): for placing a "you are here" dot over the image.
pub fn fraction(map: &VenueMap, level: usize, x: f64, y: f64) -> (f64, f64) {
    let f = Frame::of(map, level);
    let (px, py) = f.px([x, y]);
    (px / f.w, py / f.h)
}

pub fn level_svg(map: &VenueMap, level: usize, route: Option<&Route>) -> String {
    let lvl = &map.levels[level];
    let frame = Frame::of(map, level);
    let (w, h) = (frame.w, frame.h);
    let px = |p: [f64; 2]| frame.px(p);
    let path = |ring: &[[f64; 2]]| ring.iter().map(|&p| px(p)).map(|(x, y)| format!("{x:.1},{y:.1}")).collect::<Vec<_>>().join(" ");

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="'Noto Sans CJK SC','Microsoft YaHei','PingFang SC',sans-serif">"#
    );
    let _ = write!(s, r##"<rect width="100%" height="100%" fill="#ffffff"/><text x="{PAD}" y="20" font-size="16" fill="#111">{} · {}</text>"##, esc(&lvl.name.zh), esc(&lvl.name.en));
    if lvl.outline.len() >= 4 {
        let _ = write!(s, r##"<polygon points="{}" fill="#eef2f7" stroke="#475569" stroke-width="2"/>"##, path(&lvl.outline));
    }
    for u in map.units.iter().filter(|u| u.level == level) {
        let _ = write!(s, r##"<polygon id="unit-{}" points="{}" fill="{}" stroke="#94a3b8" stroke-width="1"/>"##, esc(&u.id), path(&u.ring), fill(&u.category));
    }
    for (_, line) in map.openings.iter().filter(|(l, _)| *l == level) {
        let _ = write!(s, r##"<polyline points="{}" fill="none" stroke="#ffffff" stroke-width="4"/>"##, path(line));
    }
    for p in map.places.iter().filter(|p| p.level == level) {
        let (x, y) = px(map.to_local(p.lon, p.lat));
        match p.kind {
            PlaceKind::Marker => {
                let _ = write!(s, r##"<rect x="{:.1}" y="{:.1}" width="8" height="8" fill="#7c3aed"><title>{}</title></rect>"##, x - 4.0, y - 4.0, esc(&p.name.zh));
            }
            _ => {
                let _ = write!(s, r##"<text x="{x:.1}" y="{y:.1}" font-size="10" text-anchor="middle" fill="#1e293b">{}</text>"##, esc(&p.name.zh));
            }
        }
    }
    if let Some(route) = route {
        let mut seg: Vec<(f64, f64)> = Vec::new();
        let mut lines: Vec<Vec<(f64, f64)>> = Vec::new();
        for (i, &e) in route.edges.iter().enumerate() {
            let (a, z) = (map.node(route.nodes[i]), map.node(route.nodes[i + 1]));
            if a.level == level && z.level == level {
                for c in &map.edge(e).coords {
                    let p = px(map.to_local(c[0], c[1]));
                    if seg.last() != Some(&p) {
                        seg.push(p);
                    }
                }
            } else if !seg.is_empty() {
                lines.push(std::mem::take(&mut seg));
            }
        }
        if !seg.is_empty() {
            lines.push(seg);
        }
        for l in &lines {
            let pts = l.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect::<Vec<_>>().join(" ");
            let _ = write!(s, r##"<polyline class="route" points="{pts}" fill="none" stroke="#dc2626" stroke-width="4" stroke-linejoin="round" stroke-linecap="round"/>"##);
        }
        for (n, color) in [(route.nodes[0], "#16a34a"), (*route.nodes.last().expect("non-empty"), "#dc2626")] {
            let node = map.node(n);
            if node.level == level {
                let (x, y) = px([node.x, node.y]);
                let _ = write!(s, r##"<circle cx="{x:.1}" cy="{y:.1}" r="7" fill="{color}" stroke="#fff" stroke-width="2"/>"##);
            }
        }
    }
    s.push_str("</svg>\n");
    s
}
