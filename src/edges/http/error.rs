//! The one place where every error becomes an HTTP status and a stable code:
//! `{"error": {"code": "...", "message": "..."}}`.

use crate::actors::{CommandError, FloorError};
use crate::domain::error::QueueError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(json!({"error": {"code": self.code, "message": self.message}}))
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        use QueueError::*;
        let status = match &e {
            UnknownTicket(_) | UnknownRoom { .. } => StatusCode::NOT_FOUND,
            DuplicateTicket(_)
            | RoomPaused(_)
            | IllegalTransition { .. }
            | Transferred { .. }
            | RecallLimit { .. }
            | RecallTooSoon { .. }
            | TooManyMisses { .. }
            | ReturnWindowClosed(_)
            | NotOverdue(_) => StatusCode::CONFLICT,
            UnknownClass(_) | UnknownDoctor(_) | BadSlot | SameQueue | IdempotencyConflict(_) | BadPolicy(_) | BadVisitNumber(_) => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(status, e.code(), e.to_string())
    }
}

impl From<FloorError> for ApiError {
    fn from(e: FloorError) -> Self {
        match e {
            FloorError::UnknownQueue(_) => Self::not_found("unknown_queue", e.to_string()),
            FloorError::UnknownTicket(_) => Self::not_found("unknown_ticket", e.to_string()),
            FloorError::UnknownRoom(_) => Self::not_found("unknown_room", e.to_string()),
            FloorError::NoCurrentPatient(_) => Self::new(StatusCode::CONFLICT, "no_current_patient", e.to_string()),
            FloorError::Command(CommandError::Rejected(q)) => q.into(),
            FloorError::Command(CommandError::Unavailable(m)) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", format!("cannot record the command now: {m}"))
            }
        }
    }
}

impl actix_web::Responder for ApiError {
    type Body = actix_web::body::BoxBody;
    fn respond_to(self, _req: &actix_web::HttpRequest) -> HttpResponse {
        self.error_response()
    }
}
