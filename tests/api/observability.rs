//! The dashboards and alerts a hospital's monitoring gets (`deploy/grafana/`,
//! `deploy/prometheus/`) against the server that feeds them: every metric they name is exported
//! by `/metrics` once the server has done what the metric counts (a call heard on a phone, a
//! HIS message), the dashboard is well formed, and the rules pass `promtool check rules` and
//! their own `promtool test rules`.

use crate::helpers::start_args;
use std::collections::BTreeMap;
use std::path::Path;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Every `clinicflow_…` name in `text`.
fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("clinicflow_") {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names.sort();
    names.dedup();
    names
}

/// Family name → type, from the exposition's `# TYPE` lines.
fn exported(metrics: &str) -> BTreeMap<String, String> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
        .collect()
}

/// The family a series name belongs to (a histogram's `_bucket`, `_sum`, `_count`).
fn family<'a>(name: &'a str, types: &BTreeMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types.get(base).is_some_and(|t| t == "histogram") {
                return base;
            }
        }
    }
    name
}

fn sample(metrics: &str, series: &str) -> f64 {
    metrics.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok())).unwrap_or_else(|| panic!("no sample {series}"))
}

#[tokio::test]
async fn every_metric_the_dashboard_and_the_alert_rules_use_is_exported() {
    let dir = tempfile::tempdir().unwrap();
    let app = start_args(dir.path(), &["--hl7", "127.0.0.1:0"]);
    // A call, heard on the patient's phone.
    let t = app.issue("cardiology", "OBS-1").await;
    let mut ws = crate::push::connect(&app, &t, None).await;
    assert_eq!(crate::push::next_json(&mut ws).await["type"], "snapshot");
    app.call_next("cardiology", "c-301").await.expect("called");
    crate::push::next_event(&mut ws, &["called"]).await;
    // A registration from the HIS.
    let msg = crate::his::a04("OBS-A04", "V-OBS-1", "P-OBS-1", "internal-medicine", &crate::his::ago(1));
    let acks = crate::his::send(&app, &[msg], "utf-8");
    assert_eq!(acks.len(), 1);

    let text = app.get("/metrics").await.text().await.unwrap();
    let types = exported(&text);
    for file in ["deploy/grafana/clinicflow.json", "deploy/prometheus/clinicflow-rules.yml", "deploy/prometheus/clinicflow-rules.test.yml"] {
        let used = metric_names(&std::fs::read_to_string(repo(file)).unwrap());
        assert!(!used.is_empty(), "{file} names no metric");
        for name in used {
            assert!(types.contains_key(family(&name, &types)), "{file} uses {name}, which /metrics does not export:\n{text}");
        }
    }
    // What the calls and the message did is counted.
    assert!(sample(&text, "clinicflow_call_to_phone_seconds_count") >= 1.0);
    assert!(sample(&text, "clinicflow_queue_wait_seconds_count{queue=\"cardiology\"}") >= 1.0);
    assert!(text.contains("clinicflow_his_last_success_timestamp_seconds{adapter=\"hl7\"}"), "{text}");
    assert!(text.contains("clinicflow_display_online{display=\"door-c-101\"} 0"), "a configured display is on the dashboards before it speaks");
    assert_eq!(sample(&text, "clinicflow_journal_failures_total"), 0.0);
    assert!(sample(&text, "clinicflow_services_open") >= 1.0, "the demo hospital has services without hours: always open");
}

#[test]
fn the_dashboard_is_well_formed() {
    let dash: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(repo("deploy/grafana/clinicflow.json")).unwrap()).unwrap();
    assert!(dash["uid"].is_string() && dash["title"].is_string());
    let panels = dash["panels"].as_array().unwrap();
    let mut ids = std::collections::BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "panel id {} twice", p["id"]);
        if p["type"] == "row" {
            continue;
        }
        let targets = p["targets"].as_array().unwrap_or_else(|| panic!("panel {} has no queries", p["title"]));
        assert!(!targets.is_empty() && targets.iter().all(|t| t["expr"].as_str().is_some_and(|e| e.contains("clinicflow_"))), "{}", p["title"]);
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}: the datasource chosen on import", p["title"]);
    }
    // What the issue asks to see.
    let all = serde_json::to_string(&dash).unwrap();
    for m in [
        "clinicflow_queue_waiting",
        "clinicflow_queue_wait_seconds",
        "clinicflow_display_shown_seconds",
        "clinicflow_call_to_phone_seconds",
        "clinicflow_display_alarm",
        "clinicflow_journal_commit_seconds",
        "clinicflow_journal_failures_total",
        "clinicflow_his_last_success_timestamp_seconds",
        "clinicflow_ws_connections",
    ] {
        assert!(all.contains(m), "the dashboard does not show {m}");
    }
}

#[test]
fn the_alert_rules_pass_promtool_and_fire_when_they_should() {
    let dir = repo("deploy/prometheus");
    for args in [vec!["check", "rules", "clinicflow-rules.yml"], vec!["test", "rules", "clinicflow-rules.test.yml"]] {
        let out = std::process::Command::new("promtool")
            .args(&args)
            .current_dir(&dir)
            .output()
            .expect("promtool (Debian's prometheus package; scripts/test installs it)");
        assert!(out.status.success(), "promtool {args:?}:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
}
