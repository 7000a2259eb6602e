//! `clinicflow simulate`: a seeded discrete-event outpatient morning on the demo hospital.
//!
//! Patients leave their consultation with orders (blood tests, ultrasound, ECG, X-ray, CT, a
//! payment, the return visit) and go through them either in the **fixed order** of the order
//! sheet (rules permitting) or as the **planner** says, re-planned at every stop from the live
//! queues. Both runs share everything else: arrivals, orders, every service time (common random
//! numbers), walking times from the router on the demo map, rooms and opening hours. Same seed,
//! same numbers.

use super::{plan, topological, Point, Problem, Rules, Stop, StopKind};
use crate::map::model::{Labels, VenueMap};
use crate::map::Profile;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

/// A service point of the scenario.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: Labels,
    /// Where it is on the map (a place reference).
    pub place: &'static str,
    pub rooms: usize,
    pub mean_service_s: f64,
    pub open_from_s: f64,
    pub open_until_s: f64,
    /// Mean minutes until the result is ready (0: in hand at once).
    pub result_delay_s: f64,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub services: Vec<Service>,
    /// Patients per hour from `start_s`, one entry per hour.
    pub arrivals_per_hour: Vec<f64>,
    pub start_s: f64,
    /// Where patients come from (their consultation).
    pub origin: &'static str,
    /// Share of slow walkers (elderly), routed with the slow profile.
    pub slow_share: f64,
    pub rules: Rules,
}

const CASHIER: usize = 0;
const LAB: usize = 1;
const ULTRASOUND: usize = 2;
const ECG: usize = 3;
const XRAY: usize = 4;
const CT: usize = 5;
const DOCTOR: usize = 6;

fn h(hour: f64) -> f64 {
    hour * 3600.0
}

fn l(zh: &str, en: &str) -> Labels {
    Labels { zh: zh.into(), en: en.into() }
}

impl Scenario {
    /// The same morning with no queueing at all (rooms without limit): the floor under any
    /// ordering, what walking, services and waiting for results alone take.
    pub fn unlimited_rooms(mut self) -> Scenario {
        for s in &mut self.services {
            s.rooms = 1_000;
        }
        self
    }

    /// The same morning with `factor` times the patients.
    pub fn with_load(mut self, factor: f64) -> Scenario {
        for r in &mut self.arrivals_per_hour {
            *r *= factor;
        }
        self
    }

    /// The default morning: 7:30–11:30, a peak at 8–9, the demo hospital's rooms.
    pub fn default_morning() -> Scenario {
        let svc = |name, place, rooms, mean_min: f64, from, until, result_min: f64| Service {
            name,
            place,
            rooms,
            mean_service_s: mean_min * 60.0,
            open_from_s: h(from),
            open_until_s: h(until),
            result_delay_s: result_min * 60.0,
        };
        Scenario {
            services: vec![
                svc(l("收费处", "Cashier"), "place:cashier-a", 3, 1.5, 7.5, 17.0, 0.0),
                // Blood results take about 40 minutes in the lab; imaging reports 30.
                svc(l("检验科", "Laboratory"), "department:lab", 3, 3.0, 7.5, 12.0, 40.0),
                svc(l("超声科", "Ultrasound"), "department:ultrasound", 2, 7.0, 8.0, 17.0, 0.0),
                svc(l("心电图室", "ECG"), "department:ecg", 1, 3.0, 8.0, 17.0, 0.0),
                svc(l("X 光室", "X-ray"), "room:xr-1", 1, 3.5, 8.0, 17.0, 30.0),
                svc(l("CT 室", "CT"), "room:ct-1", 1, 6.0, 8.5, 17.0, 30.0),
                svc(l("内科诊室", "Internal Medicine"), "department:internal-medicine", 3, 4.0, 7.5, 17.0, 0.0),
            ],
            arrivals_per_hour: vec![40.0, 80.0, 60.0, 40.0],
            start_s: h(7.5),
            origin: "department:internal-medicine",
            slow_share: 0.3,
            rules: Rules::default(),
        }
    }
}

/// A patient of the run: when they come and what they hold.
#[derive(Debug, Clone)]
struct Patient {
    arrive_s: f64,
    slow: bool,
    /// In order-sheet order.
    stops: Vec<Stop>,
    /// Service time per stop, drawn once for both runs.
    service_s: Vec<f64>,
    /// Result delay per stop, drawn once for both runs.
    result_s: Vec<f64>,
}

fn lognormal(rng: &mut StdRng, mean: f64, cv: f64) -> f64 {
    let sigma2 = (1.0 + cv * cv).ln();
    let mu = mean.ln() - sigma2 / 2.0;
    // Box–Muller.
    let (u1, u2): (f64, f64) = (rng.gen::<f64>().max(1e-12), rng.gen());
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    (mu + sigma2.sqrt() * z).exp()
}

fn patients(sc: &Scenario, seed: u64) -> Vec<Patient> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for (hour, &rate) in sc.arrivals_per_hour.iter().enumerate() {
        // Poisson arrivals within the hour.
        let mut t = sc.start_s + h(hour as f64);
        let end = t + 3600.0;
        loop {
            t += -(1.0 - rng.gen::<f64>()).ln() / rate * 3600.0;
            if t >= end {
                break;
            }
            let mut stops = Vec::new();
            let exam = |point: usize, fasting: bool, after_meal: bool, id: &str| Stop {
                id: id.into(),
                kind: StopKind::Exam,
                point,
                fasting,
                after_meal,
                needs_payment: true,
                result_delay_s: sc.services[point].result_delay_s,
            };
            // The order sheet lists payment, then tests by department, then the return visit.
            let lab = rng.gen_bool(0.7);
            let lab_fasting = rng.gen_bool(0.5);
            let us = rng.gen_bool(0.3);
            let us_fasting = rng.gen_bool(0.5);
            let (ecg, xray, ct) = (rng.gen_bool(0.3), rng.gen_bool(0.25), rng.gen_bool(0.12));
            let postprandial = rng.gen_bool(0.05);
            let ret = rng.gen_bool(0.85);
            stops.push(Stop { id: "pay".into(), kind: StopKind::Payment, point: CASHIER, fasting: false, after_meal: false, needs_payment: false, result_delay_s: 0.0 });
            if lab {
                stops.push(exam(LAB, lab_fasting, false, "lab"));
            }
            if us {
                stops.push(exam(ULTRASOUND, us_fasting, false, "ultrasound"));
            }
            if ecg {
                stops.push(exam(ECG, false, false, "ecg"));
            }
            if xray {
                stops.push(exam(XRAY, false, false, "xray"));
            }
            if ct {
                stops.push(exam(CT, false, false, "ct"));
            }
            if postprandial {
                stops.push(exam(LAB, false, true, "lab-2h-glucose"));
            }
            if stops.len() == 1 {
                stops.push(exam(LAB, false, false, "lab"));
            }
            // The order sheet lists the exams in the order the doctor entered them.
            for i in (2..stops.len()).rev() {
                let j = 1 + rng.gen_range(0..i);
                stops.swap(i, j);
            }
            if ret {
                stops.push(Stop { id: "return".into(), kind: StopKind::Return, point: DOCTOR, fasting: false, after_meal: false, needs_payment: false, result_delay_s: 0.0 });
            }
            let service_s = stops.iter().map(|s| lognormal(&mut rng, sc.services[s.point].mean_service_s, 0.5)).collect();
            let result_s = stops.iter().map(|s| if s.result_delay_s > 0.0 { lognormal(&mut rng, s.result_delay_s, 0.3) } else { 0.0 }).collect();
            let slow = rng.gen_bool(sc.slow_share);
            out.push(Patient { arrive_s: t, slow, stops, service_s, result_s });
        }
    }
    out
}

/// Walking seconds between the scenario's places on the map, per profile: `[profile][from][to]`,
/// with the origin as the last row.
fn walking(map: &VenueMap, sc: &Scenario) -> Result<[Vec<Vec<f64>>; 2], String> {
    let mut places: Vec<&str> = sc.services.iter().map(|s| s.place).collect();
    places.push(sc.origin);
    let ends: Vec<_> = places.iter().map(|p| map.resolve(p).ok_or_else(|| format!("the map has no place {p}"))).collect::<Result<_, _>>()?;
    let mut out = [Vec::new(), Vec::new()];
    for (k, profile) in [Profile::Default, Profile::Slow].into_iter().enumerate() {
        out[k] = ends
            .iter()
            .map(|a| ends.iter().map(|b| map.route(a, b, profile).map(|r| r.seconds).unwrap_or(f64::INFINITY)).collect())
            .collect();
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Paper: the order sheet's order (moved only where the rules require); a number is taken
    /// at each desk on arrival.
    Fixed,
    /// The planner picks the next stop from the live queues and clinicflow issues that one
    /// ticket when the patient accepts (they hold their place while they walk).
    PlannerOneTicket,
    /// clinicflow as deployed: a ticket in every queue the rules allow at once (after payment,
    /// every exam; the return visit once the exams are done and the results are at most
    /// [`super::RETURN_LEAD_S`] away, as the server does); the planner sends the patient
    /// wherever their turn comes first, re-planned at every stop. A room calls the first ticket
    /// whose patient is there; an absent patient keeps their place.
    Planner,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub policy: Policy,
    pub patients: usize,
    /// Arrival (end of consultation) to the last stop done, minutes per patient.
    pub time_in_hospital_min: Vec<f64>,
    /// Time standing in queues (and waiting for a service to open), minutes per patient.
    pub waiting_min: Vec<f64>,
    /// Busy share of each service's rooms between its opening and the last patient served.
    pub utilisation: Vec<(String, f64)>,
    /// Mean minutes per patient standing in each service's queue.
    pub wait_by_service_min: Vec<(String, f64)>,
    pub mean_min: f64,
    pub p90_min: f64,
    pub mean_wait_min: f64,
    pub p90_wait_min: f64,
    pub late_stops: usize,
}

#[derive(Clone, Copy, PartialEq)]
struct Ev {
    t: f64,
    seq: u64,
    kind: EvKind,
}
#[derive(Clone, Copy, PartialEq)]
enum EvKind {
    /// Patient arrives at the queue of their current stop.
    Arrive { patient: usize },
    /// A room of `service` finishes its patient.
    Done { service: usize, patient: usize },
    /// A service opens.
    Open { service: usize },
    /// Patient finishes the consultation and starts.
    Start { patient: usize },
}
impl Eq for Ev {}
impl Ord for Ev {
    fn cmp(&self, o: &Self) -> Ordering {
        o.t.total_cmp(&self.t).then(o.seq.cmp(&self.seq))
    }
}
impl PartialOrd for Ev {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

struct Run<'a> {
    sc: &'a Scenario,
    pts: &'a [Patient],
    walk: &'a [Vec<Vec<f64>>; 2],
    policy: Policy,
    heap: BinaryHeap<Ev>,
    seq: u64,
    /// Tickets in each service's queue: (patient, stop), in the order they were issued.
    queue: Vec<VecDeque<(usize, usize)>>,
    busy: Vec<usize>,
    busy_s: Vec<f64>,
    last_done: Vec<f64>,
    /// Per patient: stops left (indices into their stops), those with a ticket, the current
    /// stop, where they are.
    left: Vec<Vec<usize>>,
    ticketed: Vec<Vec<usize>>,
    current: Vec<Option<usize>>,
    at: Vec<usize>,
    waited: Vec<f64>,
    waited_at: Vec<f64>,
    /// When the patient reached the room of their current stop (None: still walking).
    arrived: Vec<Option<f64>>,
    finished: Vec<f64>,
    /// When all results of the patient's stops done so far are ready.
    results: Vec<f64>,
    late: usize,
}

impl Run<'_> {
    fn push(&mut self, t: f64, kind: EvKind) {
        self.seq += 1;
        self.heap.push(Ev { t, seq: self.seq, kind });
    }

    fn open(&self, s: usize, t: f64) -> bool {
        t >= self.sc.services[s].open_from_s
    }

    /// The live estimate a patient would be told: the people ahead of them over the rooms,
    /// times the mean service, plus any wait for the service to open.
    fn expected_wait(&self, s: usize, t: f64) -> f64 {
        let svc = &self.sc.services[s];
        let ahead = (self.queue[s].len() + self.busy[s] + 1).saturating_sub(svc.rooms);
        (svc.open_from_s - t).max(0.0) + ahead as f64 / svc.rooms as f64 * svc.mean_service_s
    }

    /// Tickets ahead of the patient's ticket for `stop` at `s`, as a predicted call time.
    fn predicted_call(&self, s: usize, p: usize, stop: usize, t: f64) -> f64 {
        let svc = &self.sc.services[s];
        let pos = self.queue[s].iter().position(|&e| e == (p, stop)).unwrap_or(self.queue[s].len());
        let ahead = (pos + self.busy[s] + 1).saturating_sub(svc.rooms);
        t.max(svc.open_from_s) + ahead as f64 / svc.rooms as f64 * svc.mean_service_s
    }

    /// Pick the patient's next stop and send them walking.
    fn next(&mut self, p: usize, t: f64) {
        if self.left[p].is_empty() {
            self.finished[p] = t;
            return;
        }
        let pt = &self.pts[p];
        let prof = usize::from(pt.slow);
        let ns = self.sc.services.len();
        let rules = self.sc.rules;
        if self.policy == Policy::Planner {
            // A ticket in every queue the rules allow now.
            let left = self.left[p].clone();
            let stops: Vec<Stop> = left.iter().map(|&i| pt.stops[i].clone()).collect();
            for (&j, ready) in left.iter().zip(super::allowed_now(&stops, rules)) {
                // The return visit is taken only shortly before the results are in (as the
                // server does), not while they are far off.
                let pending = pt.stops[j].kind == StopKind::Return && self.results[p] > t + super::RETURN_LEAD_S;
                if ready && !pending && !self.ticketed[p].contains(&j) {
                    self.ticketed[p].push(j);
                    self.queue[pt.stops[j].point].push_back((p, j));
                }
            }
        }
        let stops: Vec<Stop> = self.left[p].iter().map(|&i| pt.stops[i].clone()).collect();
        let mut points = self.points(t);
        let here: Vec<f64> = (0..ns).map(|s| self.walk[prof][self.at[p]][s]).collect();
        let walk: Vec<Vec<f64>> = (0..ns).map(|a| self.walk[prof][a][..ns].to_vec()).collect();
        // Held tickets: the stop can start when the ticket is called, not after a fresh wait.
        let mut ready_at = vec![None; stops.len()];
        for (k, &j) in self.left[p].iter().enumerate() {
            if self.ticketed[p].contains(&j) {
                ready_at[k] = Some(self.predicted_call(pt.stops[j].point, p, j, t));
            }
        }
        let pick = match self.policy {
            Policy::Fixed => topological(&Problem { now_s: t, stops: &stops, points: &points, walk_from_here: &here, walk: &walk, rules, ready_at: &ready_at, results_ready_s: self.results[p] })[0],
            Policy::PlannerOneTicket | Policy::Planner => {
                for pnt in points.iter_mut() {
                    pnt.wait_s = pnt.wait_s.max(0.0);
                }
                plan(&Problem { now_s: t, stops: &stops, points: &points, walk_from_here: &here, walk: &walk, rules, ready_at: &ready_at, results_ready_s: self.results[p] }).map(|pl| pl.order[0]).unwrap_or(0)
            }
        };
        let choice = self.left[p][pick];
        self.left[p].retain(|&i| i != choice);
        self.current[p] = Some(choice);
        let s = pt.stops[choice].point;
        let mut walk = self.walk[prof][self.at[p]][s];
        if pt.stops[choice].kind == StopKind::Return {
            // Back to the doctor only with every result in hand.
            walk = walk.max(self.results[p] - t);
        }
        self.at[p] = s;
        self.arrived[p] = None;
        if self.policy == Policy::PlannerOneTicket && !(pt.stops[choice].kind == StopKind::Return && self.results[p] > t + super::RETURN_LEAD_S) {
            // The ticket is issued when the patient accepts: they hold their place while walking.
            self.queue[s].push_back((p, choice));
        }
        self.push(t + walk, EvKind::Arrive { patient: p });
    }

    fn points(&self, t: f64) -> Vec<Point> {
        self.sc
            .services
            .iter()
            .enumerate()
            .map(|(s, svc)| Point { name: svc.name.clone(), wait_s: self.expected_wait(s, t), service_s: svc.mean_service_s, open_from_s: svc.open_from_s, open_until_s: svc.open_until_s })
            .collect()
    }

    fn start_service(&mut self, s: usize, t: f64) {
        while self.open(s, t) && self.busy[s] < self.sc.services[s].rooms {
            // The room calls the first ticket whose patient is there for it.
            let Some(i) = self.queue[s].iter().position(|&(p, j)| self.current[p] == Some(j) && self.arrived[p].is_some()) else { break };
            let (p, _) = self.queue[s].remove(i).expect("found");
            self.waited[p] += t - self.arrived[p].expect("present");
            self.waited_at[s] += t - self.arrived[p].expect("present");
            let stop = self.current[p].expect("a queued patient has a stop");
            if t > self.sc.services[s].open_until_s {
                self.late += 1;
            }
            let d = self.pts[p].service_s[stop];
            self.busy[s] += 1;
            self.busy_s[s] += d;
            self.push(t + d, EvKind::Done { service: s, patient: p });
        }
    }
}

/// One morning under one policy.
pub fn run(map: &VenueMap, sc: &Scenario, seed: u64, policy: Policy) -> Result<Outcome, String> {
    let walk = walking(map, sc)?;
    let pts = patients(sc, seed);
    Ok(run_with(sc, &pts, &walk, policy))
}

fn run_with(sc: &Scenario, pts: &[Patient], walk: &[Vec<Vec<f64>>; 2], policy: Policy) -> Outcome {
    let n = pts.len();
    let ns = sc.services.len();
    let mut r = Run {
        sc,
        pts,
        walk,
        policy,
        heap: BinaryHeap::new(),
        seq: 0,
        queue: vec![VecDeque::new(); ns],
        busy: vec![0; ns],
        busy_s: vec![0.0; ns],
        last_done: vec![0.0; ns],
        left: pts.iter().map(|p| (0..p.stops.len()).collect()).collect(),
        ticketed: vec![Vec::new(); n],
        current: vec![None; n],
        at: vec![ns; n],
        waited: vec![0.0; n],
        waited_at: vec![0.0; ns],
        arrived: vec![None; n],
        finished: vec![f64::NAN; n],
        results: vec![0.0; n],
        late: 0,
    };
    for (p, pt) in pts.iter().enumerate() {
        r.push(pt.arrive_s, EvKind::Start { patient: p });
    }
    for (s, svc) in sc.services.iter().enumerate() {
        r.push(svc.open_from_s, EvKind::Open { service: s });
    }
    while let Some(ev) = r.heap.pop() {
        match ev.kind {
            EvKind::Start { patient } => r.next(patient, ev.t),
            EvKind::Arrive { patient } => {
                let s = pts[patient].stops[r.current[patient].expect("walking to a stop")].point;
                r.arrived[patient] = Some(ev.t);
                let stop = r.current[patient].expect("walking to a stop");
                if !r.queue[s].contains(&(patient, stop)) {
                    // On paper, and for a return visit taken once the results are in: the
                    // patient takes a number at the desk.
                    r.queue[s].push_back((patient, stop));
                }
                r.start_service(s, ev.t);
            }
            EvKind::Open { service } => r.start_service(service, ev.t),
            EvKind::Done { service, patient } => {
                let stop = r.current[patient].expect("served for a stop");
                r.results[patient] = r.results[patient].max(ev.t + pts[patient].result_s[stop]);
                r.busy[service] -= 1;
                r.last_done[service] = ev.t;
                r.current[patient] = None;
                r.start_service(service, ev.t);
                r.next(patient, ev.t);
            }
        }
    }
    let tih: Vec<f64> = (0..n).map(|p| (r.finished[p] - pts[p].arrive_s) / 60.0).collect();
    let waits: Vec<f64> = r.waited.iter().map(|w| w / 60.0).collect();
    let utilisation = sc
        .services
        .iter()
        .enumerate()
        .map(|(s, svc)| {
            let span = (r.last_done[s] - svc.open_from_s).max(1.0) * svc.rooms as f64;
            (svc.name.en.clone(), (r.busy_s[s] / span).min(1.0))
        })
        .collect();
    let stats = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        let mean = s.iter().sum::<f64>() / s.len().max(1) as f64;
        let p90 = s.get(((s.len() as f64 * 0.9).ceil() as usize).saturating_sub(1)).copied().unwrap_or(f64::NAN);
        (mean, p90)
    };
    let wait_by_service_min = sc.services.iter().zip(&r.waited_at).map(|(svc, w)| (svc.name.en.clone(), w / 60.0 / n.max(1) as f64)).collect();
    let (mean_min, p90_min) = stats(&tih);
    let (mean_wait_min, p90_wait_min) = stats(&waits);
    Outcome { policy, patients: n, time_in_hospital_min: tih, waiting_min: waits, utilisation, wait_by_service_min, mean_min, p90_min, mean_wait_min, p90_wait_min, late_stops: r.late }
}

/// Every policy on the same morning: fixed, planner with one ticket, planner.
pub fn compare(map: &VenueMap, sc: &Scenario, seed: u64) -> Result<[Outcome; 3], String> {
    let walk = walking(map, sc)?;
    let pts = patients(sc, seed);
    Ok([Policy::Fixed, Policy::PlannerOneTicket, Policy::Planner].map(|policy| run_with(sc, &pts, &walk, policy)))
}
