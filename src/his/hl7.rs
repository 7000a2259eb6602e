//! HL7 v2 (2.3–2.5) messages from the HIS, pure: parsing with the message's own delimiters and
//! escapes, the facts of the messages a queue system needs, and the ACK/NAK that answers them.
//!
//! | message | fact |
//! |---|---|
//! | `ADT^A04` register a patient (挂号), `ADT^A01` | registered: PV1-19 visit number, PID-3 patient, PID-5 name, PV1-3 department (PV1-10 fallback), PV1-7 doctor, EVN-6 / PV1-44 / EVN-2 / MSH-7 time |
//! | `ADT^A11` cancel visit (退号), `ADT^A03` end of visit | cancelled |
//! | `ADT^A10` patient arriving | checked in |
//! | `SIU^S12` new appointment | registered with a slot (SCH-1 id, SCH-11.4/.5 start/end, AIL-3 or PV1-3 department, AIP-3 doctor); the patient checks in on arrival |
//! | `SIU^S15` appointment cancelled | cancelled |
//! | `ORM^O01`, `OML^O21` orders | ordered: PID-3 patient; per ORC/OBR pair ORC-1 control (NW placed, CA/OC/DC cancelled), ORC-2 placer order number, OBR-4 order code |
//! | `ORU^R01` results (the lab or imaging system) | results in: PID-3 patient; per OBR with OBR-25 result status F or C (final, corrected) its placer order number (OBR-2, or the ORC-2 before it); preliminary results change nothing |
//!
//! Anything else is rejected (`AR`, error 200/201) and changes nothing.

use super::{Fact, Registration};
use crate::domain::event::{HisRef, Slot, UnixMs};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;

/// Why a message cannot be taken: where (segment and field number; 0 for the whole segment),
/// the HL7 error code (table 0357) and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{segment}-{field}: {message}")]
pub struct Hl7Error {
    pub segment: String,
    pub field: usize,
    /// Table 0357: 100 segment sequence, 101 required field missing, 102 data type, 103 table
    /// value not found, 200 unsupported message type, 201 unsupported event, 207 application error.
    pub code: u16,
    pub message: String,
}

impl Hl7Error {
    fn new(segment: &str, field: usize, code: u16, message: impl Into<String>) -> Self {
        Hl7Error { segment: segment.to_owned(), field, code, message: message.into() }
    }
}

/// One message: its delimiters and segments, each segment's fields as sent (escaped).
#[derive(Debug, Clone)]
pub struct Message {
    field: char,
    component: char,
    repetition: char,
    escape: char,
    subcomponent: char,
    /// Each segment as its fields; `[0]` is the segment id. For MSH, `[1]` is MSH-2 (MSH-1 is
    /// the field separator itself).
    segments: Vec<Vec<String>>,
}

impl Message {
    /// Parses a message (segments separated by CR; LF and CRLF are accepted too).
    pub fn parse(text: &str) -> Result<Message, Hl7Error> {
        let text = text.trim_matches(|c| c == '\r' || c == '\n' || c == '\u{b}' || c == '\u{1c}');
        if !text.starts_with("MSH") || text.len() < 8 {
            return Err(Hl7Error::new("MSH", 0, 100, "a message starts with an MSH segment"));
        }
        let mut chars = text[3..].chars();
        let field = chars.next().unwrap_or('|');
        let enc: Vec<char> = text[3 + field.len_utf8()..].chars().take_while(|&c| c != field).collect();
        if enc.len() < 4 || field.is_alphanumeric() || enc.iter().any(|c| c.is_alphanumeric() || *c == field) {
            return Err(Hl7Error::new("MSH", 2, 102, "MSH-1 and MSH-2 must give the field separator and four encoding characters (|^~\\&)"));
        }
        let segments: Vec<Vec<String>> = text
            .split(['\r', '\n'])
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.split(field).map(str::to_owned).collect())
            .collect();
        for s in &segments {
            let id = &s[0];
            if id.len() != 3 || !id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
                return Err(Hl7Error::new(id.get(..3.min(id.len())).unwrap_or(""), 0, 100, format!("{id:?} is not a segment id")));
            }
        }
        Ok(Message { field, component: enc[0], repetition: enc[1], escape: enc[2], subcomponent: enc[3], segments })
    }

    pub fn segment(&self, id: &str) -> Option<&[String]> {
        self.segments.iter().find(|s| s[0] == id).map(Vec::as_slice)
    }

    /// Every segment, in order.
    pub fn segments_in_order(&self) -> impl Iterator<Item = &[String]> {
        self.segments.iter().map(Vec::as_slice)
    }

    /// Every segment with this id, in order, with its place among the segments of that id.
    pub fn all(&self, id: &str) -> impl Iterator<Item = &[String]> {
        let id = id.to_owned();
        self.segments.iter().filter(move |s| s[0] == id).map(Vec::as_slice)
    }

    /// Field `n` of the first `seg` as sent (MSH numbering: MSH-2 is the encoding characters).
    fn raw(&self, seg: &str, n: usize) -> Option<&str> {
        raw_of(self.segment(seg)?, n)
    }

    /// Component `c` (1-based) of the first repetition of field `n` of `seg`, unescaped; `None`
    /// when absent or empty.
    pub fn get(&self, seg: &str, n: usize, c: usize) -> Option<String> {
        self.get_in(self.segment(seg)?, n, c)
    }

    /// [`Message::get`] on one given segment.
    pub fn get_in(&self, seg: &[String], n: usize, c: usize) -> Option<String> {
        let f = raw_of(seg, n)?;
        let first = f.split(self.repetition).next()?;
        let comp = first.split(self.component).nth(c.checked_sub(1)?)?;
        let sub = comp.split(self.subcomponent).next()?;
        let v = self.unescape(sub);
        let v = v.trim();
        (!v.is_empty() && v != "\"\"").then(|| v.to_owned())
    }

    fn unescape(&self, s: &str) -> String {
        if !s.contains(self.escape) {
            return s.to_owned();
        }
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find(self.escape) {
            out.push_str(&rest[..i]);
            let after = &rest[i + self.escape.len_utf8()..];
            let Some(j) = after.find(self.escape) else {
                out.push_str(&rest[i..]);
                return out;
            };
            let code = &after[..j];
            match code {
                "F" => out.push(self.field),
                "S" => out.push(self.component),
                "T" => out.push(self.subcomponent),
                "R" => out.push(self.repetition),
                "E" => out.push(self.escape),
                c if c.starts_with('X') => {
                    let bytes: Vec<u8> = (1..c.len()).step_by(2).filter_map(|k| c.get(k..k + 2)).filter_map(|h| u8::from_str_radix(h, 16).ok()).collect();
                    out.push_str(&String::from_utf8_lossy(&bytes));
                }
                _ => {} // formatting escapes (\.br\, \H\ …) carry nothing a queue needs
            }
            rest = &after[j + self.escape.len_utf8()..];
        }
        out.push_str(rest);
        out
    }

    /// MSH-9: message type and trigger event (`ADT`, `A04`).
    pub fn kind(&self) -> (String, String) {
        (self.get("MSH", 9, 1).unwrap_or_default(), self.get("MSH", 9, 2).unwrap_or_default())
    }

    /// MSH-10, the message control id the ACK refers to.
    pub fn control_id(&self) -> String {
        self.get("MSH", 10, 1).unwrap_or_default()
    }
}

fn raw_of(s: &[String], n: usize) -> Option<&str> {
    let i = if s[0] == "MSH" { n.checked_sub(1)? } else { n };
    s.get(i).map(String::as_str)
}

/// An HL7 date/time (`YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]`) as Unix ms; without an offset, in
/// the hospital's time zone.
pub fn parse_time(s: &str, tz: Tz) -> Option<UnixMs> {
    let (body, offset) = match s.find(['+', '-']) {
        Some(i) => (&s[..i], Some(&s[i..])),
        None => (s, None),
    };
    let (digits, frac) = body.split_once('.').map_or((body, ""), |(a, b)| (a, b));
    if digits.len() < 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |a: usize, b: usize| digits.get(a..b).map_or(Some(0), |v| v.parse::<u32>().ok());
    let date = NaiveDate::from_ymd_opt(digits[..4].parse().ok()?, n(4, 6)?, n(6, 8)?)?;
    let time = NaiveTime::from_hms_opt(n(8, 10)?, n(10, 12)?, n(12, 14)?)?;
    let frac: String = frac.chars().take(3).collect();
    let ms: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<3}").parse().ok()? };
    let local = NaiveDateTime::new(date, time);
    let at = match offset {
        Some(o) if o.len() == 5 => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let secs = sign * (o[1..3].parse::<i32>().ok()? * 3600 + o[3..5].parse::<i32>().ok()? * 60);
            chrono::FixedOffset::east_opt(secs)?.from_local_datetime(&local).single()?.timestamp_millis()
        }
        Some(_) => return None,
        None => tz.from_local_datetime(&local).earliest()?.timestamp_millis(),
    };
    Some(at + ms)
}

/// A person's name from an XPN field: Chinese names as family then given, written together
/// (张^三丰 → 张三丰); others as given then family (Smith^John → John Smith).
fn person_name(m: &Message, seg: &str, n: usize) -> String {
    let family = m.get(seg, n, 1).unwrap_or_default();
    let given = m.get(seg, n, 2).unwrap_or_default();
    let cjk = |s: &str| s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
    if cjk(&family) || cjk(&given) {
        format!("{family}{given}")
    } else {
        [given, family].iter().filter(|s| !s.is_empty()).cloned().collect::<Vec<_>>().join(" ")
    }
}

fn required(m: &Message, seg: &str, n: usize, c: usize, what: &str) -> Result<String, Hl7Error> {
    if m.segment(seg).is_none() {
        return Err(Hl7Error::new(seg, 0, 100, format!("the {seg} segment is required ({what})")));
    }
    m.get(seg, n, c).ok_or_else(|| Hl7Error::new(seg, n, 101, format!("{seg}-{n} ({what}) is required")))
}

/// The time of an event: the first of `fields` present, checked.
fn event_time(m: &Message, tz: Tz, fields: &[(&str, usize)]) -> Result<UnixMs, Hl7Error> {
    for &(seg, n) in fields {
        if let Some(v) = m.get(seg, n, 1) {
            return parse_time(&v, tz).ok_or_else(|| Hl7Error::new(seg, n, 102, format!("{v:?} is not an HL7 date/time")));
        }
    }
    Err(Hl7Error::new("EVN", 2, 101, "no event time (EVN-6, EVN-2 or MSH-7)"))
}

/// When the HIS made the message (MSH-7, else EVN-2): orders a registration's changes, so a
/// registration sent after its own 退号 is a re-registration and a resent older one is not.
fn revision(m: &Message, tz: Tz) -> Option<UnixMs> {
    [("MSH", 7), ("EVN", 2)].iter().find_map(|&(seg, n)| m.get(seg, n, 1).and_then(|v| parse_time(&v, tz)))
}

/// The facts in a message from adapter `source`.
pub fn facts(m: &Message, source: &str, tz: Tz) -> Result<Vec<Fact>, Hl7Error> {
    let (kind, event) = m.kind();
    let his = |id: String| HisRef { source: source.to_owned(), id };
    match (kind.as_str(), event.as_str()) {
        ("ADT", "A04" | "A01") => {
            let id = required(m, "PV1", 19, 1, "visit number: the registration id")?;
            let patient = required(m, "PID", 3, 1, "patient id")?;
            let department = m.get("PV1", 3, 1).or_else(|| m.get("PV1", 10, 1)).ok_or_else(|| Hl7Error::new("PV1", 3, 101, "PV1-3 (assigned location: the department) is required"))?;
            let at = event_time(m, tz, &[("EVN", 6), ("PV1", 44), ("EVN", 2), ("MSH", 7)])?;
            Ok(vec![Fact::Registered(Registration { his: his(id), patient, name: person_name(m, "PID", 5), department, doctor: m.get("PV1", 7, 1), room: m.get("PV1", 3, 2), at, slot: None, revision: revision(m, tz) })])
        }
        ("ADT", "A11" | "A03") => Ok(vec![Fact::Cancelled { his: his(required(m, "PV1", 19, 1, "visit number: the registration id")?), revision: revision(m, tz) }]),
        ("ADT", "A10") => {
            let id = required(m, "PV1", 19, 1, "visit number: the registration id")?;
            let at = event_time(m, tz, &[("EVN", 6), ("EVN", 2), ("MSH", 7)])?;
            Ok(vec![Fact::CheckedIn { his: his(id), at: Some(at) }])
        }
        ("SIU", "S12") => {
            let id = required(m, "SCH", 1, 1, "placer appointment id")?;
            let patient = required(m, "PID", 3, 1, "patient id")?;
            let start = required(m, "SCH", 11, 4, "appointment start")?;
            let end = required(m, "SCH", 11, 5, "appointment end")?;
            let start = parse_time(&start, tz).ok_or_else(|| Hl7Error::new("SCH", 11, 102, format!("start {start:?} is not an HL7 date/time")))?;
            let end = parse_time(&end, tz).ok_or_else(|| Hl7Error::new("SCH", 11, 102, format!("end {end:?} is not an HL7 date/time")))?;
            let department = m.get("AIL", 3, 1).or_else(|| m.get("PV1", 3, 1)).ok_or_else(|| Hl7Error::new("AIL", 3, 101, "AIL-3 (location: the department) is required"))?;
            let at = event_time(m, tz, &[("EVN", 6), ("EVN", 2), ("MSH", 7)])?;
            Ok(vec![Fact::Registered(Registration {
                his: his(id),
                patient,
                name: person_name(m, "PID", 5),
                department,
                doctor: m.get("AIP", 3, 1),
                room: m.get("AIL", 3, 2),
                at,
                slot: Some(Slot { start, end }),
                revision: revision(m, tz),
            })])
        }
        ("SIU", "S15") => Ok(vec![Fact::Cancelled { his: his(required(m, "SCH", 1, 1, "placer appointment id")?), revision: revision(m, tz) }]),
        ("ORM", "O01") | ("OML", "O21") => {
            let patient = required(m, "PID", 3, 1, "patient id")?;
            let (orcs, obrs): (Vec<&[String]>, Vec<&[String]>) = (m.all("ORC").collect(), m.all("OBR").collect());
            if orcs.is_empty() {
                return Err(Hl7Error::new("ORC", 0, 100, "an order message needs ORC segments"));
            }
            let mut orders = Vec::new();
            for (i, orc) in orcs.iter().enumerate() {
                let control = m.get_in(orc, 1, 1).ok_or_else(|| Hl7Error::new("ORC", 1, 101, "ORC-1 (order control) is required"))?;
                let cancel = match control.as_str() {
                    "NW" | "XO" | "SC" => false,
                    "CA" | "OC" | "DC" | "CR" => true,
                    other => return Err(Hl7Error::new("ORC", 1, 103, format!("order control {other:?}: NW, XO, SC (placed) or CA, OC, DC, CR (cancelled)"))),
                };
                let id = m.get_in(orc, 2, 1).or_else(|| obrs.get(i).and_then(|o| m.get_in(o, 2, 1))).ok_or_else(|| Hl7Error::new("ORC", 2, 101, "ORC-2 (placer order number) is required"))?;
                // The service: the OBR of this order (OML^O21 and ORM^O01 pair them in order).
                let code = obrs.get(i).and_then(|o| m.get_in(o, 4, 1)).ok_or_else(|| Hl7Error::new("OBR", 4, 101, "OBR-4 (universal service id: the order code) is required"))?;
                orders.push(super::OrderFact { id, code, cancelled: cancel });
            }
            Ok(vec![Fact::Ordered { patient, orders }])
        }
        ("ORU", "R01") => {
            let patient = required(m, "PID", 3, 1, "patient id")?;
            if m.segment("OBR").is_none() {
                return Err(Hl7Error::new("OBR", 0, 100, "a result message needs OBR segments"));
            }
            let mut orders = Vec::new();
            let mut placer = None;
            for seg in m.segments_in_order() {
                match seg.first().map(String::as_str) {
                    Some("ORC") => placer = m.get_in(seg, 2, 1),
                    Some("OBR") => {
                        let status = m.get_in(seg, 25, 1).unwrap_or_default();
                        if !matches!(status.as_str(), "F" | "C") {
                            continue;
                        }
                        let id = m.get_in(seg, 2, 1).or_else(|| placer.clone()).ok_or_else(|| Hl7Error::new("OBR", 2, 101, "OBR-2 (placer order number: the order the result is for) is required"))?;
                        orders.push(id);
                    }
                    _ => {}
                }
            }
            Ok(if orders.is_empty() { Vec::new() } else { vec![Fact::ResultsIn { patient, orders }] })
        }
        ("ADT" | "SIU" | "ORM" | "OML" | "ORU", _) => {
            Err(Hl7Error::new("MSH", 9, 201, format!("event {kind}^{event} is not one clinicflow takes (ADT A01 A03 A04 A10 A11, SIU S12 S15, ORM O01, OML O21, ORU R01)")))
        }
        _ => Err(Hl7Error::new("MSH", 9, 200, format!("message type {kind:?} is not one clinicflow takes (ADT, SIU, ORM, OML, ORU)"))),
    }
}

/// How a message was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCode {
    /// Applied (or applied before: a repeat changes nothing).
    Accept,
    /// Understood and refused by the application (unknown department, …): fix and resend.
    Error,
    /// Not a message clinicflow can read or takes: do not resend as is.
    Reject,
}

impl AckCode {
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::Accept => "AA",
            AckCode::Error => "AE",
            AckCode::Reject => "AR",
        }
    }
}

/// The acknowledgement of `m` (or of an unreadable message, `None`): an ACK whose MSA says
/// `code`, with an ERR segment naming where and what when it is not `AA`.
pub fn ack(m: Option<&Message>, code: AckCode, error: Option<&Hl7Error>, now_local: &str, control_id: &str) -> String {
    let get = |seg: &str, n: usize| m.and_then(|m| m.raw(seg, n)).unwrap_or("").to_owned();
    let clean = |s: &str| s.replace(['|', '^', '~', '\\', '&', '\r', '\n'], " ");
    let trigger = m.map(|m| m.kind().1).unwrap_or_default();
    let version = m.and_then(|m| m.get("MSH", 12, 1)).unwrap_or_else(|| "2.5".into());
    let mut out = format!(
        "MSH|^~\\&|clinicflow|clinicflow|{}|{}|{now_local}||ACK^{}^ACK|{control_id}|P|{}\r",
        get("MSH", 3),
        get("MSH", 4),
        clean(&trigger),
        clean(&version)
    );
    let refers = m.map(Message::control_id).unwrap_or_default();
    match error {
        None => out.push_str(&format!("MSA|{}|{}\r", code.as_str(), clean(&refers))),
        Some(e) => {
            let text = clean(&e.message);
            out.push_str(&format!("MSA|{}|{}|{}\r", code.as_str(), clean(&refers), text));
            let location = if e.field > 0 { format!("{}^1^{}", clean(&e.segment), e.field) } else { format!("{}^1", clean(&e.segment)) };
            out.push_str(&format!("ERR||{location}|{}^{}^HL70357|E||||{text}\r", e.code, clean(&code_text(e.code))));
        }
    }
    out
}

fn code_text(code: u16) -> String {
    match code {
        100 => "Segment sequence error",
        101 => "Required field missing",
        102 => "Data type error",
        103 => "Table value not found",
        200 => "Unsupported message type",
        201 => "Unsupported event code",
        _ => "Application internal error",
    }
    .to_owned()
}
