//! The day's numbers: `GET /api/v1/reports/day` cross-checked against the journal itself, read
//! straight from SQLite by the test.

use crate::helpers::{error_code, spawn_app};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

#[tokio::test]
async fn the_report_of_a_morning_matches_the_journal() {
    let app = spawn_app().await;
    // A small morning: two clinics' worth of patients, calls, a recall, a miss, a cancel.
    let mut im = vec![];
    for i in 0..6 {
        let prio = if i % 3 == 0 { "elderly" } else { "normal" };
        let r = app.post("/api/v1/queues/internal-medicine/tickets", json!({"patient_id": format!("r{i}"), "name": "赵六", "priority": prio})).await;
        im.push(r.json::<Value>().await.unwrap());
    }
    for i in 0..3 {
        app.issue("lab", &format!("l{i}")).await;
    }
    let t = |v: &Value| v["id"].as_str().unwrap().to_owned();
    app.post_empty(&format!("/api/v1/tickets/{}/cancel", t(&im[5]))).await;
    for k in 0..4 {
        let c = app.call_next("internal-medicine", "c-101").await.unwrap();
        let id = t(&c);
        match k {
            1 => {
                app.post_empty(&format!("/api/v1/tickets/{id}/recall")).await;
                app.post_empty(&format!("/api/v1/tickets/{id}/skip")).await;
            }
            _ => {
                app.post_empty(&format!("/api/v1/tickets/{id}/start")).await;
                app.post_empty(&format!("/api/v1/tickets/{id}/complete")).await;
            }
        }
    }
    let c = app.call_next("lab", "lab-1").await.unwrap();
    app.post_empty(&format!("/api/v1/tickets/{}/complete", t(&c))).await;

    let report = app.get_json("/api/v1/reports/day").await;

    // The journal, read independently.
    let db = rusqlite::Connection::open(app.data.join("journal.sqlite")).unwrap();
    let mut stmt = db.prepare("SELECT queue, ticket, kind, at_ms, body FROM events ORDER BY seq").unwrap();
    let rows: Vec<(String, Option<String>, String, i64, String)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))).unwrap().map(Result::unwrap).collect();
    for q in ["internal-medicine", "lab"] {
        let of = |kind: &str| rows.iter().filter(|r| r.0 == q && r.2 == kind).count();
        let issued_at: BTreeMap<&str, i64> = rows.iter().filter(|r| r.0 == q && r.2 == "ticket_issued").map(|r| (r.1.as_deref().unwrap(), r.3)).collect();
        let mut seen = BTreeSet::new();
        let mut waits = vec![];
        for r in rows.iter().filter(|r| r.0 == q && r.2 == "called") {
            let id = r.1.as_deref().unwrap();
            if seen.insert(id) {
                waits.push((r.3 - issued_at[id]) as f64 / 60_000.0);
            }
        }
        let service: Vec<f64> = rows
            .iter()
            .filter(|r| r.0 == q && r.2 == "completed")
            .filter_map(|r| serde_json::from_str::<Value>(&r.4).unwrap()["service_ms"].as_f64())
            .map(|ms| ms / 60_000.0)
            .collect();
        let got = report["queues"].as_array().unwrap().iter().find(|x| x["queue"] == q).unwrap_or_else(|| panic!("{q} in {report}"));
        assert_eq!(got["issued"], of("ticket_issued"), "{q}");
        assert_eq!(got["called"], seen.len(), "{q}");
        assert_eq!(got["calls"], of("called") + of("recalled"), "{q}");
        assert_eq!(got["recalls"], of("recalled"), "{q}");
        assert_eq!(got["completed"], of("completed"), "{q}");
        assert_eq!(got["missed"], of("missed"), "{q}");
        assert_eq!(got["cancelled"], of("cancelled"), "{q}");
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!((got["wait"]["mean"].as_f64().unwrap() - mean(&waits)).abs() < 0.01, "{q}: {} vs {waits:?}", got["wait"]);
        assert_eq!(got["wait"]["n"], waits.len());
        assert!((got["service"]["mean"].as_f64().unwrap() - mean(&service)).abs() < 0.01, "{q}: {}", got["service"]);
        let arrivals: u64 = got["arrivals_by_hour"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).sum();
        assert_eq!(arrivals as usize, of("ticket_issued"), "walk-ins check in when issued");
    }
    let im = report["queues"].as_array().unwrap().iter().find(|x| x["queue"] == "internal-medicine").unwrap();
    assert_eq!((im["completed"].as_u64(), im["missed"].as_u64(), im["cancelled"].as_u64()), (Some(3), Some(1), Some(1)));
    let room = report["rooms"].as_array().unwrap().iter().find(|r| r["room"] == "c-101").unwrap();
    assert_eq!((room["calls"].as_u64(), room["completed"].as_u64(), room["missed"].as_u64()), (Some(4), Some(3), Some(1)));
    assert!(report["doctors"].as_array().unwrap().iter().any(|d| d["completed"].as_u64() == Some(3)), "c-101's doctor: {}", report["doctors"]);

    // CSV: one row per queue, room and doctor.
    let r = app.get("/api/v1/reports/day?format=csv").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let text = r.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("scope,id,issued,"));
    let rows = report["queues"].as_array().unwrap().len() + report["rooms"].as_array().unwrap().len() + report["doctors"].as_array().unwrap().len();
    assert_eq!(lines.len(), 1 + rows);
    assert!(lines.iter().all(|l| l.split(',').count() == lines[0].split(',').count()), "{text}");
    assert!(text.contains("queue,internal-medicine,6,6,4,5,3,1,0,1,"), "{text}");

    // Today's report is kept as the commits go by; read from the journal after a restart (kill
    // -9) it is the same, and asked for by date it is the same.
    let day = report["day"].as_str().unwrap().to_owned();
    assert_eq!(app.get_json(&format!("/api/v1/reports/day?date={day}")).await, report);
    let mut app = app;
    app.kill9();
    let app = crate::helpers::start(&app.data.clone(), None);
    assert_eq!(app.get_json("/api/v1/reports/day").await, report, "the live tally is what the journal says");
    // And it goes on live from there: one more call shows at once.
    app.call_next("internal-medicine", "c-101").await.unwrap();
    let after = app.get_json("/api/v1/reports/day").await;
    let calls = |r: &Value| r["queues"].as_array().unwrap().iter().find(|x| x["queue"] == "internal-medicine").unwrap()["calls"].as_u64().unwrap();
    assert_eq!(calls(&after), calls(&report) + 1);

    // A day without events is an empty report; bad queries are refused.
    let empty = app.get_json("/api/v1/reports/day?date=2020-01-01").await;
    assert_eq!(empty["queues"], json!([]));
    assert_eq!(error_code(app.get("/api/v1/reports/day?format=xml").await).await, (400, "invalid_query".into()));
    assert_eq!(error_code(app.get("/api/v1/reports/day?date=yesterday").await).await, (400, "invalid_query".into()));
    let anon = app.client.get(app.url("/api/v1/reports/day")).send().await.unwrap();
    assert_eq!(anon.status(), 401);
}
