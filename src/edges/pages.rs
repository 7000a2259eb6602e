//! The pages people see, served by the server itself with every asset embedded in the binary
//! (hospital intranets are closed: no CDN). `/console`, `/display/{id}`, `/t/{ticket}`,
//! `/kiosk/{marker}`, the index at `/`, assets under `/assets/`, and `/api/v1/qr` (QR codes as
//! SVG for the kiosk). The pages are static; they speak the public API and WebSockets like any
//! other client.

use super::http::error::ApiError;
use super::http::AppState;
use crate::map::render::esc;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use rust_embed::Embed;

#[derive(Embed)]
#[folder = "web/"]
struct Assets;

/// Longest text a QR code is made for (a kiosk route link is ~120 characters).
const MAX_QR_TEXT: usize = 512;

/// Scripts, styles, images and connections from this server only.
const CSP: &str = "default-src 'self'; img-src 'self' data:; connect-src 'self'; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'self'";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").route(web::get().to(index)))
        .service(web::resource("/console").route(web::get().to(console)))
        .service(web::resource("/reports").route(web::get().to(reports)))
        .service(web::resource("/display/{display}").route(web::get().to(display)))
        .service(web::resource("/t/{ticket}").route(web::get().to(patient)))
        .service(web::resource("/kiosk/{marker}").route(web::get().to(kiosk)))
        .service(web::resource("/assets/{file}").route(web::get().to(asset)));
}

fn html(status: actix_web::http::StatusCode, body: impl actix_web::body::MessageBody + 'static) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(body)
}

fn page(file: &str) -> HttpResponse {
    match Assets::get(file) {
        Some(f) => html(actix_web::http::StatusCode::OK, f.data.into_owned()),
        None => not_found_page("页面缺失", "Page missing", file),
    }
}

/// A page that says plainly what is wrong, in both languages, with a way back.
fn not_found_page(zh: &str, en: &str, what: &str) -> HttpResponse {
    let body = format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{zh}</title><link rel=\"stylesheet\" href=\"/assets/style.css\"></head><body><main class=\"plain\">\
         <div class=\"card\" role=\"alert\"><h1>{zh}</h1><p>{en}: <code>{what}</code></p><p><a href=\"/\">返回首页 / Home</a></p></div></main></body></html>",
        zh = esc(zh),
        en = esc(en),
        what = esc(what)
    );
    html(actix_web::http::StatusCode::NOT_FOUND, body)
}

async fn console() -> HttpResponse {
    page("console.html")
}

/// The day's numbers for staff (the page asks for a staff token, like the console).
async fn reports() -> HttpResponse {
    page("report.html")
}

async fn patient() -> HttpResponse {
    // The token is checked by the API calls the page makes; a bad one gets a clear message there.
    page("patient.html")
}

async fn display(state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    if state.floor.hospital.displays.iter().any(|d| d.id == *path) {
        page("display.html")
    } else {
        not_found_page("没有这块显示屏", "No display is configured with this id", &path)
    }
}

async fn kiosk(state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    if state.maps.current().venues.iter().any(|m| m.marker(&path).is_some()) {
        page("kiosk.html")
    } else {
        not_found_page("这个位置码无效", "No kiosk or QR marker with this id", &path)
    }
}

/// The start page: links to the console, every display and every kiosk.
async fn index(state: web::Data<AppState>) -> HttpResponse {
    let h = &state.floor.hospital;
    let displays: String = h
        .displays
        .iter()
        .map(|d| format!("<li><a href=\"/display/{id}\">{id}</a> <span class=\"muted\">{loc}</span></li>", id = esc(&d.id), loc = esc(&d.location)))
        .collect();
    let atlas = state.maps.current();
    let kiosks: String = atlas
        .venues
        .iter()
        .flat_map(|m| m.markers())
        .map(|p| format!("<li><a href=\"/kiosk/{id}\">{zh}</a> <span class=\"muted\">{en}</span></li>", id = esc(&p.id), zh = esc(&p.name.zh), en = esc(&p.name.en)))
        .collect();
    let body = format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{name}</title><link rel=\"stylesheet\" href=\"/assets/style.css\"></head><body>\
         <header class=\"bar\"><h1>{name}</h1></header><main class=\"plain\">\
         <section class=\"card\"><h2><a href=\"/console\">叫号台 · Caller console</a></h2><p class=\"muted\">护士和医生 · nurses and doctors</p></section>\
         <section class=\"card\"><h2><a href=\"/reports\">当日统计 · Today's numbers</a></h2><p class=\"muted\">候诊、到诊、就诊、空闲时间 · waits, walks, service, idle time</p></section>\
         <section class=\"card\"><h2>导航 · Wayfinding kiosks</h2><ul>{kiosks}</ul></section>\
         <section class=\"card\"><h2>叫号屏 · Displays</h2><ul>{displays}</ul></section>\
         <p class=\"muted\">患者页面由号票上的链接或二维码打开 · The patient page opens from the link or QR code on the ticket.</p>\
         </main></body></html>",
        name = esc(&h.name),
    );
    html(actix_web::http::StatusCode::OK, body)
}

async fn asset(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let Some(f) = Assets::get(&path) else {
        return HttpResponse::NotFound().json(serde_json::json!({"error": {"code": "not_found", "message": format!("no asset {:?}", path.as_str())}}));
    };
    let etag = format!("\"{}\"", hex::encode(&f.metadata.sha256_hash()[..12]));
    if req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return HttpResponse::NotModified().insert_header((header::ETAG, etag)).finish();
    }
    HttpResponse::Ok()
        .content_type(f.metadata.mimetype())
        .insert_header((header::ETAG, etag))
        // Revalidated on every load: an upgraded server's pages never mix old and new scripts.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(f.data.into_owned())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct QrQuery {
    text: Option<String>,
}

/// `GET /api/v1/qr?text=…`: a QR code of `text` as SVG (the kiosk's "take the route with you").
pub async fn qr(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let q: QrQuery = serde_urlencoded::from_str(req.query_string()).map_err(|e| ApiError::bad_request("invalid_query", format!("bad query string: {e}")))?;
    let text = q.text.filter(|t| !t.is_empty()).ok_or_else(|| ApiError::bad_request("missing_parameter", "the query needs text="))?;
    if text.len() > MAX_QR_TEXT {
        return Err(ApiError::bad_request("invalid_query", format!("text: at most {MAX_QR_TEXT} bytes")));
    }
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| ApiError::bad_request("invalid_query", format!("text cannot be a QR code: {e}")))?;
    let svg = code.render::<qrcode::render::svg::Color>().min_dimensions(200, 200).quiet_zone(true).build();
    Ok(HttpResponse::Ok().content_type("image/svg+xml; charset=utf-8").insert_header((header::CACHE_CONTROL, "public, max-age=3600")).body(svg))
}
