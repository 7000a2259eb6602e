//! Tests of the calling policy: fair priority (interleave, ageing, the overtake cap), the
//! one-line explanation, recall limits and the no-show rules, and policy changes.

use super::command::Command;
use super::config::{CallRules, Fairness, Hospital, LateReturn, QueuePolicy};
use super::error::QueueError;
use super::event::{Event, UnixMs};
use super::ids::*;
use super::queue::{QueueState, Status};
use proptest::prelude::*;
use std::collections::BTreeMap;

const CONFIG: &str = r#"
site = "t"
name = "test"
[[departments]]
id = "dep"
name = "科"
[[doctors]]
id = "d1"
name = "一"
[[rooms]]
id = "r1"
name = "1 诊室"
doctor = "d1"
[[rooms]]
id = "r2"
name = "2 诊室"
[[rooms]]
id = "r3"
name = "3 诊室"
[[queues]]
id = "q"
name = "Q"
department = "dep"
prefix = "A"
rooms = ["r1", "r2", "r3"]
"#;

use super::tests::{call, issue, room, tid, MIN, T0};
const SEC: UnixMs = 1_000;

fn state_with(policy: QueuePolicy) -> QueueState {
    let h = Hospital::from_toml(CONFIG).unwrap();
    let mut spec = (*h.queues[&QueueId::parse("q").unwrap()]).clone();
    policy.validate(&spec.ranks).unwrap();
    spec.policy = policy;
    QueueState::new(std::sync::Arc::new(spec))
}
fn fair(f: Fairness) -> QueuePolicy {
    QueuePolicy { fairness: f, ..QueuePolicy::default() }
}
fn rules(c: CallRules) -> QueuePolicy {
    QueuePolicy { calls: c, ..QueuePolicy::default() }
}
fn n_of(t: &TicketId) -> usize {
    t.as_str()[1..].parse().unwrap()
}

#[test]
fn without_rules_priority_is_strict() {
    let mut s = state_with(QueuePolicy::default());
    for (i, c) in ["normal", "elderly", "elderly", "elderly", "elderly"].iter().enumerate() {
        s.execute(&issue(i, c), T0 + i as i64).unwrap();
    }
    let order: Vec<usize> = (0..5).map(|i| n_of(&call(&mut s, "r2", T0 + MIN + i).unwrap())).collect();
    assert_eq!(order, vec![1, 2, 3, 4, 0]);
}

#[test]
fn interleave_two_priority_then_one_normal_and_the_projection_agrees() {
    let mut s = state_with(fair(Fairness { interleave: Some(2), ..Fairness::default() }));
    // Three normal walk-ins first, then five elderly.
    for i in 0..3 {
        s.execute(&issue(i, "normal"), T0 + i as i64).unwrap();
    }
    for i in 3..8 {
        s.execute(&issue(i, "elderly"), T0 + i as i64).unwrap();
    }
    let projected: Vec<usize> = s.waiting_order(T0 + MIN).iter().map(|t| n_of(&t.data.id)).collect();
    let called: Vec<usize> = (0..8).map(|i| n_of(&call(&mut s, "r2", T0 + MIN + i).unwrap())).collect();
    assert_eq!(called, vec![3, 4, 0, 5, 6, 1, 7, 2]);
    assert_eq!(projected, called, "positions shown are the order the rooms call");
}

#[test]
fn emergencies_are_exempt_from_the_interleave_and_do_not_reset_it() {
    let mut s = state_with(fair(Fairness { interleave: Some(1), ..Fairness::default() }));
    s.execute(&issue(0, "normal"), T0).unwrap();
    s.execute(&issue(1, "elderly"), T0 + 1).unwrap();
    s.execute(&issue(2, "elderly"), T0 + 2).unwrap();
    s.execute(&issue(3, "emergency"), T0 + 3).unwrap();
    let called: Vec<usize> = (0..4).map(|i| n_of(&call(&mut s, "r2", T0 + MIN + i).unwrap())).collect();
    // Emergency first; then one elderly, then the normal patient's turn, then the other elderly.
    assert_eq!(called, vec![3, 1, 0, 2]);
}

#[test]
fn ageing_moves_a_long_wait_up_one_rank_per_step() {
    let mut s = state_with(fair(Fairness { ageing_secs: Some(600), ..Fairness::default() }));
    s.execute(&issue(0, "normal"), T0).unwrap();
    s.execute(&issue(1, "elderly"), T0 + 11 * MIN).unwrap();
    // At 09:11 the normal patient has waited 11 minutes: one step, now level with the elderly
    // patient and earlier, so first.
    let st = s.standing(&tid(0), T0 + 11 * MIN).unwrap();
    assert!(st.aged);
    assert_eq!(st.ahead, 0);
    assert_eq!(n_of(&call(&mut s, "r2", T0 + 11 * MIN).unwrap()), 0);
}

#[test]
fn the_cap_calls_a_ticket_passed_over_too_often() {
    let mut s = state_with(fair(Fairness { max_overtakes: Some(2), ..Fairness::default() }));
    s.execute(&issue(0, "normal"), T0).unwrap();
    for i in 1..6 {
        s.execute(&issue(i, "elderly"), T0 + i as i64).unwrap();
    }
    let called: Vec<usize> = (0..6).map(|i| n_of(&call(&mut s, "r2", T0 + MIN + i).unwrap())).collect();
    assert_eq!(called, vec![1, 2, 0, 3, 4, 5]);
}

#[test]
fn the_position_is_explained_in_one_line() {
    let mut s = state_with(QueuePolicy::default());
    s.execute(&issue(0, "normal"), T0).unwrap();
    s.execute(&issue(1, "elderly"), T0 + 1).unwrap();
    s.execute(&issue(2, "elderly"), T0 + 2).unwrap();
    let v = s.ticket_view(&tid(0), T0 + MIN).unwrap();
    assert_eq!(v.position, Some(2));
    assert_eq!(v.priority_ahead, Some(2));
    let note = v.position_note.unwrap();
    assert_eq!(note.en, "2 priority patients ahead; you are next after them");
    assert_eq!(note.zh, "前面有 2 位优先患者，之后就是您");
    s.execute(&issue(3, "normal"), T0 + 3).unwrap();
    let note = s.ticket_view(&tid(3), T0 + MIN).unwrap().position_note.unwrap();
    assert_eq!(note.en, "3 patients ahead: 2 priority, 1 in order of arrival");
    call(&mut s, "r2", T0 + MIN);
    call(&mut s, "r2", T0 + MIN);
    assert_eq!(s.ticket_view(&tid(0), T0 + MIN).unwrap().position_note.unwrap().en, "You are next");
    assert!(s.ticket_view(&tid(1), T0 + MIN).unwrap().position_note.is_none(), "only while waiting");
}

#[test]
fn recalls_are_limited_in_number_and_spacing() {
    let mut s = state_with(rules(CallRules { max_recalls: Some(2), min_recall_interval_secs: 30, ..CallRules::default() }));
    s.execute(&issue(0, "normal"), T0).unwrap();
    call(&mut s, "r2", T0);
    let recall = Command::Recall { ticket: tid(0) };
    let e = s.execute(&recall, T0 + 10 * SEC).unwrap_err();
    assert_eq!(e, QueueError::RecallTooSoon { ticket: tid(0), wait_secs: 20 });
    s.execute(&recall, T0 + 30 * SEC).unwrap();
    s.execute(&recall, T0 + 60 * SEC).unwrap();
    let e = s.execute(&recall, T0 + 90 * SEC).unwrap_err();
    assert_eq!(e, QueueError::RecallLimit { ticket: tid(0), max: 2 });
    assert_eq!(s.ticket(&tid(0)).unwrap().calls, 3);
}

#[test]
fn an_unanswered_ticket_is_missed_after_the_grace_and_not_before() {
    let mut s = state_with(rules(CallRules { auto_miss_after_calls: Some(2), grace_secs: 60, ..CallRules::default() }));
    s.execute(&issue(0, "normal"), T0).unwrap();
    call(&mut s, "r2", T0);
    assert!(s.overdue(T0 + 10 * MIN).is_empty(), "one call of two: not yet");
    s.execute(&Command::Recall { ticket: tid(0) }, T0 + MIN).unwrap();
    assert!(s.overdue(T0 + MIN + 59 * SEC).is_empty(), "within the grace");
    let e = s.execute(&Command::AutoMiss { ticket: tid(0) }, T0 + MIN + 59 * SEC).unwrap_err();
    assert_eq!(e, QueueError::NotOverdue(tid(0)));
    assert_eq!(s.overdue(T0 + 2 * MIN), vec![tid(0)]);
    let d = s.execute(&Command::AutoMiss { ticket: tid(0) }, T0 + 2 * MIN).unwrap();
    assert!(d.events.iter().any(|e| matches!(e, Event::Missed { auto: true, .. })));
    assert_eq!(s.ticket(&tid(0)).unwrap().status, Status::Missed);
    assert!(s.rooms()[&room("r2")].current.is_none(), "the room is free again");
    // A started patient is never marked missed.
    s.execute(&issue(1, "normal"), T0 + 3 * MIN).unwrap();
    call(&mut s, "r2", T0 + 3 * MIN);
    s.execute(&Command::Recall { ticket: tid(1) }, T0 + 4 * MIN).unwrap();
    s.execute(&Command::Start { ticket: tid(1) }, T0 + 4 * MIN).unwrap();
    assert!(s.overdue(T0 + 60 * MIN).is_empty());
}

#[test]
fn a_missed_patient_returns_within_the_window_or_registers_again() {
    let policy = rules(CallRules { return_window_secs: Some(600), late_return: LateReturn::Refuse, max_misses: Some(2), ..CallRules::default() });
    let mut s = state_with(policy);
    for i in 0..5 {
        s.execute(&issue(i, "normal"), T0 + i as i64).unwrap();
    }
    call(&mut s, "r2", T0 + MIN);
    s.execute(&Command::Skip { ticket: tid(0) }, T0 + 2 * MIN).unwrap();
    // Within 10 minutes: back after 3 waiting patients (missed_reinsert_after).
    let d = s.execute(&Command::CheckIn { ticket: tid(0), at: None }, T0 + 5 * MIN).unwrap();
    assert!(matches!(d.events[0], Event::CheckedIn { reinserted: true, .. }));
    assert_eq!(s.standing(&tid(0), T0 + 5 * MIN).unwrap().ahead, 3);
    // Missed again; back after 11 minutes: refused, the patient registers again.
    for _ in 0..4 {
        call(&mut s, "r2", T0 + 6 * MIN);
    }
    assert_eq!(s.rooms()[&room("r2")].current, Some(tid(0)));
    s.execute(&Command::Skip { ticket: tid(0) }, T0 + 6 * MIN).unwrap();
    let e = s.execute(&Command::CheckIn { ticket: tid(0), at: None }, T0 + 17 * MIN).unwrap_err();
    assert_eq!(e, QueueError::TooManyMisses { ticket: tid(0), misses: 2 });
    // Window alone: a second ticket missed once, back too late.
    call(&mut s, "r2", T0 + 18 * MIN);
    let t = s.rooms()[&room("r2")].current.clone().unwrap();
    s.execute(&Command::Skip { ticket: t.clone() }, T0 + 18 * MIN).unwrap();
    assert_eq!(s.execute(&Command::CheckIn { ticket: t.clone(), at: None }, T0 + 29 * MIN).unwrap_err(), QueueError::ReturnWindowClosed(t));
}

#[test]
fn late_return_to_the_back_of_the_line() {
    let mut s = state_with(rules(CallRules { return_window_secs: Some(60), ..CallRules::default() }));
    for i in 0..4 {
        s.execute(&issue(i, "normal"), T0 + i as i64).unwrap();
    }
    call(&mut s, "r2", T0);
    s.execute(&Command::Skip { ticket: tid(0) }, T0).unwrap();
    let d = s.execute(&Command::CheckIn { ticket: tid(0), at: None }, T0 + 2 * MIN).unwrap();
    assert!(matches!(d.events[0], Event::CheckedIn { reinserted: false, .. }));
    assert_eq!(s.standing(&tid(0), T0 + 2 * MIN).unwrap().ahead, 3, "behind everyone");
}

#[test]
fn contradictory_policies_are_refused_naming_the_field_and_the_running_one_stays() {
    let mut s = state_with(QueuePolicy::default());
    let before = s.clone();
    let cases = [
        (fair(Fairness { interleave: Some(0), ..Fairness::default() }), "fairness.interleave"),
        (fair(Fairness { ageing_secs: Some(0), ..Fairness::default() }), "fairness.ageing_secs"),
        (rules(CallRules { auto_miss_after_calls: Some(4), max_recalls: Some(1), ..CallRules::default() }), "calls.auto_miss_after_calls"),
        (rules(CallRules { max_misses: Some(0), ..CallRules::default() }), "calls.max_misses"),
        (QueuePolicy { ewma_alpha: 0.0, ..QueuePolicy::default() }, "ewma_alpha"),
    ];
    for (p, field) in cases {
        match s.execute(&Command::SetPolicy { policy: p }, T0) {
            Err(QueueError::BadPolicy(e)) => assert_eq!(e.field, field),
            other => panic!("{field}: {other:?}"),
        }
        assert_eq!(s, before);
    }
    // Only priority classes and an interleave: nothing to interleave with.
    let only_priority = CONFIG.replace("[[departments]]", "[[priority_classes]]\nid = \"normal\"\nrank = 0\n\n[[departments]]")
        .replace("rooms = [\"r1\", \"r2\", \"r3\"]", "rooms = [\"r1\", \"r2\", \"r3\"]\n[queues.policy.fairness]\ninterleave = 2");
    let e = Hospital::from_toml(&only_priority).unwrap_err();
    assert!(e.0.contains("policy.fairness.interleave"), "{e}");
}

#[test]
fn a_policy_change_is_journaled_and_gives_way_to_a_newer_config_file() {
    let mut s = state_with(QueuePolicy::default());
    let p = fair(Fairness { interleave: Some(1), ..Fairness::default() });
    let d = s.execute(&Command::SetPolicy { policy: p.clone() }, T0).unwrap();
    assert_eq!(s.policy(), &p);
    let log: Vec<Event> = d.events.clone();
    // Replayed on the same config: the change holds.
    let mut r = state_with(QueuePolicy::default());
    for e in &log {
        r.apply(e, T0);
    }
    assert_eq!(r.policy(), &p);
    // Replayed after the config file changed: the file wins.
    let mut r = state_with(rules(CallRules { max_recalls: Some(5), ..CallRules::default() }));
    for e in &log {
        r.apply(e, T0);
    }
    assert_eq!(r.policy().calls.max_recalls, Some(5));
    assert_eq!(r.policy().fairness.interleave, None);
    // Setting the same policy again journals nothing.
    assert!(s.execute(&Command::SetPolicy { policy: p }, T0 + 1).unwrap().events.is_empty());
}

// ---- properties over long random mornings ---------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Issue(u8),
    Call(u8),
    Recall,
    Skip,
    Complete,
    Wait(u16),
    /// A missed patient checks in again (reinserted near the front, passed over by nobody yet).
    Back(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..8).prop_map(Op::Issue),
        4 => (0u8..3).prop_map(Op::Call),
        1 => Just(Op::Recall),
        1 => Just(Op::Skip),
        1 => Just(Op::Complete),
        2 => (1u16..600).prop_map(Op::Wait),
    ]
}

/// A morning where the line grows: twice as many arrivals as calls.
fn busy_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..8).prop_map(Op::Issue),
        4 => (0u8..3).prop_map(Op::Call),
        2 => Just(Op::Skip),
        1 => Just(Op::Complete),
        2 => (0u8..8).prop_map(Op::Back),
        2 => (1u16..600).prop_map(Op::Wait),
    ]
}

/// Class of the n-th issue: mostly normal, some elderly or veteran, few emergencies.
fn class(c: u8) -> &'static str {
    match c {
        0 => "emergency",
        1 | 2 => "elderly",
        3 => "veteran",
        _ => "normal",
    }
}

struct Morning {
    s: QueueState,
    now: UnixMs,
    issued: usize,
    classes: Vec<&'static str>,
    /// Later arrivals called first, counted by the test from the calls it sees (walk-ins in
    /// issue order, pooled rooms: issue order is arrival order).
    passed: BTreeMap<usize, u32>,
    calls: Vec<(usize, bool)>,
    log: Vec<(Event, UnixMs)>,
}

impl Morning {
    fn new(policy: QueuePolicy) -> Self {
        Morning { s: state_with(policy), now: T0, issued: 0, classes: vec![], passed: BTreeMap::new(), calls: vec![], log: vec![] }
    }
    fn exec(&mut self, cmd: Command) -> Result<Option<TicketId>, QueueError> {
        let waiting: Vec<usize> = self.s.waiting_order(self.now).iter().map(|t| n_of(&t.data.id)).collect();
        let d = self.s.execute(&cmd, self.now)?;
        for e in &d.events {
            self.log.push((e.clone(), self.now));
            if let Event::Called { ticket, .. } = e {
                let n = n_of(ticket);
                let normal_waited = waiting.iter().any(|&w| w != n && self.classes[w] == "normal");
                self.calls.push((n, normal_waited));
                if self.classes[n] != "emergency" {
                    for &w in waiting.iter().filter(|&&w| w < n) {
                        *self.passed.entry(w).or_default() += 1;
                    }
                }
            }
        }
        Ok(d.subject)
    }
    /// Rooms r2 and r3 (pooled; r1 has a doctor and pooled tickets are its too).
    fn step(&mut self, o: &Op) {
        let current = |s: &QueueState, r: &str| s.rooms()[&room(r)].current.clone();
        match *o {
            Op::Issue(c) => {
                self.classes.push(class(c));
                let mut cmd = issue(self.issued, class(c));
                if c == 7 {
                    // An appointment checked in on arrival; its slot started, or starts soon.
                    let start = self.now + (self.issued as i64 % 3 - 1) * 5 * MIN;
                    if let Command::Issue(i) = &mut cmd {
                        i.slot = Some(super::event::Slot { start, end: start + 15 * MIN });
                    }
                }
                let _ = self.exec(cmd);
                self.issued += 1;
            }
            Op::Call(r) => {
                let _ = self.exec(Command::CallNext { room: room(["r2", "r3", "r2"][r as usize]), caller: "n".into() });
            }
            Op::Recall | Op::Skip | Op::Complete => {
                if let Some(t) = current(&self.s, "r2") {
                    let cmd = match o {
                        Op::Recall => Command::Recall { ticket: t },
                        Op::Skip => Command::Skip { ticket: t },
                        _ => Command::Complete { ticket: t },
                    };
                    let _ = self.exec(cmd);
                }
            }
            Op::Wait(secs) => self.now += i64::from(secs) * SEC,
            Op::Back(i) => {
                let missed: Vec<TicketId> = self.s.tickets().filter(|t| t.status == super::queue::Status::Missed).map(|t| t.data.id.clone()).collect();
                if !missed.is_empty() {
                    let t = missed[i as usize % missed.len()].clone();
                    let _ = self.exec(Command::CheckIn { ticket: t, at: None });
                }
            }
        }
        for t in self.s.overdue(self.now) {
            let _ = self.exec(Command::AutoMiss { ticket: t });
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// With ageing and the cap on, no ticket is ever passed over by more than the cap of later
    /// arrivals (emergencies excepted), counted independently from the calls.
    #[test]
    fn nobody_waits_behind_more_than_the_cap(ops in proptest::collection::vec(op(), 50..400), cap in 1u32..6, interleave in proptest::option::of(1u32..4)) {
        let policy = fair(Fairness { interleave, ageing_secs: Some(900), max_overtakes: Some(cap) });
        let mut m = Morning::new(policy);
        for o in &ops {
            m.step(o);
            for (w, n) in &m.passed {
                prop_assert!(*n <= cap, "ticket {w} passed over {n} times, cap {cap}");
            }
        }
        for t in m.s.waiting_order(m.now) {
            prop_assert_eq!(m.s.passed_over(t), m.passed.get(&n_of(&t.data.id)).copied().unwrap_or(0));
        }
    }

    /// The interleave holds over long runs: never more than N priority calls in a row while a
    /// normal patient waits.
    #[test]
    fn interleave_ratio_holds(ops in proptest::collection::vec(op(), 50..400), n in 1u32..4) {
        let mut m = Morning::new(fair(Fairness { interleave: Some(n), ..Fairness::default() }));
        for o in &ops { m.step(o); }
        let mut streak = 0u32;
        for (t, normal_waited) in &m.calls {
            match m.classes[*t] {
                "emergency" => {}
                "normal" => streak = 0,
                _ => {
                    if *normal_waited {
                        prop_assert!(streak < n, "priority call {t} after {streak} in a row while a normal patient waited");
                    }
                    streak += 1;
                }
            }
        }
    }

    /// Recall limits are never exceeded and calls are never closer than the interval; the
    /// automatic miss never happens before its grace; replay rebuilds the state.
    #[test]
    fn recall_and_no_show_rules_hold(ops in proptest::collection::vec(op(), 50..300), max in 0u32..3, gap in 0u32..120) {
        let policy = rules(CallRules { max_recalls: Some(max), min_recall_interval_secs: gap, auto_miss_after_calls: Some(max + 1), grace_secs: 90, ..CallRules::default() });
        let mut m = Morning::new(policy.clone());
        for o in &ops {
            m.step(o);
            for t in m.s.tickets() {
                prop_assert!(t.round_calls <= max + 1, "{} called {} times in one round", t.data.id, t.round_calls);
            }
        }
        let mut last: BTreeMap<TicketId, (UnixMs, u32)> = BTreeMap::new();
        for (e, at) in &m.log {
            match e {
                Event::Called { ticket, .. } => { last.insert(ticket.clone(), (*at, 1)); }
                Event::Recalled { ticket, .. } => {
                    let (prev, k) = last[ticket];
                    prop_assert!(at - prev >= i64::from(gap) * SEC, "recall {} s after the last call", (at - prev) / SEC);
                    last.insert(ticket.clone(), (*at, k + 1));
                }
                Event::Missed { ticket, auto: true, .. } => {
                    let (prev, k) = last[ticket];
                    prop_assert!(at - prev >= 90 * SEC && k > max, "auto miss too early");
                }
                _ => {}
            }
        }
        let mut r = state_with(policy);
        for (e, at) in &m.log { r.apply(e, *at); }
        prop_assert_eq!(r, m.s);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The fast projection (what positions and ETAs are computed from) is exactly the order in
    /// which a room that may call anyone would call, pick after pick, with the clock stopped.
    #[test]
    fn the_projection_is_the_order_of_calls(
        ops in proptest::collection::vec(op(), 20..200),
        interleave in proptest::option::of(1u32..4),
        ageing in proptest::option::of(60u32..1800),
        cap in proptest::option::of(1u32..6),
    ) {
        let mut m = Morning::new(fair(Fairness { interleave, ageing_secs: ageing, max_overtakes: cap }));
        for o in &ops { m.step(o); }
        for r in ["r2", "r3"] {
            if let Some(t) = m.s.rooms()[&room(r)].current.clone() {
                let _ = m.exec(Command::Complete { ticket: t });
            }
        }
        let projected: Vec<TicketId> = m.s.waiting_order(m.now).iter().map(|t| t.data.id.clone()).collect();
        let mut called = vec![];
        while let Some(t) = call(&mut m.s, "r2", m.now) {
            called.push(t.clone());
            m.s.execute(&Command::Complete { ticket: t }, m.now).unwrap();
        }
        prop_assert_eq!(projected, called);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The head projection (displays, "you are next": from the front of the line and the tickets
    /// the cap may reach, whatever the line's length) is the whole line's projection, at every
    /// step of random busy mornings (more arrivals than calls: long lines, many passed over)
    /// under random rules, however many of it are taken.
    #[test]
    fn the_head_projection_is_the_whole_lines(
        ops in proptest::collection::vec(busy_op(), 20..300),
        interleave in proptest::option::of(1u32..4),
        ageing in proptest::option::of(60u32..1800),
        cap in proptest::option::of(1u32..6),
        k in 1usize..5,
    ) {
        let mut m = Morning::new(fair(Fairness { interleave, ageing_secs: ageing, max_overtakes: cap }));
        for o in &ops {
            m.step(o);
            let whole: Vec<u64> = m.s.calling_order(m.now).map(|e| e.placement).collect();
            let head: Vec<u64> = m.s.calling_head(m.now, k).map(|e| e.placement).collect();
            prop_assert_eq!(&head, &whole);
            let first: Vec<u64> = m.s.calling_head(m.now, k).take(k).map(|e| e.placement).collect();
            prop_assert_eq!(&first[..], &whole[..whole.len().min(k)]);
            // Each room's next pick, from the front's candidates and from everyone it may call.
            for doctor in [None, Some(super::ids::DoctorId::parse("d1").unwrap())] {
                let fast = m.s.next_for(doctor.as_ref(), m.now, false).map(|e| e.placement);
                prop_assert_eq!(fast, m.s.next_for(doctor.as_ref(), m.now, true).map(|e| e.placement));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Without fairness rules a ticket's place is counted when it is the last of its rank (the
    /// ticket just issued): always what walking the calling order to it gives, pooled or bound
    /// to a doctor, at every step of random busy mornings.
    #[test]
    fn a_counted_place_is_the_walked_one(ops in proptest::collection::vec((busy_op(), proptest::bool::weighted(0.3)), 20..300)) {
        let mut m = Morning::new(QueuePolicy::default());
        for (o, bound) in &ops {
            if let (Op::Issue(c), true) = (o, bound) {
                // A walk-in for doctor d1's room.
                m.classes.push(class(*c));
                let mut cmd = issue(m.issued, class(*c));
                if let Command::Issue(i) = &mut cmd {
                    i.doctor = Some(DoctorId::parse("d1").unwrap());
                }
                let _ = m.exec(cmd);
                m.issued += 1;
            } else {
                m.step(o);
            }
            for t in m.s.tickets().filter(|t| t.status == Status::Waiting) {
                prop_assert_eq!(m.s.standing(&t.data.id, m.now), m.s.standing_walked(t, m.now), "ticket {}", t.data.id);
            }
        }
    }
}

// ---- replay ---------------------------------------------------------------------------------

/// A recorded morning: many elderly patients, a few normal ones, one room calling every 4
/// minutes, staff starting and completing each patient, one recall.
fn recorded_morning() -> (QueueState, Vec<(UnixMs, Event)>) {
    let mut s = state_with(QueuePolicy::default());
    let mut log = vec![];
    let mut exec = |s: &mut QueueState, cmd: Command, at: UnixMs| {
        if let Ok(d) = s.execute(&cmd, at) {
            log.extend(d.events.into_iter().map(|e| (at, e)));
        }
    };
    for i in 0..12 {
        exec(&mut s, issue(i, if i % 4 == 0 { "normal" } else { "elderly" }), T0 + i as i64 * MIN);
    }
    for k in 0..12 {
        let at = T0 + 20 * MIN + k * 4 * MIN;
        exec(&mut s, Command::CallNext { room: room("r2"), caller: "n".into() }, at);
        let cur = s.rooms()[&room("r2")].current.clone().unwrap();
        if k == 3 {
            exec(&mut s, Command::Recall { ticket: cur.clone() }, at + MIN);
        }
        exec(&mut s, Command::Start { ticket: cur.clone() }, at + MIN + SEC);
        exec(&mut s, Command::Complete { ticket: cur }, at + 3 * MIN);
    }
    (s, log)
}

#[test]
fn replay_under_the_same_policy_reproduces_the_day() {
    let (s, log) = recorded_morning();
    let r = super::replay::replay_queue(s.spec(), &log, &QueuePolicy::default());
    assert_eq!(r.moved, 0);
    assert_eq!(r.recorded, r.replayed);
    assert_eq!(r.recorded.called, 12);
    let recorded_order: Vec<TicketId> = log.iter().filter_map(|(_, e)| match e { Event::Called { ticket, .. } => Some(ticket.clone()), _ => None }).collect();
    assert_eq!(r.recorded.call_order, recorded_order);
}

#[test]
fn replay_shows_the_effect_of_an_interleave() {
    let (s, log) = recorded_morning();
    let policy = fair(Fairness { interleave: Some(1), ..Fairness::default() });
    let r = super::replay::replay_queue(s.spec(), &log, &policy);
    let (a, b) = (&r.recorded, &r.replayed);
    assert_eq!(b.called, 12, "everyone still called");
    assert!(r.moved > 0);
    assert!(b.mean_wait_by_class_min["normal"] < a.mean_wait_by_class_min["normal"], "{a:?} {b:?}");
    assert!(b.mean_wait_by_class_min["elderly"] > a.mean_wait_by_class_min["elderly"]);
    assert!(b.max_overtakes < a.max_overtakes);
    // A recall limit the day broke is refused in the replay, and counted.
    let strict = rules(CallRules { max_recalls: Some(0), ..CallRules::default() });
    let r = super::replay::replay_queue(s.spec(), &log, &strict);
    assert_eq!(r.replayed.refused.get("recall_limit"), Some(&1));
    // A no-show rule with a short grace turns slow starts into misses.
    let auto = rules(CallRules { auto_miss_after_calls: Some(1), grace_secs: 30, ..CallRules::default() });
    let r = super::replay::replay_queue(s.spec(), &log, &auto);
    assert!(r.replayed.auto_missed > 0);
    assert_eq!(r.recorded.auto_missed, 0);
}

// ---- day end --------------------------------------------------------------------------------

const DAY: UnixMs = 24 * 60 * MIN;

#[test]
fn day_end_close_cancel_and_carry() {
    let yesterday = |rule: super::config::DayEnd| {
        let mut s = state_with(QueuePolicy { day_end: rule, ..QueuePolicy::default() });
        for i in 0..5 {
            s.execute(&issue(i, if i == 3 { "elderly" } else { "normal" }), T0 + i as i64 * MIN).unwrap();
        }
        call(&mut s, "r2", T0 + 10 * MIN); // t3 (elderly) called, never seen
        s
    };
    // Close: yesterday's line is gone; nobody is called from it; numbers restart.
    let mut s = yesterday(super::config::DayEnd::Close);
    assert_eq!(call(&mut s, "r2", T0 + DAY), None);
    s.execute(&issue(10, "normal"), T0 + DAY).unwrap();
    assert_eq!(s.ticket(&tid(10)).unwrap().data.number, "A001");
    assert!(s.ticket(&tid(0)).is_none());

    // Cancel: every ticket not seen is cancelled first (phones and webhooks hear it).
    let mut s = yesterday(super::config::DayEnd::Cancel);
    let d = s.execute(&issue(10, "normal"), T0 + DAY).unwrap();
    let cancelled: Vec<usize> = d.events.iter().filter_map(|e| match e { Event::Cancelled { ticket } => Some(n_of(ticket)), _ => None }).collect();
    assert_eq!(cancelled, vec![0, 1, 2, 3, 4]);
    assert!(matches!(d.events[5], Event::DayStarted { .. }));

    // Carry: the waiting carry over first in line with their numbers; new numbers follow them.
    let mut s = yesterday(super::config::DayEnd::Carry);
    let mut log: Vec<(UnixMs, Event)> = vec![];
    let d = s.execute(&issue(10, "normal"), T0 + DAY).unwrap();
    log.extend(d.events.iter().cloned().map(|e| (T0 + DAY, e)));
    assert_eq!(d.events.iter().filter(|e| matches!(e, Event::CarriedOver { .. })).count(), 4, "the called one is not carried");
    assert_eq!(s.ticket(&tid(10)).unwrap().data.number, "A006", "after the highest carried number (A005)");
    assert_eq!(s.ticket(&tid(4)).unwrap().data.number, "A005");
    let order: Vec<usize> = s.waiting_order(T0 + DAY).iter().map(|t| n_of(&t.data.id)).collect();
    assert_eq!(order, vec![0, 1, 2, 4, 10]);
    // A carried ticket can be acted on as the first command of the day.
    let mut s2 = yesterday(super::config::DayEnd::Carry);
    s2.execute(&Command::Cancel { ticket: tid(1) }, T0 + DAY).unwrap();
    assert_eq!(s2.ticket(&tid(1)).unwrap().status, Status::Cancelled);
    // Rebuilt from the events: the same.
    let mut r = yesterday(super::config::DayEnd::Carry);
    for (at, e) in &log {
        r.apply(e, *at);
    }
    assert_eq!(r, s);
}

#[test]
fn a_later_stop_of_a_visit_keeps_the_visit_number() {
    let h = Hospital::from_toml(&CONFIG.replace("rooms = [\"r1\", \"r2\", \"r3\"]", "rooms = [\"r1\", \"r2\"]\n[[queues]]\nid = \"lab\"\nname = \"L\"\ndepartment = \"dep\"\nprefix = \"N\"\nrooms = [\"r3\"]")).unwrap();
    let mut lab = QueueState::new(h.queues[&QueueId::parse("lab").unwrap()].clone());
    let stop = |n: usize, number: &str| match issue(n, "normal") {
        Command::Issue(mut i) => {
            i.visit = Some((tid(0), number.to_owned()));
            Command::Issue(i)
        }
        c => c,
    };
    lab.execute(&issue(1, "normal"), T0).unwrap();
    lab.execute(&stop(2, "A012"), T0 + 1).unwrap();
    lab.execute(&issue(3, "normal"), T0 + 2).unwrap();
    let t2 = lab.ticket(&tid(2)).unwrap();
    assert_eq!(t2.data.number, "A012", "the visit's number, not N002");
    assert_eq!(lab.ticket_view(&tid(2), T0 + 3).unwrap().visit, tid(0));
    assert_eq!(lab.ticket(&tid(3)).unwrap().data.number, "N002", "the lab's own numbers are not used up");
    // Another queue's number only, or this patient's own number here.
    for bad in ["N001", "a12", "", "ABCDE1", "A"] {
        assert!(matches!(lab.execute(&stop(9, bad), T0 + 4), Err(QueueError::BadVisitNumber(_))), "{bad}");
    }
    let again = match issue(1, "normal") {
        Command::Issue(mut i) => {
            i.ticket = tid(8);
            i.visit = Some((tid(1), "N001".into()));
            Command::Issue(i)
        }
        c => c,
    };
    lab.execute(&again, T0 + 5).unwrap();
    assert_eq!(lab.ticket(&tid(8)).unwrap().data.number, "N001", "patient p1's own lab number again");
}
