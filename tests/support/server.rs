//! Starting the real `clinicflow serve` binary and learning where it listens, shared by the
//! black-box tests (`tests/api/helpers.rs`) and the load benches (`benches/support/`).
//!
//! The server prints `listening on http://…` (and `mqtt: embedded broker on …` when it runs
//! one) on stdout. Its stdout is read to the end on a thread of its own: a reader that stopped
//! would close the pipe under the server.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct Spawned {
    pub child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The embedded MQTT broker's port, when the server runs one.
    pub mqtt_port: Option<u16>,
    /// HL7 over MLLP's port, when `--hl7` is on.
    pub hl7_port: Option<u16>,
}

/// Spawns `cmd` (a configured `clinicflow serve`) and waits up to 60 s for its address.
pub fn spawn(mut cmd: Command) -> Spawned {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("start clinicflow");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("mqtt: embedded broker on ") {
                let _ = tx.send(format!("mqtt {}", addr.trim()));
            } else if let Some(addr) = line.strip_prefix("hl7: MLLP on ") {
                let _ = tx.send(format!("hl7 {}", addr.trim()));
            } else if let Some(url) = line.strip_prefix("listening on ") {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    let (mut mqtt_port, mut hl7_port) = (None, None);
    let base = loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(m) if m.starts_with("mqtt ") => mqtt_port = m.rsplit(':').next().and_then(|p| p.parse().ok()),
            Ok(m) if m.starts_with("hl7 ") => hl7_port = m.rsplit(':').next().and_then(|p| p.parse().ok()),
            Ok(url) => break url,
            Err(_) => {
                let _ = child.kill();
                panic!("clinicflow did not print its address within 60 s");
            }
        }
    };
    Spawned { child, base, mqtt_port, hl7_port }
}
