//! A HIS database view (or intermediate table) of today's registrations, pure: a row read from it
//! becomes [`Fact`]s, the poll [`Cursor`] remembers how far the incremental query has read, and
//! [`reconcile`] finds the tickets whose registration the HIS no longer has (退号 by deletion).
//!
//! # The columns a query returns (by name, in any order; the SQL renames with `AS`)
//! | column | | |
//! |---|---|---|
//! | `registration_id` | required | the HIS's registration (挂号) or appointment id: text or integer |
//! | `patient_id` | required | |
//! | `department` | required | the HIS's department code (mapped by `[his.departments]`) |
//! | `registered_at` | required | when the patient registered: orders the line |
//! | `status` | required | `registered`, `booked`, `checked_in` or `cancelled` (any case) |
//! | `version` | required | the row's version, greater after every change: an integer (row version, change sequence) or a timestamp (last update). The poll cursor is the greatest applied |
//! | `patient_name` | optional | shown masked on public screens |
//! | `doctor` | optional | the HIS's doctor code |
//! | `room` | optional | the consulting room (诊室) the HIS assigned: the patient waits for the doctor sitting there |
//! | `slot_start`, `slot_end` | for `booked` | the appointment; the patient checks in (报到) when they come |
//! | `checked_in_at` | optional | when a booked patient checked in (else `registered_at`) |
//!
//! A timestamp without a time zone (PostgreSQL `timestamp`, MySQL `DATETIME`) is the hospital's
//! wall clock; one with a zone (`timestamptz`, MySQL `TIMESTAMP`) is an instant.

use super::{Fact, FactError, Registration};
use crate::domain::event::{HisRef, Slot, UnixMs};
use crate::domain::queue::Status;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use std::collections::HashSet;

/// One value of a row, as the database driver read it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    /// A timestamp without a time zone: the hospital's wall clock.
    Time(NaiveDateTime),
    /// A timestamp with a time zone: an instant.
    TimeUtc(DateTime<Utc>),
    Date(NaiveDate),
    Bool(bool),
    /// A column type clinicflow does not read (its SQL name): cast it in the query.
    Unsupported(String),
}

/// One row: column names (lower case) and values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row(pub Vec<(String, Value)>);

impl Row {
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.0.iter().find(|(c, _)| c == column).map(|(_, v)| v)
    }
}

/// The columns every row must have.
pub const REQUIRED: [&str; 6] = ["registration_id", "patient_id", "department", "registered_at", "status", "version"];

/// Checks a query's result columns before any row is applied: a view that lost a column is a
/// clear error naming it, and nothing of the batch is applied.
pub fn check_columns(columns: &[String]) -> Result<(), FactError> {
    let missing: Vec<&str> = REQUIRED.iter().copied().filter(|c| !columns.iter().any(|x| x == c)).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(FactError::new(missing[0], "missing_column", format!("the query returns no column {} (columns: {})", missing.join(", "), columns.join(", "))))
    }
}

/// How far the incremental query has read: the greatest `version` applied.
#[derive(Debug, Clone, PartialEq)]
pub enum Cursor {
    Int(i64),
    Time(NaiveDateTime),
    TimeUtc(DateTime<Utc>),
}

impl Cursor {
    fn of(v: &Value) -> Result<Cursor, FactError> {
        match v {
            Value::Int(i) => Ok(Cursor::Int(*i)),
            Value::Time(t) => Ok(Cursor::Time(*t)),
            Value::TimeUtc(t) => Ok(Cursor::TimeUtc(*t)),
            Value::Null => Err(FactError::new("version", "missing_field", "version is NULL")),
            other => Err(FactError::new("version", "invalid_field", format!("version must be an integer or a timestamp, not {}", kind(other)))),
        }
    }

    /// The later of two cursors; `None` when they are of different kinds (the view changed).
    pub fn max(self, other: Cursor) -> Option<Cursor> {
        Some(match (self, other) {
            (Cursor::Int(a), Cursor::Int(b)) => Cursor::Int(a.max(b)),
            (Cursor::Time(a), Cursor::Time(b)) => Cursor::Time(a.max(b)),
            (Cursor::TimeUtc(a), Cursor::TimeUtc(b)) => Cursor::TimeUtc(a.max(b)),
            _ => return None,
        })
    }

    /// Orders a registration's changes ([`Registration::revision`]): the integer, or the time in ms.
    pub fn revision(&self, tz: Tz) -> i64 {
        match self {
            Cursor::Int(i) => *i,
            Cursor::Time(t) => tz.from_local_datetime(t).earliest().map_or(t.and_utc().timestamp_millis(), |d| d.timestamp_millis()),
            Cursor::TimeUtc(t) => t.timestamp_millis(),
        }
    }

    /// As stored in `his.sqlite`.
    pub fn encode(&self) -> String {
        match self {
            Cursor::Int(i) => format!("i:{i}"),
            Cursor::Time(t) => format!("t:{}", t.format("%Y-%m-%dT%H:%M:%S%.f")),
            Cursor::TimeUtc(t) => format!("z:{}", t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        }
    }

    pub fn decode(s: &str) -> Option<Cursor> {
        let (kind, v) = s.split_once(':')?;
        match kind {
            "i" => v.parse().ok().map(Cursor::Int),
            "t" => NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f").ok().map(Cursor::Time),
            "z" => DateTime::parse_from_rfc3339(v).ok().map(|d| Cursor::TimeUtc(d.with_timezone(&Utc))),
            _ => None,
        }
    }
}

fn kind(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Int(_) => "an integer".into(),
        Value::Float(_) => "a number".into(),
        Value::Text(_) => "text".into(),
        Value::Time(_) | Value::TimeUtc(_) => "a timestamp".into(),
        Value::Date(_) => "a date".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Unsupported(t) => format!("SQL type {t} (cast it to text, an integer or a timestamp in the query)"),
    }
}

/// What one row says: its facts (a booked appointment already checked in is two), its cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct RowFacts {
    pub id: String,
    pub facts: Vec<Fact>,
    pub cursor: Cursor,
}

fn text(row: &Row, column: &'static str, required: bool) -> Result<Option<String>, FactError> {
    match row.get(column) {
        None | Some(Value::Null) if !required => Ok(None),
        None => Err(FactError::new(column, "missing_column", format!("the query returns no column {column}"))),
        Some(Value::Null) => Err(FactError::new(column, "missing_field", format!("{column} is NULL"))),
        Some(Value::Text(s)) if s.trim().is_empty() && required => Err(FactError::new(column, "missing_field", format!("{column} is empty"))),
        Some(Value::Text(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::Text(s)) => Ok(Some(s.trim().to_owned())),
        Some(Value::Int(i)) => Ok(Some(i.to_string())),
        Some(other) => Err(FactError::new(column, "invalid_field", format!("{column} must be text or an integer, not {}", kind(other)))),
    }
}

fn time(row: &Row, column: &'static str, tz: Tz, required: bool) -> Result<Option<UnixMs>, FactError> {
    let local = |t: &NaiveDateTime| tz.from_local_datetime(t).earliest().map(|d| d.timestamp_millis()).ok_or_else(|| FactError::new(column, "invalid_field", format!("{column} {t} does not exist in {tz}")));
    match row.get(column) {
        None | Some(Value::Null) if !required => Ok(None),
        None => Err(FactError::new(column, "missing_column", format!("the query returns no column {column}"))),
        Some(Value::Null) => Err(FactError::new(column, "missing_field", format!("{column} is NULL"))),
        Some(Value::Time(t)) => local(t).map(Some),
        Some(Value::TimeUtc(t)) => Ok(Some(t.timestamp_millis())),
        Some(Value::Text(s)) => {
            let s = s.trim();
            if let Ok(d) = DateTime::parse_from_rfc3339(s) {
                return Ok(Some(d.timestamp_millis()));
            }
            ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y%m%d%H%M%S"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
                .ok_or_else(|| FactError::new(column, "invalid_field", format!("{column} {s:?} is not a date and time (YYYY-MM-DD HH:MM:SS)")))
                .and_then(|t| local(&t))
                .map(Some)
        }
        Some(other) => Err(FactError::new(column, "invalid_field", format!("{column} must be a timestamp, not {}", kind(other)))),
    }
}

/// The facts of one row from adapter `source`, on the hospital's day `today`. A wrong row is an
/// error naming its column (a registration of an earlier day is one); the other rows of the
/// batch are not affected.
pub fn row_facts(row: &Row, source: &str, tz: Tz, today: NaiveDate) -> Result<RowFacts, FactError> {
    let id = text(row, "registration_id", true)?.unwrap_or_default();
    let with_id = |e: FactError| FactError { message: format!("registration {id}: {}", e.message), ..e };
    (|| {
        let cursor = Cursor::of(row.get("version").ok_or_else(|| FactError::new("version", "missing_column", "the query returns no column version"))?)?;
        let his = HisRef { source: source.to_owned(), id: id.clone() };
        let revision = Some(cursor.revision(tz));
        let status = text(row, "status", true)?.unwrap_or_default().to_lowercase();
        if status == "cancelled" || status == "canceled" {
            return Ok(RowFacts { id: id.clone(), facts: vec![Fact::Cancelled { his, revision }], cursor });
        }
        let registration = |slot: Option<Slot>, at: UnixMs| -> Result<Registration, FactError> {
            Ok(Registration {
                his: his.clone(),
                patient: text(row, "patient_id", true)?.unwrap_or_default(),
                name: text(row, "patient_name", false)?.unwrap_or_default(),
                department: text(row, "department", true)?.unwrap_or_default(),
                doctor: text(row, "doctor", false)?,
                room: text(row, "room", false)?,
                at,
                slot,
                revision,
            })
        };
        let registered_at = time(row, "registered_at", tz, true)?.unwrap_or_default();
        let slot = || -> Result<Option<Slot>, FactError> {
            match (time(row, "slot_start", tz, false)?, time(row, "slot_end", tz, false)?) {
                (Some(start), Some(end)) => Ok(Some(Slot { start, end })),
                (None, None) => Ok(None),
                _ => Err(FactError::new("slot_end", "missing_field", "an appointment needs both slot_start and slot_end")),
            }
        };
        let day = |ms: UnixMs| DateTime::from_timestamp_millis(ms).map(|t| t.with_timezone(&tz).date_naive());
        let of_day = slot()?.map_or(registered_at, |s| s.start);
        if day(of_day) < Some(today) {
            // A view without its date filter would bring back every earlier day at midnight.
            return Err(FactError::new("registered_at", "not_today", format!("registered on {}, not today ({today}): the snapshot should hold today's registrations only", day(of_day).map(|d| d.to_string()).unwrap_or_default())));
        }
        let facts = match status.as_str() {
            "registered" => vec![Fact::Registered(registration(None, registered_at)?)],
            "booked" => {
                let slot = slot()?.ok_or_else(|| FactError::new("slot_start", "missing_field", "a booked appointment needs slot_start and slot_end"))?;
                vec![Fact::Registered(registration(Some(slot), registered_at)?)]
            }
            "checked_in" => {
                let at = time(row, "checked_in_at", tz, false)?;
                match slot()? {
                    // An appointment: booked (if clinicflow never saw it), then checked in.
                    Some(slot) => vec![Fact::Registered(registration(Some(slot), registered_at)?), Fact::CheckedIn { his: his.clone(), at: Some(at.unwrap_or(registered_at)) }],
                    None => vec![Fact::Registered(registration(None, at.unwrap_or(registered_at))?)],
                }
            }
            other => return Err(FactError::new("status", "invalid_field", format!("status {other:?} is not registered, booked, checked_in or cancelled"))),
        };
        Ok(RowFacts { id: id.clone(), facts, cursor })
    })()
    .map_err(with_id)
}

/// A row's version, when it has a readable one (even if the row is wrong otherwise).
pub fn row_version(row: &Row) -> Option<Cursor> {
    row.get("version").and_then(|v| Cursor::of(v).ok())
}

/// The registration id of a row the HIS still has (not cancelled), even when the row is wrong
/// otherwise: a registration whose row has a mistake is not withdrawn for it.
pub fn live_id(row: &Row) -> Option<String> {
    let id = text(row, "registration_id", true).ok()??;
    let status = text(row, "status", false).ok().flatten().unwrap_or_default().to_lowercase();
    (status != "cancelled" && status != "canceled").then_some(id)
}

/// Statuses a reconciliation may withdraw: not yet called (a patient in the room stays).
pub fn withdrawable(s: Status) -> bool {
    matches!(s, Status::Booked | Status::Waiting | Status::Missed)
}

/// The outcome of comparing the queues with the HIS's view of today.
#[derive(Debug, Clone, PartialEq)]
pub enum Reconciliation {
    /// Withdraw these registrations (the HIS no longer has them).
    Withdraw(Vec<HisRef>),
    /// The view lost more than half of the open registrations at once: a broken view far more
    /// likely than a mass 退号. Nothing is withdrawn; an operator can force it.
    Suspicious { would_withdraw: usize, open: usize },
}

/// Below this many, a reconciliation withdraws without the "more than half" check.
pub const SMALL: usize = 5;

/// The open tickets of the source whose registration is not in the HIS's view (`live` ids).
pub fn reconcile(live: &HashSet<String>, open: &[(HisRef, Status)], force: bool) -> Reconciliation {
    let open: Vec<&HisRef> = open.iter().filter(|(_, s)| withdrawable(*s)).map(|(h, _)| h).collect();
    let mut gone: Vec<HisRef> = open.iter().filter(|h| !live.contains(&h.id)).map(|h| (*h).clone()).collect();
    gone.sort_by(|a, b| a.id.cmp(&b.id));
    gone.dedup();
    if !force && gone.len() > SMALL && gone.len() * 2 > open.len() {
        return Reconciliation::Suspicious { would_withdraw: gone.len(), open: open.len() };
    }
    Reconciliation::Withdraw(gone)
}

/// The SQL with `{cursor}` replaced by the driver's placeholder: `$1` (PostgreSQL, every time) or
/// `?` (MySQL, bound once per occurrence); and how many times to bind.
pub fn bind_cursor(sql: &str, postgres: bool) -> (String, usize) {
    let n = sql.matches("{cursor}").count();
    (sql.replace("{cursor}", if postgres { "$1" } else { "?" }), if postgres { n.min(1) } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;
    const TZ: Tz = chrono_tz::Asia::Shanghai;
    const DAY: NaiveDate = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();

    fn row(pairs: &[(&str, Value)]) -> Row {
        Row(pairs.iter().map(|(c, v)| (c.to_string(), v.clone())).collect())
    }
    fn t(s: &str) -> Value {
        Value::Time(NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap())
    }
    fn base(status: &str) -> Vec<(&'static str, Value)> {
        vec![
            ("registration_id", Value::Int(1001)),
            ("patient_id", Value::Text("P-1 ".into())),
            ("patient_name", Value::Text("王小明".into())),
            ("department", Value::Text("0101".into())),
            ("doctor", Value::Null),
            ("registered_at", t("2026-11-26 08:00:00")),
            ("status", Value::Text(status.into())),
            ("version", Value::Int(7)),
        ]
    }

    #[test]
    fn a_registered_row_is_a_registration_in_the_hospitals_time_with_its_cursor_as_revision() {
        let r = row_facts(&row(&base("Registered")), "db", TZ, DAY).unwrap();
        assert_eq!(r.id, "1001");
        assert!(live_id(&row(&base("Registered"))).is_some());
        assert_eq!(r.cursor, Cursor::Int(7));
        let [Fact::Registered(reg)] = &r.facts[..] else { panic!("{r:?}") };
        assert_eq!((reg.his.source.as_str(), reg.his.id.as_str(), reg.patient.as_str(), reg.department.as_str()), ("db", "1001", "P-1", "0101"));
        assert_eq!(reg.at, TZ.with_ymd_and_hms(2026, 11, 26, 8, 0, 0).unwrap().timestamp_millis());
        assert_eq!(reg.revision, Some(7));
        assert_eq!(reg.doctor, None);
    }

    #[test]
    fn cancelled_booked_and_checked_in_rows() {
        let r = row_facts(&row(&base("cancelled")), "db", TZ, DAY).unwrap();
        assert!(live_id(&row(&base("cancelled"))).is_none());
        assert_eq!(r.facts, vec![Fact::Cancelled { his: HisRef { source: "db".into(), id: "1001".into() }, revision: Some(7) }]);

        let mut b = base("booked");
        assert_eq!(row_facts(&row(&b), "db", TZ, DAY).unwrap_err().field, "slot_start");
        b.push(("slot_start", t("2026-11-26 09:00:00")));
        b.push(("slot_end", t("2026-11-26 09:15:00")));
        let r = row_facts(&row(&b), "db", TZ, DAY).unwrap();
        let [Fact::Registered(reg)] = &r.facts[..] else { panic!() };
        assert!(reg.slot.is_some());

        b[6] = ("status", Value::Text("checked_in".into()));
        b.push(("checked_in_at", Value::Text("2026-11-26 08:50:00".into())));
        let r = row_facts(&row(&b), "db", TZ, DAY).unwrap();
        assert!(matches!(&r.facts[..], [Fact::Registered(_), Fact::CheckedIn { at: Some(_), .. }]), "{r:?}");
    }

    #[test]
    fn a_wrong_row_names_its_column_and_registration() {
        let mut b = base("registered");
        b[5] = ("registered_at", Value::Text("yesterday".into()));
        let e = row_facts(&row(&b), "db", TZ, DAY).unwrap_err();
        assert_eq!((e.field.as_str(), e.code), ("registered_at", "invalid_field"));
        assert!(e.message.contains("registration 1001"), "{e}");
        let mut b = base("maybe");
        let e = row_facts(&row(&b), "db", TZ, DAY).unwrap_err();
        assert_eq!(e.field, "status");
        b[6] = ("status", Value::Text("registered".into()));
        b[7] = ("version", Value::Unsupported("NUMERIC".into()));
        let e = row_facts(&row(&b), "db", TZ, DAY).unwrap_err();
        assert!(e.message.contains("NUMERIC") && e.message.contains("cast"), "{e}");
        b[7] = ("version", Value::Int(1));
        b[2] = ("patient_name", Value::Null);
        assert!(row_facts(&row(&b), "db", TZ, DAY).is_ok(), "optional columns may be NULL");
        b[5] = ("registered_at", t("2026-11-25 23:59:00"));
        let e = row_facts(&row(&b), "db", TZ, DAY).unwrap_err();
        assert_eq!((e.field.as_str(), e.code), ("registered_at", "not_today"));
        b[6] = ("status", Value::Text("cancelled".into()));
        assert!(row_facts(&row(&b), "db", TZ, DAY).is_ok(), "a withdrawal of any day is harmless");
    }

    #[test]
    fn missing_columns_are_named_before_anything_is_applied() {
        let cols: Vec<String> = ["registration_id", "patient_id", "registered_at", "status", "version"].iter().map(|s| s.to_string()).collect();
        let e = check_columns(&cols).unwrap_err();
        assert_eq!((e.field.as_str(), e.code), ("department", "missing_column"));
    }

    #[test]
    fn cursors_round_trip_and_compare_only_with_their_own_kind() {
        for c in [Cursor::Int(-3), Cursor::Time(NaiveDateTime::parse_from_str("2026-11-26 08:00:00.123456", "%Y-%m-%d %H:%M:%S%.f").unwrap()), Cursor::TimeUtc(Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 1).unwrap())] {
            assert_eq!(Cursor::decode(&c.encode()), Some(c.clone()), "{}", c.encode());
        }
        assert_eq!(Cursor::Int(3).max(Cursor::Int(9)), Some(Cursor::Int(9)));
        assert_eq!(Cursor::Int(3).max(Cursor::TimeUtc(Utc::now())), None);
        assert_eq!(Cursor::decode("x:1"), None);
    }

    #[test]
    fn reconciliation_withdraws_what_the_his_lost_but_not_half_the_floor_at_once() {
        let h = |id: &str| HisRef { source: "db".into(), id: id.into() };
        let live: HashSet<String> = ["A", "B"].iter().map(|s| s.to_string()).collect();
        let open = vec![(h("A"), Status::Waiting), (h("B"), Status::Booked), (h("C"), Status::Waiting), (h("D"), Status::Called), (h("E"), Status::Completed)];
        assert_eq!(reconcile(&live, &open, false), Reconciliation::Withdraw(vec![h("C")]), "called and done tickets stay");
        let open: Vec<_> = (0..20).map(|i| (h(&format!("R{i}")), Status::Waiting)).collect();
        let some: HashSet<String> = (0..12).map(|i| format!("R{i}")).collect();
        assert!(matches!(reconcile(&some, &open, false), Reconciliation::Withdraw(v) if v.len() == 8));
        assert_eq!(reconcile(&HashSet::new(), &open, false), Reconciliation::Suspicious { would_withdraw: 20, open: 20 });
        assert!(matches!(reconcile(&HashSet::new(), &open, true), Reconciliation::Withdraw(v) if v.len() == 20));
    }

    #[test]
    fn the_cursor_placeholder_is_the_drivers() {
        assert_eq!(bind_cursor("SELECT * FROM v WHERE a >= {cursor} OR b >= {cursor}", true), ("SELECT * FROM v WHERE a >= $1 OR b >= $1".into(), 1));
        assert_eq!(bind_cursor("SELECT * FROM v WHERE a >= {cursor} OR b >= {cursor}", false), ("SELECT * FROM v WHERE a >= ? OR b >= ?".into(), 2));
    }
}
