//! Identifier newtypes. Each is parsed once at the edge (`parse`) so the core never sees a raw
//! string it has to re-check.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct IdError {
    pub kind: &'static str,
    pub reason: &'static str,
}

macro_rules! slug_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Accepts 1..=64 characters of `[A-Za-z0-9_.-]`.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                parse_slug(s, $kind).map(|s| Self(s.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                parse_slug(&s, $kind)?;
                Ok(Self(s))
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

fn parse_slug<'a>(s: &'a str, kind: &'static str) -> Result<&'a str, IdError> {
    if s.is_empty() {
        return Err(IdError { kind, reason: "empty" });
    }
    if s.len() > 64 {
        return Err(IdError { kind, reason: "longer than 64 characters" });
    }
    if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.') {
        return Err(IdError { kind, reason: "only letters, digits, '_', '-' and '.' are allowed" });
    }
    Ok(s)
}

slug_id!(
    /// A queue of one service point, e.g. `cardiology`.
    QueueId, "queue id");
slug_id!(
    /// A consulting or exam room, e.g. `c-305`.
    RoomId, "room id");
slug_id!(
    /// A doctor, as the HIS names them.
    DoctorId, "doctor id");
slug_id!(
    /// A department, e.g. `internal-medicine`.
    DepartmentId, "department id");
slug_id!(
    /// A ticket: one patient's place in line for one visit. Stable across transfers.
    TicketId, "ticket id");
slug_id!(
    /// A patient as the HIS identifies them (card or visit number).
    PatientId, "patient id");
slug_id!(
    /// A priority class from the hospital config (`emergency`, `elderly`, `normal`, ...).
    PriorityClass, "priority class");

impl TicketId {
    /// A fresh random ticket id (`t` + 20 lowercase hex digits). Generated at the edge, never in
    /// the core, so the core stays deterministic.
    pub fn random() -> Self {
        use rand::Rng;
        let n: u128 = rand::thread_rng().gen();
        Self(format!("t{:020x}", n & ((1u128 << 80) - 1)))
    }
}

/// A patient's name as shown to staff. Public screens show [`DisplayName::masked`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let t = s.trim();
        if t.chars().count() > 64 {
            return Err(IdError { kind: "display name", reason: "longer than 64 characters" });
        }
        if t.chars().any(char::is_control) {
            return Err(IdError { kind: "display name", reason: "control characters" });
        }
        Ok(Self(t.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The form public screens show: the middle of the name hidden (`张三丰` → `张*丰`,
    /// `张三` → `张*`, `Alice Smith` → `A*h`).
    pub fn masked(&self) -> String {
        let cs: Vec<char> = self.0.chars().collect();
        match cs.len() {
            0 => String::new(),
            1 => "*".to_owned(),
            2 => format!("{}*", cs[0]),
            n => format!("{}*{}", cs[0], cs[n - 1]),
        }
    }
}
impl TryFrom<String> for DisplayName {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}
impl From<DisplayName> for String {
    fn from(v: DisplayName) -> String {
        v.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_checked() {
        assert!(QueueId::parse("cardiology").is_ok());
        assert!(QueueId::parse("").is_err());
        assert!(QueueId::parse("a/b").is_err());
        assert!(QueueId::parse(&"x".repeat(65)).is_err());
        assert!(serde_json::from_str::<QueueId>("\"bad id\"").is_err());
    }

    #[test]
    fn names_are_masked_for_public_screens() {
        assert_eq!(DisplayName::parse("张三丰").unwrap().masked(), "张*丰");
        assert_eq!(DisplayName::parse("张三").unwrap().masked(), "张*");
        assert_eq!(DisplayName::parse("Alice").unwrap().masked(), "A*e");
    }

    #[test]
    fn random_ticket_ids_parse() {
        let t = TicketId::random();
        assert!(TicketId::parse(t.as_str()).is_ok());
        assert_ne!(t, TicketId::random());
    }
}
