//! MQTT edge: wall displays, caller keypads and BLE gateways. The server is a client of a broker
//! (rumqttc); it publishes each display's retained `state` and one `announce` per call, tracks
//! displays' `status` (online/offline, set by their last will), applies keypad `command`s,
//! answering on `ack`, and hands gateways' `scan` reports to the position desk. Topics and payloads: `firmware-protocol/README.md`.

use crate::actors::displays::{DisplayFeed, DisplayMessage};
use crate::actors::Floor;
use crate::domain::command::Idempotency;
use crate::domain::config::Hospital;
use crate::domain::ids::RoomId;
use crate::domain::keypad::KeypadCommand;
use crate::site::PayloadEncoding;
use crate::edges::http::error::ApiError;
use crate::telemetry::Metrics;
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;

pub use crate::actors::displays::PROTOCOL_VERSION;
/// Largest keypad command accepted (small microcontrollers send ~60 bytes).
pub use crate::domain::keypad::MAX_COMMAND_BYTES;
/// Incoming publishes waiting for the handler; beyond it they are dropped and counted.
const INCOMING: usize = 1_024;

/// The bytes a display receives for a JSON payload, in its configured encoding.
pub fn encode(encoding: PayloadEncoding, json: &str) -> Vec<u8> {
    match encoding {
        PayloadEncoding::Utf8 => json.as_bytes().to_vec(),
        PayloadEncoding::Gb2312 => encoding_rs::GBK.encode(json).0.into_owned(),
    }
}

/// Small packets go out at once (TCP_NODELAY): with Nagle on, a publish queued behind an
/// unacknowledged one waits for the broker's delayed ACK, tens of milliseconds on a busy morning.
pub fn no_delay(eventloop: &mut rumqttc::EventLoop) {
    let mut net = eventloop.network_options();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
}

/// Where the broker is and how to log in.
#[derive(Debug, Clone)]
pub struct MqttSettings {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Topic prefix, default `clinicflow/{site}`.
    pub prefix: String,
    /// TLS (`mqtts://`): the client configuration with the trusted roots.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// A TLS client configuration trusting the CAs in `ca_file` (PEM), or the system's roots.
pub fn tls_config(ca_file: Option<&std::path::Path>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| anyhow::anyhow!("reading the MQTT CA file {}: {e}", path.display()))?
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow::anyhow!("the MQTT CA file {} is not valid PEM: {e}", path.display()))?;
            anyhow::ensure!(!certs.is_empty(), "the MQTT CA file {} holds no certificate", path.display());
            for c in certs {
                roots.add(c).map_err(|e| anyhow::anyhow!("a certificate in {} is not usable: {e}", path.display()))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for c in native.certs {
                let _ = roots.add(c);
            }
            anyhow::ensure!(!roots.is_empty(), "no trusted root certificates on this system; give the broker's CA with --mqtt-ca");
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow::anyhow!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl MqttSettings {
    /// `mqtt://[user[:password]@]host[:port]`, or `mqtts://…` (TLS, port 8883 by default,
    /// trusting the CAs in `ca_file` or the system's roots).
    pub fn from_url(url: &str, prefix: String, ca_file: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let (tls, rest) = match (url.strip_prefix("mqtt://"), url.strip_prefix("mqtts://")) {
            (Some(r), _) => (false, r),
            (_, Some(r)) => (true, r),
            _ => anyhow::bail!("the broker URL must start with mqtt:// or mqtts:// (got {url:?})"),
        };
        let (auth, hostport) = match rest.rsplit_once('@') {
            Some((a, h)) => (Some(a), h),
            None => (None, rest),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| anyhow::anyhow!("bad port in {url:?}"))?),
            None => (hostport.to_owned(), if tls { 8883 } else { 1883 }),
        };
        anyhow::ensure!(!host.is_empty(), "no host in {url:?}");
        let (username, password) = match auth.map(|a| a.split_once(':').map_or((a, None), |(u, p)| (u, Some(p)))) {
            Some((u, p)) => (Some(u.to_owned()), p.map(str::to_owned)),
            None => (None, None),
        };
        anyhow::ensure!(tls || ca_file.is_none(), "a CA file is for an mqtts:// broker");
        let tls = if tls { Some(tls_config(ca_file)?) } else { None };
        Ok(Self { host, port, username, password, prefix, tls })
    }
}

/// What the server knows of each display: its last status message.
#[derive(Debug, Clone, Serialize)]
pub struct DisplayHealth {
    pub id: String,
    pub kind: crate::domain::config::DisplayKind,
    pub rooms: Vec<RoomId>,
    pub location: String,
    /// `None` until the display has said anything.
    pub online: Option<bool>,
    /// When the status last changed (Unix ms).
    pub since: Option<i64>,
}

/// Shared with the HTTP edge (`GET /api/v1/displays`).
#[derive(Clone, Default)]
pub struct DisplayRegistry(Arc<RwLock<BTreeMap<String, DisplayHealth>>>);

impl DisplayRegistry {
    pub fn new(hospital: &Hospital) -> Self {
        let m = hospital
            .displays
            .iter()
            .map(|d| {
                let h = DisplayHealth { id: d.id.clone(), kind: d.kind, rooms: d.rooms.clone(), location: d.location.clone(), online: None, since: None };
                (d.id.clone(), h)
            })
            .collect();
        Self(Arc::new(RwLock::new(m)))
    }
    pub fn list(&self) -> Vec<DisplayHealth> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }
    fn set(&self, id: &str, online: bool, at: i64) -> bool {
        let mut m = self.0.write().unwrap_or_else(|p| p.into_inner());
        match m.get_mut(id) {
            Some(h) => {
                if h.online != Some(online) {
                    h.online = Some(online);
                    h.since = Some(at);
                }
                true
            }
            None => false,
        }
    }
}

/// Start the MQTT edge. Must run inside an actix system. The receiver resolves once the broker
/// has granted the server's subscriptions the first time (keypads, display status and acks,
/// gateway scans): from then on, what a device publishes reaches the server. Until then a
/// message finds no subscriber and the broker drops it, so the server says it is up only after.
pub fn start(
    settings: MqttSettings,
    floor: Floor,
    feed: DisplayFeed,
    registry: DisplayRegistry,
    positions: crate::actors::positions::PositionDesk,
    encodings: BTreeMap<String, PayloadEncoding>,
    metrics: Arc<Metrics>,
) -> tokio::sync::oneshot::Receiver<()> {
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    let mut opts = MqttOptions::new(crate::edges::broker::server_client_id("main"), settings.host.clone(), settings.port);
    opts.set_keep_alive(Duration::from_secs(15));
    opts.set_max_packet_size(64 * 1024, 64 * 1024);
    // A command is acknowledged to the broker only after it is handled (journaled and answered).
    // This also keeps the PUBACK from going out just before the answer: rumqttc cannot set
    // TCP_NODELAY, and a PUBACK followed by a publish would wait ~40 ms for the broker's
    // delayed ACK (Nagle).
    opts.set_manual_acks(true);
    if let Some(u) = &settings.username {
        opts.set_credentials(u.clone(), settings.password.clone().unwrap_or_default());
    }
    if let Some(tls) = &settings.tls {
        opts.set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(tls.clone())));
    }
    // Display states and announcements go over a connection of their own: thousands of states
    // after a burst of calls never queue ahead of a keypad's answer on this one.
    let mut display_opts = opts.clone();
    display_opts.set_client_id(crate::edges::broker::server_client_id("displays"));
    display_opts.set_manual_acks(false);
    let (client, mut eventloop) = AsyncClient::new(opts, 1_024);
    no_delay(&mut eventloop);
    // A short request queue: states wait in the publisher (the latest per display), not here.
    let (display_client, mut display_events) = AsyncClient::new(display_opts, DISPLAY_QUEUE);
    no_delay(&mut display_events);
    let prefix = Arc::new(settings.prefix.clone());
    let (in_tx, in_rx) = mpsc::channel::<rumqttc::Publish>(INCOMING);
    let (resync_tx, resync_rx) = mpsc::channel::<()>(1);

    // The event loop: never returns on errors, logs and backs off.
    {
        let (client, prefix, metrics) = (client.clone(), prefix.clone(), metrics.clone());
        let gateways = positions.enabled();
        let mut ready_tx = Some(ready_tx);
        actix_rt::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            // Subscriptions asked for and not yet granted (SUBACK), on the first connection.
            let mut granting = 0usize;
            loop {
                match eventloop.poll().await {
                    Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                        tracing::info!("connected to the MQTT broker");
                        backoff = Duration::from_millis(200);
                        granting = 0;
                        for t in ["keypads/+/command", "displays/+/status", "displays/+/ack"] {
                            granting += usize::from(client.try_subscribe(format!("{prefix}/{t}"), QoS::AtLeastOnce).is_ok());
                        }
                        if gateways {
                            // Scans are many and soon stale: at most once is right for them.
                            granting += usize::from(client.try_subscribe(format!("{prefix}/gateways/+/scan"), QoS::AtMostOnce).is_ok());
                        }
                    }
                    Ok(MqttEvent::Incoming(Packet::SubAck(_))) => {
                        granting = granting.saturating_sub(1);
                        if granting == 0 {
                            if let Some(r) = ready_tx.take() {
                                let _ = r.send(());
                            }
                        }
                    }
                    Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                        if let Err(e) = in_tx.try_send(p) {
                            // Acknowledge what is dropped too, or the broker's in-flight window fills.
                            let p = match e {
                                mpsc::error::TrySendError::Full(p) | mpsc::error::TrySendError::Closed(p) => p,
                            };
                            let _ = client.try_ack(&p);
                            metrics.mqtt_dropped.inc();
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "MQTT connection lost; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
        });
    }
    // The displays' connection: nothing to receive; on each (re)connect every state again.
    actix_rt::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        loop {
            match display_events.poll().await {
                Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                    backoff = Duration::from_millis(200);
                    let _ = resync_tx.try_send(());
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "MQTT connection for displays lost; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    });
    actix_rt::spawn(handle_incoming(in_rx, client.clone(), prefix.clone(), floor, registry, feed.desk.clone(), positions, metrics.clone()));
    actix_rt::spawn(publish_displays(display_client, prefix, feed, resync_rx, encodings));
    ready
}

/// Requests the displays' MQTT client holds before the publisher waits.
const DISPLAY_QUEUE: usize = 32;

// ---- displays -------------------------------------------------------------------------------

/// Publish what the display feed computes: each announcement once, as it comes; each state
/// retained, coalesced: a display's state not yet sent when a newer one comes is replaced by it,
/// so after a burst every display gets its latest state once, and announcements never wait
/// behind a backlog of states. After a (re)connect or when this publisher fell behind, every
/// display's latest state is published again.
async fn publish_displays(client: AsyncClient, prefix: Arc<String>, feed: DisplayFeed, mut resync: mpsc::Receiver<()>, encodings: BTreeMap<String, PayloadEncoding>) {
    let mut rx = feed.subscribe();
    let publish = |display: &str, topic: &str, retain: bool, payload: &Value| {
        let bytes = encode(encodings.get(display).copied().unwrap_or_default(), &payload.to_string());
        client.publish(format!("{prefix}/displays/{display}/{topic}"), QoS::AtLeastOnce, retain, bytes)
    };
    let mut pending = Pending::default();
    loop {
        // Wait only when no state is waiting to go out.
        let mut got = if pending.is_empty() {
            tokio::select! {
                r = resync.recv() => match r {
                    Some(()) => {
                        pending.all(&feed);
                        Got::Nothing
                    }
                    None => return,
                },
                m = rx.recv() => Got::from(m),
            }
        } else {
            Got::from(rx.try_recv())
        };
        // Everything that has come: announcements out now, states into `pending`.
        loop {
            match got {
                Got::Message(DisplayMessage::State { display, payload }) => pending.put(display, payload),
                Got::Message(DisplayMessage::Announce { display, payload }) => {
                    let _ = publish(&display, "announce", false, &payload).await;
                }
                Got::Lagged(n) => {
                    tracing::warn!(missed = n, "the MQTT display publisher fell behind; republishing every state");
                    pending.all(&feed);
                }
                Got::Nothing => break,
                Got::Closed => return,
            }
            got = Got::from(rx.try_recv());
        }
        if resync.try_recv().is_ok() {
            pending.all(&feed);
        }
        // One state out (the longest waiting), then look again.
        if let Some((display, payload)) = pending.take() {
            let _ = publish(&display, "state", true, &payload).await;
        }
    }
}

/// What the display feed gave, waited for or not.
enum Got {
    Message(DisplayMessage),
    Lagged(u64),
    Nothing,
    Closed,
}

impl From<Result<DisplayMessage, tokio::sync::broadcast::error::RecvError>> for Got {
    fn from(r: Result<DisplayMessage, tokio::sync::broadcast::error::RecvError>) -> Self {
        use tokio::sync::broadcast::error::RecvError;
        match r {
            Ok(m) => Got::Message(m),
            Err(RecvError::Lagged(n)) => Got::Lagged(n),
            Err(RecvError::Closed) => Got::Closed,
        }
    }
}

impl From<Result<DisplayMessage, tokio::sync::broadcast::error::TryRecvError>> for Got {
    fn from(r: Result<DisplayMessage, tokio::sync::broadcast::error::TryRecvError>) -> Self {
        use tokio::sync::broadcast::error::TryRecvError;
        match r {
            Ok(m) => Got::Message(m),
            Err(TryRecvError::Lagged(n)) => Got::Lagged(n),
            Err(TryRecvError::Empty) => Got::Nothing,
            Err(TryRecvError::Closed) => Got::Closed,
        }
    }
}

/// States waiting to be published: the latest per display, in the order displays first waited.
#[derive(Default)]
struct Pending {
    latest: std::collections::HashMap<String, Arc<Value>>,
    order: std::collections::VecDeque<String>,
}

impl Pending {
    fn put(&mut self, display: String, payload: Arc<Value>) {
        if self.latest.insert(display.clone(), payload).is_none() {
            self.order.push_back(display);
        }
    }

    /// Every display's latest state (after a reconnect or a lag).
    fn all(&mut self, feed: &DisplayFeed) {
        for (display, payload) in feed.all_latest() {
            self.put(display, payload);
        }
    }

    fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn take(&mut self) -> Option<(String, Arc<Value>)> {
        let display = self.order.pop_front()?;
        let payload = self.latest.remove(&display)?;
        Some((display, payload))
    }
}

// ---- incoming: keypads and display status ----------------------------------------------------

async fn handle_incoming(
    mut rx: mpsc::Receiver<rumqttc::Publish>,
    client: AsyncClient,
    prefix: Arc<String>,
    floor: Floor,
    registry: DisplayRegistry,
    desk: crate::actors::delivery::DeliveryDesk,
    positions: crate::actors::positions::PositionDesk,
    metrics: Arc<Metrics>,
) {
    // Commands of different keypads are handled side by side (each waits for its own durable
    // commit; together they share the journal's group commit); one keypad's commands stay in
    // order. PUBACKs still go out in arrival order (MQTT 3.1.1 §4.6), each after its command.
    let (done_tx, done_rx) = mpsc::channel::<(u64, rumqttc::Publish)>(INCOMING);
    actix_rt::spawn(ack_in_order(done_rx, client.clone()));
    let mut workers: HashMap<String, mpsc::Sender<(u64, rumqttc::Publish)>> = HashMap::new();
    let mut seq: u64 = 0;
    while let Some(p) = rx.recv().await {
        seq += 1;
        let rest = p.topic.strip_prefix(prefix.as_str()).and_then(|r| r.strip_prefix('/')).unwrap_or("");
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            // A BLE gateway's report: handed to the position desk, which counts what it cannot use.
            ["gateways", gw, "scan"] => positions.report(gw, &p.payload, crate::clock::now_ms()),
            ["displays", id, "status"] => display_status(&p, id, &registry, &desk, &metrics),
            ["displays", id, "ack"] => match crate::domain::delivery::AckMessage::parse(&p.payload) {
                Some(a) => desk.ack(id, a.seq, a.stage, desk.now_ms()),
                None => {
                    desk.invalid();
                    metrics.mqtt_rejected.with_label_values(&["bad_ack"]).inc();
                    tracing::info!(display = %id, "ignored an acknowledgement that is not {{seq, stage}}");
                }
            },
            ["keypads", keypad, "command"] if floor.hospital.keypads.iter().any(|k| k.id == *keypad) => {
                let keypad = keypad.to_string();
                let worker = workers.entry(keypad.clone()).or_insert_with(|| {
                    let (tx, rx) = mpsc::channel(KEYPAD_BACKLOG);
                    let ctx = KeypadWorker { keypad, client: client.clone(), prefix: prefix.clone(), floor: floor.clone(), metrics: metrics.clone(), done: done_tx.clone() };
                    actix_rt::spawn(ctx.run(rx));
                    tx
                });
                // A full backlog (a keypad pressed far faster than commits land) waits here,
                // which backs up into `INCOMING`, where excess publishes are dropped and counted.
                if worker.send((seq, p)).await.is_err() {
                    tracing::error!("a keypad worker stopped");
                }
                continue;
            }
            ["keypads", keypad, "command"] => {
                // Not a configured keypad: refused at once (nothing to order or to journal).
                let (_, ack) = keypad_command(&floor, keypad, &p.payload, &HashMap::new()).await;
                refused(&metrics, keypad, &ack);
                let _ = client.publish(format!("{prefix}/keypads/{keypad}/ack"), QoS::AtLeastOnce, false, ack.to_string()).await;
            }
            _ => {}
        }
        let _ = done_tx.send((seq, p)).await;
    }
}

/// Release PUBACKs in the order the publishes arrived, as soon as every earlier one is handled.
async fn ack_in_order(mut done: mpsc::Receiver<(u64, rumqttc::Publish)>, client: AsyncClient) {
    let mut next: u64 = 1;
    let mut finished: BTreeMap<u64, rumqttc::Publish> = BTreeMap::new();
    while let Some((seq, p)) = done.recv().await {
        finished.insert(seq, p);
        while let Some(p) = finished.remove(&next) {
            let _ = client.ack(&p).await;
            next += 1;
        }
    }
}

/// Commands a keypad may have waiting for its worker.
const KEYPAD_BACKLOG: usize = 64;
/// Command ids remembered per keypad for de-duplication (beyond this, the journal's idempotency
/// record still catches a repeated call-next).
const SEEN_PER_KEYPAD: usize = 256;

/// One configured keypad's commands, applied one after another.
struct KeypadWorker {
    keypad: String,
    client: AsyncClient,
    prefix: Arc<String>,
    floor: Floor,
    metrics: Arc<Metrics>,
    done: mpsc::Sender<(u64, rumqttc::Publish)>,
}

impl KeypadWorker {
    async fn run(self, mut rx: mpsc::Receiver<(u64, rumqttc::Publish)>) {
        let mut seen: HashMap<(String, String), Value> = HashMap::new();
        let mut order: VecDeque<(String, String)> = VecDeque::new();
        let topic = format!("{}/keypads/{}/ack", self.prefix, self.keypad);
        while let Some((seq, p)) = rx.recv().await {
            let (id, ack) = keypad_command(&self.floor, &self.keypad, &p.payload, &seen).await;
            refused(&self.metrics, &self.keypad, &ack);
            if let Some(id) = id {
                remember(&mut seen, &mut order, (self.keypad.clone(), id), ack.clone());
            }
            let _ = self.client.publish(topic.as_str(), QoS::AtLeastOnce, false, ack.to_string()).await;
            let _ = self.done.send((seq, p)).await;
        }
    }
}

fn refused(metrics: &Metrics, keypad: &str, ack: &Value) {
    if ack["ok"] == json!(false) {
        metrics.mqtt_rejected.with_label_values(&[ack["code"].as_str().unwrap_or("error")]).inc();
        tracing::info!(%keypad, code = %ack["code"], "keypad command refused");
    }
}

fn display_status(p: &rumqttc::Publish, id: &str, registry: &DisplayRegistry, desk: &crate::actors::delivery::DeliveryDesk, metrics: &Metrics) {
    let online = match &p.payload[..] {
        b"online" => true,
        b"offline" => false,
        _ => {
            metrics.mqtt_rejected.with_label_values(&["bad_status"]).inc();
            tracing::info!(display = id, "ignored a status that is neither online nor offline");
            return;
        }
    };
    let now = desk.now_ms();
    if registry.set(id, online, now) {
        desk.status(id, online, now);
        metrics.display_online.with_label_values(&[id]).set(i64::from(online));
        tracing::info!(display = id, online, "display status");
    } else {
        metrics.mqtt_rejected.with_label_values(&["unknown_display"]).inc();
    }
}

fn remember(seen: &mut HashMap<(String, String), Value>, order: &mut VecDeque<(String, String)>, key: (String, String), ack: Value) {
    if seen.insert(key.clone(), ack).is_none() {
        order.push_back(key);
        if order.len() > SEEN_PER_KEYPAD {
            if let Some(old) = order.pop_front() {
                seen.remove(&old);
            }
        }
    }
}

fn refuse(id: Option<&str>, code: &str, message: impl Into<String>) -> Value {
    json!({"v": PROTOCOL_VERSION, "id": id, "ok": false, "code": code, "message": message.into()})
}

/// Apply one keypad command; returns its id (to remember) and the ack.
async fn keypad_command(
    floor: &Floor,
    keypad: &str,
    payload: &[u8],
    seen: &HashMap<(String, String), Value>,
) -> (Option<String>, Value) {
    let again = |id: &str| seen.get(&(keypad.to_owned(), id.to_owned())).cloned();
    let cmd = match KeypadCommand::parse(payload) {
        Ok(cmd) => cmd,
        Err(r) => {
            // A re-sent press gets the first answer, whatever it says now.
            if let Some(ack) = r.id.as_deref().and_then(again) {
                return (None, ack);
            }
            let ack = refuse(r.id.as_deref(), r.code, r.message);
            return (r.id, ack);
        }
    };
    if let Some(ack) = again(&cmd.id) {
        return (None, ack); // a re-sent command: the same answer, applied once
    }
    let id = cmd.id.clone();
    let Some(pad) = floor.hospital.keypads.iter().find(|k| k.id == keypad) else {
        return (Some(id.clone()), refuse(Some(&id), "unknown_keypad", format!("keypad {keypad} is not configured")));
    };
    if !pad.rooms.contains(&cmd.room) {
        return (Some(id.clone()), refuse(Some(&id), "room_not_bound", format!("keypad {keypad} may not call for room {}", cmd.room)));
    }
    let (action, room) = (cmd.action.as_str(), &cmd.room);
    let idem = Some(Idempotency { key: format!("keypad:{keypad}:{id}"), fingerprint: format!("{action}:{room}") });
    let ack = match floor.room_action(room, cmd.action, &format!("keypad:{keypad}"), idem).await {
        Ok(t) => json!({
            "v": PROTOCOL_VERSION, "id": id, "ok": true, "action": action, "room": room,
            "ticket": t.as_ref().map(|t| &t.id), "number": t.as_ref().map(|t| &t.number),
        }),
        Err(e) => {
            let e = ApiError::from(e);
            refuse(Some(&id), e.code, e.message)
        }
    };
    (Some(id), ack)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_parse_with_and_without_tls() {
        let m = MqttSettings::from_url("mqtt://u:p@broker.local", "x".into(), None).unwrap();
        assert_eq!((m.host.as_str(), m.port, m.username.as_deref(), m.password.as_deref(), m.tls.is_none()), ("broker.local", 1883, Some("u"), Some("p"), true));
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = MqttSettings::from_url("mqtts://broker.local", "x".into(), Some(&missing)).unwrap_err().to_string();
        assert!(e.contains("nope.pem"), "{e}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let e = MqttSettings::from_url("mqtts://broker.local:8884", "x".into(), Some(&junk)).unwrap_err().to_string();
        assert!(e.contains("junk.pem"), "{e}");
        assert!(MqttSettings::from_url("mqtt://broker.local", "x".into(), Some(&junk)).is_err(), "a CA file without TLS is a mistake");
        assert!(MqttSettings::from_url("http://broker.local", "x".into(), None).is_err());
    }
}
