//! Route latency: every query is one shortest-time search with path rebuild, as `/route` does it.
//!
//! 1. The demo hospital map: 1,000 seeded pairs of places, default and accessible profiles, plus
//!    turn-by-turn text.
//! 2. The shared peer's generated 10,000-node, 4-level hospital (`../shared/peers/route_peer.py`,
//!    which writes the graph and its 1,000 queries and times networkx and scipy on them in the
//!    same run): the same graph and the same queries here, path costs cross-checked, and the
//!    ratios printed (target: p99 < 0.3 ms, ≥ 10x networkx), with every query's cost checked
//!    against a plain Dijkstra and the index's build time and memory.
//!
//! `cargo bench --bench route` runs it fully; under `cargo test` a smoke version (demo map only,
//! 200 pairs) keeps it compiling and working.

#[path = "support/mod.rs"]
mod support;

use clinicflow::map::model::{EdgeKind, Lang, NavEdge};
use clinicflow::map::route::RouteIndex;
use clinicflow::map::{text, Profile};
use petgraph::graph::{DiGraph, NodeIndex};
use std::time::Instant;
use support::percentile;

/// xorshift: seeded pairs without another dependency.
fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn demo(pairs: usize) -> serde_json::Value {
    let m = clinicflow::map::demo();
    let mut seed = 0x5eed_u64;
    let mut out = serde_json::Map::new();
    for profile in [Profile::Default, Profile::Accessible] {
        let mut lat = Vec::with_capacity(pairs);
        let mut with_text = Vec::with_capacity(pairs);
        for _ in 0..pairs {
            let a = &m.places[(rng(&mut seed) % m.places.len() as u64) as usize];
            let b = &m.places[(rng(&mut seed) % m.places.len() as u64) as usize];
            let (f, t) = (m.resolve(&format!("place:{}", a.id)).unwrap(), m.resolve(&format!("place:{}", b.id)).unwrap());
            let t0 = Instant::now();
            let r = m.route(&f, &t, profile).expect("the demo map is connected");
            lat.push(t0.elapsed().as_secs_f64() * 1e3);
            let s = text::steps(&m, &r, &f.label, &t.label, Lang::Zh);
            with_text.push(t0.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box(s);
        }
        lat.sort_by(f64::total_cmp);
        with_text.sort_by(f64::total_cmp);
        out.insert(
            profile.name().to_owned(),
            serde_json::json!({"p50_ms": percentile(&lat, 0.5), "p99_ms": percentile(&lat, 0.99), "with_text_p99_ms": percentile(&with_text, 0.99)}),
        );
    }
    serde_json::json!({"bench": "route_demo_map", "nodes": m.graph.node_count(), "edges": m.graph.edge_count(), "pairs": pairs, "profiles": out})
}

fn read_csv(path: &std::path::Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path).unwrap().lines().skip(1).map(|l| l.split(',').map(str::to_owned).collect()).collect()
}

/// The peer's graph: undirected corridors (weight = metres) as two directed edges each.
fn synthetic(dir: &std::path::Path, peer: &serde_json::Value) -> serde_json::Value {
    let nodes = read_csv(&dir.join("nodes.csv"));
    let mut g: DiGraph<(), NavEdge> = DiGraph::with_capacity(nodes.len(), 0);
    for _ in &nodes {
        g.add_node(());
    }
    let edges = read_csv(&dir.join("edges.csv"));
    for e in &edges {
        let (a, b, w): (usize, usize, f64) = (e[0].parse().unwrap(), e[1].parse().unwrap(), e[2].parse().unwrap());
        let edge = NavEdge { id: String::new(), kind: EdgeKind::Corridor, accessible: true, length_m: w, seconds: 0.0, wait_seconds: 0.0, name: None, coords: Vec::new() };
        g.add_edge(NodeIndex::new(a), NodeIndex::new(b), edge.clone());
        g.add_edge(NodeIndex::new(b), NodeIndex::new(a), edge);
    }
    let queries: Vec<(usize, usize)> = read_csv(&dir.join("queries.csv")).iter().map(|q| (q[0].parse().unwrap(), q[1].parse().unwrap())).collect();
    // Built as a map load builds it: the search arrays and the landmarks A* uses.
    let t0 = Instant::now();
    let index = RouteIndex::new(&g);
    index.prepare();
    let build_ms = t0.elapsed().as_secs_f64() * 1e3;
    let mut lat = Vec::with_capacity(queries.len());
    let mut total_m = 0.0;
    let mut routes = Vec::with_capacity(queries.len());
    for &(s, t) in &queries {
        let t0 = Instant::now();
        let r = index.shortest(&[NodeIndex::new(s)], &[NodeIndex::new(t)], Profile::Default).expect("connected");
        lat.push(t0.elapsed().as_secs_f64() * 1e3);
        total_m += r.distance_m;
        routes.push(r.seconds);
    }
    // Every query's cost against a plain Dijkstra over the whole graph (untimed).
    let mismatches = queries
        .iter()
        .zip(&routes)
        .filter(|((s, t), got)| (index.search(&[NodeIndex::new(*s)], Profile::Default, |_| false).dist[*t] - **got).abs() > 1e-6)
        .count();
    lat.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    let mean = total_m / queries.len() as f64;
    let nx99 = peer["nx_p99_ms"].as_f64().unwrap_or(f64::NAN);
    let sp99 = peer["scipy_p99_ms"].as_f64().unwrap_or(f64::NAN);
    serde_json::json!({
        "bench": "route_synthetic", "nodes": nodes.len(), "edges": edges.len(), "queries": queries.len(),
        "p50_ms": p50, "p99_ms": p99, "mean_path_m": (mean * 10.0).round() / 10.0,
        "cost_mismatches_vs_dijkstra": mismatches, "index_build_ms": build_ms, "index_bytes": index.memory_bytes(),
        "peer_mean_path_m": peer["mean_path_cost"],
        "peer_nx_p50_ms": peer["nx_p50_ms"], "peer_nx_p99_ms": nx99, "peer_scipy_p99_ms": sp99,
        "speedup_p99_vs_networkx": nx99 / p99, "speedup_p99_vs_scipy": sp99 / p99,
    })
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let d = demo(if full { 1000 } else { 200 });
    println!("{d}");
    for p in ["default", "accessible"] {
        println!(
            "clinicflow demo map ({} nodes), {p}: route p50 {:.3} ms, p99 {:.3} ms (with turn-by-turn text p99 {:.3} ms)",
            d["nodes"], d["profiles"][p]["p50_ms"].as_f64().unwrap(), d["profiles"][p]["p99_ms"].as_f64().unwrap(), d["profiles"][p]["with_text_p99_ms"].as_f64().unwrap()
        );
    }
    if !full {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap().to_owned();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/peers/route_peer.py");
    let peer = std::process::Command::new("python3")
        .arg(&script)
        .args(["--out", &out])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().last().and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok()));
    let Some(peer) = peer else {
        println!("peer route_peer.py: unavailable (needs python3 with networkx, scipy, numpy; see ../shared/peers/README.md)");
        return;
    };
    println!("peer route_peer.py: {peer}");
    let s = synthetic(dir.path(), &peer);
    println!("{s}");
    println!(
        "clinicflow on the peer's {}-node graph, same {} queries: p50 {:.3} ms, p99 {:.3} ms (index {:.0} ms to build, {:.1} MB; {} costs differ from Dijkstra's); networkx p99 {:.2} ms → {:.0}x faster; scipy p99 {:.2} ms → {:.1}x; mean path {} m (peer {} m)",
        s["nodes"],
        s["queries"],
        s["p50_ms"].as_f64().unwrap(),
        s["p99_ms"].as_f64().unwrap(),
        s["index_build_ms"].as_f64().unwrap(),
        s["index_bytes"].as_f64().unwrap() / 1e6,
        s["cost_mismatches_vs_dijkstra"],
        s["peer_nx_p99_ms"].as_f64().unwrap_or(f64::NAN),
        s["speedup_p99_vs_networkx"].as_f64().unwrap_or(f64::NAN),
        s["peer_scipy_p99_ms"].as_f64().unwrap_or(f64::NAN),
        s["speedup_p99_vs_scipy"].as_f64().unwrap_or(f64::NAN),
        s["mean_path_m"],
        s["peer_mean_path_m"]
    );
}
