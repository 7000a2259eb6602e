//! Wayfinding over HTTP: `/route`, `/pois`, `/locate`, `/maps` (levels and SVG) and the admin
//! map reload. Public reads (a patient's phone and a kiosk ask them); reload is admin only.

use super::error::ApiError;
use super::Data;
use crate::site::Role;
use crate::map::model::{Lang, PlaceKind, VenueMap};
use crate::map::store::{Atlas, ResolveError};
use crate::map::{Profile, RouteError};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

fn query<T: DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    serde_urlencoded::from_str(req.query_string()).map_err(|e| ApiError::bad_request("invalid_query", format!("bad query string: {e}")))
}

fn profile(p: Option<&str>) -> Result<Profile, ApiError> {
    let p = p.unwrap_or("default");
    Profile::parse(p).ok_or_else(|| ApiError::bad_request("unknown_profile", format!("unknown profile {p:?}; use default, accessible or slow")))
}

fn lang(l: Option<&str>) -> Result<Lang, ApiError> {
    match l {
        None => Ok(Lang::Zh),
        Some(l) => Lang::parse(l).ok_or_else(|| ApiError::bad_request("unknown_lang", format!("unknown language {l:?}; use zh or en"))),
    }
}

fn required<'a>(v: &'a Option<String>, name: &str) -> Result<&'a str, ApiError> {
    v.as_deref().filter(|s| !s.trim().is_empty()).ok_or_else(|| ApiError::bad_request("missing_parameter", format!("the query needs {name}=")))
}

impl From<ResolveError> for ApiError {
    fn from(e: ResolveError) -> Self {
        match e {
            ResolveError::Unknown(r) => ApiError::not_found("unknown_place", format!("no place, room, department, marker or node {r:?} on the map")),
            ResolveError::UnknownVenue(v) => ApiError::not_found("unknown_venue", format!("no venue {v:?} is served")),
            ResolveError::CrossVenue { from, to } => {
                ApiError::unprocessable("cross_venue", format!("the two places are in different venues ({from} and {to}); a route stays inside one venue"))
            }
        }
    }
}

fn no_route(e: RouteError) -> ApiError {
    match e {
        RouteError::Unreachable { profile: Profile::Accessible } => ApiError::unprocessable("no_route", "no accessible (step-free) route between these places"),
        RouteError::Unreachable { profile } => ApiError::unprocessable("no_route", format!("no {} route between these places", profile.name())),
    }
}

fn place_json(m: &VenueMap, i: usize, lang: Lang) -> serde_json::Value {
    let p = &m.places[i];
    let level = &m.levels[p.level];
    json!({
        "id": p.id, "kind": p.kind, "category": p.category, "name": p.name.get(lang), "names": p.name,
        "room": p.room, "department": p.department,
        "venue": m.id, "building": level.building_id, "level": level.id, "floor": level.short_name.get(lang),
        "lon": p.lon, "lat": p.lat, "node": m.node(p.node).id,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteQuery {
    from: Option<String>,
    to: Option<String>,
    profile: Option<String>,
    lang: Option<String>,
}

/// The route between two places, with geometry per level and turn-by-turn text.
pub async fn route(req: HttpRequest, state: Data) -> Result<HttpResponse, ApiError> {
    let q: RouteQuery = query(&req)?;
    let (from, to) = (required(&q.from, "from")?, required(&q.to, "to")?);
    let (profile, lang) = (profile(q.profile.as_deref())?, lang(q.lang.as_deref())?);
    let atlas = state.maps.current();
    let (f, t) = atlas.resolve_pair(from, to)?;
    let m = &f.venue;
    let r = m.route(&f.endpoint, &t.endpoint, profile).map_err(no_route)?;
    Ok(HttpResponse::Ok().json(crate::map::json::route_json(m, &r, &f.endpoint, &t.endpoint, from, to, lang)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoisQuery {
    near: Option<String>,
    /// Search text: places whose name (zh or en), category, room or department contains it.
    q: Option<String>,
    kind: Option<String>,
    profile: Option<String>,
    lang: Option<String>,
    limit: Option<usize>,
}

/// Amenity categories patients ask for, by the words they use.
fn category(kind: &str) -> &str {
    match kind {
        "toilet" | "toilets" | "wc" | "restroom" => "restroom",
        "water" | "drinking_water" | "drinkingfountain" => "drinkingfountain",
        "lift" | "elevator" => "elevator",
        "info" | "information" => "information",
        k => k,
    }
}

/// The nearest places (of a kind) by walking time, not straight-line distance.
pub async fn pois(req: HttpRequest, state: Data) -> Result<HttpResponse, ApiError> {
    let q: PoisQuery = query(&req)?;
    let near = required(&q.near, "near")?;
    let (profile, lang) = (profile(q.profile.as_deref())?, lang(q.lang.as_deref())?);
    let limit = q.limit.unwrap_or(5).clamp(1, 100);
    let atlas = state.maps.current();
    let r = atlas.resolve(near)?;
    let m = &r.venue;
    let kind = q.kind.as_deref().filter(|k| !k.is_empty()).map(category);
    if let Some(k) = kind {
        if !m.places.iter().any(|p| p.kind != PlaceKind::Marker && p.category == k) {
            let mut known: Vec<&str> = m.places.iter().filter(|p| p.kind != PlaceKind::Marker).map(|p| p.category.as_str()).collect();
            known.sort();
            known.dedup();
            return Err(ApiError::not_found("unknown_kind", format!("no place of kind {k:?} on this map; kinds: {}", known.join(", "))));
        }
    }
    let found = match q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        None => m.nearest(&r.endpoint, kind, profile, limit),
        Some(text) => {
            if text.chars().count() > 64 {
                return Err(ApiError::bad_request("invalid_query", "q: at most 64 characters"));
            }
            let mut all = m.nearest(&r.endpoint, kind, profile, usize::MAX);
            all.retain(|&(i, _, _)| m.places[i].matches(text));
            all.truncate(limit);
            all
        }
    };
    let list: Vec<serde_json::Value> = found
        .into_iter()
        .map(|(i, secs, metres)| {
            let mut v = place_json(m, i, lang);
            v["duration_s"] = json!(secs.round());
            v["distance_m"] = json!((metres * 10.0).round() / 10.0);
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"venue": m.id, "near": near, "kind": kind, "profile": profile.name(), "pois": list})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LocateQuery {
    marker: Option<String>,
    lang: Option<String>,
}

/// "You are here" from a kiosk id or a scanned QR payload.
pub async fn locate(req: HttpRequest, state: Data) -> Result<HttpResponse, ApiError> {
    let q: LocateQuery = query(&req)?;
    let marker = required(&q.marker, "marker")?;
    let lang = lang(q.lang.as_deref())?;
    let atlas = state.maps.current();
    for m in &atlas.venues {
        if let Some(p) = m.marker(marker) {
            let i = m.place_ids[&p.id];
            let level = &m.levels[p.level];
            let mut v = place_json(m, i, lang);
            v["marker"] = json!(p.id);
            v["building_name"] = json!(m.buildings[level.building].name.get(lang));
            v["level_name"] = json!(level.name.get(lang));
            v["ordinal"] = json!(level.ordinal);
            return Ok(HttpResponse::Ok().json(v));
        }
    }
    Err(ApiError::not_found("unknown_marker", format!("no kiosk or QR marker {:?}", VenueMap::marker_from_payload(marker))))
}

fn atlas_json(atlas: &Atlas) -> serde_json::Value {
    json!({"venues": atlas.venues.iter().map(|m| json!({
        "id": m.id, "name": m.name,
        "buildings": m.buildings,
        "levels": m.levels,
        "nodes": m.graph.node_count(), "edges": m.graph.edge_count(), "places": m.places.len(),
        "entrances": m.entrances.iter().map(|&n| m.node(n).id.clone()).collect::<Vec<_>>(),
    })).collect::<Vec<_>>()})
}

pub async fn list_maps(state: Data) -> HttpResponse {
    HttpResponse::Ok().json(atlas_json(&state.maps.current()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SvgQuery {
    from: Option<String>,
    to: Option<String>,
    profile: Option<String>,
}

/// `GET /maps/{venue}/levels/{level}.svg?from=&to=&profile=`
pub async fn level_svg(req: HttpRequest, path: web::Path<(String, String)>, state: Data) -> Result<HttpResponse, ApiError> {
    let (venue, file) = path.into_inner();
    let q: SvgQuery = query(&req)?;
    let level = file.strip_suffix(".svg").ok_or_else(|| ApiError::not_found("no_route", "levels are served as {level}.svg"))?;
    let atlas = state.maps.current();
    let m = atlas.venue(&venue).ok_or_else(|| ApiError::not_found("unknown_venue", format!("no venue {venue:?} is served")))?;
    let li = m.levels.iter().position(|l| l.id == level).ok_or_else(|| ApiError::not_found("unknown_level", format!("no level {level:?} in {venue}")))?;
    let route = match (q.from.as_deref(), q.to.as_deref()) {
        (Some(f), Some(t)) => {
            let (f, t) = atlas.resolve_pair(&format!("{venue}/{f}"), &format!("{venue}/{t}"))?;
            Some(m.route(&f.endpoint, &t.endpoint, profile(q.profile.as_deref())?).map_err(no_route)?)
        }
        (None, None) => None,
        _ => return Err(ApiError::bad_request("missing_parameter", "from= and to= go together")),
    };
    Ok(HttpResponse::Ok().content_type("image/svg+xml; charset=utf-8").body(crate::map::render::level_svg(m, li, route.as_ref())))
}

/// Re-read the map folders; the new maps replace the old only if all are valid.
pub async fn reload(req: HttpRequest, state: Data) -> Result<HttpResponse, ApiError> {
    state.auth.staff(&req, &[Role::Admin])?;
    let store = state.maps.clone();
    let desk = state.positions.clone();
    // The radio maps are rebuilt against the new maps first: maps they no longer fit are refused.
    let result = web::block(move || store.reload_checked(|atlas| desk.fit(atlas).map_err(crate::map::load::MapIssues)))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    match result {
        Ok((atlas, radios)) => {
            state.positions.remap(radios).await;
            tracing::info!(venues = atlas.venues.len(), "maps reloaded");
            Ok(HttpResponse::Ok().json(atlas_json(&atlas)))
        }
        Err(issues) => {
            tracing::warn!(errors = issues.0.len(), "map reload refused; the old maps keep serving");
            Ok(HttpResponse::build(StatusCode::UNPROCESSABLE_ENTITY).json(json!({"error": {
                "code": "map_invalid",
                "message": format!("the new map has {} error(s); the old map keeps serving", issues.0.len()),
                "issues": issues.0,
            }})))
        }
    }
}
