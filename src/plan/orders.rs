//! Orders from the HIS: a FHIR R4 Bundle of ServiceRequest and Appointment resources, or a simple
//! native JSON. Parsing checks everything first and names the field of any problem
//! (`entry[2].resource.subject.reference`), so a bundle is applied whole or not at all.

use crate::domain::config::Hospital;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Active,
    Done,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Active => "active",
            OrderStatus::Done => "done",
            OrderStatus::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<OrderStatus> {
        match s {
            "active" => Some(OrderStatus::Active),
            "done" => Some(OrderStatus::Done),
            "cancelled" => Some(OrderStatus::Cancelled),
            _ => None,
        }
    }
}

/// One order as received, mapped to a configured service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderIn {
    /// The HIS's id (FHIR resource id), unique per patient.
    pub id: String,
    pub code: String,
    pub service: String,
    pub status: OrderStatus,
    /// `fhir` or `native`.
    pub source: &'static str,
}

/// What is wrong, and where.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderError {
    /// JSON path of the field (`entry[0].resource.code`).
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

fn bad(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> OrderError {
    OrderError { field: field.into(), code, message: message.into() }
}

/// Most orders a request may carry.
pub const MAX_ORDERS: usize = 200;

/// Parses a body for patient `patient`: a FHIR Bundle (`resourceType: "Bundle"`) or native
/// `{"orders": [{"id", "code", "status"?}]}`.
pub fn parse(body: &Value, patient: &str, hospital: &Hospital) -> Result<Vec<OrderIn>, OrderError> {
    let out = match body.get("resourceType") {
        Some(Value::String(t)) if t == "Bundle" => fhir_bundle(body, patient, hospital)?,
        Some(Value::String(t)) => return Err(bad("resourceType", "invalid_fhir", format!("expected a Bundle, not {t}"))),
        Some(_) => return Err(bad("resourceType", "invalid_fhir", "resourceType must be a string")),
        None => native(body, hospital)?,
    };
    if out.is_empty() {
        return Err(bad("orders", "no_orders", "the request carries no orders"));
    }
    if out.len() > MAX_ORDERS {
        return Err(bad("orders", "too_many_orders", format!("at most {MAX_ORDERS} orders per request")));
    }
    let mut ids = std::collections::BTreeSet::new();
    for o in &out {
        if !ids.insert(&o.id) {
            return Err(bad("id", "duplicate_order", format!("order {} appears twice", o.id)));
        }
    }
    Ok(out)
}

fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn native(body: &Value, hospital: &Hospital) -> Result<Vec<OrderIn>, OrderError> {
    let Some(list) = body.get("orders").and_then(Value::as_array) else {
        return Err(bad("orders", "invalid_field", "expected a FHIR Bundle or {\"orders\": [...]}"));
    };
    let mut out = Vec::new();
    for (i, o) in list.iter().enumerate() {
        let at = |f: &str| format!("orders[{i}].{f}");
        let id = o.get("id").and_then(Value::as_str).filter(|s| valid_id(s)).ok_or_else(|| bad(at("id"), "invalid_field", "an id of 1-64 letters, digits, '-', '_' or '.'"))?;
        let code = o.get("code").and_then(Value::as_str).ok_or_else(|| bad(at("code"), "invalid_field", "a string order code"))?;
        let service = hospital.service_for_code(code).ok_or_else(|| bad(at("code"), "unknown_code", format!("no service is configured for order code {code}")))?;
        let status = match o.get("status") {
            None => OrderStatus::Active,
            Some(Value::String(s)) => OrderStatus::parse(s).ok_or_else(|| bad(at("status"), "invalid_field", "active, done or cancelled"))?,
            Some(_) => return Err(bad(at("status"), "invalid_field", "active, done or cancelled")),
        };
        out.push(OrderIn { id: id.to_owned(), code: code.to_owned(), service: service.id.clone(), status, source: "native" });
    }
    Ok(out)
}

fn fhir_bundle(body: &Value, patient: &str, hospital: &Hospital) -> Result<Vec<OrderIn>, OrderError> {
    let Some(entries) = body.get("entry").and_then(Value::as_array) else {
        return Err(bad("entry", "invalid_fhir", "a Bundle needs an entry array"));
    };
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let at = |f: &str| format!("entry[{i}].resource.{f}");
        let Some(r) = e.get("resource").filter(|r| r.is_object()) else {
            return Err(bad(format!("entry[{i}].resource"), "invalid_fhir", "each entry needs a resource"));
        };
        let rtype = r.get("resourceType").and_then(Value::as_str).unwrap_or("");
        let id = r.get("id").and_then(Value::as_str).filter(|s| valid_id(s)).ok_or_else(|| bad(at("id"), "invalid_fhir", "a resource id of 1-64 letters, digits, '-', '_' or '.'"))?;
        let (codings, subject, status) = match rtype {
            "ServiceRequest" => {
                let subject = r.pointer("/subject/reference").and_then(Value::as_str).ok_or_else(|| bad(at("subject.reference"), "invalid_fhir", "a ServiceRequest needs subject.reference (Patient/…)"))?;
                let status = match r.get("status").and_then(Value::as_str) {
                    Some("active" | "draft" | "on-hold") => OrderStatus::Active,
                    Some("completed") => OrderStatus::Done,
                    Some("revoked" | "entered-in-error") => OrderStatus::Cancelled,
                    other => return Err(bad(at("status"), "invalid_fhir", format!("unsupported ServiceRequest status {other:?}"))),
                };
                let codings = r.pointer("/code/coding").and_then(Value::as_array).ok_or_else(|| bad(at("code.coding"), "invalid_fhir", "a ServiceRequest needs code.coding"))?;
                (codings.clone(), subject.to_owned(), status)
            }
            "Appointment" => {
                let participants = r.get("participant").and_then(Value::as_array).ok_or_else(|| bad(at("participant"), "invalid_fhir", "an Appointment needs participants"))?;
                let subject = participants
                    .iter()
                    .filter_map(|p| p.pointer("/actor/reference").and_then(Value::as_str))
                    .find(|r| r.starts_with("Patient/"))
                    .ok_or_else(|| bad(at("participant"), "invalid_fhir", "no participant is a Patient/…"))?;
                let status = match r.get("status").and_then(Value::as_str) {
                    Some("proposed" | "pending" | "booked" | "arrived" | "checked-in" | "waitlist") => OrderStatus::Active,
                    Some("fulfilled") => OrderStatus::Done,
                    Some("cancelled" | "noshow" | "entered-in-error") => OrderStatus::Cancelled,
                    other => return Err(bad(at("status"), "invalid_fhir", format!("unsupported Appointment status {other:?}"))),
                };
                let codings: Vec<Value> = r
                    .get("serviceType")
                    .and_then(Value::as_array)
                    .map(|st| st.iter().filter_map(|c| c.get("coding").and_then(Value::as_array)).flatten().cloned().collect())
                    .unwrap_or_default();
                if codings.is_empty() {
                    return Err(bad(at("serviceType"), "invalid_fhir", "an Appointment needs serviceType[].coding"));
                }
                (codings, subject.to_owned(), status)
            }
            "" => return Err(bad(at("resourceType"), "invalid_fhir", "missing resourceType")),
            other => return Err(bad(at("resourceType"), "invalid_fhir", format!("{other} is not accepted here (ServiceRequest or Appointment)"))),
        };
        if subject != format!("Patient/{patient}") {
            return Err(bad(at("subject.reference"), "patient_mismatch", format!("{subject} is not Patient/{patient}")));
        }
        let codes: Vec<&str> = codings.iter().filter_map(|c| c.get("code").and_then(Value::as_str)).collect();
        let Some((code, service)) = codes.iter().find_map(|c| hospital.service_for_code(c).map(|s| (*c, s))) else {
            return Err(bad(at("code.coding"), "unknown_code", format!("no service is configured for any of the codes {codes:?}")));
        };
        out.push(OrderIn { id: id.to_owned(), code: code.to_owned(), service: service.id.clone(), status, source: "fhir" });
    }
    Ok(out)
}
