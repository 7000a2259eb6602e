//! The guide: a patient's orders, the live queues, the map and the planner put together — what
//! `GET /patients/{id}/next` answers and what a patient's session pushes when it changes.
//!
//! Reads only (plus taking tickets on `accept`); the planning itself is the pure `plan` core.

use crate::clock::Clock;
use super::{Floor, FloorError};
use crate::domain::command::{Command, IssueTicket};
use crate::domain::config::{parse_hours, Hospital, ServiceConfig, ServiceKind};
use crate::domain::ids::{DisplayName, PatientId, PriorityClass, QueueId, TicketId};
use crate::domain::queue::Status;
use crate::domain::view::TicketView;
use crate::map::json::route_json;
use crate::map::model::{Endpoint, Labels, Lang, VenueMap};
use crate::map::store::{MapStore, ResolveError};
use crate::map::Profile;
use crate::plan::orders::OrderStatus;
use crate::plan::{allowed_now, plan, Point, Problem, Reason, Rules, Stop, StopKind, RETURN_LEAD_S};
use crate::storage::orders::{OrderStore, StoredOrder};
use chrono::Timelike;
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Why the guide cannot answer. The HTTP edge maps each to a status and a stable code.
#[derive(Debug, thiserror::Error)]
pub enum GuideError {
    #[error(transparent)]
    Floor(FloorError),
    #[error("{0:?}")]
    Resolve(ResolveError),
    /// The order store failed; nothing changed.
    #[error("cannot record the orders now: {0}")]
    Store(String),
    #[error("no ticket or order for patient {0} today")]
    UnknownPatient(PatientId),
    /// No place given, no fresh live position, no ticket with a place.
    #[error("where is the patient? give at= (a kiosk or QR marker, a room)")]
    WhereIsThePatient,
    /// The config puts a service somewhere the map does not have.
    #[error("service {service} is at {place:?}, which is not on the map")]
    MapMismatch { service: String, place: String },
    #[error("the orders cannot be planned: {0}")]
    ContradictoryOrders(String),
    #[error("no {profile} route to {service}")]
    NoRoute { profile: &'static str, service: String },
    #[error("the patient has no active order for service {0:?}")]
    NotPending(String),
    /// A return visit asked for long before its results: `at` is when they are expected (HH:MM).
    #[error(
        "the results are expected at {at}: the return visit is taken from {} minutes before (staff who see the results already may return the ticket with POST /tickets/{{id}}/return)",
        RETURN_LEAD_S as i64 / 60
    )]
    ResultsPending { at: String },
    #[error("the ticket was not recorded")]
    Unrecorded,
    #[error("{0}")]
    InvalidName(String),
    #[error("patient {patient} has no order {order:?}")]
    UnknownOrder { patient: PatientId, order: String },
}

/// What `GET /patients/{id}/next` answers and a session pushes as `next_stop`.
#[derive(Debug, Clone, Serialize)]
pub struct NextStop {
    pub patient: PatientId,
    /// Every order is done (or none is active): `next` is null.
    pub done: bool,
    pub next: Option<Next>,
    #[serde(flatten)]
    pub planned: Option<Planned>,
    pub orders: Vec<StoredOrder>,
}

/// The stop to go to now.
#[derive(Debug, Clone, Serialize)]
pub struct Next {
    pub service: String,
    pub name: String,
    pub kind: ServiceKind,
    pub queue: Option<QueueId>,
    pub orders: Vec<String>,
    /// Besides walking: the held ticket's call, a new ticket's wait, the results awaited.
    pub expected_wait_s: f64,
    pub walk_s: f64,
    pub reason: String,
    pub reasons: Reason,
    /// The route there, as `GET /route` answers it.
    pub route: Value,
}

/// The rest of a plan, when there is one.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    /// Services whose tickets are taken on accept (the rules allow them now).
    pub hold: Vec<String>,
    pub plan: Vec<PlanStep>,
    pub expected_finish: String,
    pub results_expected_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanStep {
    pub service: String,
    pub name: String,
    pub orders: Vec<String>,
}

impl From<FloorError> for GuideError {
    fn from(e: FloorError) -> Self {
        GuideError::Floor(e)
    }
}

impl From<ResolveError> for GuideError {
    fn from(e: ResolveError) -> Self {
        GuideError::Resolve(e)
    }
}

/// One stop of the patient's day: a configured service with the active orders it serves.
pub struct Pending<'a> {
    pub service: &'a ServiceConfig,
    pub orders: Vec<String>,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct Guide {
    pub floor: Floor,
    pub orders: Arc<OrderStore>,
    pub maps: Arc<MapStore>,
    /// Live positions: where a patient is when no place is given.
    pub positions: super::positions::PositionDesk,
    /// Where the guide reads the time: opening hours, results due, a position's freshness.
    pub clock: Clock,
}


/// The `from.ref` of a route that starts at the patient's live position.
pub const HERE_REF: &str = "position";
/// A live position older than this is not used as "where the patient is".
pub const FRESH_POSITION_MS: i64 = 120_000;

impl Guide {
    /// The patient's live position as a route start, when it is fresh.
    pub async fn live_here(&self, p: &PatientId, atlas: &crate::map::store::Atlas) -> Option<crate::map::store::Resolved> {
        let (loc, _) = self.positions.location(p.as_str()).await;
        let loc = loc.filter(|l| self.clock.now_ms() - l.t <= FRESH_POSITION_MS)?;
        self.endpoint_at(atlas, &loc)
    }

    /// A route start at a position: the nearest navigation node on its level.
    pub fn endpoint_at(&self, atlas: &crate::map::store::Atlas, loc: &super::positions::Located) -> Option<crate::map::store::Resolved> {
        let venue = atlas.venue(&loc.venue)?.clone();
        let level = venue.levels.iter().position(|l| l.id == loc.level)?;
        let node = venue.nearest_node(level, loc.x, loc.y)?;
        let endpoint = Endpoint { label: Labels { zh: "您的位置".into(), en: "Your position".into() }, nodes: vec![node], place: None };
        Some(crate::map::store::Resolved { venue, endpoint })
    }

    /// The line of a route as `route_json` wrote it, to follow a position along it.
    pub fn route_line(&self, route: &Value) -> Option<crate::position::guidance::RouteLine> {
        let atlas = self.maps.current();
        let venue = atlas.venue(route["venue"].as_str()?)?;
        let nodes: Vec<&str> = route["path"].as_array()?.iter().filter_map(|n| n["node"].as_str()).collect();
        crate::position::guidance::RouteLine::from_nodes(venue, &nodes, route["duration_s"].as_f64().unwrap_or(0.0))
    }

    /// The route from a live position to a place (`department:…`, `room:…`), with its walking time.
    pub fn route_from(&self, loc: &super::positions::Located, to: &str, profile: Profile, lang: Lang) -> Option<(Value, f64)> {
        let atlas = self.maps.current();
        let here = self.endpoint_at(&atlas, loc)?;
        let goal = here.venue.resolve(to)?;
        let r = here.venue.route(&here.endpoint, &goal, profile).ok()?;
        let seconds = r.seconds;
        Some((route_json(&here.venue, &r, &here.endpoint, &goal, HERE_REF, to, lang), seconds))
    }

    /// Where a position falls on its level's drawing (`/maps/{venue}/levels/{level}.svg`), as
    /// fractions of the image, for the phone's "you are here" dot.
    pub fn on_drawing(&self, loc: &super::positions::Located) -> Option<Value> {
        let atlas = self.maps.current();
        let venue = atlas.venue(&loc.venue)?;
        let level = venue.levels.iter().position(|l| l.id == loc.level)?;
        let (u, v) = crate::map::render::fraction(venue, level, loc.x, loc.y);
        let floor = &venue.levels[level].short_name;
        Some(json!({"venue": venue.id, "level": loc.level, "floor": floor, "u": (u * 1e4).round() / 1e4, "v": (v * 1e4).round() / 1e4}))
    }

    /// A patient at a kiosk or QR marker is exactly there: their live position snaps to it.
    pub fn fixed_point(&self, p: &PatientId, r: &crate::map::store::Resolved) {
        let Some(place) = r.endpoint.place.map(|i| &r.venue.places[i]).filter(|pl| pl.kind == crate::map::model::PlaceKind::Marker) else { return };
        let [x, y] = r.venue.to_local(place.lon, place.lat);
        self.positions.fix(p.as_str(), &r.venue.id, place.level, x, y, self.clock.now_ms());
    }

    fn hospital(&self) -> &Hospital {
        &self.floor.hospital
    }

    async fn store<T: Send + 'static>(&self, f: impl FnOnce(&OrderStore) -> rusqlite::Result<T> + Send + 'static) -> Result<T, GuideError> {
        let store = self.orders.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "order store");
                Err(GuideError::Store(e.to_string()))
            }
            Err(e) => Err(GuideError::Store(e.to_string())),
        }
    }

    /// Known patients: clinicflow has issued them a ticket today, or holds orders for them.
    pub async fn known(&self, p: &PatientId) -> Result<Vec<TicketView>, GuideError> {
        let tickets = self.floor.patient_tickets(p).await?;
        if tickets.is_empty() {
            let id = p.as_str().to_owned();
            if !self.store(move |s| s.has_patient(&id)).await? {
                return Err(GuideError::UnknownPatient(p.clone()));
            }
        }
        Ok(tickets)
    }

    /// Replace a patient's orders with `orders` (from the HIS), whole; the list as stored.
    pub async fn put_orders(&self, p: &PatientId, orders: Vec<crate::plan::orders::OrderIn>) -> Result<Vec<StoredOrder>, GuideError> {
        self.known(p).await?;
        let (id, now) = (p.as_str().to_owned(), self.clock.now_ms());
        self.store(move |s| {
            s.put(&id, &orders, now)?;
            s.list(&id)
        })
        .await
    }

    /// An order is done or cancelled (`Some(status)`), or its results are in (`None`: a return
    /// visit waiting for them may be taken now). The order as stored.
    pub async fn order_changed(&self, p: &PatientId, order: &str, status: Option<OrderStatus>) -> Result<StoredOrder, GuideError> {
        let (id, o, now) = (p.as_str().to_owned(), order.to_owned(), self.clock.now_ms());
        let changed = self
            .store(move |s| match status {
                Some(status) => s.set_status(&id, &o, status, now),
                None => s.set_results(&id, &o, now),
            })
            .await?;
        changed.ok_or_else(|| GuideError::UnknownOrder { patient: p.clone(), order: order.to_owned() })
    }

    /// The patient's orders, with those their queue has since completed marked done (and stored
    /// so): an order is done when a ticket of its service's queue was called after the order came
    /// and completed. A breakfast-dependent order sharing its queue with a fasting one needs a second visit.
    pub async fn orders_of(&self, p: &PatientId, tickets: &[TicketView]) -> Result<Vec<StoredOrder>, GuideError> {
        let id = p.as_str().to_owned();
        let list = self.store(move |s| s.list(&id)).await?;
        let services = &self.hospital().services;
        let svc = |o: &StoredOrder| services.iter().find(|s| s.id == o.service);
        let mut done = Vec::new();
        for o in list.iter().filter(|o| o.status == OrderStatus::Active) {
            let Some(queue) = svc(o).and_then(|s| s.queue.clone()) else { continue };
            // Served for it: called after the order came (the consultation during which the
            // doctor wrote the orders does not do the return visit it ordered).
            let visits = tickets.iter().filter(|k| k.queue == queue && k.status == Status::Completed && k.called_at.or(k.finished_at).is_some_and(|c| c > o.updated_ms)).count();
            let fasting_here = list.iter().any(|x| x.id != o.id && svc(x).is_some_and(|s| s.fasting && s.queue.as_ref() == Some(&queue)));
            let needed = if svc(o).is_some_and(|s| s.after_meal) && fasting_here { 2 } else { 1 };
            if visits >= needed {
                done.push(o.id.clone());
            }
        }
        if done.is_empty() {
            return Ok(list);
        }
        let (id, now) = (p.as_str().to_owned(), self.clock.now_ms());
        self.store(move |s| {
            for o in &done {
                s.set_status(&id, o, OrderStatus::Done, now)?;
            }
            s.list(&id)
        })
        .await
    }

    /// Active orders grouped by service, in the order they came.
    pub fn pending<'a>(&'a self, list: &[StoredOrder]) -> Vec<Pending<'a>> {
        let mut out: Vec<Pending> = Vec::new();
        for o in list.iter().filter(|o| o.status == OrderStatus::Active) {
            let Some(svc) = self.hospital().services.iter().find(|s| s.id == o.service) else { continue };
            match out.iter_mut().find(|p| p.service.id == svc.id) {
                Some(p) => p.orders.push(o.id.clone()),
                None => out.push(Pending { service: svc, orders: vec![o.id.clone()] }),
            }
        }
        out
    }

    fn rules(&self) -> Rules {
        let h = &self.hospital().planning;
        Rules { payment_first: h.payment_first, fasting_first: h.fasting_first, return_last: h.return_last }
    }

    /// Where a service is on the map: its `place`, or its queue's department.
    pub fn service_place(&self, svc: &ServiceConfig) -> String {
        match (&svc.place, &svc.queue) {
            (Some(p), _) => p.clone(),
            (None, Some(q)) => self.hospital().queues.get(q).map(|spec| format!("department:{}", spec.department)).unwrap_or_default(),
            (None, None) => String::new(),
        }
    }

    /// The next stop with its route, wait and reason, the whole plan, and the tickets to hold.
    pub async fn next_stop(&self, p: &PatientId, at: Option<&str>, profile: Profile, lang: Lang) -> Result<NextStop, GuideError> {
        let tickets = self.known(p).await?;
        let list = self.orders_of(p, &tickets).await?;
        let todo = self.pending(&list);
        if todo.is_empty() {
            return Ok(NextStop { patient: p.clone(), done: true, next: None, planned: None, orders: list });
        }
        // Where the patient is: given, their live position, or the room of their latest ticket.
        let atlas = self.maps.current();
        let (here, here_ref) = match at.filter(|s| !s.is_empty()) {
            Some(a) => {
                let r = atlas.resolve(a)?;
                self.fixed_point(p, &r);
                (r, a.to_owned())
            }
            None => match self.live_here(p, &atlas).await {
                Some(r) => (r, HERE_REF.to_owned()),
                None => {
                    let r = tickets
                        .iter()
                        .max_by_key(|t| t.issued_at)
                        .and_then(|t| t.room.as_ref().map(|r| format!("room:{r}")).or_else(|| Some(format!("department:{}", self.hospital().queues.get(&t.queue)?.department))))
                        .ok_or(GuideError::WhereIsThePatient)?;
                    (atlas.resolve(&r)?, r)
                }
            },
        };
        let map: &VenueMap = &here.venue;
        let places: Vec<Endpoint> = todo
            .iter()
            .map(|t| {
                let r = self.service_place(t.service);
                map.resolve(&r).ok_or_else(|| GuideError::MapMismatch { service: t.service.id.clone(), place: r })
            })
            .collect::<Result<_, _>>()?;
        let walk_s = |a: &Endpoint, b: &Endpoint| map.route(a, b, profile).map(|r| r.seconds).unwrap_or(f64::INFINITY);
        let walk_from_here: Vec<f64> = places.iter().map(|b| walk_s(&here.endpoint, b)).collect();
        let walk: Vec<Vec<f64>> = places.iter().map(|a| places.iter().map(|b| walk_s(a, b)).collect()).collect();

        // Live queues: the wait a new ticket would have, or the patient's own ticket's ETA.
        let hospital = self.hospital();
        let local = self.clock.local(&hospital.tz);
        let now_s = local.num_seconds_from_midnight() as f64;
        let mut points = Vec::new();
        let mut ready_at = Vec::new();
        for t in &todo {
            let svc = t.service;
            let (mut wait_s, mut service_s, mut ready) = (0.0, svc.minutes * 60.0, None);
            if let Some(qid) = &svc.queue {
                let snap = self.floor.queue(qid)?.snapshot().await.map_err(FloorError::from)?;
                let rooms = snap.rooms.iter().filter(|r| !r.paused).count().max(1) as f64;
                service_s = snap.mean_service_secs;
                wait_s = snap
                    .waiting
                    .last()
                    .and_then(|w| w.eta_secs)
                    .map(|e| e as f64 + service_s / rooms)
                    .unwrap_or(if snap.counts.waiting == 0 { 0.0 } else { snap.counts.waiting as f64 * service_s / rooms });
                if let Some(mine) = tickets.iter().find(|k| &k.queue == qid && k.status == Status::Waiting) {
                    ready = Some(now_s + mine.eta_secs.unwrap_or(0) as f64);
                }
            }
            let (from, until) = svc.open.as_deref().and_then(parse_hours).map(|(a, b)| (a as f64, b as f64)).unwrap_or((0.0, 86_400.0));
            let name = Labels { zh: svc.name.clone(), en: if svc.name_en.is_empty() { svc.name.clone() } else { svc.name_en.clone() } };
            points.push(Point { name, wait_s, service_s, open_from_s: from, open_until_s: until });
            ready_at.push(ready);
        }
        let stops = stops(&todo);
        let rules = self.rules();
        let results_ready_s = self.results_ready_s(&tickets, &list, now_s);
        // clinicflow's way: a ticket in every queue the rules allow now, so the long queues move
        // while the patient does the short ones. Those not held yet are taken on accept. Not the
        // return visit while its results are still far off: the doctor would call the patient
        // before they have them.
        let mut hold = Vec::new();
        for (i, ok) in allowed_now(&stops, rules).into_iter().enumerate() {
            let pending = todo[i].service.kind == ServiceKind::Return && results_ready_s > now_s + RETURN_LEAD_S;
            if ok && !pending && ready_at[i].is_none() && todo[i].service.queue.is_some() {
                ready_at[i] = Some(now_s.max(points[i].open_from_s) + points[i].wait_s);
                hold.push(todo[i].service.id.clone());
            }
        }
        let prob = Problem { now_s, stops: &stops, points: &points, walk_from_here: &walk_from_here, walk: &walk, rules, ready_at: &ready_at, results_ready_s };
        let the_plan = plan(&prob).map_err(|e| GuideError::ContradictoryOrders(format!("{e:?}")))?;
        let first = the_plan.order[0];
        let svc = todo[first].service;
        let route = map.route(&here.endpoint, &places[first], profile).map_err(|_| GuideError::NoRoute { profile: profile.name(), service: svc.name.clone() })?;
        let route = route_json(map, &route, &here.endpoint, &places[first], &here_ref, &self.service_place(svc), lang);
        let reason = match lang {
            Lang::Zh => &the_plan.reason.zh,
            Lang::En => &the_plan.reason.en,
        };
        let finish = local + chrono::Duration::seconds((the_plan.finish_s - now_s).max(0.0) as i64);
        // Besides walking: the held ticket's call or a fresh ticket's wait, and for the return
        // visit the results it waits for.
        let mut expected_wait_s = ready_at[first].map(|r| (r - now_s).max(0.0)).unwrap_or(points[first].wait_s);
        if svc.kind == ServiceKind::Return {
            expected_wait_s += (results_ready_s - now_s - walk_from_here[first]).max(0.0);
        }
        let results_at = (results_ready_s > now_s).then(|| (local + chrono::Duration::seconds((results_ready_s - now_s) as i64)).to_rfc3339());
        let next = Next {
            service: svc.id.clone(),
            name: points[first].name.get(lang).to_owned(),
            kind: svc.kind,
            queue: svc.queue.clone(),
            orders: todo[first].orders.clone(),
            expected_wait_s: expected_wait_s.round(),
            walk_s: walk_from_here[first].round(),
            reason: reason.clone(),
            reasons: the_plan.reason.clone(),
            route,
        };
        let steps = the_plan.order.iter().map(|&i| PlanStep { service: todo[i].service.id.clone(), name: points[i].name.get(lang).to_owned(), orders: todo[i].orders.clone() }).collect();
        let planned = Planned { hold, plan: steps, expected_finish: finish.to_rfc3339(), results_expected_at: results_at };
        Ok(NextStop { patient: p.clone(), done: false, next: Some(next), planned: Some(planned), orders: list })
    }

    /// When the results of the patient's completed stops are expected (seconds since local
    /// midnight; 0: none pending): each completed ticket's end plus its service's result time,
    /// unless the HIS has said the results of every order done in that queue are in.
    fn results_ready_s(&self, tickets: &[TicketView], orders: &[StoredOrder], now_s: f64) -> f64 {
        let hospital = self.hospital();
        let midnight_ms = self.clock.now_ms() - (now_s * 1000.0) as i64;
        let queue_of = |o: &StoredOrder| hospital.services.iter().find(|s| s.id == o.service).and_then(|s| s.queue.as_ref());
        tickets
            .iter()
            .filter(|k| k.status == Status::Completed)
            .filter(|k| {
                let mut done = orders.iter().filter(|o| o.status == OrderStatus::Done && queue_of(o) == Some(&k.queue)).peekable();
                done.peek().is_none() || !done.all(|o| o.results_ms.is_some())
            })
            .filter_map(|k| {
                let delay = hospital.services.iter().filter(|s| s.queue.as_ref() == Some(&k.queue)).map(|s| s.result_minutes).fold(0.0, f64::max);
                k.finished_at.filter(|_| delay > 0.0).map(|f| (f - midnight_ms) as f64 / 1000.0 + delay * 60.0)
            })
            .fold(0.0, f64::max)
    }

    /// Accept the plan at `service`: its ticket, then one in every other queue the rules allow
    /// now. Returns `(service, ticket, taken now)` for each, the accepted one first; an empty list
    /// for a desk that takes no tickets.
    pub async fn accept(&self, p: &PatientId, service: &str) -> Result<Vec<(String, TicketView, bool)>, GuideError> {
        let tickets = self.known(p).await?;
        let list = self.orders_of(p, &tickets).await?;
        let todo = self.pending(&list);
        let Some(t) = todo.iter().find(|t| t.service.id == service) else {
            return Err(GuideError::NotPending(service.to_owned()));
        };
        if t.service.queue.is_none() {
            return Ok(Vec::new());
        }
        if t.service.kind == ServiceKind::Return {
            let local = self.clock.local(&self.hospital().tz);
            let now_s = local.num_seconds_from_midnight() as f64;
            let ready = self.results_ready_s(&tickets, &list, now_s);
            if ready > now_s + RETURN_LEAD_S {
                let at = local + chrono::Duration::seconds((ready - now_s) as i64);
                return Err(GuideError::ResultsPending { at: at.format("%H:%M").to_string() });
            }
        }
        let st = stops(&todo);
        let ok = allowed_now(&st, self.rules());
        let mut wanted: Vec<&ServiceConfig> = vec![t.service];
        wanted.extend(todo.iter().enumerate().filter(|(i, o)| ok[*i] && o.service.id != t.service.id && o.service.queue.is_some()).map(|(_, o)| o.service));
        let mut out = Vec::new();
        // One number for the whole visit: the first ticket's, on every screen and the phone.
        let mut visit = tickets.iter().min_by_key(|k| k.issued_at).map(|k| (k.visit.clone(), k.number.clone()));
        for svc in wanted {
            let (ticket, new) = self.take_ticket(p, &tickets, svc, visit.clone()).await?;
            visit.get_or_insert_with(|| (ticket.visit.clone(), ticket.number.clone()));
            out.push((svc.id.clone(), ticket, new));
        }
        Ok(out)
    }

    /// The patient's ticket in the service's queue: the one they hold, a return visit on their
    /// completed ticket, or a new one. `true` when it was taken now.
    async fn take_ticket(&self, p: &PatientId, tickets: &[TicketView], svc: &ServiceConfig, visit: Option<(TicketId, String)>) -> Result<(TicketView, bool), GuideError> {
        let qid = svc.queue.clone().expect("services with queues only");
        if let Some(held) = tickets.iter().find(|k| k.queue == qid && matches!(k.status, Status::Waiting | Status::Called | Status::Booked)) {
            return Ok((held.clone(), false));
        }
        let unrecorded = || GuideError::Unrecorded;
        // The return visit (回诊) goes back to the doctor's queue on the ticket already there.
        if svc.kind == ServiceKind::Return {
            if let Some(done) = tickets.iter().filter(|k| k.queue == qid && k.status == Status::Completed).max_by_key(|k| k.issued_at) {
                let out = self.floor.on_ticket(&done.id, Command::Return { ticket: done.id.clone(), doctor: done.doctor.clone() }, None).await?;
                return Ok((out.ticket.ok_or_else(unrecorded)?, true));
            }
        }
        let name = tickets.first().map(|k| k.name.clone()).unwrap_or_else(|| p.as_str().to_owned());
        let cmd = Command::Issue(IssueTicket {
            ticket: TicketId::random(),
            patient: p.clone(),
            name: DisplayName::parse(&name).map_err(|e| GuideError::InvalidName(e.to_string()))?,
            class: tickets.first().map(|k| k.priority.clone()).unwrap_or_else(|| PriorityClass::parse("normal").expect("valid")),
            slot: None,
            doctor: None,
            check_in: true,
            visit,
            his: None,
            at: None,
        });
        let out = self.floor.execute(&qid, cmd, None).await?;
        Ok((out.ticket.ok_or_else(unrecorded)?, true))
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::{CommitStream, Directory, QueueHandle};
    use crate::domain::queue::QueueState;
    use crate::storage::{JournalWriter, SqliteJournal, WriterLimits};
    use crate::telemetry::Metrics;

    /// 2026-12-07 10:00 in the demo hospital's zone (Asia/Shanghai).
    const MONDAY_10: i64 = 1_796_608_800_000;
    const MIN: i64 = 60_000;

    /// The demo floor and a guide, every part on one manual clock.
    fn guide(dir: &std::path::Path, clock: &Clock) -> Guide {
        let hospital = Arc::new(Hospital::demo());
        let metrics = Arc::new(Metrics::new());
        let (journal, _) = JournalWriter::start(Box::new(SqliteJournal::open(&dir.join("journal.sqlite")).unwrap()), WriterLimits::default(), metrics.clone());
        let (directory, stream) = (Directory::default(), CommitStream::default());
        let queues = hospital
            .queues
            .iter()
            .map(|(id, spec)| (id.clone(), QueueHandle::start(QueueState::new(spec.clone()), journal.clone(), directory.clone(), stream.clone(), metrics.clone(), clock.clone())))
            .collect();
        let floor = Floor::new(hospital, queues, directory, stream);
        let tags = Arc::new(crate::storage::tags::TagStore::open(&dir.join("tags.sqlite")).unwrap());
        let positions = super::super::positions::PositionDesk::start(Vec::new(), tags, "2026-12-07", Default::default(), &metrics, clock.clone()).unwrap();
        Guide {
            floor,
            orders: Arc::new(OrderStore::open(&dir.join("orders.sqlite")).unwrap()),
            maps: Arc::new(MapStore::new(crate::map::store::MapSource::Demo).unwrap()),
            positions,
            clock: clock.clone(),
        }
    }

    async fn call(g: &Guide, queue: &str, room: &str) -> TicketView {
        let q = QueueId::parse(queue).unwrap();
        g.floor.execute(&q, Command::CallNext { room: crate::domain::ids::RoomId::parse(room).unwrap(), caller: "test".into() }, None).await.unwrap().ticket.unwrap()
    }

    async fn complete(g: &Guide, t: &TicketView) {
        g.floor.on_ticket(&t.id, Command::Complete { ticket: t.id.clone() }, None).await.unwrap();
    }

    /// The return visit opens when the blood test's results are due, on the guide's clock: the
    /// same morning replayed on a clock that only moves when the test says.
    #[actix_rt::test]
    async fn the_return_visit_opens_when_the_results_are_due_on_the_guides_clock() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(MONDAY_10);
        let g = guide(dir.path(), &clock);
        let p = PatientId::parse("p-1").unwrap();
        let first = g.floor.execute(&QueueId::parse("internal-medicine").unwrap(), Command::Issue(IssueTicket::walk_in(TicketId::parse("t-im").unwrap(), p.clone(), DisplayName::parse("张三丰").unwrap(), PriorityClass::parse("normal").unwrap())), None).await.unwrap();
        let doctor = first.ticket.unwrap();
        // The doctor calls the patient and writes the orders during the consultation.
        clock.advance(MIN);
        assert_eq!(call(&g, "internal-medicine", "c-101").await.id, doctor.id);
        clock.advance(4 * MIN);
        let orders = crate::plan::orders::parse(&json!({"orders": [{"id": "o-lab", "code": "LAB-CBC"}, {"id": "o-ret", "code": "RETURN-IM"}]}), "p-1", &g.floor.hospital).unwrap();
        g.put_orders(&p, orders).await.unwrap();
        clock.advance(MIN);
        complete(&g, &doctor).await;

        // The blood test, taken at 10:06 and done at 10:20; the lab's results take up to 40
        // minutes.
        let taken = g.accept(&p, "blood").await.unwrap();
        assert_eq!(taken.len(), 1, "no return ticket while the blood test is pending");
        clock.advance(14 * MIN);
        let lab = call(&g, "lab", "lab-1").await;
        complete(&g, &lab).await;
        let plan = g.next_stop(&p, Some("K-A-L1"), Profile::Default, Lang::En).await.unwrap();
        assert_eq!(plan.next.as_ref().unwrap().service, "return-internal-medicine");
        let planned = plan.planned.unwrap();
        assert_eq!(planned.results_expected_at.as_deref(), Some("2026-12-07T11:00:00+08:00"), "from the guide's clock, not the machine's");
        assert!(planned.hold.is_empty());
        // Eleven minutes before the results: too early, and it says when they are due.
        clock.advance(29 * MIN);
        match g.accept(&p, "return-internal-medicine").await {
            Err(GuideError::ResultsPending { at }) => assert_eq!(at, "11:00"),
            other => panic!("{other:?}"),
        }
        // From ten minutes before: the doctor's own ticket, back in line.
        clock.advance(MIN);
        let back = g.accept(&p, "return-internal-medicine").await.unwrap();
        assert_eq!((back[0].1.id.clone(), back[0].1.status), (doctor.id, Status::Waiting));
    }
}
