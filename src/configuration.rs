//! Typed settings for `clinicflow serve`: defaults < config file < flags and environment.
//! Every limit lives here.

use crate::domain::config::Hospital;
use crate::storage::WriterLimits;
use anyhow::Context as _;
use std::path::{Path, PathBuf};

/// A secret that is never printed by `Debug`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Self(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}
impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body accepted; larger gets 413 before it is read.
    pub max_body_bytes: usize,
    /// Concurrent connections per HTTP worker; beyond it, new connections wait in the backlog.
    pub max_connections_per_worker: usize,
    pub journal: WriterLimits,
    pub push: crate::actors::PushLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            max_connections_per_worker: 25_000,
            journal: WriterLimits::default(),
            push: crate::actors::PushLimits::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// `ADDR:PORT` to listen on; port 0 picks a free port (tests).
    pub http: String,
    pub hospital: Hospital,
    /// The systems around it from the same file: HIS databases, webhooks, tokens, encodings.
    pub site: crate::site::Site,
    /// The admin bearer token (`CLINICFLOW_STAFF_TOKEN`, or generated once and kept in the data dir).
    pub staff_token: Secret,
    /// Key for patient access tokens (generated once, kept in the data dir).
    pub patient_key: Secret,
    /// Derives the embedded broker's device and server passwords (`DIR/device-key`).
    pub device_key: Secret,
    pub http_workers: usize,
    /// Threads the queue actors run on (`CLINICFLOW_QUEUE_THREADS`; half the cores by default).
    pub queue_threads: usize,
    pub limits: Limits,
    /// The MQTT broker for displays and keypads; `None`: MQTT off.
    pub mqtt: Option<crate::edges::mqtt::MqttSettings>,
    /// Where to run the embedded broker (`--mqtt`); `None` when off or an external broker is used.
    pub embedded_broker: Option<std::net::SocketAddr>,
    /// The indoor maps: the embedded demo hospital, or `--map DIR` folders.
    pub maps: crate::map::store::MapSource,
    /// Radio maps for BLE positioning (`--radio FILE`), read and parsed; built against their
    /// venue maps at start. Empty: positioning off.
    pub radio: Vec<(PathBuf, crate::position::RadioMapFile)>,
    /// A visit whose patient holds no open ticket and no active order for this long is over:
    /// its tags are unbound and its positions forgotten.
    pub visit_idle: std::time::Duration,
    /// How often visits are checked for that.
    pub visit_sweep: std::time::Duration,
    /// How long a visit's position trail is kept (the latest position stays while the visit lasts).
    pub position_retention: std::time::Duration,
    /// Where to listen for HL7 v2 over MLLP (`--hl7`); `None`: off.
    pub hl7: Option<std::net::SocketAddr>,
    /// Who may connect to it (`--hl7-allow`); empty: anyone.
    pub hl7_allow: Vec<ipnet::IpNet>,
}

impl Settings {
    /// Resolve settings from the `serve` flags. Creates the data dir and its secrets if missing.
    pub fn load(data_dir: &Path, http: &str, config: Option<&Path>, staff_token: Option<String>, mqtt: &MqttFlags, maps: &[PathBuf], radio: &[PathBuf], hl7: Option<&str>) -> anyhow::Result<Self> {
        {
            use std::os::unix::fs::DirBuilderExt as _;
            // Only its own user reads a data dir: it holds the journal and the secrets.
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(data_dir).with_context(|| format!("creating data dir {}", data_dir.display()))?;
        }
        crate::storage::schema::check_dir(data_dir)?;
        ensure_writable(data_dir)?;
        let (hospital, site) = match config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
                crate::site::load(&text).with_context(|| format!("in {}", path.display()))?
            }
            None => crate::site::demo(),
        };
        let staff_token = match staff_token.filter(|t| !t.is_empty()) {
            Some(t) => {
                anyhow::ensure!(t.len() >= 16, "CLINICFLOW_STAFF_TOKEN must be at least 16 characters");
                t
            }
            None => stored_secret(&data_dir.join("staff-token"))?,
        };
        let patient_key = stored_secret(&data_dir.join("patient-key"))?;
        let device_key = stored_secret(&data_dir.join("device-key"))?;
        let mut limits = Limits::default();
        // Patient connection limits; tests shorten them.
        if let Some(n) = env_number("CLINICFLOW_WS_OUTBOX")? {
            limits.push.outbox = (n as usize).max(1);
        }
        if let Some(n) = env_number("CLINICFLOW_WS_HEARTBEAT_SECS")? {
            limits.push.heartbeat = std::time::Duration::from_secs(n.max(1));
        }
        if let Some(n) = env_number("CLINICFLOW_REPLAN_SECS")? {
            limits.push.replan_interval = std::time::Duration::from_secs(n.max(1));
        }
        if let Some(n) = env_number("CLINICFLOW_WS_IDLE_SECS")? {
            limits.push.idle_timeout = std::time::Duration::from_secs(n.max(1));
        }
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let http_workers = cores.clamp(1, 8);
        let queue_threads = match env_number("CLINICFLOW_QUEUE_THREADS")? {
            Some(n) => (n as usize).clamp(1, 64),
            None => (cores / 2).clamp(1, 8),
        };
        let prefix = mqtt.prefix.clone().unwrap_or_else(|| format!("clinicflow/{}", hospital.site));
        anyhow::ensure!(
            !prefix.is_empty() && !prefix.ends_with('/') && !prefix.contains(['+', '#']),
            "the MQTT prefix must not be empty, end with '/' or contain '+' or '#'"
        );
        // An external broker wins; otherwise the embedded one unless it is off.
        let (mqtt, embedded_broker) = match mqtt.broker.as_deref().filter(|u| !u.is_empty() && *u != "off") {
            Some(url) => (Some(crate::edges::mqtt::MqttSettings::from_url(url, prefix, mqtt.ca.as_deref())?), None),
            None if mqtt.embedded == "off" => (None, None),
            None => {
                let addr: std::net::SocketAddr =
                    mqtt.embedded.parse().with_context(|| format!("--mqtt must be ADDR:PORT or off, not {:?}", mqtt.embedded))?;
                let local = if addr.ip().is_unspecified() { "127.0.0.1".to_owned() } else { addr.ip().to_string() };
                let settings = crate::edges::mqtt::MqttSettings {
                    host: local,
                    port: addr.port(),
                    username: Some(crate::edges::broker::SERVER_USER.to_owned()),
                    password: Some(crate::edges::broker::server_password(&device_key)),
                    prefix,
                    tls: None,
                };
                (Some(settings), Some(addr))
            }
        };
        let maps = if maps.is_empty() { crate::map::store::MapSource::Demo } else { crate::map::store::MapSource::Dirs(maps.to_vec()) };
        let radio = radio
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading the radio map {}", p.display()))?;
                let file: crate::position::RadioMapFile =
                    serde_json::from_str(&text).with_context(|| format!("{} is not a radio map (make one with `clinicflow position calibrate`)", p.display()))?;
                anyhow::ensure!(
                    matches!(file.venue, crate::position::radio::VenueRef::Map { .. }),
                    "{}: live positioning needs a radio map bound to a venue map (`position calibrate --map`), not to an outline",
                    p.display()
                );
                Ok((p.clone(), file))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let visit_idle = std::time::Duration::from_secs(env_number("CLINICFLOW_VISIT_IDLE_SECS")?.unwrap_or(30 * 60));
        let visit_sweep = std::time::Duration::from_secs(env_number("CLINICFLOW_VISIT_SWEEP_SECS")?.unwrap_or(60).max(1));
        let position_retention = std::time::Duration::from_secs(env_number("CLINICFLOW_POSITION_RETENTION_SECS")?.unwrap_or(15 * 60));
        let hl7 = match hl7.filter(|s| !s.is_empty() && *s != "off") {
            None => None,
            Some(a) => Some(a.parse().with_context(|| format!("--hl7 must be ADDR:PORT or off, not {a:?}"))?),
        };
        Ok(Self {
            hl7,
            hl7_allow: Vec::new(),
            position_retention,
            radio,
            visit_idle,
            visit_sweep,
            maps,
            mqtt,
            embedded_broker,
            data_dir: data_dir.to_owned(),
            http: http.to_owned(),
            hospital,
            site,
            staff_token: Secret(staff_token),
            patient_key: Secret(patient_key),
            device_key: Secret(device_key),
            http_workers,
            queue_threads,
            limits,
        })
    }
}

/// What `serve` checks of the hospital's files before it starts — the config (every problem of
/// it) and the venue maps (every problem of each) — one line per problem, empty when it would
/// start. `clinicflow config check` prints the same lines, so a config that passes the check
/// is one `serve` takes, and one `serve` refuses is refused by the check with the same words.
pub fn check_files(config: Option<&Path>, maps: &[PathBuf]) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(path) = config {
        match std::fs::read_to_string(path) {
            Err(e) => problems.push(format!("{}: cannot be read: {e}", path.display())),
            Ok(text) => {
                if let Err(e) = crate::site::load(&text) {
                    problems.extend(e.problems().into_iter().map(|p| format!("{}: {p}", path.display())));
                }
            }
        }
    }
    if !maps.is_empty() {
        if let Err(issues) = crate::map::store::Atlas::load(&crate::map::store::MapSource::Dirs(maps.to_vec())) {
            problems.extend(issues.0.iter().map(|i| i.to_string()));
        }
    }
    problems
}

impl Settings {
    /// The BLE gateways of the radio maps (their anchor ids), sorted and de-duplicated.
    pub fn gateways(&self) -> Vec<String> {
        let mut g: Vec<String> = self.radio.iter().flat_map(|(_, f)| f.anchors.iter().map(|a| a.id.clone())).collect();
        g.sort();
        g.dedup();
        g
    }
}

fn env_number(name: &str) -> anyhow::Result<Option<u64>> {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().map(Some).with_context(|| format!("{name} must be a whole number, not {v:?}")),
        Err(_) => Ok(None),
    }
}

/// The `serve` flags about MQTT.
#[derive(Debug, Clone)]
pub struct MqttFlags {
    /// `--mqtt`: the embedded broker's `ADDR:PORT`, or `off`.
    pub embedded: String,
    /// `--mqtt-broker`: an external broker's URL (turns the embedded one off).
    pub broker: Option<String>,
    /// `--mqtt-ca`: CA certificates (PEM) for an `mqtts://` broker.
    pub ca: Option<std::path::PathBuf>,
    /// `--mqtt-prefix`.
    pub prefix: Option<String>,
}

/// Read a secret kept in the data dir, or create it (random, 0600).
fn stored_secret(path: &Path) -> anyhow::Result<String> {
    if let Ok(s) = std::fs::read_to_string(path) {
        let s = s.trim().to_owned();
        if s.len() >= 16 {
            return Ok(s);
        }
    }
    use rand::Rng;
    let bytes: [u8; 24] = rand::thread_rng().gen();
    let s = hex::encode(bytes);
    std::fs::write(path, &s).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(s)
}

/// The data dir must take writes (the journal, its WAL and shared-memory index, the secrets):
/// one clear refusal at start instead of a server that fails on its first command (or dies by
/// SIGBUS on an unwritable `-shm`).
fn ensure_writable(data_dir: &Path) -> anyhow::Result<()> {
    let probe = data_dir.join(".clinicflow-write-probe");
    let result = std::fs::write(&probe, b"probe").and_then(|()| std::fs::remove_file(&probe));
    if let Err(e) = result {
        anyhow::bail!("the data dir {} is not writable ({e}): clinicflow keeps its journal there; give the service user write access (or point --data elsewhere)", data_dir.display());
    }
    for name in ["journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm", "journal.sqlite-head"] {
        let path = data_dir.join(name);
        if path.exists() {
            std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(|e| anyhow::anyhow!("{} is not writable ({e}): clinicflow needs to write its journal; give the service user write access", path.display()))?;
        }
    }
    Ok(())
}
