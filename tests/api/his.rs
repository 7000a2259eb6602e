//! The HIS over HL7 v2 / MLLP, end to end: an independent sender (the python `hl7` package's
//! MLLP client, installed by `scripts/test`) registers patients, repeats itself, withdraws
//! registrations (退号) before and after they arrive, and sends what clinicflow must refuse; the
//! queue follows registration time, never holds a withdrawn registration, and survives `kill -9`.

use crate::helpers::{start_args, TestApp};
use chrono::TimeZone;
use serde_json::Value;

/// An HL7 time `minutes` "minutes" before the pinned test instant (see
/// [`crate::helpers::his_minute_ms`]), in the demo hospital's zone (the servers' clocks start at
/// that instant, so these are in their past, and on its day).
pub(crate) fn ago(minutes: i64) -> String {
    let t = chrono::Utc.timestamp_millis_opt(crate::helpers::test_at_ms() - minutes * crate::helpers::his_minute_ms()).unwrap();
    // Milliseconds (HL7 allows a fraction) when a "minute" is shorter than a second.
    chrono_tz::Asia::Shanghai.from_utc_datetime(&t.naive_utc()).format("%Y%m%d%H%M%S%.3f").to_string()
}

pub(crate) fn a04(control: &str, visit: &str, patient: &str, dept: &str, at: &str) -> String {
    format!(
        "MSH|^~\\&|HIS|CITYHOSP|CLINICFLOW|CITYHOSP|{at}||ADT^A04^ADT_A01|{control}|P|2.5\rEVN|A04|{at}\rPID|1||{patient}^^^HIS^MR||王^小明||19500101|M\rPV1|1|O|{dept}^^^CITYHOSP||||D1024^李^明||||||||||||{visit}\r"
    )
}

fn a11(control: &str, visit: &str) -> String {
    a11_at(control, visit, &ago(0))
}

fn a11_at(control: &str, visit: &str, at: &str) -> String {
    format!("MSH|^~\\&|HIS|CITYHOSP|CLINICFLOW|CITYHOSP|{at}||ADT^A11^ADT_A09|{control}|P|2.5\rEVN|A11|{at}\rPV1|1|O|internal-medicine||||||||||||||||{visit}\r")
}

/// Sends `messages` over one MLLP connection; the parsed ACKs.
pub(crate) fn send(app: &TestApp, messages: &[String], encoding: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("messages.json");
    std::fs::write(&path, serde_json::to_string(messages).unwrap()).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/hl7_send.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .args(["127.0.0.1", &app.hl7_port.expect("--hl7 is on").to_string()])
        .arg(&path)
        .arg(encoding)
        .output()
        .expect("python3 (scripts/test installs the hl7 package)");
    assert!(out.status.success(), "hl7 sender: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

fn msa(acks: &[Value]) -> Vec<String> {
    acks.iter().map(|a| a["msa"].as_str().unwrap().to_owned()).collect()
}

/// The HIS ids of the internal-medicine line, front first.
pub async fn line(app: &TestApp) -> Vec<String> {
    let q = app.get_json("/api/v1/queues/internal-medicine").await;
    let mut out = Vec::new();
    for w in q["waiting"].as_array().unwrap() {
        let t = app.get_json(&format!("/api/v1/tickets/{}", w["ticket"].as_str().unwrap())).await;
        out.push(t["his"]["id"].as_str().unwrap_or("-").to_owned());
    }
    out
}

#[tokio::test]
async fn registrations_over_hl7_are_acknowledged_applied_once_and_ordered_by_registration_time() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut app = start_args(&data, &["--hl7", "127.0.0.1:0"]);
    let messages = vec![
        a04("M1", "V-LATE", "P-1", "internal-medicine", &ago(40)),
        // Registered earlier, arrives later: it goes ahead.
        a04("M2", "V-EARLY", "P-2", "internal-medicine", &ago(50)),
        // The HIS resends M1 (no ACK seen): nothing changes.
        a04("M1", "V-LATE", "P-1", "internal-medicine", &ago(40)),
        // 退号 before its registration arrives, then the registration: never a ticket.
        a11("M3", "V-GONE"),
        a04("M4", "V-GONE", "P-3", "internal-medicine", &ago(45)),
        // A department the hospital does not have: AE naming PV1-3.
        a04("M5", "V-X", "P-4", "NO-SUCH-DEPT", &ago(30)),
        // A registration without its visit number: AR naming PV1-19.
        a04("M6", "", "P-5", "internal-medicine", &ago(30)),
        // Not a message type a queue takes.
        format!("MSH|^~\\&|HIS|CITYHOSP|CLINICFLOW|CITYHOSP|{}||MDM^T02|M7|P|2.5\rTXA|1|CN\r", ago(0)),
        // A later registration: behind the others.
        a04("M8", "V-OK", "P-6", "internal-medicine", &ago(20)),
    ];
    let acks = send(&app, &messages, "utf-8");
    assert_eq!(msa(&acks), ["AA", "AA", "AA", "AA", "AA", "AE", "AR", "AR", "AA"], "{acks:#?}");
    assert_eq!(acks[0]["refers"], "M1");
    assert_eq!(acks[5]["err"], "PV1^1^3", "{}", acks[5]["raw"]);
    assert!(acks[5]["raw"].as_str().unwrap().contains("NO-SUCH-DEPT"));
    assert_eq!(acks[6]["err"], "PV1^1^19");
    assert!(acks[7]["raw"].as_str().unwrap().contains("|200^"), "{}", acks[7]["raw"]);

    assert_eq!(line(&app).await, ["V-EARLY", "V-LATE", "V-OK"], "registration time, not arrival; once each; the withdrawn one never");
    // 退号 after it arrived: cancelled, never called.
    assert_eq!(msa(&send(&app, &[a11("M9", "V-LATE")], "utf-8")), ["AA"]);
    assert_eq!(line(&app).await, ["V-EARLY", "V-OK"]);
    let called = app.call_next("internal-medicine", "c-101").await.unwrap();
    assert_eq!(called["his"]["id"], "V-EARLY");
    assert_eq!(called["his"]["source"], "hl7");

    // Health: the adapter's last success and its errors, in the API and the metrics.
    let his = app.get_json("/api/v1/his").await;
    let a = &his["adapters"][0];
    assert_eq!((a["adapter"].as_str(), a["messages"].as_u64(), a["errors"].as_u64()), (Some("hl7"), Some(10), Some(3)), "{his}");
    assert!(a["last_success"].is_i64() && a["last_error"].as_str().unwrap().contains("MSH-9"), "{his}");
    let m = app.get("/metrics").await.text().await.unwrap();
    assert!(m.contains("clinicflow_his_messages_total{adapter=\"hl7\",result=\"rejected\"} 2"), "{}", m.lines().filter(|l| l.contains("his")).collect::<Vec<_>>().join("\n"));

    // Acknowledged means durable: after kill -9 the line is the same, and the withdrawn
    // registration, sent again, still never becomes a ticket.
    app.kill9();
    let app = start_args(&data, &["--hl7", "127.0.0.1:0"]);
    assert_eq!(line(&app).await, ["V-OK"]);
    assert_eq!(msa(&send(&app, &[a04("M4", "V-GONE", "P-3", "internal-medicine", &ago(45)), a04("M8", "V-OK", "P-6", "internal-medicine", &ago(20))], "utf-8")), ["AA", "AA"]);
    assert_eq!(line(&app).await, ["V-OK"]);
}

#[tokio::test]
async fn a_registration_of_an_earlier_day_is_refused_naming_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let app = start_args(dir.path(), &["--hl7", "127.0.0.1:0"]);
    let three_days_ago = {
        let t = chrono::Utc.timestamp_millis_opt(crate::helpers::test_at_ms() - 3 * 86_400_000).unwrap();
        chrono_tz::Asia::Shanghai.from_utc_datetime(&t.naive_utc()).format("%Y%m%d%H%M%S").to_string()
    };
    let acks = send(&app, &[a04("B1", "V-OLD", "P-OLD", "internal-medicine", &three_days_ago), a04("B2", "V-NEW", "P-NEW", "internal-medicine", &ago(5))], "utf-8");
    assert_eq!(msa(&acks), ["AE", "AA"], "{acks:#?}");
    assert_eq!(acks[0]["err"], "EVN^1^6", "{}", acks[0]["raw"]);
    assert!(acks[0]["raw"].as_str().unwrap().contains("earlier day"), "{}", acks[0]["raw"]);
    assert_eq!(line(&app).await, ["V-NEW"], "not at the head of today's line, nor anywhere in it");
}

/// Registered, withdrawn and registered again — the withdrawal arriving last (sent by another
/// interface, or resent late): the newest change decides, the patient keeps a ticket, and
/// after `kill -9` too. A withdrawal newer than everything still cancels.
#[tokio::test]
async fn a_late_older_withdrawal_does_not_cancel_a_newer_registration() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut app = start_args(&data, &["--hl7", "127.0.0.1:0"]);
    let messages = vec![
        a04("R1", "V-BACK", "P-1", "internal-medicine", &ago(30)),
        a04("R3", "V-BACK", "P-1", "internal-medicine", &ago(10)),
        a11_at("R2", "V-BACK", &ago(20)),
    ];
    assert_eq!(msa(&send(&app, &messages, "utf-8")), ["AA", "AA", "AA"]);
    assert_eq!(line(&app).await, ["V-BACK"], "the late withdrawal is older than the registration it meets");
    app.kill9();
    let app = start_args(&data, &["--hl7", "127.0.0.1:0"]);
    assert_eq!(msa(&send(&app, &[a11_at("R2", "V-BACK", &ago(20))], "utf-8")), ["AA"]);
    assert_eq!(line(&app).await, ["V-BACK"]);
    assert_eq!(msa(&send(&app, &[a11("R4", "V-BACK")], "utf-8")), ["AA"]);
    assert!(line(&app).await.is_empty(), "a newer withdrawal cancels");
}

#[tokio::test]
async fn a_his_that_speaks_gb18030_is_understood_and_answered_in_kind() {
    let dir = tempfile::tempdir().unwrap();
    let app = start_args(&dir.path().join("data"), &["--hl7", "127.0.0.1:0"]);
    let acks = send(&app, &[a04("G1", "V-GB", "P-GB", "internal-medicine", &ago(10))], "gb18030");
    assert_eq!(msa(&acks), ["AA"]);
    let q = app.get_json("/api/v1/queues/internal-medicine").await;
    let t = app.get_json(&format!("/api/v1/tickets/{}", q["waiting"][0]["ticket"].as_str().unwrap())).await;
    assert_eq!(t["name"], "王小明", "the name decoded from GB18030");
}

#[tokio::test]
async fn orders_over_hl7_reach_the_patients_plan_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let app = start_args(&dir.path().join("data"), &["--hl7", "127.0.0.1:0"]);
    let orm = |control: &str, patient: &str, pairs: &[(&str, &str, &str)]| {
        let mut m = format!("MSH|^~\\&|HIS|CITYHOSP|CLINICFLOW|CITYHOSP|{}||ORM^O01^ORM_O01|{control}|P|2.4\rPID|1||{patient}\r", ago(0));
        for (i, (ctl, id, code)) in pairs.iter().enumerate() {
            m.push_str(&format!("ORC|{ctl}|{id}\rOBR|{}|{id}||{code}^text\r", i + 1));
        }
        m
    };
    let messages = vec![
        a04("R1", "V-ORD", "P-ORD", "internal-medicine", &ago(30)),
        orm("O1", "P-ORD", &[("NW", "ORD-ECG", "ECG"), ("NW", "ORD-RET", "RETURN-IM")]),
        // One unknown code: the whole message is refused, the good order in it is not stored.
        orm("O2", "P-ORD", &[("NW", "ORD-LAB", "LAB-CBC"), ("NW", "ORD-X", "XYZ-999")]),
        // Orders for a patient nobody registered.
        orm("O3", "P-NOBODY", &[("NW", "ORD-1", "ECG")]),
        // The ECG is cancelled in the HIS.
        orm("O4", "P-ORD", &[("CA", "ORD-ECG", "ECG")]),
    ];
    let acks = send(&app, &messages, "utf-8");
    assert_eq!(msa(&acks), ["AA", "AA", "AE", "AE", "AA"], "{acks:#?}");
    assert_eq!(acks[2]["err"], "OBR^1^4");
    assert!(acks[2]["raw"].as_str().unwrap().contains("XYZ-999"));
    assert_eq!(acks[3]["err"], "PID^1^3");
    let v = app.get_json("/api/v1/patients/P-ORD/orders").await;
    let mut orders: Vec<(String, String)> = v["orders"].as_array().unwrap().iter().map(|o| (o["id"].as_str().unwrap().to_owned(), o["status"].as_str().unwrap().to_owned())).collect();
    orders.sort();
    assert_eq!(orders, [("ORD-ECG".to_owned(), "cancelled".to_owned()), ("ORD-RET".to_owned(), "active".to_owned())], "{v}");

    // The lab system reports: a final result for the patient's blood test (and one for an order
    // clinicflow does not hold, and a whole other patient's: the feed is the hospital's), and a
    // preliminary one, which changes nothing.
    let oru = |control: &str, patient: &str, obrs: &[(&str, &str)]| {
        let mut m = format!("MSH|^~\\&|LIS|CITYHOSP|CLINICFLOW|CITYHOSP|{}||ORU^R01^ORU_R01|{control}|P|2.5\rPID|1||{patient}\r", ago(0));
        for (i, (id, status)) in obrs.iter().enumerate() {
            m.push_str(&format!("OBR|{}|{id}||CBC|||||||||||||||||||||{status}\rOBX|1|NM|WBC||5.4\r", i + 1));
        }
        m
    };
    let messages = vec![
        orm("O5", "P-ORD", &[("NW", "ORD-LAB2", "LAB-CBC")]),
        oru("U1", "P-ORD", &[("ORD-LAB2", "P")]),
        oru("U2", "P-ORD", &[("ORD-LAB2", "F"), ("ORD-NOT-OURS", "F")]),
        oru("U3", "P-SOMEONE-ELSE", &[("ORD-77", "F")]),
        oru("U2", "P-ORD", &[("ORD-LAB2", "F"), ("ORD-NOT-OURS", "F")]),
    ];
    assert_eq!(msa(&send(&app, &messages, "utf-8")), ["AA", "AA", "AA", "AA", "AA"]);
    let v = app.get_json("/api/v1/patients/P-ORD/orders").await;
    let lab = v["orders"].as_array().unwrap().iter().find(|o| o["id"] == "ORD-LAB2").unwrap().clone();
    assert!(lab["results_ms"].is_i64(), "{v}");
    assert!(v["orders"].as_array().unwrap().iter().filter(|o| o["id"] != "ORD-LAB2").all(|o| o["results_ms"].is_null()), "{v}");
    let his = app.get_json("/api/v1/his").await;
    assert_eq!(his["adapters"][0]["errors"], 2, "results for orders not held are no errors: {his}");
}

#[tokio::test]
async fn a_crash_while_the_his_is_sending_loses_and_doubles_nothing() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut app = start_args(&data, &["--hl7", "127.0.0.1:0"]);
    // 120 registrations, a second apart by the HIS's clock, sent newest first.
    let n = 120;
    let messages: Vec<String> = (0..n).rev().map(|i| a04(&format!("C{i}"), &format!("V{i:03}"), &format!("P{i:03}"), "internal-medicine", &ago(200 - i as i64))).collect();
    let file = dir.path().join("messages.json");
    std::fs::write(&file, serde_json::to_string(&messages).unwrap()).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/hl7_send.py");
    let mut sender = std::process::Command::new("python3")
        .arg(&script)
        .args(["127.0.0.1", &app.hl7_port.unwrap().to_string()])
        .arg(&file)
        .env("MARK_AFTER", "40")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut lines = std::io::BufReader::new(sender.stdout.take().unwrap()).lines();
    // The server dies without a goodbye while the HIS is in the middle of sending.
    assert_eq!(lines.next().unwrap().unwrap(), "MARK");
    app.kill9();
    let acked: Vec<Value> = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    sender.wait().unwrap();
    assert!(acked.len() >= 40 && acked.len() < n, "{} acknowledged before the crash", acked.len());
    assert!(acked.iter().all(|a| a["msa"] == "AA"));

    // Everything acknowledged is there after the restart.
    let app = start_args(&data, &["--hl7", "127.0.0.1:0"]);
    let before = line(&app).await;
    assert!(before.len() >= acked.len(), "{} tickets, {} acknowledged", before.len(), acked.len());
    // The HIS sends again everything it is not sure of (here: all of it): each registration is
    // one ticket, in registration order.
    assert!(msa(&send(&app, &messages, "utf-8")).iter().all(|c| c == "AA"));
    let expected: Vec<String> = (0..n).map(|i| format!("V{i:03}")).collect();
    assert_eq!(line(&app).await, expected);
}

#[tokio::test]
async fn only_the_allowed_his_addresses_may_send() {
    let dir = tempfile::tempdir().unwrap();
    let app = start_args(&dir.path().join("a"), &["--hl7", "127.0.0.1:0", "--hl7-allow", "10.0.0.0/8"]);
    assert!(send(&app, &[a04("A1", "V-A1", "P-1", "internal-medicine", &ago(10))], "utf-8").is_empty(), "refused: no ACK");
    assert!(line(&app).await.is_empty());
    let his = app.get_json("/api/v1/his").await;
    assert!(his["adapters"][0]["last_error"].as_str().unwrap().contains("not in --hl7-allow"), "{his}");
    let m = app.get("/metrics").await.text().await.unwrap();
    assert!(m.contains("clinicflow_his_messages_total{adapter=\"hl7\",result=\"refused_peer\"}"), "counted");

    let app = start_args(&dir.path().join("b"), &["--hl7", "127.0.0.1:0", "--hl7-allow", "10.1.2.3, 127.0.0.0/8"]);
    assert_eq!(msa(&send(&app, &[a04("A1", "V-A1", "P-1", "internal-medicine", &ago(10))], "utf-8")), ["AA"]);
    assert_eq!(line(&app).await, ["V-A1"]);
}
