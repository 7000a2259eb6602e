//! The HIS WebService over HTTP: `POST /soap/his` (SOAP 1.1 `text/xml` or SOAP 1.2
//! `application/soap+xml`), its WSDL at `GET /soap/his?wsdl` (and `/soap/his.wsdl`), the
//! endpoint's address taken from the request so a client finds the service where it found the
//! WSDL.
//!
//! Faults: a sender's mistake (bad XML, wrong namespace, unknown department, wrong token) is a
//! `Client`/`Sender` fault on HTTP 400 (401/403 for the token; 413 for an oversize body), never
//! a 500; a `Server`/`Receiver` fault on 503 means clinicflow could not record it: send again.

use super::{read_body, AppState, ApiError};
use crate::actors::his::{ApplyError, Applied};
use crate::his::soap::{self, Blame, Fault, Operation, Version};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/soap/his").route(web::post().to(call)).route(web::get().to(wsdl)))
        .service(web::resource("/soap/his.wsdl").route(web::get().to(wsdl)));
}

async fn wsdl(req: HttpRequest) -> HttpResponse {
    let info = req.connection_info();
    let location = format!("{}://{}/soap/his", info.scheme(), info.host());
    HttpResponse::Ok().content_type("text/xml; charset=utf-8").body(soap::wsdl(&location))
}

fn reply(status: StatusCode, version: Option<Version>, f: &Fault) -> HttpResponse {
    HttpResponse::build(status).content_type(version.unwrap_or(Version::Soap11).content_type()).body(soap::fault(version, f))
}

/// The version the request's Content-Type announces (for faults before the envelope is read).
fn announced(req: &HttpRequest) -> Option<Version> {
    let ct = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if ct.starts_with("application/soap+xml") {
        Some(Version::Soap12)
    } else if ct.starts_with("text/xml") {
        Some(Version::Soap11)
    } else {
        None
    }
}

async fn call(state: web::Data<AppState>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let desk = &state.his;
    desk.register(soap::SOURCE);
    let refuse = |status: StatusCode, version: Option<Version>, f: Fault| {
        desk.note(soap::SOURCE, "rejected", Some(format!("{}: {}", f.field, f.message)));
        tracing::info!(code = %f.code, field = %f.field, error = %f.message, "SOAP request refused");
        reply(status, version, &f)
    };
    let api = |e: ApiError| Fault::sender(e.code, "Envelope", e.message);
    if let Err(e) = state.auth.staff(&req, crate::edges::http::auth::CLINICAL) {
        return refuse(e.status, announced(&req), api(e));
    }
    let body = match read_body(&req, payload, state.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return refuse(e.status, announced(&req), api(e)),
    };
    let Ok(text) = String::from_utf8(body) else {
        return refuse(StatusCode::BAD_REQUEST, announced(&req), Fault::sender("malformed_xml", "Envelope", "the request is not UTF-8"));
    };
    let request = match soap::parse(&text, desk.hospital().tz) {
        Ok(r) => r,
        Err((version, f)) => return refuse(StatusCode::BAD_REQUEST, version.or(announced(&req)), f),
    };
    let version = Some(request.version);
    match desk.apply(&request.fact).await {
        Ok(applied) => {
            let changed = applied == Applied::Changed;
            desk.note(soap::SOURCE, if changed { "applied" } else { "repeat" }, None);
            let mut ticket = Vec::new();
            if request.operation == Operation::Register {
                if let Some(his) = request.fact.registration() {
                    if let Some(t) = desk.registration_ticket(his).await {
                        ticket = vec![("ticketId", t.id.to_string()), ("number", t.number.clone()), ("queue", t.queue.to_string()), ("status", t.status.to_string())];
                    }
                }
            }
            HttpResponse::Ok().content_type(request.version.content_type()).body(soap::response(request.version, request.operation, changed, &ticket))
        }
        Err(ApplyError::Fact(e)) => refuse(StatusCode::BAD_REQUEST, version, Fault::from_fact(&e)),
        Err(ApplyError::Unavailable(why)) => {
            let f = Fault { blame: Blame::Receiver, code: "unavailable".into(), field: "Envelope".into(), message: format!("not recorded, send again later: {why}") };
            desk.note(soap::SOURCE, "error", Some(f.message.clone()));
            reply(StatusCode::SERVICE_UNAVAILABLE, version, &f)
        }
    }
}
