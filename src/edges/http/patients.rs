//! A patient's orders from the HIS and the next stop: `POST/GET /patients/{id}/orders`,
//! `POST /patients/{id}/orders/{order}/{complete|cancel}`, `GET /patients/{id}/next`,
//! `POST /patients/{id}/next/accept`.

use super::error::ApiError;
use super::maps::route_json;
use super::{parse_json, read_body, Data};
use crate::domain::command::{Command, IssueTicket};
use crate::domain::config::{parse_hours, ServiceConfig, ServiceKind};
use crate::domain::ids::{PatientId, PriorityClass, TicketId};
use crate::domain::queue::Status;
use crate::domain::view::TicketView;
use crate::map::model::{Endpoint, Labels, Lang, VenueMap};
use crate::map::Profile;
use crate::plan::orders::{self, OrderStatus};
use crate::plan::{plan, Point, Problem, Rules, Stop, StopKind};
use crate::storage::orders::StoredOrder;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Timelike;
use serde::Deserialize;
use serde_json::json;

const CLINICAL: &[crate::domain::config::Role] = super::auth::CLINICAL;

fn patient_id(s: &str) -> Result<PatientId, ApiError> {
    PatientId::parse(s).map_err(|e| ApiError::bad_request("invalid_patient", format!("patient id: {e}")))
}

fn store_error(e: rusqlite::Error) -> ApiError {
    tracing::error!(error = %e, "order store");
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", format!("cannot record the orders now: {e}"))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> rusqlite::Result<T> + Send + 'static) -> Result<T, ApiError> {
    web::block(f).await.map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string()))?.map_err(store_error)
}

/// Known patients: clinicflow has issued them a ticket today, or holds orders for them.
async fn known(state: &Data, p: &PatientId) -> Result<Vec<TicketView>, ApiError> {
    let tickets = state.floor.patient_tickets(p).await?;
    if tickets.is_empty() {
        let (orders, id) = (state.orders.clone(), p.as_str().to_owned());
        if !blocking(move || orders.has_patient(&id)).await? {
            return Err(ApiError::not_found("unknown_patient", format!("no ticket or order for patient {p} today")));
        }
    }
    Ok(tickets)
}

/// The patient's orders, with those their queue has since completed marked done (and stored
/// so): an order is done when a ticket of its service's queue was completed after the order came.
/// A breakfast-dependent order shares its queue with a fasting one only on a second visit.
async fn orders_of(state: &Data, p: &PatientId, tickets: &[TicketView]) -> Result<Vec<StoredOrder>, ApiError> {
    let (store, id) = (state.orders.clone(), p.as_str().to_owned());
    let list = blocking(move || store.list(&id)).await?;
    let services = &state.floor.hospital.services;
    let svc = |o: &StoredOrder| services.iter().find(|s| s.id == o.service);
    let mut done = Vec::new();
    for o in list.iter().filter(|o| o.status == OrderStatus::Active) {
        let Some(queue) = svc(o).and_then(|s| s.queue.clone()) else { continue };
        let visits = tickets.iter().filter(|k| k.queue == queue && k.status == Status::Completed && k.finished_at.is_some_and(|f| f > o.updated_ms)).count();
        let fasting_here = list.iter().any(|x| x.id != o.id && svc(x).is_some_and(|s| s.fasting && s.queue.as_ref() == Some(&queue)));
        let needed = if svc(o).is_some_and(|s| s.after_meal) && fasting_here { 2 } else { 1 };
        if visits >= needed {
            done.push(o.id.clone());
        }
    }
    if done.is_empty() {
        return Ok(list);
    }
    let (store, id) = (state.orders.clone(), p.as_str().to_owned());
    blocking(move || {
        let now = now_ms();
        for o in &done {
            store.set_status(&id, o, OrderStatus::Done, now)?;
        }
        store.list(&id)
    })
    .await
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `POST /patients/{id}/orders`: a FHIR R4 Bundle or `{"orders": [...]}`, applied whole.
pub async fn post_orders(state: Data, req: HttpRequest, path: web::Path<String>, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    state.auth.staff(&req, CLINICAL)?;
    let p = patient_id(&path)?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let v: serde_json::Value = parse_json(&body, false)?;
    let parsed = orders::parse(&v, p.as_str(), &state.floor.hospital).map_err(|e| ApiError::unprocessable(e.code, format!("{}: {}", e.field, e.message)))?;
    known(&state, &p).await?;
    let (store, id) = (state.orders.clone(), p.as_str().to_owned());
    let list = blocking(move || {
        store.put(&id, &parsed, now_ms())?;
        store.list(&id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({"patient": p, "orders": list})))
}

pub async fn get_orders(state: Data, req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    state.auth.staff(&req, super::auth::ALL_STAFF)?;
    let p = patient_id(&path)?;
    let tickets = known(&state, &p).await?;
    let list = orders_of(&state, &p, &tickets).await?;
    Ok(HttpResponse::Ok().json(json!({"patient": p, "orders": list})))
}

/// `POST /patients/{id}/orders/{order}/complete|cancel` (the HIS, or a nurse).
pub async fn order_action(state: Data, req: HttpRequest, path: web::Path<(String, String, String)>) -> Result<HttpResponse, ApiError> {
    state.auth.staff(&req, CLINICAL)?;
    let (p, order, action) = path.into_inner();
    let p = patient_id(&p)?;
    let status = match action.as_str() {
        "complete" => OrderStatus::Done,
        "cancel" => OrderStatus::Cancelled,
        _ => return Err(ApiError::not_found("no_route", format!("no order action {action:?} (complete, cancel)"))),
    };
    let (store, id, o) = (state.orders.clone(), p.as_str().to_owned(), order.clone());
    match blocking(move || store.set_status(&id, &o, status, now_ms())).await? {
        Some(o) => Ok(HttpResponse::Ok().json(o)),
        None => Err(ApiError::not_found("unknown_order", format!("patient {p} has no order {order:?}"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NextQuery {
    /// Where the patient is: a marker, room, place or node (`/route`'s `from`).
    at: Option<String>,
    profile: Option<String>,
    lang: Option<String>,
}

/// One stop of the patient's day: a configured service with the active orders it serves.
struct Pending<'a> {
    service: &'a ServiceConfig,
    orders: Vec<String>,
}

fn pending<'a>(state: &'a Data, list: &[StoredOrder]) -> Vec<Pending<'a>> {
    let mut out: Vec<Pending> = Vec::new();
    for o in list.iter().filter(|o| o.status == OrderStatus::Active) {
        let Some(svc) = state.floor.hospital.services.iter().find(|s| s.id == o.service) else { continue };
        match out.iter_mut().find(|p| p.service.id == svc.id) {
            Some(p) => p.orders.push(o.id.clone()),
            None => out.push(Pending { service: svc, orders: vec![o.id.clone()] }),
        }
    }
    out
}

fn rules(state: &Data) -> Rules {
    let h = &state.floor.hospital.planning;
    Rules { payment_first: h.payment_first, fasting_first: h.fasting_first, return_last: h.return_last }
}

fn stops(todo: &[Pending]) -> Vec<Stop> {
    todo.iter()
        .enumerate()
        .map(|(i, t)| Stop {
            id: t.service.id.clone(),
            kind: match t.service.kind {
                ServiceKind::Exam => StopKind::Exam,
                ServiceKind::Payment => StopKind::Payment,
                ServiceKind::Return => StopKind::Return,
            },
            point: i,
            fasting: t.service.fasting,
            after_meal: t.service.after_meal,
            needs_payment: t.service.needs_payment,
            result_delay_s: t.service.result_minutes * 60.0,
        })
        .collect()
}

/// Stops the rules allow now (nothing pending must come before them): the patient may hold a
/// ticket in each of their queues at once.
fn eligible(stops: &[Stop], rules: Rules) -> Vec<bool> {
    (0..stops.len()).map(|j| (0..stops.len()).all(|i| i == j || !rules.must_precede(&stops[i], &stops[j]))).collect()
}

fn service_place(state: &Data, svc: &ServiceConfig) -> String {
    match (&svc.place, &svc.queue) {
        (Some(p), _) => p.clone(),
        (None, Some(q)) => state.floor.hospital.queues.get(q).map(|spec| format!("department:{}", spec.department)).unwrap_or_default(),
        (None, None) => String::new(),
    }
}

/// `GET /patients/{id}/next?at=&profile=&lang=`: the next stop, its route, the expected wait and
/// why.
pub async fn next(state: Data, req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    state.auth.staff(&req, super::auth::ALL_STAFF)?;
    let p = patient_id(&path)?;
    let q: NextQuery = serde_urlencoded::from_str(req.query_string()).map_err(|e| ApiError::bad_request("invalid_query", format!("bad query string: {e}")))?;
    let profile = match q.profile.as_deref() {
        None => Profile::Default,
        Some(s) => Profile::parse(s).ok_or_else(|| ApiError::bad_request("unknown_profile", format!("unknown profile {s:?}; use default, accessible or slow")))?,
    };
    let lang = match q.lang.as_deref() {
        None => Lang::Zh,
        Some(s) => Lang::parse(s).ok_or_else(|| ApiError::bad_request("unknown_lang", format!("unknown language {s:?}; use zh or en")))?,
    };
    let tickets = known(&state, &p).await?;
    let list = orders_of(&state, &p, &tickets).await?;
    let todo = pending(&state, &list);
    if todo.is_empty() {
        return Ok(HttpResponse::Ok().json(json!({"patient": p, "done": true, "next": null, "orders": list})));
    }
    // Where the patient is: given, or the room of their latest ticket.
    let atlas = state.maps.current();
    let here_ref = match q.at.as_deref().filter(|s| !s.is_empty()) {
        Some(a) => a.to_owned(),
        None => tickets.iter().max_by_key(|t| t.issued_at).and_then(|t| t.room.as_ref().map(|r| format!("room:{r}")).or_else(|| Some(format!("department:{}", state.floor.hospital.queues.get(&t.queue)?.department)))).ok_or_else(|| {
            ApiError::bad_request("missing_parameter", "where is the patient? give at= (a kiosk or QR marker, a room)")
        })?,
    };
    let here = atlas.resolve(&here_ref)?;
    let map: &VenueMap = &here.venue;
    let places: Vec<Endpoint> = todo
        .iter()
        .map(|t| {
            let r = service_place(&state, t.service);
            map.resolve(&r).ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "map_mismatch", format!("service {} is at {r:?}, which is not on the map", t.service.id)))
        })
        .collect::<Result<_, _>>()?;
    let walk_s = |a: &Endpoint, b: &Endpoint| map.route(a, b, profile).map(|r| r.seconds).unwrap_or(f64::INFINITY);
    let walk_from_here: Vec<f64> = places.iter().map(|b| walk_s(&here.endpoint, b)).collect();
    let walk: Vec<Vec<f64>> = places.iter().map(|a| places.iter().map(|b| walk_s(a, b)).collect()).collect();

    // Live queues: the wait a new ticket would have, or the patient's own ticket's ETA.
    let hospital = &state.floor.hospital;
    let local = chrono::Utc::now().with_timezone(&hospital.tz);
    let now_s = local.num_seconds_from_midnight() as f64;
    let mut points = Vec::new();
    let mut ready_at = Vec::new();
    for t in &todo {
        let svc = t.service;
        let (mut wait_s, mut service_s, mut ready) = (0.0, svc.minutes * 60.0, None);
        if let Some(qid) = &svc.queue {
            let snap = state.floor.queue(qid)?.snapshot().await.map_err(crate::actors::FloorError::from)?;
            let rooms = snap.rooms.iter().filter(|r| !r.paused).count().max(1) as f64;
            service_s = snap.mean_service_secs;
            wait_s = snap.waiting.last().and_then(|w| w.eta_secs).map(|e| e as f64 + service_s / rooms).unwrap_or(if snap.counts.waiting == 0 { 0.0 } else { snap.counts.waiting as f64 * service_s / rooms });
            if let Some(mine) = tickets.iter().find(|k| &k.queue == qid && k.status == Status::Waiting) {
                ready = Some(now_s + mine.eta_secs.unwrap_or(0) as f64);
            }
        }
        let (from, until) = svc.open.as_deref().and_then(parse_hours).map(|(a, b)| (a as f64, b as f64)).unwrap_or((0.0, 86_400.0));
        points.push(Point { name: Labels { zh: svc.name.clone(), en: if svc.name_en.is_empty() { svc.name.clone() } else { svc.name_en.clone() } }, wait_s, service_s, open_from_s: from, open_until_s: until });
        ready_at.push(ready);
    }
    let stops = stops(&todo);
    let rules = rules(&state);
    // clinicflow's way: a ticket in every queue the rules allow now, so the long queues move
    // while the patient does the short ones. Those not held yet are taken on accept.
    let mut hold = Vec::new();
    for (i, ok) in eligible(&stops, rules).into_iter().enumerate() {
        if ok && ready_at[i].is_none() && todo[i].service.queue.is_some() {
            ready_at[i] = Some(now_s.max(points[i].open_from_s) + points[i].wait_s);
            hold.push(todo[i].service.id.clone());
        }
    }
    // Results of stops already done: their ticket's completion plus the service's result time.
    let midnight_ms = now_ms() - (now_s * 1000.0) as i64;
    let results_ready_s = tickets
        .iter()
        .filter(|k| k.status == Status::Completed)
        .filter_map(|k| {
            let delay = hospital.services.iter().filter(|s| s.queue.as_ref() == Some(&k.queue)).map(|s| s.result_minutes).fold(0.0, f64::max);
            k.finished_at.filter(|_| delay > 0.0).map(|f| (f - midnight_ms) as f64 / 1000.0 + delay * 60.0)
        })
        .fold(0.0, f64::max);
    let prob = Problem { now_s, stops: &stops, points: &points, walk_from_here: &walk_from_here, walk: &walk, rules, ready_at: &ready_at, results_ready_s };
    let the_plan = plan(&prob).map_err(|e| ApiError::unprocessable("contradictory_orders", format!("the orders cannot be planned: {e:?}")))?;
    let first = the_plan.order[0];
    let svc = todo[first].service;
    let route = map.route(&here.endpoint, &places[first], profile).map_err(|_| ApiError::unprocessable("no_route", format!("no {} route to {}", profile.name(), svc.name)))?;
    let dest_ref = service_place(&state, svc);
    let route = route_json(map, &route, &here.endpoint, &places[first], &here_ref, &dest_ref, lang);
    let reason = match lang {
        Lang::Zh => &the_plan.reason.zh,
        Lang::En => &the_plan.reason.en,
    };
    let finish = local + chrono::Duration::seconds((the_plan.finish_s - now_s).max(0.0) as i64);
    Ok(HttpResponse::Ok().json(json!({
        "patient": p,
        "done": false,
        "next": {
            "service": svc.id, "name": points[first].name.get(lang), "kind": svc.kind, "queue": svc.queue,
            "orders": todo[first].orders,
            "expected_wait_s": ready_at[first].map(|r| (r - now_s).max(0.0)).unwrap_or(points[first].wait_s).round(),
            "walk_s": walk_from_here[first].round(),
            "reason": reason, "reasons": the_plan.reason,
            "route": route,
        },
        "hold": hold,
        "plan": the_plan.order.iter().map(|&i| json!({"service": todo[i].service.id, "name": points[i].name.get(lang), "orders": todo[i].orders})).collect::<Vec<_>>(),
        "expected_finish": finish.to_rfc3339(),
        "orders": list,
    })))
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
    let tickets = known(&state, &p).await?;
    let list = orders_of(&state, &p, &tickets).await?;
    let todo = pending(&state, &list);
    let Some(t) = todo.iter().find(|t| t.service.id == r.service) else {
        return Err(ApiError::unprocessable("not_pending", format!("the patient has no active order for service {:?}", r.service)));
    };
    if t.service.queue.is_none() {
        return Ok(HttpResponse::Ok().json(json!({"patient": p, "service": t.service.id, "ticket": null, "message": "this desk takes no tickets: go straight there"})));
    }
    // The accepted service first, then a ticket in every other queue the rules allow now.
    let st = stops(&todo);
    let ok = eligible(&st, rules(&state));
    let mut wanted: Vec<&ServiceConfig> = vec![t.service];
    wanted.extend(todo.iter().enumerate().filter(|(i, o)| ok[*i] && o.service.id != t.service.id && o.service.queue.is_some()).map(|(_, o)| o.service));
    let mut out = Vec::new();
    let mut created = false;
    for svc in wanted {
        let (ticket, new) = take_ticket(&state, &p, &tickets, svc).await?;
        created |= new && svc.id == t.service.id;
        let access_token = state.auth.patient_token(&ticket.id);
        out.push(json!({"service": svc.id, "ticket": ticket, "access_token": access_token}));
    }
    let first = out[0].clone();
    let body = json!({"patient": p, "service": t.service.id, "ticket": first["ticket"], "access_token": first["access_token"], "tickets": out});
    Ok(if created { HttpResponse::Created().json(body) } else { HttpResponse::Ok().json(body) })
}

/// The patient's ticket in the service's queue: the one they hold, a return visit on their
/// completed ticket, or a new one. `true` when it was taken now.
async fn take_ticket(state: &Data, p: &PatientId, tickets: &[TicketView], svc: &ServiceConfig) -> Result<(TicketView, bool), ApiError> {
    let qid = svc.queue.clone().expect("services with queues only");
    if let Some(held) = tickets.iter().find(|k| k.queue == qid && matches!(k.status, Status::Waiting | Status::Called | Status::Booked)) {
        return Ok((held.clone(), false));
    }
    // The return visit (回诊) goes back to the doctor's queue on the ticket already there.
    if svc.kind == ServiceKind::Return {
        if let Some(done) = tickets.iter().filter(|k| k.queue == qid && k.status == Status::Completed).max_by_key(|k| k.issued_at) {
            let out = state.floor.on_ticket(&done.id, Command::Return { ticket: done.id.clone(), doctor: done.doctor.clone() }, None).await?;
            let ticket = out.ticket.ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the return was not recorded"))?;
            return Ok((ticket, true));
        }
    }
    let name = tickets.first().map(|k| k.name.clone()).unwrap_or_else(|| p.as_str().to_owned());
    let cmd = Command::Issue(IssueTicket {
        ticket: TicketId::random(),
        patient: p.clone(),
        name: crate::domain::ids::DisplayName::parse(&name).map_err(|e| ApiError::unprocessable("invalid_field", e.to_string()))?,
        class: tickets.first().map(|k| k.priority.clone()).unwrap_or_else(|| PriorityClass::parse("normal").expect("valid")),
        slot: None,
        doctor: None,
        check_in: true,
    });
    let out = state.floor.execute(&qid, cmd, None).await?;
    let ticket = out.ticket.ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the ticket was not recorded"))?;
    Ok((ticket, true))
}
