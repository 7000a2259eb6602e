//! A venue's map once validated: what the router, the checks and the renderer read.

use petgraph::graph::{DiGraph, EdgeIndex, NodeIndex};
use serde::Serialize;
use std::collections::HashMap;

/// A name in Chinese and English (`en` falls back to `zh` when the map has no English).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Labels {
    pub zh: String,
    pub en: String,
}

impl Labels {
    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::Zh => &self.zh,
            Lang::En => &self.en,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    Zh,
    En,
}

impl Lang {
    pub fn parse(s: &str) -> Option<Lang> {
        match s.to_ascii_lowercase().as_str() {
            "zh" | "zh-cn" | "zh-hans" | "cn" => Some(Lang::Zh),
            "en" | "en-us" | "en-gb" => Some(Lang::En),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Building {
    pub id: String,
    pub name: Labels,
}

#[derive(Debug, Clone, Serialize)]
pub struct Level {
    pub id: String,
    /// Index into [`VenueMap::buildings`].
    #[serde(skip)]
    pub building: usize,
    pub building_id: String,
    /// 0 is the ground floor, -1 the first basement (IMDF).
    pub ordinal: i32,
    pub name: Labels,
    /// "3F", as a sign in the lift says it.
    pub short_name: Labels,
    /// The level's outline in local metres, when the map has one.
    #[serde(skip)]
    pub outline: Vec<[f64; 2]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    Corridor,
    Door,
    Entrance,
    Elevator,
    Stairs,
    Escalator,
    Ramp,
}

impl NodeKind {
    pub fn parse(s: &str) -> Option<NodeKind> {
        Some(match s {
            "corridor" | "walkway" => NodeKind::Corridor,
            "door" => NodeKind::Door,
            "entrance" => NodeKind::Entrance,
            "elevator" | "lift" => NodeKind::Elevator,
            "stairs" => NodeKind::Stairs,
            "escalator" => NodeKind::Escalator,
            "ramp" => NodeKind::Ramp,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    Corridor,
    Door,
    Ramp,
    Elevator,
    Stairs,
    Escalator,
}

impl EdgeKind {
    pub fn parse(s: &str) -> Option<EdgeKind> {
        Some(match s {
            "corridor" | "walkway" => EdgeKind::Corridor,
            "door" => EdgeKind::Door,
            "ramp" => EdgeKind::Ramp,
            "elevator" | "lift" => EdgeKind::Elevator,
            "stairs" => EdgeKind::Stairs,
            "escalator" => EdgeKind::Escalator,
            _ => return None,
        })
    }

    /// Vertical links join levels; every other kind stays on its level (or crosses to a level
    /// of the same ordinal in another building, as a skybridge does).
    pub fn is_vertical(self) -> bool {
        matches!(self, EdgeKind::Elevator | EdgeKind::Stairs | EdgeKind::Escalator)
    }
}

#[derive(Debug, Clone)]
pub struct NavNode {
    pub id: String,
    /// Index into [`VenueMap::levels`].
    pub level: usize,
    pub kind: NodeKind,
    /// The node's own name or the place at it (a door's room), used as a landmark in text.
    pub landmark: Option<Labels>,
    pub lon: f64,
    pub lat: f64,
    /// Local metres east and north of the venue's origin.
    pub x: f64,
    pub y: f64,
}

#[derive(Debug, Clone)]
pub struct NavEdge {
    pub id: String,
    pub kind: EdgeKind,
    /// False when a wheelchair cannot use it (besides stairs and escalators, which never are).
    pub accessible: bool,
    /// Walking length along its geometry (0 for lifts).
    pub length_m: f64,
    /// Vertical links: time to ride or climb at a normal pace. Others: a fixed extra delay (a
    /// door to buzz, a security check).
    pub seconds: f64,
    /// Lifts: expected wait before boarding.
    pub wait_seconds: f64,
    /// Named links ("连廊 / skybridge") are named in the text.
    pub name: Option<Labels>,
    /// Geometry in WGS84 [lon, lat], oriented from this edge's source to its target.
    pub coords: Vec<[f64; 2]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaceKind {
    /// A department or a room (IMDF occupant).
    Occupant,
    /// Toilets, water, lifts, information desks (IMDF amenity).
    Amenity,
    /// A fixed point: a kiosk or a QR marker on a wall.
    Marker,
}

/// Something a patient goes to or starts from.
#[derive(Debug, Clone, Serialize)]
pub struct Place {
    pub id: String,
    pub kind: PlaceKind,
    /// IMDF category: `clinic`, `laboratory`, `restroom`, `drinkingfountain`, `kiosk`, `qr`, …
    pub category: String,
    pub name: Labels,
    /// The hospital config's room id, when this place is a consulting room or a window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// The hospital config's department id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(skip)]
    pub node: NodeIndex,
    #[serde(skip)]
    pub level: usize,
    pub lon: f64,
    pub lat: f64,
}

impl Place {
    /// Whether a searched text names this place: its Chinese or English name (case-insensitive),
    /// its category, room or department id. Blank text matches everything.
    pub fn matches(&self, text: &str) -> bool {
        let q = text.trim().to_lowercase();
        q.is_empty()
            || [self.name.zh.as_str(), self.name.en.as_str(), self.category.as_str(), self.room.as_deref().unwrap_or(""), self.department.as_deref().unwrap_or("")]
                .iter()
                .any(|f| f.to_lowercase().contains(&q))
    }
}

#[derive(Debug, Clone)]
pub struct Unit {
    pub id: String,
    pub level: usize,
    pub category: String,
    pub name: Option<Labels>,
    /// Outer ring in local metres.
    pub ring: Vec<[f64; 2]>,
}

/// A venue's whole map. Immutable once built; shared as `Arc<VenueMap>`.
#[derive(Debug, Clone)]
pub struct VenueMap {
    pub id: String,
    pub name: Labels,
    pub buildings: Vec<Building>,
    pub levels: Vec<Level>,
    pub units: Vec<Unit>,
    /// Door-sized openings in local metres, for drawing.
    pub openings: Vec<(usize, Vec<[f64; 2]>)>,
    /// Directed: a two-way link is two edges. Lift shafts are expanded so that every pair of
    /// floors of one shaft is one edge (one wait, then the ride).
    pub graph: DiGraph<NavNode, NavEdge>,
    /// The graph laid out for fast searches (built from `graph` once).
    pub index: super::route::RouteIndex,
    pub node_ids: HashMap<String, NodeIndex>,
    pub places: Vec<Place>,
    /// Place lookups by id and by the config's room and department ids.
    pub place_ids: HashMap<String, usize>,
    pub rooms: HashMap<String, usize>,
    pub departments: HashMap<String, Vec<usize>>,
    /// The nodes patients come in by (kind `entrance`).
    pub entrances: Vec<NodeIndex>,
    /// Projection origin (lon, lat) and metres per degree there.
    pub origin: (f64, f64),
    pub m_per_deg: (f64, f64),
}

impl VenueMap {
    pub fn node(&self, n: NodeIndex) -> &NavNode {
        &self.graph[n]
    }

    pub fn edge(&self, e: EdgeIndex) -> &NavEdge {
        &self.graph[e]
    }

    pub fn level_of(&self, n: NodeIndex) -> &Level {
        &self.levels[self.graph[n].level]
    }

    pub fn to_local(&self, lon: f64, lat: f64) -> [f64; 2] {
        [(lon - self.origin.0) * self.m_per_deg.0, (lat - self.origin.1) * self.m_per_deg.1]
    }

    /// The navigation node nearest to `(x, y)` (local metres) on level `level` (an index into
    /// `levels`): where a route from a live position starts.
    pub fn nearest_node(&self, level: usize, x: f64, y: f64) -> Option<NodeIndex> {
        self.graph
            .node_indices()
            .filter(|&n| self.graph[n].level == level)
            .min_by(|&a, &b| {
                let d = |n: NodeIndex| (self.graph[n].x - x).hypot(self.graph[n].y - y);
                d(a).total_cmp(&d(b))
            })
    }

    pub fn markers(&self) -> impl Iterator<Item = &Place> {
        self.places.iter().filter(|p| p.kind == PlaceKind::Marker)
    }

    /// A marker id from what a QR code or kiosk link carries: the bare id, `clinicflow:marker:ID`,
    /// or a URL ending in `/kiosk/ID`.
    pub fn marker_from_payload(payload: &str) -> &str {
        let p = payload.trim();
        let p = p.strip_prefix("clinicflow:marker:").unwrap_or(p);
        let p = p.split(['?', '#']).next().unwrap_or(p);
        match p.rfind("/kiosk/") {
            Some(i) => p[i + "/kiosk/".len()..].trim_end_matches('/'),
            None => p,
        }
    }

    pub fn marker(&self, payload: &str) -> Option<&Place> {
        let id = Self::marker_from_payload(payload);
        self.place_ids.get(id).map(|&i| &self.places[i]).filter(|p| p.kind == PlaceKind::Marker)
    }

    /// Resolves a place reference: `marker:ID`, `room:ID`, `department:ID`, `place:ID`,
    /// `node:ID`, or a bare id tried in that order. A department resolves to all its places
    /// (the router goes to the nearest).
    pub fn resolve(&self, reference: &str) -> Option<Endpoint> {
        let (ns, id) = match reference.split_once(':') {
            Some((ns, id)) if matches!(ns, "marker" | "room" | "department" | "place" | "node") => (Some(ns), id),
            _ => (None, reference),
        };
        let place = |i: usize| Endpoint { label: self.places[i].name.clone(), nodes: vec![self.places[i].node], place: Some(i) };
        let try_ns = |ns: &str| -> Option<Endpoint> {
            match ns {
                "marker" => self.marker(id).and_then(|p| self.place_ids.get(&p.id).copied()).map(place),
                "room" => self.rooms.get(id).copied().map(place),
                "department" => {
                    let ps = self.departments.get(id)?;
                    // The department's own place (reception) names it; every place of it is a goal.
                    let head = ps.iter().copied().find(|&i| self.places[i].room.is_none()).unwrap_or(ps[0]);
                    Some(Endpoint { label: self.places[head].name.clone(), nodes: ps.iter().map(|&i| self.places[i].node).collect(), place: Some(head) })
                }
                "place" => self.place_ids.get(id).copied().map(place),
                "node" => self.node_ids.get(id).map(|&n| Endpoint {
                    label: self.graph[n].landmark.clone().unwrap_or_else(|| Labels { zh: id.to_owned(), en: id.to_owned() }),
                    nodes: vec![n],
                    place: None,
                }),
                _ => None,
            }
        };
        match ns {
            Some(ns) => try_ns(ns),
            None => ["marker", "room", "department", "place", "node"].iter().find_map(|ns| try_ns(ns)),
        }
    }
}

/// One end of a route: the node(s) it may be at, and what to call it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub label: Labels,
    pub nodes: Vec<NodeIndex>,
    /// Index into [`VenueMap::places`], when it is a place.
    pub place: Option<usize>,
}
