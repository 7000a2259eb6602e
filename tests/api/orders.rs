//! HIS orders and the next stop, black box: FHIR bundles in, bad ones refused whole, the next
//! stop with its route and reason, accepting it takes the ticket, and orders survive `kill -9`.

use crate::helpers::{error_code, start, TestApp, TOKEN};
use serde_json::{json, Value};
use std::path::Path;

/// The demo config without opening hours, so the plan does not depend on when the test runs.
fn config(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo-hospital.toml")).unwrap();
    let text: String = text.lines().filter(|l| !l.starts_with("open =")).map(|l| format!("{l}\n")).collect();
    let p = dir.join("hospital.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn service_request(id: &str, patient: &str, code: &str) -> Value {
    json!({"resource": {"resourceType": "ServiceRequest", "id": id, "status": "active", "intent": "order",
        "subject": {"reference": format!("Patient/{patient}")}, "code": {"coding": [{"system": "urn:oid:his", "code": code}]}}})
}

fn bundle(entries: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "type": "collection", "entry": entries})
}

fn morning_orders(patient: &str) -> Value {
    bundle(vec![
        service_request("sr-1", patient, "LAB-CBC"),
        service_request("sr-2", patient, "US-THY"),
        service_request("sr-3", patient, "ECG"),
        json!({"resource": {"resourceType": "Appointment", "id": "ap-1", "status": "booked",
            "participant": [{"actor": {"reference": format!("Patient/{patient}")}}, {"actor": {"reference": "Practitioner/dr-01"}}],
            "serviceType": [{"coding": [{"code": "RETURN-IM"}]}]}}),
    ])
}

async fn setup(app: &TestApp) {
    app.issue("internal-medicine", "p-1").await;
    // A long ultrasound queue.
    for i in 0..8 {
        app.issue("ultrasound", &format!("other-{i}")).await;
    }
}

#[tokio::test]
async fn a_fhir_bundle_gives_a_next_stop_with_route_reason_and_ticket() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let app = start(&dir.path().join("data"), Some(&cfg));
    setup(&app).await;
    let r = app.post("/api/v1/patients/p-1/orders", morning_orders("p-1")).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let services: Vec<&str> = v["orders"].as_array().unwrap().iter().map(|o| o["service"].as_str().unwrap()).collect();
    assert_eq!(services, ["blood", "ultrasound", "ecg", "return-internal-medicine"]);

    let v = app.get_json("/api/v1/patients/p-1/next?at=K-A-L1&lang=en").await;
    let next = &v["next"];
    assert_ne!(next["service"], "ultrasound", "not into the longest queue first: {v}");
    assert_ne!(next["service"], "return-internal-medicine", "the return visit comes last");
    let plan: Vec<&str> = v["plan"].as_array().unwrap().iter().map(|p| p["service"].as_str().unwrap()).collect();
    assert_eq!(plan.last(), Some(&"return-internal-medicine"), "{plan:?}");
    assert!(!next["reason"].as_str().unwrap().is_empty());
    assert!(next["reasons"]["zh"].as_str().unwrap().chars().any(|c| c > '\u{4e00}'), "a Chinese reason too");
    assert!(next["route"]["steps"].as_array().unwrap().len() >= 2);
    assert!(next["walk_s"].as_f64().unwrap() > 0.0);

    // The plan holds a ticket in every queue the rules allow now (not the return visit yet).
    let mut hold: Vec<&str> = v["hold"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    hold.sort();
    assert_eq!(hold, ["blood", "ecg", "ultrasound"]);

    // Accepting takes those tickets; accepting again gives the same ones.
    let service = next["service"].as_str().unwrap().to_owned();
    let r = app.post("/api/v1/patients/p-1/next/accept", json!({"service": service})).await;
    assert_eq!(r.status(), 201);
    let t: Value = r.json().await.unwrap();
    let id = t["ticket"]["id"].as_str().unwrap().to_owned();
    assert_eq!(t["ticket"]["patient_id"], "p-1");
    assert_eq!(t["tickets"].as_array().unwrap().len(), 3, "{t}");
    assert!(t["tickets"].as_array().unwrap().iter().any(|k| k["ticket"]["queue"] == "ultrasound"));
    // One visit, one number: every stop shows the same number, and names the same visit.
    let numbers: std::collections::BTreeSet<&str> = t["tickets"].as_array().unwrap().iter().map(|k| k["ticket"]["number"].as_str().unwrap()).collect();
    assert_eq!(numbers.len(), 1, "{t}");
    let visits: std::collections::BTreeSet<&str> = t["tickets"].as_array().unwrap().iter().map(|k| k["ticket"]["visit"].as_str().unwrap()).collect();
    assert_eq!(visits.len(), 1, "{t}");
    let again: Value = app.post("/api/v1/patients/p-1/next/accept", json!({"service": service})).await.json().await.unwrap();
    assert_eq!(again["ticket"]["id"], id.as_str());

    // The queue completes the ticket: its order is done without the HIS saying so.
    let queue = t["ticket"]["queue"].as_str().unwrap().to_owned();
    let snap = app.get_json(&format!("/api/v1/queues/{queue}")).await;
    let room = snap["rooms"][0]["id"].as_str().unwrap().to_owned();
    let called = app.call_next(&queue, &room).await.expect("our patient is first");
    assert_eq!(called["id"], id.as_str());
    assert_eq!(app.post_empty(&format!("/api/v1/tickets/{id}/complete")).await.status(), 200);
    let v = app.get_json("/api/v1/patients/p-1/orders").await;
    let done: Vec<&str> = v["orders"].as_array().unwrap().iter().filter(|o| o["status"] == "done").map(|o| o["service"].as_str().unwrap()).collect();
    assert_eq!(done, [service.as_str()], "{v}");
    let v = app.get_json("/api/v1/patients/p-1/next?at=K-A-L1").await;
    assert_ne!(v["next"]["service"], service.as_str(), "the done stop is not offered again");

    // The HIS completes the other orders: the patient is done.
    for o in ["sr-1", "sr-2", "sr-3", "ap-1"] {
        assert_eq!(app.post_empty(&format!("/api/v1/patients/p-1/orders/{o}/complete")).await.status(), 200);
    }
    let v = app.get_json("/api/v1/patients/p-1/next").await;
    assert_eq!(v["done"], true);
    assert!(v["next"].is_null());
}

#[tokio::test]
async fn bad_orders_are_refused_whole_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let app = start(&dir.path().join("data"), Some(&cfg));
    setup(&app).await;
    let good = service_request("sr-ok", "p-1", "LAB-CBC");
    let cases: Vec<(Value, &str, &str)> = vec![
        (bundle(vec![good.clone(), json!({"resource": {"resourceType": "Patient", "id": "p-1"}})]), "invalid_fhir", "entry[1].resource.resourceType"),
        (
            bundle(vec![good.clone(), json!({"resource": {"resourceType": "ServiceRequest", "id": "x", "status": "active", "code": {"coding": [{"code": "ECG"}]}}})]),
            "invalid_fhir",
            "entry[1].resource.subject.reference",
        ),
        (bundle(vec![good.clone(), service_request("sr-x", "p-1", "NO-SUCH-CODE")]), "unknown_code", "entry[1].resource.code.coding"),
        (bundle(vec![good.clone(), service_request("sr-y", "someone-else", "ECG")]), "patient_mismatch", "entry[1].resource.subject.reference"),
        (json!({"resourceType": "Observation"}), "invalid_fhir", "resourceType"),
        (bundle(vec![]), "no_orders", "orders"),
        (json!({"orders": [{"id": "o1", "code": "ECG", "status": "maybe"}]}), "invalid_field", "orders[0].status"),
        (json!({"orders": [{"id": "o1", "code": "ECG"}, {"id": "o1", "code": "LAB-CBC"}]}), "duplicate_order", "id"),
    ];
    for (body, code, field) in cases {
        let r = app.post("/api/v1/patients/p-1/orders", body.clone()).await;
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        assert_eq!((status, v["error"]["code"].as_str().unwrap()), (422, code), "{body}");
        assert!(v["error"]["message"].as_str().unwrap().starts_with(field), "{field} in {v}");
    }
    // Nothing of any refused bundle was stored.
    let v = app.get_json("/api/v1/patients/p-1/orders").await;
    assert_eq!(v["orders"].as_array().unwrap().len(), 0, "{v}");
    // Malformed JSON, no token, an unknown patient, an unknown order.
    let r = app.client.post(app.url("/api/v1/patients/p-1/orders")).bearer_auth(TOKEN).header("content-type", "application/json").body("{\"resourceType\": ").send().await.unwrap();
    assert_eq!(error_code(r).await, (400, "invalid_json".to_owned()));
    let r = app.client.post(app.url("/api/v1/patients/p-1/orders")).json(&morning_orders("p-1")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let (s, c) = error_code(app.post("/api/v1/patients/nobody/orders", morning_orders("nobody")).await).await;
    assert_eq!((s, c.as_str()), (404, "unknown_patient"));
    let (s, c) = error_code(app.post_empty("/api/v1/patients/p-1/orders/nope/complete").await).await;
    assert_eq!((s, c.as_str()), (404, "unknown_order"));
    let (s, c) = error_code(app.post("/api/v1/patients/p-1/next/accept", json!({"service": "ecg"})).await).await;
    assert_eq!((s, c.as_str()), (422, "not_pending"));
}

#[tokio::test]
async fn acknowledged_orders_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let data = dir.path().join("data");
    let mut app = start(&data, Some(&cfg));
    setup(&app).await;
    assert_eq!(app.post("/api/v1/patients/p-1/orders", morning_orders("p-1")).await.status(), 200);
    assert_eq!(app.post_empty("/api/v1/patients/p-1/orders/sr-3/cancel").await.status(), 200);
    let before = app.get_json("/api/v1/patients/p-1/orders").await;
    app.kill9();
    let app = start(&data, Some(&cfg));
    let after = app.get_json("/api/v1/patients/p-1/orders").await;
    assert_eq!(before, after);
    assert_eq!(after["orders"][2]["status"], "cancelled");
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_stop(ws: &mut Ws) -> Value {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let wait = async {
        loop {
            if let Message::Text(m) = ws.next().await.expect("open").expect("frame") {
                let v: Value = serde_json::from_str(&m).unwrap();
                if v["type"] == "next_stop" {
                    return v;
                }
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), wait).await.expect("a next_stop within 20 s")
}

/// The patient's phone is told the next stop once orders arrive, and again when it changes, and
/// that they are done at the end — over the real WebSocket.
#[tokio::test]
async fn the_patients_phone_gets_the_next_stop_and_its_changes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let app = crate::helpers::start_with_env(&dir.path().join("data"), Some(&cfg), &[("CLINICFLOW_REPLAN_SECS", "1")]);
    let t = app.issue("internal-medicine", "p-1").await;
    let url = format!("{}/ws/tickets/{}?token={}", app.base.replacen("http://", "ws://", 1), t["id"].as_str().unwrap(), t["access_token"].as_str().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("websocket");
    let orders = json!({"orders": [{"id": "o-ecg", "code": "ECG"}, {"id": "o-ret", "code": "RETURN-IM"}]});
    assert_eq!(app.post("/api/v1/patients/p-1/orders", orders).await.status(), 200);
    // The phone may also ask, with its ticket's access token; another patient's token may not.
    let own = app.client.get(app.url(&format!("/api/v1/patients/p-1/next?token={}", t["access_token"].as_str().unwrap()))).send().await.unwrap();
    assert_eq!(own.status(), 200);
    let other = app.issue("internal-medicine", "p-2").await;
    let r = app.client.get(app.url(&format!("/api/v1/patients/p-1/next?token={}", other["access_token"].as_str().unwrap()))).send().await.unwrap();
    assert_eq!(crate::helpers::error_code(r).await, (403, "forbidden".to_owned()));
    let v = next_stop(&mut ws).await;
    assert_eq!(v["done"], false);
    assert_eq!(v["plan"]["next"]["service"], "ecg", "{v}");
    assert!(v["plan"]["next"]["route"]["steps"].as_array().unwrap().len() >= 2);
    // The ECG is done: the next stop changes to the return visit.
    assert_eq!(app.post_empty("/api/v1/patients/p-1/orders/o-ecg/complete").await.status(), 200);
    let v = next_stop(&mut ws).await;
    assert_eq!(v["plan"]["next"]["service"], "return-internal-medicine", "{v}");
    assert_eq!(app.post_empty("/api/v1/patients/p-1/orders/o-ret/complete").await.status(), 200);
    let v = next_stop(&mut ws).await;
    assert_eq!(v["done"], true, "{v}");
}

/// After the last exam the return visit waits for its results: the plan says when they are
/// expected, holds no doctor's ticket before then, and accepting it early is refused — until the
/// HIS says the results are in.
#[tokio::test]
async fn the_return_visit_is_not_taken_before_the_results() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let app = start(&dir.path().join("data"), Some(&cfg));
    let doctor = app.issue("internal-medicine", "p-1").await;
    let doctor_id = doctor["id"].as_str().unwrap().to_owned();
    // The doctor writes the orders during the consultation; its end does not do the return
    // visit it ordered.
    let room = app.get_json("/api/v1/queues/internal-medicine").await["rooms"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(app.call_next("internal-medicine", &room).await.unwrap()["id"], doctor_id.as_str());
    let orders = json!({"orders": [{"id": "o-lab", "code": "LAB-CBC"}, {"id": "o-ret", "code": "RETURN-IM"}]});
    assert_eq!(app.post("/api/v1/patients/p-1/orders", orders).await.status(), 200);
    assert_eq!(app.post_empty(&format!("/api/v1/tickets/{doctor_id}/complete")).await.status(), 200);
    let v = app.get_json("/api/v1/patients/p-1/orders").await;
    assert!(v["orders"].as_array().unwrap().iter().all(|o| o["status"] == "active"), "{v}");
    // The blood test is taken and done (its results take 40 minutes).
    let r = app.post("/api/v1/patients/p-1/next/accept", json!({"service": "blood"})).await;
    assert_eq!(r.status(), 201);
    let lab: Value = r.json().await.unwrap();
    let lab_id = lab["ticket"]["id"].as_str().unwrap().to_owned();
    assert_eq!(lab["tickets"].as_array().unwrap().len(), 1, "no return ticket while the blood test is pending: {lab}");
    let lab_room = app.get_json("/api/v1/queues/lab").await["rooms"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(app.call_next("lab", &lab_room).await.unwrap()["id"], lab_id.as_str());
    assert_eq!(app.post_empty(&format!("/api/v1/tickets/{lab_id}/complete")).await.status(), 200);

    let v = app.get_json("/api/v1/patients/p-1/next?at=K-A-L1&lang=en").await;
    assert_eq!(v["next"]["service"], "return-internal-medicine", "{v}");
    assert_eq!(v["hold"], json!([]), "no doctor's ticket before the results: {v}");
    assert!(v["results_expected_at"].is_string(), "{v}");
    assert!(v["next"]["reason"].as_str().unwrap().contains("the results are expected at"), "{v}");
    assert!(v["next"]["expected_wait_s"].as_f64().unwrap() >= 30.0 * 60.0, "the wait includes the results: {v}");
    let (s, c) = error_code(app.post("/api/v1/patients/p-1/next/accept", json!({"service": "return-internal-medicine"})).await).await;
    assert_eq!((s, c.as_str()), (409, "results_pending"));
    let t = app.get_json("/api/v1/queues/internal-medicine").await;
    assert_eq!(t["counts"]["waiting"], 0, "nothing taken: {t}");
    // The HIS says the results are in: the return visit opens at once, on the doctor's ticket.
    let r = app.post_empty("/api/v1/patients/p-1/orders/o-lab/results").await;
    assert_eq!(r.status(), 200);
    let o: Value = r.json().await.unwrap();
    assert!(o["results_ms"].is_i64() && o["status"] == "done", "{o}");
    assert_eq!(error_code(app.post_empty("/api/v1/patients/p-1/orders/nope/results").await).await, (404, "unknown_order".into()));
    let v = app.get_json("/api/v1/patients/p-1/next?at=K-A-L1&lang=en").await;
    assert_eq!(v["hold"], json!(["return-internal-medicine"]), "{v}");
    assert!(v["results_expected_at"].is_null(), "{v}");
    let r = app.post("/api/v1/patients/p-1/next/accept", json!({"service": "return-internal-medicine"})).await;
    assert_eq!(r.status(), 201);
    let back: Value = r.json().await.unwrap();
    assert_eq!(back["ticket"]["id"], doctor_id.as_str(), "the return visit is the doctor's own ticket: {back}");
    assert_eq!(back["ticket"]["status"], "waiting");
}
