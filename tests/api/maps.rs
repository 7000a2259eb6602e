//! Maps and the router, black box: `clinicflow map check` on good and broken maps, the `/route`,
//! `/pois` and `/locate` API, the SVG, and hot reload keeping the old map on a bad one.

use crate::helpers::{error_code, spawn_app, start_args, TOKEN};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn map_check(dir: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clinicflow")).args(["map", "check"]).arg(dir).output().expect("run clinicflow map check");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A copy of the tiny test map in a temp dir, to break.
fn tiny_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(repo("tests/maps/tiny")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    dir
}

fn edit(dir: &Path, file: &str, f: impl FnOnce(&mut Value)) {
    let p = dir.join(file);
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

fn features(v: &mut Value) -> &mut Vec<Value> {
    v["features"].as_array_mut().unwrap()
}

#[test]
fn map_check_passes_on_the_demo_hospital_and_the_tiny_map() {
    for dir in ["maps/demo-hospital", "tests/maps/tiny"] {
        let (ok, out, err) = map_check(&repo(dir));
        assert!(ok, "{dir}: {out}{err}");
        assert!(out.contains(": ok"), "{out}");
    }
}

/// The set of broken maps: each a copy of the tiny map with one thing wrong, and the message
/// `map check` must give (file, feature id, what).
#[test]
fn map_check_names_the_file_and_feature_of_every_problem() {
    type Break = fn(&Path);
    let cases: Vec<(&str, Break, &[&str])> = vec![
        ("not json", |d| std::fs::write(d.join("navigation.geojson"), "{\"type\": \"FeatureCollection\", \"features\": [").unwrap(), &["navigation.geojson", "not valid GeoJSON"]),
        (
            "duplicate id",
            |d| edit(d, "navigation.geojson", |v| {
                let dup = features(v)[1].clone();
                features(v).push(dup);
            }),
            &["navigation.geojson", "T-L1-c10", "duplicate id"],
        ),
        (
            "edge leaves its level",
            |d| edit(d, "navigation.geojson", |v| {
                let mut e = features(v).iter().find(|f| f["id"] == "e-T-L1-c10--T-L1-c30").unwrap().clone();
                e["id"] = json!("e-bad");
                e["properties"]["to"] = json!("T-L2-c30");
                features(v).push(e);
            }),
            &["navigation.geojson", "e-bad", "leaves its level"],
        ),
        (
            "unknown node",
            |d| edit(d, "navigation.geojson", |v| {
                let e = features(v).iter_mut().find(|f| f["id"] == "e-T-L1-c10--T-L1-c30").unwrap();
                e["properties"]["to"] = json!("T-L1-nowhere");
            }),
            &["navigation.geojson", "e-T-L1-c10--T-L1-c30", "unknown node \"T-L1-nowhere\""],
        ),
        (
            "no step-free way up",
            |d| edit(d, "navigation.geojson", |v| features(v).retain(|f| f["properties"]["kind"] != "elevator" || f["feature_type"] == "nav_node")),
            &["occupant.geojson", "xray", "unreachable from entrance T-entrance under profile accessible"],
        ),
        (
            "missing anchor",
            |d| edit(d, "occupant.geojson", |v| features(v)[0]["properties"]["anchor_id"] = json!("anchor-gone")),
            &["occupant.geojson", "xray", "anchor_id \"anchor-gone\""],
        ),
        (
            "coordinates out of range",
            |d| edit(d, "kiosk.geojson", |v| features(v)[0]["geometry"]["coordinates"] = json!([999.0, 39.9])),
            &["kiosk.geojson", "K1", "WGS84"],
        ),
        (
            "no entrance",
            |d| edit(d, "navigation.geojson", |v| {
                for f in features(v).iter_mut().filter(|f| f["properties"]["kind"] == "entrance") {
                    f["properties"]["kind"] = json!("corridor");
                }
            }),
            &["navigation.geojson", "entrance"],
        ),
        (
            "node outside its level",
            |d| edit(d, "navigation.geojson", |v| {
                let n = features(v).iter_mut().find(|f| f["id"] == "T-L1-c30").unwrap();
                n["geometry"]["coordinates"] = json!([116.31, 39.95]);
            }),
            &["navigation.geojson", "T-L1-c30", "outside its level"],
        ),
        ("missing level file", |d| std::fs::remove_file(d.join("level.geojson")).unwrap(), &["level.geojson", "cannot read"]),
        (
            "level names an unknown building",
            |d| edit(d, "level.geojson", |v| features(v)[1]["properties"]["building_ids"] = json!(["X"])),
            &["level.geojson", "T-L2", "building"],
        ),
    ];
    for (name, breaks, expect) in cases {
        let dir = tiny_copy();
        breaks(dir.path());
        let (ok, out, err) = map_check(dir.path());
        assert!(!ok, "{name}: map check passed a broken map: {out}");
        let line = err.lines().find(|l| expect.iter().all(|e| l.contains(e)));
        assert!(line.is_some(), "{name}: no line with {expect:?} in:\n{err}");
    }
}

#[tokio::test]
async fn route_pois_and_locate_on_the_demo_hospital() {
    let app = spawn_app().await;
    let r = app.get("/api/v1/route?from=marker:K-A-entrance&to=room:us-1&lang=en").await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["to"]["place"], "us-1");
    assert!(v["distance_m"].as_f64().unwrap() > 100.0);
    assert!(v["duration_s"].as_f64().unwrap() > 60.0);
    let steps: Vec<&str> = v["steps"].as_array().unwrap().iter().map(|s| s["text"].as_str().unwrap()).collect();
    assert!(steps.iter().any(|s| s.contains("to 3F")), "{steps:?}");
    assert!(v["steps"].as_array().unwrap().iter().all(|s| !s["text_zh"].as_str().unwrap().is_empty()));
    let levels = v["levels"].as_array().unwrap();
    assert!(levels.len() >= 2, "{levels:?}");
    for f in v["geometry"]["features"].as_array().unwrap() {
        assert_eq!(f["geometry"]["type"], "LineString");
        for c in f["geometry"]["coordinates"].as_array().unwrap() {
            let (lon, lat) = (c[0].as_f64().unwrap(), c[1].as_f64().unwrap());
            assert!((121.0..122.0).contains(&lon) && (31.0..31.5).contains(&lat), "WGS84 {lon},{lat}");
        }
    }

    // Accessible: a lift, never stairs, and the text says so in Chinese.
    let v = app.get_json("/api/v1/route?from=K-A-entrance&to=department:cardiology&profile=accessible").await;
    let kinds: Vec<&str> = v["steps"].as_array().unwrap().iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"elevator") && !kinds.contains(&"stairs"), "{kinds:?}");
    assert!(v["steps"].as_array().unwrap().iter().any(|s| s["text"].as_str().unwrap().contains("乘电梯到 3F")));

    // The nearest toilet by walking time: on the same floor, though one upstairs is closer as the crow flies.
    let v = app.get_json("/api/v1/pois?near=K-B-L3&kind=toilet&limit=3").await;
    let pois = v["pois"].as_array().unwrap();
    assert_eq!(pois.len(), 3);
    assert_eq!(pois[0]["level"], "B-L3");
    assert!(pois.windows(2).all(|w| w[0]["duration_s"].as_f64() <= w[1]["duration_s"].as_f64()));

    let v = app.get_json("/api/v1/locate?marker=https%3A%2F%2Fhospital.example%2Fkiosk%2FQR-B-L2-S1").await;
    assert_eq!(v["marker"], "QR-B-L2-S1");
    assert_eq!(v["level"], "B-L2");
    assert_eq!(v["building"], "B");

    let r = app.get("/api/v1/maps/demo-hospital/levels/A-L1.svg?from=K-A-entrance&to=room:c-101").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("image/svg+xml"));
    let svg = r.text().await.unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("class=\"route\"") && svg.contains("101 诊室"));
    let maps = app.get_json("/api/v1/maps").await;
    assert_eq!(maps["venues"][0]["levels"].as_array().unwrap().len(), 8);
}

#[tokio::test]
async fn bad_wayfinding_requests_get_clear_errors() {
    let app = spawn_app().await;
    for (path, status, code) in [
        ("/api/v1/route?from=K-A-entrance&to=nowhere", 404, "unknown_place"),
        ("/api/v1/route?from=K-A-entrance", 400, "missing_parameter"),
        ("/api/v1/route?from=K-A-entrance&to=c-101&profile=flying", 400, "unknown_profile"),
        ("/api/v1/route?from=K-A-entrance&to=c-101&lang=fr", 400, "unknown_lang"),
        ("/api/v1/route?from=K-A-entrance&to=c-101&bogus=1", 400, "invalid_query"),
        ("/api/v1/route?from=mars/K1&to=c-101", 404, "unknown_venue"),
        ("/api/v1/pois?near=K-A-L1&kind=swimming-pool", 404, "unknown_kind"),
        ("/api/v1/pois?kind=toilet", 400, "missing_parameter"),
        ("/api/v1/locate?marker=K-NOPE", 404, "unknown_marker"),
        ("/api/v1/maps/demo-hospital/levels/Z-L9.svg", 404, "unknown_level"),
        ("/api/v1/maps/elsewhere/levels/A-L1.svg", 404, "unknown_venue"),
    ] {
        let (s, c) = error_code(app.get(path).await).await;
        assert_eq!((s, c.as_str()), (status, code), "{path}");
    }
    // Reload needs the admin token; the demo map reloads as itself.
    let r = app.client.post(app.url("/api/v1/maps/reload")).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn no_accessible_route_and_cross_venue_are_answers_not_crashes() {
    // Two venues: the demo hospital and the tiny clinic, whose gallery is up three steps.
    let tiny = tiny_copy();
    let data = tempfile::tempdir().unwrap();
    let demo = repo("maps/demo-hospital").display().to_string();
    let t = tiny.path().display().to_string();
    let app = start_args(data.path(), &["--map", &demo, "--map", &t]);
    let (s, c) = error_code(app.get("/api/v1/route?from=K-A-entrance&to=xray").await).await;
    assert_eq!((s, c.as_str()), (422, "cross_venue"));
    let v = app.get_json("/api/v1/route?from=tiny/K1&to=tiny/xray&profile=accessible").await;
    assert_eq!(v["venue"], "tiny");
    assert_eq!(app.get("/api/v1/route?from=K1&to=node:T-L2-gallery").await.status(), 200);
    let r = app.get("/api/v1/route?from=K1&to=node:T-L2-gallery&profile=accessible").await;
    let (s, c) = error_code(r).await;
    assert_eq!((s, c.as_str()), (422, "no_route"));
    let r = app.get("/api/v1/route?from=K1&to=node:T-L2-gallery&profile=accessible").await;
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("no accessible"), "{v}");
}

#[tokio::test]
async fn hot_reload_swaps_in_a_good_map_and_keeps_the_old_one_on_a_bad_one() {
    let tiny = tiny_copy();
    let data = tempfile::tempdir().unwrap();
    let t = tiny.path().display().to_string();
    let app = start_args(data.path(), &["--map", &t]);
    let reload = || async { app.client.post(app.url("/api/v1/maps/reload")).bearer_auth(TOKEN).send().await.unwrap() };
    assert_eq!(app.get("/api/v1/route?from=K1&to=xray").await.status(), 200);

    // Broken: the old map keeps serving, and the answer lists the problem.
    std::fs::write(tiny.path().join("navigation.geojson"), "garbage").unwrap();
    let r = reload().await;
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "map_invalid");
    assert!(v["error"]["issues"][0]["file"].as_str().unwrap().ends_with("navigation.geojson"));
    assert_eq!(app.get("/api/v1/route?from=K1&to=xray").await.status(), 200, "old map still serves");

    // Fixed, with the X-ray room renamed: the new map serves.
    std::fs::copy(repo("tests/maps/tiny/navigation.geojson"), tiny.path().join("navigation.geojson")).unwrap();
    edit(tiny.path(), "occupant.geojson", |v| features(v)[0]["properties"]["name"] = json!({"zh": "新放射室", "en": "New X-ray"}));
    let r = reload().await;
    assert_eq!(r.status(), 200);
    let v = app.get_json("/api/v1/route?from=K1&to=xray&lang=en").await;
    assert_eq!(v["to"]["name"], "New X-ray");
}

#[test]
fn serve_refuses_to_start_on_a_broken_map_and_says_why() {
    let tiny = tiny_copy();
    std::fs::write(tiny.path().join("level.geojson"), "{]").unwrap();
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_clinicflow"))
        .args(["serve", "--http", "127.0.0.1:0", "--mqtt", "off", "--map"])
        .arg(tiny.path())
        .arg("--data")
        .arg(data.path())
        .env("CLINICFLOW_STAFF_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("level.geojson") && err.contains("not valid GeoJSON"), "{err}");
}
