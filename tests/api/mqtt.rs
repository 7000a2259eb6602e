//! Displays and keypads over MQTT: through the embedded broker (devices log in with their
//! credentials and may use only their own topics) and through a real Mosquitto started by the test.

use crate::helpers::{start_args, TestApp};
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use std::process::{Child, Command};
use std::time::Duration;
use tokio::sync::mpsc;

const PREFIX: &str = "clinicflow/demo";

/// A schema from `firmware-protocol/schemas/`.
fn schema(name: &str) -> jsonschema::Validator {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-protocol/schemas").join(name);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::validator_for(&v).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Every payload the server publishes validates against its schema.
fn check(topic: &str, v: &Value) {
    let name = if topic.ends_with("/state") {
        "state.schema.json"
    } else if topic.ends_with("/announce") {
        "announce.schema.json"
    } else if topic.ends_with("/ack") {
        "ack.schema.json"
    } else if topic.ends_with("/status") {
        "status.schema.json"
    } else {
        return;
    };
    let errors: Vec<String> = schema(name).iter_errors(v).map(|e| format!("{} at {}", e, e.instance_path)).collect();
    assert!(errors.is_empty(), "{topic} does not validate against {name}: {errors:?}\n{v}");
}

#[test]
fn the_test_vectors_validate_against_the_schemas() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-protocol/vectors");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let schema_name = format!("{}.schema.json", name.split('-').next().unwrap());
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let errors: Vec<String> = schema(&schema_name).iter_errors(&v).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
        n += 1;
    }
    assert!(n >= 5);
    // And the schemas say no to what firmware must not send.
    assert!(!schema("command.schema.json").is_valid(&json!({"id": "", "action": "call_next", "room": "c-204"})));
    assert!(!schema("command.schema.json").is_valid(&json!({"id": "1", "action": "dance", "room": "c-204"})));
}

struct Mosquitto {
    child: Child,
    port: u16,
    /// A second, TLS listener (with `mosquitto_tls`): its port and the CA file that signs it.
    tls: Option<(u16, std::path::PathBuf)>,
    _dir: tempfile::TempDir,
}
impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn mosquitto() -> Mosquitto {
    start_mosquitto(false).await
}

/// Mosquitto with a plain listener (for the test's devices) and a TLS one (for the server), its
/// certificate for `localhost` signed by a CA made here.
async fn mosquitto_tls() -> Mosquitto {
    start_mosquitto(true).await
}

async fn start_mosquitto(tls: bool) -> Mosquitto {
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let port = free();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("mosquitto.conf");
    let mut text = format!("per_listener_settings false\nallow_anonymous true\npersistence false\nlog_dest none\nset_tcp_nodelay true\nlistener {port} 127.0.0.1\n");
    let mut tls_listener = None;
    if tls {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_owned()]).unwrap().signed_by(&key, &ca, &ca_key).unwrap();
        let (ca_file, cert_file, key_file) = (dir.path().join("ca.pem"), dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&ca_file, ca.pem()).unwrap();
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        let tls_port = free();
        text += &format!("listener {tls_port} 127.0.0.1\ncertfile {}\nkeyfile {}\n", cert_file.display(), key_file.display());
        tls_listener = Some((tls_port, ca_file));
    }
    std::fs::write(&conf, text).unwrap();
    let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"].into_iter().find(|p| std::path::Path::new(p).exists()).unwrap_or("mosquitto");
    let child = Command::new(bin).arg("-c").arg(&conf).spawn().expect("mosquitto (scripts/test installs it)");
    let tls_port = tls_listener.as_ref().map(|(p, _)| *p);
    let up = crate::helpers::poll(Duration::from_secs(5), move || async move {
        let tls_up = match tls_port {
            Some(p) => tokio::net::TcpStream::connect(("127.0.0.1", p)).await.is_ok(),
            None => true,
        };
        (tls_up && tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()).then_some(())
    })
    .await;
    assert!(up.is_some(), "mosquitto did not start");
    Mosquitto { child, port, tls: tls_listener, _dir: dir }
}

/// Device logins by device id: from the provisioning API for the embedded broker; none (anonymous)
/// for the test's Mosquitto.
#[derive(Default)]
struct Logins(std::collections::HashMap<String, (String, String)>);

impl Logins {
    async fn of(app: &TestApp) -> Logins {
        let v = app.get_json("/api/v1/devices/credentials").await;
        Logins(
            v["devices"]
                .as_array()
                .expect("devices")
                .iter()
                .map(|d| (d["id"].as_str().unwrap().to_owned(), (d["username"].as_str().unwrap().to_owned(), d["password"].as_str().unwrap().to_owned())))
                .collect(),
        )
    }
    fn options(&self, client_id: &str, device: &str, port: u16) -> MqttOptions {
        let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(5));
        if let Some((u, p)) = self.0.get(device) {
            o.set_credentials(u.clone(), p.clone());
        }
        o
    }
}

/// A device: an MQTT client whose received publishes arrive on a channel.
struct Device {
    client: AsyncClient,
    rx: mpsc::UnboundedReceiver<(String, Value)>,
    task: tokio::task::JoinHandle<()>,
}

/// `client_id` connects as device `login` (its credentials, where the broker wants them).
async fn device(port: u16, logins: &Logins, client_id: &str, login: &str, will: Option<LastWill>, subs: &[String]) -> Device {
    let mut o = logins.options(client_id, login, port);
    if let Some(w) = will {
        o.set_last_will(w);
    }
    let (client, mut ev) = AsyncClient::new(o, 64);
    for s in subs {
        client.subscribe(s, QoS::AtLeastOnce).await.unwrap();
    }
    let (tx, rx) = mpsc::unbounded_channel();
    // The device is ready once the broker has granted every subscription (SUBACK): a message
    // published before that is not delivered to it, however fast the test goes on.
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    let mut pending = subs.len();
    let mut ready_tx = Some(ready_tx);
    if pending == 0 {
        let _ = ready_tx.take().map(|r| r.send(()));
    }
    let task = tokio::spawn(async move {
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let v = serde_json::from_slice(&p.payload).unwrap_or(Value::String(String::from_utf8_lossy(&p.payload).into()));
                    check(&p.topic, &v);
                    let _ = tx.send((p.topic.clone(), v));
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    pending = pending.saturating_sub(1);
                    if pending == 0 {
                        if let Some(r) = ready_tx.take() {
                            let _ = r.send(());
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(15), ready).await.expect("the broker granted the subscriptions").expect("device event loop");
    Device { client, rx, task }
}

impl Device {
    /// The next message on a topic ending with `suffix` that satisfies `pred`.
    async fn expect(&mut self, suffix: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let wait = async {
            loop {
                let (t, v) = self.rx.recv().await.expect("device connected");
                if t.ends_with(suffix) && pred(&v) {
                    return v;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(15), wait).await.unwrap_or_else(|_| panic!("no {suffix} message in 15 s"))
    }
    async fn press(&self, id: &str, action: &str, room: &str) {
        let cmd = json!({"id": id, "action": action, "room": room}).to_string();
        self.client.publish(format!("{PREFIX}/keypads/keypad-c-204/command"), QoS::AtLeastOnce, false, cmd).await.unwrap();
    }
}

fn serve_with(m: &Mosquitto, dir: &std::path::Path) -> TestApp {
    start_args(&dir.join("data"), &["--mqtt-broker", &format!("mqtt://127.0.0.1:{}", m.port)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keypad_press_acks_updates_the_door_display_and_announces_via_mosquitto() {
    let m = mosquitto().await;
    let dir = tempfile::tempdir().unwrap();
    let app = serve_with(&m, dir.path());
    keypad_flow(&app, m.port, &Logins::default()).await;
}

/// The server reaches an external broker over TLS (`mqtts://`, the broker's CA given with
/// `--mqtt-ca`); devices on the broker's plain listener see the same flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_talks_to_an_external_broker_over_tls() {
    let m = mosquitto_tls().await;
    let (tls_port, ca) = m.tls.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = start_args(&dir.path().join("data"), &["--mqtt-broker", &format!("mqtts://localhost:{tls_port}"), "--mqtt-ca", &ca.display().to_string()]);
    keypad_flow(&app, m.port, &Logins::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keypad_press_acks_updates_the_door_display_and_announces_via_the_embedded_broker() {
    let app = crate::helpers::spawn_app().await;
    let port = app.mqtt_port.expect("the embedded broker runs by default");
    keypad_flow(&app, port, &Logins::of(&app).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn displays_get_retained_state_and_last_will_via_the_embedded_broker() {
    let app = crate::helpers::spawn_app().await;
    let port = app.mqtt_port.expect("the embedded broker runs by default");
    display_lifecycle(&app, port, &Logins::of(&app).await).await;
}

async fn keypad_flow(app: &TestApp, port: u16, logins: &Logins) {
    let screen_topics = [format!("{PREFIX}/displays/door-c-204/state"), format!("{PREFIX}/displays/door-c-204/announce")];
    let mut screen = device(port, logins, "door-c-204", "door-c-204", None, &screen_topics).await;
    let mut pad = device(port, logins, "keypad-c-204", "keypad-c-204", None, &[format!("{PREFIX}/keypads/keypad-c-204/ack")]).await;
    let t = app.issue("ent", "p1").await;
    let number = t["number"].as_str().unwrap().to_owned();
    // The door display lists the waiting patient (masked) as next.
    let n = number.clone();
    let state = screen.expect("/state", move |v| v["next"][0]["next"][0]["number"] == n.as_str()).await;
    assert_eq!(state["v"], 1);
    assert_eq!(state["kind"], "door");
    assert_eq!(state["next"][0]["next"][0]["name"], "张*丰");

    // As firmware does: re-send the same id until the ack arrives (a press made while the
    // server's subscription is still on its way to the broker is not delivered to anyone).
    let mut tries = 0;
    let ack = loop {
        pad.press("k-1", "call_next", "c-204").await;
        tries += 1;
        match tokio::time::timeout(Duration::from_secs(2), pad.expect("/ack", |v| v["id"] == "k-1")).await {
            Ok(ack) => break ack,
            Err(_) => assert!(tries < 8, "no ack for k-1 after {tries} presses"),
        }
    };
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["number"], number.as_str());
    let announce = screen.expect("/announce", |_| true).await;
    assert_eq!(announce["kind"], "call");
    assert_eq!(announce["text_zh"], format!("请 {number} 号 张*丰 到 204 诊室就诊"));
    let n = number.clone();
    let state = screen.expect("/state", move |v| v["rooms"][0]["current"]["number"] == n.as_str()).await;
    assert_eq!(state["rooms"][0]["room_name"], "204 诊室");

    // The same command id again: the same answer, applied once.
    app.issue("ent", "p2").await;
    pad.press("k-1", "call_next", "c-204").await;
    let again = pad.expect("/ack", |v| v["id"] == "k-1").await;
    assert_eq!(again, ack);
    let q = app.get_json("/api/v1/queues/ent").await;
    assert_eq!(q["counts"]["waiting"], 1, "the repeated press called nobody else");

    // Bad input: an ack with a code, nothing changes, the bridge keeps serving.
    for (payload, code) in [
        ("{not json".to_owned(), "invalid_json"),
        (json!({"id": "k-2", "action": "teleport", "room": "c-204"}).to_string(), "unknown_action"),
        (json!({"id": "k-3", "action": "call_next", "room": "c-101"}).to_string(), "room_not_bound"),
        (json!({"id": "k-4", "action": "call_next", "room": "c-204", "pad": "x".repeat(600)}).to_string(), "payload_too_large"),
    ] {
        pad.client.publish(format!("{PREFIX}/keypads/keypad-c-204/command"), QoS::AtLeastOnce, false, payload).await.unwrap();
        let nack = pad.expect("/ack", |v| v["ok"] == false).await;
        assert_eq!(nack["code"], code, "{nack}");
    }
    assert_eq!(app.get_json("/api/v1/queues/ent").await["counts"]["waiting"], 1);
    pad.press("k-5", "recall", "c-204").await;
    let ack = pad.expect("/ack", |v| v["id"] == "k-5").await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(screen.expect("/announce", |_| true).await["kind"], "recall");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebooted_display_gets_its_state_at_once_and_a_dead_one_shows_offline() {
    let m = mosquitto().await;
    let dir = tempfile::tempdir().unwrap();
    let app = serve_with(&m, dir.path());
    display_lifecycle(&app, m.port, &Logins::default()).await;
}

async fn display_lifecycle(app: &TestApp, port: u16, logins: &Logins) {
    let t = app.issue("ent", "p1").await;
    app.call_next("ent", "c-204").await.unwrap();

    // A display that boots now receives the retained state straight away.
    let mut screen = device(port, logins, "door-c-204:boot", "door-c-204", None, &[format!("{PREFIX}/displays/door-c-204/state")]).await;
    let n = t["number"].as_str().unwrap().to_owned();
    screen.expect("/state", move |v| v["rooms"][0]["current"]["number"] == n.as_str()).await;

    // Online, then killed without a goodbye: its last will marks it offline.
    let status = format!("{PREFIX}/displays/door-c-204/status");
    let will = LastWill::new(&status, "offline", QoS::AtLeastOnce, true);
    let d = device(port, logins, "door-c-204", "door-c-204", Some(will), &[]).await;
    d.client.publish(&status, QoS::AtLeastOnce, true, "online").await.unwrap();
    let find = |v: &Value| v["displays"].as_array().unwrap().iter().find(|x| x["id"] == "door-c-204").cloned().unwrap();
    poll(app, "/api/v1/displays", |v| find(v)["online"] == true).await;
    d.task.abort(); // the connection drops without DISCONNECT
    drop(d.client);
    let last = poll(app, "/api/v1/displays", |v| find(v)["online"] == false).await;
    assert_eq!(last["offline"], 1);
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("clinicflow_display_online{display=\"door-c-204\"} 0"), "{metrics}");
}

/// An LED controller configured for GB2312 receives its payloads in GB2312 (GBK) bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gb2312_display_gets_gb2312_payloads() {
    let app = crate::helpers::spawn_app().await;
    let port = app.mqtt_port.expect("the embedded broker runs by default");
    let o = Logins::of(&app).await.options("corridor-3f", "corridor-3f", port);
    let (client, mut ev) = AsyncClient::new(o, 64);
    client.subscribe(format!("{PREFIX}/displays/corridor-3f/announce"), QoS::AtLeastOnce).await.unwrap();
    // Wait for the subscription before calling.
    loop {
        if let Ok(Event::Incoming(Packet::SubAck(_))) = ev.poll().await {
            break;
        }
    }
    let t = app.issue("cardiology", "p1").await;
    app.call_next("cardiology", "c-301").await.unwrap();
    let bytes = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if let Ok(Event::Incoming(Packet::Publish(p))) = ev.poll().await {
                return p.payload.to_vec();
            }
        }
    })
    .await
    .expect("an announce");
    assert!(std::str::from_utf8(&bytes).is_err(), "not UTF-8");
    let (text, _, bad) = encoding_rs::GBK.decode(&bytes);
    assert!(!bad);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["text_zh"], format!("请 {} 号 张*丰 到 301 诊室就诊", t["number"].as_str().unwrap()));
    check("x/announce", &v);
}

/// `clinicflow devices` runs the config's displays and keypads against the server and stops by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_simulator_calls_patients_and_shows_them() {
    let app = crate::helpers::spawn_app().await;
    let port = app.mqtt_port.expect("the embedded broker runs by default");
    let t = app.issue("ent", "p1").await;
    let number = t["number"].as_str().unwrap().to_owned();
    let args = [
        "devices".to_owned(),
        "--broker".into(),
        format!("mqtt://127.0.0.1:{port}"),
        "--data".into(),
        app.data.display().to_string(),
        "--press-every".into(),
        "0.5".into(),
        "--duration".into(),
        // Long enough for 41 devices to log in and press on a loaded CI machine.
        "8".into(),
    ];
    let out = tokio::task::spawn_blocking(move || std::process::Command::new(env!("CARGO_BIN_EXE_clinicflow")).args(args).output().unwrap()).await.unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("called {number}")), "{text}");
    assert!(text.contains(&format!("door-c-204 says: 请 {number} 号")), "{text}");
    assert!(text.contains("devices: done"));
    let ticket = app.get_json(&format!("/api/v1/tickets/{}", t["id"].as_str().unwrap())).await;
    assert_ne!(ticket["status"], "waiting");
    let displays = app.get_json("/api/v1/displays").await;
    let all = displays["displays"].as_array().unwrap();
    let heard = all.iter().filter(|d| !d["online"].is_null()).count();
    assert!(heard * 2 >= all.len(), "simulated displays report their status: {heard} of {}", all.len());
}

/// Device credentials and ACLs on the embedded broker: no login or a wrong password is refused;
/// a display may not read another display's topics; a keypad that writes another keypad's
/// command topic is cut off and nothing is applied; everyone else is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_broker_lets_each_device_use_only_its_own_topics() {
    use rumqttc::{ConnectReturnCode, ConnectionError, SubscribeReasonCode};
    let app = crate::helpers::spawn_app().await;
    let port = app.mqtt_port.expect("the embedded broker runs by default");
    let logins = Logins::of(&app).await;
    assert!(logins.0.contains_key("door-c-101") && logins.0.contains_key("keypad-c-101"));
    // The credentials are for the admin only.
    let r = app.client.get(app.url("/api/v1/devices/credentials")).send().await.unwrap();
    assert_eq!(crate::helpers::error_code(r).await, (401, "missing_token".to_owned()));
    let first_event = |o: MqttOptions| async move {
        let (_c, mut ev) = AsyncClient::new(o, 8);
        tokio::time::timeout(Duration::from_secs(15), ev.poll()).await.expect("an answer from the broker")
    };
    let mut anonymous = MqttOptions::new("intruder", "127.0.0.1", port);
    anonymous.set_keep_alive(Duration::from_secs(5));
    let mut wrong = anonymous.clone();
    wrong.set_credentials("door-c-101", "not-the-password");
    for o in [anonymous, wrong] {
        match first_event(o).await {
            Err(ConnectionError::ConnectionRefused(code)) => {
                assert!(matches!(code, ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword), "{code:?}")
            }
            other => panic!("a connection without the right login must be refused: {other:?}"),
        }
    }

    // A display: its own state is granted (and arrives, retained); another display's is refused.
    let (screen, mut ev) = AsyncClient::new(logins.options("door-c-101", "door-c-101", port), 16);
    screen.subscribe(format!("{PREFIX}/displays/door-c-101/state"), QoS::AtLeastOnce).await.unwrap();
    screen.subscribe(format!("{PREFIX}/displays/door-c-102/state"), QoS::AtLeastOnce).await.unwrap();
    let mut codes = Vec::new();
    let mut own_state = false;
    tokio::time::timeout(Duration::from_secs(15), async {
        while codes.len() < 2 || !own_state {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::SubAck(a))) => codes.extend(a.return_codes),
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    assert!(p.topic.ends_with("/door-c-101/state"), "only its own topics reach a display: {}", p.topic);
                    own_state = true;
                }
                Ok(_) => {}
                Err(e) => panic!("the display was disconnected: {e}"),
            }
        }
    })
    .await
    .expect("both subscriptions answered and the own state received");
    assert!(matches!(codes[0], SubscribeReasonCode::Success(_)), "{codes:?}");
    assert_eq!(codes[1], SubscribeReasonCode::Failure, "another display's topic is refused");

    // A keypad writing another keypad's topic is disconnected; the command is not applied.
    let t = app.issue("internal-medicine", "p-acl").await;
    let (rogue, mut ev) = AsyncClient::new(logins.options("keypad-c-204", "keypad-c-204", port), 16);
    let cmd = json!({"id": "rogue-1", "action": "call_next", "room": "c-101"}).to_string();
    rogue.publish(format!("{PREFIX}/keypads/keypad-c-101/command"), QoS::AtLeastOnce, false, cmd).await.unwrap();
    let cut = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if let Err(e) = ev.poll().await {
                return e;
            }
        }
    })
    .await
    .expect("the broker cuts off a device that writes a topic not its own");
    let _ = cut;
    // The real keypad of c-101 still works, and calls the patient the rogue press did not.
    let mut pad = device(port, &logins, "keypad-c-101", "keypad-c-101", None, &[format!("{PREFIX}/keypads/keypad-c-101/ack")]).await;
    // (Its SUBSCRIBE goes out before this PUBLISH on the same connection, so the ack is not missed.)
    let cmd = json!({"id": "real-1", "action": "call_next", "room": "c-101"}).to_string();
    pad.client.publish(format!("{PREFIX}/keypads/keypad-c-101/command"), QoS::AtLeastOnce, false, cmd).await.unwrap();
    let ack = pad.expect("/ack", |v| v["id"] == "real-1").await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["number"], t["number"], "the rogue press called nobody: {ack}");
    // Every refusal is counted for IT's alerting (and logged with the device and topic).
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let count = |action: &str| -> u64 {
        let key = format!("clinicflow_mqtt_broker_refused_total{{action=\"{action}\"}} ");
        metrics.lines().find_map(|l| l.strip_prefix(key.as_str())).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
    };
    assert!(count("login") >= 2 && count("subscribe") >= 1 && count("publish") >= 1, "{metrics}");
}

/// Delivery assurance: a display that acknowledges is measured; one that stops acknowledging
/// raises an alarm (API, metric) that its next acknowledgement clears; garbage on the ack topic
/// is counted and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_display_that_stops_acknowledging_raises_an_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let demo = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo-hospital.toml")).unwrap();
    let config = dir.path().join("hospital.toml");
    std::fs::write(&config, format!("{demo}\n[delivery]\nshown_within_secs = 1\nspoken_within_secs = 3\n")).unwrap();
    let app = crate::helpers::start(&dir.path().join("data"), Some(&config));
    let port = app.mqtt_port.expect("the embedded broker runs by default");
    let logins = Logins::of(&app).await;
    let topics = [format!("{PREFIX}/displays/door-c-101/state"), format!("{PREFIX}/displays/door-c-101/announce")];
    let mut screen = device(port, &logins, "door-c-101", "door-c-101", None, &topics).await;
    // The retained state arrives once the subscriptions are in place (the broker handles them in order).
    screen.expect("/state", |_| true).await;
    let ack = |seq: i64, stage: &str| json!({"v": 1, "seq": seq, "stage": stage}).to_string();
    let ack_topic = format!("{PREFIX}/displays/door-c-101/ack");
    let door = |v: &Value| v["displays"].as_array().unwrap().iter().find(|d| d["id"] == "door-c-101").cloned().unwrap();

    app.issue("internal-medicine", "p1").await;
    app.issue("internal-medicine", "p2").await;
    app.call_next("internal-medicine", "c-101").await.unwrap();
    let first = screen.expect("/announce", |_| true).await;
    let s1 = first["seq"].as_i64().unwrap();
    assert!(first["call"].as_u64().unwrap() >= 1, "a per-queue call number");
    screen.client.publish(&ack_topic, QoS::AtLeastOnce, false, ack(s1, "shown")).await.unwrap();
    screen.client.publish(&ack_topic, QoS::AtLeastOnce, false, ack(s1, "spoken")).await.unwrap();
    screen.client.publish(&ack_topic, QoS::AtLeastOnce, false, "garbage").await.unwrap();
    let measured = poll(&app, "/api/v1/displays", |v| door(v)["delivery"]["spoken"] == 1).await;
    assert_eq!(door(&measured)["delivery"]["shown"], 1);
    assert_eq!(door(&measured)["alarms"], json!([]));

    // The second call is never acknowledged: `not_shown` after a second.
    app.call_next("internal-medicine", "c-101").await.unwrap();
    let second = screen.expect("/announce", |_| true).await;
    let s2 = second["seq"].as_i64().unwrap();
    let alarms = poll(&app, "/api/v1/displays/alarms", |v| v["alarms"].as_array().unwrap().iter().any(|a| a["display"] == "door-c-101")).await;
    let alarm = alarms["alarms"].as_array().unwrap().iter().find(|a| a["display"] == "door-c-101").unwrap().clone();
    assert_eq!(alarm["kind"], "not_shown");
    assert_eq!(alarm["seq"], s2);
    assert_eq!(alarm["number"], second["number"]);
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"clinicflow_display_alarms_total{display="door-c-101",kind="not_shown"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"clinicflow_display_alarm{display="door-c-101",kind="not_shown"} 1"#));
    assert!(metrics.contains(r#"clinicflow_display_shown_seconds_count{display="door-c-101"} 1"#));
    assert!(metrics.contains(r#"clinicflow_display_acks_total{result="invalid"} 1"#));

    // Shown at last: the alarm clears.
    screen.client.publish(&ack_topic, QoS::AtLeastOnce, false, ack(s2, "spoken")).await.unwrap();
    poll(&app, "/api/v1/displays/alarms", |v| !v["alarms"].as_array().unwrap().iter().any(|a| a["display"] == "door-c-101")).await;
    screen.task.abort();
}

/// GET `path` until `pred` holds (bounded: 15 s).
async fn poll(app: &TestApp, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let pred = &pred;
    match crate::helpers::poll(Duration::from_secs(15), move || async move { Some(app.get_json(path).await).filter(|v| pred(v)) }).await {
        Some(v) => v,
        None => panic!("{path} never satisfied the condition: {}", app.get_json(path).await),
    }
}

#[tokio::test]
async fn a_client_id_is_bound_to_its_login_so_no_device_takes_over_another_session() {
    use rumqttc::{ConnectReturnCode, ConnectionError};
    let app = crate::helpers::spawn_app().await;
    let port = app.mqtt_port.expect("the embedded broker runs by default");
    let logins = Logins::of(&app).await;
    let mut screen = device(port, &logins, "door-c-101", "door-c-101", None, &[format!("{PREFIX}/displays/door-c-101/state")]).await;
    // A keypad's right login with the display's client id, or with the server's own: MQTT would
    // drop the older connection of that id, so the broker refuses the login.
    let servers = format!("{}:{}:main", clinicflow::edges::broker::SERVER_USER, app.pid());
    for id in ["door-c-101", servers.as_str(), "door-c-101:second"] {
        let (_c, mut ev) = AsyncClient::new(logins.options(id, "keypad-c-101", port), 8);
        match tokio::time::timeout(Duration::from_secs(15), ev.poll()).await.expect("an answer from the broker") {
            Err(ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized)) => {}
            other => panic!("keypad-c-101 connecting as {id}: {other:?}"),
        }
    }
    // Its own id, and its own id with a suffix (a second connection), are its.
    let _pad = device(port, &logins, "keypad-c-101:second", "keypad-c-101", None, &[format!("{PREFIX}/keypads/keypad-c-101/ack")]).await;

    // The display and the server's link were never knocked off: a call reaches the display.
    let t = app.issue("internal-medicine", "p-takeover").await;
    let number = t["number"].as_str().unwrap().to_owned();
    screen.expect("/state", move |v| v.to_string().contains(number.as_str())).await;
    let m = app.get("/metrics").await.text().await.unwrap();
    assert!(m.contains("clinicflow_mqtt_broker_refused_total{action=\"client_id\"} 3"), "{}", m.lines().filter(|l| l.contains("refused")).collect::<Vec<_>>().join("\n"));
}
