//! The HIS adapter core: HL7 messages to facts and ACKs, facts to queue commands, and the three
//! failures the literature on 排队叫号–HIS interfaces names — a cancelled registration called,
//! a registration lost or doubled, a later registration ordered ahead of an earlier one.

use super::hl7::{ack, facts, parse_time, AckCode, Message};
use super::{lifecycle, plan, ticket_id, ticket_of, Fact, Lifecycle, Planned, Registration, RegistrationState};
use crate::domain::command::Command;
use crate::domain::config::Hospital;
use crate::domain::event::{HisRef, UnixMs};
use crate::domain::ids::{QueueId, RoomId};
use crate::domain::queue::{QueueState, Status};
use proptest::prelude::*;

const TZ: chrono_tz::Tz = chrono_tz::Asia::Shanghai;
/// 2026-11-24 09:00 Asia/Shanghai.
const T0: UnixMs = 1_795_482_000_000;

fn demo() -> Hospital {
    Hospital::demo()
}

fn a04(control: &str, visit: &str, patient: &str, dept: &str, at: &str) -> String {
    format!(
        "MSH|^~\\&|HIS|CITYHOSP|QUEUE|CITYHOSP|{at}||ADT^A04^ADT_A01|{control}|P|2.5\rEVN|A04|{at}\rPID|1||{patient}^^^HIS^MR||张^三丰||19500101|M\rPV1|1|O|{dept}^^^CITYHOSP||||D1024^李^明||||||||||||{visit}|||||||||||||||||||||||||{at}\r"
    )
}

#[test]
fn an_adt_a04_registration_becomes_a_ticket_fact() {
    let m = Message::parse(&a04("MSG0001", "V20261124-0007", "P000123", "internal-medicine", "20261124090512")).unwrap();
    assert_eq!(m.kind(), ("ADT".into(), "A04".into()));
    let f = facts(&m, "hl7", TZ).unwrap();
    let Fact::Registered(r) = &f[0] else { panic!("{f:?}") };
    assert_eq!((r.his.id.as_str(), r.patient.as_str(), r.name.as_str(), r.department.as_str()), ("V20261124-0007", "P000123", "张三丰", "internal-medicine"));
    assert_eq!(r.doctor.as_deref(), Some("D1024"));
    assert_eq!(r.at, T0 + 5 * 60_000 + 12_000, "09:05:12 in the hospital's zone");
    // The same registration always means the same ticket; another one another.
    assert_eq!(ticket_id(&r.his), ticket_id(&HisRef { source: "hl7".into(), id: "V20261124-0007".into() }));
    assert_ne!(ticket_id(&r.his), ticket_id(&HisRef { source: "hl7".into(), id: "V20261124-0008".into() }));
    assert_ne!(ticket_id(&r.his), ticket_id(&HisRef { source: "db".into(), id: "V20261124-0007".into() }), "per adapter");
}

#[test]
fn delimiters_escapes_and_line_endings_are_the_messages_own() {
    let text = "MSH#*~$@#HIS#H#Q#H#20261124090000##ADT*A11#C1#P#2.4\nPV1#1#O#dep################V$F$1\n";
    let m = Message::parse(text).unwrap();
    assert_eq!(m.kind(), ("ADT".into(), "A11".into()));
    assert_eq!(facts(&m, "hl7", TZ).unwrap(), vec![Fact::Cancelled { his: HisRef { source: "hl7".into(), id: "V#1".into() }, revision: Some(T0) }]);
    assert_eq!(parse_time("20261124090000+0000", TZ), Some(T0 + 8 * 3_600_000));
    assert_eq!(parse_time("202611240900", TZ), Some(T0));
    assert_eq!(parse_time("2026112409", TZ), Some(T0));
    assert_eq!(parse_time("20261124090000.5", TZ), Some(T0 + 500));
    assert_eq!(parse_time("2026-11-24", TZ), None);
}

#[test]
fn bad_messages_name_the_segment_and_field() {
    let err = |t: &str| match Message::parse(t) {
        Err(e) => e,
        Ok(m) => facts(&m, "hl7", TZ).unwrap_err(),
    };
    assert_eq!(err("PID|1||x").code, 100, "no MSH");
    assert_eq!(err("MSH|^~|HIS").code, 102, "too few encoding characters");
    let e = err(&a04("C2", "", "P1", "internal-medicine", "20261124090000"));
    assert_eq!((e.segment.as_str(), e.field, e.code), ("PV1", 19, 101), "{e}");
    let e = err(&a04("C3", "V1", "P1", "internal-medicine", "2026-11-24"));
    assert_eq!((e.segment.as_str(), e.field, e.code), ("PV1", 44, 102), "{e}");
    let e = err("MSH|^~\\&|HIS|H|Q|H|20261124090000||MDM^T02|C4|P|2.5\r");
    assert_eq!((e.segment.as_str(), e.field, e.code), ("MSH", 9, 200));
    let e = err("MSH|^~\\&|HIS|H|Q|H|20261124090000||ADT^A31|C5|P|2.5\r");
    assert_eq!(e.code, 201);
    let e = err("MSH|^~\\&|HIS|H|Q|H|20261124090000||ADT^A04|C6|P|2.5\rEVN|A04|20261124090000\rPID|1||P1\rpv1|x\r");
    assert_eq!(e.code, 100, "a lowercase segment id is not a segment");
    // A registration for a department the hospital does not have: refused naming it.
    let m = Message::parse(&a04("C7", "V7", "P7", "DERM-XYZ", "20261124090000")).unwrap();
    let e = plan(&facts(&m, "hl7", TZ).unwrap()[0], &demo(), 0).unwrap_err();
    assert_eq!((e.field.as_str(), e.code), ("department", "unknown_department"));
}

#[test]
fn appointments_book_a_slot_and_check_in_on_arrival() {
    let text = "MSH|^~\\&|HIS|H|Q|H|20261123160000||SIU^S12|S1|P|2.5\rSCH|APT-9||||||||||^^^20261124100000^20261124101500\rPID|1||P9||Smith^John\rAIL|1||cardiology\rAIP|1||D77\r";
    let m = Message::parse(text).unwrap();
    let f = facts(&m, "hl7", TZ).unwrap();
    let Fact::Registered(r) = &f[0] else { panic!() };
    assert_eq!(r.name, "John Smith");
    assert_eq!(r.slot.map(|s| (s.start, s.end)), Some((T0 + 3_600_000, T0 + 4_500_000)));
    let Planned::Issue { queue, cmd: Command::Issue(i) } = plan(&f[0], &demo(), 0).unwrap() else { panic!() };
    assert_eq!((queue.as_str(), i.check_in, i.doctor.is_none()), ("cardiology", false, true), "an unknown doctor code waits for the department");
    let cancel = Message::parse("MSH|^~\\&|HIS|H|Q|H|20261124080000||SIU^S15|S2|P|2.5\rSCH|APT-9\r").unwrap();
    assert_eq!(facts(&cancel, "hl7", TZ).unwrap()[0], Fact::Cancelled { his: r.his.clone(), revision: Some(T0 - 3_600_000) });
}

#[test]
fn a_room_the_his_assigned_is_the_doctor_sitting_there() {
    let a04 = |pv1_3: &str| {
        let text = format!("MSH|^~\\&|HIS|H|Q|H|20261124080000||ADT^A04|R1|P|2.5\rPID|1||P1||王^小明\rPV1|1|O|{pv1_3}||||||||||||||||V1\r");
        let f = facts(&Message::parse(&text).unwrap(), "hl7", TZ).unwrap();
        let Planned::Issue { cmd: Command::Issue(i), .. } = plan(&f[0], &demo(), 0).unwrap() else { panic!() };
        i.doctor.map(|d| d.as_str().to_owned())
    };
    assert_eq!(a04("internal-medicine^c-101").as_deref(), Some("dr-01"));
    assert_eq!(a04("internal-medicine^c-102").as_deref(), Some("dr-02"));
    assert_eq!(a04("internal-medicine^NO-ROOM"), None, "an unknown room: the department's line");
    assert_eq!(a04("internal-medicine"), None);
}

#[test]
fn acks_say_accepted_or_where_it_went_wrong() {
    let m = Message::parse(&a04("MSG0042", "V1", "P1", "internal-medicine", "20261124090000")).unwrap();
    let ok = ack(Some(&m), AckCode::Accept, None, "20261124090001", "CF1");
    assert!(ok.starts_with("MSH|^~\\&|clinicflow|clinicflow|HIS|CITYHOSP|20261124090001||ACK^A04^ACK|CF1|P|2.5\r"), "{ok}");
    assert!(ok.ends_with("MSA|AA|MSG0042\r"), "{ok}");
    let e = super::hl7::Hl7Error { segment: "PV1".into(), field: 3, code: 103, message: "no queue for HIS department \"X|Y\"".into() };
    let nak = ack(Some(&m), AckCode::Error, Some(&e), "20261124090001", "CF2");
    let lines: Vec<&str> = nak.split('\r').collect();
    assert!(lines[1].starts_with("MSA|AE|MSG0042|no queue for HIS department \"X Y\""), "{nak}");
    assert!(lines[2].starts_with("ERR||PV1^1^3|103^Table value not found^HL70357|E"), "{nak}");
    // And the ACK is itself a message clinicflow could read back.
    assert_eq!(Message::parse(&nak).unwrap().kind(), ("ACK".into(), "A04".into()));
}

#[test]
fn final_results_name_their_orders_and_preliminary_ones_nothing() {
    // Two orders: a final result (OBR-2), a corrected one (placer number only in ORC-2), a
    // preliminary one (ignored); OBX segments in between.
    let text = "MSH|^~\\&|LIS|H|Q|H|20261124101500||ORU^R01^ORU_R01|L1|P|2.5\rPID|1||P000123\rORC|RE|ORD-1\rOBR|1|ORD-1||CBC|||||||||||||||||||||F\rOBX|1|NM|WBC||5.4\rORC|RE|ORD-2\rOBR|2|||GLU|||||||||||||||||||||C\rOBR|3|ORD-3||TSH|||||||||||||||||||||P\r";
    let m = Message::parse(text).unwrap();
    let f = facts(&m, "hl7", TZ).unwrap();
    assert_eq!(f, vec![Fact::ResultsIn { patient: "P000123".into(), orders: vec!["ORD-1".into(), "ORD-2".into()] }]);
    let Planned::Results { patient, orders } = plan(&f[0], &demo(), 0).unwrap() else { panic!() };
    assert_eq!((patient.as_str(), orders.len()), ("P000123", 2));
    // Only preliminary: nothing to apply (accepted, changes nothing).
    let prelim = Message::parse("MSH|^~\\&|LIS|H|Q|H|20261124101500||ORU^R01|L2|P|2.5\rPID|1||P1\rOBR|1|ORD-9||TSH|||||||||||||||||||||P\r").unwrap();
    assert!(facts(&prelim, "hl7", TZ).unwrap().is_empty());
    // No patient, no OBR, a final result without its order number: refused naming the field.
    for (text, seg, field) in [
        ("MSH|^~\\&|LIS|H|Q|H|20261124101500||ORU^R01|L3|P|2.5\rOBR|1|ORD-9||TSH|||||||||||||||||||||F\r", "PID", 0),
        ("MSH|^~\\&|LIS|H|Q|H|20261124101500||ORU^R01|L4|P|2.5\rPID|1||P1\r", "OBR", 0),
        ("MSH|^~\\&|LIS|H|Q|H|20261124101500||ORU^R01|L5|P|2.5\rPID|1||P1\rOBR|1|||TSH|||||||||||||||||||||F\r", "OBR", 2),
    ] {
        let e = facts(&Message::parse(text).unwrap(), "hl7", TZ).unwrap_err();
        assert_eq!((e.segment.as_str(), e.field), (seg, field), "{text:?}: {e}");
    }
}

#[test]
fn orders_come_as_orc_obr_pairs_and_map_to_services() {
    let text = "MSH|^~\\&|HIS|H|Q|H|20261124093000||ORM^O01|O1|P|2.5\rPID|1||P000123\rORC|NW|ORD-1\rOBR|1|ORD-1||ECG^心电图\rORC|NW|ORD-2\rOBR|2|ORD-2||RETURN-IM\rORC|CA|ORD-0\rOBR|3|ORD-0||ECG\r";
    let m = Message::parse(text).unwrap();
    let f = facts(&m, "hl7", TZ).unwrap();
    let Fact::Ordered { patient, orders } = &f[0] else { panic!("{f:?}") };
    assert_eq!(patient, "P000123");
    assert_eq!(orders.iter().map(|o| (o.id.as_str(), o.code.as_str(), o.cancelled)).collect::<Vec<_>>(), [("ORD-1", "ECG", false), ("ORD-2", "RETURN-IM", false), ("ORD-0", "ECG", true)]);
    let Planned::Orders { orders, .. } = plan(&f[0], &demo(), 0).unwrap() else { panic!() };
    assert_eq!(orders[0].service, "ecg");
    // An order code no service does: refused whole, naming the code.
    let bad = Message::parse(&text.replace("RETURN-IM", "XYZ-999")).unwrap();
    let e = plan(&facts(&bad, "hl7", TZ).unwrap()[0], &demo(), 0).unwrap_err();
    assert_eq!((e.field.as_str(), e.code), ("code", "unknown_code"));
    assert!(e.message.contains("XYZ-999"));
    let e = facts(&Message::parse(&text.replace("ORC|NW|ORD-2", "ORC|ZZ|ORD-2")).unwrap(), "hl7", TZ).unwrap_err();
    assert_eq!((e.segment.as_str(), e.field, e.code), ("ORC", 1, 103));
}

#[test]
fn appointments_checked_in_at_the_his_are_placed_by_check_in_time() {
    let hospital = demo();
    let q = QueueId::parse("cardiology").unwrap();
    let mut s = QueueState::new(hospital.queues[&q].clone());
    let book = |id: &str| {
        let text = format!("MSH|^~\\&|HIS|H|Q|H|20261123160000||SIU^S12|{id}|P|2.5\rSCH|{id}||||||||||^^^20261124100000^20261124103000\rPID|1||P-{id}\rAIL|1||cardiology\r");
        facts(&Message::parse(&text).unwrap(), "hl7", TZ).unwrap().remove(0)
    };
    let arrive = |id: &str, at: &str| {
        let text = format!("MSH|^~\\&|HIS|H|Q|H|{at}||ADT^A10|X{id}|P|2.5\rEVN|A10|{at}\rPV1|1|O|cardiology||||||||||||||||{id}\r");
        facts(&Message::parse(&text).unwrap(), "hl7", TZ).unwrap().remove(0)
    };
    let run = |s: &mut QueueState, f: &Fact, now: UnixMs| {
        let cmd = match plan(f, &hospital, 0).unwrap() {
            Planned::Issue { cmd, .. } | Planned::OnTicket { cmd, .. } => cmd,
            Planned::Orders { .. } | Planned::Results { .. } => unreachable!(),
        };
        let d = s.decide(&cmd, None, now).unwrap();
        for e in &d.events {
            s.apply(e, now);
        }
    };
    run(&mut s, &book("APT-1"), T0);
    run(&mut s, &book("APT-2"), T0);
    // APT-2 checked in at 09:50, APT-1 at 09:55; the messages arrive the other way round.
    run(&mut s, &arrive("APT-1", "20261124095500"), T0 + 60 * 60_000);
    run(&mut s, &arrive("APT-2", "20261124095000"), T0 + 61 * 60_000);
    let order: Vec<&str> = s.waiting_order(T0 + 62 * 60_000).iter().map(|t| t.data.his.as_ref().unwrap().id.as_str()).collect();
    assert_eq!(order, ["APT-2", "APT-1"]);
}

// ---- the three failures, on the queue core ----------------------------------------------------

fn registration(n: usize, at: UnixMs) -> Fact {
    Fact::Registered(Registration {
        his: HisRef { source: "hl7".into(), id: format!("V{n}") },
        patient: format!("P{n}"),
        name: "王小明".into(),
        department: "internal-medicine".into(),
        doctor: None,
        room: None,
        at,
        slot: None,
        revision: None,
    })
}

/// Applies a fact to the internal-medicine queue as the adapter does: a repeat (duplicate
/// ticket, cancel of a cancelled one) is "applied before".
fn apply(s: &mut QueueState, fact: &Fact, now: UnixMs) {
    let cmd = match plan(fact, &demo(), 0).unwrap() {
        Planned::Issue { cmd, .. } | Planned::OnTicket { cmd, .. } => cmd,
        Planned::Orders { .. } | Planned::Results { .. } => unreachable!("registrations and withdrawals only"),
    };
    if let Ok(d) = s.decide(&cmd, None, now) {
        for e in &d.events {
            s.apply(e, now);
        }
    }
}

proptest! {
    /// Registrations arriving in any order, some twice, some withdrawn (退号) after: the line
    /// holds each live registration once, in registration-time order, and calling empties it
    /// without ever calling a withdrawn one. (A withdrawal that arrives before its registration
    /// is the adapter's to remember: see `actors/his.rs`.)
    #[test]
    fn arrival_order_repeats_and_withdrawals_never_change_the_line(
        order in Just((0..12usize).collect::<Vec<_>>()).prop_shuffle(),
        repeats in proptest::collection::vec(0..12usize, 0..6),
        withdrawn in proptest::collection::btree_set(0..12usize, 0..5),
    ) {
        let hospital = demo();
        let q = QueueId::parse("internal-medicine").unwrap();
        let mut s = QueueState::new(hospital.queues[&q].clone());
        // Registered a minute apart from 08:00; the messages arrive from 09:00 on, shuffled.
        let reg_at = |n: usize| T0 - 3_600_000 + n as i64 * 60_000;
        let mut now = T0;
        let mut stream: Vec<Fact> = order.iter().map(|&n| registration(n, reg_at(n))).collect();
        stream.extend(repeats.iter().map(|&n| registration(n, reg_at(n))));
        for &n in &withdrawn {
            stream.push(Fact::Cancelled { his: HisRef { source: "hl7".into(), id: format!("V{n}") }, revision: None });
        }
        for f in &stream {
            now += 1_000;
            apply(&mut s, f, now);
        }
        let waiting: Vec<String> = s.waiting_order(now).iter().map(|t| t.data.his.as_ref().unwrap().id.clone()).collect();
        let expected: Vec<String> = (0..12).filter(|n| !withdrawn.contains(n)).map(|n| format!("V{n}")).collect();
        prop_assert_eq!(&waiting, &expected);
        // Every ticket carries its HIS id, once per registration.
        prop_assert_eq!(s.tickets().count(), 12);
        let room = RoomId::parse("c-101").unwrap();
        let mut called = Vec::new();
        loop {
            now += 1_000;
            let Ok(d) = s.decide(&Command::CallNext { room: room.clone(), caller: "t".into() }, None, now) else { break };
            let Some(t) = d.subject.clone() else { break };
            for e in &d.events { s.apply(e, now); }
            called.push(s.ticket(&t).unwrap().data.his.as_ref().unwrap().id.clone());
            let c = Command::Complete { ticket: t };
            let d = s.decide(&c, None, now).unwrap();
            for e in &d.events { s.apply(e, now); }
        }
        prop_assert_eq!(called, expected);
        for &n in &withdrawn {
            let t = s.ticket(&ticket_id(&HisRef { source: "hl7".into(), id: format!("V{n}") }));
            prop_assert!(t.is_some_and(|t| t.status == Status::Cancelled));
        }
    }
}

// ---- a registration's life: withdrawals and re-registrations in any order ---------------------

/// Replays `events` (true: registered, false: withdrawn; with their revisions) as the HIS desk
/// does: `lifecycle` against the remembered state, the state updated as the desk writes it.
/// Returns the remembered state and the generations whose ticket was issued and not withdrawn.
fn replay(events: &[(bool, i64)]) -> (Option<RegistrationState>, std::collections::BTreeSet<u32>) {
    let his = HisRef { source: "db".into(), id: "R1".into() };
    let mut state: Option<RegistrationState> = None;
    let mut live = std::collections::BTreeSet::new();
    for &(registered, rev) in events {
        let fact = if registered {
            let Fact::Registered(mut r) = registration(1, T0) else { unreachable!() };
            r.his = his.clone();
            r.revision = Some(rev);
            Fact::Registered(r)
        } else {
            Fact::Cancelled { his: his.clone(), revision: Some(rev) }
        };
        match (lifecycle(&fact, state), registered) {
            (Lifecycle::Stale, _) => {}
            (Lifecycle::Apply { generation }, true) => {
                let newer = state.is_none_or(|s| s.revision.is_none_or(|r| rev > r));
                if newer {
                    state = Some(RegistrationState { generation, withdrawn: false, revision: Some(rev) });
                }
                live.insert(generation);
            }
            (Lifecycle::Apply { generation }, false) => {
                let keep = state.and_then(|s| s.revision).map_or(rev, |r| r.max(rev));
                state = Some(RegistrationState { generation, withdrawn: true, revision: Some(keep) });
                live.remove(&generation);
            }
            (Lifecycle::Reregister { generation, revision }, _) => {
                state = Some(RegistrationState { generation, withdrawn: false, revision: Some(revision) });
                live.insert(generation);
            }
        }
    }
    (state, live)
}

proptest! {
    /// A registration's changes arrive in the HIS's order (a poller reads rows by version; a
    /// sender sends in order), with any earlier change resent at any point (a lost ACK, a row
    /// read again): at most one ticket of it is ever live, and after each change the
    /// registration is live exactly when that change is a registration.
    #[test]
    fn a_registration_is_live_exactly_when_its_newest_change_is_a_registration(
        changes in proptest::collection::vec(any::<bool>(), 1..6),
        resends in proptest::collection::vec(proptest::option::of(0..6usize), 6),
    ) {
        // The HIS's history: revisions 1, 2, 3…; the first change is the registration.
        let mut history: Vec<(bool, i64)> = vec![(true, 1)];
        history.extend(changes.iter().enumerate().map(|(i, &r)| (r, i as i64 + 2)));
        let mut arrivals = Vec::new();
        for (i, change) in history.iter().enumerate() {
            arrivals.push(*change);
            let (_, live) = replay(&arrivals);
            prop_assert!(live.len() <= 1, "{:?}", live);
            prop_assert_eq!(live.len() == 1, change.0, "{:?} -> {:?}", arrivals, live);
            if let Some(j) = resends.get(i).copied().flatten().filter(|&j| j <= i) {
                arrivals.push(history[j]);
                let (_, again) = replay(&arrivals);
                prop_assert_eq!(again, live, "a resend changes nothing");
            }
        }
    }
}

proptest! {
    /// The same history arriving in ANY order (two adapters, a resend after a newer change, a
    /// sender that reorders), with resends: the registration ends live exactly when the newest
    /// change that arrived is a registration, and at most one ticket of it is ever live.
    #[test]
    fn in_any_order_the_newest_change_decides(
        changes in proptest::collection::vec(any::<bool>(), 1..6),
        order in Just((0..7usize).collect::<Vec<_>>()).prop_shuffle(),
        resends in proptest::collection::vec(0..7usize, 0..4),
    ) {
        let mut history: Vec<(bool, i64)> = vec![(true, 1)];
        history.extend(changes.iter().enumerate().map(|(i, &r)| (r, i as i64 + 2)));
        let mut arrivals: Vec<(bool, i64)> = order.iter().filter(|&&i| i < history.len()).map(|&i| history[i]).collect();
        for &j in &resends {
            let k = j.min(history.len() - 1);
            let at = (j * 3) % (arrivals.len() + 1);
            arrivals.insert(at, history[k]);
        }
        for n in 1..=arrivals.len() {
            let (_, live) = replay(&arrivals[..n]);
            let newest = arrivals[..n].iter().max_by_key(|c| c.1).expect("some");
            prop_assert!(live.len() <= 1, "{:?}", live);
            prop_assert_eq!(live.len() == 1, newest.0, "{:?} -> {:?}", &arrivals[..n], live);
        }
    }
}

#[test]
fn a_late_older_withdrawal_does_not_cancel_a_newer_registration() {
    // Registered (1), withdrawn (2), registered again (3) — the withdrawal arrives last.
    let (state, live) = replay(&[(true, 1), (true, 3), (false, 2)]);
    assert_eq!(live.len(), 1);
    assert_eq!(state, Some(RegistrationState { generation: 0, withdrawn: false, revision: Some(3) }));
    // At equal revisions the withdrawal wins.
    assert!(replay(&[(true, 4), (false, 4)]).1.is_empty());
}

#[test]
fn a_withdrawal_before_its_registration_and_a_resend_of_a_withdrawn_life_issue_nothing() {
    // 退号 (rev 5) arrives before its registration (rev 3): never a ticket.
    assert!(replay(&[(false, 5), (true, 3)]).1.is_empty());
    // Registered, withdrawn, the registration resent (same rev): withdrawn.
    assert!(replay(&[(true, 3), (false, 5), (true, 3)]).1.is_empty());
    // Re-registered later (rev 7): a new ticket, generation 1; the old withdrawal resent: no effect.
    let (state, live) = replay(&[(true, 3), (false, 5), (true, 7), (false, 5)]);
    assert_eq!(live.into_iter().collect::<Vec<_>>(), [1]);
    assert_eq!(state, Some(RegistrationState { generation: 1, withdrawn: false, revision: Some(7) }));
    assert_ne!(ticket_of(&HisRef { source: "db".into(), id: "R1".into() }, 1), ticket_id(&HisRef { source: "db".into(), id: "R1".into() }));
    // Without revisions a withdrawal is final.
    let Fact::Registered(mut r) = registration(1, T0) else { unreachable!() };
    r.revision = None;
    assert_eq!(lifecycle(&Fact::Registered(r), Some(RegistrationState { generation: 0, withdrawn: true, revision: Some(1) })), Lifecycle::Stale);
}

#[test]
fn a_registration_of_an_earlier_day_is_refused_by_its_time_or_its_slot() {
    use chrono::TimeZone as _;
    let tz = chrono_tz::Asia::Shanghai;
    let at = |d: u32, h: u32, m: u32| tz.with_ymd_and_hms(2026, 12, d, h, m, 0).unwrap().timestamp_millis();
    let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 8).unwrap();
    let Fact::Registered(mut r) = registration(1, at(7, 23, 59)) else { unreachable!() };
    let e = r.of_today(today, tz).unwrap_err();
    assert_eq!((e.field.as_str(), e.code), ("registered_at", "not_today"));
    assert!(e.message.contains("2026-12-07"), "{}", e.message);
    r.at = at(8, 0, 0);
    assert!(r.of_today(today, tz).is_ok(), "midnight in the hospital's zone is today");
    // An appointment booked days ahead for today is today's; one for yesterday is not.
    r.at = at(1, 9, 0);
    r.slot = Some(crate::domain::event::Slot { start: at(8, 9, 0), end: at(8, 9, 15) });
    assert!(r.of_today(today, tz).is_ok());
    r.slot = Some(crate::domain::event::Slot { start: at(7, 16, 0), end: at(7, 16, 15) });
    assert_eq!(r.of_today(today, tz).unwrap_err().field, "slot_start");
}
