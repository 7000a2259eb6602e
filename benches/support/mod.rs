//! What the load benches share: the real server binary started on port 0 with a temp data dir,
//! its stdout drained for the whole run (a reader that stops would close the pipe under it), and
//! the peer scripts in `../shared/peers/` run for the other side of each ratio.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const TOKEN: &str = "bench-staff-token-0123456789";

pub struct Server {
    child: Child,
    pub base: String,
    /// The embedded broker's port, when the server runs one.
    pub mqtt_port: Option<u16>,
}

impl Server {
    /// `clinicflow serve --http 127.0.0.1:0 --data DATA ARGS…`, waiting for "listening on".
    pub fn start(data: &Path, args: &[String]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_clinicflow"))
            .args(["serve", "--http", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(args)
            .env("CLINICFLOW_STAFF_TOKEN", TOKEN)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start clinicflow");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("mqtt: embedded broker on ") {
                    let _ = tx.send(format!("mqtt {}", addr.trim()));
                } else if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let mut mqtt_port = None;
        let base = loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(m) if m.starts_with("mqtt ") => mqtt_port = m.rsplit(':').next().and_then(|p| p.parse().ok()),
                Ok(url) => break url,
                Err(_) => {
                    let _ = child.kill();
                    panic!("clinicflow did not print its address within 60 s");
                }
            }
        };
        Server { child, base, mqtt_port }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last stdout line of a peer script under `../shared/peers/` (one JSON line), if the script
/// is there and its interpreter runs.
pub fn peer(interpreter: &str, script: &str, envs: &[(&str, String)]) -> Option<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/peers").join(script);
    if !path.exists() {
        return None;
    }
    let out = Command::new(interpreter).arg(&path).envs(envs.iter().map(|(k, v)| (k, v))).output().ok()?;
    String::from_utf8(out.stdout).ok()?.lines().last().map(str::to_owned)
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}
