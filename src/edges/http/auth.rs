//! Bearer tokens: staff and devices by role; a patient's access token opens one ticket only.

use super::error::ApiError;
use crate::site::Role;
use crate::domain::ids::TicketId;
use actix_web::http::StatusCode;
use actix_web::HttpRequest;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub struct Auth {
    /// (token, role, holder name).
    staff: Vec<(String, Role, String)>,
    patient_key: Vec<u8>,
    /// The hospital's zone and clock: a patient's token is for the service day it was given on.
    tz: chrono_tz::Tz,
    clock: crate::clock::Clock,
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    Staff { role: Role, name: String },
    /// Not a staff token; may be a patient's access token (checked against a ticket).
    Other(String),
}

impl Auth {
    pub fn new(admin_token: &str, extra: &[crate::site::TokenConfig], patient_key: &str, tz: chrono_tz::Tz, clock: crate::clock::Clock) -> Self {
        let mut staff = vec![(admin_token.to_owned(), Role::Admin, "admin".to_owned())];
        staff.extend(extra.iter().map(|t| (t.token.clone(), t.role, t.name.clone())));
        Self { staff, patient_key: patient_key.as_bytes().to_vec(), tz, clock }
    }

    /// The patient access token of a ticket, for today: HMAC of its id and the service day, so
    /// it can be given again on an idempotent retry without being stored, and it opens nothing
    /// once the visit's day has ended (a link kept in a phone's history, a photo of a slip).
    pub fn patient_token(&self, ticket: &TicketId) -> String {
        self.token_on(ticket, self.today())
    }

    fn token_on(&self, ticket: &TicketId, day: chrono::NaiveDate) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.patient_key).expect("HMAC takes keys of any length");
        mac.update(ticket.as_str().as_bytes());
        mac.update(b"@");
        mac.update(day.to_string().as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    fn today(&self) -> chrono::NaiveDate {
        self.clock.local(&self.tz).date_naive()
    }

    /// Whether `token` is `ticket`'s: today's opens it; an earlier day's is expired.
    fn patient_check(&self, ticket: &TicketId, token: &str) -> PatientToken {
        let today = self.today();
        if bool::from(self.token_on(ticket, today).as_bytes().ct_eq(token.as_bytes())) {
            return PatientToken::Valid;
        }
        // Yesterday's or the day before: the patient's link of a visit that has ended.
        for back in 1..=2 {
            if let Some(day) = today.checked_sub_days(chrono::Days::new(back)) {
                if bool::from(self.token_on(ticket, day).as_bytes().ct_eq(token.as_bytes())) {
                    return PatientToken::Expired;
                }
            }
        }
        PatientToken::Wrong
    }

    /// Token from `Authorization: Bearer …`, from Basic with the token as the password (what a
    /// HIS's SOAP stack can always send), or, for links opened on a phone, `?token=…`; and
    /// whether it came in the URL.
    fn token(req: &HttpRequest) -> Option<(String, bool)> {
        if let Some(t) = Self::header_token(req) {
            return Some((t, false));
        }
        serde_urlencoded::from_str::<Vec<(String, String)>>(req.query_string())
            .ok()?
            .into_iter()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| (v, true))
    }

    fn header_token(req: &HttpRequest) -> Option<String> {
        if let Some(h) = req.headers().get("authorization").and_then(|h| h.to_str().ok()) {
            let h = h.trim();
            if let Some(t) = h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")) {
                return Some(t.trim().to_owned());
            }
            if let Some(b) = h.strip_prefix("Basic ").or_else(|| h.strip_prefix("basic ")) {
                use base64::Engine;
                let decoded = base64::engine::general_purpose::STANDARD.decode(b.trim()).ok()?;
                let text = String::from_utf8(decoded).ok()?;
                return Some(text.split_once(':').map_or(text.as_str(), |(_, pw)| pw).to_owned());
            }
        }
        None
    }

    pub fn principal(&self, req: &HttpRequest) -> Result<Principal, ApiError> {
        let Some((token, in_url)) = Self::token(req).filter(|(t, _)| !t.is_empty()) else {
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "missing_token", "a bearer token is required"));
        };
        for (t, role, name) in &self.staff {
            if bool::from(t.as_bytes().ct_eq(token.as_bytes())) {
                if in_url {
                    // URLs end up in proxy logs and browser history: only a patient's own
                    // ticket link may carry its token there.
                    return Err(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "token_in_url",
                        "a staff token goes in the Authorization header, never in the URL (change it if it was shared this way)",
                    ));
                }
                return Ok(Principal::Staff { role: *role, name: name.clone() });
            }
        }
        Ok(Principal::Other(token))
    }

    /// Staff with one of `roles`; 401 for a missing or unknown token, 403 for the wrong role.
    pub fn staff(&self, req: &HttpRequest, roles: &[Role]) -> Result<(Role, String), ApiError> {
        match self.principal(req)? {
            Principal::Staff { role, name } if role == Role::Admin || roles.contains(&role) => Ok((role, name)),
            Principal::Staff { role, .. } => {
                Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("role {role:?} may not do this").to_lowercase()))
            }
            Principal::Other(_) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", "the token is not valid")),
        }
    }

    /// Staff (any role), or the access token of exactly this ticket.
    pub fn ticket_access(&self, req: &HttpRequest, ticket: &TicketId) -> Result<Option<Role>, ApiError> {
        match self.principal(req)? {
            Principal::Staff { role, .. } => Ok(Some(role)),
            Principal::Other(token) => match self.patient_check(ticket, &token) {
                PatientToken::Valid => Ok(None),
                PatientToken::Expired => Err(expired()),
                PatientToken::Wrong => Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "this token does not open this ticket")),
            },
        }
    }
}

impl Auth {
    /// Staff (any role), or the access token of one of `tickets` (a patient asking about their
    /// own visit from any of its tickets).
    pub fn staff_or_holder<'a>(&self, req: &HttpRequest, tickets: impl IntoIterator<Item = &'a TicketId>) -> Result<Option<Role>, ApiError> {
        match self.principal(req)? {
            Principal::Staff { role, .. } => Ok(Some(role)),
            Principal::Other(token) => {
                let checks: Vec<PatientToken> = tickets.into_iter().map(|t| self.patient_check(t, &token)).collect();
                if checks.contains(&PatientToken::Valid) {
                    Ok(None)
                } else if checks.contains(&PatientToken::Expired) {
                    Err(expired())
                } else {
                    Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "this token opens none of this patient's tickets"))
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatientToken {
    Valid,
    Expired,
    Wrong,
}

fn expired() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "token_expired", "this link was for a visit on an earlier day; ask at the desk or a kiosk for today's ticket")
}

pub const ALL_STAFF: &[Role] = &[Role::Admin, Role::Nurse, Role::Device];
pub const CLINICAL: &[Role] = &[Role::Admin, Role::Nurse];
