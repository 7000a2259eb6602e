//! The hospital config: departments, doctors, rooms, queues and their calling policy.
//!
//! `HospitalConfig` is the file format (TOML); `Hospital::from_config` checks every reference
//! and turns it into the validated form the rest of the program uses. Pure data, no IO.

use super::ids::{DepartmentId, DoctorId, PriorityClass, QueueId, RoomId};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The demo hospital config that `clinicflow serve` uses when no `--config` is given.
pub const DEMO_CONFIG: &str = include_str!("../../config/demo-hospital.toml");

/// The hospital's policy as its config file says it: places, queues and their rules, devices
/// and the rooms they serve, services, planning. How clinicflow reaches the hospital's systems
/// (databases, webhooks, tokens, payload encodings) is not here: `crate::site` takes those out
/// of the same file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HospitalConfig {
    /// Site id, used in MQTT topic prefixes and logs.
    pub site: String,
    pub name: String,
    /// IANA time zone; queue numbers restart at local midnight in this zone.
    #[serde(default = "default_tz")]
    pub timezone: String,
    /// Priority classes, most urgent first. Defaults: emergency, elderly, disabled, veteran, normal.
    #[serde(default = "default_priority_classes")]
    pub priority_classes: Vec<PriorityClassConfig>,
    #[serde(default)]
    pub departments: Vec<DepartmentConfig>,
    #[serde(default)]
    pub doctors: Vec<DoctorConfig>,
    #[serde(default)]
    pub rooms: Vec<RoomConfig>,
    pub queues: Vec<QueueConfig>,
    /// Wall displays (door and corridor screens) on MQTT.
    #[serde(default)]
    pub displays: Vec<DisplayConfig>,
    /// Caller keypads on MQTT.
    #[serde(default)]
    pub keypads: Vec<KeypadConfig>,
    /// Service points that HIS order codes map to (blood tests → the lab queue, …).
    #[serde(default)]
    pub services: Vec<ServiceConfig>,
    /// The rules the next-stop planner keeps.
    #[serde(default)]
    pub planning: PlanningConfig,
    /// How soon displays must acknowledge a call shown and spoken before an alarm.
    #[serde(default)]
    pub delivery: super::delivery::DeliveryRules,
    /// How the HIS's codes map to clinicflow's (departments → queues, doctors).
    #[serde(default)]
    pub his: HisMapping,
}

/// The HIS's own codes for departments and doctors, where they differ from clinicflow's ids
/// (`[his.departments]` `"0101" = "internal-medicine"`). A code spelled like a queue or
/// department id needs no entry.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HisMapping {
    #[serde(default)]
    pub departments: BTreeMap<String, QueueId>,
    #[serde(default)]
    pub doctors: BTreeMap<String, DoctorId>,
    /// The HIS's consulting-room codes, where they differ from clinicflow's room ids.
    #[serde(default)]
    pub rooms: BTreeMap<String, RoomId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    #[default]
    Exam,
    Payment,
    /// 回诊: back to the ordering doctor with the results.
    Return,
}

/// A service point orders are sent to.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub id: String,
    /// Order codes that mean this service (the HIS's own codes, LOINC, …).
    pub codes: Vec<String>,
    pub name: String,
    #[serde(default)]
    pub name_en: String,
    #[serde(default)]
    pub kind: ServiceKind,
    /// The queue a ticket is taken in; none for a desk without tickets (a cashier).
    #[serde(default)]
    pub queue: Option<QueueId>,
    /// Where it is on the map (`department:lab`, `place:cashier-a`); by default the queue's
    /// department.
    #[serde(default)]
    pub place: Option<String>,
    /// Must be done fasting (before breakfast-dependent services).
    #[serde(default)]
    pub fasting: bool,
    /// Needs the patient to have eaten.
    #[serde(default)]
    pub after_meal: bool,
    /// Must be paid before it is done (where the hospital requires it).
    #[serde(default = "yes")]
    pub needs_payment: bool,
    /// Opening hours, local time, `HH:MM-HH:MM`; always open when absent.
    #[serde(default)]
    pub open: Option<String>,
    /// Expected minutes per patient when the service has no queue to learn it from.
    #[serde(default = "default_service_minutes")]
    pub minutes: f64,
    /// Minutes until the result is ready (blood tests, reports); the return visit waits for it.
    #[serde(default)]
    pub result_minutes: f64,
}

fn yes() -> bool {
    true
}

fn default_service_minutes() -> f64 {
    3.0
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlanningConfig {
    #[serde(default = "yes")]
    pub payment_first: bool,
    #[serde(default = "yes")]
    pub fasting_first: bool,
    #[serde(default = "yes")]
    pub return_last: bool,
}

impl Default for PlanningConfig {
    fn default() -> Self {
        PlanningConfig { payment_first: true, fasting_first: true, return_last: true }
    }
}

/// `HH:MM-HH:MM` → seconds since midnight.
pub fn parse_hours(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once('-')?;
    let t = |x: &str| {
        let (h, m) = x.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some((h * 60 + m) * 60)
    };
    let (a, b) = (t(a)?, t(b)?);
    (a < b).then_some((a, b))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DisplayKind {
    /// Beside one room's door: its current patient and the next three.
    Door,
    /// In a corridor: the current calls of several rooms and their next numbers.
    Corridor,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DisplayConfig {
    pub id: String,
    pub kind: DisplayKind,
    pub rooms: Vec<RoomId>,
    /// Where it hangs, for staff ("1F corridor east").
    #[serde(default)]
    pub location: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeypadConfig {
    pub id: String,
    /// Rooms this keypad may call for.
    pub rooms: Vec<RoomId>,
}

fn default_tz() -> String {
    "Asia/Shanghai".to_owned()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PriorityClassConfig {
    pub id: PriorityClass,
    /// Lower is called first. Classes may share a rank (elderly, disabled and veterans usually do).
    pub rank: u8,
    #[serde(default)]
    pub label: String,
    /// Called at once whatever the fairness rules say (emergencies); a rank is urgent or not.
    #[serde(default)]
    pub urgent: bool,
}

fn default_priority_classes() -> Vec<PriorityClassConfig> {
    [("emergency", 0, "急诊"), ("elderly", 1, "老年人"), ("disabled", 1, "残疾人"), ("veteran", 1, "军人"), ("normal", 2, "普通")]
        .into_iter()
        .map(|(id, rank, label)| PriorityClassConfig {
            id: PriorityClass::parse(id).expect("static class ids are valid"),
            rank,
            label: label.to_owned(),
            urgent: id == "emergency",
        })
        .collect()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DepartmentConfig {
    pub id: DepartmentId,
    pub name: String,
    #[serde(default)]
    pub name_en: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DoctorConfig {
    pub id: DoctorId,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoomConfig {
    pub id: RoomId,
    /// What a display says: "3 诊室".
    pub name: String,
    #[serde(default)]
    pub name_en: String,
    /// The doctor sitting in this room today, if any. Doctor-bound tickets are called only here.
    #[serde(default)]
    pub doctor: Option<DoctorId>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub id: QueueId,
    pub name: String,
    #[serde(default)]
    pub name_en: String,
    pub department: DepartmentId,
    /// Number prefix, e.g. `A` gives `A001`.
    pub prefix: String,
    /// Rooms that call from this queue. Any of them may call a pooled ticket.
    pub rooms: Vec<RoomId>,
    #[serde(default)]
    pub policy: QueuePolicy,
}

/// What to do with a patient who checks in after their appointment slot has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum LateArrival {
    /// Queue as a walk-in, by check-in time.
    WalkIn,
    /// Insert after this many waiting patients.
    InsertAfter { n: u32 },
}

/// Calling rules of one queue. Every field has a default, so a config names only what differs.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueuePolicy {
    /// A missed (过号) patient who checks in again goes after this many waiting patients.
    pub missed_reinsert_after: u32,
    /// A patient returning with results (回诊) goes after this many waiting patients of the same doctor.
    pub return_insert_after: u32,
    /// "You are next" pre-call (二次候诊) when this many or fewer patients are ahead. 0 turns it off.
    pub precall_position: u32,
    pub late_arrival: LateArrival,
    /// Service time assumed before any has been measured, in seconds.
    pub default_service_secs: u32,
    /// Weight of the newest measured service time in the moving average (0 < alpha <= 1).
    pub ewma_alpha: f64,
    /// How priority patients are interleaved with the others, and what keeps anyone from
    /// waiting forever.
    pub fairness: Fairness,
    /// Recall limits and the no-show (过号) rules.
    pub calls: CallRules,
    /// What happens to tickets still open when the day ends (at the first command of the next).
    pub day_end: DayEnd,
}

/// Day-end rule for tickets still open at local midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DayEnd {
    /// They leave the live state; numbers restart (the journal keeps them).
    #[default]
    Close,
    /// Waiting tickets carry over, first in line, with their numbers; the day's new numbers
    /// start after the highest carried one.
    Carry,
    /// Every ticket not yet seen (booked, waiting, called, missed) is cancelled, so phones and
    /// webhooks are told.
    Cancel,
}

/// Fair, explainable priority. Every rule is off unless set, which gives strict priority by rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Fairness {
    /// At most this many priority patients are called in a row while a normal one waits
    /// (2 = "two priority patients for every normal one"). Urgent classes are exempt.
    pub interleave: Option<u32>,
    /// Every this many seconds of waiting moves a ticket up one rank (never into an urgent rank).
    pub ageing_secs: Option<u32>,
    /// A waiting ticket is passed over by at most this many later arrivals the same room could
    /// have called instead; then it is called next. Urgent calls do not count.
    pub max_overtakes: Option<u32>,
}

impl Fairness {
    /// True when any rule is on (otherwise the line's plain order is the calling order).
    pub fn active(&self) -> bool {
        self.interleave.is_some() || self.ageing_secs.is_some() || self.max_overtakes.is_some()
    }
}

/// What happens to a missed patient who checks in again after the return window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LateReturn {
    /// Queue again by the time of the new check-in.
    #[default]
    BackOfLine,
    /// Refuse the check-in: the patient registers again.
    Refuse,
}

/// Recall limits and no-show (过号) rules of one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallRules {
    /// Recalls allowed after the first call; unlimited when absent.
    pub max_recalls: Option<u32>,
    /// Seconds that must pass between two calls of the same ticket.
    pub min_recall_interval_secs: u32,
    /// A ticket called this many times (the first call and its recalls) and still not seen
    /// `grace_secs` after the last call is marked missed (过号) by the server. Never when absent.
    pub auto_miss_after_calls: Option<u32>,
    /// Seconds after the last call before the automatic miss.
    pub grace_secs: u32,
    /// A missed patient who checks in again within this many seconds of the miss goes back after
    /// `missed_reinsert_after` patients; later, `late_return` applies. Always reinserted when absent.
    pub return_window_secs: Option<u32>,
    pub late_return: LateReturn,
    /// After this many misses a check-in is refused (the patient registers again). Unlimited when absent.
    pub max_misses: Option<u32>,
}

impl Default for CallRules {
    fn default() -> Self {
        Self {
            max_recalls: None,
            min_recall_interval_secs: 0,
            auto_miss_after_calls: None,
            grace_secs: 120,
            return_window_secs: None,
            late_return: LateReturn::BackOfLine,
            max_misses: None,
        }
    }
}

/// A policy value that cannot work, naming the field (`fairness.interleave`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PolicyError {
    pub field: String,
    pub message: String,
}

impl QueuePolicy {
    /// Check the policy against the hospital's priority classes (`rank` per class, `normal`'s
    /// rank, the urgent ranks). A policy that contradicts itself is refused with the field named.
    pub fn validate(&self, ranks: &ClassRanks) -> Result<(), PolicyError> {
        let bad = |field: &str, message: &str| Err(PolicyError { field: field.to_owned(), message: message.to_owned() });
        if !(self.ewma_alpha > 0.0 && self.ewma_alpha <= 1.0) {
            return bad("ewma_alpha", "must be in (0, 1]");
        }
        if self.default_service_secs == 0 {
            return bad("default_service_secs", "must be positive");
        }
        let f = &self.fairness;
        if let Some(n) = f.interleave {
            if n == 0 {
                return bad("fairness.interleave", "0 would never call a priority patient while a normal one waits; remove the priority classes instead");
            }
            if !ranks.has_priority() {
                return bad("fairness.interleave", "there is no priority class (a non-urgent class ranked before `normal`) to interleave");
            }
        }
        if f.ageing_secs == Some(0) {
            return bad("fairness.ageing_secs", "must be at least 1 second");
        }
        if f.ageing_secs.is_some() && !ranks.has_priority() {
            return bad("fairness.ageing_secs", "there is no rank to move up to (no non-urgent class ranked before `normal`)");
        }
        let c = &self.calls;
        if c.auto_miss_after_calls == Some(0) {
            return bad("calls.auto_miss_after_calls", "must be at least 1 (the first call)");
        }
        if let (Some(auto), Some(max)) = (c.auto_miss_after_calls, c.max_recalls) {
            if auto > max + 1 {
                return bad("calls.auto_miss_after_calls", "is more than the calls max_recalls allows (1 + max_recalls): the automatic miss could never happen");
            }
        }
        if c.max_misses == Some(0) {
            return bad("calls.max_misses", "must be at least 1");
        }
        if c.return_window_secs == Some(0) {
            return bad("calls.return_window_secs", "must be at least 1 second; leave it out to always reinsert");
        }
        Ok(())
    }
}

/// The ranks of the hospital's priority classes, as a queue policy needs them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClassRanks {
    /// Rank of the `normal` class: ranks below it are priority.
    pub normal: u8,
    /// Ranks of urgent classes (called first, exempt from interleave and overtake counts).
    pub urgent: BTreeSet<u8>,
    /// Every class's rank.
    pub all: BTreeSet<u8>,
}

impl ClassRanks {
    pub fn is_priority(&self, rank: u8) -> bool {
        rank < self.normal && !self.urgent.contains(&rank)
    }
    pub fn is_urgent(&self, rank: u8) -> bool {
        self.urgent.contains(&rank)
    }
    /// The best rank ageing may reach: the best non-urgent class.
    pub fn best_aged(&self) -> u8 {
        self.all.iter().copied().find(|r| !self.is_urgent(*r)).unwrap_or(self.normal)
    }
    fn has_priority(&self) -> bool {
        self.all.iter().any(|r| self.is_priority(*r))
    }
}

impl Default for QueuePolicy {
    fn default() -> Self {
        Self {
            missed_reinsert_after: 3,
            return_insert_after: 2,
            precall_position: 1,
            late_arrival: LateArrival::WalkIn,
            default_service_secs: 300,
            ewma_alpha: 0.2,
            fairness: Fairness::default(),
            calls: CallRules::default(),
            day_end: DayEnd::Close,
        }
    }
}

/// A config reference that does not resolve, or a value out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config: {0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    /// Every problem found, one per line (the first on the error's own line when it is alone).
    pub fn many(problems: Vec<String>) -> Self {
        match problems.len() {
            1 => ConfigError(problems.into_iter().next().unwrap_or_default()),
            n => ConfigError(format!("{n} problems:\n{}", problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))),
        }
    }

    /// The problems, one per entry.
    pub fn problems(&self) -> Vec<&str> {
        match self.0.split_once(" problems:\n") {
            Some((n, rest)) if n.parse::<usize>().is_ok() => rest.lines().map(|l| l.trim_start().trim_start_matches("- ")).collect(),
            _ => vec![self.0.as_str()],
        }
    }
}

/// A room as the core sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Room {
    pub id: RoomId,
    pub name: String,
    pub name_en: String,
    pub doctor: Option<DoctorId>,
}

/// One queue's validated definition: everything its core state machine needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueSpec {
    pub id: QueueId,
    pub name: String,
    pub name_en: String,
    pub department: DepartmentId,
    pub prefix: String,
    pub rooms: BTreeMap<RoomId, Room>,
    pub policy: QueuePolicy,
    #[serde(skip)]
    pub tz: Tz,
    /// Rank of each priority class.
    pub classes: BTreeMap<PriorityClass, u8>,
    pub ranks: ClassRanks,
}

impl QueueSpec {
    pub fn rank_of(&self, class: &PriorityClass) -> Option<u8> {
        self.classes.get(class).copied()
    }
}

/// The validated hospital: what the server runs on.
#[derive(Debug, Clone)]
pub struct Hospital {
    pub site: String,
    pub name: String,
    pub tz: Tz,
    pub departments: Vec<DepartmentConfig>,
    pub doctors: Vec<DoctorConfig>,
    pub queues: BTreeMap<QueueId, Arc<QueueSpec>>,
    /// Which queues each room calls from (a room may serve several).
    pub room_queues: BTreeMap<RoomId, Vec<QueueId>>,
    pub displays: Vec<DisplayConfig>,
    pub keypads: Vec<KeypadConfig>,
    pub services: Vec<ServiceConfig>,
    pub planning: PlanningConfig,
    pub delivery: super::delivery::DeliveryRules,
    pub his: HisMapping,
}

/// Device ids appear in MQTT topics: no `/`, `+`, `#` or spaces.
pub(crate) fn valid_device_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl Hospital {
    /// The service an order code maps to.
    pub fn service_for_code(&self, code: &str) -> Option<&ServiceConfig> {
        self.services.iter().find(|s| s.codes.iter().any(|c| c == code))
    }

    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let cfg: HospitalConfig = toml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        Self::from_config(cfg)
    }

    /// A room by id, from whichever queue lists it.
    pub fn room(&self, id: &RoomId) -> Option<&Room> {
        self.room_queues.get(id)?.first().and_then(|q| self.queues.get(q)).and_then(|q| q.rooms.get(id))
    }


    /// The core's hospital from its config, or every problem found in it (one per line).
    pub fn from_config(cfg: HospitalConfig) -> Result<Self, ConfigError> {
        let mut problems: Vec<String> = Vec::new();
        let tz: Tz = cfg.timezone.parse().unwrap_or_else(|_| {
            problems.push(format!("unknown time zone {:?}", cfg.timezone));
            Tz::UTC
        });
        if cfg.priority_classes.is_empty() {
            problems.push("priority_classes is empty".into());
        }
        let mut classes = BTreeMap::new();
        for c in &cfg.priority_classes {
            if classes.insert(c.id.clone(), c.rank).is_some() {
                problems.push(format!("priority class {} defined twice", c.id));
            }
        }
        let normal = match classes.get(&PriorityClass::parse("normal").expect("valid")) {
            Some(&n) => n,
            None => {
                if !cfg.priority_classes.is_empty() {
                    problems.push("priority_classes must include `normal`".into());
                }
                0
            }
        };
        let urgent: BTreeSet<u8> = cfg.priority_classes.iter().filter(|c| c.urgent).map(|c| c.rank).collect();
        if let Some(c) = cfg.priority_classes.iter().find(|c| !c.urgent && urgent.contains(&c.rank)) {
            problems.push(format!("priority class {} shares rank {} with an urgent class but is not urgent", c.id, c.rank));
        }
        if urgent.contains(&normal) && classes.contains_key(&PriorityClass::parse("normal").expect("valid")) {
            problems.push("priority class normal cannot be urgent".into());
        }
        let ranks = ClassRanks { normal, urgent, all: classes.values().copied().collect() };
        let mut departments = BTreeSet::new();
        for d in &cfg.departments {
            if !departments.insert(d.id.clone()) {
                problems.push(format!("department {} defined twice", d.id));
            }
        }
        let mut doctors = BTreeSet::new();
        for d in &cfg.doctors {
            if !doctors.insert(d.id.clone()) {
                problems.push(format!("doctor {} defined twice", d.id));
            }
        }
        let mut rooms = BTreeMap::new();
        for r in &cfg.rooms {
            if let Some(d) = &r.doctor {
                if !doctors.contains(d) {
                    problems.push(format!("room {} names unknown doctor {}", r.id, d));
                }
            }
            let room = Room { id: r.id.clone(), name: r.name.clone(), name_en: r.name_en.clone(), doctor: r.doctor.clone() };
            if rooms.insert(r.id.clone(), room).is_some() {
                problems.push(format!("room {} defined twice", r.id));
            }
        }
        let mut queues = BTreeMap::new();
        let mut room_queues: BTreeMap<RoomId, Vec<QueueId>> = BTreeMap::new();
        let mut prefixes = BTreeSet::new();
        let no_queues = cfg.queues.is_empty();
        for q in cfg.queues {
            if !departments.contains(&q.department) {
                problems.push(format!("queue {} names unknown department {}", q.id, q.department));
            }
            if q.prefix.is_empty() || q.prefix.len() > 4 || !q.prefix.bytes().all(|b| b.is_ascii_uppercase()) {
                problems.push(format!("queue {}: prefix must be 1-4 capital letters", q.id));
            } else if !prefixes.insert(q.prefix.clone()) {
                problems.push(format!("queue {}: prefix {} is used by another queue", q.id, q.prefix));
            }
            if q.rooms.is_empty() {
                problems.push(format!("queue {} has no rooms", q.id));
            }
            if let Err(e) = q.policy.validate(&ranks) {
                problems.push(format!("queue {}: policy.{e}", q.id));
            }
            let mut qrooms = BTreeMap::new();
            for r in &q.rooms {
                let Some(room) = rooms.get(r) else {
                    problems.push(format!("queue {} names unknown room {}", q.id, r));
                    continue;
                };
                qrooms.insert(r.clone(), room.clone());
                room_queues.entry(r.clone()).or_default().push(q.id.clone());
            }
            let spec = QueueSpec {
                id: q.id.clone(),
                name: q.name,
                name_en: q.name_en,
                department: q.department,
                prefix: q.prefix,
                rooms: qrooms,
                policy: q.policy,
                tz,
                classes: classes.clone(),
                ranks: ranks.clone(),
            };
            if queues.insert(q.id.clone(), Arc::new(spec)).is_some() {
                problems.push(format!("queue {} defined twice", q.id));
            }
        }
        if no_queues {
            problems.push("no queues".into());
        }
        let mut device_ids = BTreeSet::new();
        for (id, device_rooms) in cfg.displays.iter().map(|d| (&d.id, &d.rooms)).chain(cfg.keypads.iter().map(|k| (&k.id, &k.rooms))) {
            if !valid_device_id(id) {
                problems.push(format!("device id {id:?}: 1-64 letters, digits, '-', '_' or '.'"));
            }
            if !device_ids.insert(id.clone()) {
                problems.push(format!("device {id} defined twice"));
            }
            if device_rooms.is_empty() {
                problems.push(format!("device {id} has no rooms"));
            }
            for r in device_rooms.iter().filter(|r| !room_queues.contains_key(*r)) {
                problems.push(match rooms.contains_key(r) {
                    true => format!("device {id} names room {r}, which no queue calls from"),
                    false => format!("device {id} names unknown room {r}"),
                });
            }
        }
        let (mut service_ids, mut codes) = (BTreeSet::new(), BTreeSet::new());
        for sv in &cfg.services {
            if sv.id.is_empty() || !service_ids.insert(sv.id.clone()) {
                problems.push(format!("service {:?} is empty or defined twice", sv.id));
            }
            if sv.codes.is_empty() {
                problems.push(format!("service {} has no order codes", sv.id));
            }
            for c in sv.codes.iter().filter(|c| !codes.insert((*c).clone())) {
                problems.push(format!("order code {c} is given to two services"));
            }
            if let Some(q) = &sv.queue {
                if !queues.contains_key(q) {
                    problems.push(format!("service {} names unknown queue {q}", sv.id));
                }
            }
            if sv.queue.is_none() && sv.place.is_none() {
                problems.push(format!("service {} needs a queue or a place", sv.id));
            }
            if sv.fasting && sv.after_meal {
                problems.push(format!("service {} cannot be both fasting and after a meal", sv.id));
            }
            if let Some(h) = &sv.open {
                if parse_hours(h).is_none() {
                    problems.push(format!("service {}: open must be HH:MM-HH:MM, not {h:?}", sv.id));
                }
            }
            if !(0.0..=1440.0).contains(&sv.result_minutes) {
                problems.push(format!("service {}: result_minutes must be between 0 and 1440", sv.id));
            }
            if !(sv.minutes > 0.0 && sv.minutes < 600.0) {
                problems.push(format!("service {}: minutes must be between 0 and 600", sv.id));
            }
        }
        let d = &cfg.delivery;
        if d.shown_within_secs == 0 || d.spoken_within_secs < d.shown_within_secs {
            problems.push("delivery: shown_within_secs must be at least 1 and spoken_within_secs at least shown_within_secs".into());
        }
        for (code, q) in &cfg.his.departments {
            if !queues.contains_key(q) {
                problems.push(format!("his.departments: {code:?} maps to unknown queue {q}"));
            }
        }
        for (code, d) in &cfg.his.doctors {
            if !cfg.doctors.iter().any(|x| &x.id == d) {
                problems.push(format!("his.doctors: {code:?} maps to unknown doctor {d}"));
            }
        }
        for (code, r) in &cfg.his.rooms {
            if !room_queues.contains_key(r) {
                problems.push(format!("his.rooms: {code:?} maps to unknown room {r}"));
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError::many(problems));
        }
        Ok(Self {
            his: cfg.his,
            site: cfg.site,
            name: cfg.name,
            tz,
            departments: cfg.departments,
            doctors: cfg.doctors,
            queues,
            room_queues,
            displays: cfg.displays,
            keypads: cfg.keypads,
            services: cfg.services,
            planning: cfg.planning,
            delivery: cfg.delivery,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_is_valid_and_has_ten_clinic_queues() {
        let h = Hospital::demo();
        assert!(h.queues.len() >= 10, "{} queues", h.queues.len());
        assert_eq!(h.tz, chrono_tz::Asia::Shanghai);
    }
}
