//! The civic integration hub: wires connectors, Kafka, the routing core, the task store and
//! the HTTP API into one process.
//!
//! Follow one event: [`ingest`] (a departmental record becomes a civic event on a feed
//! topic) → [`dispatcher`] (the event is routed by `hub_router` and stored as a task by
//! `hub_store`) → [`api`] (consoles read the task and why it went where it went). Then the
//! case: [`console_api`] and [`case_workflow`] (lifecycle actions), [`sla_tracker`] (warnings,
//! breaches, escalations), [`outbox_relay`] and [`live_stream`] (who hears of each change),
//! [`indicators`] (assessment figures).

pub mod access;
pub mod admin_cli;
pub mod api;
pub mod app;
pub mod broker;
pub mod case_workflow;
pub mod config;
pub mod connectors_cli;
pub mod console_api;
pub mod context;
pub mod demo;
pub mod dispatcher;
pub mod dlq;
pub mod health;
pub mod http;
pub mod indicators;
pub mod ingest;
pub mod kafka;
pub mod live_stream;
pub mod open311_api;
pub mod outbox_relay;
pub mod push_api;
pub mod routing_state;
pub mod shutdown;
pub mod sla_tracker;
pub mod supervisor;
pub mod telemetry;
