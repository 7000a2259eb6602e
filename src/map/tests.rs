//! The map core against the demo hospital: loading, routes, text, profiles, nearest places.

use super::model::{EdgeKind, Lang, PlaceKind};
use super::route::Profile;
use super::text::{steps, StepKind};
use super::*;
use proptest::prelude::*;
use std::sync::OnceLock;

fn demo_map() -> &'static VenueMap {
    static MAP: OnceLock<VenueMap> = OnceLock::new();
    MAP.get_or_init(demo)
}

#[test]
fn the_demo_map_is_valid_and_as_big_as_promised() {
    let m = demo_map();
    assert_eq!(m.buildings.len(), 2);
    assert_eq!(m.levels.len(), 8);
    let occupants = m.places.iter().filter(|p| p.kind == PlaceKind::Occupant).count();
    let markers = m.places.iter().filter(|p| p.kind == PlaceKind::Marker).count();
    assert!(occupants >= 30, "{occupants} departments and rooms");
    assert!(markers >= 20, "{markers} fixed points");
    for cat in ["restroom", "drinkingfountain", "elevator", "stairs"] {
        assert!(m.places.iter().any(|p| p.category == cat), "has {cat}");
    }
    // Every room of the demo hospital config is on the map.
    let hospital = crate::domain::config::Hospital::demo();
    for room in hospital.room_queues.keys() {
        assert!(m.rooms.contains_key(room.as_str()), "room {room} is on the map");
    }
    for d in &hospital.departments {
        assert!(m.departments.contains_key(d.id.as_str()), "department {} is on the map", d.id);
    }
}

#[test]
fn a_route_to_another_building_and_floor_takes_the_lift_and_says_so() {
    let m = demo_map();
    let from = m.resolve("marker:K-A-entrance").unwrap();
    let to = m.resolve("room:us-1").unwrap(); // ultrasound, building B floor 3
    let r = m.route(&from, &to, Profile::Default).unwrap();
    assert!(r.seconds > 0.0 && r.distance_m > 100.0, "{} s {} m", r.seconds, r.distance_m);
    let kinds: Vec<EdgeKind> = r.edges.iter().map(|&e| m.edge(e).kind).collect();
    assert!(kinds.iter().any(|k| k.is_vertical()), "changes floors by {kinds:?}");
    let s = steps(m, &r, &from.label, &to.label, Lang::Zh);
    let text: Vec<&str> = s.iter().map(|s| s.text_zh.as_str()).collect();
    assert!(text.iter().any(|t| t.contains("到 3F")), "{text:?}");
    assert!(text.iter().any(|t| t.contains("医技楼")), "{text:?}");
    assert_eq!(s.first().unwrap().kind, StepKind::Start);
    assert_eq!(s.last().unwrap().kind, StepKind::Arrive);
    assert!(s.last().unwrap().text_en.contains("Ultrasound Room 1"), "{:?}", s.last());
    let en = steps(m, &r, &from.label, &to.label, Lang::En);
    assert!(en.iter().any(|s| s.text.contains("to 3F")), "{:?}", en.iter().map(|s| &s.text).collect::<Vec<_>>());
}

#[test]
fn a_lift_ride_is_one_step_with_one_wait() {
    let m = demo_map();
    let from = m.resolve("marker:K-A-L1").unwrap();
    let to = m.resolve("room:c-301").unwrap();
    let r = m.route(&from, &to, Profile::Accessible).unwrap();
    let lifts: Vec<_> = r.edges.iter().filter(|&&e| m.edge(e).kind == EdgeKind::Elevator).collect();
    assert_eq!(lifts.len(), 1, "one ride from 1F to 3F");
    let s = steps(m, &r, &from.label, &to.label, Lang::En);
    assert_eq!(s.iter().filter(|s| s.kind == StepKind::Elevator).count(), 1);
    assert!(s.iter().any(|s| s.text == "take the lift up to 3F"), "{:?}", s.iter().map(|s| &s.text).collect::<Vec<_>>());
}

#[test]
fn a_department_is_reached_at_its_nearest_room_and_pois_come_by_walking_time() {
    let m = demo_map();
    let from = m.resolve("K-A-L2").unwrap();
    let to = m.resolve("department:lab").unwrap();
    let r = m.route(&from, &to, Profile::Default).unwrap();
    assert!(to.nodes.contains(r.nodes.last().unwrap()));
    let near = m.nearest(&from, Some("restroom"), Profile::Default, 3);
    assert_eq!(near.len(), 3);
    assert!(near.windows(2).all(|w| w[0].1 <= w[1].1));
    assert_eq!(m.levels[m.places[near[0].0].level].id, "A-L2", "the nearest toilet is on the same floor");
}

#[test]
fn qr_payloads_name_their_marker() {
    assert_eq!(VenueMap::marker_from_payload("https://h.example/kiosk/QR-A-L1-S1?x=1"), "QR-A-L1-S1");
    assert_eq!(VenueMap::marker_from_payload("clinicflow:marker:K-B-L2"), "K-B-L2");
    assert_eq!(VenueMap::marker_from_payload(" K-B-L2 "), "K-B-L2");
    assert!(demo_map().marker("https://h.example/kiosk/K-B-L2").is_some());
    assert!(demo_map().marker("nope").is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// Between any two places, the accessible route never uses stairs or escalators, and is never
    /// faster than the default one at the default pace.
    #[test]
    fn accessible_routes_never_contain_stairs(a in 0usize..1000, b in 0usize..1000) {
        let m = demo_map();
        let (pa, pb) = (&m.places[a % m.places.len()], &m.places[b % m.places.len()]);
        let from = m.resolve(&format!("place:{}", pa.id)).unwrap();
        let to = m.resolve(&format!("place:{}", pb.id)).unwrap();
        let r = m.route(&from, &to, Profile::Accessible).unwrap();
        for &e in &r.edges {
            let k = m.edge(e).kind;
            prop_assert!(k != EdgeKind::Stairs && k != EdgeKind::Escalator, "{} uses {:?}", pa.id, k);
        }
        let d = m.route(&from, &to, Profile::Default).unwrap();
        prop_assert!(d.seconds <= r.seconds + 1e-9);
        // A route changes floors only by a vertical link, and says so.
        let floors: std::collections::BTreeSet<i32> = r.nodes.iter().map(|&n| m.level_of(n).ordinal).collect();
        let s = steps(m, &r, &from.label, &to.label, Lang::Zh);
        if floors.len() > 1 {
            prop_assert!(s.iter().any(|s| s.kind == StepKind::Elevator), "{:?}", s);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]
    /// The single-pair search (A* with landmarks) finds exactly the cost of a plain Dijkstra,
    /// and its path is a real chain of edges from one end to the other with that cost.
    #[test]
    fn the_single_pair_search_agrees_with_dijkstra(a in 0usize..10_000, b in 0usize..10_000, p in 0usize..3) {
        let m = demo_map();
        let n = m.graph.node_count();
        let (s, t) = (petgraph::graph::NodeIndex::new(a % n), petgraph::graph::NodeIndex::new(b % n));
        let profile = Profile::ALL[p];
        let one = m.index.search(&[s], profile, |_| false).dist[t.index()];
        match m.index.shortest(&[s], &[t], profile) {
            Ok(r) => {
                prop_assert!((r.seconds - one).abs() < 1e-9, "{} vs {}", r.seconds, one);
                prop_assert_eq!(r.nodes.first(), Some(&s));
                prop_assert_eq!(r.nodes.last(), Some(&t));
                let mut sum = 0.0;
                for (i, &e) in r.edges.iter().enumerate() {
                    let (x, y) = m.graph.edge_endpoints(e).unwrap();
                    prop_assert_eq!((x, y), (r.nodes[i], r.nodes[i + 1]));
                    sum += profile.cost(m.edge(e)).unwrap();
                }
                prop_assert!((sum - r.seconds).abs() < 1e-6);
            }
            Err(_) => prop_assert!(one.is_infinite()),
        }
    }
}

/// A random graph: `n` nodes, each edge one-way or both ways, some stairs (closed to the
/// accessible profile), some lifts with a wait, some links not accessible — and parts that
/// cannot reach each other.
fn random_graph(n: usize, edges: &[(usize, usize, u8, u16)]) -> petgraph::graph::DiGraph<(), crate::map::model::NavEdge> {
    use crate::map::model::NavEdge;
    let mut g = petgraph::graph::DiGraph::new();
    let nodes: Vec<_> = (0..n).map(|_| g.add_node(())).collect();
    for &(a, b, kind, len) in edges {
        let (a, b) = (nodes[a % n], nodes[b % n]);
        let kind_of = [EdgeKind::Corridor, EdgeKind::Corridor, EdgeKind::Door, EdgeKind::Stairs, EdgeKind::Elevator, EdgeKind::Ramp][kind as usize % 6];
        let e = NavEdge {
            id: String::new(),
            kind: kind_of,
            accessible: kind_of != EdgeKind::Stairs && kind % 7 != 0,
            length_m: f64::from(len) / 10.0,
            seconds: if matches!(kind_of, EdgeKind::Stairs | EdgeKind::Elevator) { 5.0 + f64::from(len % 30) } else { 0.0 },
            wait_seconds: if kind_of == EdgeKind::Elevator { 20.0 } else { 0.0 },
            name: None,
            coords: Vec::new(),
        };
        g.add_edge(a, b, e.clone());
        if kind % 3 != 0 {
            g.add_edge(b, a, e);
        }
    }
    g
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// On random graphs (one-way links, links a profile may not use, unreachable parts), A* with
    /// landmarks finds Dijkstra's cost between every pair asked, or no route where there is none.
    #[test]
    fn landmark_search_equals_dijkstra_on_random_graphs(
        n in 2usize..120,
        edges in proptest::collection::vec((0usize..1000, 0usize..1000, 0u8..42, 1u16..2000), 1..400),
        pairs in proptest::collection::vec((0usize..1000, 0usize..1000), 1..20),
    ) {
        let g = random_graph(n, &edges);
        let ix = crate::map::route::RouteIndex::new(&g);
        for (a, b) in pairs {
            for profile in Profile::ALL {
                let (s, t) = (petgraph::graph::NodeIndex::new(a % n), petgraph::graph::NodeIndex::new(b % n));
                let want = ix.search(&[s], profile, |_| false).dist[t.index()];
                match ix.shortest(&[s], &[t], profile) {
                    Ok(r) => {
                        prop_assert!((r.seconds - want).abs() < 1e-6, "{} vs {} ({profile:?})", r.seconds, want);
                        let sum: f64 = r.edges.iter().map(|&e| profile.cost(&g[e]).unwrap()).sum();
                        prop_assert!((sum - r.seconds).abs() < 1e-6);
                        prop_assert_eq!(r.nodes.first(), Some(&s));
                        prop_assert_eq!(r.nodes.last(), Some(&t));
                    }
                    Err(_) => prop_assert!(want.is_infinite(), "no route found, Dijkstra has {want}"),
                }
            }
        }
    }
}
