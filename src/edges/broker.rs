//! The embedded MQTT broker (rmqtt), so `clinicflow serve` drives displays and keypads with
//! nothing else installed. It runs on its own OS thread with its own tokio runtime. A hospital
//! with its own broker (Mosquitto, EMQX) turns it off and points `--mqtt-broker` there.
//!
//! Every connection must log in. The server logs in as [`SERVER_USER`] (a superuser); each
//! configured display and keypad logs in with its id and a password derived from the data
//! dir's device key ([`credentials`]), and may use only its own topics: a display reads its
//! `state` and `announce` and writes its `status`; a keypad writes its `command` and reads its
//! `ack`; a BLE gateway writes its `scan`. Anything else is refused by the broker (the ACL plugin's rules, generated here).
//! Sockets run with TCP_NODELAY: a call must not wait for a delayed ACK.

use crate::domain::config::Hospital;
use anyhow::Context as _;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The server's own MQTT user on the embedded broker.
pub const SERVER_USER: &str = "clinicflow-server";
/// Largest MQTT packet the embedded broker accepts.
const MAX_PACKET: usize = 64 * 1024;

/// What one device may do on the broker, and how it logs in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceCredential {
    /// `display`, `keypad` or `gateway`.
    pub kind: &'static str,
    pub id: String,
    pub username: String,
    pub password: String,
    /// Topics it may subscribe to.
    pub subscribe: Vec<String>,
    /// Topics it may publish to.
    pub publish: Vec<String>,
}

fn derive(key: &str, what: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(what.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..12])
}

/// The server's password on the embedded broker.
pub fn server_password(device_key: &str) -> String {
    derive(device_key, "server")
}

/// Every configured device's login and topics: the hospital's displays and keypads, and the BLE
/// gateways of the loaded radio maps (`gateways`, their anchor ids), which may only publish their
/// `scan`. Device ids are the usernames, so no two devices may share an id, and none may be the
/// server's.
pub fn credentials(hospital: &Hospital, prefix: &str, device_key: &str, gateways: &[String]) -> anyhow::Result<Vec<DeviceCredential>> {
    // (kind, topic folder, id, may subscribe to, may publish to)
    let displays = hospital.displays.iter().map(|d| ("display", "displays", &d.id, &["state", "announce"][..], &["status", "ack"][..]));
    let keypads = hospital.keypads.iter().map(|k| ("keypad", "keypads", &k.id, &["ack"][..], &["command"][..]));
    let gateways = gateways.iter().map(|g| ("gateway", "gateways", g, &[][..], &["scan"][..]));
    let out: Vec<DeviceCredential> = displays
        .chain(keypads)
        .chain(gateways)
        .map(|(kind, folder, id, subscribe, publish)| {
            let topics = |leaves: &[&str]| leaves.iter().map(|leaf| format!("{prefix}/{folder}/{id}/{leaf}")).collect();
            DeviceCredential {
                kind,
                id: id.clone(),
                username: id.clone(),
                password: derive(device_key, &format!("device:{id}")),
                subscribe: topics(subscribe),
                publish: topics(publish),
            }
        })
        .collect();
    let mut names: Vec<&str> = out.iter().map(|c| c.username.as_str()).collect();
    names.push(SERVER_USER);
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        anyhow::bail!("device id {:?} is used twice (displays, keypads and gateways log in by id, and {SERVER_USER:?} is the server's)", w[0]);
    }
    for c in &out {
        anyhow::ensure!(
            !c.id.is_empty() && !c.id.contains(['/', '+', '#']),
            "device id {:?} may not be empty or contain '/', '+' or '#' (it is part of its topics)",
            c.id
        );
    }
    Ok(out)
}

/// The ACL plugin's rules (TOML): the server may do anything; each device only its own topics;
/// everyone else is refused, including anonymous connections.
pub fn acl_rules(devices: &[DeviceCredential], server_password: &str) -> String {
    use toml::Value;
    let s = |v: &str| Value::String(v.to_owned());
    let who = |user: &str, password: Option<&str>, superuser: bool| {
        let mut t = toml::map::Map::new();
        t.insert("user".into(), s(user));
        if let Some(p) = password {
            t.insert("password".into(), s(p));
        }
        if superuser {
            t.insert("superuser".into(), Value::Boolean(true));
        }
        Value::Table(t)
    };
    let topics = |ts: &[String]| Value::Array(ts.iter().map(|t| Value::Table([("eq".to_owned(), s(t))].into_iter().collect())).collect());
    let mut rules = vec![Value::Array(vec![s("allow"), who(SERVER_USER, Some(server_password), true), s("connect")])];
    for d in devices {
        rules.push(Value::Array(vec![s("allow"), who(&d.username, Some(&d.password), false), s("connect")]));
        rules.push(Value::Array(vec![s("allow"), who(&d.username, None, false), s("subscribe"), topics(&d.subscribe)]));
        rules.push(Value::Array(vec![s("allow"), who(&d.username, None, false), s("publish"), topics(&d.publish)]));
    }
    rules.push(Value::Array(vec![s("deny"), s("all")]));
    let mut doc = toml::map::Map::new();
    doc.insert("rules".into(), Value::Array(rules));
    toml::to_string(&Value::Table(doc)).unwrap_or_default()
}

/// Logs what the ACL is about to refuse, with the device and the topic, so IT sees a
/// misconfigured or misbehaving device. It runs before the ACL plugin and decides nothing.
#[derive(Clone)]
struct Audit {
    /// username → (may subscribe, may publish).
    allowed: Arc<std::collections::HashMap<String, (Vec<String>, Vec<String>)>>,
    /// username → password, the server's included.
    logins: Arc<std::collections::HashMap<String, String>>,
}

#[async_trait::async_trait]
impl rmqtt::hook::Handler for Audit {
    async fn hook(&self, param: &rmqtt::hook::Parameter, acc: Option<rmqtt::hook::HookResult>) -> rmqtt::hook::ReturnType {
        use rmqtt::hook::Parameter;
        let (session, action, topic, index) = match param {
            Parameter::ClientAuthenticate(info) => {
                let user = info.username().map(|u| u.to_string());
                let known = user.as_ref().and_then(|u| self.logins.get(u));
                let given = info.password().map(|p| p.as_ref());
                if known.is_none_or(|k| Some(k.as_bytes()) != given) {
                    let why = if user.is_none() { "no login" } else if known.is_none() { "unknown device" } else { "wrong password" };
                    tracing::warn!(device = user.as_deref().unwrap_or(""), client = %info.id().client_id, why, "MQTT login refused");
                    crate::telemetry::BROKER_REFUSED.with_label_values(&["login"]).inc();
                    return (true, acc);
                }
                // A right login with another's client id would take over that client's session
                // (MQTT drops the older connection): a display's, or the server's own link.
                let client = info.id().client_id.to_string();
                let user = user.unwrap_or_default();
                if !client_id_of(&user, &client) {
                    tracing::warn!(device = %user, client = %client, "MQTT login refused: the client id is not this device's (its id, or id:anything)");
                    crate::telemetry::BROKER_REFUSED.with_label_values(&["client_id"]).inc();
                    return (false, Some(rmqtt::hook::HookResult::AuthResult(rmqtt::types::AuthResult::NotAuthorized)));
                }
                return (true, acc);
            }
            Parameter::ClientSubscribeCheckAcl(s, sub) => (s, "subscribe", sub.topic_filter.to_string(), 0),
            Parameter::MessagePublishCheckAcl(s, p) => (s, "publish", p.topic.to_string(), 1),
            _ => return (true, acc),
        };
        let user = session.id.username_ref();
        if user == SERVER_USER {
            return (true, acc);
        }
        let ok = self.allowed.get(user).is_some_and(|a| if index == 0 { &a.0 } else { &a.1 }.iter().any(|t| *t == topic));
        if !ok {
            tracing::warn!(device = user, action, topic = %topic, "MQTT {action} refused: the topic is not this device's");
            crate::telemetry::BROKER_REFUSED.with_label_values(&[action]).inc();
        }
        (true, acc)
    }
}

/// Whether `user` may connect with `client`: its own id, or its id, a colon and anything (a
/// second connection of the same device). Device ids have no colon, so no device's client id is
/// another's, and the server's (`clinicflow-server:…`) is the server's alone.
pub fn client_id_of(user: &str, client: &str) -> bool {
    client.strip_prefix(user).is_some_and(|rest| rest.is_empty() || rest.starts_with(':'))
}

/// The server's own MQTT client id (`label` tells its connections apart).
pub fn server_client_id(label: &str) -> String {
    format!("{SERVER_USER}:{}:{label}", std::process::id())
}

/// Start the broker on `listen` (port 0 picks a free port) with `rules`, and wait until it
/// accepts connections. Returns the address it listens on.
pub fn start(listen: SocketAddr, devices: &[DeviceCredential], server_password: &str) -> anyhow::Result<SocketAddr> {
    let rules = acl_rules(devices, server_password);
    let mut logins: std::collections::HashMap<String, String> = devices.iter().map(|d| (d.username.clone(), d.password.clone())).collect();
    logins.insert(SERVER_USER.to_owned(), server_password.to_owned());
    let audit = Audit {
        allowed: Arc::new(devices.iter().map(|d| (d.username.clone(), (d.subscribe.clone(), d.publish.clone()))).collect()),
        logins: Arc::new(logins),
    };
    let addr = if listen.port() == 0 {
        let probe = TcpListener::bind(listen).context("finding a free port for the MQTT broker")?;
        probe.local_addr()?
    } else {
        // Fail early and clearly when the port is taken.
        drop(TcpListener::bind(listen).with_context(|| format!("the MQTT port {listen} is in use (use --mqtt ADDR:PORT or --mqtt off)"))?);
        listen
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("mqtt-broker").enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            runtime.block_on(async move {
                if let Err(e) = run(addr, rules, audit, &ready_tx).await {
                    tracing::error!(error = %e, "the embedded MQTT broker stopped");
                    let _ = ready_tx.send(Err(anyhow::anyhow!("{e}")));
                }
            });
        })
        .context("starting the broker thread")?;
    match ready_rx.recv_timeout(Duration::from_secs(20)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.context("starting the embedded MQTT broker")),
        Err(_) => anyhow::bail!("the embedded MQTT broker did not start"),
    }
    let target = if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "the embedded MQTT broker did not start listening on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(addr)
}

async fn run(addr: SocketAddr, rules: String, audit: Audit, ready: &std::sync::mpsc::Sender<anyhow::Result<()>>) -> rmqtt::Result<()> {
    use rmqtt::{context::ServerContext, net::Builder, server::MqttServer};
    let scx = ServerContext::new()
        .plugins_config_map_add("rmqtt-acl", &rules)
        // Retained `state` lives in memory: the server republishes every state when it connects.
        .plugins_config_map_add("rmqtt-retainer", "storage.type = \"ram\"\nmax_payload_size = \"64KB\"\n")
        .build()
        .await;
    rmqtt_acl::register(&scx, true, false).await?;
    rmqtt_retainer::register(&scx, true, false).await?;
    // Above the ACL plugin's priority (10): sees every check first, changes nothing.
    let hooks = scx.extends.hook_mgr().register();
    hooks.add_priority(rmqtt::hook::Type::ClientAuthenticate, 100, Box::new(audit.clone())).await;
    hooks.add_priority(rmqtt::hook::Type::ClientSubscribeCheckAcl, 100, Box::new(audit.clone())).await;
    hooks.add_priority(rmqtt::hook::Type::MessagePublishCheckAcl, 100, Box::new(audit)).await;
    hooks.start().await;
    let listener = Builder::new()
        .name("clinicflow/tcp")
        .laddr(addr)
        .nodelay(true)
        .allow_anonymous(false)
        .max_packet_size(MAX_PACKET as u32)
        .max_connections(20_000)
        .reuseaddr(Some(true))
        .bind()?
        .tcp()?;
    let _ = ready.send(Ok(()));
    MqttServer::new(scx).listener(listener).build().run().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_device_gets_its_own_topics_and_the_rules_parse() {
        let h = Hospital::demo();
        let c = credentials(&h, "clinicflow/demo", "key-0123456789abcdef", &["gw-a1".to_owned()]).unwrap();
        assert_eq!(c.len(), h.displays.len() + h.keypads.len() + 1);
        let gw = c.iter().find(|d| d.id == "gw-a1").unwrap();
        assert_eq!((gw.kind, gw.subscribe.len(), gw.publish.clone()), ("gateway", 0, vec!["clinicflow/demo/gateways/gw-a1/scan".to_owned()]));
        assert!(credentials(&h, "p", "key", &["door-c-101".to_owned()]).is_err(), "a gateway may not take a display's id");
        let door = c.iter().find(|d| d.id == "door-c-101").unwrap();
        assert_eq!(door.subscribe, vec!["clinicflow/demo/displays/door-c-101/state", "clinicflow/demo/displays/door-c-101/announce"]);
        assert_eq!(door.publish, vec!["clinicflow/demo/displays/door-c-101/status", "clinicflow/demo/displays/door-c-101/ack"]);
        let other = c.iter().find(|d| d.id == "door-c-102").unwrap();
        assert_ne!(door.password, other.password, "one password per device");
        assert_eq!(door.password, credentials(&h, "clinicflow/demo", "key-0123456789abcdef", &[]).unwrap()[0].password, "derived, stable");
        let rules = acl_rules(&c, "pw");
        let parsed: toml::Value = toml::from_str(&rules).unwrap();
        let rules = parsed["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 1 + 3 * c.len() + 1);
        assert_eq!(rules.last().unwrap().as_array().unwrap()[0].as_str(), Some("deny"), "fail closed");
    }
}
