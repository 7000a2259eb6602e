//! Turn-by-turn steps a person can follow, in Chinese and English, with landmarks:
//! "乘电梯到 3F", "经过药房后左转 / turn left after the Pharmacy", "305 诊室在您右手边".

use super::model::{EdgeKind, Labels, Lang, VenueMap};
use super::route::Route;
use petgraph::graph::NodeIndex;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    Start,
    Walk,
    Turn,
    /// Crossing to another building (a skybridge, a covered walkway).
    Cross,
    Elevator,
    Stairs,
    Escalator,
    Arrive,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub kind: StepKind,
    /// In the requested language.
    pub text: String,
    pub text_zh: String,
    pub text_en: String,
    pub distance_m: f64,
    pub duration_s: f64,
    /// The level this step starts on.
    pub level: String,
    pub floor: String,
    /// The node it starts at.
    pub node: String,
}

/// A turn sharper than this (degrees) is said; gentler bends are "straight on".
const TURN_DEG: f64 = 35.0;

fn round_m(m: f64) -> f64 {
    if m < 10.0 {
        m.round().max(1.0)
    } else {
        (m / 5.0).round() * 5.0
    }
}

struct Writer<'a> {
    map: &'a VenueMap,
    route: &'a Route,
    lang: Lang,
    steps: Vec<Step>,
    /// The walk being accumulated: start node, metres, seconds.
    walk: Option<(NodeIndex, f64, f64)>,
    /// The last named place passed, for "after the pharmacy".
    passed: Option<Labels>,
}

impl Writer<'_> {
    fn push(&mut self, kind: StepKind, at: NodeIndex, zh: String, en: String, distance_m: f64, duration_s: f64) {
        let level = self.map.level_of(at);
        let text = match self.lang {
            Lang::Zh => zh.clone(),
            Lang::En => en.clone(),
        };
        self.steps.push(Step {
            kind,
            text,
            text_zh: zh,
            text_en: en,
            distance_m: (distance_m * 10.0).round() / 10.0,
            duration_s: duration_s.round(),
            level: level.id.clone(),
            floor: level.short_name.zh.clone(),
            node: self.map.node(at).id.clone(),
        });
    }

    fn flush_walk(&mut self) {
        if let Some((at, m, s)) = self.walk.take() {
            if m >= 1.0 {
                let r = round_m(m);
                self.push(StepKind::Walk, at, format!("直行 {r} 米"), format!("walk straight on for {r} m"), m, s);
            }
        }
    }
}

/// Heading of the segment p → q in degrees (0 = east, counter-clockwise).
fn heading(p: (f64, f64), q: (f64, f64)) -> f64 {
    (q.1 - p.1).atan2(q.0 - p.0).to_degrees()
}

/// Signed change from heading `a` to heading `b` in (-180, 180]; positive turns left.
fn turn(a: f64, b: f64) -> f64 {
    let mut d = b - a;
    while d > 180.0 {
        d -= 360.0;
    }
    while d <= -180.0 {
        d += 360.0;
    }
    d
}

pub fn steps(map: &VenueMap, route: &Route, from: &Labels, to: &Labels, lang: Lang) -> Vec<Step> {
    let mut w = Writer { map, route, lang, steps: Vec::new(), walk: None, passed: None };
    let first = route.nodes[0];
    let lvl = map.level_of(first);
    w.push(
        StepKind::Start,
        first,
        format!("从{}出发（{} {}）", from.zh, map.buildings[lvl.building].name.zh, lvl.short_name.zh),
        format!("start at {} ({}, {})", from.en, map.buildings[lvl.building].name.en, lvl.short_name.en),
        0.0,
        0.0,
    );
    let pos = |n: NodeIndex| (map.node(n).x, map.node(n).y);
    let n_edges = w.route.edges.len();
    let mut side_at_end: Option<bool> = None; // Some(true) = on the left
    let mut i = 0;
    while i < n_edges {
        let e = w.route.edges[i];
        let (a, z) = (w.route.nodes[i], w.route.nodes[i + 1]);
        let edge = map.edge(e);
        let secs = route.profile.cost(edge).unwrap_or(0.0);
        if edge.kind.is_vertical() {
            w.flush_walk();
            // Consecutive links of one kind are one step ("take the stairs up to 3F").
            let mut j = i;
            let mut total = 0.0;
            while j < n_edges && map.edge(w.route.edges[j]).kind == edge.kind {
                total += route.profile.cost(map.edge(w.route.edges[j])).unwrap_or(0.0);
                j += 1;
            }
            let dest = w.route.nodes[j];
            let (from_l, to_l) = (map.level_of(a), map.level_of(dest));
            let up = to_l.ordinal > from_l.ordinal;
            let (zh_dir, en_dir) = if up { ("上", "up") } else { ("下", "down") };
            let (kind, zh, en) = match edge.kind {
                EdgeKind::Elevator => (StepKind::Elevator, format!("乘电梯到 {}", to_l.short_name.zh), format!("take the lift {en_dir} to {}", to_l.short_name.en)),
                EdgeKind::Escalator => (StepKind::Escalator, format!("乘扶梯{zh_dir}到 {}", to_l.short_name.zh), format!("take the escalator {en_dir} to {}", to_l.short_name.en)),
                _ => (StepKind::Stairs, format!("走楼梯{zh_dir}到 {}", to_l.short_name.zh), format!("take the stairs {en_dir} to {}", to_l.short_name.en)),
            };
            w.push(kind, a, zh, en, 0.0, total);
            w.passed = None;
            i = j;
            continue;
        }
        let (ba, bz) = (map.level_of(a).building, map.level_of(z).building);
        if ba != bz {
            w.flush_walk();
            let via = edge.name.clone().unwrap_or(Labels { zh: "连廊".into(), en: "walkway".into() });
            let b = &map.buildings[bz].name;
            w.push(StepKind::Cross, a, format!("经{}到{}", via.zh, b.zh), format!("cross the {} to the {}", via.en, b.en), edge.length_m, secs);
            w.passed = None;
            i += 1;
            continue;
        }
        // A turn at `a`, between the previous horizontal edge and this one.
        if i > 0 && !map.edge(w.route.edges[i - 1]).kind.is_vertical() {
            let prev = w.route.nodes[i - 1];
            let d = turn(heading(pos(prev), pos(a)), heading(pos(a), pos(z)));
            let last_into_door = i + 1 == n_edges && edge.kind == EdgeKind::Door;
            if last_into_door {
                side_at_end = Some(d > 0.0);
            } else if d.abs() >= TURN_DEG {
                w.flush_walk();
                let (zh_t, en_t) = if d.abs() > 150.0 {
                    ("掉头", "turn around")
                } else if d > 0.0 {
                    ("左转", "turn left")
                } else {
                    ("右转", "turn right")
                };
                let (zh, en) = match (&map.node(a).landmark, &w.passed) {
                    (Some(l), _) => (format!("在{}处{zh_t}", l.zh), format!("{en_t} at {}", l.en)),
                    (None, Some(l)) => (format!("经过{}后{zh_t}", l.zh), format!("{en_t} after {}", l.en)),
                    (None, None) => (zh_t.to_owned(), en_t.to_owned()),
                };
                w.push(StepKind::Turn, a, zh, en, 0.0, 0.0);
            }
        }
        if i + 1 == n_edges && edge.kind == EdgeKind::Door {
            // The last few metres through the door belong to arriving, not to a walk.
            w.flush_walk();
        } else {
            let entry = w.walk.get_or_insert((a, 0.0, 0.0));
            entry.1 += edge.length_m;
            entry.2 += secs;
        }
        if let Some(l) = &map.node(z).landmark {
            w.passed = Some(l.clone());
        }
        i += 1;
    }
    w.flush_walk();
    let last = *route.nodes.last().expect("a route has a node");
    let (zh, en) = match side_at_end {
        Some(true) => (format!("到达{}，在您左手边", to.zh), format!("arrive at {}, on your left", to.en)),
        Some(false) => (format!("到达{}，在您右手边", to.zh), format!("arrive at {}, on your right", to.en)),
        None => (format!("到达{}", to.zh), format!("arrive at {}", to.en)),
    };
    w.push(StepKind::Arrive, last, zh, en, 0.0, 0.0);
    w.steps
}
