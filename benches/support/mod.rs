//! What the load benches share: the real server binary started on port 0 with a temp data dir,
//! its stdout drained for the whole run (a reader that stops would close the pipe under it), and
//! the peer scripts in `../shared/peers/` run for the other side of each ratio.

#![allow(dead_code)]

#[path = "../../tests/support/server.rs"]
mod server;

use std::path::Path;
use std::process::{Child, Command};

pub const TOKEN: &str = "bench-staff-token-0123456789";

pub struct Server {
    child: Child,
    pub base: String,
    /// The embedded broker's port, when the server runs one.
    pub mqtt_port: Option<u16>,
    /// HL7 over MLLP's port, when `--hl7` is on.
    pub hl7_port: Option<u16>,
}

impl Server {
    /// `clinicflow serve --http 127.0.0.1:0 --data DATA ARGS…`, waiting for "listening on".
    pub fn start(data: &Path, args: &[String]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clinicflow"));
        cmd.args(["serve", "--http", "127.0.0.1:0", "--data"]).arg(data).args(args).env("CLINICFLOW_STAFF_TOKEN", TOKEN).env("RUST_LOG", "error");
        let s = server::spawn(cmd);
        Server { child: s.child, base: s.base, mqtt_port: s.mqtt_port, hl7_port: s.hl7_port }
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
