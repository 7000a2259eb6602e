//! The HIS WebService, end to end: an independent SOAP client (python `zeep`, installed by
//! `scripts/test`) reads the published WSDL and registers, repeats, withdraws, re-registers and
//! checks in, over SOAP 1.1 and 1.2; mistakes are SOAP faults naming the element, never a 500.

use crate::helpers::{spawn_app, TestApp, TOKEN};
use crate::his::line;
use serde_json::{json, Value};

fn call(app: &TestApp, calls: Value) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calls.json");
    std::fs::write(&path, calls.to_string()).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/soap_call.py");
    // The times it sends are on the servers' pinned clock, never the machine's.
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(&app.base)
        .arg(TOKEN)
        .arg(&path)
        .arg(crate::helpers::test_at_ms().to_string())
        .arg(crate::helpers::his_minute_ms().to_string())
        .output()
        .expect("python3 (scripts/test installs zeep)");
    assert!(out.status.success(), "zeep client: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn register(id: &str, minutes_ago: i64) -> Value {
    json!({"op": "Register", "args": {"registrationId": id, "patientId": format!("P-{id}"), "patientName": "张三", "department": "internal-medicine", "registeredAt": minutes_ago}})
}

#[tokio::test]
async fn a_zeep_client_works_against_the_published_wsdl() {
    let app = spawn_app().await;
    let wsdl = app.client.get(app.url("/soap/his?wsdl")).send().await.unwrap();
    assert_eq!(wsdl.status(), 200);
    assert!(wsdl.text().await.unwrap().contains(&format!("location=\"{}/soap/his\"", app.base)), "the endpoint is where the WSDL was found");

    let mut reregister = register("S3", 1);
    reregister["args"]["changedAt"] = json!(0);
    let results = call(
        &app,
        json!([
            register("S1", 30),
            register("S2", 40),
            register("S1", 30),
            {"op": "Cancel", "args": {"registrationId": "S2"}},
            // Registered, withdrawn, then registered again later (a newer changedAt): a new ticket.
            { "op": "Register", "args": {"registrationId": "S3", "patientId": "P-S3", "department": "internal-medicine", "registeredAt": 35, "changedAt": 35}},
            {"op": "Cancel", "args": {"registrationId": "S3", "changedAt": 2}},
            reregister,
            // An unknown department and a check-in of a registration that never came: faults.
            {"op": "Register", "args": {"registrationId": "S4", "patientId": "P-S4", "department": "NO-SUCH", "registeredAt": 5}},
            {"op": "CheckIn", "args": {"registrationId": "NEVER"}},
            // SOAP 1.2, with the room the HIS assigned.
            {"op": "Register", "binding": "soap12", "args": {"registrationId": "S5", "patientId": "P-S5", "department": "internal-medicine", "room": "c-102", "registeredAt": 20}},
            // Registered three days ago: not put at the head of today's line.
            register("S6", 3 * 24 * 60),
        ]),
    );
    let ok = |i: usize| results[i]["ok"].clone();
    assert_eq!(ok(0)["result"], "applied", "{results:#?}");
    assert!(ok(0)["number"].as_str().is_some_and(|n| !n.is_empty()) && ok(0)["queue"] == "internal-medicine", "{results:#?}");
    assert_eq!(ok(2)["result"], "repeat");
    assert_eq!(ok(2)["ticketId"], ok(0)["ticketId"], "a repeat is the same ticket");
    assert_eq!(ok(3)["result"], "applied");
    assert_eq!(ok(6)["result"], "applied", "{results:#?}");
    assert_ne!(ok(6)["ticketId"], ok(4)["ticketId"], "a re-registration is a new ticket");
    assert_eq!((results[7]["fault"]["code"].as_str(), results[7]["fault"]["field"].as_str()), (Some("unknown_department"), Some("department")), "{results:#?}");
    assert!(results[7]["fault"]["message"].as_str().unwrap().contains("NO-SUCH"));
    assert_eq!(results[8]["fault"]["code"], "unknown_registration", "{results:#?}");
    assert_eq!(ok(9)["result"], "applied", "{results:#?}");
    let s5 = app.get_json(&format!("/api/v1/tickets/{}", ok(9)["ticketId"].as_str().unwrap())).await;
    assert_eq!(s5["doctor"], "dr-02", "the room the HIS assigned: the doctor sitting there");

    assert_eq!((results[10]["fault"]["code"].as_str(), results[10]["fault"]["field"].as_str()), (Some("not_today"), Some("registeredAt")), "{results:#?}");
    assert_eq!(line(&app).await, ["S1", "S5", "S3"], "registration time; 退号 never; the re-registration at the back; the old one nowhere");
    let his = app.get_json("/api/v1/his").await;
    let soap = his["adapters"].as_array().unwrap().iter().find(|a| a["adapter"] == "soap").unwrap().clone();
    assert_eq!((soap["messages"].as_u64(), soap["errors"].as_u64()), (Some(11), Some(3)), "{soap}");
}

#[tokio::test]
async fn a_wrong_namespace_or_a_broken_envelope_is_a_fault_naming_it_and_changes_nothing() {
    let app = spawn_app().await;
    let post = |body: &'static str, ct: &'static str, auth: bool| {
        let mut r = app.client.post(app.url("/soap/his")).header("content-type", ct).body(body);
        if auth {
            r = r.bearer_auth(TOKEN);
        }
        async move {
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let wrong_ns = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><Register xmlns="urn:vendor:his"><registrationId>X1</registrationId><patientId>P</patientId><department>internal-medicine</department><registeredAt>2026-11-26T08:00:00</registeredAt></Register></s:Body></s:Envelope>"#;
    let (status, body) = post(wrong_ns, "text/xml; charset=utf-8", true).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("<faultcode>soap:Client</faultcode>") && body.contains("<cf:code>wrong_namespace</cf:code>") && body.contains("<cf:field>Register</cf:field>"), "{body}");
    assert!(body.contains("urn:clinicflow:his:1"), "the fault says the right namespace: {body}");

    let v12 = r#"<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body><Cancel xmlns="urn:clinicflow:his:1"><registrationId></registrationId></Cancel></e:Body></e:Envelope>"#;
    let (status, body) = post(v12, "application/soap+xml", true).await;
    assert_eq!(status, 400);
    assert!(body.contains("soap:Sender") && body.contains("<cf:field>registrationId</cf:field>"), "{body}");

    for (garbage, code) in [("not xml at all", "malformed_xml"), ("<html/>", "not_soap"), ("<s:Envelope xmlns:s=\"urn:x\"><s:Body/></s:Envelope>", "wrong_namespace")] {
        let (status, body) = post(garbage, "text/xml", true).await;
        assert_eq!(status, 400, "{garbage}: {body}");
        assert!(body.contains(&format!("<cf:code>{code}</cf:code>")), "{garbage}: {body}");
    }
    let (status, body) = post(wrong_ns, "text/xml", false).await;
    assert_eq!(status, 401);
    assert!(body.contains("missing_token"), "{body}");

    let q = app.get_json("/api/v1/queues/internal-medicine").await;
    assert_eq!(q["counts"]["waiting"], 0, "nothing applied");
}
