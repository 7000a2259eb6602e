//! The hospital file's infrastructure: how clinicflow reaches the hospital's systems and who may
//! reach clinicflow — HIS databases to poll (`[[his.poll]]`), outbound webhooks (`[[webhooks]]`),
//! staff and device tokens (`[[tokens]]`), the payload encoding of each display
//! (`[[displays]] encoding`). The hospital's policy — places, queues, rules, devices and their
//! rooms — is `domain::config`'s: the core runs on it and never sees a URL, a secret or an
//! encoding. One file holds both; [`load`] reads it into the two.

use crate::domain::config::{ConfigError, Hospital, HospitalConfig, DEMO_CONFIG};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What the hospital file says about the systems around clinicflow.
#[derive(Clone, Default)]
pub struct Site {
    /// Bearer tokens for staff and devices, beside the admin token from `CLINICFLOW_STAFF_TOKEN`.
    pub tokens: Vec<TokenConfig>,
    /// Outbound notification hooks (a WeChat service account bridge, an SMS gateway).
    pub webhooks: Vec<WebhookConfig>,
    /// HIS database views or intermediate tables of today's registrations, polled read-only.
    pub his_poll: Vec<HisPoll>,
    /// Displays whose payloads are not UTF-8, by display id.
    pub encodings: BTreeMap<String, PayloadEncoding>,
}

/// Never the secrets it holds (tokens, webhook keys, database URLs) in a log line.
impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("tokens", &self.tokens.iter().map(|t| (&t.name, t.role)).collect::<Vec<_>>())
            .field("webhooks", &self.webhooks.iter().map(|w| &w.id).collect::<Vec<_>>())
            .field("his_poll", &self.his_poll.iter().map(|p| &p.name).collect::<Vec<_>>())
            .field("encodings", &self.encodings)
            .finish()
    }
}

/// Read a hospital file: the policy the core runs on, and the site around it.
pub fn load(text: &str) -> Result<(Hospital, Site), ConfigError> {
    let mut file: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError(e.to_string()))?;
    let tokens = take(&mut file, "tokens")?;
    let webhooks = take(&mut file, "webhooks")?;
    let his_poll = match file.get_mut("his").and_then(toml::Value::as_table_mut) {
        Some(his) => take(his, "poll").map_err(|e| ConfigError(format!("his.{}", e.0)))?,
        None => Vec::new(),
    };
    let mut encodings = BTreeMap::new();
    for d in file.get_mut("displays").and_then(toml::Value::as_array_mut).into_iter().flatten().filter_map(toml::Value::as_table_mut) {
        let id = d.get("id").and_then(toml::Value::as_str).unwrap_or_default().to_owned();
        if let Some(e) = d.remove("encoding") {
            let e: PayloadEncoding = e.try_into().map_err(|e| ConfigError(format!("display {id}: encoding: {e}")))?;
            encodings.insert(id, e);
        }
    }
    let policy: HospitalConfig = toml::Value::Table(file).try_into().map_err(|e: toml::de::Error| ConfigError(e.to_string()))?;
    let site = Site { tokens, webhooks, his_poll, encodings };
    // Every problem of both parts at once, so one edit fixes them all.
    let hospital = Hospital::from_config(policy);
    let mut problems: Vec<String> = hospital.as_ref().err().map(|e| e.problems().into_iter().map(str::to_owned).collect()).unwrap_or_default();
    problems.extend(site.problems());
    match hospital {
        Ok(h) if problems.is_empty() => Ok((h, site)),
        _ => Err(ConfigError::many(problems)),
    }
}

/// The demo hospital and its site (no databases, hooks or extra tokens).
pub fn demo() -> (Hospital, Site) {
    load(DEMO_CONFIG).expect("the embedded demo config is valid (tested)")
}

impl Hospital {
    /// The demo hospital's policy (`config/demo-hospital.toml`).
    pub fn demo() -> Self {
        demo().0
    }
}

/// Take `key` out of `table` as a `T` (its default when absent).
fn take<T: DeserializeOwned + Default>(table: &mut toml::Table, key: &str) -> Result<T, ConfigError> {
    match table.remove(key) {
        None => Ok(T::default()),
        Some(v) => v.try_into().map_err(|e: toml::de::Error| ConfigError(format!("{key}: {}", e.message()))),
    }
}

impl Site {
    /// The payload encoding of a display.
    pub fn encoding(&self, display: &str) -> PayloadEncoding {
        self.encodings.get(display).copied().unwrap_or_default()
    }

    /// Every problem of the site's part, one per entry.
    fn problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = Vec::new();
        let mut hook_ids = BTreeSet::new();
        for w in &self.webhooks {
            if w.id.is_empty() || !w.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                problems.push(format!("webhook id {:?}: letters, digits, '-' and '_' only", w.id));
            }
            if !hook_ids.insert(w.id.clone()) {
                problems.push(format!("webhook {} defined twice", w.id));
            }
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                problems.push(format!("webhook {}: url must start with http:// or https://", w.id));
            }
            if w.secret.len() < 16 {
                problems.push(format!("webhook {}: secret must be at least 16 characters", w.id));
            }
            if w.max_attempts == 0 {
                problems.push(format!("webhook {}: max_attempts must be at least 1", w.id));
            }
        }
        for t in &self.tokens {
            if t.token.len() < 16 || t.token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                problems.push(format!("token of {} must be at least 16 printable characters", t.name));
            }
        }
        let mut poll_names = std::collections::BTreeSet::new();
        for p in &self.his_poll {
            if !crate::domain::config::valid_device_id(&p.name) || p.name == "hl7" || p.name == "soap" || !poll_names.insert(p.name.clone()) {
                problems.push(format!("his.poll {:?}: the name must be unique, not hl7 or soap, and letters, digits, - _ . only", p.name));
            }
            if p.url.is_some() == p.url_env.is_some() {
                problems.push(format!("his.poll {}: give exactly one of url and url_env", p.name));
            }
            if let Some(u) = &p.url {
                if !["postgres://", "postgresql://", "mysql://", "mariadb://"].iter().any(|s| u.starts_with(s)) {
                    problems.push(format!("his.poll {}: url must start with postgres://, postgresql://, mysql:// or mariadb://", p.name));
                }
            }
            if !p.query.contains("{cursor}") {
                problems.push(format!("his.poll {}: query must use {{cursor}} (rows changed since the last one read)", p.name));
            }
            if p.snapshot.contains("{cursor}") {
                problems.push(format!("his.poll {}: snapshot reads all of today's registrations; it takes no {{cursor}}", p.name));
            }
            if p.interval_ms < 100 || p.reconcile_secs == 0 || p.timeout_secs == 0 {
                problems.push(format!("his.poll {}: interval_ms at least 100, reconcile_secs and timeout_secs at least 1", p.name));
            }
        }
        problems
    }
}

/// One HIS database to poll (`[[his.poll]]`): see `src/his/table.rs` for the columns the queries
/// return and the README for a worked example.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HisPoll {
    /// The adapter's name: in status, metrics, and on each ticket's HIS reference.
    pub name: String,
    /// `postgres://user:password@host:5432/db` or `mysql://…` (MariaDB too). Never shown.
    #[serde(default, skip_serializing)]
    pub url: Option<String>,
    /// The environment variable holding the URL instead (keeps the password out of the file).
    #[serde(default)]
    pub url_env: Option<String>,
    /// The incremental query: rows changed since `{cursor}` (the greatest `version` applied).
    pub query: String,
    /// The whole of today's registrations, for the reconciliation pass (and the first read).
    pub snapshot: String,
    #[serde(default = "HisPoll::default_interval_ms")]
    pub interval_ms: u64,
    #[serde(default = "HisPoll::default_reconcile_secs")]
    pub reconcile_secs: u64,
    /// A query (connection included) taking longer is abandoned and retried.
    #[serde(default = "HisPoll::default_timeout_secs")]
    pub timeout_secs: u64,
}

impl HisPoll {
    fn default_interval_ms() -> u64 {
        5000
    }
    fn default_reconcile_secs() -> u64 {
        60
    }
    fn default_timeout_secs() -> u64 {
        30
    }

    /// The connection URL: `url`, or the variable `url_env` names.
    pub fn resolve_url(&self) -> Result<String, String> {
        match (&self.url, &self.url_env) {
            (Some(u), None) => Ok(u.clone()),
            (None, Some(var)) => std::env::var(var).map_err(|_| format!("his.poll {}: the environment variable {var} (url_env) is not set", self.name)),
            _ => Err(format!("his.poll {}: give exactly one of url and url_env", self.name)),
        }
    }
}


#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadEncoding {
    #[default]
    #[serde(rename = "utf-8")]
    Utf8,
    /// GB2312 as encoded by GBK (its superset); characters outside it become `&#NNNN;`.
    Gb2312,
}


/// One outbound webhook: every matching ticket event is POSTed here, HMAC-signed, retried with
/// backoff, at least once, with an idempotency id.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Names the hook in logs, metrics and the idempotency ids.
    pub id: String,
    /// `http://` or `https://` URL.
    pub url: String,
    /// HMAC-SHA256 key, at least 16 characters.
    pub secret: String,
    /// Event kinds to send (`called`, `recalled`, `you_are_next`, `missed`, `completed`,
    /// `transferred`, `issued`, `checked_in`, `started`, `cancelled`, `returned`); empty = all.
    #[serde(default)]
    pub events: Vec<String>,
    /// Attempts per event before it is given up (counted in metrics, logged).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First retry delay; it doubles per attempt up to `retry_max_ms`.
    #[serde(default = "default_retry_initial")]
    pub retry_initial_ms: u64,
    #[serde(default = "default_retry_max")]
    pub retry_max_ms: u64,
}

fn default_retry_initial() -> u64 {
    1_000
}
fn default_retry_max() -> u64 {
    60_000
}

fn default_attempts() -> u32 {
    12
}

/// What a bearer token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    Admin,
    /// Issue, check in, call, recall, skip, complete, transfer, return, pause.
    Nurse,
    /// A caller keypad or kiosk: issue, check in, call, recall, skip, complete, pause.
    Device,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it (logs only).
    pub name: String,
    pub role: Role,
    /// At least 16 characters.
    pub token: String,
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_file_splits_into_policy_and_site() {
        let (h, site) = demo();
        assert!(h.queues.len() >= 10);
        assert_eq!(site.encoding("door-c-101"), PayloadEncoding::Utf8);
        assert!(site.encodings.values().any(|e| *e == PayloadEncoding::Gb2312), "the demo has a GB2312 display");
        assert!(site.his_poll.is_empty() && site.webhooks.is_empty());
    }

    #[test]
    fn broken_references_are_named() {
        let bad = DEMO_CONFIG.replacen("rooms = [\"c-101\"", "rooms = [\"nope\"", 1);
        let e = load(&bad).unwrap_err();
        assert!(e.0.contains("unknown room nope"), "{e}");
        assert!(load("site = 1").is_err());
        assert!(load("site = [").is_err(), "not TOML");
        let tz = DEMO_CONFIG.replacen("Asia/Shanghai", "Mars/Olympus", 1);
        assert!(load(&tz).unwrap_err().0.contains("time zone"));
        assert!(load(&format!("{DEMO_CONFIG}\nfrobnicate = 1\n")).unwrap_err().0.contains("unknown field"), "unknown keys are refused");
        let enc = DEMO_CONFIG.replacen("encoding = \"gb2312\"", "encoding = \"latin1\"", 1);
        assert!(load(&enc).unwrap_err().0.contains("encoding"));
    }

    #[test]
    fn tokens_and_webhooks_are_checked() {
        let token = |t: &str| format!("{DEMO_CONFIG}\n[[tokens]]\nname = \"desk\"\nrole = \"nurse\"\ntoken = \"{t}\"\n");
        assert_eq!(load(&token("0123456789abcdef")).unwrap().1.tokens[0].role, Role::Nurse);
        assert!(load(&token("short")).unwrap_err().0.contains("at least 16"));
        let hook = |url: &str| format!("{DEMO_CONFIG}\n[[webhooks]]\nid = \"wx\"\nurl = \"{url}\"\nsecret = \"0123456789abcdef\"\n");
        assert_eq!(load(&hook("https://bridge.local/hook")).unwrap().1.webhooks[0].max_attempts, 12);
        assert!(load(&hook("ftp://x")).unwrap_err().0.contains("http://"));
    }

    #[test]
    fn a_his_poller_is_checked_at_start_and_its_url_never_shown() {
        let poll = |body: &str| format!("{DEMO_CONFIG}\n[[his.poll]]\nname = \"his-db\"\n{body}\n");
        let good = "url = \"postgres://ro:secret@db/his\"\nquery = \"SELECT * FROM v WHERE version >= {cursor}\"\nsnapshot = \"SELECT * FROM v\"";
        let (h, site) = load(&poll(good)).unwrap();
        assert_eq!((site.his_poll[0].interval_ms, site.his_poll[0].reconcile_secs), (5000, 60));
        assert!(!serde_json::to_string(&site.his_poll).unwrap().contains("secret"), "the password is never serialized");
        assert!(h.his.departments.is_empty(), "the HIS code mapping stays with the policy");
        for (bad, says) in [
            (good.replace("{cursor}", "1"), "{cursor}"),
            (good.replace("postgres://", "oracle://"), "url must start"),
            (good.replace("url = ", "url_env = \"X\"\nurl = "), "exactly one"),
            (format!("{good}\ninterval_ms = 10"), "interval_ms"),
            (format!("{good}\nfrequency = 1"), "unknown field"),
        ] {
            let e = load(&poll(&bad)).unwrap_err();
            assert!(e.0.contains(says), "{bad}: {e}");
        }
    }
}
