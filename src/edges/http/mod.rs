//! HTTP API (`/api/v1`), health and metrics. Handlers parse, call the floor, map the error.

mod auth;
pub mod error;
pub mod maps;
pub mod patients;
pub mod positions;
pub mod soap;

pub use auth::Auth;
use auth::{ALL_STAFF, CLINICAL};
use error::ApiError;

use crate::actors::{Floor, Outcome};
use crate::domain::config::QueuePolicy;
use crate::domain::command::{Command, Idempotency, IssueTicket};
use crate::domain::event::Slot;
use crate::domain::ids::{DisplayName, DoctorId, PatientId, PriorityClass, QueueId, RoomId, TicketId};
use crate::domain::view::TicketView;
use crate::storage::JournalWriter;
use crate::telemetry::Metrics;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, FixedOffset};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The OpenAPI 3.1 document served at `/api/v1/openapi.json`. Kept beside the routes it describes.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Everything a handler needs. Cloned into each HTTP worker.
pub struct AppState {
    pub floor: Floor,
    /// Displays and their last MQTT status.
    pub displays: crate::edges::mqtt::DisplayRegistry,
    pub delivery: crate::actors::delivery::DeliveryDesk,
    pub auth: Auth,
    pub metrics: Arc<Metrics>,
    pub journal: JournalWriter,
    /// The day's numbers (today's kept live from the committed stream).
    pub reports: crate::actors::reports::ReportDesk,
    pub max_body_bytes: usize,
    /// The indoor maps (immutable snapshots, swapped whole on reload).
    pub maps: Arc<crate::map::store::MapStore>,
    /// Patients' orders, the live queues and the map, for the next stop.
    pub guide: crate::actors::guide::Guide,
    /// Each display's and keypad's login and topics on the embedded broker.
    pub device_credentials: Arc<Vec<crate::edges::broker::DeviceCredential>>,
    /// Live BLE positions and tag bindings.
    pub positions: crate::actors::positions::PositionDesk,
    /// The HIS adapters' desk: facts applied, each adapter's health.
    pub his: crate::actors::his::HisDesk,
    /// The HIS database pollers, by adapter name (a poll run now).
    pub his_polls: Arc<std::collections::BTreeMap<String, crate::edges::dbpoll::PollHandle>>,
}

type Data = web::Data<AppState>;

/// Mount every route on an actix `App`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/healthz").route(web::get().to(healthz)))
        .service(resource("/metrics").route(web::get().to(metrics)))
        .service(
            web::scope("/api/v1")
                .service(resource("/openapi.json").route(web::get().to(openapi)))
                .service(resource("/displays").route(web::get().to(list_displays)))
                .service(resource("/displays/alarms").route(web::get().to(display_alarms)))
                .service(resource("/devices/credentials").route(web::get().to(device_credentials)))
                .service(resource("/queues").route(web::get().to(list_queues)))
                .service(resource("/reports/day").route(web::get().to(day_report)))
                .service(resource("/queues/{queue}").route(web::get().to(get_queue)))
                .service(resource("/queues/{queue}/policy").route(web::get().to(get_policy)).route(web::put().to(put_policy)))
                .service(resource("/queues/{queue}/tickets").route(web::post().to(issue_ticket)))
                .service(resource("/queues/{queue}/call-next").route(web::post().to(call_next)))
                .service(resource("/tickets/{ticket}").route(web::get().to(get_ticket)))
                .service(resource("/tickets/{ticket}/{action}").route(web::post().to(ticket_action)))
                .service(resource("/rooms/{room}/{action}").route(web::post().to(room_action)))
                .service(resource("/patients/{patient}/orders").route(web::post().to(patients::post_orders)).route(web::get().to(patients::get_orders)))
                .service(resource("/patients/{patient}/orders/{order}/{action}").route(web::post().to(patients::order_action)))
                .service(resource("/patients/{patient}/next").route(web::get().to(patients::next)))
                .service(resource("/patients/{patient}/next/accept").route(web::post().to(patients::accept)))
                .service(resource("/patients/{patient}/tags/{tag}").route(web::put().to(positions::bind)).route(web::delete().to(positions::unbind)))
                .service(resource("/patients/{patient}/visit/end").route(web::post().to(positions::end_visit)))
                .service(resource("/patients/{patient}/location").route(web::get().to(positions::location)))
                .service(resource("/positioning").route(web::get().to(positions::status)))
                .service(resource("/his").route(web::get().to(his_status)))
                .service(resource("/his/{adapter}/poll").route(web::post().to(his_poll)))
                .service(resource("/route").route(web::get().to(maps::route)))
                .service(resource("/pois").route(web::get().to(maps::pois)))
                .service(resource("/locate").route(web::get().to(maps::locate)))
                .service(resource("/qr").route(web::get().to(crate::edges::pages::qr)))
                .service(resource("/maps").route(web::get().to(maps::list_maps)))
                .service(resource("/maps/reload").route(web::post().to(maps::reload)))
                .service(resource("/maps/{venue}/levels/{file}").route(web::get().to(maps::level_svg))),
        );
}

/// A resource whose wrong methods get a JSON 405 instead of an empty body.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|| async {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this method is not allowed here")
    }))
}

/// JSON 404 for paths no route matches.
pub async fn no_route(req: HttpRequest) -> ApiError {
    ApiError::not_found("no_route", format!("no route for {} {}", req.method(), req.path()))
}

/// Count every request by route pattern and status.
pub fn count_requests<S, B>(
    req: actix_web::dev::ServiceRequest,
    srv: &S,
) -> impl std::future::Future<Output = Result<ServiceResponse<B>, actix_web::Error>>
where
    S: Service<actix_web::dev::ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let metrics = req.app_data::<Data>().map(|d| d.metrics.clone());
    let fut = srv.call(req);
    async move {
        let res = fut.await?;
        if let Some(m) = metrics {
            m.http_requests.with_label_values(&[&route, res.status().as_str()]).inc();
        }
        Ok(res)
    }
}

async fn healthz(state: Data) -> HttpResponse {
    if state.journal.healthy() {
        let mut body = serde_json::json!({"status": "ok"});
        if crate::clock::is_pinned() {
            // A rehearsal or a test: say so, with the time the server believes it is.
            body["clock"] = serde_json::json!({"pinned": true, "now": crate::clock::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)});
        }
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "failing", "journal": "failed"}))
    }
}

async fn metrics(state: Data) -> HttpResponse {
    let hospital = &state.floor.hospital;
    let local = crate::clock::local(&hospital.tz);
    let secs = chrono::Timelike::num_seconds_from_midnight(&local);
    let open = hospital.services.iter().filter(|s| s.open.as_deref().and_then(crate::domain::config::parse_hours).is_none_or(|(a, b)| (a..b).contains(&secs))).count();
    state.metrics.services_open.set(open as i64);
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render())
}

/// `GET /his`: each HIS adapter's last success, last error and counts.
async fn his_status(state: Data, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.auth.staff(&req, ALL_STAFF)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"adapters": state.his.status()})))
}

/// `POST /his/{adapter}/poll`: a database poller's pass now (after the one in progress), with
/// `{"reconcile": true}` the whole snapshot, with `"force": true` past the mass-withdrawal check.
async fn his_poll(state: Data, req: HttpRequest, path: web::Path<String>, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    state.auth.staff(&req, &[crate::site::Role::Admin])?;
    let poller = state.his_polls.get(path.as_str()).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "unknown_adapter", format!("no database poller named {:?} (see GET /api/v1/his)", path.as_str())))?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let ask: crate::edges::dbpoll::PollRequest = if body.iter().all(u8::is_ascii_whitespace) {
        Default::default()
    } else {
        let mut de = serde_json::Deserializer::from_slice(&body);
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let field = e.path().to_string();
            match e.inner().classify() {
                serde_json::error::Category::Data => ApiError::unprocessable("invalid_field", format!("{field}: {}", e.inner())),
                _ => ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {}", e.inner())),
            }
        })?
    };
    match poller.poll_now(ask).await {
        Ok(report) => Ok(HttpResponse::Ok().json(report)),
        Err(e) => Err(ApiError::new(StatusCode::BAD_GATEWAY, "his_unavailable", e)),
    }
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(OPENAPI)
}

// ---- parsing helpers ------------------------------------------------------------------------

/// Read the body up to the limit: 413 beyond it, before reading further.
async fn read_body(req: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, ApiError> {
    let too_large = || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("the body is larger than {limit} bytes"));
    if let Some(len) = req.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok()) {
        if len > limit {
            return Err(too_large());
        }
    }
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request("bad_body", format!("reading the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Parse a JSON body into a request type. An empty body is `{}` when the body is optional.
fn parse_json<T: DeserializeOwned>(body: &[u8], optional: bool) -> Result<T, ApiError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        if optional {
            b"{}"
        } else {
            return Err(ApiError::bad_request("missing_body", "a JSON body is required"));
        }
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::unprocessable("invalid_field", e.to_string()),
        _ => ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}")),
    })
}

/// `Idempotency-Key` with a fingerprint of the request it came with.
fn idempotency(req: &HttpRequest, body: &[u8]) -> Result<Option<Idempotency>, ApiError> {
    let Some(v) = req.headers().get("idempotency-key") else { return Ok(None) };
    let key = v.to_str().ok().filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()));
    let Some(key) = key else {
        return Err(ApiError::bad_request("invalid_idempotency_key", "Idempotency-Key must be 1-255 visible ASCII characters"));
    };
    let mut h = Sha256::new();
    h.update(req.method().as_str());
    h.update(b" ");
    h.update(req.path());
    h.update(b"\n");
    h.update(body);
    Ok(Some(Idempotency { key: key.to_owned(), fingerprint: hex::encode(h.finalize()) }))
}

fn queue_id(s: &str) -> Result<QueueId, ApiError> {
    QueueId::parse(s).map_err(|_| ApiError::not_found("unknown_queue", format!("unknown queue {s:?}")))
}
fn ticket_id(s: &str) -> Result<TicketId, ApiError> {
    TicketId::parse(s).map_err(|_| ApiError::not_found("unknown_ticket", format!("unknown ticket {s:?}")))
}
fn room_id(s: &str) -> Result<RoomId, ApiError> {
    RoomId::parse(s).map_err(|_| ApiError::not_found("unknown_room", format!("unknown room {s:?}")))
}

fn replayed_header(res: &mut actix_web::HttpResponseBuilder, outcome: &Outcome) {
    if outcome.replayed {
        res.insert_header(("Idempotent-Replayed", "true"));
    }
}

// ---- displays -------------------------------------------------------------------------------

async fn list_displays(state: Data, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.auth.staff(&req, ALL_STAFF)?;
    let displays = state.displays.list();
    let offline = displays.iter().filter(|d| d.online == Some(false)).count();
    let delivery = state.delivery.view();
    let displays: Vec<serde_json::Value> = displays
        .into_iter()
        .map(|d| {
            let mut v = serde_json::to_value(&d).unwrap_or_default();
            v["delivery"] = serde_json::to_value(delivery.displays.get(&d.id)).unwrap_or_default();
            let alarms: Vec<&str> = delivery.alarms.iter().filter(|a| a.display == d.id).map(|a| a.kind.as_str()).collect();
            v["alarms"] = serde_json::json!(alarms);
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "displays": displays, "offline": offline, "alarms": delivery.alarms.len() })))
}

/// Display alarms in force: a call not shown or not spoken in time, a display offline.
async fn display_alarms(state: Data, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.auth.staff(&req, ALL_STAFF)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "alarms": state.delivery.view().alarms })))
}

/// Provisioning: every device's MQTT login and the topics the embedded broker lets it use.
async fn device_credentials(state: Data, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.auth.staff(&req, &[crate::site::Role::Admin])?;
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(serde_json::json!({ "devices": *state.device_credentials })))
}

// ---- reports --------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DayQuery {
    /// YYYY-MM-DD, the hospital's local date; today when absent.
    date: Option<chrono::NaiveDate>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

/// The day's numbers per queue, room and doctor (the [`ReportDesk`](crate::actors::reports::ReportDesk)'s).
async fn day_report(state: Data, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.auth.staff(&req, ALL_STAFF)?;
    let q: DayQuery = serde_urlencoded::from_str(req.query_string()).map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?;
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => return Err(ApiError::bad_request("invalid_query", format!("format must be json or csv, not {other:?}"))),
    };
    let hospital = state.floor.hospital.clone();
    let day = q.date.unwrap_or_else(|| crate::clock::today(&hospital.tz));
    let report = state
        .reports
        .day(day)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", format!("reading the journal: {e}")))?;
    if csv {
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header(("Content-Disposition", format!("attachment; filename=\"clinicflow-{day}.csv\"")))
            .body(crate::domain::report::csv(&report)));
    }
    Ok(HttpResponse::Ok().json(report))
}

// ---- queues ---------------------------------------------------------------------------------

async fn list_queues(state: Data, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.auth.staff(&req, ALL_STAFF)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "queues": state.floor.snapshots().await? })))
}

async fn get_queue(state: Data, req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    state.auth.staff(&req, ALL_STAFF)?;
    let q = queue_id(&path)?;
    let snap = state.floor.queue(&q)?.snapshot().await.map_err(crate::actors::FloorError::from)?;
    Ok(HttpResponse::Ok().json(snap))
}

async fn policy_response(state: &Data, q: &QueueId) -> Result<HttpResponse, ApiError> {
    let (policy, changed) = state.floor.queue(q)?.policy().await.map_err(crate::actors::FloorError::from)?;
    let source = if changed { "changed" } else { "config" };
    Ok(HttpResponse::Ok().json(serde_json::json!({"queue": q, "source": source, "policy": policy})))
}

/// The calling policy in force (`source`: `config`, or `changed` at run time).
async fn get_policy(state: Data, req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    state.auth.staff(&req, ALL_STAFF)?;
    let q = queue_id(&path)?;
    policy_response(&state, &q).await
}

/// Replace the calling policy. The whole policy is sent (absent fields take their defaults);
/// one that contradicts itself is refused naming the field, and the running policy stays. The
/// change is journaled, so it survives a restart.
async fn put_policy(state: Data, req: HttpRequest, path: web::Path<String>, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    state.auth.staff(&req, &[crate::site::Role::Admin])?;
    let q = queue_id(&path)?;
    state.floor.queue(&q)?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let idem = idempotency(&req, &body)?;
    let mut de = serde_json::Deserializer::from_slice(&body);
    let policy: QueuePolicy = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        match e.inner().classify() {
            serde_json::error::Category::Data => ApiError::unprocessable("invalid_policy", format!("{field}: {}", e.inner())),
            _ => ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {}", e.inner())),
        }
    })?;
    state.floor.execute(&q, Command::SetPolicy { policy }, idem).await?;
    policy_response(&state, &q).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotRequest {
    /// RFC 3339, e.g. `2026-11-24T09:30:00+08:00`.
    start: DateTime<FixedOffset>,
    end: DateTime<FixedOffset>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueRequest {
    patient_id: PatientId,
    name: DisplayName,
    #[serde(default)]
    priority: Option<PriorityClass>,
    #[serde(default)]
    slot: Option<SlotRequest>,
    #[serde(default)]
    doctor: Option<DoctorId>,
    /// Defaults to true for walk-ins and false for appointments (they check in on arrival).
    #[serde(default)]
    check_in: Option<bool>,
}

#[derive(Serialize)]
struct IssueResponse {
    #[serde(flatten)]
    ticket: TicketView,
    /// Opens this ticket only: `GET /api/v1/tickets/{id}?token=…` and the patient page.
    access_token: String,
    patient_url: String,
}

async fn issue_ticket(state: Data, req: HttpRequest, path: web::Path<String>, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    state.auth.staff(&req, ALL_STAFF)?;
    let q = queue_id(&path)?;
    state.floor.queue(&q)?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let r: IssueRequest = parse_json(&body, false)?;
    let idem = idempotency(&req, &body)?;
    let slot = r.slot.map(|s| Slot { start: s.start.timestamp_millis(), end: s.end.timestamp_millis() });
    let cmd = Command::Issue(IssueTicket {
        ticket: TicketId::random(),
        patient: r.patient_id,
        name: r.name,
        class: r.priority.unwrap_or_else(|| PriorityClass::parse("normal").expect("valid")),
        check_in: r.check_in.unwrap_or(slot.is_none()),
        visit: None,
        his: None,
        at: None,
        slot,
        doctor: r.doctor,
    });
    let outcome = state.floor.execute(&q, cmd, idem).await?;
    let Some(ticket) = outcome.ticket.clone() else {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the ticket was not recorded"));
    };
    let access_token = state.auth.patient_token(&ticket.id);
    let patient_url = format!("/t/{}?token={}", ticket.id, access_token);
    let mut res = HttpResponse::Created();
    replayed_header(&mut res, &outcome);
    res.insert_header(("Location", format!("/api/v1/tickets/{}", ticket.id)));
    Ok(res.json(IssueResponse { ticket, access_token, patient_url }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallNextRequest {
    room: RoomId,
    /// Who pressed the button (logs and the day's numbers).
    #[serde(default)]
    caller: Option<String>,
}

async fn call_next(state: Data, req: HttpRequest, path: web::Path<String>, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let (_, who) = state.auth.staff(&req, ALL_STAFF)?;
    let q = queue_id(&path)?;
    state.floor.queue(&q)?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let r: CallNextRequest = parse_json(&body, false)?;
    let idem = idempotency(&req, &body)?;
    let caller = r.caller.filter(|c| !c.trim().is_empty()).unwrap_or(who);
    if caller.chars().count() > 64 {
        return Err(ApiError::unprocessable("invalid_field", "caller: longer than 64 characters"));
    }
    let outcome = state.floor.execute(&q, Command::CallNext { room: r.room, caller }, idem).await?;
    match outcome.ticket.clone() {
        Some(t) => {
            let mut res = HttpResponse::Ok();
            replayed_header(&mut res, &outcome);
            Ok(res.json(t))
        }
        None => Ok(HttpResponse::NoContent().finish()),
    }
}

// ---- tickets --------------------------------------------------------------------------------

async fn get_ticket(state: Data, req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let t = ticket_id(&path)?;
    state.auth.ticket_access(&req, &t)?;
    Ok(HttpResponse::Ok().json(state.floor.ticket(&t).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferRequest {
    to: QueueId,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReturnRequest {
    /// The doctor to return to; defaults to the one who saw the patient.
    #[serde(default)]
    doctor: Option<DoctorId>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

async fn ticket_action(state: Data, req: HttpRequest, path: web::Path<(String, String)>, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let (ticket, action) = path.into_inner();
    let t = ticket_id(&ticket)?;
    // Check who asks before reading anything else.
    match action.as_str() {
        "check-in" => {
            state.auth.ticket_access(&req, &t)?;
        }
        "recall" | "skip" | "start" | "complete" => {
            state.auth.staff(&req, ALL_STAFF)?;
        }
        "cancel" | "transfer" | "return" => {
            state.auth.staff(&req, CLINICAL)?;
        }
        _ => return Err(no_route(req).await),
    }
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let idem = idempotency(&req, &body)?;
    let outcome = match action.as_str() {
        "transfer" => {
            let r: TransferRequest = parse_json(&body, false)?;
            state.floor.transfer(&t, &r.to, idem).await?
        }
        "return" => {
            let r: ReturnRequest = parse_json(&body, true)?;
            state.floor.on_ticket(&t, Command::Return { ticket: t.clone(), doctor: r.doctor }, idem).await?
        }
        other => {
            let _: Empty = parse_json(&body, true)?;
            let cmd = match other {
                "check-in" => Command::CheckIn { ticket: t.clone(), at: None },
                "recall" => Command::Recall { ticket: t.clone() },
                "skip" => Command::Skip { ticket: t.clone() },
                "start" => Command::Start { ticket: t.clone() },
                "complete" => Command::Complete { ticket: t.clone() },
                _ => Command::Cancel { ticket: t.clone() },
            };
            state.floor.on_ticket(&t, cmd, idem).await?
        }
    };
    let view = match outcome.ticket.clone() {
        Some(v) => v,
        None => state.floor.ticket(&t).await?,
    };
    let mut res = HttpResponse::Ok();
    replayed_header(&mut res, &outcome);
    Ok(res.json(view))
}

// ---- rooms ----------------------------------------------------------------------------------

async fn room_action(state: Data, req: HttpRequest, path: web::Path<(String, String)>, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let (room, action) = path.into_inner();
    let paused = match action.as_str() {
        "pause" => true,
        "resume" => false,
        _ => return Err(no_route(req).await),
    };
    state.auth.staff(&req, ALL_STAFF)?;
    let room = room_id(&room)?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let _: Empty = parse_json(&body, true)?;
    let queues = state.floor.set_room_paused(&room, paused).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"room": room, "paused": paused, "queues": queues})))
}
