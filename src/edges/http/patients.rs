//! A patient's orders from the HIS and the next stop: `POST/GET /patients/{id}/orders`,
//! `POST /patients/{id}/orders/{order}/{complete|cancel}`, `GET /patients/{id}/next`,
//! `POST /patients/{id}/next/accept`. The work is the [`Guide`]'s; this file parses and maps.

use super::error::ApiError;
use super::{parse_json, read_body, Data};
use crate::actors::guide::{Guide, GuideError};
use crate::domain::ids::PatientId;
use crate::map::model::Lang;
use crate::map::Profile;
use crate::plan::orders::{self, OrderStatus};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

const CLINICAL: &[crate::site::Role] = super::auth::CLINICAL;

impl From<GuideError> for ApiError {
    fn from(e: GuideError) -> Self {
        use GuideError as G;
        let (status, code) = match e {
            G::Floor(f) => return f.into(),
            G::Resolve(r) => return r.into(),
            G::Store(_) | G::Unrecorded => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            G::UnknownPatient(_) => (StatusCode::NOT_FOUND, "unknown_patient"),
            G::UnknownOrder { .. } => (StatusCode::NOT_FOUND, "unknown_order"),
            G::WhereIsThePatient => (StatusCode::BAD_REQUEST, "missing_parameter"),
            // The hospital's config and map disagree: the server's problem, not the caller's.
            G::MapMismatch { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "map_mismatch"),
            G::ContradictoryOrders(_) => (StatusCode::UNPROCESSABLE_ENTITY, "contradictory_orders"),
            G::NoRoute { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "no_route"),
            G::NotPending(_) => (StatusCode::UNPROCESSABLE_ENTITY, "not_pending"),
            G::InvalidName(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            G::ResultsPending { .. } => (StatusCode::CONFLICT, "results_pending"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

fn patient_id(s: &str) -> Result<PatientId, ApiError> {
    PatientId::parse(s).map_err(|e| ApiError::bad_request("invalid_patient", format!("patient id: {e}")))
}

fn guide(state: &Data) -> &Guide {
    &state.guide
}

/// `POST /patients/{id}/orders`: a FHIR R4 Bundle or `{"orders": [...]}`, applied whole.
pub async fn post_orders(state: Data, req: HttpRequest, path: web::Path<String>, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    state.auth.staff(&req, CLINICAL)?;
    let p = patient_id(&path)?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let v: serde_json::Value = parse_json(&body, false)?;
    let parsed = orders::parse(&v, p.as_str(), &state.floor.hospital).map_err(|e| ApiError::unprocessable(e.code, format!("{}: {}", e.field, e.message)))?;
    let list = guide(&state).put_orders(&p, parsed).await?;
    Ok(HttpResponse::Ok().json(json!({"patient": p, "orders": list})))
}

pub async fn get_orders(state: Data, req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    state.auth.staff(&req, super::auth::ALL_STAFF)?;
    let p = patient_id(&path)?;
    let g = guide(&state);
    let tickets = g.known(&p).await?;
    let list = g.orders_of(&p, &tickets).await?;
    Ok(HttpResponse::Ok().json(json!({"patient": p, "orders": list})))
}

/// `POST /patients/{id}/orders/{order}/complete|cancel` (the HIS, or a nurse).
pub async fn order_action(state: Data, req: HttpRequest, path: web::Path<(String, String, String)>) -> Result<HttpResponse, ApiError> {
    state.auth.staff(&req, CLINICAL)?;
    let (p, order, action) = path.into_inner();
    let p = patient_id(&p)?;
    let status = match action.as_str() {
        "complete" => Some(OrderStatus::Done),
        "cancel" => Some(OrderStatus::Cancelled),
        // The results are in: a return visit waiting for them may be taken now.
        "results" => None,
        _ => return Err(ApiError::not_found("no_route", format!("no order action {action:?} (complete, cancel, results)"))),
    };
    Ok(HttpResponse::Ok().json(guide(&state).order_changed(&p, &order, status).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NextQuery {
    /// A patient's access token (instead of a bearer header); checked by the auth layer.
    #[allow(dead_code)]
    token: Option<String>,
    /// Where the patient is: a marker, room, place or node (`/route`'s `from`).
    at: Option<String>,
    profile: Option<String>,
    lang: Option<String>,
}

/// `GET /patients/{id}/next?at=&profile=&lang=`: the next stop, its route, the expected wait and
/// why.
pub async fn next(state: Data, req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let p = patient_id(&path)?;
    // Staff, or the patient with the access token of any of their tickets.
    if state.auth.staff(&req, super::auth::ALL_STAFF).is_err() {
        let tickets = state.floor.patient_tickets(&p).await?;
        state.auth.staff_or_holder(&req, tickets.iter().map(|t| &t.id))?;
    }
    let q: NextQuery = serde_urlencoded::from_str(req.query_string()).map_err(|e| ApiError::bad_request("invalid_query", format!("bad query string: {e}")))?;
    let profile = match q.profile.as_deref() {
        None => Profile::Default,
        Some(s) => Profile::parse(s).ok_or_else(|| ApiError::bad_request("unknown_profile", format!("unknown profile {s:?}; use default, accessible or slow")))?,
    };
    let lang = match q.lang.as_deref() {
        None => Lang::Zh,
        Some(s) => Lang::parse(s).ok_or_else(|| ApiError::bad_request("unknown_lang", format!("unknown language {s:?}; use zh or en")))?,
    };
    Ok(HttpResponse::Ok().json(guide(&state).next_stop(&p, q.at.as_deref(), profile, lang).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptRequest {
    /// The service accepted (the `next.service` just offered).
    service: String,
}

/// `POST /patients/{id}/next/accept {"service"}`: take the ticket for that service's queue (or
/// return the one the patient already holds there).
pub async fn accept(state: Data, req: HttpRequest, path: web::Path<String>, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    state.auth.staff(&req, super::auth::ALL_STAFF)?;
    let p = patient_id(&path)?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let r: AcceptRequest = parse_json(&body, false)?;
    let taken = guide(&state).accept(&p, &r.service).await?;
    let Some((_, first, created)) = taken.first().cloned() else {
        return Ok(HttpResponse::Ok().json(json!({"patient": p, "service": r.service, "ticket": null, "message": "this desk takes no tickets: go straight there"})));
    };
    let tickets: Vec<_> = taken.iter().map(|(svc, t, _)| json!({"service": svc, "ticket": t, "access_token": state.auth.patient_token(&t.id)})).collect();
    let body = json!({"patient": p, "service": r.service, "ticket": first, "access_token": state.auth.patient_token(&first.id), "tickets": tickets});
    Ok(if created { HttpResponse::Created().json(body) } else { HttpResponse::Ok().json(body) })
}
