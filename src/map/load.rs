//! GeoJSON files → a validated [`VenueMap`]. Every problem is collected (not just the first) and
//! names its file and feature id, so a map author can fix them in one pass.
//!
//! Files (one per IMDF feature type, as IMDF archives have them): `venue`, `building`, `level`,
//! `navigation` are required; `unit`, `opening`, `amenity`, `occupant`, `anchor`, `kiosk` are
//! optional. The format is documented in `maps/README.md`.

use super::check;
use super::model::*;
use geojson::{Feature, GeoJson, GeometryValue};
use petgraph::graph::{DiGraph, NodeIndex};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// One problem in a map: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MapIssue {
    pub file: String,
    /// The feature's id, when the problem belongs to one.
    pub feature: Option<String>,
    pub message: String,
}

impl fmt::Display for MapIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.feature {
            Some(id) => write!(f, "{}: {}: {}", self.file, id, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MapIssues(pub Vec<MapIssue>);

impl fmt::Display for MapIssues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for MapIssues {}

const REQUIRED: [&str; 4] = ["venue", "building", "level", "navigation"];
const OPTIONAL: [&str; 6] = ["unit", "opening", "amenity", "occupant", "anchor", "kiosk"];
/// Largest map file read (a whole hospital's navigation graph is a few MB).
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// How far (m) an edge's drawn ends may sit from its nodes.
const END_TOLERANCE_M: f64 = 2.0;

/// Reads `<dir>/*.geojson` and validates it.
pub fn load_dir(dir: &Path) -> Result<VenueMap, MapIssues> {
    let mut files = Vec::new();
    let mut issues = Vec::new();
    for name in REQUIRED.iter().chain(OPTIONAL.iter()) {
        let file = format!("{name}.geojson");
        let path = dir.join(&file);
        match std::fs::metadata(&path) {
            Err(_) if OPTIONAL.contains(name) => continue,
            Err(e) => issues.push(MapIssue { file: file.clone(), feature: None, message: format!("cannot read {}: {e}", path.display()) }),
            Ok(m) if m.len() > MAX_FILE_BYTES => issues.push(MapIssue { file: file.clone(), feature: None, message: format!("larger than {MAX_FILE_BYTES} bytes") }),
            Ok(_) => match std::fs::read_to_string(&path) {
                Ok(text) => files.push((file, text)),
                Err(e) => issues.push(MapIssue { file, feature: None, message: format!("cannot read: {e}") }),
            },
        }
    }
    if !issues.is_empty() {
        return Err(MapIssues(issues));
    }
    parse_files(&files)
}

/// A feature as read: its file, id and properties.
struct Raw {
    file: String,
    id: String,
    props: Map<String, Value>,
    geometry: Option<GeometryValue>,
}

struct Builder {
    issues: Vec<MapIssue>,
}

impl Builder {
    fn issue(&mut self, file: &str, feature: Option<&str>, message: impl Into<String>) {
        self.issues.push(MapIssue { file: file.to_owned(), feature: feature.map(str::to_owned), message: message.into() });
    }
    fn on(&mut self, r: &Raw, message: impl Into<String>) {
        self.issue(&r.file.clone(), Some(&r.id.clone()), message);
    }
}

fn str_prop<'a>(r: &'a Raw, key: &str) -> Option<&'a str> {
    r.props.get(key).and_then(Value::as_str)
}

/// IMDF labels (`{"zh-Hans": "…", "en": "…"}`) or a plain string.
fn labels(v: Option<&Value>) -> Option<Labels> {
    match v? {
        Value::String(s) => Some(Labels { zh: s.clone(), en: s.clone() }),
        Value::Object(m) => {
            let get = |keys: &[&str]| keys.iter().find_map(|k| m.get(*k).and_then(Value::as_str)).map(str::to_owned);
            let zh = get(&["zh", "zh-Hans", "zh-CN", "zh-Hans-CN"]);
            let en = get(&["en", "en-US", "en-GB"]);
            match (zh, en) {
                (None, None) => m.values().find_map(Value::as_str).map(|s| Labels { zh: s.to_owned(), en: s.to_owned() }),
                (zh, en) => {
                    let zh = zh.or_else(|| en.clone()).unwrap_or_default();
                    let en = en.unwrap_or_else(|| zh.clone());
                    Some(Labels { zh, en })
                }
            }
        }
        _ => None,
    }
}

fn valid_position(p: &[f64]) -> bool {
    p.len() >= 2 && p[0].is_finite() && p[1].is_finite() && (-180.0..=180.0).contains(&p[0]) && (-90.0..=90.0).contains(&p[1])
}

/// Parses `(file name, text)` pairs into a map, or every problem found.
pub fn parse_files(files: &[(String, String)]) -> Result<VenueMap, MapIssues> {
    let mut b = Builder { issues: Vec::new() };
    let mut by_type: HashMap<String, Vec<Raw>> = HashMap::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for (file, text) in files {
        let stem = file.trim_end_matches(".geojson").to_owned();
        let gj = match text.parse::<GeoJson>() {
            Ok(g) => g,
            Err(e) => {
                b.issue(file, None, format!("not valid GeoJSON: {e}"));
                continue;
            }
        };
        let features: Vec<Feature> = match gj {
            GeoJson::FeatureCollection(fc) => fc.features,
            GeoJson::Feature(f) => vec![f],
            GeoJson::Geometry(_) => {
                b.issue(file, None, "a bare geometry; expected a FeatureCollection");
                continue;
            }
        };
        for (i, f) in features.into_iter().enumerate() {
            let props = f.properties.clone().unwrap_or_default();
            let id = match (&f.id, props.get("id")) {
                (Some(geojson::feature::Id::String(s)), _) => s.clone(),
                (Some(geojson::feature::Id::Number(n)), _) => n.to_string(),
                (None, Some(Value::String(s))) => s.clone(),
                _ => {
                    b.issue(file, None, format!("feature #{i} has no id"));
                    continue;
                }
            };
            // The feature type: IMDF's top-level `feature_type`, a `feature_type` property (QGIS
            // keeps properties, not foreign members), or the file it is in.
            let ftype = f
                .foreign_members
                .as_ref()
                .and_then(|m| m.get("feature_type"))
                .or_else(|| props.get("feature_type"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| if stem == "navigation" { String::new() } else { stem.clone() });
            let ftype = match (stem.as_str(), ftype.as_str()) {
                ("navigation", "nav_node" | "nav_edge") => ftype,
                ("navigation", "") => match f.geometry.as_ref().map(|g| &g.value) {
                    Some(GeometryValue::Point { .. }) => "nav_node".into(),
                    _ => "nav_edge".into(),
                },
                (_, t) if t == stem => ftype,
                (_, t) => {
                    b.issue(file, Some(&id), format!("feature_type {t:?} does not belong in {file}"));
                    continue;
                }
            };
            if let Some(prev) = seen.insert(id.clone(), file.clone()) {
                b.issue(file, Some(&id), format!("duplicate id (also in {prev})"));
                continue;
            }
            let geometry = f.geometry.map(|g| g.value);
            by_type.entry(ftype).or_default().push(Raw { file: file.clone(), id, props, geometry });
        }
    }
    for t in ["venue", "building", "level", "nav_node", "nav_edge"] {
        if by_type.get(t).is_none_or(Vec::is_empty) {
            let file = if t.starts_with("nav_") { "navigation.geojson".to_owned() } else { format!("{t}.geojson") };
            if !b.issues.iter().any(|i| i.file == file) {
                b.issue(&file, None, format!("no {t} features"));
            }
        }
    }
    if !b.issues.is_empty() {
        return Err(MapIssues(b.issues));
    }
    let take = |t: &str, m: &mut HashMap<String, Vec<Raw>>| m.remove(t).unwrap_or_default();
    let venues = take("venue", &mut by_type);
    let venue = &venues[0];
    for extra in &venues[1..] {
        b.on(extra, "a map folder holds one venue");
    }
    // Projection origin: the first level's first vertex, or the venue's.
    let origin = first_position(venue.geometry.as_ref())
        .or_else(|| by_type.get("level").and_then(|ls| ls.iter().find_map(|l| first_position(l.geometry.as_ref()))))
        .unwrap_or([0.0, 0.0]);
    // Equirectangular around the origin: centimetre-exact across a hospital campus.
    let m_per_deg = (111_320.0 * origin[1].to_radians().cos(), 111_320.0);
    let local = |p: &[f64]| [(p[0] - origin[0]) * m_per_deg.0, (p[1] - origin[1]) * m_per_deg.1];

    // Buildings.
    let mut buildings = Vec::new();
    let mut building_ix = HashMap::new();
    for r in take("building", &mut by_type) {
        building_ix.insert(r.id.clone(), buildings.len());
        buildings.push(Building { name: labels(r.props.get("name")).unwrap_or(Labels { zh: r.id.clone(), en: r.id.clone() }), id: r.id });
    }
    // Levels.
    let mut levels = Vec::new();
    let mut level_ix = HashMap::new();
    for r in take("level", &mut by_type) {
        let ordinal = match r.props.get("ordinal").and_then(Value::as_i64) {
            Some(o) => o as i32,
            None => {
                b.on(&r, "level has no integer ordinal");
                0
            }
        };
        let bid = r.props.get("building_ids").and_then(Value::as_array).and_then(|a| a.first()).and_then(Value::as_str).map(str::to_owned);
        let building = match bid.as_deref().and_then(|id| building_ix.get(id)) {
            Some(&i) => i,
            None => {
                b.on(&r, format!("building_ids names no known building ({})", bid.as_deref().unwrap_or("missing")));
                continue;
            }
        };
        let outline = match &r.geometry {
            Some(GeometryValue::Polygon { coordinates }) => polygon_ring(&mut b, &r, coordinates).map(|ring| ring.iter().map(|p| local(p)).collect()).unwrap_or_default(),
            Some(GeometryValue::MultiPolygon { coordinates }) if !coordinates.is_empty() => {
                polygon_ring(&mut b, &r, &coordinates[0]).map(|ring| ring.iter().map(|p| local(p)).collect()).unwrap_or_default()
            }
            None => Vec::new(),
            Some(_) => {
                b.on(&r, "a level's geometry must be a Polygon");
                Vec::new()
            }
        };
        let floor = if ordinal >= 0 { format!("{}", ordinal + 1) } else { format!("B{}", -ordinal) };
        let name = labels(r.props.get("name")).unwrap_or(Labels { zh: format!("{floor} 楼"), en: format!("floor {floor}") });
        let short_name = labels(r.props.get("short_name")).unwrap_or(Labels { zh: format!("{floor}F"), en: format!("{floor}F") });
        level_ix.insert(r.id.clone(), levels.len());
        levels.push(Level { building_id: buildings[building].id.clone(), id: r.id, building, ordinal, name, short_name, outline });
    }
    // Units (rooms and corridors, for drawing and for anchors' levels).
    let mut units = Vec::new();
    let mut unit_ix = HashMap::new();
    for r in take("unit", &mut by_type) {
        let Some(level) = level_ref(&mut b, &r, &level_ix) else { continue };
        let ring = match &r.geometry {
            Some(GeometryValue::Polygon { coordinates }) => polygon_ring(&mut b, &r, coordinates),
            Some(GeometryValue::MultiPolygon { coordinates }) if !coordinates.is_empty() => polygon_ring(&mut b, &r, &coordinates[0]),
            _ => {
                b.on(&r, "a unit's geometry must be a Polygon");
                None
            }
        };
        let Some(ring) = ring else { continue };
        unit_ix.insert(r.id.clone(), units.len());
        units.push(Unit {
            level,
            category: str_prop(&r, "category").unwrap_or("unspecified").to_owned(),
            name: labels(r.props.get("name")),
            ring: ring.iter().map(|p| local(p)).collect(),
            id: r.id,
        });
    }
    let mut openings = Vec::new();
    for r in take("opening", &mut by_type) {
        let Some(level) = level_ref(&mut b, &r, &level_ix) else { continue };
        match &r.geometry {
            Some(GeometryValue::LineString { coordinates }) if coordinates.len() >= 2 && coordinates.iter().all(|p| valid_position(p.as_slice())) => {
                openings.push((level, coordinates.iter().map(|p| local(p.as_slice())).collect()))
            }
            _ => b.on(&r, "an opening's geometry must be a LineString of valid WGS84 positions"),
        }
    }

    // The navigation graph.
    let mut graph: DiGraph<NavNode, NavEdge> = DiGraph::new();
    let mut node_ids = HashMap::new();
    let mut entrances = Vec::new();
    for r in take("nav_node", &mut by_type) {
        let Some(level) = level_ref(&mut b, &r, &level_ix) else { continue };
        let Some(p) = point_of(&mut b, &r) else { continue };
        let kind = match str_prop(&r, "kind").map(NodeKind::parse) {
            Some(Some(k)) => k,
            None => NodeKind::Corridor,
            Some(None) => {
                b.on(&r, format!("unknown node kind {:?}", str_prop(&r, "kind").unwrap_or_default()));
                continue;
            }
        };
        let [x, y] = local(&p);
        if levels[level].outline.len() >= 4 && !inside_or_near(&levels[level].outline, [x, y], 1.0) {
            b.on(&r, format!("node lies outside its level {}", levels[level].id));
        }
        let n = graph.add_node(NavNode { id: r.id.clone(), level, kind, landmark: labels(r.props.get("name")), lon: p[0], lat: p[1], x, y });
        if kind == NodeKind::Entrance {
            entrances.push(n);
        }
        node_ids.insert(r.id, n);
    }
    let mut lifts: Vec<(NodeIndex, NodeIndex, f64, f64, Option<Labels>, String)> = Vec::new();
    for r in take("nav_edge", &mut by_type) {
        let ends = ["from", "to"].map(|k| str_prop(&r, k).map(str::to_owned));
        let (Some(from), Some(to)) = (&ends[0], &ends[1]) else {
            b.on(&r, "an edge needs `from` and `to` node ids");
            continue;
        };
        let (Some(&a), Some(&z)) = (node_ids.get(from), node_ids.get(to)) else {
            let missing = if node_ids.contains_key(from) { to } else { from };
            b.on(&r, format!("names unknown node {missing:?}"));
            continue;
        };
        if a == z {
            b.on(&r, "an edge from a node to itself");
            continue;
        }
        let kind = match EdgeKind::parse(str_prop(&r, "kind").unwrap_or("corridor")) {
            Some(k) => k,
            None => {
                b.on(&r, format!("unknown edge kind {:?}", str_prop(&r, "kind").unwrap_or_default()));
                continue;
            }
        };
        let (la, lz) = (&levels[graph[a].level], &levels[graph[z].level]);
        if kind.is_vertical() && la.id == lz.id {
            b.on(&r, format!("a {kind:?} link must join two levels; both ends are on {}", la.id).to_lowercase());
            continue;
        }
        if !kind.is_vertical() && la.ordinal != lz.ordinal {
            b.on(&r, format!("edge leaves its level: {from} is on {} and {to} on {} (only stairs, lifts and escalators change floors)", la.id, lz.id));
            continue;
        }
        let num = |k: &str| r.props.get(k).and_then(Value::as_f64);
        let (seconds, wait) = (num("seconds"), num("wait_seconds"));
        if seconds.is_some_and(|s| !(0.0..=3600.0).contains(&s)) || wait.is_some_and(|s| !(0.0..=3600.0).contains(&s)) {
            b.on(&r, "seconds and wait_seconds must be between 0 and 3600");
            continue;
        }
        let mut coords: Vec<[f64; 2]> = match &r.geometry {
            Some(GeometryValue::LineString { coordinates }) if coordinates.len() >= 2 && coordinates.iter().all(|p| valid_position(p.as_slice())) => {
                coordinates.iter().map(|p| [p[0], p[1]]).collect()
            }
            None => vec![[graph[a].lon, graph[a].lat], [graph[z].lon, graph[z].lat]],
            _ => {
                b.on(&r, "an edge's geometry must be a LineString of valid WGS84 positions (or null)");
                continue;
            }
        };
        let pts: Vec<[f64; 2]> = coords.iter().map(|p| local(p)).collect();
        let (na, nz) = ([graph[a].x, graph[a].y], [graph[z].x, graph[z].y]);
        let d = |p: [f64; 2], q: [f64; 2]| ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt();
        let (first, last) = (pts[0], pts[pts.len() - 1]);
        if d(first, nz) <= END_TOLERANCE_M && d(last, na) <= END_TOLERANCE_M && d(first, na) > END_TOLERANCE_M {
            coords.reverse(); // drawn the other way round
        } else if !kind.is_vertical() && (d(first, na) > END_TOLERANCE_M || d(last, nz) > END_TOLERANCE_M) {
            b.on(&r, format!("its line does not start at {from} and end at {to} (within {END_TOLERANCE_M} m)"));
            continue;
        }
        let length_m = if kind == EdgeKind::Elevator { 0.0 } else { pts.windows(2).map(|w| d(w[0], w[1])).sum() };
        let accessible = r.props.get("accessible").and_then(Value::as_bool).unwrap_or(true) && !matches!(kind, EdgeKind::Stairs | EdgeKind::Escalator);
        let one_way = r.props.get("one_way").and_then(Value::as_bool).unwrap_or(false);
        let name = labels(r.props.get("name"));
        let default_seconds = match kind {
            EdgeKind::Elevator => 6.0,
            EdgeKind::Stairs => 18.0,
            EdgeKind::Escalator => 20.0,
            _ => 0.0,
        };
        if kind == EdgeKind::Elevator {
            lifts.push((a, z, seconds.unwrap_or(default_seconds), wait.unwrap_or(40.0), name, r.id));
            continue;
        }
        let edge = NavEdge { id: r.id.clone(), kind, accessible, length_m, seconds: seconds.unwrap_or(default_seconds), wait_seconds: 0.0, name, coords: coords.clone() };
        graph.add_edge(a, z, edge.clone());
        if !one_way {
            let mut back = edge;
            back.coords.reverse();
            graph.add_edge(z, a, back);
        }
    }
    expand_lifts(&mut graph, lifts);

    // Places: occupants (through their anchors), amenities, fixed points.
    let anchors: HashMap<String, Raw> = take("anchor", &mut by_type).into_iter().map(|r| (r.id.clone(), r)).collect();
    let mut places = Vec::new();
    let mut place = |b: &mut Builder, r: &Raw, kind: PlaceKind, p: [f64; 2], level: usize, category: String| {
        let node = match str_prop(r, "nav_node") {
            Some(id) => match node_ids.get(id) {
                Some(&n) => n,
                None => {
                    b.on(r, format!("nav_node {id:?} is not a node of navigation.geojson"));
                    return;
                }
            },
            None => match nearest_node(&graph, level, local(&p)) {
                Some(n) => n,
                None => {
                    b.on(r, "no navigation node on its level to reach it by");
                    return;
                }
            },
        };
        if levels[graph[node].level].ordinal != levels[level].ordinal {
            b.on(r, format!("its nav_node {} is on another floor", graph[node].id));
            return;
        }
        let name = labels(r.props.get("name")).unwrap_or(Labels { zh: r.id.clone(), en: r.id.clone() });
        places.push(Place {
            id: r.id.clone(),
            kind,
            category,
            name,
            room: str_prop(r, "room").map(str::to_owned),
            department: str_prop(r, "department").map(str::to_owned),
            node,
            level,
            lon: p[0],
            lat: p[1],
        });
    };
    for r in take("occupant", &mut by_type) {
        let Some(anchor_id) = str_prop(&r, "anchor_id") else {
            b.on(&r, "an occupant needs an anchor_id");
            continue;
        };
        let Some(anchor) = anchors.get(anchor_id) else {
            b.on(&r, format!("anchor_id {anchor_id:?} is not in anchor.geojson"));
            continue;
        };
        let level = match str_prop(anchor, "unit_id").and_then(|u| unit_ix.get(u)) {
            Some(&u) => units[u].level,
            None => match level_ref(&mut b, anchor, &level_ix) {
                Some(l) => l,
                None => continue,
            },
        };
        let Some(p) = point_of(&mut b, anchor) else { continue };
        let category = str_prop(&r, "category").unwrap_or("unspecified").to_owned();
        place(&mut b, &r, PlaceKind::Occupant, p, level, category);
    }
    for r in take("amenity", &mut by_type) {
        let level = match str_prop(&r, "level_id") {
            Some(_) => level_ref(&mut b, &r, &level_ix),
            None => {
                let unit = r.props.get("unit_ids").and_then(Value::as_array).and_then(|a| a.first()).and_then(Value::as_str);
                match unit.and_then(|u| unit_ix.get(u)) {
                    Some(&u) => Some(units[u].level),
                    None => {
                        b.on(&r, "an amenity needs a level_id or unit_ids naming a known unit");
                        None
                    }
                }
            }
        };
        let Some(level) = level else { continue };
        let Some(p) = point_of(&mut b, &r) else { continue };
        let category = str_prop(&r, "category").unwrap_or("unspecified").to_owned();
        place(&mut b, &r, PlaceKind::Amenity, p, level, category);
    }
    for r in take("kiosk", &mut by_type) {
        let Some(level) = level_ref(&mut b, &r, &level_ix) else { continue };
        let p = match &r.geometry {
            Some(GeometryValue::Polygon { coordinates }) => polygon_ring(&mut b, &r, coordinates).map(|ring| centroid(&ring)),
            _ => point_of(&mut b, &r),
        };
        let Some(p) = p else { continue };
        let category = str_prop(&r, "kind").unwrap_or("kiosk").to_owned();
        place(&mut b, &r, PlaceKind::Marker, p, level, category);
    }
    // Landmarks: a node without a name takes the name of the place at it.
    for p in &places {
        if p.kind != PlaceKind::Marker && graph[p.node].landmark.is_none() {
            graph[p.node].landmark = Some(p.name.clone());
        }
    }
    // A corridor node takes the name of the door, lift or stairwell beside it, so turns can say
    // "at Room 101" where the corridor itself has no name.
    for n in graph.node_indices() {
        if graph[n].landmark.is_some() || graph[n].kind != NodeKind::Corridor {
            continue;
        }
        let beside = graph.neighbors(n).find(|&m| matches!(graph[m].kind, NodeKind::Door | NodeKind::Elevator | NodeKind::Stairs) && graph[m].landmark.is_some());
        if let Some(m) = beside {
            graph[n].landmark = graph[m].landmark.clone();
        }
    }
    let mut place_ids = HashMap::new();
    let mut rooms = HashMap::new();
    let mut departments: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, p) in places.iter().enumerate() {
        place_ids.insert(p.id.clone(), i);
        if let Some(room) = &p.room {
            if rooms.insert(room.clone(), i).is_some() {
                b.issue("occupant.geojson", Some(&p.id), format!("room {room:?} is given to two places"));
            }
        }
        if let Some(d) = &p.department {
            departments.entry(d.clone()).or_default().push(i);
        }
    }
    if entrances.is_empty() {
        b.issue("navigation.geojson", None, "no node of kind \"entrance\": patients need a way in");
    }
    let index = super::route::RouteIndex::new(&graph);
    // The landmarks A* uses, built with the map (not on its first route).
    index.prepare();
    let map = VenueMap {
        index,
        id: venue.id.clone(),
        name: labels(venue.props.get("name")).unwrap_or(Labels { zh: venue.id.clone(), en: venue.id.clone() }),
        buildings,
        levels,
        units,
        openings,
        graph,
        node_ids,
        places,
        place_ids,
        rooms,
        departments,
        entrances,
        origin: (origin[0], origin[1]),
        m_per_deg,
    };
    if b.issues.is_empty() {
        b.issues.extend(check::reachability(&map));
    }
    if b.issues.is_empty() {
        Ok(map)
    } else {
        Err(MapIssues(b.issues))
    }
}

/// Every floor pair of one lift shaft becomes one edge: one wait, then the ride.
fn expand_lifts(graph: &mut DiGraph<NavNode, NavEdge>, lifts: Vec<(NodeIndex, NodeIndex, f64, f64, Option<Labels>, String)>) {
    if lifts.is_empty() {
        return;
    }
    // Shafts: connected components of the lift links.
    let mut adj: HashMap<NodeIndex, Vec<(NodeIndex, f64)>> = HashMap::new();
    let mut meta: HashMap<NodeIndex, (f64, Option<Labels>, String)> = HashMap::new();
    for (a, z, secs, wait, name, id) in &lifts {
        adj.entry(*a).or_default().push((*z, *secs));
        adj.entry(*z).or_default().push((*a, *secs));
        for n in [a, z] {
            let e = meta.entry(*n).or_insert((*wait, name.clone(), id.clone()));
            e.0 = e.0.max(*wait);
        }
    }
    let mut starts: Vec<NodeIndex> = adj.keys().copied().collect();
    starts.sort();
    for s in starts {
        // Ride times from s to every stop of its shaft (a small Dijkstra over the shaft).
        let mut dist: HashMap<NodeIndex, f64> = HashMap::from([(s, 0.0)]);
        let mut frontier = vec![s];
        while let Some(u) = frontier.pop() {
            for &(v, w) in &adj[&u] {
                let nd = dist[&u] + w;
                if dist.get(&v).is_none_or(|&old| nd < old) {
                    dist.insert(v, nd);
                    frontier.push(v);
                }
            }
        }
        let (wait, name, id) = meta[&s].clone();
        let mut stops: Vec<(NodeIndex, f64)> = dist.into_iter().filter(|&(v, _)| v != s).collect();
        stops.sort_by_key(|&(v, _)| v);
        for (v, ride) in stops {
            let coords = vec![[graph[s].lon, graph[s].lat], [graph[v].lon, graph[v].lat]];
            let id = format!("{id}:{}>{}", graph[s].id, graph[v].id);
            graph.add_edge(s, v, NavEdge { id, kind: EdgeKind::Elevator, accessible: true, length_m: 0.0, seconds: ride, wait_seconds: wait, name: name.clone(), coords });
        }
    }
}

fn nearest_node(graph: &DiGraph<NavNode, NavEdge>, level: usize, p: [f64; 2]) -> Option<NodeIndex> {
    graph
        .node_indices()
        .filter(|&n| graph[n].level == level)
        .min_by(|&a, &z| {
            let d = |n: NodeIndex| (graph[n].x - p[0]).powi(2) + (graph[n].y - p[1]).powi(2);
            d(a).total_cmp(&d(z))
        })
}

fn level_ref(b: &mut Builder, r: &Raw, level_ix: &HashMap<String, usize>) -> Option<usize> {
    match str_prop(r, "level_id") {
        Some(l) => match level_ix.get(l) {
            Some(&i) => Some(i),
            None => {
                b.on(r, format!("level_id {l:?} is not a level of level.geojson"));
                None
            }
        },
        None => {
            b.on(r, "missing level_id");
            None
        }
    }
}

fn point_of(b: &mut Builder, r: &Raw) -> Option<[f64; 2]> {
    match &r.geometry {
        Some(GeometryValue::Point { coordinates }) if valid_position(coordinates.as_slice()) => Some([coordinates[0], coordinates[1]]),
        Some(GeometryValue::Point { .. }) => {
            b.on(r, "coordinates are not a WGS84 [longitude, latitude]");
            None
        }
        _ => {
            b.on(r, "geometry must be a Point");
            None
        }
    }
}

fn polygon_ring(b: &mut Builder, r: &Raw, rings: &[Vec<geojson::Position>]) -> Option<Vec<[f64; 2]>> {
    let Some(outer) = rings.first() else {
        b.on(r, "a polygon without rings");
        return None;
    };
    if outer.iter().any(|p| !valid_position(p.as_slice())) {
        b.on(r, "coordinates are not WGS84 [longitude, latitude]");
        return None;
    }
    if outer.len() < 4 || outer.first().map(|p| [p[0], p[1]]) != outer.last().map(|p| [p[0], p[1]]) {
        b.on(r, "a polygon ring needs at least 4 positions and must be closed");
        return None;
    }
    Some(outer.iter().map(|p| [p[0], p[1]]).collect())
}

fn first_position(g: Option<&GeometryValue>) -> Option<[f64; 2]> {
    match g? {
        GeometryValue::Point { coordinates } => Some([coordinates[0], coordinates[1]]),
        GeometryValue::Polygon { coordinates } => coordinates.first()?.first().map(|p| [p[0], p[1]]),
        GeometryValue::MultiPolygon { coordinates } => coordinates.first()?.first()?.first().map(|p| [p[0], p[1]]),
        _ => None,
    }
    .filter(|p| valid_position(p))
}

fn centroid(ring: &[[f64; 2]]) -> [f64; 2] {
    let n = (ring.len().saturating_sub(1)).max(1) as f64;
    let (sx, sy) = ring.iter().take(ring.len().saturating_sub(1).max(1)).fold((0.0, 0.0), |(x, y), p| (x + p[0], y + p[1]));
    [sx / n, sy / n]
}

/// Point in polygon (boundary and `tol` metres around it included), via geo.
fn inside_or_near(ring: &[[f64; 2]], p: [f64; 2], tol: f64) -> bool {
    use geo::{Distance, Euclidean, Intersects};
    let poly = geo::Polygon::new(geo::LineString::from(ring.iter().map(|q| (q[0], q[1])).collect::<Vec<_>>()), vec![]);
    let pt = geo::Point::new(p[0], p[1]);
    poly.intersects(&pt) || Euclidean.distance(&pt, poly.exterior()) <= tol
}
