use crate::helpers::{error_code, spawn_app, TOKEN};
use serde_json::json;

#[tokio::test]
async fn a_patient_is_issued_called_seen_and_completed() {
    let app = spawn_app().await;
    let health: serde_json::Value = app.client.get(app.url("/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");

    let a = app.issue("internal-medicine", "p1").await;
    let b = app.issue("internal-medicine", "p2").await;
    assert_eq!(a["number"], "A001");
    assert_eq!(b["number"], "A002");
    assert_eq!(a["status"], "waiting");
    assert_eq!(b["position"], 1);
    assert!(b["eta_secs"].as_u64().unwrap() > 0);
    assert_eq!(a["masked_name"], "张*丰");

    let called = app.call_next("internal-medicine", "c-101").await.expect("someone waits");
    assert_eq!(called["id"], a["id"]);
    assert_eq!(called["status"], "called");
    assert_eq!(called["room"], "c-101");
    assert_eq!(called["room_name"], "101 诊室");

    let id = a["id"].as_str().unwrap();
    let r = app.post_empty(&format!("/api/v1/tickets/{id}/recall")).await;
    assert_eq!(r.status(), 200);
    let r: serde_json::Value = app.post_empty(&format!("/api/v1/tickets/{id}/start")).await.json().await.unwrap();
    assert_eq!(r["status"], "in_service");
    assert_eq!(r["calls"], 2);
    let r: serde_json::Value = app.post_empty(&format!("/api/v1/tickets/{id}/complete")).await.json().await.unwrap();
    assert_eq!(r["status"], "completed");

    // The patient sees their own ticket with its access token, in the query or as a bearer.
    let token = a["access_token"].as_str().unwrap();
    let mine = app.client.get(app.url(&format!("/api/v1/tickets/{id}?token={token}"))).send().await.unwrap();
    assert_eq!(mine.status(), 200);
    let mine: serde_json::Value = mine.json().await.unwrap();
    assert_eq!(mine["status"], "completed");
    let bearer = app.client.get(app.url(&format!("/api/v1/tickets/{id}"))).bearer_auth(token).send().await.unwrap();
    assert_eq!(bearer.status(), 200);

    // The queue snapshot: b is now first in line.
    let q = app.get_json("/api/v1/queues/internal-medicine").await;
    assert_eq!(q["waiting"][0]["number"], "A002");
    assert_eq!(q["counts"]["completed"], 1);

    let m = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("clinicflow_queue_waiting{queue=\"internal-medicine\"} 1"), "{m}");
    assert!(m.contains("clinicflow_calls_total{queue=\"internal-medicine\"} 1"));
    assert!(m.contains("clinicflow_command_seconds_bucket{command=\"call_next\""));
}

#[tokio::test]
async fn priority_missed_return_transfer_and_pause() {
    let app = spawn_app().await;
    let q = "cardiology";
    let n1 = app.issue(q, "p1").await;
    let em = app
        .post(&format!("/api/v1/queues/{q}/tickets"), json!({"patient_id": "p9", "name": "李四", "priority": "emergency"}))
        .await;
    assert_eq!(em.status(), 201);
    let em: serde_json::Value = em.json().await.unwrap();
    assert_eq!(em["position"], 0, "emergency goes first");
    let first = app.call_next(q, "c-301").await.unwrap();
    assert_eq!(first["id"], em["id"]);

    // Missed, back after three others.
    for p in ["p2", "p3", "p4", "p5"] {
        app.issue(q, p).await;
    }
    let called = app.call_next(q, "c-302").await.unwrap();
    assert_eq!(called["id"], n1["id"]);
    let id = n1["id"].as_str().unwrap();
    let r: serde_json::Value = app.post_empty(&format!("/api/v1/tickets/{id}/skip")).await.json().await.unwrap();
    assert_eq!(r["status"], "missed");
    let r: serde_json::Value = app.post_empty(&format!("/api/v1/tickets/{id}/check-in")).await.json().await.unwrap();
    assert_eq!(r["status"], "waiting");
    assert_eq!(r["position"], 3);

    // Transfer to dermatology: same number, original check-in time.
    let r = app.post(&format!("/api/v1/tickets/{id}/transfer"), json!({"to": "dermatology"})).await;
    assert_eq!(r.status(), 200);
    let r: serde_json::Value = r.json().await.unwrap();
    assert_eq!(r["queue"], "dermatology");
    assert_eq!(r["number"], n1["number"]);
    assert_eq!(r["checked_in_at"], n1["checked_in_at"]);
    let seen = app.get_json(&format!("/api/v1/tickets/{id}")).await;
    assert_eq!(seen["queue"], "dermatology");

    // Complete there, then return with results to the same doctor.
    let c = app.call_next("dermatology", "c-205").await.unwrap();
    assert_eq!(c["id"], n1["id"]);
    app.post_empty(&format!("/api/v1/tickets/{id}/complete")).await;
    let r: serde_json::Value = app.post_empty(&format!("/api/v1/tickets/{id}/return")).await.json().await.unwrap();
    assert_eq!(r["status"], "waiting");
    assert_eq!(r["kind"], "return");
    assert_eq!(r["doctor"], "dr-12");

    // A paused room cannot call; resumed, it can.
    let r = app.post_empty("/api/v1/rooms/c-205/pause").await;
    assert_eq!(r.status(), 200);
    let r = app.post("/api/v1/queues/dermatology/call-next", json!({"room": "c-205"})).await;
    assert_eq!(error_code(r).await, (409, "room_paused".to_owned()));
    app.post_empty("/api/v1/rooms/c-205/resume").await;
    assert!(app.call_next("dermatology", "c-205").await.is_some());
    assert!(app.call_next("dermatology", "c-205").await.is_none(), "204 when nobody waits");
}

#[tokio::test]
async fn appointments_check_in_and_idempotent_issue() {
    let app = spawn_app().await;
    let now = app.now();
    let slot = json!({"start": (now - chrono::Duration::minutes(5)).to_rfc3339(), "end": (now + chrono::Duration::minutes(25)).to_rfc3339()});
    app.issue("surgery", "walkin").await;
    let r = app.post("/api/v1/queues/surgery/tickets", json!({"patient_id": "appt", "name": "王五", "slot": slot})).await;
    let booked: serde_json::Value = r.json().await.unwrap();
    assert_eq!(booked["status"], "booked");
    // The patient checks in (报到) from their phone with their own token.
    let id = booked["id"].as_str().unwrap();
    let token = booked["access_token"].as_str().unwrap();
    let r = app.client.post(app.url(&format!("/api/v1/tickets/{id}/check-in"))).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r: serde_json::Value = r.json().await.unwrap();
    assert_eq!(r["position"], 0, "a started slot goes before walk-ins");

    let body = json!({"patient_id": "p7", "name": "赵六"});
    let send = |body: serde_json::Value| {
        app.client.post(app.url("/api/v1/queues/surgery/tickets")).bearer_auth(TOKEN).header("Idempotency-Key", "kiosk-7-0001").json(&body).send()
    };
    let first = send(body.clone()).await.unwrap();
    assert_eq!(first.status(), 201);
    let first: serde_json::Value = first.json().await.unwrap();
    let again = send(body.clone()).await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["access_token"], first["access_token"]);
    let q = app.get_json("/api/v1/queues/surgery").await;
    assert_eq!(q["counts"]["waiting"], 3, "the retry issued nothing");
}

/// A transfer retried with its `Idempotency-Key` gets the first answer again — right away and
/// after a restart — instead of being refused because the ticket is already where it was sent;
/// the same key with another destination is refused as a reused key.
#[tokio::test]
async fn a_transfer_retried_with_its_key_replays_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut app = crate::helpers::start(&data, None);
    let t = app.issue("internal-medicine", "p-transfer").await;
    let id = t["id"].as_str().unwrap().to_owned();
    let transfer = |app: &crate::helpers::TestApp, to: &str, key: Option<&str>| {
        let mut r = app.client.post(app.url(&format!("/api/v1/tickets/{id}/transfer"))).bearer_auth(TOKEN).json(&json!({"to": to}));
        if let Some(k) = key {
            r = r.header("Idempotency-Key", k);
        }
        r.send()
    };
    let first = transfer(&app, "surgery", Some("tr-1")).await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: serde_json::Value = first.json().await.unwrap();
    assert_eq!((first["id"].as_str(), first["queue"].as_str()), (Some(id.as_str()), Some("surgery")));

    for restart in [false, true] {
        if restart {
            app.kill9();
            app = crate::helpers::start(&data, None);
        }
        let again = transfer(&app, "surgery", Some("tr-1")).await.unwrap();
        assert_eq!(again.status(), 200, "restart: {restart}");
        assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
        let again: serde_json::Value = again.json().await.unwrap();
        assert_eq!((again["id"].as_str(), again["queue"].as_str(), again["number"].as_str()), (Some(id.as_str()), Some("surgery"), first["number"].as_str()));
    }
    assert_eq!(error_code(transfer(&app, "pediatrics", Some("tr-1")).await.unwrap()).await, (422, "idempotency_key_reused".to_owned()));
    assert_eq!(error_code(transfer(&app, "surgery", None).await.unwrap()).await, (422, "same_queue".to_owned()), "without a key it is a new request");
    let q = app.get_json("/api/v1/queues/surgery").await;
    assert_eq!(q["counts"]["waiting"], 1, "moved once");
    assert_eq!(app.get_json("/api/v1/queues/internal-medicine").await["counts"]["waiting"], 0);
}
