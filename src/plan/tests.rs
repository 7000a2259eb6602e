//! The planner against brute force and its rules; the simulation's determinism.

use super::sim::{compare, Scenario};
use super::*;
use proptest::prelude::*;

fn labels(s: &str) -> Labels {
    Labels { zh: s.into(), en: s.into() }
}

fn point(name: &str, wait_min: f64, service_min: f64) -> Point {
    Point { name: labels(name), wait_s: wait_min * 60.0, service_s: service_min * 60.0, open_from_s: 0.0, open_until_s: 86_400.0 }
}

fn exam(id: &str, point: usize) -> Stop {
    Stop { id: id.into(), kind: StopKind::Exam, point, fasting: false, after_meal: false, needs_payment: false, result_delay_s: 0.0 }
}

fn flat_walk(n: usize, secs: f64) -> Vec<Vec<f64>> {
    (0..n).map(|a| (0..n).map(|b| if a == b { 0.0 } else { secs }).collect()).collect()
}

#[test]
fn a_short_queue_goes_first_and_the_reason_says_why() {
    let points = vec![point("Ultrasound", 25.0, 8.0), point("Laboratory", 5.0, 2.0)];
    let stops = vec![exam("us", 0), exam("lab", 1)];
    // The patient holds both tickets: ultrasound will call them in about 30 minutes, the lab in
    // 4. The lab first finishes everything 30 + 8 minutes from now; ultrasound first, later.
    let ready = [Some(30.0 * 60.0), Some(4.0 * 60.0)];
    let walk = flat_walk(2, 60.0);
    let p = Problem { now_s: 0.0, stops: &stops, points: &points, walk_from_here: &[60.0, 60.0], walk: &walk, rules: Rules::default(), ready_at: &ready, results_ready_s: 0.0 };
    let plan = plan(&p).unwrap();
    assert_eq!(plan.order, vec![1, 0], "the lab first, while the ultrasound ticket waits");
    assert!(plan.reason.en.contains("Ultrasound has 30 minutes of queue, Laboratory 4: go to Laboratory first"), "{:?}", plan.reason);
    assert!(plan.reason.zh.contains("先去Laboratory"), "{:?}", plan.reason);
}

#[test]
fn without_tickets_the_reason_compares_fresh_queues_or_the_cost_of_starting_elsewhere() {
    let points = vec![point("Ultrasound", 25.0, 8.0), point("Laboratory", 5.0, 2.0)];
    let stops = vec![exam("us", 0), exam("lab", 1)];
    let walk = flat_walk(2, 60.0);
    // The lab closes soon: it must come first although both orders cost the same waits.
    let mut pts = points.clone();
    pts[1].open_until_s = 10.0 * 60.0;
    let p = Problem { now_s: 0.0, stops: &stops, points: &pts, walk_from_here: &[60.0, 60.0], walk: &walk, rules: Rules::default(), ready_at: &[], results_ready_s: 0.0 };
    let pl = super::plan(&p).unwrap();
    assert_eq!(pl.order, vec![1, 0]);
    assert!(pl.reason.en.contains("Ultrasound has 25 minutes of queue, Laboratory 5"), "{:?}", pl.reason);
    // Equal queues, different walks: the reason is what starting elsewhere would cost.
    let pts = vec![point("Ultrasound", 10.0, 8.0), point("Laboratory", 10.0, 2.0)];
    let walk = vec![vec![0.0, 600.0], vec![600.0, 0.0]];
    let p = Problem { now_s: 0.0, stops: &stops, points: &pts, walk_from_here: &[900.0, 60.0], walk: &walk, rules: Rules::default(), ready_at: &[], results_ready_s: 0.0 };
    let pl = super::plan(&p).unwrap();
    assert_eq!(pl.order, vec![1, 0]);
    assert!(pl.reason.en.starts_with("Laboratory first finishes soonest: starting at Ultrasound would take about"), "{:?}", pl.reason);
}

#[test]
fn payment_comes_first_and_the_return_visit_last() {
    let points = vec![point("Cashier", 1.0, 1.0), point("Lab", 0.0, 2.0), point("Doctor", 0.0, 4.0)];
    let mut lab = exam("lab", 1);
    lab.needs_payment = true;
    let stops = vec![
        Stop { id: "return".into(), kind: StopKind::Return, point: 2, fasting: false, after_meal: false, needs_payment: false, result_delay_s: 0.0 },
        lab,
        Stop { id: "pay".into(), kind: StopKind::Payment, point: 0, fasting: false, after_meal: false, needs_payment: false, result_delay_s: 0.0 },
    ];
    let walk = flat_walk(3, 30.0);
    let p = Problem { now_s: 0.0, stops: &stops, points: &points, walk_from_here: &[30.0, 30.0, 0.0], walk: &walk, rules: Rules::default(), ready_at: &[], results_ready_s: 0.0 };
    let plan = plan(&p).unwrap();
    assert_eq!(plan.order, vec![2, 1, 0]);
    assert!(plan.reason.en.starts_with("pay at the Cashier first"), "{:?}", plan.reason);
}

#[test]
fn the_return_visit_waits_for_the_results_and_says_when() {
    let points = vec![point("Doctor", 0.0, 4.0)];
    let stops = vec![Stop { id: "return".into(), kind: StopKind::Return, point: 0, fasting: false, after_meal: false, needs_payment: false, result_delay_s: 0.0 }];
    let walk = flat_walk(1, 0.0);
    // 09:00 now, 2 minutes' walk, the results at 09:40: the visit starts then, and says so.
    let p = Problem { now_s: 9.0 * 3600.0, stops: &stops, points: &points, walk_from_here: &[120.0], walk: &walk, rules: Rules::default(), ready_at: &[], results_ready_s: 9.0 * 3600.0 + 2400.0 };
    let pl = plan(&p).unwrap();
    assert_eq!(pl.finish_s, 9.0 * 3600.0 + 2400.0 + 240.0);
    assert!(pl.reason.en.contains("the results are expected at 09:40: back to Doctor then"), "{:?}", pl.reason);
    assert!(pl.reason.zh.contains("09:40"), "{:?}", pl.reason);
    // Results in by the time the patient is back: go now.
    let p = Problem { results_ready_s: 9.0 * 3600.0 + 60.0, ..p };
    assert!(plan(&p).unwrap().reason.en.starts_with("all tests are done: back to Doctor with the results"));
}

#[test]
fn contradictions_and_nothing_to_do_are_errors() {
    let points = vec![point("Lab", 0.0, 2.0)];
    let mut bad = exam("lab", 0);
    bad.fasting = true;
    bad.after_meal = true;
    let walk = flat_walk(1, 0.0);
    let p = Problem { now_s: 0.0, stops: &[bad], points: &points, walk_from_here: &[0.0], walk: &walk, rules: Rules::default(), ready_at: &[], results_ready_s: 0.0 };
    assert!(matches!(plan(&p), Err(PlanError::Contradiction(_))));
    let p = Problem { now_s: 0.0, stops: &[], points: &points, walk_from_here: &[0.0], walk: &walk, rules: Rules::default(), ready_at: &[], results_ready_s: 0.0 };
    assert_eq!(plan(&p), Err(PlanError::NothingToDo));
    let p = Problem { now_s: 0.0, stops: &[exam("x", 5)], points: &points, walk_from_here: &[0.0], walk: &walk, rules: Rules::default(), ready_at: &[], results_ready_s: 0.0 };
    assert_eq!(plan(&p), Err(PlanError::BadPoint(0)));
}

#[test]
fn a_closed_service_is_visited_while_open() {
    // The lab closes at 08:10; the ECG is long. Lab first or it is too late.
    let mut lab = point("Lab", 0.0, 5.0);
    lab.open_until_s = 8.0 * 3600.0 + 600.0;
    let points = vec![point("ECG", 0.0, 15.0), lab];
    let stops = vec![exam("ecg", 0), exam("lab", 1)];
    let walk = flat_walk(2, 60.0);
    let p = Problem { now_s: 8.0 * 3600.0, stops: &stops, points: &points, walk_from_here: &[60.0, 60.0], walk: &walk, rules: Rules::default(), ready_at: &[], results_ready_s: 0.0 };
    let plan = plan(&p).unwrap();
    assert_eq!(plan.order, vec![1, 0]);
    assert!(plan.late.is_empty());
}

fn arb_problem() -> impl Strategy<Value = (Vec<Stop>, Vec<Point>, Vec<Vec<f64>>, Vec<f64>, Vec<Option<f64>>)> {
    (1usize..=6, 2usize..=5).prop_flat_map(|(n, np)| {
        (
            prop::collection::vec((0..np, any::<bool>(), any::<bool>(), any::<bool>(), 0u8..10, any::<bool>()), n),
            prop::collection::vec((0.0f64..40.0, 1.0f64..15.0, 0.0f64..3.0, 1.0f64..6.0), np),
            prop::collection::vec(prop::collection::vec(10.0f64..400.0, np), np),
            prop::collection::vec(10.0f64..400.0, np),
            prop::collection::vec(prop::option::of(0.0f64..7200.0), n),
        )
            .prop_map(|(stops, points, walk, here, ready)| {
                let stops: Vec<Stop> = stops
                    .into_iter()
                    .enumerate()
                    .map(|(i, (point, fasting, after, pay, kind, delay))| {
                        let kind = match kind {
                            0 => StopKind::Payment,
                            1 => StopKind::Return,
                            _ => StopKind::Exam,
                        };
                        Stop { id: format!("s{i}"), kind, point, fasting: fasting && !after, after_meal: after && !fasting, needs_payment: pay && kind == StopKind::Exam, result_delay_s: if delay { 1800.0 } else { 0.0 } }
                    })
                    .collect();
                let points: Vec<Point> = points
                    .into_iter()
                    .enumerate()
                    .map(|(i, (w, s, from, len))| Point { name: labels(&format!("p{i}")), wait_s: w * 60.0, service_s: s * 60.0, open_from_s: from * 3600.0, open_until_s: (from + len) * 3600.0 })
                    .collect();
                (stops, points, walk, here, ready)
            })
    })
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for i in 0..=p.len() {
            let mut q = p.clone();
            q.insert(i, n - 1);
            out.push(q);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    /// The plan keeps every rule (payment before paid services, fasting before after-meal, the
    /// return visit last), and nothing that keeps the rules finishes sooner.
    #[test]
    fn the_plan_keeps_the_rules_and_is_optimal((stops, points, walk, here, ready) in arb_problem()) {
        let p = Problem { now_s: 7.5 * 3600.0, stops: &stops, points: &points, walk_from_here: &here, walk: &walk, rules: Rules::default(), ready_at: &ready, results_ready_s: 0.0 };
        let Ok(plan) = plan(&p) else { return Ok(()) };
        let n = stops.len();
        let mut sorted = plan.order.clone();
        sorted.sort();
        prop_assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "every stop once");
        let pos = |i: usize| plan.order.iter().position(|&x| x == i).unwrap();
        for i in 0..n {
            for j in 0..n {
                if i != j && p.rules.must_precede(&stops[i], &stops[j]) {
                    prop_assert!(pos(i) < pos(j), "{} must precede {}: {:?}", stops[i].id, stops[j].id, plan.order);
                }
            }
        }
        if let Some(r) = stops.iter().position(|s| s.kind == StopKind::Return) {
            if stops.iter().filter(|s| s.kind == StopKind::Return).count() == 1 {
                prop_assert_eq!(*plan.order.last().unwrap(), r, "the return visit is last");
            }
        }
        // Brute force over every order that keeps the rules.
        let cost = |order: &[usize]| {
            let (t, late) = simulate_order(&p, order);
            t + late.len() as f64 * LATE_PENALTY_S
        };
        let best = permutations(n)
            .into_iter()
            .filter(|o| (0..n).all(|a| (0..n).all(|b| a == b || !p.rules.must_precede(&stops[o[a]], &stops[o[b]]) || a < b)))
            .map(|o| cost(&o))
            .fold(f64::INFINITY, f64::min);
        prop_assert!((cost(&plan.order) - best).abs() < 1e-6, "plan {} vs best {}", cost(&plan.order), best);
    }
}

#[test]
fn the_same_seed_gives_the_same_morning_and_everyone_finishes() {
    let map = crate::map::demo();
    let sc = Scenario::default_morning();
    let a = compare(&map, &sc, 7).unwrap();
    let b = compare(&map, &sc, 7).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.time_in_hospital_min, y.time_in_hospital_min);
        assert_eq!(x.waiting_min, y.waiting_min);
        assert!(x.time_in_hospital_min.iter().all(|t| t.is_finite() && *t > 0.0), "everyone finishes");
        assert_eq!(x.patients, a[0].patients, "the same patients under every policy");
    }
    let floor = compare(&map, &sc.clone().unlimited_rooms(), 7).unwrap();
    assert!(floor[0].mean_wait_min < 0.5 && floor[0].mean_min < a[0].mean_min, "no queues: only walking, services and results remain");
    let c = compare(&map, &sc, 8).unwrap();
    assert_ne!(a[0].time_in_hospital_min, c[0].time_in_hospital_min, "another seed, another morning");
    let html = super::report::html(7, &a);
    assert!(html.contains("<svg") && html.contains("planner"));
}
