//! The embedded MQTT broker (rumqttd), so `clinicflow serve` drives displays and keypads with
//! nothing else installed. It runs on its own OS thread (its `start` blocks). A hospital with its
//! own broker (Mosquitto, EMQX) turns it off and points `--mqtt-broker` there.

use anyhow::Context as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Largest MQTT payload the embedded broker accepts.
const MAX_PAYLOAD: usize = 64 * 1024;

/// Start the broker on `listen` (port 0 picks a free port) and wait until it accepts
/// connections. Returns the address it listens on.
pub fn start(listen: SocketAddr) -> anyhow::Result<SocketAddr> {
    let addr = if listen.port() == 0 {
        // rumqttd binds by itself and cannot report a chosen port: choose one here.
        let probe = TcpListener::bind(listen).context("finding a free port for the MQTT broker")?;
        probe.local_addr()?
    } else {
        // Fail early and clearly when the port is taken.
        drop(TcpListener::bind(listen).with_context(|| format!("the MQTT port {listen} is in use (use --mqtt ADDR:PORT or --mqtt off)"))?);
        listen
    };
    let toml = format!(
        r#"
id = 0
[router]
id = 0
max_connections = 10010
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "v4-1"
listen = "{addr}"
next_connection_delay_ms = 1
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = {MAX_PAYLOAD}
    max_inflight_count = 100
    dynamic_filters = true
"#
    );
    let config: rumqttd::Config = toml::from_str(&toml).context("embedded broker config")?;
    let mut broker = rumqttd::Broker::new(config);
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "the embedded MQTT broker stopped");
            }
        })
        .context("starting the broker thread")?;
    let target = if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "the embedded MQTT broker did not start listening on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(addr)
}
