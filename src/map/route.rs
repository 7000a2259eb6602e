//! Shortest walking time over the navigation graph, under a profile.
//!
//! Dijkstra with dense per-query arrays (the graph is a petgraph `DiGraph`, so node indices are
//! `0..n`), stopping at the first goal settled; a department or "the nearest toilet" is a set of
//! goals. One place to one place — what `/route` and the guide ask — is A* with landmarks (ALT):
//! for a few nodes spread over the graph every node's cost from and to them is kept per profile
//! (O(N) memory: 16 landmarks), and the triangle inequality bounds what is left of any route, so
//! the search heads for the goal instead of spreading in every direction. Same costs as
//! Dijkstra (a property test holds them equal). Deterministic: ties break on node index.

use super::model::{EdgeKind, Endpoint, NavEdge, VenueMap};
use petgraph::graph::{DiGraph, EdgeIndex, NodeIndex};
use petgraph::visit::EdgeRef;
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Who is walking: it decides the pace and which links may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// 1.2 m/s, stairs and escalators allowed.
    #[default]
    Default,
    /// Wheelchair, crutches, a pram: no stairs, no escalators, no link marked not accessible;
    /// 0.8 m/s.
    Accessible,
    /// An elderly or slow walker: 0.7 m/s, stairs cost 2.5 times as long (allowed, avoided).
    Slow,
}

impl Profile {
    pub const ALL: [Profile; 3] = [Profile::Default, Profile::Accessible, Profile::Slow];

    pub fn parse(s: &str) -> Option<Profile> {
        match s {
            "default" | "" => Some(Profile::Default),
            "accessible" | "wheelchair" => Some(Profile::Accessible),
            "slow" | "elderly" => Some(Profile::Slow),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::Accessible => "accessible",
            Profile::Slow => "slow",
        }
    }

    pub fn speed_m_s(self) -> f64 {
        match self {
            Profile::Default => 1.2,
            Profile::Accessible => 0.8,
            Profile::Slow => 0.7,
        }
    }

    /// Seconds to traverse `e`, or `None` when this profile may not use it.
    pub fn cost(self, e: &NavEdge) -> Option<f64> {
        if self == Profile::Accessible && !e.accessible {
            return None;
        }
        Some(match e.kind {
            EdgeKind::Elevator => e.wait_seconds + e.seconds,
            EdgeKind::Stairs if self == Profile::Slow => e.seconds * 2.5 + e.length_m / self.speed_m_s(),
            EdgeKind::Stairs | EdgeKind::Escalator => e.seconds,
            _ => e.length_m / self.speed_m_s() + e.seconds,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum RouteError {
    /// No path under this profile (for `accessible`: no step-free route).
    Unreachable { profile: Profile },
}

/// A found path: nodes and the edges between them, with its totals.
#[derive(Debug, Clone)]
pub struct Route {
    pub profile: Profile,
    pub nodes: Vec<NodeIndex>,
    pub edges: Vec<EdgeIndex>,
    pub seconds: f64,
    pub distance_m: f64,
}

#[derive(Copy, Clone, PartialEq)]
struct Item {
    cost: f64,
    node: u32,
}
impl Eq for Item {}
impl Ord for Item {
    fn cmp(&self, other: &Self) -> Ordering {
        // Min-heap on cost, then on node index for determinism.
        other.cost.total_cmp(&self.cost).then_with(|| other.node.cmp(&self.node))
    }
}
impl PartialOrd for Item {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

const NONE: u32 = u32::MAX;

/// The graph laid out for searching: compressed adjacency (CSR) with each profile's edge costs
/// precomputed (∞ where the profile may not go). Built once per map, read by every query.
#[derive(Debug, Clone, Default)]
pub struct RouteIndex {
    /// Out-edges of node `n` are `offsets[n]..offsets[n + 1]`.
    offsets: Vec<u32>,
    target: Vec<u32>,
    source: Vec<u32>,
    /// The petgraph edge each CSR slot stands for (for the path's geometry and text).
    edge: Vec<EdgeIndex>,
    length_m: Vec<f64>,
    /// Seconds per profile, in [`Profile::ALL`] order.
    cost: [Vec<f64>; 3],
    /// In-edges of node `n` are the forward slots `rev_slot[rev_offsets[n]..rev_offsets[n + 1]]`
    /// (for the backward half of a two-sided search).
    rev_offsets: Vec<u32>,
    rev_slot: Vec<u32>,
    /// Landmark costs for A*, built on first use (or by [`RouteIndex::prepare`]).
    landmarks: std::sync::OnceLock<Landmarks>,
}

/// How many landmarks A* keeps (fewer on a smaller graph).
const LANDMARKS: usize = 16;

/// Every node's cost from and to each landmark, per profile (f32, ∞ where there is no way).
#[derive(Debug, Clone, Default)]
struct Landmarks {
    count: usize,
    /// `from[p][l * n + v]`: cost of landmark `l` → `v` under profile `p`.
    from: [Vec<f32>; 3],
    /// `to[p][l * n + v]`: cost of `v` → landmark `l`.
    to: [Vec<f32>; 3],
}

impl Landmarks {
    /// A lower bound on the cost `v` → `t` under profile slot `p` (the triangle inequality over
    /// every landmark, both ways). `INFINITY`: `v` cannot reach `t` at all.
    fn bound(&self, p: usize, n: usize, v: usize, t: usize) -> f64 {
        let (from, to) = (&self.from[p], &self.to[p]);
        let mut best = 0.0f32;
        for l in 0..self.count {
            // L → t ≤ L → v + v → t: so v → t ≥ (L → t) − (L → v).
            let (lv, lt) = (from[l * n + v], from[l * n + t]);
            if lv.is_finite() {
                if lt.is_infinite() {
                    return f64::INFINITY; // L reaches v but not t: neither can v
                }
                best = best.max(lt - lv);
            }
            // v → L ≤ v → t + t → L: so v → t ≥ (v → L) − (t → L).
            let (vl, tl) = (to[l * n + v], to[l * n + t]);
            if tl.is_finite() {
                if vl.is_infinite() {
                    return f64::INFINITY; // t reaches L but v does not: v cannot reach t
                }
                best = best.max(vl - tl);
            }
        }
        // f32 rounding must never make the bound exceed the truth.
        (f64::from(best) * (1.0 - 1e-6) - 1e-3).max(0.0)
    }
}

fn profile_slot(p: Profile) -> usize {
    match p {
        Profile::Default => 0,
        Profile::Accessible => 1,
        Profile::Slow => 2,
    }
}

/// Per-query working memory, reused across queries on one thread so a search allocates nothing.
#[derive(Default)]
struct Scratch {
    dist: Vec<f64>,
    via: Vec<u32>,
    touched: Vec<u32>,
    heap: BinaryHeap<Item>,
}

impl Scratch {
    fn reset(&mut self, n: usize) {
        if self.dist.len() != n {
            self.dist = vec![f64::INFINITY; n];
            self.via = vec![NONE; n];
            self.touched.clear();
        } else {
            for &t in &self.touched {
                self.dist[t as usize] = f64::INFINITY;
                self.via[t as usize] = NONE;
            }
            self.touched.clear();
        }
        self.heap.clear();
    }

    /// `v` reached at cost `nd` over CSR slot `k`: keep it if it is better.
    fn relax(&mut self, v: usize, nd: f64, k: usize) {
        if nd < self.dist[v] {
            if self.dist[v].is_infinite() {
                self.touched.push(v as u32);
            }
            self.dist[v] = nd;
            self.via[v] = k as u32;
            self.heap.push(Item { cost: nd, node: v as u32 });
        }
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Costs and predecessors of a finished search.
pub struct Settled {
    pub dist: Vec<f64>,
    pub via: Vec<Option<EdgeIndex>>,
}

impl RouteIndex {
    pub fn new<N>(graph: &DiGraph<N, NavEdge>) -> RouteIndex {
        let n = graph.node_count();
        let mut ix = RouteIndex { offsets: Vec::with_capacity(n + 1), ..Default::default() };
        for u in graph.node_indices() {
            ix.offsets.push(ix.target.len() as u32);
            // petgraph lists out-edges newest first; sort by edge index for a stable order.
            let mut out: Vec<_> = graph.edges(u).collect();
            out.sort_by_key(|e| e.id());
            for e in out {
                ix.target.push(e.target().index() as u32);
                ix.source.push(u.index() as u32);
                ix.edge.push(e.id());
                ix.length_m.push(e.weight().length_m);
                for p in Profile::ALL {
                    ix.cost[profile_slot(p)].push(p.cost(e.weight()).unwrap_or(f64::INFINITY));
                }
            }
        }
        ix.offsets.push(ix.target.len() as u32);
        // Reverse adjacency by counting sort on targets.
        let mut count = vec![0u32; n + 1];
        for &t in &ix.target {
            count[t as usize + 1] += 1;
        }
        for i in 0..n {
            count[i + 1] += count[i];
        }
        ix.rev_offsets = count.clone();
        ix.rev_slot = vec![0; ix.target.len()];
        for (k, &t) in ix.target.iter().enumerate() {
            let at = &mut count[t as usize];
            ix.rev_slot[*at as usize] = k as u32;
            *at += 1;
        }
        ix
    }

    /// Bytes the index holds: its search arrays and, once built, the landmark costs.
    pub fn memory_bytes(&self) -> usize {
        let csr = self.offsets.len() * 4 + self.target.len() * 4 * 2 + self.edge.len() * std::mem::size_of::<EdgeIndex>() + self.length_m.len() * 8;
        let costs: usize = self.cost.iter().map(|c| c.len() * 8).sum();
        let rev = (self.rev_offsets.len() + self.rev_slot.len()) * 4;
        let lm = self.landmarks.get().map_or(0, |l| l.from.iter().chain(l.to.iter()).map(|v| v.len() * 4).sum());
        csr + costs + rev + lm
    }

    /// Build the landmark costs now (a map being loaded), not on the first single-pair route.
    pub fn prepare(&self) {
        self.landmarks();
    }

    fn landmarks(&self) -> &Landmarks {
        self.landmarks.get_or_init(|| self.build_landmarks())
    }

    /// Landmarks by farthest insertion (each the node farthest, at the default pace, from those
    /// chosen), then each one's costs from and to every node under every profile.
    fn build_landmarks(&self) -> Landmarks {
        let n = self.node_count();
        let count = LANDMARKS.min(n);
        if count == 0 {
            return Landmarks::default();
        }
        let mut chosen: Vec<usize> = Vec::with_capacity(count);
        // Start from the node farthest from node 0, then keep adding the farthest from all.
        let mut nearest = self.fill(&[0], Profile::Default, false);
        while chosen.len() < count {
            let next = (0..n).filter(|v| nearest[*v].is_finite() && !chosen.contains(v)).max_by(|a, b| nearest[*a].total_cmp(&nearest[*b]).then(b.cmp(a)));
            // Nodes not reached from those chosen (another part of the graph): start there.
            let next = next.or_else(|| (0..n).find(|v| !chosen.contains(v)));
            let Some(next) = next else { break };
            chosen.push(next);
            let d = self.fill(&[next], Profile::Default, false);
            for v in 0..n {
                if chosen.len() == 1 {
                    nearest[v] = d[v];
                } else {
                    nearest[v] = nearest[v].min(d[v]);
                }
            }
        }
        let mut lm = Landmarks { count: chosen.len(), ..Default::default() };
        for p in Profile::ALL {
            let slot = profile_slot(p);
            for &l in &chosen {
                lm.from[slot].extend(self.fill(&[l], p, false).iter().map(|&d| d as f32));
                lm.to[slot].extend(self.fill(&[l], p, true).iter().map(|&d| d as f32));
            }
        }
        lm
    }

    /// Every node's cost from `sources` (or, `backward`, to them) under `profile`.
    fn fill(&self, sources: &[usize], profile: Profile, backward: bool) -> Vec<f64> {
        let n = self.node_count();
        let cost = &self.cost[profile_slot(profile)];
        let mut dist = vec![f64::INFINITY; n];
        let mut heap = BinaryHeap::new();
        for &x in sources {
            dist[x] = 0.0;
            heap.push(Item { cost: 0.0, node: x as u32 });
        }
        while let Some(Item { cost: c, node }) = heap.pop() {
            let u = node as usize;
            if c > dist[u] {
                continue;
            }
            let (lo, hi) = if backward { (self.rev_offsets[u], self.rev_offsets[u + 1]) } else { (self.offsets[u], self.offsets[u + 1]) };
            for j in lo as usize..hi as usize {
                let k = if backward { self.rev_slot[j] as usize } else { j };
                let v = if backward { self.source[k] } else { self.target[k] } as usize;
                let nd = c + cost[k];
                if nd < dist[v] {
                    dist[v] = nd;
                    heap.push(Item { cost: nd, node: v as u32 });
                }
            }
        }
        dist
    }

    /// One source, one target: A* guided by the landmarks. Returns the cost and the path's CSR
    /// slots. The bound is admissible, so the first time `t` leaves the heap its cost is the
    /// least; a node found cheaper after it was expanded is expanded again.
    fn alt(&self, sc: &mut Scratch, s: usize, t: usize, profile: Profile) -> Option<(f64, Vec<u32>)> {
        let n = self.node_count();
        if s >= n || t >= n {
            return None;
        }
        sc.reset(n);
        if s == t {
            return Some((0.0, Vec::new()));
        }
        let lm = self.landmarks();
        let slot = profile_slot(profile);
        let cost = &self.cost[slot];
        let h0 = lm.bound(slot, n, s, t);
        if h0.is_infinite() {
            return None;
        }
        sc.dist[s] = 0.0;
        sc.touched.push(s as u32);
        sc.heap.push(Item { cost: h0, node: s as u32 });
        while let Some(Item { cost: f, node }) = sc.heap.pop() {
            let u = node as usize;
            if u == t {
                break;
            }
            let g = sc.dist[u];
            // Stale: u was reached cheaper since this entry was pushed.
            if f > g + lm.bound(slot, n, u, t) + 1e-9 {
                continue;
            }
            for k in self.offsets[u] as usize..self.offsets[u + 1] as usize {
                let v = self.target[k] as usize;
                let nd = g + cost[k];
                if nd < sc.dist[v] {
                    let h = lm.bound(slot, n, v, t);
                    if h.is_infinite() {
                        continue;
                    }
                    if sc.dist[v].is_infinite() {
                        sc.touched.push(v as u32);
                    }
                    sc.dist[v] = nd;
                    sc.via[v] = k as u32;
                    sc.heap.push(Item { cost: nd + h, node: v as u32 });
                }
            }
        }
        if sc.dist[t].is_infinite() {
            return None;
        }
        let mut slots = Vec::new();
        let mut at = t;
        while sc.via[at] != NONE {
            let k = sc.via[at];
            slots.push(k);
            at = self.source[k as usize] as usize;
        }
        slots.reverse();
        Some((sc.dist[t], slots))
    }

    /// The same graph with every edge turned round ("who can reach this node?").
    pub fn reversed<N: Clone>(graph: &DiGraph<N, NavEdge>) -> RouteIndex {
        let mut g = graph.clone();
        g.reverse();
        RouteIndex::new(&g)
    }

    pub fn node_count(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Dijkstra from `sources` until `stop` says a settled node ends it; returns the stopping node.
    fn run(&self, s: &mut Scratch, sources: &[NodeIndex], profile: Profile, mut stop: impl FnMut(usize) -> bool) -> Option<usize> {
        s.reset(self.node_count());
        let cost = &self.cost[profile_slot(profile)];
        for &src in sources {
            let i = src.index();
            if i < s.dist.len() && s.dist[i] != 0.0 {
                s.dist[i] = 0.0;
                s.touched.push(i as u32);
                s.heap.push(Item { cost: 0.0, node: i as u32 });
            }
        }
        while let Some(Item { cost: c, node }) = s.heap.pop() {
            let u = node as usize;
            if c > s.dist[u] {
                continue; // a stale entry: u was settled cheaper
            }
            if stop(u) {
                return Some(u);
            }
            for k in self.offsets[u] as usize..self.offsets[u + 1] as usize {
                s.relax(self.target[k] as usize, c + cost[k], k);
            }
        }
        None
    }

    /// A whole search (every node reachable from `sources`, or until `stop`), with its results.
    pub fn search(&self, sources: &[NodeIndex], profile: Profile, stop: impl FnMut(usize) -> bool) -> Settled {
        let mut s = Scratch::default();
        self.run(&mut s, sources, profile, stop);
        Settled { via: s.via.iter().map(|&k| (k != NONE).then(|| self.edge[k as usize])).collect(), dist: s.dist }
    }

    /// The fastest path from any of `from` to the nearest of `to`.
    pub fn shortest(&self, from: &[NodeIndex], to: &[NodeIndex], profile: Profile) -> Result<Route, RouteError> {
        if let ([s], [t]) = (from, to) {
            return SCRATCH.with(|cell| {
                let sc = &mut *cell.borrow_mut();
                let (seconds, slots) = self.alt(sc, s.index(), t.index(), profile).ok_or(RouteError::Unreachable { profile })?;
                let mut nodes = vec![*s];
                nodes.extend(slots.iter().map(|&k| NodeIndex::new(self.target[k as usize] as usize)));
                let edges = slots.iter().map(|&k| self.edge[k as usize]).collect();
                let distance_m = slots.iter().map(|&k| self.length_m[k as usize]).sum();
                Ok(Route { profile, nodes, edges, seconds, distance_m })
            });
        }
        SCRATCH.with(|cell| {
            let s = &mut *cell.borrow_mut();
            let (single, many) = match to {
                [one] => (Some(one.index()), None),
                _ => {
                    let mut goal = vec![false; self.node_count()];
                    for t in to {
                        if let Some(g) = goal.get_mut(t.index()) {
                            *g = true;
                        }
                    }
                    (None, Some(goal))
                }
            };
            let reached = self.run(s, from, profile, |u| match (&single, &many) {
                (Some(t), _) => u == *t,
                (_, Some(g)) => g[u],
                _ => false,
            });
            let Some(end) = reached else { return Err(RouteError::Unreachable { profile }) };
            let mut nodes = vec![NodeIndex::new(end)];
            let mut edges = Vec::new();
            let mut distance_m = 0.0;
            let mut at = end;
            while s.via[at] != NONE {
                let k = s.via[at] as usize;
                edges.push(self.edge[k]);
                distance_m += self.length_m[k];
                at = self.source[k] as usize;
                nodes.push(NodeIndex::new(at));
            }
            nodes.reverse();
            edges.reverse();
            Ok(Route { profile, nodes, edges, seconds: s.dist[end], distance_m })
        })
    }
}

/// The fastest path from any of `from` to the nearest of `to` (builds the index; for one-off use).
pub fn shortest<N>(graph: &DiGraph<N, NavEdge>, from: &[NodeIndex], to: &[NodeIndex], profile: Profile) -> Result<Route, RouteError> {
    RouteIndex::new(graph).shortest(from, to, profile)
}

impl VenueMap {
    pub fn route(&self, from: &Endpoint, to: &Endpoint, profile: Profile) -> Result<Route, RouteError> {
        self.index.shortest(&from.nodes, &to.nodes, profile)
    }

    /// Places of `category` (all places when `None`) ordered by walking time from `from`, at most
    /// `limit`, each with its time and distance.
    pub fn nearest(&self, from: &Endpoint, category: Option<&str>, profile: Profile, limit: usize) -> Vec<(usize, f64, f64)> {
        let wanted: Vec<usize> = (0..self.places.len())
            .filter(|&i| self.places[i].kind != super::model::PlaceKind::Marker)
            .filter(|&i| category.is_none_or(|c| self.places[i].category == c))
            .collect();
        let mut goals = vec![0usize; self.graph.node_count()];
        for &i in &wanted {
            goals[self.places[i].node.index()] += 1;
        }
        let mut remaining = wanted.len();
        let Settled { dist, via } = self.index.search(&from.nodes, profile, |n| {
            remaining -= goals[n];
            remaining == 0
        });
        let metres = |mut at: NodeIndex| {
            let mut m = 0.0;
            while let Some(e) = via[at.index()] {
                m += self.graph[e].length_m;
                at = self.graph.edge_endpoints(e).expect("edge of this graph").0;
            }
            m
        };
        let mut found: Vec<(usize, f64, f64)> =
            wanted.into_iter().filter(|&i| dist[self.places[i].node.index()].is_finite()).map(|i| (i, dist[self.places[i].node.index()], metres(self.places[i].node))).collect();
        found.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        found.truncate(limit);
        found
    }
}
