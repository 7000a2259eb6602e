//! The server's wall clock: the only place the server reads the time of day.
//!
//! By default it is the system clock. `serve --clock INSTANT` (`CLINICFLOW_CLOCK`, an RFC 3339
//! instant such as `2026-12-07T08:00:00+08:00`) pins it: the server starts at that instant and
//! runs on from there at the machine's pace (a monotonic clock, so no NTP step moves it). That
//! is how the tests run a morning at the instant they mean — a weekday 08:00, a Sunday
//! afternoon, one minute before the hospital's midnight — whatever the date, weekday, hour and
//! time zone of the machine running them, and how a trainer can rehearse a morning at night.
//!
//! The pure core never reads a clock (time is passed in); the actors and edges read this one.
//! The hospital's local day always comes from the hospital's configured time zone, never from
//! the process's `TZ`.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use std::sync::OnceLock;
use std::time::Instant;

/// Set once at start: (the pinned instant in Unix ms, the monotonic instant it was taken at).
static PINNED: OnceLock<(i64, Instant)> = OnceLock::new();

/// Why `--clock` was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ClockError {
    #[error("--clock {0:?}: not an RFC 3339 instant with its offset (e.g. 2026-12-07T08:00:00+08:00)")]
    Unreadable(String),
    #[error("the clock was already pinned at another instant")]
    AlreadyPinned,
}

/// Parses an RFC 3339 instant (with its UTC offset) into Unix milliseconds.
pub fn parse_instant(text: &str) -> Result<i64, ClockError> {
    DateTime::parse_from_rfc3339(text.trim()).map(|t| t.timestamp_millis()).map_err(|_| ClockError::Unreadable(text.to_owned()))
}

/// Pins the clock at `text` (an RFC 3339 instant) from now on. Called once, at start, before
/// anything reads the time; pinning again at the same instant is a no-op.
pub fn pin(text: &str) -> Result<(), ClockError> {
    let at = parse_instant(text)?;
    let pinned = *PINNED.get_or_init(|| (at, Instant::now()));
    if pinned.0 == at {
        Ok(())
    } else {
        Err(ClockError::AlreadyPinned)
    }
}

/// Whether the clock is pinned (reported by `/healthz`, so nobody mistakes a rehearsal for a
/// real morning).
pub fn is_pinned() -> bool {
    PINNED.get().is_some()
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    match PINNED.get() {
        Some((at, since)) => at + since.elapsed().as_millis() as i64,
        None => Utc::now().timestamp_millis(),
    }
}

/// Now, as a UTC instant.
pub fn now() -> DateTime<Utc> {
    match PINNED.get() {
        Some(_) => Utc.timestamp_millis_opt(now_ms()).single().unwrap_or_else(Utc::now),
        None => Utc::now(),
    }
}

/// Now in the hospital's time zone.
pub fn local(tz: &chrono_tz::Tz) -> DateTime<chrono_tz::Tz> {
    now().with_timezone(tz)
}

/// The hospital's service day now (its local date).
pub fn today(tz: &chrono_tz::Tz) -> NaiveDate {
    local(tz).date_naive()
}

/// The clock an actor reads, passed in when it starts: the server's (above), or a manual one
/// that stands still until its owner moves it — how the actors' tests drive grace periods,
/// no-shows and day changes at the instants they mean without waiting for them.
#[derive(Debug, Clone)]
pub enum Clock {
    Server,
    Manual(std::sync::Arc<std::sync::atomic::AtomicI64>),
}

impl Clock {
    /// The server's clock: the system's, or the pinned one.
    pub fn server() -> Clock {
        Clock::Server
    }

    /// A clock standing at `at_ms` until [`Clock::advance`] moves it.
    pub fn manual(at_ms: i64) -> Clock {
        Clock::Manual(std::sync::Arc::new(std::sync::atomic::AtomicI64::new(at_ms)))
    }

    /// Moves a manual clock on (the server's is left alone).
    pub fn advance(&self, ms: i64) {
        if let Clock::Manual(t) = self {
            t.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Now, in Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::Server => now_ms(),
            Clock::Manual(t) => t.load(std::sync::atomic::Ordering::SeqCst),
        }
    }

    /// Now in the hospital's time zone.
    pub fn local(&self, tz: &chrono_tz::Tz) -> DateTime<chrono_tz::Tz> {
        Utc.timestamp_millis_opt(self.now_ms()).single().unwrap_or_else(Utc::now).with_timezone(tz)
    }

    /// The hospital's service day now (its local date).
    pub fn today(&self, tz: &chrono_tz::Tz) -> NaiveDate {
        self.local(tz).date_naive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_read_with_their_offset() {
        assert_eq!(parse_instant("2026-12-07T08:00:00+08:00"), Ok(1_796_601_600_000));
        assert_eq!(parse_instant("2026-12-07T00:00:00Z"), Ok(1_796_601_600_000));
        assert_eq!(parse_instant(" 2026-12-07T00:00:00.250Z "), Ok(1_796_601_600_250));
        for bad in ["", "2026-12-07", "2026-12-07T08:00:00", "08:00", "yesterday"] {
            assert!(matches!(parse_instant(bad), Err(ClockError::Unreadable(_))), "{bad}");
        }
    }
}
