//! HL7 v2 over MLLP: the HIS connects (TCP), sends `<VT>message<FS><CR>` blocks, and gets one
//! ACK per message, after the message's facts are durable (so a sender that got no ACK resends,
//! and a resent message changes nothing). Messages on one connection are applied in order.
//!
//! - `AA`: applied (or applied before).
//! - `AE` with ERR: understood and refused (unknown department, a check-in for a registration
//!   that never came) — or the journal was unavailable (ERR code 207): resend later.
//! - `AR` with ERR: not a message clinicflow reads or takes (malformed, unsupported type).
//!
//! Text is UTF-8; a message that is not valid UTF-8 is read as GB18030 (what many Chinese HIS
//! send), and the ACK goes back in the same encoding.

use crate::actors::his::{ApplyError, Applied, HisDesk};
use crate::his::hl7::{self, AckCode, Hl7Error, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const START: u8 = 0x0b;
const END: [u8; 2] = [0x1c, 0x0d];
/// The largest message taken (an ADT is a few hundred bytes).
pub const MAX_MESSAGE: usize = 1024 * 1024;
/// The adapter's name in status and metrics.
pub const ADAPTER: &str = "hl7";

/// `--hl7-allow`: IP addresses (a host) or CIDR blocks.
pub fn parse_allow(items: &[String]) -> anyhow::Result<Vec<ipnet::IpNet>> {
    items
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| anyhow::anyhow!("--hl7-allow: {s:?} is not an IP address or a CIDR block (10.2.0.0/16)"))
        })
        .collect()
}

/// Accepts connections until the process ends; from `allow` only, when it is not empty. Must
/// run inside a tokio runtime.
pub async fn serve(listener: TcpListener, desk: HisDesk, allow: Vec<ipnet::IpNet>) {
    desk.register(ADAPTER);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let ip = peer.ip().to_canonical();
                if !allow.is_empty() && !allow.iter().any(|n| n.contains(&ip)) {
                    tracing::warn!(%peer, "HL7 connection refused: not in --hl7-allow");
                    desk.note(ADAPTER, "refused_peer", Some(format!("a connection from {ip}, not in --hl7-allow")));
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let desk = desk.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, &desk).await {
                        tracing::info!(%peer, error = %e, "HL7 connection ended");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "HL7 listener: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(mut stream: TcpStream, desk: &HisDesk) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        // Whole blocks first; bytes before a block's start are line noise and dropped.
        while let Some(start) = buf.iter().position(|&b| b == START) {
            let Some(end) = buf[start..].windows(2).position(|w| w == END).map(|e| start + e) else {
                if buf.len() - start > MAX_MESSAGE {
                    let e = Hl7Error { segment: "MSH".into(), field: 0, code: 100, message: format!("a message is at most {MAX_MESSAGE} bytes") };
                    stream.write_all(&frame(&reply(None, AckCode::Reject, Some(&e), desk.hospital().tz), false)).await?;
                    return Ok(());
                }
                break;
            };
            let raw = buf[start + 1..end].to_vec();
            buf.drain(..end + 2);
            let (text, gb) = match String::from_utf8(raw) {
                Ok(t) => (t, false),
                Err(e) => (encoding_rs::GB18030.decode(e.as_bytes()).0.into_owned(), true),
            };
            let answer = handle(&text, desk).await;
            stream.write_all(&frame(&answer, gb)).await?;
        }
        if buf.len() > MAX_MESSAGE + 16 && !buf.contains(&START) {
            buf.clear();
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn frame(text: &str, gb: bool) -> Vec<u8> {
    let body = if gb { encoding_rs::GB18030.encode(text).0.into_owned() } else { text.as_bytes().to_vec() };
    let mut out = Vec::with_capacity(body.len() + 3);
    out.push(START);
    out.extend_from_slice(&body);
    out.extend_from_slice(&END);
    out
}

/// ACK control ids: unique within the process (time plus a counter).
static ACKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn reply(m: Option<&Message>, code: AckCode, error: Option<&Hl7Error>, tz: chrono_tz::Tz) -> String {
    let now = crate::clock::local(&tz).format("%Y%m%d%H%M%S").to_string();
    let control = format!("CF{}-{}", crate::clock::now_ms(), ACKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    hl7::ack(m, code, error, &now, &control)
}

/// One message: its ACK.
async fn handle(text: &str, desk: &HisDesk) -> String {
    let tz = desk.hospital().tz;
    let m = match Message::parse(text) {
        Ok(m) => m,
        Err(e) => {
            desk.note(ADAPTER, "rejected", Some(e.to_string()));
            tracing::info!(error = %e, "HL7 message rejected");
            return reply(None, AckCode::Reject, Some(&e), tz);
        }
    };
    let facts = match hl7::facts(&m, ADAPTER, desk.hospital().tz) {
        Ok(f) => f,
        Err(e) => {
            desk.note(ADAPTER, "rejected", Some(e.to_string()));
            tracing::info!(control = %m.control_id(), error = %e, "HL7 message rejected");
            return reply(Some(&m), AckCode::Reject, Some(&e), tz);
        }
    };
    let mut changed = false;
    for f in &facts {
        match desk.apply(f).await {
            Ok(Applied::Changed) => changed = true,
            Ok(Applied::Repeat) => {}
            Err(ApplyError::Fact(e)) => {
                let (segment, field) = match e.field.as_str() {
                    "department" => ("PV1", 3),
                    "patient" => ("PID", 3),
                    "name" => ("PID", 5),
                    "slot" | "slot_start" => ("SCH", 11),
                    // The registration's time: EVN-6 (else PV1-44, EVN-2, MSH-7).
                    "registered_at" => ("EVN", 6),
                    "code" => ("OBR", 4),
                    "order" => ("ORC", 2),
                    _ => ("MSH", 9),
                };
                let code = match e.code {
                    "unknown_department" | "unknown_code" | "unknown_patient" => 103,
                    "invalid_patient" | "invalid_name" | "invalid_slot" | "invalid_field" => 102,
                    _ => 207,
                };
                let err = Hl7Error { segment: segment.into(), field, code, message: e.to_string() };
                desk.note(ADAPTER, "error", Some(err.to_string()));
                tracing::info!(control = %m.control_id(), error = %err, "HL7 message refused");
                return reply(Some(&m), AckCode::Error, Some(&err), tz);
            }
            Err(ApplyError::Unavailable(why)) => {
                let err = Hl7Error { segment: "MSH".into(), field: 0, code: 207, message: format!("not recorded, resend later: {why}") };
                desk.note(ADAPTER, "error", Some(err.to_string()));
                return reply(Some(&m), AckCode::Error, Some(&err), tz);
            }
        }
    }
    desk.note(ADAPTER, if changed { "applied" } else { "repeat" }, None);
    reply(Some(&m), AckCode::Accept, None, tz)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_allow_list_takes_hosts_and_blocks_and_names_a_mistake() {
        let allow = super::parse_allow(&["10.2.0.0/16".into(), " 192.168.1.7 ".into(), "".into(), "::1".into()]).unwrap();
        let ok = |ip: &str| allow.iter().any(|n| n.contains(&ip.parse::<std::net::IpAddr>().unwrap()));
        assert!(ok("10.2.9.9") && ok("192.168.1.7") && ok("::1"));
        assert!(!ok("10.3.0.1") && !ok("192.168.1.8"));
        let e = super::parse_allow(&["10.2.0.0/99".into()]).unwrap_err().to_string();
        assert!(e.contains("10.2.0.0/99"), "{e}");
    }
}
