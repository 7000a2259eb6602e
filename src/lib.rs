//! clinicflow: the real-time server of a hospital outpatient floor.
//!
//! # Layout
//! - [`domain`]: the pure core. Ids, the hospital config, commands, events and the queue state
//!   machine (`decide(cmd, now) -> events`, `apply(event)`). Deterministic; time is passed in.
//! - [`storage`]: the journal. A [`storage::JournalStore`] trait (SQLite now, PostgreSQL later)
//!   and the group-commit writer thread every actor appends through.
//! - [`actors`]: `ClinicQueue`, one actix actor per queue, the only writer of that queue's state;
//!   [`actors::Floor`] holds the handles and routes ticket commands to the queue that owns them;
//!   the patient sessions, the `Guide` (next stop) and the `DisplayFeed` (what every wall display
//!   shows and says, for MQTT and browser displays alike).
//! - [`map`]: the pure indoor map core: GeoJSON loading and checks, the petgraph router,
//!   turn-by-turn text, SVG.
//! - [`plan`]: the pure next-stop planner and `clinicflow simulate`.
//! - [`position`]: the pure BLE positioning core: walkable space, radio map, the map-constrained
//!   tracker, `clinicflow position calibrate|eval`.
//! - [`edges`]: HTTP (actix-web), WebSocket, MQTT and the pages (assets from `web/`, embedded):
//!   parse, call a handle, map the error. No business rules.
//! - [`his`]: the pure HIS adapter core: HIS facts (registration, 退号, check-in) from HL7 v2
//!   messages, the queue commands that apply them idempotently, ACK/NAK.
//! - [`clock`]: the server's wall clock, the system's or pinned at an instant (`--clock`);
//!   the only place the time of day is read.
//! - [`configuration`]: typed settings for `serve` (flags and environment).
//! - [`startup`]: wires storage → actors → edges; binds the listener it is given (port 0 in tests).
//! - [`telemetry`]: tracing subscriber and Prometheus metrics.
//! - [`devices`]: `clinicflow devices`, simulated displays and keypads over MQTT.

pub mod actors;
pub mod clock;
pub mod configuration;
pub mod devices;
pub mod domain;
pub mod edges;
pub mod his;
pub mod map;
pub mod plan;
pub mod position;
pub mod site;
pub mod startup;
pub mod storage;
pub mod telemetry;
