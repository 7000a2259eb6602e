//! `clinicflow`: telemetry → settings → Application::build → run until a signal.

use clap::{Parser, Subcommand};
use clinicflow::configuration::{MqttFlags, Settings};
use clinicflow::startup::Application;
use std::path::PathBuf;

/// The operator's console lines. A closed stdout (piped into `head`, a supervisor that stopped
/// reading) must never take the server down, so write errors are ignored instead of `println!`'s
/// panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, $($arg)*);
        let _ = out.flush();
    }};
}

#[derive(Parser)]
#[command(name = "clinicflow", version, about = "Real-time server of a hospital outpatient floor")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Simulated displays and keypads against a running server's MQTT broker (demos, load).
    Devices {
        /// The broker: mqtt://host:port (the server's embedded broker by default).
        #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
        broker: String,
        /// The server's data dir: devices log in to the embedded broker with the credentials its
        /// device key derives (without one, they connect anonymously, as an external broker may allow).
        #[arg(long, env = "CLINICFLOW_DATA", default_value = "./data")]
        data: PathBuf,
        /// Hospital config naming the devices; the demo hospital when absent.
        #[arg(long)]
        config: Option<PathBuf>,
        /// MQTT topic prefix (default clinicflow/{site}).
        #[arg(long)]
        prefix: Option<String>,
        /// How many of the config's displays to run.
        #[arg(long, default_value_t = 1000)]
        displays: usize,
        /// How many of the config's keypads to run.
        #[arg(long, default_value_t = 1000)]
        keypads: usize,
        /// Seconds between each keypad's call-next presses.
        #[arg(long, default_value_t = 10.0)]
        press_every: f64,
        /// Stop after this many seconds.
        #[arg(long, default_value_t = 60.0)]
        duration: f64,
    },
    /// Indoor maps: check a map folder, print a route, draw a level.
    Map {
        #[command(subcommand)]
        command: MapCmd,
    },
    /// A seeded outpatient morning on the demo hospital: the order sheet's fixed order against
    /// the planner, same patients, same seed; prints the figures and writes an HTML report.
    Simulate {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Patients as a multiple of the default morning's (1.0 ≈ 210 patients).
        #[arg(long, default_value_t = 1.0)]
        load: f64,
        /// The HTML report (SVG histograms inside).
        #[arg(long, default_value = "simulation-report.html")]
        out: PathBuf,
    },
    /// Replay a recorded day under another calling policy and print what would change (waits,
    /// overtakes, no-shows), before the policy is switched on.
    Replay {
        /// The journal: a server's data directory or its journal.sqlite.
        #[arg(long)]
        journal: PathBuf,
        /// The day to replay (YYYY-MM-DD, the hospital's local date); the latest day recorded
        /// when absent.
        #[arg(long)]
        day: Option<chrono::NaiveDate>,
        /// The policy to try: a TOML file with the fields of `[queues.policy]` (fairness, calls …).
        #[arg(long)]
        policy: PathBuf,
        /// Only these queues (repeat); every queue with calls that day when absent.
        #[arg(long = "queue")]
        queues: Vec<String>,
        /// The hospital config the day was recorded with; the embedded demo hospital when absent.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// BLE positioning: build a radio map from calibration files, score the tracker on a
    /// recorded walk.
    Position {
        #[command(subcommand)]
        command: PositionCmd,
    },
    /// The hospital config: check it (with its maps) before a restart.
    Config {
        #[command(subcommand)]
        command: ConfigCmd,
    },
    /// A consistent copy of every store of a data dir (journal, HIS, orders, tags, webhooks,
    /// secrets) into one file, while the server runs (SQLite's online backup). The file holds
    /// the secrets: it is written 0600; keep it as safe as the data dir.
    Backup {
        /// The server's data directory.
        #[arg(long, default_value = "./data", env = "CLINICFLOW_DATA")]
        data: PathBuf,
        /// The backup file to write (a gzip'd tar; replaced whole, never left half-written).
        #[arg(long)]
        to: PathBuf,
    },
    /// Restore a backup into an empty (or new) data dir; every file is checked first.
    Restore {
        /// The backup file (from `clinicflow backup`).
        #[arg(long)]
        from: PathBuf,
        /// The data directory to restore into: empty or absent.
        #[arg(long)]
        data: PathBuf,
    },
    /// The journal: check it offline.
    Journal {
        #[command(subcommand)]
        command: JournalCmd,
    },
    /// Run the server: demo hospital by default, SQLite journal under ./data.
    Serve {
        /// Data directory (journal, secrets).
        #[arg(long, default_value = "./data", env = "CLINICFLOW_DATA")]
        data: PathBuf,
        /// HTTP listen address; port 0 picks a free port.
        #[arg(long, default_value = "0.0.0.0:8080", env = "CLINICFLOW_HTTP")]
        http: String,
        /// Hospital config (TOML); the embedded demo hospital when absent.
        #[arg(long, env = "CLINICFLOW_CONFIG")]
        config: Option<PathBuf>,
        /// Embedded MQTT broker for displays and keypads: ADDR:PORT (port 0 picks one), or off.
        #[arg(long, default_value = "0.0.0.0:1883", env = "CLINICFLOW_MQTT")]
        mqtt: String,
        /// An external MQTT broker instead of the embedded one: mqtt://[user[:password]@]host[:port],
        /// or mqtts:// for TLS (port 8883 by default).
        #[arg(long, env = "CLINICFLOW_MQTT_BROKER")]
        mqtt_broker: Option<String>,
        /// PEM file of the CA(s) that sign the external broker's TLS certificate; the system's
        /// trusted roots when absent.
        #[arg(long, env = "CLINICFLOW_MQTT_CA")]
        mqtt_ca: Option<PathBuf>,
        /// MQTT topic prefix (default clinicflow/{site}).
        #[arg(long, env = "CLINICFLOW_MQTT_PREFIX")]
        mqtt_prefix: Option<String>,
        /// A venue map folder (repeat for several venues); the embedded demo hospital when absent.
        #[arg(long = "map", env = "CLINICFLOW_MAP", value_delimiter = ',')]
        maps: Vec<PathBuf>,
        /// A radio map for BLE positioning (from `clinicflow position calibrate`, bound to a
        /// served venue); repeat for several venues. Its anchors are the gateways that may
        /// publish scans. Positioning is off when absent.
        #[arg(long = "radio", env = "CLINICFLOW_RADIO", value_delimiter = ',')]
        radio: Vec<PathBuf>,
        /// Listen for HL7 v2 messages over MLLP from the HIS (ADDR:PORT, port 0 picks one;
        /// the usual port is 2575), or off.
        #[arg(long, env = "CLINICFLOW_HL7")]
        hl7: Option<String>,
        /// Only these HIS addresses may connect to the HL7 port (IPs or CIDR blocks, comma
        /// separated: 10.2.0.0/16,10.9.8.7); any when absent. Others are refused and counted.
        #[arg(long = "hl7-allow", env = "CLINICFLOW_HL7_ALLOW", value_delimiter = ',')]
        hl7_allow: Vec<String>,
        /// Run the clock from this instant instead of the system's (RFC 3339 with its offset,
        /// e.g. 2026-12-07T08:00:00+08:00): tests, rehearsing a morning, a demo at any hour.
        /// Never in production: a pinned clock is reported by /healthz.
        #[arg(long, env = "CLINICFLOW_CLOCK")]
        clock: Option<String>,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Check a hospital config (TOML) and the venue maps it is served with, exactly as `serve`
    /// checks them at start: exit 0 when `serve` would take them, 1 naming every problem.
    Check {
        /// The hospital config (or --config FILE).
        file: Option<PathBuf>,
        #[arg(long = "config", env = "CLINICFLOW_CONFIG", conflicts_with = "file")]
        config: Option<PathBuf>,
        /// A venue map folder, as given to `serve --map` (repeat for several venues).
        #[arg(long = "map", env = "CLINICFLOW_MAP", value_delimiter = ',')]
        maps: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum JournalCmd {
    /// Walk the journal's hash chain and hold it against the witness of its last commit: exit 0
    /// when it is whole, 1 naming the first damaged or missing event. It never rewrites an
    /// event; safe while serving.
    Verify {
        /// The server's data directory.
        #[arg(long, env = "CLINICFLOW_DATA", default_value = "./data")]
        data: PathBuf,
    },
}

#[derive(Subcommand)]
enum PositionCmd {
    /// Import calibration CSVs into a radio map bound to a venue (JSON).
    Calibrate {
        /// Anchors (gateways or beacons): id,x,y[,z][,level], local metres.
        #[arg(long)]
        anchors: PathBuf,
        /// Calibration samples: x,y[,level] and rssi_<anchor id> per anchor (empty = not heard).
        /// Without it, the map predicts readings from a path-loss model alone.
        #[arg(long)]
        samples: Option<PathBuf>,
        /// The venue as a bare outline (x,y per corner) instead of a map folder.
        #[arg(long, conflicts_with = "map")]
        outline: Option<PathBuf>,
        /// The venue's map folder; the embedded demo hospital when neither this nor --outline.
        #[arg(long)]
        map: Option<PathBuf>,
        /// The outline venue's id (the outline file's name when absent).
        #[arg(long)]
        venue_id: Option<String>,
        /// Where to write the radio map.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Replay a recorded walk: median, p75, p90 error of the tracker and of the plain kNN
    /// baseline, against the walk's own x,y or a reference path (cross-track).
    Eval {
        /// The radio map (from `position calibrate`).
        #[arg(long)]
        radio: PathBuf,
        /// The walk: ts, rssi_<anchor id> per anchor, optionally x,y[,level].
        #[arg(long)]
        walk: PathBuf,
        /// A reference path (x0,y0,x1,y1 per segment): score by cross-track error.
        #[arg(long)]
        path: Option<PathBuf>,
        /// The map folder of a map-bound radio map; the embedded demo hospital when absent.
        #[arg(long)]
        map: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum MapCmd {
    /// Validate a map folder (geometry, references, duplicate ids, edges that leave their level,
    /// reachability from every entrance under every profile). Exit code 1 on any error.
    Check { dir: PathBuf },
    /// Print the route between two places (marker:, room:, department:, place:, node: or a bare id).
    Route {
        /// Map folder; the embedded demo hospital when absent.
        #[arg(long)]
        map: Option<PathBuf>,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// default, accessible or slow.
        #[arg(long, default_value = "default")]
        profile: String,
        /// zh or en.
        #[arg(long, default_value = "zh")]
        lang: String,
    },
    /// SVG of one level, with a route drawn when --from and --to are given.
    Render {
        /// Map folder; the embedded demo hospital when absent.
        #[arg(long)]
        map: Option<PathBuf>,
        /// Level id (e.g. A-L1).
        #[arg(long)]
        level: String,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value = "default")]
        profile: String,
        /// Output file; stdout when absent.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    clinicflow::telemetry::init_tracing();
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Devices { broker, data, config, prefix, displays, keypads, press_every, duration } => {
            devices(broker, &data, config, prefix, displays, keypads, press_every, duration)
        }
        Cmd::Map { command } => map_cmd(command),
        Cmd::Journal { command: JournalCmd::Verify { data } } => match journal_verify(&data) {
            Ok(true) => return std::process::ExitCode::SUCCESS,
            Ok(false) => return std::process::ExitCode::FAILURE,
            Err(e) => Err(e),
        },
        Cmd::Position { command } => position_cmd(command),
        Cmd::Config { command: ConfigCmd::Check { file, config, maps } } => {
            let Some(config) = file.or(config) else {
                eprintln!("clinicflow: config check needs a config file (FILE or --config FILE)");
                return std::process::ExitCode::from(2);
            };
            let problems = clinicflow::configuration::check_files(Some(&config), &maps);
            if problems.is_empty() {
                say!("{}: ok{}", config.display(), if maps.is_empty() { String::new() } else { format!(" (with {} map folder(s))", maps.len()) });
                return std::process::ExitCode::SUCCESS;
            }
            print_problems(&format!("{} problem(s):", problems.len()), &problems);
            return std::process::ExitCode::FAILURE;
        }
        Cmd::Backup { data, to } => backup(&data, &to),
        Cmd::Restore { from, data } => restore(&from, &data),
        Cmd::Simulate { seed, load, out } => simulate(seed, load, &out),
        Cmd::Replay { journal, day, policy, queues, config, json } => replay(&journal, day, &policy, &queues, config, json),
        Cmd::Serve { data, http, config, mqtt, mqtt_broker, mqtt_ca, mqtt_prefix, maps, radio, hl7, hl7_allow, clock } => {
            // Before anything reads the time.
            if let Some(at) = clock {
                if let Err(e) = clinicflow::clock::pin(&at) {
                    eprintln!("clinicflow: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            }
            // What the server writes (journal, secrets, stores) is for its own user only.
            // SAFETY: umask has no preconditions and cannot fail.
            unsafe { libc::umask(0o077) };
            let problems = clinicflow::configuration::check_files(config.as_deref(), &maps);
            if !problems.is_empty() {
                print_problems(&format!("clinicflow: not starting: {} problem(s) in the config or maps (`clinicflow config check` lists the same):", problems.len()), &problems);
                return std::process::ExitCode::FAILURE;
            }
            serve(data, http, config, MqttFlags { embedded: mqtt, broker: mqtt_broker, ca: mqtt_ca, prefix: mqtt_prefix }, maps, radio, hl7, &hl7_allow)
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clinicflow: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn serve(data: PathBuf, http: String, config: Option<PathBuf>, mqtt: MqttFlags, maps: Vec<PathBuf>, radio: Vec<PathBuf>, hl7: Option<String>, hl7_allow: &[String]) -> anyhow::Result<()> {
    let token = std::env::var("CLINICFLOW_STAFF_TOKEN").ok();
    let mut settings = Settings::load(&data, &http, config.as_deref(), token, &mqtt, &maps, &radio, hl7.as_deref())?;
    settings.hl7_allow = clinicflow::edges::mllp::parse_allow(hl7_allow)?;
    if let Some(listen) = settings.embedded_broker {
        let prefix = settings.mqtt.as_ref().map(|m| m.prefix.clone()).unwrap_or_default();
        let key = settings.device_key.expose().to_owned();
        let devices = clinicflow::edges::broker::credentials(&settings.hospital, &prefix, &key, &settings.gateways())?;
        let addr = clinicflow::edges::broker::start(listen, &devices, &clinicflow::edges::broker::server_password(&key))?;
        if let Some(m) = settings.mqtt.as_mut() {
            m.port = addr.port();
        }
        say!("mqtt: embedded broker on {addr}");
    }
    actix_web::rt::System::new().block_on(async move {
        let staff = settings.staff_token.clone();
        let hospital = settings.hospital.name.clone();
        let queues = settings.hospital.queues.len();
        let mqtt = settings.mqtt.clone();
        let app = Application::build(settings).await?;
        if let Some(a) = app.hl7_address() {
            say!("hl7: MLLP on {a}");
        }
        let addr = app.address();
        let shown = if addr.ip().is_unspecified() { format!("127.0.0.1:{}", addr.port()) } else { addr.to_string() };
        // The operator's first screen: where it listens and the token to use. stdout on purpose.
        say!("clinicflow serving {hospital} ({queues} queues)");
        // The address actually bound; on every interface, also the one to open on this machine.
        say!("listening on http://{addr}");
        if addr.ip().is_unspecified() {
            say!("  (every interface; on this machine: http://{shown})");
        }
        say!("staff token: {}", staff.expose());
        say!("api docs: http://{shown}/api/v1/openapi.json");
        match &mqtt {
            Some(m) => say!("mqtt: displays and keypads via {}:{}, topics under {}/", m.host, m.port, m.prefix),
            None => say!("mqtt: off"),
        }
        app.run_until(shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok(())
    })
}

#[allow(clippy::too_many_arguments)]
fn devices(
    broker: String,
    data: &std::path::Path,
    config: Option<PathBuf>,
    prefix: Option<String>,
    displays: usize,
    keypads: usize,
    press_every: f64,
    duration: f64,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let hospital = match config {
        Some(p) => clinicflow::site::load(&std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?)?.0,
        None => clinicflow::domain::config::Hospital::demo(),
    };
    let prefix = prefix.unwrap_or_else(|| format!("clinicflow/{}", hospital.site));
    let m = clinicflow::edges::mqtt::MqttSettings::from_url(&broker, prefix, None)?;
    anyhow::ensure!(m.tls.is_none(), "the simulator speaks plain MQTT (mqtt://)");
    anyhow::ensure!(press_every > 0.0 && duration > 0.0, "--press-every and --duration must be positive");
    let logins = match std::fs::read_to_string(data.join("device-key")) {
        Ok(key) => clinicflow::edges::broker::credentials(&hospital, &m.prefix, key.trim(), &[])?
            .into_iter()
            .map(|c| (c.id, (c.username, c.password)))
            .collect(),
        Err(_) => Default::default(),
    };
    let sim = clinicflow::devices::DeviceSim {
        logins,
        host: m.host,
        port: m.port,
        prefix: m.prefix,
        displays,
        keypads,
        press_every: std::time::Duration::from_secs_f64(press_every),
        duration: std::time::Duration::from_secs_f64(duration),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(clinicflow::devices::run(sim, &hospital))
}

fn position_cmd(cmd: PositionCmd) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use clinicflow::position::{self, eval, io, radio};
    let read = |p: &std::path::Path| std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()));
    let load_map = |dir: Option<&std::path::Path>| -> anyhow::Result<clinicflow::map::VenueMap> {
        match dir {
            Some(d) => clinicflow::map::load_dir(d).map_err(|e| anyhow::anyhow!("{} is not a valid map:\n{e}", d.display())),
            None => Ok(clinicflow::map::demo()),
        }
    };
    match cmd {
        PositionCmd::Calibrate { anchors, samples, outline, map, venue_id, out } => {
            let anchor_defs = io::read_anchors(&read(&anchors)?).with_context(|| anchors.display().to_string())?;
            let sample_rows = match &samples {
                Some(p) => io::read_samples(&read(p)?, &anchor_defs).with_context(|| p.display().to_string())?,
                None => Vec::new(),
            };
            let (venue, map) = match &outline {
                Some(p) => {
                    let id = venue_id.unwrap_or_else(|| p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "outline".into()));
                    (radio::VenueRef::Outline { id, outline: io::read_outline(&read(p)?).with_context(|| p.display().to_string())? }, None)
                }
                None => {
                    let m = load_map(map.as_deref())?;
                    (radio::VenueRef::Map { id: m.id.clone() }, Some(m))
                }
            };
            let (file, built) = position::calibrate(anchor_defs, sample_rows, venue, None, map.as_ref())?;
            std::fs::write(&out, serde_json::to_string(&file)?).with_context(|| format!("cannot write {}", out.display()))?;
            let pl = file.path_loss;
            say!(
                "{}: venue {} — {} anchors, {} samples, {} states ({} measured, the rest predicted); path loss {:.1} dBm at 1 m, exponent {:.2}",
                out.display(),
                file.venue.id(),
                file.anchors.len(),
                file.samples.len(),
                built.space.len(),
                built.measured_states,
                pl.rssi_1m,
                pl.exponent
            );
            Ok(())
        }
        PositionCmd::Eval { radio: radio_path, walk, path, map, json } => {
            let file: radio::RadioMapFile = serde_json::from_str(&read(&radio_path)?).with_context(|| format!("{} is not a radio map", radio_path.display()))?;
            let venue = match file.venue {
                radio::VenueRef::Map { .. } => Some(load_map(map.as_deref())?),
                radio::VenueRef::Outline { .. } => None,
            };
            let built = std::sync::Arc::new(radio::RadioMap::build(file, venue.as_ref())?);
            let rows = io::read_walk(&read(&walk)?, &built.file.anchors).with_context(|| walk.display().to_string())?;
            let segments = match &path {
                Some(p) => Some(io::read_path(&read(p)?).with_context(|| p.display().to_string())?),
                None => None,
            };
            let reference = match &segments {
                Some(s) => eval::Reference::Path(s),
                None => eval::Reference::Truth,
            };
            let report = eval::evaluate(built, &rows, reference);
            if report.tracker.n == 0 {
                anyhow::bail!("{}: none of its {} scans could be placed (no readings of the radio map's anchors, or no truth to score against)", walk.display(), rows.len());
            }
            if json {
                say!("{}", serde_json::to_string(&report)?);
                return Ok(());
            }
            say!("{} scans, error = {}", report.scans, if report.metric == "cross_track" { "cross-track distance to the reference path" } else { "distance to the recorded position" });
            say!("{:<28} {:>6} {:>9} {:>9} {:>9}", "estimator", "n", "median m", "p75 m", "p90 m");
            let line = |name: &str, s: &eval::ErrorStats| say!("{:<28} {:>6} {:>9.2} {:>9.2} {:>9.2}", name, s.n, s.median_m, s.p75_m, s.p90_m);
            line("tracker (map-constrained)", &report.tracker);
            match &report.baseline {
                Some(b) => line(&format!("kNN baseline (k={})", eval::BASELINE_K), b),
                None => say!("kNN baseline: none (the radio map has no calibration samples)"),
            }
            if let Some(g) = report.median_gain_pct {
                say!("median {:.0}% {} than the baseline", g.abs(), if g >= 0.0 { "lower" } else { "higher" });
            }
            Ok(())
        }
    }
}

fn map_cmd(cmd: MapCmd) -> anyhow::Result<()> {
    use clinicflow::map::{self, model::Lang, Profile};
    let load = |dir: Option<&std::path::Path>| -> anyhow::Result<map::VenueMap> {
        match dir {
            Some(d) => map::load_dir(d).map_err(|e| anyhow::anyhow!("{} is not a valid map:\n{e}", d.display())),
            None => Ok(map::demo()),
        }
    };
    let profile_of = |p: &str| Profile::parse(p).ok_or_else(|| anyhow::anyhow!("unknown profile {p:?} (default, accessible, slow)"));
    let route_of = |m: &map::VenueMap, from: &str, to: &str, profile: Profile| -> anyhow::Result<(map::Route, map::model::Endpoint, map::model::Endpoint)> {
        let f = m.resolve(from).ok_or_else(|| anyhow::anyhow!("unknown place {from:?}"))?;
        let t = m.resolve(to).ok_or_else(|| anyhow::anyhow!("unknown place {to:?}"))?;
        let r = m.route(&f, &t, profile).map_err(|_| anyhow::anyhow!("no {} route from {from} to {to}", profile.name()))?;
        Ok((r, f, t))
    };
    match cmd {
        MapCmd::Check { dir } => match map::load_dir(&dir) {
            Ok(m) => {
                say!(
                    "{}: ok — venue {} ({} buildings, {} levels, {} nodes, {} edges, {} places, {} entrances)",
                    dir.display(),
                    m.id,
                    m.buildings.len(),
                    m.levels.len(),
                    m.graph.node_count(),
                    m.graph.edge_count(),
                    m.places.len(),
                    m.entrances.len()
                );
                Ok(())
            }
            Err(issues) => {
                for i in &issues.0 {
                    eprintln!("{}/{i}", dir.display());
                }
                anyhow::bail!("{} error(s) in {}", issues.0.len(), dir.display())
            }
        },
        MapCmd::Route { map: dir, from, to, profile, lang } => {
            let m = load(dir.as_deref())?;
            let lang = Lang::parse(&lang).ok_or_else(|| anyhow::anyhow!("unknown language {lang:?} (zh, en)"))?;
            let (r, f, t) = route_of(&m, &from, &to, profile_of(&profile)?)?;
            for s in map::text::steps(&m, &r, &f.label, &t.label, lang) {
                say!("{:>4}  {}", s.floor, s.text);
            }
            say!("{:.0} m, {:.0} s ({} profile)", r.distance_m, r.seconds, r.profile.name());
            Ok(())
        }
        MapCmd::Render { map: dir, level, from, to, profile, out } => {
            let m = load(dir.as_deref())?;
            let li = m.levels.iter().position(|l| l.id == level).ok_or_else(|| anyhow::anyhow!("no level {level:?} (levels: {})", m.levels.iter().map(|l| l.id.as_str()).collect::<Vec<_>>().join(", ")))?;
            let route = match (from, to) {
                (Some(f), Some(t)) => Some(route_of(&m, &f, &t, profile_of(&profile)?)?.0),
                (None, None) => None,
                _ => anyhow::bail!("--from and --to go together"),
            };
            let svg = map::render::level_svg(&m, li, route.as_ref());
            match out {
                Some(p) => std::fs::write(&p, svg)?,
                None => say!("{svg}"),
            }
            Ok(())
        }
    }
}

fn replay(
    journal: &std::path::Path,
    day: Option<chrono::NaiveDate>,
    policy_file: &std::path::Path,
    only: &[String],
    config: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use chrono::TimeZone as _;
    use clinicflow::domain::config::{Hospital, QueuePolicy};
    use clinicflow::storage::{JournalStore as _, SqliteJournal};
    let hospital = match config {
        Some(p) => clinicflow::site::load(&std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?)?.0,
        None => Hospital::demo(),
    };
    let text = std::fs::read_to_string(policy_file).with_context(|| format!("reading {}", policy_file.display()))?;
    let policy: QueuePolicy = toml::from_str(&text).with_context(|| format!("in {}", policy_file.display()))?;
    let some_queue = hospital.queues.values().next().context("the config has no queues")?;
    policy.validate(&some_queue.ranks).map_err(|e| anyhow::anyhow!("{}: {e}", policy_file.display()))?;
    let path = if journal.is_dir() { journal.join("journal.sqlite") } else { journal.to_owned() };
    anyhow::ensure!(path.is_file(), "no journal at {}", path.display());
    let mut store = SqliteJournal::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let local_day = |ms: i64| hospital.tz.timestamp_millis_opt(ms).single().map(|t| t.date_naive());
    let day = match day {
        Some(d) => d,
        None => {
            let last = store.last_seq()?;
            let latest = store.events_after(last - 1, 1)?;
            latest.first().and_then(|e| local_day(e.at)).context("the journal is empty")?
        }
    };
    let (from, to) = clinicflow::domain::report::day_bounds(hospital.tz, day);
    let events = store.events_between(from, to)?;
    let mut by_queue: std::collections::BTreeMap<String, Vec<(i64, clinicflow::domain::event::Event)>> = Default::default();
    for e in events {
        by_queue.entry(e.queue.to_string()).or_default().push((e.at, e.event));
    }
    let mut out = Vec::new();
    for (q, events) in &by_queue {
        if !only.is_empty() && !only.contains(q) {
            continue;
        }
        let Some(spec) = hospital.queues.iter().find(|(id, _)| id.as_str() == q).map(|(_, s)| s) else {
            tracing::warn!(queue = %q, "the journal has a queue the config does not: skipped");
            continue;
        };
        if !events.iter().any(|(_, e)| matches!(e, clinicflow::domain::event::Event::Called { .. })) {
            continue;
        }
        out.push(clinicflow::domain::replay::replay_queue(spec, events, &policy));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"day": day, "policy": policy, "queues": out}))?);
        return Ok(());
    }
    say!("replay of {day} under {} ({} queues with calls)", policy_file.display(), out.len());
    for r in &out {
        let (a, b) = (&r.recorded, &r.replayed);
        say!("\n{}: {} called, {} in another place", r.queue, a.called, r.moved);
        say!("  {:<30} {:>10} {:>10}", "", "recorded", "replayed");
        for (name, x, y) in [
            ("mean wait, min", a.mean_wait_min, b.mean_wait_min),
            ("p90 wait, min", a.p90_wait_min, b.p90_wait_min),
            ("max wait, min", a.max_wait_min, b.max_wait_min),
        ] {
            say!("  {name:<30} {x:>10.1} {y:>10.1}");
        }
        for (class, x) in &a.mean_wait_by_class_min {
            say!("  {:<30} {x:>10.1} {:>10.1}", format!("mean wait {class}, min"), b.mean_wait_by_class_min.get(class).copied().unwrap_or(0.0));
        }
        for (name, x, y) in [
            ("overtakes (passed over)", a.overtakes, b.overtakes),
            ("most passed over (one patient)", a.max_overtakes, b.max_overtakes),
            ("missed (过号)", a.missed, b.missed),
            ("of them by the no-show rule", a.auto_missed, b.auto_missed),
        ] {
            say!("  {name:<30} {x:>10} {y:>10}");
        }
        for (code, k) in &b.refused {
            say!("  refused under the new policy: {code} x{k}");
        }
        if !r.biggest_changes.is_empty() {
            let list: Vec<String> = r.biggest_changes.iter().map(|(n, d)| format!("{n} {d:+.1}")).collect();
            say!("  biggest changes in wait (min): {}", list.join(", "));
        }
    }
    Ok(())
}

fn simulate(seed: u64, load: f64, out: &std::path::Path) -> anyhow::Result<()> {
    use clinicflow::plan::{report, sim};
    let map = clinicflow::map::demo();
    anyhow::ensure!(load > 0.0 && load <= 5.0, "--load must be in (0, 5]");
    let runs = sim::compare(&map, &sim::Scenario::default_morning().with_load(load), seed).map_err(anyhow::Error::msg)?;
    let [fixed, one, planner] = &runs;
    say!("seed {seed}: {} patients", fixed.patients);
    say!("{:<28} {:>12} {:>14} {:>12} {:>8}", "", "fixed order", "planner 1 tkt", "planner", "cut");
    for (name, f) in [
        ("mean time in hospital, min", (|o: &sim::Outcome| o.mean_min) as fn(&sim::Outcome) -> f64),
        ("p90 time in hospital, min", |o| o.p90_min),
        ("mean waiting, min", |o| o.mean_wait_min),
        ("p90 waiting, min", |o| o.p90_wait_min),
    ] {
        say!("{name:<28} {:>12.1} {:>14.1} {:>12.1} {:>7.1}%", f(fixed), f(one), f(planner), (1.0 - f(planner) / f(fixed)) * 100.0);
    }
    // The floor: the same patients with no queue anywhere. What any order could save is at most
    // the fixed order's time above it.
    let [floor_fixed, _, floor_planner] = sim::compare(&map, &sim::Scenario::default_morning().with_load(load).unlimited_rooms(), seed).map_err(anyhow::Error::msg)?;
    say!(
        "{:<28} {:>12.1} {:>14} {:>12.1}   (no queues at all: at most {:.0}% of the fixed order's mean is queueing)",
        "floor, unlimited rooms, min",
        floor_fixed.mean_min,
        "",
        floor_planner.mean_min,
        (1.0 - floor_fixed.mean_min / fixed.mean_min) * 100.0
    );
    for (i, (name, a)) in fixed.utilisation.iter().enumerate() {
        say!("utilisation {name:<16} {:>12.0}% {:>13.0}% {:>11.0}%", a * 100.0, one.utilisation[i].1 * 100.0, planner.utilisation[i].1 * 100.0);
    }
    for (i, (name, a)) in fixed.wait_by_service_min.iter().enumerate() {
        say!("waiting at {name:<17} {:>11.1}m {:>13.1}m {:>11.1}m", a, one.wait_by_service_min[i].1, planner.wait_by_service_min[i].1);
    }
    std::fs::write(out, report::html(seed, &runs))?;
    say!("report: {}", out.display());
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// `clinicflow journal verify`: `Ok(false)` when the journal is damaged (said on stderr).
/// The config and map problems, one indented line each under `header` (stderr): the same lines
/// from `config check` and from a `serve` that refuses to start.
fn print_problems(header: &str, problems: &[String]) {
    eprintln!("{header}");
    for p in problems {
        eprintln!("  {p}");
    }
}

fn backup(data: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    let m = clinicflow::storage::backup::backup(data, to)?;
    let stores: Vec<String> = m.files.iter().filter_map(|f| f.schema_version.map(|v| format!("{} (schema {v})", f.name))).collect();
    say!("backup {}: {} journal events up to {}; {}; release {}", to.display(), m.journal_events, m.journal_last_seq, stores.join(", "), m.release);
    Ok(())
}

fn restore(from: &std::path::Path, data: &std::path::Path) -> anyhow::Result<()> {
    let m = clinicflow::storage::backup::restore(from, data)?;
    say!("restored {} into {}: {} journal events up to {}, taken {} by release {}", from.display(), data.display(), m.journal_events, m.journal_last_seq, m.taken_at, m.release);
    Ok(())
}

fn journal_verify(data: &std::path::Path) -> anyhow::Result<bool> {
    use anyhow::Context as _;
    let path = data.join("journal.sqlite");
    anyhow::ensure!(path.exists(), "no journal at {}", path.display());
    clinicflow::storage::schema::check_dir(data)?;
    let mut j = clinicflow::storage::SqliteJournal::open(&path).with_context(|| format!("opening {}", path.display()))?;
    match j.verify(&path, clinicflow::storage::Walk::Whole)? {
        Ok(v) => {
            let witnessed = v.witnessed.map_or("no witness file".to_owned(), |w| format!("committed up to event {w}"));
            say!("journal {}: whole — {} events up to {}, {} from before chains; {}", path.display(), v.events, v.last_seq, v.unchained, witnessed);
            Ok(true)
        }
        Err(damage) => {
            eprintln!("journal {}: DAMAGED — {damage}", path.display());
            Ok(false)
        }
    }
}
