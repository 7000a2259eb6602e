//! `PositionDesk`: the live positions of the floor. One task owns the pure
//! [`Positioning`](crate::position::live::Positioning) of every venue with a radio map; gateway
//! reports (MQTT), phone scans (the patient's socket), fixed-point scans and tag bindings come in
//! as notes; new positions go out on a broadcast the patient sessions follow. Bindings are
//! durable ([`TagStore`]); positions live in memory for the visit only and are never written
//! down or shown on a public screen.
//!
//! Readings that cannot be used are counted by reason in
//! `clinicflow_position_readings_total{result}` and move nobody.

use crate::map::VenueMap;
use crate::position::live::{BindError, Dropped, LiveRules, Moved, Positioning};
use crate::position::{Estimate, RadioMap};
use crate::storage::tags::{Bound, TagStore};
use crate::clock::Clock;
use crate::telemetry::Metrics;
use prometheus::{IntCounterVec, IntGauge, Opts};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tokio::sync::{broadcast, mpsc, oneshot};

/// Notes waiting for the desk; beyond it, readings are dropped and counted (`overloaded`).
const INBOX: usize = 16_384;
/// A visit's position is pushed at most this often (fixed-point scans at once).
const PUSH_EVERY_MS: i64 = 1_000;
/// Tag ids that start with this are phones, bound by their patient's socket.
pub const PHONE_TAG: &str = "phone:";

/// A visit's position, as the API and the patient's phone receive it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Located {
    /// The visit (the patient id).
    pub patient: String,
    pub venue: String,
    pub level: String,
    /// Venue-local metres.
    pub x: f64,
    pub y: f64,
    pub lon: f64,
    pub lat: f64,
    /// How uncertain (root-mean-square spread of the belief), metres.
    pub spread_m: f64,
    /// From a fixed point (kiosk, QR marker), not from radio.
    pub exact: bool,
    /// When (Unix ms).
    pub t: i64,
}

/// The radio maps being served, for the API's status.
#[derive(Debug, Clone, Serialize)]
pub struct VenueStatus {
    pub venue: String,
    pub gateways: Vec<String>,
    pub states: usize,
    pub measured_states: usize,
}

enum Note {
    Report { gateway: String, payload: Vec<u8>, at: i64 },
    Phone { ticket: String, patient: String, beacons: Vec<(String, f64)>, t: i64, at: i64 },
    Fix { patient: String, venue: String, level: usize, x: f64, y: f64, at: i64 },
    Bind { tag: String, patient: String },
    Unbind { tag: String },
    EndVisit { patient: String },
    Where { patient: String, reply: oneshot::Sender<(Option<Located>, Vec<Located>)> },
    Visits { reply: oneshot::Sender<Vec<String>> },
    /// The maps were reloaded: each venue's new map and its radio map rebuilt against it.
    Remap { radios: Vec<(Arc<RadioMap>, Arc<VenueMap>)>, done: oneshot::Sender<()> },
}

struct Venue {
    map: Arc<VenueMap>,
    live: Positioning,
}

/// Why a binding was refused.
#[derive(Debug, thiserror::Error)]
pub enum TagError {
    #[error("no radio map is loaded: start the server with --radio FILE")]
    Off,
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("tag {tag} is bound to another visit")]
    InUse { tag: String },
    #[error("tag ids starting with {PHONE_TAG:?} are phones, bound by their own socket")]
    Reserved,
    #[error("the tag store failed: {0}")]
    Store(String),
}

struct DeskMetrics {
    readings: IntCounterVec,
    bound: IntGauge,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct PositionDesk {
    tx: mpsc::Sender<Note>,
    located: broadcast::Sender<Arc<Located>>,
    store: Arc<TagStore>,
    status: Arc<RwLock<Vec<VenueStatus>>>,
    /// The radio maps' calibrations, to rebuild them against reloaded maps.
    files: Arc<Vec<crate::position::radio::RadioMapFile>>,
    gateways: Arc<std::collections::HashSet<String>>,
    metrics: Arc<DeskMetrics>,
    day: Arc<RwLock<String>>,
    /// Where the desk reads the time (bindings, forgetting old positions).
    clock: Clock,
}

impl PositionDesk {
    /// Start the desk with the radio maps (each built against its venue map) and today's
    /// bindings from `store`. Must run inside a tokio runtime.
    pub fn start(radios: Vec<(Arc<RadioMap>, Arc<VenueMap>)>, store: Arc<TagStore>, today: &str, rules: LiveRules, metrics: &Metrics, clock: Clock) -> anyhow::Result<Self> {
        let readings = IntCounterVec::new(Opts::new("clinicflow_position_readings_total", "BLE readings by result: accepted, or why they were dropped"), &["result"]).expect("valid metric");
        let bound = IntGauge::new("clinicflow_position_tags_bound", "BLE tags (wristbands and phones) bound to a visit").expect("valid metric");
        for r in ["accepted", "overloaded"].into_iter().chain(Dropped::ALL.iter().map(|d| d.label())) {
            readings.with_label_values(&[r]);
        }
        metrics.register(Box::new(readings.clone()));
        metrics.register(Box::new(bound.clone()));
        let status = venue_status(&radios);
        let files = radios.iter().map(|(r, _)| r.file.clone()).collect();
        let gateways = status.iter().flat_map(|s| s.gateways.iter().cloned()).collect();
        let mut venues: Vec<Venue> = radios.into_iter().map(|(r, map)| Venue { map, live: Positioning::new(r, rules) }).collect();
        for b in store.load(today)? {
            for v in &mut venues {
                let _ = v.live.bind(&b.tag, &b.visit);
            }
        }
        let (tx, rx) = mpsc::channel(INBOX);
        let (located, _) = broadcast::channel(4_096);
        let desk = PositionDesk {
            tx,
            located: located.clone(),
            store,
            status: Arc::new(RwLock::new(status)),
            files: Arc::new(files),
            gateways: Arc::new(gateways),
            metrics: Arc::new(DeskMetrics { readings, bound }),
            day: Arc::new(RwLock::new(today.to_owned())),
            clock: clock.clone(),
        };
        if !venues.is_empty() {
            tokio::spawn(run(venues, rx, located, desk.metrics.clone(), clock));
        }
        Ok(desk)
    }

    /// Positioning is on: at least one radio map is loaded.
    pub fn enabled(&self) -> bool {
        !self.files.is_empty()
    }

    pub fn status(&self) -> Vec<VenueStatus> {
        self.status.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Rebuilds every radio map against `atlas` (maps about to be reloaded): the radio maps to
    /// [`PositionDesk::remap`] to once the atlas is served, or why the new maps do not fit the
    /// calibration (a venue or an anchor's level gone) — then the reload must be refused.
    pub fn fit(&self, atlas: &crate::map::store::Atlas) -> Result<Vec<(Arc<RadioMap>, Arc<VenueMap>)>, Vec<crate::map::load::MapIssue>> {
        let mut out = Vec::new();
        let mut issues = Vec::new();
        for file in self.files.iter() {
            let id = file.venue.id().to_owned();
            let issue = |message: String| crate::map::load::MapIssue { file: "radio map".into(), feature: Some(id.clone()), message };
            let crate::position::radio::VenueRef::Map { .. } = &file.venue else { continue };
            let Some(venue) = atlas.venue(&id) else {
                issues.push(issue(format!("the radio map is calibrated for venue {id:?}, which the new maps do not have")));
                continue;
            };
            match RadioMap::build(file.clone(), Some(venue)) {
                Ok(r) => out.push((Arc::new(r), venue.clone())),
                Err(e) => issues.push(issue(format!("the radio map does not fit the new map: {e}"))),
            }
        }
        if issues.is_empty() {
            Ok(out)
        } else {
            Err(issues)
        }
    }

    /// Tracks on the rebuilt radio maps from now on (see [`PositionDesk::fit`]); returns when
    /// the desk has switched.
    pub async fn remap(&self, radios: Vec<(Arc<RadioMap>, Arc<VenueMap>)>) {
        if !self.enabled() || radios.is_empty() {
            return;
        }
        *self.status.write().unwrap_or_else(|p| p.into_inner()) = venue_status(&radios);
        let (done, wait) = oneshot::channel();
        if self.tx.send(Note::Remap { radios, done }).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Every gateway of the loaded radio maps (their MQTT logins).
    pub fn gateways(&self) -> &std::collections::HashSet<String> {
        &self.gateways
    }

    /// New positions, for the patient sessions.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Located>> {
        self.located.subscribe()
    }

    fn note(&self, n: Note, readings: u64) {
        if !self.enabled() {
            return;
        }
        if self.tx.try_send(n).is_err() {
            self.metrics.readings.with_label_values(&["overloaded"]).inc_by(readings.max(1));
        }
    }

    /// A gateway's report (the MQTT payload of `gateways/{gateway}/scan`).
    pub fn report(&self, gateway: &str, payload: &[u8], at: i64) {
        self.note(Note::Report { gateway: gateway.to_owned(), payload: payload.to_vec(), at }, 1);
    }

    /// A phone's scan of beacons, from its patient's socket: the phone is bound to the visit.
    pub fn phone_scan(&self, ticket: &str, patient: &str, beacons: Vec<(String, f64)>, t: i64, at: i64) {
        let n = beacons.len() as u64;
        self.note(Note::Phone { ticket: ticket.to_owned(), patient: patient.to_owned(), beacons, t, at }, n);
    }

    /// A phone's scan that could not be read (counted).
    pub fn malformed(&self) {
        self.metrics.readings.with_label_values(&[Dropped::Malformed.label()]).inc();
    }

    /// A fixed-point scan (kiosk, QR marker) by the patient: exact, at once.
    pub fn fix(&self, patient: &str, venue: &str, level: usize, x: f64, y: f64, at: i64) {
        self.note(Note::Fix { patient: patient.to_owned(), venue: venue.to_owned(), level, x, y, at }, 0);
    }

    /// Binds a wristband to the patient's visit for today (durable before it returns).
    pub async fn bind(&self, tag: &str, patient: &str) -> Result<bool, TagError> {
        if !self.enabled() {
            return Err(TagError::Off);
        }
        if tag.starts_with(PHONE_TAG) {
            return Err(TagError::Reserved);
        }
        if tag.is_empty() || tag.len() > 64 || tag.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(BindError::BadTag.into());
        }
        let (store, t, p, day) = (self.store.clone(), tag.to_owned(), patient.to_owned(), self.today());
        let now = self.clock.now_ms();
        let bound = blocking(move || store.bind(&t, &p, &day, now)).await?;
        match bound {
            Bound::InUse { .. } => Err(TagError::InUse { tag: tag.to_owned() }),
            Bound::Ok { new } => {
                let _ = self.tx.send(Note::Bind { tag: tag.to_owned(), patient: patient.to_owned() }).await;
                Ok(new)
            }
        }
    }

    /// Unbinds a wristband from the visit; `false` when it was not bound to it.
    pub async fn unbind(&self, tag: &str, patient: &str) -> Result<bool, TagError> {
        let (store, t, p) = (self.store.clone(), tag.to_owned(), patient.to_owned());
        let gone = blocking(move || store.unbind(&t, &p)).await?;
        if gone {
            let _ = self.tx.send(Note::Unbind { tag: tag.to_owned() }).await;
        }
        Ok(gone)
    }

    /// Ends the visit: its tags are free and its positions forgotten. Returns the tags freed.
    pub async fn end_visit(&self, patient: &str) -> Result<Vec<String>, TagError> {
        let (store, p) = (self.store.clone(), patient.to_owned());
        let tags = blocking(move || store.end_visit(&p)).await?;
        if self.enabled() {
            let _ = self.tx.send(Note::EndVisit { patient: patient.to_owned() }).await;
        }
        Ok(tags)
    }

    /// The wristbands bound to the visit.
    pub async fn tags(&self, patient: &str) -> Result<Vec<String>, TagError> {
        let (store, p) = (self.store.clone(), patient.to_owned());
        blocking(move || store.tags_of(&p)).await
    }

    /// The visit's latest position and its trail (within the retention window).
    pub async fn location(&self, patient: &str) -> (Option<Located>, Vec<Located>) {
        if !self.enabled() {
            return (None, Vec::new());
        }
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Note::Where { patient: patient.to_owned(), reply }).await.is_err() {
            return (None, Vec::new());
        }
        rx.await.unwrap_or_default()
    }

    /// The visits holding a tag or a phone now.
    pub async fn visits(&self) -> Vec<String> {
        if !self.enabled() {
            return Vec::new();
        }
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Note::Visits { reply }).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    fn today(&self) -> String {
        self.day.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A new day: every visit of the old one is over.
    pub async fn new_day(&self, today: &str) -> Result<(), TagError> {
        *self.day.write().unwrap_or_else(|p| p.into_inner()) = today.to_owned();
        let (store, d) = (self.store.clone(), today.to_owned());
        blocking(move || store.load(&d)).await?;
        for v in self.visits().await {
            let _ = self.tx.send(Note::EndVisit { patient: v }).await;
        }
        Ok(())
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> rusqlite::Result<T> + Send + 'static) -> Result<T, TagError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "tag store");
            Err(TagError::Store(e.to_string()))
        }
        Err(e) => Err(TagError::Store(e.to_string())),
    }
}

fn venue_status(radios: &[(Arc<RadioMap>, Arc<VenueMap>)]) -> Vec<VenueStatus> {
    radios
        .iter()
        .map(|(r, m)| {
            let mut gateways: Vec<String> = r.anchor_ids.keys().cloned().collect();
            gateways.sort();
            VenueStatus { venue: m.id.clone(), gateways, states: r.space.len(), measured_states: r.measured_states }
        })
        .collect()
}

fn located(v: &Venue, patient: &str, e: &Estimate) -> Located {
    let m = &v.map;
    let level = m.levels.get(e.level as usize).map(|l| l.id.clone()).unwrap_or_default();
    let round = |f: f64, k: f64| (f * k).round() / k;
    Located {
        patient: patient.to_owned(),
        venue: m.id.clone(),
        level,
        x: round(e.x, 100.0),
        y: round(e.y, 100.0),
        lon: round(m.origin.0 + e.x / m.m_per_deg.0, 1e7),
        lat: round(m.origin.1 + e.y / m.m_per_deg.1, 1e7),
        spread_m: round(e.spread_m, 100.0),
        exact: e.exact,
        t: e.t_ms,
    }
}

/// The counters the pure core keeps, as last exported, per venue.
type Seen = Vec<(u64, [u64; 6])>;

fn export(venues: &[Venue], seen: &mut Seen, m: &DeskMetrics) {
    for (v, s) in venues.iter().zip(seen.iter_mut()) {
        let a = v.live.accepted();
        if a > s.0 {
            m.readings.with_label_values(&["accepted"]).inc_by(a - s.0);
            s.0 = a;
        }
        for (i, d) in Dropped::ALL.iter().enumerate() {
            let n = v.live.dropped(*d);
            if n > s.1[i] {
                m.readings.with_label_values(&[d.label()]).inc_by(n - s.1[i]);
                s.1[i] = n;
            }
        }
    }
    m.bound.set(venues.first().map_or(0, |v| v.live.bound_tags()) as i64);
}

async fn run(mut venues: Vec<Venue>, mut rx: mpsc::Receiver<Note>, out: broadcast::Sender<Arc<Located>>, m: Arc<DeskMetrics>, clock: Clock) {
    let by_gateway: HashMap<String, usize> = venues.iter().enumerate().flat_map(|(i, v)| v.live.radio().anchor_ids.keys().map(move |g| (g.clone(), i))).collect();
    let mut seen: Seen = vec![(0, [0; 6]); venues.len()];
    let mut last_push: HashMap<String, i64> = HashMap::new();
    let mut purge = tokio::time::interval(std::time::Duration::from_secs(60));
    purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let note = tokio::select! {
            n = rx.recv() => match n { Some(n) => n, None => return },
            _ = purge.tick() => {
                let now = clock.now_ms();
                for v in &mut venues { v.live.purge(now); }
                last_push.retain(|_, t| *t > now - 60_000);
                continue;
            }
        };
        let mut moved: Vec<(usize, Moved, bool)> = Vec::new();
        match note {
            Note::Report { gateway, payload, at } => match by_gateway.get(&gateway) {
                Some(&i) => moved.extend(venues[i].live.gateway_report(&gateway, &payload, at).into_iter().map(|mv| (i, mv, false))),
                None => {
                    // Not a gateway of any radio map: counted per reading when it can be read.
                    let n = match serde_json::from_slice::<crate::position::live::GatewayReport>(&payload) {
                        Ok(crate::position::live::GatewayReport::Many(v)) => (v.len() as u64, Dropped::UnknownGateway),
                        Ok(_) => (1, Dropped::UnknownGateway),
                        Err(_) => (1, Dropped::Malformed),
                    };
                    m.readings.with_label_values(&[n.1.label()]).inc_by(n.0.max(1));
                }
            },
            Note::Phone { ticket, patient, beacons, t, at } => {
                let tag = format!("{PHONE_TAG}{ticket}");
                // The phone's beacons name one venue's anchors; it is bound there on first use.
                let i = beacons.iter().find_map(|(b, _)| by_gateway.get(b).copied());
                match i {
                    Some(i) => {
                        if venues[i].live.visit_of(&tag).is_none() {
                            let _ = venues[i].live.bind(&tag, &patient);
                        }
                        if let Some(mv) = venues[i].live.phone_scan(&tag, &beacons, t, at) {
                            moved.push((i, mv, false));
                        }
                    }
                    None => m.readings.with_label_values(&[Dropped::UnknownGateway.label()]).inc_by((beacons.len() as u64).max(1)),
                }
            }
            Note::Fix { patient, venue, level, x, y, at } => {
                if let Some(i) = venues.iter().position(|v| v.map.id == venue) {
                    if let Some(mv) = venues[i].live.fix(&patient, level as u16, x, y, at) {
                        moved.push((i, mv, true));
                    }
                }
            }
            Note::Bind { tag, patient } => {
                for v in &mut venues {
                    let _ = v.live.bind(&tag, &patient);
                }
            }
            Note::Unbind { tag } => {
                for v in &mut venues {
                    v.live.unbind(&tag);
                }
            }
            Note::EndVisit { patient } => {
                for v in &mut venues {
                    v.live.end_visit(&patient);
                }
                last_push.remove(&patient);
            }
            Note::Where { patient, reply } => {
                let latest = venues.iter().filter_map(|v| v.live.location(&patient).map(|e| located(v, &patient, &e))).max_by_key(|l| l.t);
                let mut trail: Vec<Located> = venues.iter().flat_map(|v| v.live.trail(&patient).into_iter().map(|e| located(v, &patient, &e)).collect::<Vec<_>>()).collect();
                trail.sort_by_key(|l| l.t);
                let _ = reply.send((latest, trail));
            }
            Note::Remap { radios, done } => {
                // The same calibrations (so the same gateways), rebuilt against the new maps.
                for (radio, map) in radios {
                    if let Some(v) = venues.iter_mut().find(|v| v.map.id == map.id) {
                        v.live.remap(radio);
                        v.map = map;
                    }
                }
                tracing::info!(venues = venues.len(), "positioning follows the reloaded maps");
                let _ = done.send(());
            }
            Note::Visits { reply } => {
                let mut all: Vec<String> = venues.iter().flat_map(|v| v.live.visits().map(str::to_owned).collect::<Vec<_>>()).collect();
                all.sort();
                all.dedup();
                let _ = reply.send(all);
            }
        }
        export(&venues, &mut seen, &m);
        for (i, mv, exact) in moved {
            let last = last_push.get(&mv.visit).copied();
            if !exact && last.is_some_and(|t| mv.estimate.t_ms - t < PUSH_EVERY_MS && mv.estimate.t_ms >= t) {
                continue;
            }
            last_push.insert(mv.visit.clone(), mv.estimate.t_ms);
            let _ = out.send(Arc::new(located(&venues[i], &mv.visit, &mv.estimate)));
        }
    }
}

/// Which visits are over: a visit idle — its patient holding no open ticket and no active
/// order — for `idle_ms` on end. Pure: the sweeper feeds it what it sees and the time.
#[derive(Debug, Default)]
pub struct IdleVisits {
    /// Since when each visit has been idle.
    since: HashMap<String, i64>,
}

impl IdleVisits {
    /// One look at `visits` (each with whether it is busy) at `now`: the visits to end now.
    pub fn sweep(&mut self, now: i64, idle_ms: i64, visits: impl IntoIterator<Item = (String, bool)>) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        let mut over = Vec::new();
        for (v, busy) in visits {
            seen.insert(v.clone());
            if busy {
                self.since.remove(&v);
                continue;
            }
            let since = *self.since.entry(v.clone()).or_insert(now);
            if now - since >= idle_ms {
                self.since.remove(&v);
                over.push(v);
            }
        }
        self.since.retain(|v, _| seen.contains(v));
        over
    }

    /// A new day: every visit ended anyway.
    pub fn clear(&mut self) {
        self.since.clear();
    }
}

/// Ends visits that are over: the patient holds no open ticket and no active order for `idle`
/// (the wristband was not handed back at the exit), and every visit at the day's end — both on
/// `clock`.
pub fn spawn_visit_sweeper(desk: PositionDesk, floor: super::Floor, orders: Arc<crate::storage::orders::OrderStore>, idle: std::time::Duration, every: std::time::Duration, clock: Clock) {
    use crate::domain::queue::Status;
    if !desk.enabled() {
        return;
    }
    actix_rt::spawn(async move {
        let mut idle_visits = IdleVisits::default();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            let today = clock.today(&floor.hospital.tz).to_string();
            if today != desk.today() {
                tracing::info!(day = %today, "a new day: every visit's tags are free");
                let _ = desk.new_day(&today).await;
                idle_visits.clear();
                continue;
            }
            let visits = desk.visits().await;
            let active = {
                let o = orders.clone();
                tokio::task::spawn_blocking(move || o.patients_with_active()).await.ok().and_then(Result::ok).unwrap_or_default()
            };
            let mut seen = Vec::with_capacity(visits.len());
            for v in visits {
                let busy = match crate::domain::ids::PatientId::parse(&v) {
                    Err(_) => true,
                    Ok(p) => match floor.patient_tickets(&p).await {
                        Ok(ts) => ts.iter().any(|t| matches!(t.status, Status::Booked | Status::Waiting | Status::Called | Status::InService | Status::Missed)),
                        Err(_) => true,
                    },
                };
                seen.push((v.clone(), busy || active.contains(&v)));
            }
            for v in idle_visits.sweep(clock.now_ms(), idle.as_millis() as i64, seen) {
                match desk.end_visit(&v).await {
                    Ok(tags) => tracing::info!(patient = %v, tags = tags.len(), "visit over: tags unbound, positions forgotten"),
                    Err(e) => tracing::warn!(patient = %v, error = %e, "ending a visit"),
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::IdleVisits;

    #[test]
    fn a_visit_ends_after_being_idle_for_the_whole_idle_time() {
        let (t0, idle) = (1_796_608_800_000, 30 * 60_000);
        let mut v = IdleVisits::default();
        let look = |v: &mut IdleVisits, at: i64, busy: bool| v.sweep(at, idle, [("p1".to_owned(), busy), ("p2".to_owned(), true)]);
        assert!(look(&mut v, t0, false).is_empty(), "idle from now");
        assert!(look(&mut v, t0 + idle - 1, false).is_empty());
        // Busy again in between (a new ticket): the idle time starts over.
        assert!(look(&mut v, t0 + idle - 1, true).is_empty());
        assert!(look(&mut v, t0 + idle, false).is_empty());
        assert!(look(&mut v, t0 + 2 * idle - 1, false).is_empty());
        assert_eq!(look(&mut v, t0 + 2 * idle, false), ["p1"], "over once idle for the whole time");
        // A busy visit never ends; a visit no longer seen is forgotten.
        assert!(v.sweep(t0 + 10 * idle, idle, [("p2".to_owned(), true)]).is_empty());
        assert!(v.since.is_empty());
    }
}
