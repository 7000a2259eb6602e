//! `/ws/tickets/{id}?token=…&since=N`: the patient's phone. Checked before the upgrade (401/403/
//! 404); then one task per connection runs `select!` over client frames, the bounded outbox the
//! patient session fills, the session's kill signal, and a heartbeat tick.
//!
//! `/ws/displays/{id}`: a browser wall display. The same `state` and `announce` payloads as the
//! MQTT topics, each with a `type` field; the current state first. Public like the screen itself
//! (masked names and numbers only).

use crate::actors::displays::{DisplayFeed, DisplayMessage};
use crate::actors::{close, PushLimits, SessionHub};
use crate::domain::ids::TicketId;
use crate::edges::http::error::ApiError;
use crate::edges::http::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message};
use futures_util::StreamExt;
use tokio::time::Instant;
use tokio::sync::mpsc;

/// Largest frame a phone may send (it only sends pings and small JSON).
const MAX_CLIENT_FRAME: usize = 4 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/ws/tickets/{ticket}").route(web::get().to(patient_socket)))
        .service(web::resource("/ws/displays/{display}").route(web::get().to(display_socket)));
}

pub struct WsState {
    pub hub: SessionHub,
    pub limits: PushLimits,
    pub displays: DisplayFeed,
    pub positions: crate::actors::positions::PositionDesk,
}

async fn patient_socket(
    state: web::Data<AppState>,
    ws: web::Data<WsState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let ticket = TicketId::parse(&path).map_err(|_| ApiError::not_found("unknown_ticket", format!("unknown ticket {:?}", path.as_str())))?;
    state.auth.ticket_access(&req, &ticket)?;
    let since = match serde_urlencoded::from_str::<Vec<(String, String)>>(req.query_string()).unwrap_or_default().into_iter().find(|(k, _)| k == "since") {
        None => None,
        Some((_, v)) => Some(v.parse::<u64>().map_err(|_| ApiError::bad_request("invalid_since", "since must be a non-negative integer"))?),
    };
    let snapshot = state.floor.ticket(&ticket).await?;
    let phone = Phone { ticket: ticket.to_string(), patient: snapshot.patient_id.clone(), positions: ws.positions.clone(), guide: state.guide.clone() };
    let (response, session, stream) =
        actix_ws::handle(&req, body).map_err(|e| ApiError::bad_request("not_websocket", format!("a WebSocket upgrade is required: {e}")))?;
    let (tx, rx) = mpsc::channel(ws.limits.outbox);
    let (addr, conn, killed) = ws
        .hub
        .attach(&ticket, since, snapshot, tx)
        .await
        .map_err(|e| ApiError::new(actix_web::http::StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string()))?;
    let hub = ws.hub.clone();
    let limits = ws.limits;
    let metrics = state.metrics.clone();
    actix_web::rt::spawn(async move {
        let reason = run(session, stream.max_frame_size(MAX_CLIENT_FRAME), rx, killed, limits, |text| phone.message(text)).await;
        if let Some(r) = reason {
            metrics.ws_disconnects.with_label_values(&[r]).inc();
        }
        hub.detach(&addr, conn);
    });
    Ok(response)
}

/// Most beacons one phone scan may carry.
const MAX_BEACONS: usize = 64;

/// What a patient's phone may say on its socket (`firmware-protocol/README.md`, phone scans):
/// `{"type": "scan", "t": ms?, "beacons": [{"id", "rssi"}]}` — the beacons it hears, for its
/// visit's live position — and `{"type": "here", "at": "marker:…"}` — a QR marker it scanned.
struct Phone {
    ticket: String,
    patient: crate::domain::ids::PatientId,
    positions: crate::actors::positions::PositionDesk,
    guide: crate::actors::guide::Guide,
}

#[derive(serde::Deserialize)]
struct Beacon {
    id: String,
    rssi: f64,
}

impl Phone {
    fn message(&self, text: &str) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else { return };
        let now = crate::clock::now_ms();
        match v["type"].as_str() {
            Some("scan") if self.positions.enabled() => {
                let beacons = match serde_json::from_value::<Vec<Beacon>>(v["beacons"].clone()) {
                    Ok(b) if !b.is_empty() && b.len() <= MAX_BEACONS => b,
                    _ => return self.positions.malformed(),
                };
                let t = match &v["t"] {
                    serde_json::Value::Null => now,
                    t => match t.as_i64() {
                        Some(t) => t,
                        None => return self.positions.malformed(),
                    },
                };
                self.positions.phone_scan(&self.ticket, self.patient.as_str(), beacons.into_iter().map(|b| (b.id, b.rssi)).collect(), t, now);
            }
            Some("here") => {
                let Some(at) = v["at"].as_str() else { return };
                let atlas = self.guide.maps.current();
                let marker = crate::map::model::VenueMap::marker_from_payload(at.strip_prefix("marker:").unwrap_or(at));
                if let Ok(r) = atlas.resolve(&format!("marker:{marker}")) {
                    self.guide.fixed_point(&self.patient, &r);
                }
            }
            _ => {}
        }
    }
}

/// Serve one connection until it ends; returns why the server ended it, if it did.
async fn run(
    mut session: actix_ws::Session,
    mut stream: actix_ws::MessageStream,
    mut outbox: mpsc::Receiver<String>,
    mut killed: tokio::sync::oneshot::Receiver<(u16, &'static str)>,
    limits: PushLimits,
    mut on_text: impl FnMut(&str),
) -> Option<&'static str> {
    let mut client = Liveness::start(limits).await;
    let close_with = |code: u16, text: &str| Some(CloseReason { code: CloseCode::Other(code), description: Some(text.to_owned()) });
    let ended = loop {
        let step = tokio::select! {
            msg = outbox.recv() => match msg {
                Some(text) => {
                    // A stalled reader blocks this write once the socket is full; the session's
                    // kill (outbox full) must still get through.
                    tokio::select! {
                        r = session.text(text) => if r.is_err() { return None },
                        k = &mut killed => break k.ok().map(|(code, why)| (close_with(code, why), "too_slow")),
                    }
                    Step::Go
                }
                None => break None,
            },
            k = &mut killed => break k.ok().map(|(code, why)| (close_with(code, why), "too_slow")),
            // A phone may send its beacon scans and fixed-point scans; other text is ignored.
            frame = stream.next() => {
                if let Some(Ok(Message::Text(t))) = &frame {
                    on_text(t);
                }
                client.frame(&mut session, frame).await
            }
            _ = client.heartbeat.tick() => client.beat(&mut session).await,
        };
        match step {
            Step::Go => {}
            Step::Gone => return None,
            Step::Closed => break None,
            Step::End(reason, why) => break Some((Some(reason), why)),
        }
    };
    match ended {
        Some((reason, why)) => {
            // The client may not be reading at all: do not wait long to say goodbye.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), session.close(reason)).await;
            Some(why)
        }
        None => {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), session.close(None)).await;
            None
        }
    }
}

/// What the client side of a connection (its frames, its silence) means for the connection.
enum Step {
    Go,
    /// The socket is gone: nothing more can be written.
    Gone,
    /// The client closed it.
    Closed,
    /// The server ends it, with this reason and a metric label.
    End(CloseReason, &'static str),
}

/// Client frames and the heartbeat, the same for every kind of connection: pings are answered,
/// any frame counts as a sign of life, binary frames and protocol errors end the connection, and
/// a client silent for longer than the idle timeout is closed.
///
/// On tokio's clock (its `Instant`, its timer), so the rule is tested on paused time.
struct Liveness {
    heartbeat: tokio::time::Interval,
    last_heard: Instant,
    idle_timeout: std::time::Duration,
}

impl Liveness {
    async fn start(limits: PushLimits) -> Self {
        let mut heartbeat = tokio::time::interval(limits.heartbeat);
        heartbeat.tick().await;
        Self { heartbeat, last_heard: Instant::now(), idle_timeout: limits.idle_timeout }
    }

    async fn frame(&mut self, session: &mut actix_ws::Session, frame: Option<Result<Message, actix_ws::ProtocolError>>) -> Step {
        match frame {
            Some(Ok(Message::Ping(b))) => {
                self.last_heard = Instant::now();
                if session.pong(&b).await.is_err() {
                    return Step::Gone;
                }
                Step::Go
            }
            Some(Ok(Message::Pong(_))) | Some(Ok(Message::Text(_))) | Some(Ok(Message::Continuation(_))) | Some(Ok(Message::Nop)) => {
                self.last_heard = Instant::now();
                Step::Go
            }
            Some(Ok(Message::Binary(_))) => Step::End(CloseReason { code: CloseCode::Unsupported, description: Some("binary frames are not accepted".into()) }, "protocol"),
            Some(Ok(Message::Close(_))) | None => Step::Closed,
            Some(Err(e)) => {
                let code = match e {
                    actix_ws::ProtocolError::Overflow => CloseCode::Size,
                    _ => CloseCode::Protocol,
                };
                Step::End(CloseReason { code, description: Some(e.to_string()) }, "protocol")
            }
        }
    }

    /// Silent for longer than the idle timeout.
    fn silent(&self) -> bool {
        self.last_heard.elapsed() > self.idle_timeout
    }

    /// A heartbeat tick: close a silent client, ping the others.
    async fn beat(&mut self, session: &mut actix_ws::Session) -> Step {
        if self.silent() {
            return Step::End(CloseReason { code: CloseCode::Other(close::IDLE), description: Some("idle timeout".into()) }, "idle");
        }
        if session.ping(b"").await.is_err() {
            return Step::Gone;
        }
        Step::Go
    }
}

/// A display message as a browser display receives it: the payload with its `type`.
fn display_frame(kind: &str, payload: &serde_json::Value) -> String {
    let mut v = payload.clone();
    if let Some(o) = v.as_object_mut() {
        o.insert("type".into(), serde_json::Value::String(kind.into()));
    }
    v.to_string()
}

async fn display_socket(ws: web::Data<WsState>, req: HttpRequest, path: web::Path<String>, body: web::Payload) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    if ws.displays.display(&id).is_none() {
        return Err(ApiError::not_found("unknown_display", format!("no display {id:?} is configured")));
    }
    // Subscribe before reading the latest state, so nothing falls between the two.
    let rx = ws.displays.subscribe();
    let first = ws.displays.latest(&id);
    let (response, session, stream) =
        actix_ws::handle(&req, body).map_err(|e| ApiError::bad_request("not_websocket", format!("a WebSocket upgrade is required: {e}")))?;
    let (feed, limits) = (ws.displays.clone(), ws.limits);
    actix_web::rt::spawn(async move {
        run_display(session, stream.max_frame_size(MAX_CLIENT_FRAME), id, rx, first, feed, limits).await;
    });
    Ok(response)
}

/// Serve one browser display until it goes away. A display that falls behind the feed (its
/// socket stalled) is given the latest state again; the announcements it missed are dropped.
async fn run_display(
    mut session: actix_ws::Session,
    mut stream: actix_ws::MessageStream,
    id: String,
    mut rx: tokio::sync::broadcast::Receiver<DisplayMessage>,
    first: Option<std::sync::Arc<serde_json::Value>>,
    feed: DisplayFeed,
    limits: PushLimits,
) {
    if let Some(s) = first {
        if session.text(display_frame("state", &s)).await.is_err() {
            return;
        }
    }
    let mut client = Liveness::start(limits).await;
    let reason = loop {
        let step = tokio::select! {
            m = rx.recv() => {
                let text = match m {
                    Ok(DisplayMessage::State { display, payload }) if display == id => display_frame("state", &payload),
                    Ok(DisplayMessage::Announce { display, payload }) if display == id => display_frame("announce", &payload),
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => match feed.latest(&id) {
                        Some(s) => display_frame("state", &s),
                        None => continue,
                    },
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break None,
                };
                if session.text(text).await.is_err() { return }
                Step::Go
            }
            // Displays send delivery acks (`{"type": "ack", "seq": …, "stage": "shown"|"spoken"}`).
            frame = stream.next() => {
                if let Some(Ok(actix_ws::Message::Text(t))) = &frame {
                    match crate::domain::delivery::AckMessage::parse(t.as_bytes()) {
                        Some(a) => feed.desk.ack(&id, a.seq, a.stage, feed.desk.now_ms()),
                        None => feed.desk.invalid(),
                    }
                }
                client.frame(&mut session, frame).await
            }
            _ = client.heartbeat.tick() => client.beat(&mut session).await,
        };
        match step {
            Step::Go => {}
            Step::Gone => return,
            Step::Closed => break None,
            Step::End(reason, _) => break Some(reason),
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), session.close(reason)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The heartbeat and the idle rule on paused time: a ping every 15 s, and a client is closed
    /// at the first beat after 45 s without a frame from it — not before.
    #[tokio::test(start_paused = true)]
    async fn a_client_is_idle_only_after_the_whole_timeout_without_a_frame() {
        let limits = PushLimits { heartbeat: Duration::from_secs(15), idle_timeout: Duration::from_secs(45), ..PushLimits::default() };
        let start = Instant::now();
        let mut l = Liveness::start(limits).await;
        async fn beat(l: &mut Liveness, start: Instant) -> (u64, bool) {
            l.heartbeat.tick().await;
            ((Instant::now() - start).as_secs(), l.silent())
        }
        assert_eq!(beat(&mut l, start).await, (15, false));
        assert_eq!(beat(&mut l, start).await, (30, false));
        assert_eq!(beat(&mut l, start).await, (45, false), "45 s of silence is not more than 45 s");
        assert_eq!(beat(&mut l, start).await, (60, true));
        // A frame (a pong, a scan) keeps it alive from then on.
        l.last_heard = Instant::now();
        assert_eq!(beat(&mut l, start).await, (75, false));
        assert_eq!(beat(&mut l, start).await, (90, false));
        assert_eq!(beat(&mut l, start).await, (105, false));
        assert_eq!(beat(&mut l, start).await, (120, true));
    }
}
