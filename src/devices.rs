//! `clinicflow devices`: simulated wall displays and caller keypads against a running server's
//! MQTT broker, for demos and load. Each display connects with its last will, says `online`,
//! and prints what it would show and speak; each keypad presses call-next on its room every few
//! seconds and prints the ack. Bounded: `--duration` ends it.

use crate::domain::config::Hospital;
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct DeviceSim {
    /// Device id → (username, password) on the broker; a device without one connects anonymously.
    pub logins: std::collections::HashMap<String, (String, String)>,
    pub host: String,
    pub port: u16,
    pub prefix: String,
    /// How many of the config's displays and keypads to run (in config order).
    pub displays: usize,
    pub keypads: usize,
    /// Seconds between a keypad's presses.
    pub press_every: Duration,
    pub duration: Duration,
}

/// Run the simulation until `duration` is over. Prints one line per event to stdout.
pub async fn run(sim: DeviceSim, hospital: &Hospital) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    for d in hospital.displays.iter().take(sim.displays) {
        let (sim, id) = (sim.clone(), d.id.clone());
        tasks.push(tokio::spawn(async move { display(sim, id).await }));
    }
    for k in hospital.keypads.iter().take(sim.keypads) {
        let (sim, id, room) = (sim.clone(), k.id.clone(), k.rooms[0].to_string());
        tasks.push(tokio::spawn(async move { keypad(sim, id, room).await }));
    }
    println!("devices: {} displays, {} keypads on {}:{} under {}/", sim.displays.min(hospital.displays.len()), sim.keypads.min(hospital.keypads.len()), sim.host, sim.port, sim.prefix);
    tokio::time::sleep(sim.duration).await;
    for t in tasks {
        t.abort();
    }
    println!("devices: done");
    Ok(())
}

fn options(sim: &DeviceSim, id: &str) -> MqttOptions {
    let mut o = MqttOptions::new(format!("{id}:sim"), sim.host.clone(), sim.port);
    o.set_keep_alive(Duration::from_secs(15));
    if let Some((user, password)) = sim.logins.get(id) {
        o.set_credentials(user.clone(), password.clone());
    }
    o
}

async fn display(sim: DeviceSim, id: String) {
    let status = format!("{}/displays/{id}/status", sim.prefix);
    let mut o = options(&sim, &id);
    o.set_last_will(LastWill::new(&status, "offline", QoS::AtLeastOnce, true));
    let (client, mut ev) = AsyncClient::new(o, 64);
    crate::edges::mqtt::no_delay(&mut ev);
    let ack_topic = format!("{}/displays/{id}/ack", sim.prefix);
    // Announcements are spoken one after another: each finishes at `voice_free` or later.
    let mut voice_free = tokio::time::Instant::now();
    loop {
        match ev.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                // Exactly its own topics: the embedded broker refuses wildcards beyond them.
                for leaf in ["state", "announce"] {
                    let _ = client.subscribe(format!("{}/displays/{id}/{leaf}", sim.prefix), QoS::AtLeastOnce).await;
                }
                let _ = client.publish(&status, QoS::AtLeastOnce, true, "online").await;
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let text = match std::str::from_utf8(&p.payload) {
                    Ok(t) => t.to_owned(),
                    Err(_) => encoding_rs::GBK.decode(&p.payload).0.into_owned(),
                };
                let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                if p.topic.ends_with("/announce") {
                    println!("{id} says: {}", v["text_zh"].as_str().unwrap_or(""));
                    // Acknowledge it shown now, and spoken when its (simulated) voice ends:
                    // about 150 ms per character, in order behind the calls before it.
                    let seq = v["seq"].as_i64().unwrap_or(0);
                    let _ = client.publish(&ack_topic, QoS::AtLeastOnce, false, serde_json::json!({"v": 1, "seq": seq, "stage": "shown"}).to_string()).await;
                    let chars = v["text_zh"].as_str().map_or(0, |t| t.chars().count()) as u64;
                    voice_free = voice_free.max(tokio::time::Instant::now()) + Duration::from_millis(150 * chars);
                    let (client, topic, at) = (client.clone(), ack_topic.clone(), voice_free);
                    tokio::spawn(async move {
                        tokio::time::sleep_until(at).await;
                        let _ = client.publish(&topic, QoS::AtLeastOnce, false, serde_json::json!({"v": 1, "seq": seq, "stage": "spoken"}).to_string()).await;
                    });
                } else if p.topic.ends_with("/state") {
                    let current: Vec<String> =
                        v["rooms"].as_array().into_iter().flatten().map(|r| format!("{}={}", r["room"].as_str().unwrap_or("?"), r["current"]["number"].as_str().unwrap_or("-"))).collect();
                    println!("{id} shows: {}", current.join(" "));
                }
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("{id}: {e}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn keypad(sim: DeviceSim, id: String, room: String) {
    let (client, mut ev) = AsyncClient::new(options(&sim, &id), 64);
    crate::edges::mqtt::no_delay(&mut ev);
    let ack = format!("{}/keypads/{id}/ack", sim.prefix);
    let command = format!("{}/keypads/{id}/command", sim.prefix);
    let mut press = tokio::time::interval(sim.press_every);
    let mut n = 0u64;
    loop {
        tokio::select! {
            e = ev.poll() => match e {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.subscribe(&ack, QoS::AtLeastOnce).await;
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap_or_default();
                    if v["ok"] == true {
                        println!("{id} ack {}: called {}", v["id"].as_str().unwrap_or("?"), v["number"].as_str().unwrap_or("nobody"));
                    } else {
                        println!("{id} ack {}: refused {}", v["id"].as_str().unwrap_or("?"), v["code"].as_str().unwrap_or("?"));
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("{id}: {e}; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
            _ = press.tick() => {
                n += 1;
                let cmd = serde_json::json!({"id": format!("{id}-{n}"), "action": "call_next", "room": room});
                let _ = client.publish(&command, QoS::AtLeastOnce, false, cmd.to_string()).await;
            }
        }
    }
}
