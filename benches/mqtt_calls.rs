//! Keypad press → door display state, over MQTT through the embedded broker, with the durable
//! commit in between: 500 subscribed displays and 500 keypads (one each per room, each logged in
//! with its own credentials), presses at 200/s round robin.
//! Then the shared peer `../shared/peers/mqtt_peer.py` (raw Mosquitto publish → subscribe, 500
//! subscribers, 200 msg/s) in the same run, and the ratio.
//!
//! `cargo bench --bench mqtt_calls` runs it fully (`MQTT_ROOMS`, `BENCH_PEERS=0`); under
//! `cargo test` a smoke version (20 rooms, 2 s).

#[path = "support/mod.rs"]
mod support;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{percentile, Server, TOKEN};

const ROOMS_PER_QUEUE: usize = 10;

fn config(rooms: usize) -> String {
    let queues = rooms.div_ceil(ROOMS_PER_QUEUE);
    let mut s = String::from("site = \"bench\"\nname = \"bench\"\n[[departments]]\nid = \"d\"\nname = \"d\"\n");
    for r in 0..rooms {
        s += &format!("[[rooms]]\nid = \"r{r}\"\nname = \"{r} 诊室\"\n[[displays]]\nid = \"door-r{r}\"\nkind = \"door\"\nrooms = [\"r{r}\"]\n[[keypads]]\nid = \"kp-r{r}\"\nrooms = [\"r{r}\"]\n");
    }
    for q in 0..queues {
        let rs: Vec<String> = (q * ROOMS_PER_QUEUE..((q + 1) * ROOMS_PER_QUEUE).min(rooms)).map(|r| format!("\"r{r}\"")).collect();
        let prefix: String = [(b'A' + (q / 26) as u8) as char, (b'A' + (q % 26) as u8) as char].iter().collect();
        s += &format!("[[queues]]\nid = \"q{q}\"\nname = \"q{q}\"\ndepartment = \"d\"\nprefix = \"{prefix}\"\nrooms = [{}]\n", rs.join(", "));
    }
    s
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rooms: usize = if full { std::env::var("MQTT_ROOMS").ok().and_then(|v| v.parse().ok()).unwrap_or(500) } else { 20 };
    let (rate, secs) = if full { (200usize, 10usize) } else { (20, 2) };
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bench.toml");
    std::fs::write(&cfg, config(rooms)).unwrap();
    // BENCH_BROKER_PORT: use an external broker (e.g. Mosquitto) on that port instead of the embedded one.
    let external: Option<u16> = std::env::var("BENCH_BROKER_PORT").ok().and_then(|v| v.parse().ok());
    let mqtt_args = match external {
        Some(p) => vec!["--mqtt-broker".to_owned(), format!("mqtt://127.0.0.1:{p}")],
        None => vec!["--mqtt".to_owned(), "127.0.0.1:0".to_owned()],
    };
    let mut args = mqtt_args;
    args.extend(["--config".to_owned(), cfg.display().to_string()]);
    let server = Server::start(&dir.path().join("data"), &args);
    let (base, port) = (server.base.clone(), external.or(server.mqtt_port).expect("broker port"));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let result = rt.block_on(async {
        let total = rate * secs;
        // A waiting patient for every press, in the queue of the room it presses for (with more
        // rooms than presses, only the first rooms are pressed), and one more in every queue.
        let http = reqwest::Client::new();
        let queues = rooms.div_ceil(ROOMS_PER_QUEUE);
        let queue_of_press = |k: usize| (k % rooms) / ROOMS_PER_QUEUE;
        for i in 0..total + queues {
            let q = if i < total { queue_of_press(i) } else { i - total };
            let r = http
                .post(format!("{base}/api/v1/queues/q{q}/tickets"))
                .bearer_auth(TOKEN)
                .json(&serde_json::json!({"patient_id": format!("p{i}"), "name": "张三丰"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
        // Every device logs in with its own credentials (the embedded broker's ACLs).
        let creds: serde_json::Value = http.get(format!("{base}/api/v1/devices/credentials")).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
        let login: HashMap<String, (String, String)> = creds["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["id"].as_str().unwrap().to_owned(), (d["username"].as_str().unwrap().to_owned(), d["password"].as_str().unwrap().to_owned())))
            .collect();
        let options = |id: &str| {
            let mut o = MqttOptions::new(id, "127.0.0.1", port);
            o.set_keep_alive(Duration::from_secs(30));
            if let Some((u, p)) = login.get(id) {
                o.set_credentials(u.clone(), p.clone());
            }
            o
        };
        // The displays: each records when its room's current number changes.
        let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
        let ready = Arc::new(tokio::sync::Semaphore::new(0));
        for r in 0..rooms {
            let (seen, ready) = (seen.clone(), ready.clone());
            let (client, mut ev) = AsyncClient::new(options(&format!("door-r{r}")), 64);
            clinicflow::edges::mqtt::no_delay(&mut ev);
            tokio::spawn(async move {
                let _ = client.subscribe(format!("clinicflow/bench/displays/door-r{r}/state"), QoS::AtLeastOnce).await;
                let mut last = String::new();
                loop {
                    match ev.poll().await {
                        Ok(Event::Incoming(Packet::SubAck(_))) => ready.add_permits(1),
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap_or_default();
                            let current = v["rooms"][0]["current"]["number"].as_str().unwrap_or("").to_owned();
                            if !current.is_empty() && current != last {
                                seen.lock().unwrap().insert(format!("r{r}:{current}"), Instant::now());
                                last = current;
                            }
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            });
        }
        let _ = ready.acquire_many(rooms as u32).await.unwrap();
        // One client per keypad, as in the hospital; acks tell which number each press called.
        let acks: Arc<Mutex<HashMap<String, (String, Instant)>>> = Arc::new(Mutex::new(HashMap::new()));
        let mut pads = Vec::with_capacity(rooms);
        for r in 0..rooms {
            let (pad, mut ev) = AsyncClient::new(options(&format!("kp-r{r}")), 256);
            clinicflow::edges::mqtt::no_delay(&mut ev);
            pad.subscribe(format!("clinicflow/bench/keypads/kp-r{r}/ack"), QoS::AtLeastOnce).await.unwrap();
            let (acks, ready) = (acks.clone(), ready.clone());
            tokio::spawn(async move {
                loop {
                    match ev.poll().await {
                        Ok(Event::Incoming(Packet::SubAck(_))) => ready.add_permits(1),
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap_or_default();
                            if let (Some(id), Some(n)) = (v["id"].as_str(), v["number"].as_str()) {
                                acks.lock().unwrap().insert(id.to_owned(), (n.to_owned(), Instant::now()));
                            }
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            });
            pads.push(pad);
        }
        let _ = ready.acquire_many(rooms as u32).await.unwrap();
        // How long the floor is left to settle after every device subscribed (BENCH_SETTLE_MS).
        let settle = std::env::var("BENCH_SETTLE_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
        tokio::time::sleep(Duration::from_millis(settle)).await;
        let mut pressed: HashMap<String, (usize, Instant)> = HashMap::new();
        let start = Instant::now();
        for k in 0..total {
            tokio::time::sleep_until((start + Duration::from_secs_f64(k as f64 / rate as f64)).into()).await;
            let r = k % rooms;
            let id = format!("b{k}");
            let cmd = serde_json::json!({"id": id, "action": "call_next", "room": format!("r{r}")});
            pressed.insert(id, (r, Instant::now()));
            pads[r].publish(format!("clinicflow/bench/keypads/kp-r{r}/command"), QoS::AtLeastOnce, false, cmd.to_string()).await.unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while acks.lock().unwrap().len() < total && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (acks, seen) = (acks.lock().unwrap().clone(), seen.lock().unwrap().clone());
        let mut lat: Vec<f64> = pressed
            .iter()
            .filter_map(|(id, (r, t0))| {
                let (n, _) = acks.get(id)?;
                let t1 = seen.get(&format!("r{r}:{n}"))?;
                Some(t1.duration_since(*t0).as_secs_f64() * 1000.0)
            })
            .collect();
        lat.sort_by(|a, b| a.total_cmp(b));
        let mut ack_lat: Vec<f64> = pressed.iter().filter_map(|(id, (_, t0))| Some(acks.get(id)?.1.duration_since(*t0).as_secs_f64() * 1000.0)).collect();
        ack_lat.sort_by(|a, b| a.total_cmp(b));
        serde_json::json!({"ack_p50_ms": percentile(&ack_lat, 0.5), "ack_p99_ms": percentile(&ack_lat, 0.99),"bench": "clinicflow_mqtt_press_to_display", "displays": rooms, "rate_per_s": rate, "presses": total,
            "acked": acks.len(), "measured": lat.len(), "p50_ms": percentile(&lat, 0.5), "p99_ms": percentile(&lat, 0.99), "max_ms": lat.last()})
    });
    drop(server);
    drop(rt);
    println!("{result}");
    println!(
        "clinicflow: keypad press → door display state, {} displays at {}/s: p50 {:.2} ms, p99 {:.2} ms ({} of {} measured)",
        rooms, rate, result["p50_ms"].as_f64().unwrap_or(f64::NAN), result["p99_ms"].as_f64().unwrap_or(f64::NAN), result["measured"], result["presses"]
    );
    if full && std::env::var("BENCH_PEERS").map_or(true, |v| v != "0") {
        let peer = support::peer("python3", "mqtt_peer.py", &[]);
        match peer.and_then(|l| serde_json::from_str::<serde_json::Value>(&l).ok()) {
            Some(p) => {
                println!("peer mqtt_peer.py: {p}");
                let theirs = ["lat_p99_ms", "p99_ms"].iter().find_map(|k| p[*k].as_f64()).unwrap_or(f64::NAN);
                println!("ratio p99 clinicflow (press → durable commit → state) / raw Mosquitto publish → subscribe: {:.1}", result["p99_ms"].as_f64().unwrap_or(f64::NAN) / theirs);
            }
            None => println!("peer mqtt_peer.py: unavailable (needs paho-mqtt and mosquitto; see ../shared/peers/README.md)"),
        }
    }
}
