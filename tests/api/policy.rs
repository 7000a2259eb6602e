//! Calling policy over the API: set at run time (admin), refused when it contradicts itself,
//! journaled (survives kill -9), explained to the patient, and the no-show rule applied by the
//! server itself.

use crate::helpers::{error_code, start, TestApp, TOKEN};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const Q: &str = "internal-medicine";

async fn put_policy(app: &TestApp, queue: &str, body: &str) -> reqwest::Response {
    app.client
        .put(app.url(&format!("/api/v1/queues/{queue}/policy")))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("request")
}

async fn issue_as(app: &TestApp, patient: &str, priority: &str) -> Value {
    let r = app.post(&format!("/api/v1/queues/{Q}/tickets"), json!({"patient_id": patient, "name": "王小明", "priority": priority})).await;
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_fair_policy_set_at_run_time_orders_explains_and_survives_kill9() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = start(dir.path(), None);
    let p = app.get_json(&format!("/api/v1/queues/{Q}/policy")).await;
    assert_eq!(p["source"], "config");
    assert_eq!(p["policy"]["fairness"]["interleave"], Value::Null);

    let r = put_policy(&app, Q, r#"{"fairness": {"interleave": 1, "max_overtakes": 3}}"#).await;
    assert_eq!(r.status(), 200);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["source"], "changed");
    assert_eq!(p["policy"]["fairness"]["interleave"], 1);
    assert_eq!(p["policy"]["missed_reinsert_after"], 3, "absent fields take their defaults");

    let n = issue_as(&app, "p0", "normal").await;
    let e1 = issue_as(&app, "p1", "elderly").await;
    let e2 = issue_as(&app, "p2", "elderly").await;
    // One priority call, then the normal patient's turn: p0 is second, and told why.
    let v = app.get_json(&format!("/api/v1/tickets/{}", n["id"].as_str().unwrap())).await;
    assert_eq!(v["position"], 1);
    assert_eq!(v["priority_ahead"], 1);
    assert_eq!(v["position_note"]["en"], "1 priority patient ahead; you are next after them");
    assert_eq!(v["position_note"]["zh"], "前面有 1 位优先患者，之后就是您");

    app.kill9();
    let app = start(dir.path(), None);
    let p = app.get_json(&format!("/api/v1/queues/{Q}/policy")).await;
    assert_eq!(p["source"], "changed", "the change was journaled");
    assert_eq!(p["policy"]["fairness"]["interleave"], 1);
    let mut order = vec![];
    while let Some(t) = app.call_next(Q, "c-101").await {
        order.push(t["id"].clone());
        app.post_empty(&format!("/api/v1/tickets/{}/complete", t["id"].as_str().unwrap())).await;
    }
    assert_eq!(order, vec![e1["id"].clone(), n["id"].clone(), e2["id"].clone()]);
}

#[tokio::test]
async fn a_policy_that_contradicts_itself_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), None);
    for (body, status, code, field) in [
        (r#"{"fairness": {"interleave": 0}}"#, 422, "invalid_policy", "fairness.interleave"),
        (r#"{"calls": {"grace_secs": -5}}"#, 422, "invalid_policy", "calls.grace_secs"),
        (r#"{"calls": {"auto_miss_after_calls": 5, "max_recalls": 1}}"#, 422, "invalid_policy", "calls.auto_miss_after_calls"),
        (r#"{"fairness": {"ageing": 60}}"#, 422, "invalid_policy", "fairness"),
        (r#"{"fairness": "#, 400, "invalid_json", ""),
    ] {
        let r = put_policy(&app, Q, body).await;
        let (s, c) = (r.status().as_u16(), r.text().await.unwrap());
        assert_eq!(s, status, "{body}: {c}");
        let v: Value = serde_json::from_str(&c).unwrap();
        assert_eq!(v["error"]["code"], code, "{body}");
        assert!(v["error"]["message"].as_str().unwrap().contains(field), "{body}: {c}");
    }
    let r = app.client.put(app.url(&format!("/api/v1/queues/{Q}/policy"))).body("{}").send().await.unwrap();
    assert_eq!(error_code(r).await, (401, "missing_token".into()));
    assert_eq!(error_code(put_policy(&app, "nowhere", "{}").await).await, (404, "unknown_queue".into()));
    let p = app.get_json(&format!("/api/v1/queues/{Q}/policy")).await;
    assert_eq!(p["source"], "config", "the running policy stays");
}

#[tokio::test]
async fn an_unanswered_call_is_marked_missed_by_the_server_and_recalls_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), None);
    let r = put_policy(&app, Q, r#"{"calls": {"max_recalls": 1, "auto_miss_after_calls": 2, "grace_secs": 1}}"#).await;
    assert_eq!(r.status(), 200);
    let t = app.issue(Q, "p1").await;
    let id = t["id"].as_str().unwrap();
    let ws_url = format!("{}/ws/tickets/{id}?token={}", app.base.replacen("http://", "ws://", 1), t["access_token"].as_str().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    app.call_next(Q, "c-101").await.unwrap();
    // (That one call of two is never missed, however long it waits, is tested on the queue
    // actor's manual clock: actors::queue::tests.)
    assert_eq!(app.get_json(&format!("/api/v1/tickets/{id}")).await["status"], "called");
    assert_eq!(app.post_empty(&format!("/api/v1/tickets/{id}/recall")).await.status(), 200);
    assert_eq!(error_code(app.post_empty(&format!("/api/v1/tickets/{id}/recall")).await).await, (409, "recall_limit".into()));
    // The second call unanswered: the server marks it missed and tells the phone.
    let missed = async {
        loop {
            let Some(Ok(Message::Text(m))) = ws.next().await else { panic!("socket closed") };
            let v: Value = serde_json::from_str(&m).unwrap();
            if v["event"] == "missed" {
                return v;
            }
        }
    };
    let v = tokio::time::timeout(Duration::from_secs(15), missed).await.expect("missed within 15 s");
    assert_eq!(v["auto"], true);
    let after = app.get_json(&format!("/api/v1/tickets/{id}")).await;
    assert_eq!(after["status"], "missed");
    assert_eq!(after["misses"], 1);
    let rooms = app.get_json(&format!("/api/v1/queues/{Q}")).await;
    assert!(rooms["rooms"].as_array().unwrap().iter().all(|r| r["current_ticket"].is_null()), "the room is free");
}

/// `clinicflow replay` on a journal recorded by a test morning shows what a changed interleave
/// would do; a policy that contradicts itself is refused naming the field.
#[tokio::test]
async fn replay_shows_the_effect_of_a_changed_interleave_on_a_recorded_morning() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = start(dir.path(), None);
    for i in 0..3 {
        issue_as(&app, &format!("n{i}"), "normal").await;
    }
    for i in 0..6 {
        issue_as(&app, &format!("e{i}"), "elderly").await;
    }
    while let Some(t) = app.call_next(Q, "c-101").await {
        app.post_empty(&format!("/api/v1/tickets/{}/complete", t["id"].as_str().unwrap())).await;
    }
    app.kill9();

    let policy = dir.path().join("interleave.toml");
    std::fs::write(&policy, "[fairness]\ninterleave = 1\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clinicflow"))
        .args(["replay", "--json", "--queue", Q, "--journal"])
        .arg(dir.path())
        .arg("--policy")
        .arg(&policy)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let q = &v["queues"][0];
    assert_eq!(q["queue"], Q);
    assert_eq!(q["recorded"]["called"], 9);
    assert_eq!(q["replayed"]["called"], 9);
    assert_eq!(q["recorded"]["max_overtakes"], 6, "the first normal patient waited behind all six elderly");
    assert!(q["replayed"]["max_overtakes"].as_u64().unwrap() <= 3, "{q}");
    assert!(q["moved"].as_u64().unwrap() > 0);

    // The table form names both runs.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clinicflow"))
        .args(["replay", "--queue", Q, "--journal"])
        .arg(dir.path())
        .arg("--policy")
        .arg(&policy)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("recorded") && text.contains("replayed") && text.contains("overtakes"), "{text}");

    std::fs::write(&policy, "[fairness]\ninterleave = 0\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clinicflow")).args(["replay", "--journal"]).arg(dir.path()).arg("--policy").arg(&policy).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("fairness.interleave"), "{}", String::from_utf8_lossy(&out.stderr));
}
