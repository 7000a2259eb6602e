//! Where a patient can be: a finite set of walkable states and who can reach whom in one step.
//!
//! Two ways to build it. A venue map gives its navigation graph: states every `spacing` metres
//! along each corridor and door link, one per node, and a step reaches only states within walking
//! reach *along the graph*, so a position can never cut through a wall, and another floor is only
//! reached through a lift, stairs or escalator link. A bare outline (a surveyed flat, a ward
//! without a navigation graph) gives a grid inside the polygon, where a step may not cross the
//! outline's walls.

use crate::map::VenueMap;
use std::collections::{BinaryHeap, HashMap};

/// One walkable place a tag can be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct State {
    /// Index into [`Space::levels`].
    pub level: u16,
    /// Local metres, in the venue's frame.
    pub x: f64,
    pub y: f64,
}

/// How a space is laid out and how far a tag can move per step.
#[derive(Debug, Clone, Copy)]
pub struct SpaceParams {
    /// Distance between neighbouring states.
    pub spacing_m: f64,
    /// How far a person can walk in one filter step (walking speed × step length).
    pub reach_m: f64,
}

/// The states and, per state, where the next step may lead and how likely (rows sum to 1).
#[derive(Debug, Clone)]
pub struct Space {
    /// Level ids, as the venue names them (`A-L1`), or one anonymous level for an outline.
    pub levels: Vec<String>,
    pub states: Vec<State>,
    /// CSR: the moves out of state `i` are `moves[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<u32>,
    moves: Vec<(u32, f32)>,
    /// Nearest-state lookup: states per (level, cell) of `cell_m` metres.
    cells: HashMap<(u16, i32, i32), Vec<u32>>,
    cell_m: f64,
    pub params: SpaceParams,
}

impl Space {
    /// A grid of states inside `outline` (a closed polygon in metres; the outline's edges are the
    /// walls) where `keep` says a person can stand. States closer than a few centimetres to a
    /// wall are dropped.
    pub fn from_outline(outline: &[[f64; 2]], params: SpaceParams, keep: impl Fn(f64, f64) -> bool) -> Space {
        let walls = segments(outline);
        let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
        for p in outline {
            for k in 0..2 {
                lo[k] = lo[k].min(p[k]);
                hi[k] = hi[k].max(p[k]);
            }
        }
        let s = params.spacing_m;
        let mut states = Vec::new();
        if lo[0].is_finite() && s > 0.0 {
            let nx = ((hi[0] - lo[0]) / s).floor() as i64;
            let ny = ((hi[1] - lo[1]) / s).floor() as i64;
            for i in 0..=nx {
                for j in 0..=ny {
                    let p = [lo[0] + (i as f64 + 0.5) * s, lo[1] + (j as f64 + 0.5) * s];
                    if inside(outline, p) && keep(p[0], p[1]) && walls.iter().all(|w| dist_to_segment(p, w[0], w[1]) > 0.02) {
                        states.push(State { level: 0, x: p[0], y: p[1] });
                    }
                }
            }
        }
        let mut space = Space::with_states(vec!["0".to_owned()], states, params);
        let reach = params.reach_m;
        let adjacency: Vec<Vec<(u32, f64)>> = (0..space.states.len())
            .map(|i| {
                let a = space.states[i];
                space
                    .within(a.level, a.x, a.y, reach)
                    .into_iter()
                    .filter(|&j| {
                        let b = space.states[j as usize];
                        !walls.iter().any(|w| crosses([a.x, a.y], [b.x, b.y], w[0], w[1]))
                    })
                    .map(|j| (j, dist(&a, &space.states[j as usize])))
                    .collect()
            })
            .collect();
        space.set_moves(adjacency);
        space
    }

    /// States along the venue's navigation graph, linked along it; vertical links (lifts, stairs,
    /// escalators) join the states of their two end nodes, and nothing else changes floor.
    pub fn from_venue(map: &VenueMap, params: SpaceParams) -> Space {
        let levels: Vec<String> = map.levels.iter().map(|l| l.id.clone()).collect();
        let mut states = Vec::new();
        let mut node_state = HashMap::new();
        for n in map.graph.node_indices() {
            let node = &map.graph[n];
            node_state.insert(n, states.len() as u32);
            states.push(State { level: node.level as u16, x: node.x, y: node.y });
        }
        // Links between states: (a, b, metres); vertical ones marked so a step crosses them rarely.
        let mut links: Vec<(u32, u32, f64, bool)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for e in map.graph.edge_indices() {
            let Some((s, t)) = map.graph.edge_endpoints(e) else { continue };
            if !seen.insert((s.min(t), s.max(t))) {
                continue; // a two-way link is two directed edges; sample it once
            }
            let edge = &map.graph[e];
            let (a, b) = (node_state[&s], node_state[&t]);
            if edge.kind.is_vertical() {
                links.push((a, b, 0.0, true));
                continue;
            }
            let pts: Vec<[f64; 2]> = edge.coords.iter().map(|c| map.to_local(c[0], c[1])).collect();
            let level = map.graph[s].level as u16;
            let length: f64 = pts.windows(2).map(|w| seg_len(w[0], w[1])).sum();
            let mut prev = a;
            let mut at = params.spacing_m;
            // Samples every `spacing` metres; the last gap is never a sliver.
            while at < length - params.spacing_m * 0.3 {
                let p = point_at(&pts, at);
                let id = states.len() as u32;
                states.push(State { level, x: p[0], y: p[1] });
                links.push((prev, id, dist(&states[prev as usize], &states[id as usize]), false));
                prev = id;
                at += params.spacing_m;
            }
            links.push((prev, b, dist(&states[prev as usize], &states[b as usize]), false));
        }
        let mut space = Space::with_states(levels, states, params);
        let mut graph: Vec<Vec<(u32, f64, bool)>> = vec![Vec::new(); space.states.len()];
        for &(a, b, d, v) in &links {
            graph[a as usize].push((b, d, v));
            graph[b as usize].push((a, d, v));
        }
        // Every state's moves: what lies within reach along the graph (a bounded Dijkstra), and
        // across a vertical link only from its own end state.
        let reach = params.reach_m;
        let adjacency: Vec<Vec<(u32, f64)>> = (0..space.states.len())
            .map(|i| {
                let mut best: HashMap<u32, f64> = HashMap::from([(i as u32, 0.0)]);
                let mut heap = BinaryHeap::from([Near(0.0, i as u32)]);
                let mut out = Vec::new();
                while let Some(Near(d, u)) = heap.pop() {
                    if d > best[&u] {
                        continue;
                    }
                    out.push((u, d));
                    for &(v, w, vertical) in &graph[u as usize] {
                        if vertical {
                            if u == i as u32 {
                                out.push((v, VERTICAL));
                            }
                            continue;
                        }
                        let nd = d + w;
                        if nd <= reach && best.get(&v).is_none_or(|&b| nd < b) {
                            best.insert(v, nd);
                            heap.push(Near(nd, v));
                        }
                    }
                }
                out
            })
            .collect();
        space.set_moves(adjacency);
        space
    }

    fn with_states(levels: Vec<String>, states: Vec<State>, params: SpaceParams) -> Space {
        let cell_m = params.reach_m.max(params.spacing_m).max(0.5);
        let mut cells: HashMap<(u16, i32, i32), Vec<u32>> = HashMap::new();
        for (i, s) in states.iter().enumerate() {
            cells.entry((s.level, (s.x / cell_m).floor() as i32, (s.y / cell_m).floor() as i32)).or_default().push(i as u32);
        }
        Space { levels, states, offsets: vec![0], moves: Vec::new(), cells, cell_m, params }
    }

    /// Turns neighbours with their distances into transition probabilities: a Gaussian on the
    /// distance with σ = reach / 2 (standing still most likely), vertical links a small fixed weight.
    fn set_moves(&mut self, adjacency: Vec<Vec<(u32, f64)>>) {
        let sigma = (self.params.reach_m / 2.0).max(1e-6);
        self.offsets = Vec::with_capacity(adjacency.len() + 1);
        self.offsets.push(0);
        for row in adjacency {
            let w: Vec<f64> = row.iter().map(|&(_, d)| if d == VERTICAL { VERTICAL_WEIGHT } else { 1.0 + 0.0 * sigma }).collect();
            let total: f64 = w.iter().sum();
            for (&(j, _), w) in row.iter().zip(w) {
                self.moves.push((j, (w / total) as f32));
            }
            self.offsets.push(self.moves.len() as u32);
        }
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// Where one step from `state` may lead, with probabilities summing to 1.
    pub fn moves(&self, state: u32) -> &[(u32, f32)] {
        let i = state as usize;
        &self.moves[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// States on `level` within `radius` metres of (x, y), straight-line.
    pub fn within(&self, level: u16, x: f64, y: f64, radius: f64) -> Vec<u32> {
        let c = self.cell_m;
        let r = (radius / c).ceil() as i32;
        let (cx, cy) = ((x / c).floor() as i32, (y / c).floor() as i32);
        let mut out = Vec::new();
        for i in cx - r..=cx + r {
            for j in cy - r..=cy + r {
                if let Some(v) = self.cells.get(&(level, i, j)) {
                    out.extend(v.iter().copied().filter(|&k| {
                        let s = &self.states[k as usize];
                        (s.x - x).powi(2) + (s.y - y).powi(2) <= radius * radius
                    }));
                }
            }
        }
        out
    }

    /// The state nearest to (x, y) on `level`, searching outwards up to `max_m` metres.
    pub fn nearest(&self, level: u16, x: f64, y: f64, max_m: f64) -> Option<u32> {
        let mut radius = self.cell_m;
        loop {
            let best = self
                .within(level, x, y, radius)
                .into_iter()
                .min_by(|&a, &b| {
                    let (sa, sb) = (&self.states[a as usize], &self.states[b as usize]);
                    let da = (sa.x - x).powi(2) + (sa.y - y).powi(2);
                    let db = (sb.x - x).powi(2) + (sb.y - y).powi(2);
                    da.total_cmp(&db)
                });
            if best.is_some() || radius >= max_m {
                return best;
            }
            radius = (radius * 2.0).min(max_m);
        }
    }

    pub fn level_index(&self, id: &str) -> Option<u16> {
        self.levels.iter().position(|l| l == id).map(|i| i as u16)
    }
}

/// Marks a vertical link in a row of neighbours (its distance does not count).
const VERTICAL: f64 = -1.0;
/// A vertical link's weight against standing still (1.0): a lift ride is rare in any one step.
const VERTICAL_WEIGHT: f64 = 0.05;

#[derive(PartialEq)]
struct Near(f64, u32);
impl Eq for Near {}
impl Ord for Near {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.0.total_cmp(&self.0).then(o.1.cmp(&self.1))
    }
}
impl PartialOrd for Near {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

fn dist(a: &State, b: &State) -> f64 {
    ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt()
}

fn seg_len(a: [f64; 2], b: [f64; 2]) -> f64 {
    ((b[0] - a[0]).powi(2) + (b[1] - a[1]).powi(2)).sqrt()
}

/// The point `at` metres along a polyline.
fn point_at(pts: &[[f64; 2]], mut at: f64) -> [f64; 2] {
    for w in pts.windows(2) {
        let len = seg_len(w[0], w[1]);
        if at <= len && len > 0.0 {
            let f = at / len;
            return [w[0][0] + f * (w[1][0] - w[0][0]), w[0][1] + f * (w[1][1] - w[0][1])];
        }
        at -= len;
    }
    *pts.last().unwrap_or(&[0.0, 0.0])
}

fn segments(poly: &[[f64; 2]]) -> Vec<[[f64; 2]; 2]> {
    let n = poly.len();
    (0..n).map(|i| [poly[i], poly[(i + 1) % n]]).filter(|s| s[0] != s[1]).collect()
}

/// Even-odd rule.
pub fn inside(poly: &[[f64; 2]], p: [f64; 2]) -> bool {
    let mut c = false;
    let n = poly.len();
    for i in 0..n {
        let (a, b) = (poly[i], poly[(i + 1) % n]);
        if (a[1] > p[1]) != (b[1] > p[1]) && p[0] < a[0] + (p[1] - a[1]) * (b[0] - a[0]) / (b[1] - a[1]) {
            c = !c;
        }
    }
    c
}

fn cross(o: [f64; 2], a: [f64; 2], b: [f64; 2]) -> f64 {
    (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
}

/// Whether segment p–q properly crosses segment a–b.
fn crosses(p: [f64; 2], q: [f64; 2], a: [f64; 2], b: [f64; 2]) -> bool {
    let (d1, d2) = (cross(a, b, p), cross(a, b, q));
    let (d3, d4) = (cross(p, q, a), cross(p, q, b));
    d1 * d2 < 0.0 && d3 * d4 < 0.0
}

/// Distance from p to segment a–b.
pub fn dist_to_segment(p: [f64; 2], a: [f64; 2], b: [f64; 2]) -> f64 {
    let d = [b[0] - a[0], b[1] - a[1]];
    let len2 = d[0] * d[0] + d[1] * d[1];
    let t = if len2 == 0.0 { 0.0 } else { (((p[0] - a[0]) * d[0] + (p[1] - a[1]) * d[1]) / len2).clamp(0.0, 1.0) };
    ((a[0] + t * d[0] - p[0]).powi(2) + (a[1] + t * d[1] - p[1]).powi(2)).sqrt()
}
