//! Unit and property tests of the queue core, on simulated time.

use super::command::{Command, Idempotency, IssueTicket};
use super::config::Hospital;
use super::error::QueueError;
use super::event::{Slot, UnixMs};
use super::ids::*;
use super::queue::{QueueState, Status};
use proptest::prelude::*;
use std::collections::BTreeSet;

const CONFIG: &str = r#"
site = "t"
name = "test"
[[departments]]
id = "dep"
name = "科"
[[doctors]]
id = "d1"
name = "一"
[[doctors]]
id = "d2"
name = "二"
[[rooms]]
id = "r1"
name = "1 诊室"
doctor = "d1"
[[rooms]]
id = "r2"
name = "2 诊室"
doctor = "d2"
[[rooms]]
id = "r3"
name = "3 诊室"
[[rooms]]
id = "r4"
name = "4 诊室"
[[queues]]
id = "q"
name = "Q"
department = "dep"
prefix = "A"
rooms = ["r1", "r2", "r3"]
[[queues]]
id = "q2"
name = "Q2"
department = "dep"
prefix = "B"
rooms = ["r4"]
[[displays]]
id = "door-1"
kind = "door"
rooms = ["r1"]
[[displays]]
id = "door-3"
kind = "door"
rooms = ["r3"]
[[displays]]
id = "door-12"
kind = "door"
rooms = ["r1", "r2"]
[[displays]]
id = "hall"
kind = "corridor"
rooms = ["r1", "r2", "r3"]
"#;

/// 2026-11-24 09:00 Asia/Shanghai.
pub(super) const T0: UnixMs = 1_795_482_000_000;
pub(super) const MIN: UnixMs = 60_000;

fn hospital() -> Hospital {
    Hospital::from_toml(CONFIG).unwrap()
}
fn state(q: &str) -> QueueState {
    QueueState::new(hospital().queues[&QueueId::parse(q).unwrap()].clone())
}
pub(super) fn tid(n: usize) -> TicketId {
    TicketId::parse(&format!("t{n}")).unwrap()
}
pub(super) fn room(r: &str) -> RoomId {
    RoomId::parse(r).unwrap()
}
pub(super) fn issue(n: usize, class: &str) -> Command {
    Command::Issue(IssueTicket::walk_in(tid(n), PatientId::parse(&format!("p{n}")).unwrap(), DisplayName::parse("张三丰").unwrap(), PriorityClass::parse(class).unwrap()))
}
fn with(cmd: Command, f: impl FnOnce(&mut IssueTicket)) -> Command {
    match cmd {
        Command::Issue(mut i) => {
            f(&mut i);
            Command::Issue(i)
        }
        c => c,
    }
}
pub(super) fn call(s: &mut QueueState, r: &str, now: UnixMs) -> Option<TicketId> {
    s.execute(&Command::CallNext { room: room(r), caller: "nurse".into() }, now).unwrap().subject
}
fn replay(s: &QueueState, log: &[(super::event::Event, UnixMs)]) -> QueueState {
    let mut r = QueueState::new(s.spec().clone());
    for (e, at) in log {
        r.apply(e, *at);
    }
    r
}

#[test]
fn numbers_count_up_and_restart_at_local_midnight() {
    let mut s = state("q");
    s.execute(&issue(1, "normal"), T0).unwrap();
    s.execute(&issue(2, "normal"), T0 + MIN).unwrap();
    assert_eq!(s.ticket(&tid(2)).unwrap().data.number, "A002");
    // 23:59 local is still today; 00:00 local (16:00 UTC) is tomorrow.
    s.execute(&issue(3, "normal"), T0 + 14 * 60 * MIN + 59 * MIN).unwrap();
    assert_eq!(s.ticket(&tid(3)).unwrap().data.number, "A003");
    s.execute(&issue(4, "normal"), T0 + 15 * 60 * MIN).unwrap();
    assert_eq!(s.ticket(&tid(4)).unwrap().data.number, "A001");
    assert!(s.ticket(&tid(1)).is_none(), "yesterday's tickets leave the live state");
}

#[test]
fn emergency_then_elderly_then_normal() {
    let mut s = state("q");
    s.execute(&issue(1, "normal"), T0).unwrap();
    s.execute(&issue(2, "elderly"), T0 + 1).unwrap();
    s.execute(&issue(3, "emergency"), T0 + 2).unwrap();
    s.execute(&issue(4, "veteran"), T0 + 3).unwrap();
    let order: Vec<_> = (0..4).map(|i| call(&mut s, "r3", T0 + 10 + i).unwrap()).collect();
    assert_eq!(order, vec![tid(3), tid(2), tid(4), tid(1)]);
    assert_eq!(call(&mut s, "r3", T0 + 20), None);
}

#[test]
fn started_slot_goes_before_walk_ins_and_late_arrival_is_a_walk_in() {
    let mut s = state("q");
    s.execute(&issue(1, "normal"), T0).unwrap();
    // Checked in early for a 09:30 slot.
    let slot = Slot { start: T0 + 30 * MIN, end: T0 + 45 * MIN };
    s.execute(&with(issue(2, "normal"), |i| i.slot = Some(slot)), T0 + MIN).unwrap();
    s.execute(&issue(3, "normal"), T0 + 2 * MIN).unwrap();
    // Before the slot: by check-in time.
    assert_eq!(s.standing(&tid(2), T0 + 5 * MIN).unwrap().ahead, 1);
    // Once it starts: first.
    assert_eq!(call(&mut s, "r3", T0 + 31 * MIN), Some(tid(2)));
    // A late arrival (slot over) queues as a walk-in.
    let past = Slot { start: T0, end: T0 + 10 * MIN };
    s.execute(&with(issue(4, "normal"), |i| { i.slot = Some(past); i.check_in = false }), T0).unwrap();
    s.execute(&Command::CheckIn { ticket: tid(4), at: None }, T0 + 32 * MIN).unwrap();
    let order: Vec<_> = (0..3).filter_map(|i| call(&mut s, "r3", T0 + 40 * MIN + i)).collect();
    assert_eq!(order, vec![tid(1), tid(3), tid(4)]);
}

#[test]
fn missed_patient_returns_after_three() {
    let mut s = state("q");
    for i in 1..=6 {
        s.execute(&issue(i, "normal"), T0 + i as i64).unwrap();
    }
    assert_eq!(call(&mut s, "r3", T0 + MIN), Some(tid(1)));
    s.execute(&Command::Skip { ticket: tid(1) }, T0 + 2 * MIN).unwrap();
    assert_eq!(s.ticket(&tid(1)).unwrap().status, Status::Missed);
    s.execute(&Command::CheckIn { ticket: tid(1), at: None }, T0 + 3 * MIN).unwrap();
    assert_eq!(s.standing(&tid(1), T0 + 3 * MIN).unwrap().ahead, 3);
    let order: Vec<_> = (0..6).filter_map(|i| call(&mut s, "r3", T0 + 4 * MIN + i)).collect();
    assert_eq!(order, vec![tid(2), tid(3), tid(4), tid(1), tid(5), tid(6)]);
}

/// Under load many check-ins share a millisecond: a returning missed patient still lands
/// exactly after three, not after everyone who checked in in that millisecond.
#[test]
fn missed_patient_returns_after_three_even_when_check_ins_share_a_millisecond() {
    let mut s = state("q");
    s.execute(&issue(1, "normal"), T0).unwrap();
    for i in 2..=6 {
        s.execute(&issue(i, "normal"), T0 + 1).unwrap();
    }
    assert_eq!(call(&mut s, "r3", T0 + MIN), Some(tid(1)));
    s.execute(&Command::Skip { ticket: tid(1) }, T0 + 2 * MIN).unwrap();
    s.execute(&Command::CheckIn { ticket: tid(1), at: None }, T0 + 2 * MIN).unwrap();
    assert_eq!(s.standing(&tid(1), T0 + 2 * MIN).unwrap().ahead, 3);
    let order: Vec<_> = (0..6).filter_map(|i| call(&mut s, "r3", T0 + 4 * MIN + i)).collect();
    assert_eq!(order, vec![tid(2), tid(3), tid(4), tid(1), tid(5), tid(6)]);
}

#[test]
fn return_visit_goes_after_two_for_the_same_doctor_and_only_that_doctor_calls_it() {
    let mut s = state("q");
    s.execute(&issue(1, "normal"), T0).unwrap();
    assert_eq!(call(&mut s, "r1", T0 + MIN), Some(tid(1)));
    s.execute(&Command::Complete { ticket: tid(1) }, T0 + 5 * MIN).unwrap();
    for i in 2..=5 {
        s.execute(&issue(i, "normal"), T0 + 6 * MIN + i as i64).unwrap();
    }
    s.execute(&Command::Return { ticket: tid(1), doctor: None }, T0 + 10 * MIN).unwrap();
    let t = s.ticket(&tid(1)).unwrap();
    assert_eq!(t.data.doctor.as_ref().map(|d| d.as_str()), Some("d1"));
    assert_eq!(s.standing(&tid(1), T0 + 10 * MIN).unwrap().ahead, 2);
    // Room 2 (another doctor) never gets it.
    let by_r2: Vec<_> = (0..5).filter_map(|i| call(&mut s, "r2", T0 + 11 * MIN + i)).collect();
    assert_eq!(by_r2, vec![tid(2), tid(3), tid(4), tid(5)]);
    assert_eq!(call(&mut s, "r1", T0 + 12 * MIN), Some(tid(1)));
}

#[test]
fn paused_room_cannot_call_and_eta_counts_active_rooms() {
    let mut s = state("q");
    for i in 1..=4 {
        s.execute(&issue(i, "normal"), T0 + i as i64).unwrap();
    }
    let eta_all = s.standing(&tid(4), T0).unwrap().eta_secs.unwrap();
    s.execute(&Command::PauseRoom { room: room("r1") }, T0).unwrap();
    let eta_two = s.standing(&tid(4), T0).unwrap().eta_secs.unwrap();
    assert!(eta_two > eta_all, "{eta_two} > {eta_all}");
    let e = s.execute(&Command::CallNext { room: room("r1"), caller: "n".into() }, T0).unwrap_err();
    assert_eq!(e, QueueError::RoomPaused(room("r1")));
    s.execute(&Command::ResumeRoom { room: room("r1") }, T0).unwrap();
    assert_eq!(call(&mut s, "r1", T0), Some(tid(1)));
}

#[test]
fn service_time_estimate_follows_measured_service() {
    let mut s = state("q");
    assert_eq!(s.mean_service_secs(), 300.0);
    for i in 1..=20 {
        s.execute(&issue(i, "normal"), T0).unwrap();
    }
    let mut now = T0;
    for _ in 0..16 {
        let t = call(&mut s, "r3", now).unwrap();
        now += 2 * MIN;
        s.execute(&Command::Complete { ticket: t }, now).unwrap();
    }
    assert!((s.mean_service_secs() - 120.0).abs() < 10.0, "{}", s.mean_service_secs());
}

#[test]
fn precall_when_next_and_recall_counts() {
    let mut s = state("q");
    s.execute(&issue(1, "normal"), T0).unwrap();
    let d = s.execute(&issue(2, "normal"), T0 + 1).unwrap();
    assert!(d.events.iter().all(|e| e.kind() != "pre_called"), "two ahead is not next");
    let d = s.execute(&Command::CallNext { room: room("r3"), caller: "n".into() }, T0 + 2).unwrap();
    // With r1 and r2 also free, t2 is now next.
    assert!(d.events.iter().any(|e| matches!(e, super::event::Event::PreCalled { ticket } if *ticket == tid(2))));
    s.execute(&Command::Recall { ticket: tid(1) }, T0 + 3).unwrap();
    assert_eq!(s.ticket(&tid(1)).unwrap().calls, 2);
}

#[test]
fn illegal_transitions_change_nothing() {
    let mut s = state("q");
    s.execute(&issue(1, "normal"), T0).unwrap();
    let before = s.clone();
    for cmd in [
        Command::Complete { ticket: tid(1) },
        Command::Skip { ticket: tid(1) },
        Command::Recall { ticket: tid(1) },
        Command::Return { ticket: tid(1), doctor: None },
        Command::Complete { ticket: tid(9) },
        Command::CallNext { room: room("r4"), caller: "n".into() },
        issue(1, "normal"),
        issue(2, "vip"),
    ] {
        assert!(s.execute(&cmd, T0 + 1).is_err(), "{cmd:?}");
        assert_eq!(s, before);
    }
}

#[test]
fn idempotency_key_replays_and_refuses_a_different_body() {
    let mut s = state("q");
    let k = Idempotency { key: "k1".into(), fingerprint: "f1".into() };
    let d = s.decide(&issue(1, "normal"), Some(&k), T0).unwrap();
    for e in &d.events {
        s.apply(e, T0);
    }
    let again = s.decide(&issue(7, "normal"), Some(&k), T0 + 1).unwrap();
    assert!(again.replayed && again.events.is_empty());
    assert_eq!(again.subject, Some(tid(1)));
    let other = Idempotency { key: "k1".into(), fingerprint: "f2".into() };
    assert_eq!(s.decide(&issue(7, "normal"), Some(&other), T0 + 1).unwrap_err(), QueueError::IdempotencyConflict("k1".into()));
}

#[test]
fn transfer_keeps_number_and_check_in_time() {
    let mut a = state("q");
    let mut b = state("q2");
    b.execute(&issue(10, "normal"), T0 + 5 * MIN).unwrap();
    a.execute(&issue(1, "normal"), T0).unwrap();
    let d = a.execute(&Command::TransferOut { ticket: tid(1), to: QueueId::parse("q2").unwrap() }, T0 + 10 * MIN).unwrap();
    assert_eq!(d.events.len(), 1);
    let data = a.ticket(&tid(1)).unwrap().data.clone();
    b.execute(&Command::TransferIn { ticket: data, from: QueueId::parse("q").unwrap() }, T0 + 10 * MIN).unwrap();
    let t = b.ticket(&tid(1)).unwrap();
    assert_eq!(t.data.number, "A001");
    // Checked in at T0, before t10 (T0+5min): first in line.
    assert_eq!(b.standing(&tid(1), T0 + 10 * MIN).unwrap().ahead, 0);
    assert!(matches!(a.execute(&Command::CheckIn { ticket: tid(1), at: None }, T0).unwrap_err(), QueueError::Transferred { .. }));
}

// ---------------------------------------------------------------------------------------------
// Property tests: random command sequences against invariants.

#[derive(Debug, Clone)]
enum Op {
    Issue { class: u8, slot: Option<(i64, i64)>, doctor: u8, walk_in: bool },
    CheckIn(usize),
    Call(u8),
    Recall(usize),
    Start(usize),
    Skip(usize),
    Complete(usize),
    Cancel(usize),
    Return(usize),
    Pause(u8),
    Resume(u8),
    Wait(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4, proptest::option::of((0i64..60, 5i64..30)), 0u8..4, any::<bool>())
            .prop_map(|(class, slot, doctor, walk_in)| Op::Issue { class, slot, doctor, walk_in }),
        1 => (0usize..40).prop_map(Op::CheckIn),
        4 => (0u8..3).prop_map(Op::Call),
        1 => (0usize..40).prop_map(Op::Recall),
        1 => (0usize..40).prop_map(Op::Start),
        1 => (0usize..40).prop_map(Op::Skip),
        2 => (0usize..40).prop_map(Op::Complete),
        1 => (0usize..40).prop_map(Op::Cancel),
        1 => (0usize..40).prop_map(Op::Return),
        1 => (0u8..3).prop_map(Op::Pause),
        1 => (0u8..3).prop_map(Op::Resume),
        2 => (0i64..10).prop_map(Op::Wait),
    ]
}

const CLASSES: [&str; 4] = ["normal", "elderly", "emergency", "normal"];
const ROOMS: [&str; 3] = ["r1", "r2", "r3"];

struct Run {
    s: QueueState,
    log: Vec<(super::event::Event, UnixMs)>,
    now: UnixMs,
    issued: usize,
    called: Vec<TicketId>,
}

impl Run {
    fn new() -> Self {
        Run { s: state("q"), log: vec![], now: T0, issued: 0, called: vec![] }
    }
    fn exec(&mut self, cmd: Command) -> Option<TicketId> {
        let before = self.s.clone();
        match self.s.execute(&cmd, self.now) {
            Ok(d) => {
                for e in &d.events {
                    self.log.push((e.clone(), self.now));
                    if let super::event::Event::Called { ticket, .. } = e {
                        self.called.push(ticket.clone());
                    }
                }
                d.subject
            }
            Err(_) => {
                assert_eq!(self.s, before, "a refused command changed the state");
                None
            }
        }
    }
    fn step(&mut self, op: &Op) {
        let t = |i: usize| tid(i % self.issued.max(1));
        match *op {
            Op::Issue { class, slot, doctor, walk_in } => {
                let cmd = with(issue(self.issued, CLASSES[class as usize]), |i| {
                    i.slot = slot.map(|(s, l)| Slot { start: T0 + s * MIN, end: T0 + (s + l) * MIN });
                    i.doctor = match doctor {
                        0 => Some(DoctorId::parse("d1").unwrap()),
                        1 => Some(DoctorId::parse("d2").unwrap()),
                        _ => None,
                    };
                    i.check_in = walk_in || slot.is_none();
                });
                self.issued += 1;
                self.exec(cmd);
            }
            Op::CheckIn(i) => drop(self.exec(Command::CheckIn { ticket: t(i), at: None })),
            Op::Call(r) => drop(self.exec(Command::CallNext { room: room(ROOMS[r as usize]), caller: "n".into() })),
            Op::Recall(i) => drop(self.exec(Command::Recall { ticket: t(i) })),
            Op::Start(i) => drop(self.exec(Command::Start { ticket: t(i) })),
            Op::Skip(i) => drop(self.exec(Command::Skip { ticket: t(i) })),
            Op::Complete(i) => drop(self.exec(Command::Complete { ticket: t(i) })),
            Op::Cancel(i) => drop(self.exec(Command::Cancel { ticket: t(i) })),
            Op::Return(i) => drop(self.exec(Command::Return { ticket: t(i), doctor: None })),
            Op::Pause(r) => drop(self.exec(Command::PauseRoom { room: room(ROOMS[r as usize]) })),
            Op::Resume(r) => drop(self.exec(Command::ResumeRoom { room: room(ROOMS[r as usize]) })),
            Op::Wait(m) => self.now += m * MIN,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A ticket is never called while another room has it, and a room never holds two tickets.
    #[test]
    fn no_ticket_called_twice_at_once(ops in proptest::collection::vec(op(), 1..120)) {
        let mut run = Run::new();
        for o in &ops {
            let before: BTreeSet<_> = run.s.tickets().filter(|t| matches!(t.status, Status::Called | Status::InService)).map(|t| t.data.id.clone()).collect();
            let n_called = run.called.len();
            let n_log = run.log.len();
            run.step(o);
            for t in &run.called[n_called..] {
                prop_assert!(!before.contains(t), "{t} called while already called");
            }
            if run.log.len() > n_log {
                // Everyone within the pre-call position has had "you are next" (checked with the
                // per-ticket standing, independent of the prefix shortcut in `precalls`).
                for t in run.s.waiting_order(run.now) {
                    let ahead = run.s.standing(&t.data.id, run.now).unwrap().ahead;
                    prop_assert!(ahead >= 1 || t.precalled, "{} is next but was not pre-called", t.data.id);
                }
            }
            prop_assert_eq!(run.s.waiting_count(), run.s.counts().waiting);
            let held: Vec<_> = run.s.rooms().values().filter_map(|r| r.current.clone()).collect();
            let uniq: BTreeSet<_> = held.iter().collect();
            prop_assert_eq!(held.len(), uniq.len());
        }
    }

    /// Replaying the event log reproduces the exact state.
    #[test]
    fn replay_reproduces_state(ops in proptest::collection::vec(op(), 1..120)) {
        let mut run = Run::new();
        for o in &ops {
            run.step(o);
            // The line index gives exactly the reference calling order.
            let mut reference: Vec<_> = run.s.tickets().filter(|t| t.status == Status::Waiting).collect();
            reference.sort_by_key(|t| t.sort_key(run.now));
            let ids = |v: Vec<&super::queue::Ticket>| v.into_iter().map(|t| t.data.id.clone()).collect::<Vec<_>>();
            prop_assert_eq!(ids(run.s.waiting_order(run.now)), ids(reference));
        }
        prop_assert_eq!(replay(&run.s, &run.log), run.s);
    }

    /// Every waiting ticket is eventually called while rooms keep calling, in FIFO order within
    /// a priority class for plain walk-ins.
    #[test]
    fn everyone_waiting_is_called_fifo_within_class(ops in proptest::collection::vec(op(), 1..80)) {
        let mut run = Run::new();
        for o in &ops { run.step(o); }
        for r in ROOMS { run.exec(Command::ResumeRoom { room: room(r) }); }
        let waiting: BTreeSet<_> = run.s.tickets().filter(|t| t.status == Status::Waiting).map(|t| t.data.id.clone()).collect();
        let n0 = run.called.len();
        let mut idle = 0;
        while idle < ROOMS.len() {
            idle = 0;
            for r in ROOMS {
                if run.exec(Command::CallNext { room: room(r), caller: "n".into() }).is_none() { idle += 1; }
            }
        }
        let drained: BTreeSet<_> = run.called[n0..].iter().cloned().collect();
        prop_assert_eq!(&drained, &waiting);
        prop_assert_eq!(drained.len(), run.called.len() - n0, "nobody called twice while draining");
    }

    /// Two walk-ins of the same class, no slot, no doctor, never missed or returned: the earlier
    /// check-in is called first.
    #[test]
    fn fifo_within_class(classes in proptest::collection::vec(0u8..3, 2..40), calls in proptest::collection::vec(0u8..3, 40)) {
        let mut run = Run::new();
        for c in &classes {
            run.step(&Op::Issue { class: *c, slot: None, doctor: 3, walk_in: true });
            run.now += 1;
        }
        for r in calls { run.step(&Op::Call(r)); run.now += 1; }
        let mut last_by_class = std::collections::BTreeMap::new();
        for t in &run.called {
            let n: usize = t.as_str()[1..].parse().unwrap();
            let class = CLASSES[classes[n] as usize];
            if let Some(prev) = last_by_class.insert(class, n) {
                prop_assert!(prev < n, "{class}: {prev} called after {n}");
            }
        }
    }

    /// What a display shows from a queue's board (the head of the line, published with every
    /// commit) is what it would show from the whole line.
    #[test]
    fn a_board_shows_what_the_whole_line_shows(ops in proptest::collection::vec(op(), 1..120)) {
        use super::display::{display_state, Board, Waiting};
        let mut run = Run::new();
        let h = hospital();
        for o in &ops { run.step(o); }
        let board = run.s.board(run.now);
        let snap = run.s.snapshot(run.now);
        let whole = Board {
            head: snap.waiting.iter().map(|w| Waiting { number: w.number.clone(), masked_name: w.masked_name.clone(), doctor: w.doctor.clone() }).collect(),
            ..board.clone()
        };
        prop_assert!(board.head.len() <= whole.head.len());
        prop_assert_eq!(&board.head[..], &whole.head[..board.head.len()], "the head is the line's start");
        let id = run.s.id().clone();
        let (from_board, from_line) = ([(id.clone(), std::sync::Arc::new(board))].into(), [(id, std::sync::Arc::new(whole))].into());
        for d in &h.displays {
            prop_assert_eq!(display_state(d, &h, &from_board), display_state(d, &h, &from_line), "{}", d.id);
        }
    }

    /// A transfer moves the ticket, nothing else: it is waiting in the new queue with the same
    /// number and gone from the old one's waiting line.
    #[test]
    fn nothing_lost_on_transfer(n in 1usize..20, pick in 0usize..20) {
        let mut a = state("q");
        let mut b = state("q2");
        for i in 0..n { a.execute(&issue(i, "normal"), T0 + i as i64).unwrap(); }
        let t = tid(pick % n);
        a.execute(&Command::TransferOut { ticket: t.clone(), to: QueueId::parse("q2").unwrap() }, T0 + MIN).unwrap();
        let data = a.ticket(&t).unwrap().data.clone();
        b.execute(&Command::TransferIn { ticket: data.clone(), from: QueueId::parse("q").unwrap() }, T0 + MIN).unwrap();
        prop_assert_eq!(a.waiting_order(T0 + MIN).len() + b.waiting_order(T0 + MIN).len(), n);
        prop_assert_eq!(&b.ticket(&t).unwrap().data.number, &data.number);
        prop_assert_eq!(b.ticket(&t).unwrap().status, Status::Waiting);
    }
}
