//! The next-stop planner. Pure: time and queue estimates come in, a plan comes out.
//!
//! A patient holds stops (exams, a payment, the return visit to the doctor, 回诊). The planner
//! orders them to minimise the expected time to finish them all — walking time from the router,
//! each queue's expected wait, each service's time, opening hours — under the hospital's rules
//! (payment before paid services, fasting tests before those that need breakfast, the return
//! visit last), and says in one line why the first stop comes first.
//!
//! - [`plan`]: exact dynamic programming over subsets (stops ≤ [`MAX_STOPS`]).
//! - [`sim`]: `clinicflow simulate`, a seeded discrete-event outpatient morning comparing the
//!   order sheet's fixed order with the planner.
//! - [`report`]: the simulation's SVG/HTML report.

pub mod report;
pub mod orders;
pub mod sim;

use crate::map::model::Labels;
use serde::Serialize;

/// More stops than this are planned in the order given (2^n·n² work).
pub const MAX_STOPS: usize = 12;

/// The return visit (回诊) is taken (its ticket held) no earlier than this before the results
/// are expected, seconds: time to walk back to the doctor, while a return goes in a few patients
/// ahead — held earlier, it would be called before the patient has the results.
pub const RETURN_LEAD_S: f64 = 600.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopKind {
    Exam,
    Payment,
    /// 回诊: back to the ordering doctor with the results.
    Return,
}

/// One thing the patient must do.
#[derive(Debug, Clone, Serialize)]
pub struct Stop {
    pub id: String,
    pub kind: StopKind,
    /// Index into [`Problem::points`].
    pub point: usize,
    /// Must be done fasting (before breakfast-dependent stops).
    pub fasting: bool,
    /// Needs the patient to have eaten (after every fasting stop).
    pub after_meal: bool,
    /// Must be paid for first (when the hospital requires payment before service).
    pub needs_payment: bool,
    /// Seconds after the stop until its result is ready (a blood test's lab time, a CT report);
    /// the return visit waits for every result.
    pub result_delay_s: f64,
}

/// A service point (a queue and its rooms) as the planner sees it now.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub name: Labels,
    /// Expected wait if the patient joined now (live queue ETA), seconds.
    pub wait_s: f64,
    /// Expected service time, seconds.
    pub service_s: f64,
    /// Opening hours in seconds since local midnight.
    pub open_from_s: f64,
    pub open_until_s: f64,
}

/// The hospital's rules.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rules {
    pub payment_first: bool,
    pub fasting_first: bool,
    pub return_last: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules { payment_first: true, fasting_first: true, return_last: true }
    }
}

pub struct Problem<'a> {
    /// Seconds since local midnight.
    pub now_s: f64,
    pub stops: &'a [Stop],
    pub points: &'a [Point],
    /// Walking seconds from where the patient is to each point.
    pub walk_from_here: &'a [f64],
    /// Walking seconds between points: `walk[a][b]`.
    pub walk: &'a [Vec<f64>],
    pub rules: Rules,
    /// Per stop: when the patient already holds a ticket there, the predicted time it is
    /// called (seconds since midnight); the stop starts then (or on arrival, if later) instead
    /// of after a fresh wait. Empty or `None`: no ticket yet.
    pub ready_at: &'a [Option<f64>],
    /// When the results of stops already done are ready (seconds since midnight; 0: none).
    pub results_ready_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Indices into the problem's stops, in the order to do them.
    pub order: Vec<usize>,
    /// Expected time all are done (seconds since midnight).
    pub finish_s: f64,
    /// Stops that would be reached after their service closes.
    pub late: Vec<usize>,
    pub reason: Reason,
}

/// Why the first stop comes first, in both languages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    pub zh: String,
    pub en: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum PlanError {
    NothingToDo,
    /// The rules cannot all hold (e.g. a stop both fasting and after a meal).
    Contradiction(String),
    BadPoint(usize),
}

/// Penalty for reaching a stop after it closes: a plan that avoids it always wins.
const LATE_PENALTY_S: f64 = 24.0 * 3600.0;

impl Rules {
    /// Whether stop `o` must be done before stop `s`.
    pub fn must_precede(&self, o: &Stop, s: &Stop) -> bool {
        (self.payment_first && o.kind == StopKind::Payment && s.needs_payment)
            || (self.fasting_first && o.fasting && s.after_meal)
            || (self.return_last && s.kind == StopKind::Return && o.kind != StopKind::Return)
    }
}

impl Problem<'_> {
    /// Stops that must come before stop `j`, as a bit mask (the first [`MAX_STOPS`]).
    pub fn prerequisites(&self, j: usize) -> u32 {
        let s = &self.stops[j];
        self.stops.iter().enumerate().take(MAX_STOPS).filter(|&(i, o)| i != j && self.rules.must_precede(o, s)).fold(0, |m, (i, _)| m | 1 << i)
    }

    /// Arrive, wait for opening (and, for the return visit, for the results) and for the queue,
    /// be served: the time the stop is done, and whether it was reached too late.
    fn visit(&self, t: f64, from: Option<usize>, j: usize, results: f64) -> (f64, bool) {
        let p = &self.points[self.stops[j].point];
        let walk = match from {
            None => self.walk_from_here[self.stops[j].point],
            Some(i) => self.walk[self.stops[i].point][self.stops[j].point],
        };
        let mut arrive = t + walk;
        if self.stops[j].kind == StopKind::Return {
            arrive = arrive.max(results);
        }
        let start = match self.ready_at.get(j).copied().flatten() {
            Some(called) => arrive.max(p.open_from_s).max(called),
            None => arrive.max(p.open_from_s) + p.wait_s,
        };
        (start + p.service_s, start > p.open_until_s)
    }

    fn check(&self) -> Result<(), PlanError> {
        if self.stops.is_empty() {
            return Err(PlanError::NothingToDo);
        }
        for (i, s) in self.stops.iter().enumerate() {
            if s.point >= self.points.len() || s.point >= self.walk_from_here.len() || self.walk.len() < self.points.len() {
                return Err(PlanError::BadPoint(i));
            }
            if s.fasting && s.after_meal {
                return Err(PlanError::Contradiction(format!("stop {} is both fasting and after a meal", s.id)));
            }
        }
        // A cycle in the prerequisites (e.g. a fasting return visit with exams after meals).
        match rule_order(self) {
            Some(_) => Ok(()),
            None => Err(PlanError::Contradiction("the rules leave no order that satisfies them all".into())),
        }
    }
}

/// The best order of the stops.
pub fn plan(p: &Problem) -> Result<Plan, PlanError> {
    p.check()?;
    let n = p.stops.len();
    if n > MAX_STOPS {
        // Too many to search: the given order, rules permitting (a topological order).
        let order = topological(p);
        let (finish, late) = simulate_order(p, &order);
        return Ok(Plan { reason: reason(p, &order), order, finish_s: finish, late });
    }
    let (_, order) = search(p, None).expect("check() found an order that keeps the rules");
    let (finish, late) = simulate_order(p, &order);
    Ok(Plan { reason: reason(p, &order), order, finish_s: finish, late })
}

/// A partial plan at a (stops done, last stop) state: its cost, clock, results time and where
/// it came from. Several are kept per state when none is better in all three.
#[derive(Clone, Copy)]
struct Label {
    cost: f64,
    t: f64,
    results: f64,
    parent: Option<(u8, u16)>,
}

impl Label {
    fn dominates(&self, o: &Label) -> bool {
        self.cost <= o.cost && self.t <= o.t && self.results <= o.results
    }
}

/// The result time after doing stop `j`, done at `t`.
fn results_after(p: &Problem, results: f64, j: usize, t: f64) -> f64 {
    let s = &p.stops[j];
    if s.result_delay_s > 0.0 {
        results.max(t + s.result_delay_s)
    } else {
        results
    }
}

/// The cheapest order (cost with late penalties), optionally forcing the first stop. Exact:
/// a dynamic programme over (stops done, last stop) keeping every label no other beats in cost,
/// clock and results time.
fn search(p: &Problem, first: Option<usize>) -> Option<(f64, Vec<usize>)> {
    let n = p.stops.len();
    let pre: Vec<u32> = (0..n).map(|j| p.prerequisites(j)).collect();
    let full = (1u32 << n) - 1;
    let mut labels: Vec<Vec<Label>> = vec![Vec::new(); (1usize << n) * n];
    let insert = |set: &mut Vec<Label>, l: Label| {
        if set.iter().any(|o| o.dominates(&l)) {
            return;
        }
        set.retain(|o| !l.dominates(o));
        set.push(l);
    };
    for j in 0..n {
        if pre[j] == 0 && first.is_none_or(|f| f == j) {
            let (t, late) = p.visit(p.now_s, None, j, p.results_ready_s);
            let l = Label { cost: t + if late { LATE_PENALTY_S } else { 0.0 }, t, results: results_after(p, p.results_ready_s, j, t), parent: None };
            insert(&mut labels[(1 << j) * n + j], l);
        }
    }
    for mask in 1..=full {
        for last in 0..n {
            let here = std::mem::take(&mut labels[mask as usize * n + last]);
            for (k, l) in here.iter().enumerate() {
                for j in 0..n {
                    if mask & (1 << j) != 0 || pre[j] & !mask != 0 {
                        continue;
                    }
                    let (tj, late) = p.visit(l.t, Some(last), j, l.results);
                    let next = Label {
                        cost: l.cost - l.t + tj + if late { LATE_PENALTY_S } else { 0.0 },
                        t: tj,
                        results: results_after(p, l.results, j, tj),
                        parent: Some((last as u8, k as u16)),
                    };
                    insert(&mut labels[(mask | 1 << j) as usize * n + j], next);
                }
            }
            labels[mask as usize * n + last] = here;
        }
    }
    let (mut last, mut k) = (0..n)
        .flat_map(|j| labels[full as usize * n + j].iter().enumerate().map(move |(k, l)| (j, k, l.cost)))
        .min_by(|a, b| a.2.total_cmp(&b.2))
        .map(|(j, k, _)| (j, k))?;
    let cost = labels[full as usize * n + last][k].cost;
    let mut order = Vec::with_capacity(n);
    let mut mask = full;
    loop {
        order.push(last);
        let parent = labels[mask as usize * n + last][k].parent;
        mask &= !(1 << last);
        match parent {
            Some((pl, pk)) => {
                last = pl as usize;
                k = pk as usize;
            }
            None => break,
        }
    }
    order.reverse();
    Some((cost, order))
}

/// Walks `order` from now: its finish time and the stops reached after closing.
pub fn simulate_order(p: &Problem, order: &[usize]) -> (f64, Vec<usize>) {
    let (mut t, mut from, mut late, mut results) = (p.now_s, None, Vec::new(), p.results_ready_s);
    for &j in order {
        let (tj, l) = p.visit(t, from, j, results);
        if l {
            late.push(j);
        }
        results = results_after(p, results, j, tj);
        t = tj;
        from = Some(j);
    }
    (t, late)
}

/// The stops in the given order, moved only as far as the rules require.
pub fn topological(p: &Problem) -> Vec<usize> {
    // `None` only with contradictory rules, which `check` refuses: then the order as given.
    rule_order(p).unwrap_or_else(|| (0..p.stops.len()).collect())
}

/// Which of `stops` the rules allow now (no other of them must come first): a patient may hold
/// a ticket in each of their queues at once.
pub fn allowed_now(stops: &[Stop], rules: Rules) -> Vec<bool> {
    (0..stops.len()).map(|j| (0..stops.len()).all(|i| i == j || !rules.must_precede(&stops[i], &stops[j]))).collect()
}

/// The earliest-listed stop the rules allow, repeatedly; `None` when the rules form a cycle.
fn rule_order(p: &Problem) -> Option<Vec<usize>> {
    let n = p.stops.len();
    let mut done = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        let j = (0..n).find(|&j| !done[j] && (0..n).all(|i| i == j || done[i] || !p.rules.must_precede(&p.stops[i], &p.stops[j])))?;
        done[j] = true;
        order.push(j);
    }
    Some(order)
}

/// Seconds since midnight as `HH:MM`.
fn hm(s: f64) -> String {
    format!("{:02}:{:02}", (s / 3600.0) as u32 % 24, (s % 3600.0 / 60.0) as u32)
}

fn minutes(s: f64) -> i64 {
    (s / 60.0).round() as i64
}

/// Why the first stop comes first.
fn reason(p: &Problem, order: &[usize]) -> Reason {
    let first = order[0];
    let f = &p.stops[first];
    let fp = &p.points[f.point];
    let free: Vec<usize> = (0..p.stops.len()).filter(|&j| p.prerequisites(j) == 0).collect();
    if free.len() == 1 {
        return match f.kind {
            StopKind::Payment => Reason { zh: format!("先到{}缴费：检查需要先付款", fp.name.zh), en: format!("pay at the {} first: the tests must be paid before they are done", fp.name.en) },
            StopKind::Return if p.results_ready_s > p.now_s + p.walk_from_here[f.point] => {
                let at = hm(p.results_ready_s);
                Reason { zh: format!("检查都已完成，结果预计 {at} 出来：届时回{}复诊", fp.name.zh), en: format!("all tests are done and the results are expected at {at}: back to {} then", fp.name.en) }
            }
            StopKind::Return => Reason { zh: format!("检查都已完成：回{}复诊", fp.name.zh), en: format!("all tests are done: back to {} with the results", fp.name.en) },
            StopKind::Exam if f.fasting => Reason { zh: format!("空腹项目先做：先去{}", fp.name.zh), en: format!("fasting tests come first: go to {} now", fp.name.en) },
            StopKind::Exam => Reason { zh: format!("下一站：{}", fp.name.zh), en: format!("next: {}", fp.name.en) },
        };
    }
    let (finish, late) = simulate_order(p, order);
    if late.contains(&first) {
        return Reason {
            zh: format!("{}今天已停止服务，请咨询服务台", fp.name.zh),
            en: format!("{} is closed for today; please ask at the information desk", fp.name.en),
        };
    }
    if fp.open_from_s > p.now_s + 60.0 {
        return Reason { zh: format!("{}{}开始服务，先去排队", fp.name.zh, hm(fp.open_from_s)), en: format!("{} opens at {}: be first in line", fp.name.en, hm(fp.open_from_s)) };
    }
    // The alternative with the longest queue, against the chosen one.
    // The wait the patient faces there: their held ticket's call, or a fresh ticket's wait.
    let wait = |j: usize| p.ready_at.get(j).copied().flatten().map(|r| (r - p.now_s).max(0.0)).unwrap_or(p.points[p.stops[j].point].wait_s);
    let alt = free.iter().copied().filter(|&j| j != first && p.stops[j].point != f.point).max_by(|&a, &b| wait(a).total_cmp(&wait(b)));
    if let Some(a) = alt.filter(|&a| wait(a) >= wait(first) + 60.0) {
        let ap = &p.points[p.stops[a].point];
        let (wa, wf) = (minutes(wait(a)), minutes(wait(first)));
        return Reason {
            zh: format!("{}排队约 {wa} 分钟，{}约 {wf} 分钟：先去{}", ap.name.zh, fp.name.zh, fp.name.zh),
            en: format!("{} has {wa} minutes of queue, {} {wf}: go to {} first", ap.name.en, fp.name.en, fp.name.en),
        };
    }
    // Otherwise: what starting elsewhere would cost.
    let runner_up = if p.stops.len() <= MAX_STOPS {
        free.iter().copied().filter(|&j| p.stops[j].point != f.point).filter_map(|j| search(p, Some(j)).map(|(c, o)| (j, c, o))).min_by(|a, b| a.1.total_cmp(&b.1))
    } else {
        None
    };
    match runner_up {
        Some((j, _, o)) => {
            let extra = minutes(simulate_order(p, &o).0 - finish).max(1);
            let jp = &p.points[p.stops[j].point];
            Reason {
                zh: format!("先去{}最快：先去{}会晚约 {extra} 分钟完成", fp.name.zh, jp.name.zh),
                en: format!("{} first finishes soonest: starting at {} would take about {extra} minutes longer", fp.name.en, jp.name.en),
            }
        }
        None => Reason { zh: format!("下一站：{}", fp.name.zh), en: format!("next: {}", fp.name.en) },
    }
}

#[cfg(test)]
mod tests;
