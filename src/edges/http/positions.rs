//! BLE positioning over HTTP: a wristband bound to a patient's visit and unbound
//! (`PUT|DELETE /patients/{id}/tags/{tag}`), the visit ended (`POST /patients/{id}/visit/end`),
//! where the patient is (`GET /patients/{id}/location`), and what is loaded
//! (`GET /positioning`). The work is the [`PositionDesk`](crate::actors::positions::PositionDesk)'s.

use super::error::ApiError;
use super::Data;
use crate::actors::positions::TagError;
use crate::domain::ids::PatientId;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

impl From<TagError> for ApiError {
    fn from(e: TagError) -> Self {
        let m = e.to_string();
        match e {
            TagError::Off => ApiError::new(StatusCode::CONFLICT, "positioning_off", m),
            TagError::Bind(_) | TagError::Reserved => ApiError::bad_request("invalid_tag", format!("tag id: 1 to 64 printable characters without spaces, not starting with phone: ({m})")),
            TagError::InUse { .. } => ApiError::new(StatusCode::CONFLICT, "tag_in_use", m),
            TagError::Store(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", m),
        }
    }
}

fn patient_id(s: &str) -> Result<PatientId, ApiError> {
    PatientId::parse(s).map_err(|e| ApiError::bad_request("invalid_patient", format!("patient id: {e}")))
}

/// `PUT /patients/{id}/tags/{tag}`: bind a wristband to the patient's visit (today).
pub async fn bind(state: Data, req: HttpRequest, path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    state.auth.staff(&req, super::auth::CLINICAL)?;
    let (p, tag) = path.into_inner();
    let p = patient_id(&p)?;
    if !state.positions.enabled() {
        return Err(TagError::Off.into());
    }
    state.guide.known(&p).await?;
    let new = state.positions.bind(&tag, p.as_str()).await?;
    let body = json!({"patient": p, "tag": tag, "bound": true});
    Ok(if new { HttpResponse::Created().json(body) } else { HttpResponse::Ok().json(body) })
}

/// `DELETE /patients/{id}/tags/{tag}`: the wristband is handed back.
pub async fn unbind(state: Data, req: HttpRequest, path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    state.auth.staff(&req, super::auth::CLINICAL)?;
    let (p, tag) = path.into_inner();
    let p = patient_id(&p)?;
    if !state.positions.unbind(&tag, p.as_str()).await? {
        return Err(ApiError::not_found("tag_not_bound", format!("tag {tag:?} is not bound to patient {p}")));
    }
    Ok(HttpResponse::Ok().json(json!({"patient": p, "tag": tag, "bound": false})))
}

/// `POST /patients/{id}/visit/end`: the visit is over now: tags free, positions forgotten.
pub async fn end_visit(state: Data, req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    state.auth.staff(&req, super::auth::CLINICAL)?;
    let p = patient_id(&path)?;
    let freed = state.positions.end_visit(p.as_str()).await?;
    Ok(HttpResponse::Ok().json(json!({"patient": p, "tags_freed": freed})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LocationQuery {
    #[allow(dead_code)]
    token: Option<String>,
    /// Include the trail (positions within the retention window).
    trail: Option<bool>,
}

/// `GET /patients/{id}/location?trail=true`: staff, or the patient with a ticket's token.
pub async fn location(state: Data, req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let p = patient_id(&path)?;
    if state.auth.staff(&req, super::auth::ALL_STAFF).is_err() {
        let tickets = state.floor.patient_tickets(&p).await?;
        state.auth.staff_or_holder(&req, tickets.iter().map(|t| &t.id))?;
    }
    let q: LocationQuery = serde_urlencoded::from_str(req.query_string()).map_err(|e| ApiError::bad_request("invalid_query", format!("bad query string: {e}")))?;
    let (latest, trail) = state.positions.location(p.as_str()).await;
    let tags = state.positions.tags(p.as_str()).await?;
    let mut body = json!({"patient": p, "positioning": state.positions.enabled(), "tags": tags, "location": latest});
    if q.trail == Some(true) {
        body["trail"] = json!(trail);
    }
    Ok(HttpResponse::Ok().json(body))
}

/// `GET /positioning`: the radio maps loaded and their gateways.
pub async fn status(state: Data, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.auth.staff(&req, super::auth::ALL_STAFF)?;
    Ok(HttpResponse::Ok().json(json!({"enabled": state.positions.enabled(), "venues": state.positions.status()})))
}
