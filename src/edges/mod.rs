//! Edges translate and validate, nothing more: bytes in, domain types to a handle, errors out.

pub mod broker;
pub mod dbpoll;
pub mod http;
pub mod mllp;
pub mod mqtt;
pub mod pages;
pub mod ws;
