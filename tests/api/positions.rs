//! BLE positioning, live: a radio map for the demo hospital (a gateway in every lift lobby and
//! every 8 m of corridor), `serve --radio`, a wristband bound to a visit, gateway reports over the
//! embedded broker, the phone's own scans over its socket, the position pushed to the phone with
//! "leave now", bad readings counted and ignored, bindings surviving `kill -9`.

use crate::helpers::{error_code, start_args, TestApp, TOKEN};
use clinicflow::position::{self, radio::VenueRef, sim};
use futures_util::{SinkExt, StreamExt};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const PREFIX: &str = "clinicflow/demo";
/// Seconds of the walk sent (the server takes readings up to 30 s old).
const WALK_S: usize = 24;
const ENTRANCE_TO_ULTRASOUND: (&str, &str) = ("marker:K-A-entrance", "room:us-1");

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The demo hospital's radio map (path loss only, no survey), written to `dir`.
fn radio_map(dir: &std::path::Path) -> (std::path::PathBuf, std::sync::Arc<position::RadioMap>) {
    let m = clinicflow::map::demo();
    let anchors = sim::gateways(&m, 8.0);
    let (file, built) = position::calibrate(anchors, Vec::new(), VenueRef::Map { id: m.id.clone() }, None, Some(&m)).unwrap();
    let path = dir.join("radio.json");
    std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
    (path, std::sync::Arc::new(built))
}

/// The first `WALK_S` seconds of a walk (from the entrance kiosk towards ultrasound), as gateway reports
/// about `tag` stamped so the last second is `end_ms`: (gateway, payload) per second, and where
/// the walker truly was at the end (level id, x, y).
fn walk(radio: &position::RadioMap, tag: &str, end_ms: i64, (from, to): (&str, &str)) -> (Vec<Vec<(String, Value)>>, (String, f64, f64)) {
    let m = clinicflow::map::demo();
    let path = sim::walk_route(&m, from, to).unwrap();
    let path = &path[..WALK_S];
    let start = end_ms - (WALK_S as i64 - 1) * 1000;
    let seconds = sim::gateway_reports(radio, &m, path, 11, tag, start);
    let last = path[WALK_S - 1];
    (seconds, (m.levels[last.0].id.clone(), last.1, last.2))
}

/// An MQTT client logged in as `user` (client id `user:label`: the broker binds client ids to
/// logins); its event loop runs in the background.
async fn mqtt(port: u16, label: &str, user: &str, password: &str) -> (AsyncClient, tokio::task::JoinHandle<()>) {
    let mut o = MqttOptions::new(format!("{user}:{label}"), "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(5));
    o.set_credentials(user, password);
    let (client, mut ev) = AsyncClient::new(o, 1_024);
    let (up_tx, up_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut up = Some(up_tx);
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Some(t) = up.take() {
                        let _ = t.send(());
                    }
                }
                Ok(_) => {}
                // A test client does not reconnect: its test fails on what it then misses.
                Err(_) => break,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), up_rx).await.expect("MQTT login").unwrap();
    (client, task)
}

/// The server's own login on its embedded broker (from the data dir's device key).
fn server_login(app: &TestApp) -> (String, String) {
    let key = std::fs::read_to_string(app.data.join("device-key")).unwrap();
    (clinicflow::edges::broker::SERVER_USER.to_owned(), clinicflow::edges::broker::server_password(key.trim()))
}

async fn connect(app: &TestApp, t: &Value) -> Ws {
    let base = app.base.replacen("http://", "ws://", 1);
    let url = format!("{base}/ws/tickets/{}?token={}", t["id"].as_str().unwrap(), t["access_token"].as_str().unwrap());
    tokio_tungstenite::connect_async(url).await.expect("websocket connect").0
}

/// The next message of `kind` that satisfies `pred`.
async fn expect(ws: &mut Ws, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
    expect_all(ws, &[(kind, &pred)]).await.remove(0)
}

/// A message for each `(kind, pred)`, whatever order they come in, from one pass over the
/// stream: messages the phone gets in no fixed order (a "leave now" computed from an early
/// position and the positions after it) are all seen, none skipped while waiting for another.
async fn expect_all(ws: &mut Ws, wanted: &[(&str, &dyn Fn(&Value) -> bool)]) -> Vec<Value> {
    let mut found: Vec<Option<Value>> = vec![None; wanted.len()];
    let wait = async {
        while found.iter().any(Option::is_none) {
            let m = ws.next().await.expect("open").expect("frame");
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).unwrap();
                for (slot, (kind, pred)) in found.iter_mut().zip(wanted) {
                    if slot.is_none() && v["type"] == *kind && pred(&v) {
                        *slot = Some(v.clone());
                    }
                }
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(20), wait).await.is_err() {
        let missing: Vec<&str> = wanted.iter().zip(&found).filter(|(_, f)| f.is_none()).map(|((k, _), _)| *k).collect();
        panic!("no {missing:?} message in 20 s");
    }
    found.into_iter().flatten().collect()
}

/// The position counters once `done` holds for them. Readings from different MQTT connections
/// reach the server in no fixed order, so the test waits for the count it expects (bounded)
/// instead of reading it once.
async fn metrics_when(app: &TestApp, done: impl Fn(&str) -> bool) -> String {
    let done = &done;
    let seen = crate::helpers::poll(Duration::from_secs(20), move || async move { Some(app.get("/metrics").await.text().await.unwrap()).filter(|m| done(m)) }).await;
    match seen {
        Some(m) => m,
        None => {
            let m = app.get("/metrics").await.text().await.unwrap();
            panic!("the counters never got there:\n{}", m.lines().filter(|l| l.contains("position")).collect::<Vec<_>>().join("\n"))
        }
    }
}

fn metric(text: &str, result: &str) -> u64 {
    let key = format!("clinicflow_position_readings_total{{result=\"{result}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&key)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

async fn put_tag(app: &TestApp, patient: &str, tag: &str) -> reqwest::Response {
    app.client.put(app.url(&format!("/api/v1/patients/{patient}/tags/{tag}"))).bearer_auth(TOKEN).send().await.unwrap()
}

/// Publishes a walk's gateway reports about `tag` through `client` (one connection, so in order):
/// every other second one message per tag heard (ESPresense), the others one array per gateway
/// (a sweep), all at once (a gateway catching up after a network hiccup sends its backlog the
/// same way). Stamped on the server's clock, the last second 2 s ahead of it (gateway clocks
/// drift). Returns the last reading's time, the first's, and the truth at the end.
async fn publish_walk(app: &TestApp, client: &AsyncClient, radio: &position::RadioMap, tag: &str, route: (&str, &str)) -> (i64, i64, (String, f64, f64)) {
    let scan = {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-protocol/schemas/scan.schema.json");
        jsonschema::validator_for(&serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()).unwrap()
    };
    let end = app.now_ms() + 2_000;
    let (seconds, truth) = walk(radio, tag, end, route);
    let first_ts = seconds[0][0].1["ts"].as_i64().unwrap();
    let topic = |g: &str| format!("{PREFIX}/gateways/{g}/scan");
    for (i, second) in seconds.iter().enumerate() {
        let mut messages: Vec<(&str, Value)> = Vec::new();
        if i % 2 == 0 {
            messages.extend(second.iter().map(|(g, p)| (g.as_str(), p.clone())));
        } else {
            let mut by_gw: std::collections::BTreeMap<&str, Vec<&Value>> = Default::default();
            for (g, p) in second {
                by_gw.entry(g).or_default().push(p);
            }
            messages.extend(by_gw.into_iter().map(|(g, ps)| (g, json!(ps))));
        }
        for (g, p) in messages {
            assert!(scan.is_valid(&p), "the test's own reports follow the published schema: {p}");
            client.publish(topic(g), QoS::AtLeastOnce, false, p.to_string()).await.unwrap();
        }
    }
    (end, first_ts, truth)
}

#[tokio::test]
async fn a_wristband_is_followed_through_gateway_reports_to_the_patients_phone() {
    let dir = tempfile::tempdir().unwrap();
    let (radio_path, radio) = radio_map(dir.path());
    let data = dir.path().join("data");
    let app = start_args(&data, &["--radio", radio_path.to_str().unwrap()]);
    let port = app.mqtt_port.expect("embedded broker");

    let status = app.get_json("/api/v1/positioning").await;
    assert_eq!(status["enabled"], true);
    assert_eq!(status["venues"][0]["gateways"].as_array().unwrap().len(), radio.anchors());

    // Bindings: a known patient only, one visit per tag, phones' ids reserved, bad ids refused.
    let mine = app.issue("lab", "P-BLE-1").await;
    assert_eq!(put_tag(&app, "P-BLE-1", "wb-1").await.status(), 201);
    assert_eq!(put_tag(&app, "P-BLE-1", "wb-1").await.status(), 200, "binding again is a no-op");
    app.issue("surgery", "P-BLE-2").await;
    assert_eq!(error_code(put_tag(&app, "P-BLE-2", "wb-1").await).await, (409, "tag_in_use".into()));
    assert_eq!(error_code(put_tag(&app, "P-NOBODY", "wb-9").await).await, (404, "unknown_patient".into()));
    assert_eq!(error_code(put_tag(&app, "P-BLE-2", "phone:x").await).await, (400, "invalid_tag".into()));
    assert_eq!(error_code(put_tag(&app, "P-BLE-2", &"w".repeat(65)).await).await, (400, "invalid_tag".into()));
    let anon = app.client.put(app.url("/api/v1/patients/P-BLE-2/tags/wb-2")).send().await.unwrap();
    assert_eq!(anon.status(), 401);

    // The patient's phone follows the ticket; a second ticket makes the queue move so the phone
    // learns its time until the call.
    let mut ws = connect(&app, &mine).await;
    expect(&mut ws, "snapshot", |_| true).await;
    app.issue("lab", "P-BLE-3").await;
    expect(&mut ws, "position", |_| true).await;

    // A gateway logs in with its own credentials and may publish its scan.
    let creds = app.get_json("/api/v1/devices/credentials").await;
    let gw = creds["devices"].as_array().unwrap().iter().find(|d| d["kind"] == "gateway").expect("gateways are devices").clone();
    assert_eq!(gw["publish"][0], format!("{PREFIX}/gateways/{}/scan", gw["id"].as_str().unwrap()));
    let (gw_client, _gw_task) = mqtt(port, "gw-test", gw["username"].as_str().unwrap(), gw["password"].as_str().unwrap()).await;
    gw_client.publish(gw["publish"][0].as_str().unwrap(), QoS::AtLeastOnce, false, json!({"id": "someone-else", "rssi": -70}).to_string()).await.unwrap();

    // Bad readings first (they must move nobody), then the walk, all through one connection so
    // they arrive in order.
    let (user, password) = server_login(&app);
    let (bulk, _bulk_task) = mqtt(port, "gateways-test", &user, &password).await;
    let topic = |g: &str| format!("{PREFIX}/gateways/{g}/scan");
    let now = app.now_ms();
    let bad = [
        ("gw-0", "not json".to_owned()),
        ("gw-0", json!({"id": "wb-1", "rssi": -300}).to_string()),
        ("gw-0", json!({"id": "wb-1", "rssi": -60, "ts": now - 3_600_000}).to_string()),
        ("gw-0", json!({"id": "wb-1", "rssi": -60, "ts": now + 600_000}).to_string()),
        ("gw-0", json!([{"id": "stranger", "rssi": -60}]).to_string()),
        ("ghost-gateway", json!({"id": "wb-1", "rssi": -60}).to_string()),
    ];
    for (g, p) in &bad {
        bulk.publish(topic(g), QoS::AtLeastOnce, false, p.clone()).await.unwrap();
    }
    let (end, first_ts, truth) = publish_walk(&app, &bulk, &radio, "wb-1", ENTRANCE_TO_ULTRASOUND).await;

    // The phone sees the position arrive, placed on the level's drawing, and "leave now" (first in
    // line at the lab, two minutes away). "Leave now" is weighed from an early position of the
    // walk while the later ones are pushed, so it may come before or after the last of them.
    let at_end = |v: &Value| v["location"]["t"].as_i64().unwrap() >= end - 2_500;
    let seen = expect_all(&mut ws, &[("leave_now", &|_| true), ("location", &at_end)]).await;
    let (leave, last) = (&seen[0], &seen[1]);
    assert_eq!(leave["route"]["from"]["ref"], "position");
    assert!(leave["walk_s"].as_f64().unwrap() > 0.0 && leave["eta_secs"].is_u64(), "{leave}");
    let loc = &last["location"];
    assert_eq!(loc["patient"], "P-BLE-1");
    assert_eq!(loc["level"], truth.0.as_str(), "{loc}");
    let err = (loc["x"].as_f64().unwrap() - truth.1).hypot(loc["y"].as_f64().unwrap() - truth.2);
    assert!(err < 8.0, "the estimate is {err:.1} m from the walker: {loc}");
    let d = &last["drawing"];
    assert_eq!(d["level"], truth.0.as_str());
    for k in ["u", "v"] {
        assert!((0.0..=1.0).contains(&d[k].as_f64().unwrap()), "{d}");
    }

    // Staff (and the patient's own token) read where the patient is, and the trail; nothing
    // before the walk: the bad readings moved nobody.
    let v = app.get_json("/api/v1/patients/P-BLE-1/location?trail=true").await;
    assert_eq!(v["tags"], json!(["wb-1"]));
    let trail = v["trail"].as_array().unwrap();
    assert!(trail.len() >= 5, "{} positions", trail.len());
    assert!(trail.iter().all(|p| p["t"].as_i64().unwrap() >= first_ts), "a position from before the walk");
    let token = mine["access_token"].as_str().unwrap();
    let r = app.client.get(app.url(&format!("/api/v1/patients/P-BLE-1/location?token={token}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let other = app.client.get(app.url(&format!("/api/v1/patients/P-BLE-2/location?token={token}"))).send().await.unwrap();
    assert_eq!(other.status(), 403, "one patient's token does not show another's position");

    // The gateway's own reading came over its own connection: counted by the time it arrives.
    let m = metrics_when(&app, |m| metric(m, "unbound_tag") >= 2).await;
    for result in ["malformed", "impossible_rssi", "clock_skew", "unbound_tag", "unknown_gateway"] {
        assert!(metric(&m, result) >= 1, "{result} not counted:\n{}", m.lines().filter(|l| l.contains("position")).collect::<Vec<_>>().join("\n"));
    }
    assert!(metric(&m, "clock_skew") >= 2 && metric(&m, "unbound_tag") >= 2, "ahead and behind, array and gateway login");
    assert!(metric(&m, "accepted") >= 50);

    // The phone's own scans feed the same estimator: a second patient's phone hears the beacons.
    let theirs = app.issue("dermatology", "P-BLE-4").await;
    let mut phone = connect(&app, &theirs).await;
    expect(&mut phone, "snapshot", |_| true).await;
    phone.send(Message::text(json!({"type": "scan", "beacons": "nope"}).to_string())).await.unwrap();
    let end = app.now_ms() + 1_000;
    let (seconds, truth) = walk(&radio, "ignored", end, ENTRANCE_TO_ULTRASOUND);
    for second in &seconds {
        let beacons: Vec<Value> = second.iter().map(|(g, p)| json!({"id": g, "rssi": p["rssi"]})).collect();
        let t = second[0].1["ts"].as_i64().unwrap();
        phone.send(Message::text(json!({"type": "scan", "t": t, "beacons": beacons}).to_string())).await.unwrap();
    }
    let seen = expect(&mut phone, "location", |v| v["location"]["t"].as_i64().unwrap() >= end - 2_500).await;
    assert_eq!(seen["location"]["patient"], "P-BLE-4");
    assert_eq!(seen["location"]["level"], truth.0.as_str());
    assert!(metric(&app.get("/metrics").await.text().await.unwrap(), "malformed") >= 2, "the phone's bad scan is counted");

    // A kiosk scan is exact at once.
    phone.send(Message::text(json!({"type": "here", "at": "marker:K-A-entrance"}).to_string())).await.unwrap();
    let fixed = expect(&mut phone, "location", |v| v["location"]["exact"] == true).await;
    assert_eq!(fixed["location"]["spread_m"], 0.0);
}

#[tokio::test]
async fn bindings_survive_kill_9_and_end_with_the_visit() {
    let dir = tempfile::tempdir().unwrap();
    let (radio_path, _) = radio_map(dir.path());
    let data = dir.path().join("data");
    let radio_arg = radio_path.to_str().unwrap().to_owned();
    let mut app = start_args(&data, &["--radio", &radio_arg]);
    app.issue("cardiology", "P-DUR-1").await;
    assert_eq!(put_tag(&app, "P-DUR-1", "wb-7").await.status(), 201);
    assert_eq!(put_tag(&app, "P-DUR-1", "wb-8").await.status(), 201);
    app.kill9();

    let app = start_args(&data, &["--radio", &radio_arg]);
    let v = app.get_json("/api/v1/patients/P-DUR-1/location").await;
    assert_eq!(v["tags"], json!(["wb-7", "wb-8"]), "acknowledged bindings are durable");
    app.issue("cardiology", "P-DUR-2").await;
    assert_eq!(error_code(put_tag(&app, "P-DUR-2", "wb-7").await).await, (409, "tag_in_use".into()));

    let r = app.client.delete(app.url("/api/v1/patients/P-DUR-1/tags/wb-8")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.client.delete(app.url("/api/v1/patients/P-DUR-1/tags/wb-8")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(error_code(r).await, (404, "tag_not_bound".into()));

    let r = app.post_empty("/api/v1/patients/P-DUR-1/visit/end").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["tags_freed"], json!(["wb-7"]));
    let v = app.get_json("/api/v1/patients/P-DUR-1/location").await;
    assert_eq!((v["tags"].clone(), v["location"].clone()), (json!([]), Value::Null));
    assert_eq!(put_tag(&app, "P-DUR-2", "wb-7").await.status(), 201, "the visit is over: its wristband is free");
}

#[tokio::test]
async fn without_a_radio_map_positioning_is_off_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let app = start_args(&dir.path().join("data"), &[]);
    app.issue("cardiology", "P-OFF-1").await;
    assert_eq!(error_code(put_tag(&app, "P-OFF-1", "wb-1").await).await, (409, "positioning_off".into()));
    let v = app.get_json("/api/v1/patients/P-OFF-1/location").await;
    assert_eq!((v["positioning"].clone(), v["location"].clone()), (json!(false), Value::Null));
    // A radio map bound to an outline, or to a venue not served, stops the start with the reason.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"format\": 1}").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clinicflow"))
        .args(["serve", "--data"])
        .arg(dir.path().join("data2"))
        .args(["--http", "127.0.0.1:0", "--mqtt", "off", "--radio"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a radio map"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn the_patient_page_shows_where_the_patient_is_and_when_to_leave() {
    use crate::browser::{eval, screenshot, until, Driver, Screen};
    let dir = tempfile::tempdir().unwrap();
    let (radio_path, radio) = radio_map(dir.path());
    let app = start_args(&dir.path().join("data"), &["--radio", radio_path.to_str().unwrap()]);
    let t = app.issue("lab", "P-PAGE-1").await;
    assert_eq!(put_tag(&app, "P-PAGE-1", "wb-page").await.status(), 201);
    let driver = Driver::start().await;
    let phone = driver.page(Screen::Phone { width: 390, height: 844 }).await;
    phone.goto(&app.url(t["patient_url"].as_str().unwrap())).await.unwrap();
    until(&phone, "document.body.dataset.live === '1'", "the page follows its ticket live").await;

    let (user, password) = server_login(&app);
    let (client, _task) = mqtt(app.mqtt_port.unwrap(), "gateways-page", &user, &password).await;
    publish_walk(&app, &client, &radio, "wb-page", ENTRANCE_TO_ULTRASOUND).await;
    until(&phone, "document.querySelector('.here-dot') !== null && !document.querySelector('#here').classList.contains('hidden')", "a dot where the patient is").await;
    until(&phone, "!document.querySelector('#leave').classList.contains('hidden')", "time to go to the lab").await;
    until(&phone, "document.querySelector('#route-title').textContent.includes('检验')", "with the way from here").await;
    let dot = eval(&phone, "(() => { const d = document.querySelector('.here-dot'), f = d.parentElement.getBoundingClientRect(), r = d.getBoundingClientRect(); \
        const x = r.left + r.width / 2, y = r.top + r.height / 2; return x >= f.left && x <= f.right && y >= f.top && y <= f.bottom; })()").await;
    assert_eq!(dot, true, "the dot lies on its level drawing");
    screenshot(&phone, "patient-here-leave-now").await;
    phone.close().await.unwrap();
}

#[tokio::test]
async fn a_patient_who_leaves_the_route_is_planned_again_from_where_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let (radio_path, radio) = radio_map(dir.path());
    // The demo config without opening hours, so the plan does not depend on the time of day.
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo-hospital.toml")).unwrap();
    let text: String = text.lines().filter(|l| !l.starts_with("open =")).map(|l| format!("{l}\n")).collect();
    let cfg = dir.path().join("hospital.toml");
    std::fs::write(&cfg, text).unwrap();
    let app = crate::helpers::start_with_env(&dir.path().join("data"), Some(&cfg), &[("CLINICFLOW_REPLAN_SECS", "1"), ("CLINICFLOW_RADIO", radio_path.to_str().unwrap())]);
    let t = app.issue("internal-medicine", "P-OFF-ROUTE").await;
    assert_eq!(put_tag(&app, "P-OFF-ROUTE", "wb-off").await.status(), 201);
    let mut ws = connect(&app, &t).await;
    expect(&mut ws, "snapshot", |_| true).await;
    // The doctor orders an ECG and a return visit; the consultation in room 101 ends.
    let orders = json!({"orders": [{"id": "o-ecg", "code": "ECG"}, {"id": "o-ret", "code": "RETURN-IM"}]});
    assert_eq!(app.post("/api/v1/patients/P-OFF-ROUTE/orders", orders).await.status(), 200);
    assert_eq!(app.call_next("internal-medicine", "c-101").await.unwrap()["id"], t["id"]);
    assert_eq!(app.post_empty(&format!("/api/v1/tickets/{}/complete", t["id"].as_str().unwrap())).await.status(), 200);
    // The way to the ECG leaves room 101 to the left, along the corridor to the skybridge.
    let first = expect(&mut ws, "next_stop", |v| v["done"] == false).await;
    assert_eq!(first["plan"]["next"]["service"], "ecg", "{first}");
    assert_eq!(first["plan"]["next"]["route"]["from"]["ref"], "room:c-101");

    // The patient turns right instead, towards the stairs to 3F.
    let (user, password) = server_login(&app);
    let (client, _task) = mqtt(app.mqtt_port.unwrap(), "gateways-off-route", &user, &password).await;
    publish_walk(&app, &client, &radio, "wb-off", ("room:c-101", "room:c-301")).await;
    let off = expect(&mut ws, "location", |v| v["route"]["on_route"] == false).await;
    assert!(off["route"]["off_m"].as_f64().unwrap() > 8.0, "{off}");
    let again = expect(&mut ws, "next_stop", |v| v["why"] == "off_route").await;
    assert_eq!(again["plan"]["next"]["service"], "ecg");
    assert_eq!(again["plan"]["next"]["route"]["from"]["ref"], "position", "planned from where the patient is: {}", again["plan"]["next"]["route"]["from"]);
}

/// A map reload rebuilds the radio maps against the new maps: tracking goes on after it, and
/// maps the calibration no longer fits (its venue gone) are refused with the old ones serving.
#[tokio::test]
async fn a_map_reload_carries_the_radio_map_over_or_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let maps = dir.path().join("maps");
    std::fs::create_dir(&maps).unwrap();
    for e in std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("maps/demo-hospital")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), maps.join(e.file_name())).unwrap();
    }
    let (radio_path, radio) = radio_map(dir.path());
    let app = start_args(&dir.path().join("data"), &["--map", maps.to_str().unwrap(), "--radio", radio_path.to_str().unwrap()]);
    let port = app.mqtt_port.expect("embedded broker");
    let mine = app.issue("lab", "P-MAP-1").await;
    assert_eq!(put_tag(&app, "P-MAP-1", "wb-7").await.status(), 201);
    let mut ws = connect(&app, &mine).await;
    expect(&mut ws, "snapshot", |_| true).await;

    // The same maps again: accepted, and the wristband is followed on the rebuilt radio map.
    assert_eq!(app.post_empty("/api/v1/maps/reload").await.status(), 200);
    let (user, password) = server_login(&app);
    let (bulk, _task) = mqtt(port, "gateways-reload", &user, &password).await;
    let (end, _, truth) = publish_walk(&app, &bulk, &radio, "wb-7", ENTRANCE_TO_ULTRASOUND).await;
    let last = expect(&mut ws, "location", |v| v["location"]["t"].as_i64().unwrap() >= end - 2_500).await;
    let loc = &last["location"];
    assert_eq!(loc["level"], truth.0.as_str(), "{loc}");
    let err = (loc["x"].as_f64().unwrap() - truth.1).hypot(loc["y"].as_f64().unwrap() - truth.2);
    assert!(err < 8.0, "the estimate is {err:.1} m from the walker: {loc}");

    // The venue renamed: the calibration no longer fits; refused, naming the radio map, and the
    // old maps keep serving.
    let venue = maps.join("venue.geojson");
    let text = std::fs::read_to_string(&venue).unwrap().replace("\"id\": \"demo-hospital\"", "\"id\": \"renamed-hospital\"");
    std::fs::write(&venue, text).unwrap();
    let r = app.post_empty("/api/v1/maps/reload").await;
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "map_invalid");
    assert!(v["error"]["issues"].as_array().unwrap().iter().any(|i| i["file"] == "radio map" && i["feature"] == "demo-hospital"), "{v}");
    assert_eq!(app.get_json("/api/v1/maps").await["venues"][0]["id"], "demo-hospital");
    assert_eq!(app.get_json("/api/v1/positioning").await["venues"][0]["venue"], "demo-hospital");
}
