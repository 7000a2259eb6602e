//! Every kind of bad input gets a 4xx with a stable code and changes nothing.

use crate::helpers::{error_code, spawn_app, TOKEN};
use serde_json::json;

#[tokio::test]
async fn bad_input_is_refused_with_a_code_and_changes_nothing() {
    let app = spawn_app().await;
    let a = app.issue("internal-medicine", "p1").await;
    let b = app.issue("surgery", "p2").await;
    let a_id = a["id"].as_str().unwrap().to_owned();
    let b_token = b["access_token"].as_str().unwrap().to_owned();
    let c = &app.client;
    let u = |p: &str| app.url(p);
    let before = app.observable_state().await;

    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        ("malformed JSON", c.post(u("/api/v1/queues/internal-medicine/tickets")).bearer_auth(TOKEN).body("{\"patient_id\": \"p"), 400, "invalid_json"),
        ("not JSON at all", c.post(u("/api/v1/queues/internal-medicine/call-next")).bearer_auth(TOKEN).body("room=c-101"), 400, "invalid_json"),
        ("missing body", c.post(u("/api/v1/queues/internal-medicine/tickets")).bearer_auth(TOKEN), 400, "missing_body"),
        ("missing field", c.post(u("/api/v1/queues/internal-medicine/tickets")).bearer_auth(TOKEN).json(&json!({"name": "x"})), 422, "invalid_field"),
        ("unknown field", c.post(u("/api/v1/queues/internal-medicine/tickets")).bearer_auth(TOKEN).json(&json!({"patient_id": "p", "name": "x", "vip": true})), 422, "invalid_field"),
        ("bad id", c.post(u("/api/v1/queues/internal-medicine/tickets")).bearer_auth(TOKEN).json(&json!({"patient_id": "a b/c", "name": "x"})), 422, "invalid_field"),
        ("unknown priority", c.post(u("/api/v1/queues/internal-medicine/tickets")).bearer_auth(TOKEN).json(&json!({"patient_id": "p", "name": "x", "priority": "vip"})), 422, "unknown_priority"),
        ("unknown doctor", c.post(u("/api/v1/queues/internal-medicine/tickets")).bearer_auth(TOKEN).json(&json!({"patient_id": "p", "name": "x", "doctor": "dr-99"})), 422, "unknown_doctor"),
        ("inverted slot", c.post(u("/api/v1/queues/internal-medicine/tickets")).bearer_auth(TOKEN).json(&json!({"patient_id": "p", "name": "x", "slot": {"start": "2026-11-24T10:00:00+08:00", "end": "2026-11-24T09:00:00+08:00"}})), 422, "invalid_slot"),
        ("oversize body", c.post(u("/api/v1/queues/internal-medicine/tickets")).bearer_auth(TOKEN).json(&json!({"patient_id": "p", "name": "x".repeat(100_000)})), 413, "payload_too_large"),
        ("unknown queue", c.post(u("/api/v1/queues/nope/tickets")).bearer_auth(TOKEN).json(&json!({"patient_id": "p", "name": "x"})), 404, "unknown_queue"),
        ("unknown queue snapshot", c.get(u("/api/v1/queues/nope")).bearer_auth(TOKEN), 404, "unknown_queue"),
        ("unknown ticket", c.post(u("/api/v1/tickets/t000000/complete")).bearer_auth(TOKEN), 404, "unknown_ticket"),
        ("unknown ticket get", c.get(u("/api/v1/tickets/t000000")).bearer_auth(TOKEN), 404, "unknown_ticket"),
        ("unknown room", c.post(u("/api/v1/queues/internal-medicine/call-next")).bearer_auth(TOKEN).json(&json!({"room": "c-305"})), 404, "unknown_room"),
        ("unknown room pause", c.post(u("/api/v1/rooms/nowhere/pause")).bearer_auth(TOKEN), 404, "unknown_room"),
        ("never called, complete", c.post(u(&format!("/api/v1/tickets/{a_id}/complete"))).bearer_auth(TOKEN), 409, "illegal_transition"),
        ("never called, skip", c.post(u(&format!("/api/v1/tickets/{a_id}/skip"))).bearer_auth(TOKEN), 409, "illegal_transition"),
        ("not completed, return", c.post(u(&format!("/api/v1/tickets/{a_id}/return"))).bearer_auth(TOKEN), 409, "illegal_transition"),
        ("transfer to itself", c.post(u(&format!("/api/v1/tickets/{a_id}/transfer"))).bearer_auth(TOKEN).json(&json!({"to": "internal-medicine"})), 422, "same_queue"),
        ("transfer nowhere", c.post(u(&format!("/api/v1/tickets/{a_id}/transfer"))).bearer_auth(TOKEN).json(&json!({"to": "nope"})), 404, "unknown_queue"),
        ("missing token", c.post(u("/api/v1/queues/internal-medicine/call-next")).json(&json!({"room": "c-101"})), 401, "missing_token"),
        ("wrong token", c.post(u("/api/v1/queues/internal-medicine/call-next")).bearer_auth("not-the-token").json(&json!({"room": "c-101"})), 401, "invalid_token"),
        ("patient token on staff route", c.post(u("/api/v1/queues/internal-medicine/call-next")).bearer_auth(&b_token).json(&json!({"room": "c-101"})), 401, "invalid_token"),
        ("patient token on another ticket", c.get(u(&format!("/api/v1/tickets/{a_id}?token={b_token}"))), 403, "forbidden"),
        ("patient checks in another ticket", c.post(u(&format!("/api/v1/tickets/{a_id}/check-in"))).bearer_auth(&b_token), 403, "forbidden"),
        ("no token on a ticket", c.get(u(&format!("/api/v1/tickets/{a_id}"))), 401, "missing_token"),
        ("bad idempotency key", c.post(u("/api/v1/queues/internal-medicine/tickets")).bearer_auth(TOKEN).header("Idempotency-Key", "").json(&json!({"patient_id": "p", "name": "x"})), 400, "invalid_idempotency_key"),
        ("no such route", c.get(u("/api/v1/nothing")).bearer_auth(TOKEN), 404, "no_route"),
        ("no such action", c.post(u(&format!("/api/v1/tickets/{a_id}/teleport"))).bearer_auth(TOKEN), 404, "no_route"),
        ("wrong method", c.delete(u("/api/v1/queues/internal-medicine")).bearer_auth(TOKEN), 405, "method_not_allowed"),
    ];
    for (what, req, status, code) in cases {
        let got = error_code(req.send().await.unwrap()).await;
        assert_eq!(got, (status, code.to_owned()), "{what}");
    }

    // A duplicate idempotency key with a different body.
    let key = |body: serde_json::Value| {
        c.post(u("/api/v1/queues/internal-medicine/tickets")).bearer_auth(TOKEN).header("Idempotency-Key", "dup-1").json(&body).send()
    };
    assert_eq!(key(json!({"patient_id": "p3", "name": "x"})).await.unwrap().status(), 201);
    let mid = app.observable_state().await;
    assert_eq!(error_code(key(json!({"patient_id": "p4", "name": "y"})).await.unwrap()).await, (422, "idempotency_key_reused".to_owned()));
    assert_eq!(app.observable_state().await, mid, "a reused key changed nothing");

    // Everything before the idempotency case left the queues exactly as they were.
    let mut expected = before;
    let mut now = mid;
    for v in [&mut expected, &mut now] {
        for q in v["queues"].as_array_mut().unwrap() {
            if q["id"] == "internal-medicine" {
                q["waiting"].as_array_mut().unwrap().retain(|w| w["number"] == "A001");
                q["counts"]["waiting"] = json!(1);
            }
        }
    }
    assert_eq!(now, expected);
    let health = c.get(u("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "the server kept serving");
}

#[tokio::test]
async fn a_device_token_cannot_transfer_and_a_nurse_token_can() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("hospital.toml");
    let demo = include_str!("../../config/demo-hospital.toml");
    let tokens = "\n[[tokens]]\nname = \"keypad-1\"\nrole = \"device\"\ntoken = \"keypad-token-0123456789\"\n\n[[tokens]]\nname = \"nurse-li\"\nrole = \"nurse\"\ntoken = \"nurse-token-0123456789ab\"\n";
    std::fs::write(&cfg, format!("{demo}{tokens}")).unwrap();
    let data = dir.path().join("data");
    let app = crate::helpers::start(&data, Some(&cfg));
    let t = app.issue("ent", "p1").await;
    let id = t["id"].as_str().unwrap();
    let transfer = |token: &'static str| {
        app.client.post(app.url(&format!("/api/v1/tickets/{id}/transfer"))).bearer_auth(token).json(&json!({"to": "dermatology"})).send()
    };
    assert_eq!(error_code(transfer("keypad-token-0123456789").await.unwrap()).await, (403, "forbidden".to_owned()));
    let r = app.client.post(app.url("/api/v1/queues/ent/call-next")).bearer_auth("keypad-token-0123456789").json(&json!({"room": "c-204"})).send().await.unwrap();
    assert_eq!(r.status(), 200, "a keypad may call");
    assert_eq!(transfer("nurse-token-0123456789ab").await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_broken_config_file_is_refused_at_start_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "site = \"x\"\nname = \"x\"\n[[queues]]\nid = \"q\"\nname = \"q\"\ndepartment = \"none\"\nprefix = \"A\"\nrooms = [\"r\"]\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clinicflow"))
        .args(["serve", "--http", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown department none"), "{err}");
}

#[tokio::test]
async fn a_staff_token_in_a_url_is_refused_and_a_patients_link_still_works() {
    let app = spawn_app().await;
    let t = app.issue("internal-medicine", "P-URL-1").await;
    let r = app.client.get(app.url(&format!("/api/v1/queues?token={TOKEN}"))).send().await.unwrap();
    assert_eq!(error_code(r).await, (401, "token_in_url".to_owned()));
    let r = app.client.post(app.url(&format!("/api/v1/queues/internal-medicine/call-next?token={TOKEN}"))).json(&json!({"room": "c-101"})).send().await.unwrap();
    assert_eq!(error_code(r).await, (401, "token_in_url".to_owned()));
    assert_eq!(app.get_json("/api/v1/queues/internal-medicine").await["counts"]["waiting"], 1, "nobody was called");
    // The same token in the header works; a patient's own link carries its token in the URL.
    assert_eq!(app.get("/api/v1/queues").await.status(), 200);
    let link = app.client.get(app.url(&format!("/api/v1/tickets/{}?token={}", t["id"].as_str().unwrap(), t["access_token"].as_str().unwrap()))).send().await.unwrap();
    assert_eq!(link.status(), 200);
}

#[tokio::test]
async fn a_patients_link_opens_nothing_once_the_visits_day_has_ended() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut app = crate::helpers::start_with_env(&data, None, &[("CLINICFLOW_CLOCK", "2026-12-07T23:59:30+08:00")]);
    let t = app.issue("internal-medicine", "P-LATE-1").await;
    let link = format!("/api/v1/tickets/{}?token={}", t["id"].as_str().unwrap(), t["access_token"].as_str().unwrap());
    assert_eq!(app.client.get(app.url(&link)).send().await.unwrap().status(), 200, "today it opens the ticket");
    app.kill9();

    // The next morning, on the hospital's clock: the same link is refused, and says why.
    let app = crate::helpers::start_with_env(&data, None, &[("CLINICFLOW_CLOCK", "2026-12-08T07:30:00+08:00")]);
    assert_eq!(error_code(app.client.get(app.url(&link)).send().await.unwrap()).await, (403, "token_expired".to_owned()));
    let wrong = format!("/api/v1/tickets/{}?token=0123456789abcdef0123456789abcdef", t["id"].as_str().unwrap());
    assert_eq!(error_code(app.client.get(app.url(&wrong)).send().await.unwrap()).await, (403, "forbidden".to_owned()));
    // A ticket of the new day gets a link of the new day.
    let today = app.issue("internal-medicine", "P-LATE-1").await;
    let link = format!("/api/v1/tickets/{}?token={}", today["id"].as_str().unwrap(), today["access_token"].as_str().unwrap());
    assert_eq!(app.client.get(app.url(&link)).send().await.unwrap().status(), 200);
}
