//! Black-box tests: the real server binary on port 0 with a temp data dir, spoken to over HTTP.

mod browser;
mod helpers;

mod bad_input;
mod concurrency;
mod crash;
mod his;
mod his_poll;
mod his_soap;
mod maps;
mod observability;
mod operations;
mod orders;
mod pages;
mod mqtt;
mod openapi;
mod policy;
mod positions;
mod push;
mod webhooks;
mod queue_flow;
mod report;
