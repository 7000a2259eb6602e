//! A caller keypad's command as its MQTT payload says it (firmware-protocol/README.md,
//! `command`): parsed and checked here, executed by the floor. Pure.

use super::ids::RoomId;
use serde_json::Value;

/// A command payload larger than this is refused unread.
pub const MAX_COMMAND_BYTES: usize = 512;

/// What a room's caller (keypad or nurse) asks of the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomAction {
    /// Call the next patient of the queues the room calls from.
    CallNext,
    /// Call the room's current patient again.
    Recall,
    /// The room's current patient did not come (过号).
    Skip,
    /// The room's current patient is done.
    Complete,
    Pause,
    Resume,
}

impl RoomAction {
    pub const ALL: [RoomAction; 6] = [Self::CallNext, Self::Recall, Self::Skip, Self::Complete, Self::Pause, Self::Resume];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CallNext => "call_next",
            Self::Recall => "recall",
            Self::Skip => "skip",
            Self::Complete => "complete",
            Self::Pause => "pause",
            Self::Resume => "resume",
        }
    }

    /// Acts on the patient the room called (recall, skip, complete).
    pub fn on_current_patient(self) -> bool {
        matches!(self, Self::Recall | Self::Skip | Self::Complete)
    }
}

/// One keypad press.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeypadCommand {
    /// The keypad's id of the press: a re-sent press has the same id and is applied once.
    pub id: String,
    pub action: RoomAction,
    pub room: RoomId,
}

/// Why a payload is not a command: a stable code (firmware-protocol/), a message, and the
/// press's id when it could be read (the ack names it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub id: Option<String>,
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    fn new(id: Option<&str>, code: &'static str, message: impl Into<String>) -> Self {
        Self { id: id.map(str::to_owned), code, message: message.into() }
    }
}

impl KeypadCommand {
    /// Read a payload. Which rooms the keypad may call for is the hospital's to say (checked by
    /// the edge that knows the keypad); a room id that is not even well-formed is refused here as
    /// not bound.
    pub fn parse(payload: &[u8]) -> Result<Self, Refusal> {
        if payload.len() > MAX_COMMAND_BYTES {
            return Err(Refusal::new(None, "payload_too_large", format!("commands are at most {MAX_COMMAND_BYTES} bytes")));
        }
        let v: Value = serde_json::from_slice(payload).map_err(|e| Refusal::new(None, "invalid_json", e.to_string()))?;
        let id = v["id"].as_str().filter(|s| !s.is_empty() && s.len() <= 64).ok_or_else(|| Refusal::new(None, "invalid_field", "id: a string of 1-64 characters is required"))?;
        let (Some(action), Some(room)) = (v["action"].as_str(), v["room"].as_str()) else {
            return Err(Refusal::new(Some(id), "invalid_field", "action and room are required"));
        };
        let action = RoomAction::parse(action).ok_or_else(|| {
            Refusal::new(Some(id), "unknown_action", format!("unknown action {action:?}: call_next, recall, skip, complete, pause or resume"))
        })?;
        let room = RoomId::parse(room).map_err(|_| Refusal::new(Some(id), "room_not_bound", format!("{room:?} is not a room id")))?;
        Ok(Self { id: id.to_owned(), action, room })
    }

    /// The press's id, read from a payload that may not be a whole command (to answer a re-sent
    /// press as the first time, whatever else it says).
    pub fn id_of(payload: &[u8]) -> Option<String> {
        if payload.len() > MAX_COMMAND_BYTES {
            return None;
        }
        let v: Value = serde_json::from_slice(payload).ok()?;
        v["id"].as_str().filter(|s| !s.is_empty() && s.len() <= 64).map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(p: &str) -> (&'static str, Option<String>) {
        let r = KeypadCommand::parse(p.as_bytes()).unwrap_err();
        (r.code, r.id)
    }

    #[test]
    fn a_press_is_read_into_a_typed_command() {
        let c = KeypadCommand::parse(br#"{"id":"kp204-000117","action":"call_next","room":"c-204"}"#).unwrap();
        assert_eq!(c, KeypadCommand { id: "kp204-000117".into(), action: RoomAction::CallNext, room: RoomId::parse("c-204").unwrap() });
        for a in RoomAction::ALL {
            assert_eq!(RoomAction::parse(a.as_str()), Some(a));
        }
        assert!(RoomAction::Skip.on_current_patient() && !RoomAction::Pause.on_current_patient());
    }

    #[test]
    fn a_payload_that_is_not_a_command_is_refused_with_its_code() {
        assert_eq!(code("{"), ("invalid_json", None));
        assert_eq!(code(r#"{"action":"call_next","room":"c-204"}"#), ("invalid_field", None));
        assert_eq!(code(&format!(r#"{{"id":"{}","action":"call_next","room":"c-204"}}"#, "x".repeat(65))), ("invalid_field", None));
        assert_eq!(code(r#"{"id":"1","room":"c-204"}"#), ("invalid_field", Some("1".into())));
        assert_eq!(code(r#"{"id":"1","action":"dance","room":"c-204"}"#), ("unknown_action", Some("1".into())));
        assert_eq!(code(r#"{"id":"1","action":"recall","room":"../x"}"#), ("room_not_bound", Some("1".into())));
        assert_eq!(code(&format!(r#"{{"id":"1","pad":"{}"}}"#, "x".repeat(600))), ("payload_too_large", None));
        assert_eq!(KeypadCommand::id_of(br#"{"id":"7","action":"dance"}"#).as_deref(), Some("7"));
    }
}
