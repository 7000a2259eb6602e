//! Start-up on a big journal: how long `clinicflow serve` takes to be listening, and its memory
//! then, on a journal of 1,000,000 events (`STARTUP_EVENTS`) — the walk of the hash chain and
//! the replay of the current day.
//!
//! Two journals, made by the real core (issue, call, complete across the 17 demo queues, with
//! the day starts and "you are next" notices that brings) and the real journal writer:
//! - **30 days**: the events spread over a month; today holds a thirtieth of them.
//! - **one day**: every event today (a stress case: the whole journal replayed).
//!
//! Each is started twice: the first start walks the whole chain (no verification mark yet), the
//! second only what came after the first's mark. Beside it, in the same run, the floor: one
//! plain SQLite scan of the same rows (`SELECT … FROM events`), and the ratio to it.
//!
//! `cargo bench --bench startup` runs it fully; under `cargo test` a smoke version (20,000
//! events) keeps it compiling and working.

#[path = "support/mod.rs"]
mod support;

use clinicflow::domain::command::{Command, IssueTicket};
use clinicflow::domain::config::Hospital;
use clinicflow::domain::ids::{DisplayName, PatientId, PriorityClass, RoomId, TicketId};
use clinicflow::domain::queue::QueueState;
use clinicflow::storage::{JournalStore, NewEvent, SqliteJournal};
use std::path::Path;
use std::time::Instant;

/// 2026-11-07 08:00 in the demo hospital's zone (Asia/Shanghai): the first day's opening.
const FIRST_DAY_8AM: i64 = 1_794_009_600_000;
const DAY_MS: i64 = 86_400_000;

/// Writes about `events` events over `days` days into `DATA/journal.sqlite`; the instant just
/// after the last one (what the server's clock is pinned to).
fn make_journal(data: &Path, events: usize, days: i64) -> i64 {
    std::fs::create_dir_all(data).unwrap();
    let hospital = Hospital::demo();
    let mut states: Vec<(QueueState, RoomId)> =
        hospital.queues.values().map(|spec| (QueueState::new(spec.clone()), spec.rooms.keys().next().expect("a room").clone())).collect();
    let mut journal = SqliteJournal::open_writer(&data.join("journal.sqlite")).unwrap();
    let per_day = events as i64 / days;
    let (mut written, mut patient, mut batch) = (0usize, 0u64, Vec::with_capacity(4_096));
    let mut now = FIRST_DAY_8AM;
    for day in 0..days {
        let start = FIRST_DAY_8AM + day * DAY_MS;
        // Spread the day's patients over ten hours.
        let step = (10 * 3_600_000 / (per_day / 4).max(1)).max(1);
        now = start;
        let mut today = 0i64;
        while today < per_day {
            let n = states.len();
            let (state, room) = &mut states[patient as usize % n];
            patient += 1;
            let id = TicketId::parse(&format!("t{patient}")).unwrap();
            let issue = Command::Issue(IssueTicket::walk_in(id.clone(), PatientId::parse(&format!("p{patient}")).unwrap(), DisplayName::parse("张三丰").unwrap(), PriorityClass::parse("normal").unwrap()));
            for cmd in [issue, Command::CallNext { room: room.clone(), caller: "bench".into() }, Command::Complete { ticket: id }] {
                let d = state.execute(&cmd, now).expect("a valid morning");
                today += d.events.len() as i64;
                batch.extend(d.events.into_iter().map(|event| NewEvent { queue: state.id().clone(), at: now, event }));
            }
            now += step;
            if batch.len() >= 4_000 {
                written += batch.len();
                journal.append(&batch).unwrap();
                batch.clear();
            }
        }
    }
    written += batch.len();
    journal.append(&batch).unwrap();
    eprintln!("journal: {written} events over {days} day(s)");
    now + 60_000
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmRSS:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())))
        .unwrap_or(0)
}

/// Seconds from spawning `serve` to its "listening on", and its RSS then.
fn start(data: &Path, clock: &str) -> (f64, u64) {
    let t0 = Instant::now();
    let s = support::Server::start(data, &["--mqtt".into(), "off".into(), "--clock".into(), clock.into()]);
    let secs = t0.elapsed().as_secs_f64();
    (secs, rss_kb(s.pid()))
}

/// The floor: one plain scan of every row, decoded as the server decodes it.
fn scan(data: &Path) -> f64 {
    let conn = rusqlite::Connection::open(data.join("journal.sqlite")).unwrap();
    let t0 = Instant::now();
    let mut stmt = conn.prepare("SELECT seq, queue, at_ms, body FROM events ORDER BY seq").unwrap();
    let mut rows = stmt.query([]).unwrap();
    let mut n = 0u64;
    while let Some(r) = rows.next().unwrap() {
        let body: String = r.get(3).unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        std::hint::black_box(v);
        n += 1;
    }
    std::hint::black_box(n);
    t0.elapsed().as_secs_f64()
}

fn scenario(name: &str, events: usize, days: i64) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let end = make_journal(&data, events, days);
    let count = SqliteJournal::open(&data.join("journal.sqlite")).unwrap().count().unwrap();
    let clock = chrono::DateTime::from_timestamp_millis(end).unwrap().to_rfc3339();
    let (first_s, first_rss) = start(&data, &clock);
    let (second_s, second_rss) = start(&data, &clock);
    let scan_s = scan(&data);
    let out = serde_json::json!({
        "bench": "startup", "scenario": name, "events": count, "days": days,
        "first_start_s": first_s, "first_rss_kb": first_rss,
        "second_start_s": second_s, "second_rss_kb": second_rss,
        "sqlite_scan_s": scan_s, "ratio_second_start_vs_scan": second_s / scan_s,
    });
    println!("{out}");
    println!(
        "clinicflow start on {count} events ({name}): first {first_s:.2} s (whole chain walked), RSS {:.0} MB; again {second_s:.2} s (walk since the mark), RSS {:.0} MB; plain SQLite scan of the rows {scan_s:.2} s",
        first_rss as f64 / 1024.0,
        second_rss as f64 / 1024.0
    );
    out
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let events = if full { std::env::var("STARTUP_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000) } else { 20_000 };
    scenario("30 days", events, 30);
    if full {
        scenario("one day", events, 1);
    }
}
