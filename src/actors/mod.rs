//! The stateful owners. Each is an actix actor reached through a small handle with our own
//! message types, so the actor runtime could be replaced by plain tokio tasks later.

pub mod delivery;
pub mod displays;
mod floor;
pub mod guide;
pub mod his;
pub mod positions;
mod queue;
pub mod reports;
mod session;
pub mod webhooks;

pub use floor::{Directory, Floor, FloorError};
pub use queue::{ClinicQueue, CommandError, CommitStream, Committed, Outcome, QueueHandle};
pub use session::{close, PushLimits, SessionHub};
