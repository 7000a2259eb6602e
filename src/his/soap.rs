//! The HIS WebService (SOAP 1.1 and 1.2, document/literal, namespace [`NS`]), pure: a request
//! envelope to a [`Fact`], a result or a fault to an envelope. The contract is the WSDL
//! ([`wsdl`], served at `/soap/his?wsdl`).
//!
//! Every mistake is a fault naming the element at fault, with a stable code in its detail
//! (`<error><code>wrong_namespace</code><field>Register</field></error>`): XML that does not
//! parse, an envelope that is not SOAP 1.1 or 1.2 (`VersionMismatch`), an operation or a field in
//! the wrong namespace, an unknown operation, a missing or malformed field.

use super::{Fact, FactError, Registration};
use crate::domain::event::{HisRef, Slot, UnixMs};
use chrono::{DateTime, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

/// The service's namespace (the WSDL's target namespace).
pub const NS: &str = "urn:clinicflow:his:1";
/// The adapter's name: in status, metrics, and on each ticket's HIS reference.
pub const SOURCE: &str = "soap";
const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";

/// The SOAP version of a request, answered in kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Soap11,
    Soap12,
}

impl Version {
    pub fn content_type(self) -> &'static str {
        match self {
            Version::Soap11 => "text/xml; charset=utf-8",
            Version::Soap12 => "application/soap+xml; charset=utf-8",
        }
    }
}

/// The operations of the WSDL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Register,
    Cancel,
    CheckIn,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Register => "Register",
            Operation::Cancel => "Cancel",
            Operation::CheckIn => "CheckIn",
        }
    }
}

/// Who is at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The envelope is not SOAP 1.1 or 1.2.
    VersionMismatch,
    /// The sender (SOAP 1.1 `Client`, 1.2 `Sender`): fix the request.
    Sender,
    /// clinicflow (`Server` / `Receiver`): send it again later.
    Receiver,
}

/// A SOAP fault: who, a stable code, the element at fault, a sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub blame: Blame,
    pub code: String,
    pub field: String,
    pub message: String,
}

impl Fault {
    pub fn sender(code: &str, field: &str, message: impl Into<String>) -> Fault {
        Fault { blame: Blame::Sender, code: code.into(), field: field.into(), message: message.into() }
    }

    /// A fact the hospital refuses (unknown department…), with the WSDL's element name.
    pub fn from_fact(e: &FactError) -> Fault {
        let field = match e.field.as_str() {
            "patient" => "patientId",
            "name" => "patientName",
            "slot" => "slotEnd",
            "slot_start" => "slotStart",
            "registered_at" => "registeredAt",
            "registration" => "registrationId",
            other => other,
        };
        Fault::sender(e.code, field, e.to_string())
    }
}

/// A request read: its version, operation and fact.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub version: Version,
    pub operation: Operation,
    pub fact: Fact,
}

/// Reads a request envelope. The version is known (for the fault's form) as soon as the
/// envelope is.
pub fn parse(text: &str, tz: Tz) -> Result<Request, (Option<Version>, Fault)> {
    let doc = roxmltree::Document::parse(text).map_err(|e| (None, Fault::sender("malformed_xml", "Envelope", format!("the request is not well-formed XML: {e}"))))?;
    let env = doc.root_element();
    if env.tag_name().name() != "Envelope" {
        return Err((None, Fault::sender("not_soap", "Envelope", format!("the document is a <{}>, not a SOAP Envelope", env.tag_name().name()))));
    }
    let version = match env.tag_name().namespace() {
        Some(SOAP11) => Version::Soap11,
        Some(SOAP12) => Version::Soap12,
        other => {
            let f = Fault { blame: Blame::VersionMismatch, code: "wrong_namespace".into(), field: "Envelope".into(), message: format!("the Envelope's namespace {:?} is neither SOAP 1.1 ({SOAP11}) nor SOAP 1.2 ({SOAP12})", other.unwrap_or("")) };
            return Err((None, f));
        }
    };
    let fail = |f: Fault| (Some(version), f);
    let env_ns = env.tag_name().namespace();
    let body = env
        .children()
        .find(|n| n.is_element() && n.tag_name().name() == "Body" && n.tag_name().namespace() == env_ns)
        .ok_or_else(|| fail(Fault::sender("missing_field", "Body", "the Envelope has no Body in its namespace")))?;
    let op = body.children().find(|n| n.is_element()).ok_or_else(|| fail(Fault::sender("missing_field", "Body", "the Body is empty")))?;
    let name = op.tag_name().name();
    if op.tag_name().namespace() != Some(NS) {
        return Err(fail(Fault::sender("wrong_namespace", name, format!("<{name}> is in namespace {:?}; clinicflow's operations are in {NS}", op.tag_name().namespace().unwrap_or("")))));
    }
    let operation = match name {
        "Register" => Operation::Register,
        "Cancel" => Operation::Cancel,
        "CheckIn" => Operation::CheckIn,
        other => return Err(fail(Fault::sender("unknown_operation", other, format!("no operation {other} (Register, Cancel, CheckIn)")))),
    };
    let fields = Fields { op, tz };
    let fact = read(operation, &fields).map_err(fail)?;
    Ok(Request { version, operation, fact })
}

struct Fields<'a, 'i> {
    op: roxmltree::Node<'a, 'i>,
    tz: Tz,
}

impl Fields<'_, '_> {
    fn text(&self, name: &str, required: bool) -> Result<Option<String>, Fault> {
        let Some(n) = self.op.children().find(|n| n.is_element() && n.tag_name().name() == name) else {
            return if required { Err(Fault::sender("missing_field", name, format!("{name} is required"))) } else { Ok(None) };
        };
        if n.tag_name().namespace() != Some(NS) {
            return Err(Fault::sender("wrong_namespace", name, format!("<{name}> is in namespace {:?}, not {NS} (elements are qualified)", n.tag_name().namespace().unwrap_or(""))));
        }
        let nil = n.attributes().any(|a| a.name() == "nil" && a.value() == "true");
        let v = n.text().unwrap_or("").trim().to_owned();
        if v.is_empty() || nil {
            return if required { Err(Fault::sender("missing_field", name, format!("{name} is empty"))) } else { Ok(None) };
        }
        if v.len() > 256 {
            return Err(Fault::sender("invalid_field", name, format!("{name} is longer than 256 bytes")));
        }
        Ok(Some(v))
    }

    fn time(&self, name: &str, required: bool) -> Result<Option<UnixMs>, Fault> {
        let Some(v) = self.text(name, required)? else { return Ok(None) };
        parse_datetime(&v, self.tz).map(Some).ok_or_else(|| Fault::sender("invalid_field", name, format!("{name} {v:?} is not an xs:dateTime (2026-11-26T08:00:00, with or without a zone)")))
    }
}

/// An xs:dateTime: with a zone an instant, without one the hospital's wall clock.
pub fn parse_datetime(v: &str, tz: Tz) -> Option<UnixMs> {
    if let Ok(d) = DateTime::parse_from_rfc3339(v) {
        return Some(d.timestamp_millis());
    }
    let t = NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    tz.from_local_datetime(&t).earliest().map(|d| d.timestamp_millis())
}

fn read(operation: Operation, f: &Fields) -> Result<Fact, Fault> {
    let his = HisRef { source: SOURCE.into(), id: f.text("registrationId", true)?.unwrap_or_default() };
    Ok(match operation {
        Operation::Register => {
            let slot = match (f.time("slotStart", false)?, f.time("slotEnd", false)?) {
                (Some(start), Some(end)) => Some(Slot { start, end }),
                (None, None) => None,
                (Some(_), None) => return Err(Fault::sender("missing_field", "slotEnd", "an appointment needs slotStart and slotEnd")),
                (None, Some(_)) => return Err(Fault::sender("missing_field", "slotStart", "an appointment needs slotStart and slotEnd")),
            };
            Fact::Registered(Registration {
                his,
                patient: f.text("patientId", true)?.unwrap_or_default(),
                name: f.text("patientName", false)?.unwrap_or_default(),
                department: f.text("department", true)?.unwrap_or_default(),
                doctor: f.text("doctor", false)?,
                room: f.text("room", false)?,
                at: f.time("registeredAt", true)?.unwrap_or_default(),
                slot,
                revision: f.time("changedAt", false)?,
            })
        }
        Operation::Cancel => Fact::Cancelled { his, revision: f.time("changedAt", false)? },
        Operation::CheckIn => Fact::CheckedIn { his, at: f.time("checkedInAt", false)? },
    })
}

/// Escapes text for XML content and attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

fn envelope(version: Version, body: &str) -> String {
    let ns = match version {
        Version::Soap11 => SOAP11,
        Version::Soap12 => SOAP12,
    };
    format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"{ns}\"><soap:Body>{body}</soap:Body></soap:Envelope>")
}

/// The response of an operation: `applied` or `repeat`, and for a registration its ticket.
pub fn response(version: Version, operation: Operation, changed: bool, ticket: &[(&str, String)]) -> String {
    let mut inner = format!("<result>{}</result>", if changed { "applied" } else { "repeat" });
    for (name, value) in ticket {
        inner.push_str(&format!("<{name}>{}</{name}>", escape(value)));
    }
    envelope(version, &format!("<{op}Response xmlns=\"{NS}\">{inner}</{op}Response>", op = operation.name()))
}

/// A fault envelope; `None` version (the request's was unknown) answers in SOAP 1.1.
pub fn fault(version: Option<Version>, f: &Fault) -> String {
    let detail = format!("<cf:error xmlns:cf=\"{NS}\"><cf:code>{}</cf:code><cf:field>{}</cf:field></cf:error>", escape(&f.code), escape(&f.field));
    let msg = escape(&f.message);
    match version.unwrap_or(Version::Soap11) {
        Version::Soap11 => {
            let code = match f.blame {
                Blame::VersionMismatch => "soap:VersionMismatch",
                Blame::Sender => "soap:Client",
                Blame::Receiver => "soap:Server",
            };
            envelope(Version::Soap11, &format!("<soap:Fault><faultcode>{code}</faultcode><faultstring>{msg}</faultstring><detail>{detail}</detail></soap:Fault>"))
        }
        Version::Soap12 => {
            let code = match f.blame {
                Blame::VersionMismatch => "soap:VersionMismatch",
                Blame::Sender => "soap:Sender",
                Blame::Receiver => "soap:Receiver",
            };
            envelope(
                Version::Soap12,
                &format!("<soap:Fault><soap:Code><soap:Value>{code}</soap:Value></soap:Code><soap:Reason><soap:Text xml:lang=\"en\">{msg}</soap:Text></soap:Reason><soap:Detail>{detail}</soap:Detail></soap:Fault>"),
            )
        }
    }
}

/// The WSDL, its endpoint at `location`.
pub fn wsdl(location: &str) -> String {
    include_str!("clinicflow-his.wsdl").replace("{{LOCATION}}", &escape(location))
}

#[cfg(test)]
mod tests {
    use super::*;
    const TZ: Tz = chrono_tz::Asia::Shanghai;

    fn env11(body: &str) -> String {
        format!("<s:Envelope xmlns:s=\"{SOAP11}\"><s:Header/><s:Body>{body}</s:Body></s:Envelope>")
    }

    #[test]
    fn a_register_call_is_a_registration_in_the_hospitals_time() {
        let req = parse(
            &env11(&format!("<h:Register xmlns:h=\"{NS}\"><h:registrationId>R-1</h:registrationId><h:patientId>P-1</h:patientId><h:patientName>张三</h:patientName><h:department>0101</h:department><h:registeredAt>2026-11-26T08:00:00</h:registeredAt><h:changedAt>2026-11-26T08:00:01Z</h:changedAt></h:Register>")),
            TZ,
        )
        .unwrap();
        assert_eq!((req.version, req.operation), (Version::Soap11, Operation::Register));
        let Fact::Registered(r) = req.fact else { panic!() };
        assert_eq!((r.his.source.as_str(), r.his.id.as_str(), r.name.as_str()), ("soap", "R-1", "张三"));
        assert_eq!(r.at, TZ.with_ymd_and_hms(2026, 11, 26, 8, 0, 0).unwrap().timestamp_millis());
        assert_eq!(r.revision, Some(chrono::Utc.with_ymd_and_hms(2026, 11, 26, 8, 0, 1).unwrap().timestamp_millis()));
        // A default namespace is the same namespace.
        let req = parse(&format!("<Envelope xmlns=\"{SOAP12}\"><Body><Cancel xmlns=\"{NS}\"><registrationId>R-1</registrationId></Cancel></Body></Envelope>"), TZ).unwrap();
        assert_eq!((req.version, req.fact), (Version::Soap12, Fact::Cancelled { his: HisRef { source: "soap".into(), id: "R-1".into() }, revision: None }));
    }

    #[test]
    fn every_mistake_is_a_fault_naming_its_element() {
        let fault_of = |text: &str| parse(text, TZ).unwrap_err().1;
        let f = fault_of(&env11("<Register xmlns=\"urn:someone-else\"><registrationId>R</registrationId></Register>"));
        assert_eq!((f.code.as_str(), f.field.as_str(), f.blame), ("wrong_namespace", "Register", Blame::Sender));
        let f = fault_of(&env11(&format!("<h:Cancel xmlns:h=\"{NS}\"><registrationId>R</registrationId></h:Cancel>")));
        assert_eq!((f.code.as_str(), f.field.as_str()), ("wrong_namespace", "registrationId"), "unqualified field: {}", f.message);
        let f = fault_of("<s:Envelope xmlns:s=\"http://example.com/soap\"><s:Body/></s:Envelope>");
        assert_eq!(f.blame, Blame::VersionMismatch);
        assert_eq!(fault_of("<Envelope><Body>").code, "malformed_xml");
        assert_eq!(fault_of(&env11(&format!("<Delete xmlns=\"{NS}\"/>"))).code, "unknown_operation");
        let f = fault_of(&env11(&format!("<Register xmlns=\"{NS}\"><registrationId>R</registrationId><patientId>P</patientId><department>d</department><registeredAt>today</registeredAt></Register>")));
        assert_eq!((f.code.as_str(), f.field.as_str()), ("invalid_field", "registeredAt"));
        let f = fault_of(&env11(&format!("<Register xmlns=\"{NS}\"><registrationId>R</registrationId><department>d</department></Register>")));
        assert_eq!((f.code.as_str(), f.field.as_str()), ("missing_field", "patientId"));
        // An entity bomb is refused by the parser, not expanded.
        let bomb = "<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\"><!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\"><!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\"><!ENTITY f \"&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;\"><!ENTITY g \"&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;\">]><l>&g;</l>";
        assert!(parse(bomb, TZ).is_err());
    }

    #[test]
    fn responses_and_faults_are_envelopes_of_the_requests_version() {
        let r = response(Version::Soap11, Operation::Register, true, &[("ticketId", "t1".into()), ("number", "A<1>".into())]);
        let doc = roxmltree::Document::parse(&r).unwrap();
        let resp = doc.descendants().find(|n| n.tag_name().name() == "RegisterResponse").unwrap();
        assert_eq!(resp.tag_name().namespace(), Some(NS));
        assert!(r.contains("<number>A&lt;1&gt;</number>"));
        let f = fault(Some(Version::Soap12), &Fault::sender("unknown_department", "department", "no \"X\""));
        let doc = roxmltree::Document::parse(&f).unwrap();
        assert_eq!(doc.descendants().find(|n| n.tag_name().name() == "Value").unwrap().text(), Some("soap:Sender"));
        assert_eq!(doc.descendants().find(|n| n.tag_name().name() == "field").unwrap().text(), Some("department"));
        assert!(roxmltree::Document::parse(&wsdl("http://h/soap/his?a=1&b=2")).is_ok());
    }
}
