//! The pure core of queueing: ids, hospital config, commands, events and the queue state
//! machine. No IO, no clock, no actix.

pub mod announce;
pub mod command;
pub mod config;
pub mod delivery;
pub mod display;
pub mod error;
pub mod event;
pub mod fair;
pub mod feed;
pub mod ids;
pub mod keypad;
pub mod line;
pub mod queue;
pub mod replay;
pub mod report;
pub mod view;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod policy_tests;
