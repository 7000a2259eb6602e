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
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    Staff { role: Role, name: String },
    /// Not a staff token; may be a patient's access token (checked against a ticket).
    Other(String),
}

impl Auth {
    pub fn new(admin_token: &str, extra: &[crate::site::TokenConfig], patient_key: &str) -> Self {
        let mut staff = vec![(admin_token.to_owned(), Role::Admin, "admin".to_owned())];
        staff.extend(extra.iter().map(|t| (t.token.clone(), t.role, t.name.clone())));
        Self { staff, patient_key: patient_key.as_bytes().to_vec() }
    }

    /// The patient access token of a ticket: HMAC of its id, so it can be given again on an
    /// idempotent retry without being stored.
    pub fn patient_token(&self, ticket: &TicketId) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.patient_key).expect("HMAC takes keys of any length");
        mac.update(ticket.as_str().as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
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
            Principal::Other(token) => {
                if bool::from(self.patient_token(ticket).as_bytes().ct_eq(token.as_bytes())) {
                    Ok(None)
                } else {
                    Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "this token does not open this ticket"))
                }
            }
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
                if tickets.into_iter().any(|t| bool::from(self.patient_token(t).as_bytes().ct_eq(token.as_bytes()))) {
                    Ok(None)
                } else {
                    Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "this token opens none of this patient's tickets"))
                }
            }
        }
    }
}

pub const ALL_STAFF: &[Role] = &[Role::Admin, Role::Nurse, Role::Device];
pub const CLINICAL: &[Role] = &[Role::Admin, Role::Nurse];
