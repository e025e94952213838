//! fedgate's integration tests: one binary (fast to build), one module per area.
//! Every test starts the real server on 127.0.0.1:0 against a real store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod admin_cli;
mod api_keys;
mod attacks;
mod authz_table;
mod bad_input;
mod client;
mod client_assertion;
mod console;
mod cost;
mod docs;
mod edge;
mod federation;
mod group_commit;
mod lifecycle;
mod messages;
mod metrics;
mod openapi;
mod ops;
mod own_tokens;
mod replay;
mod replicas;
mod seed_rules;
mod tenants;
mod traces;
mod trust;
