//! Kafka, the embedded broker, shutdown, supervision and telemetry: the machinery the hub's
//! components run on. Nothing here knows tasks or cases.

pub mod broker;
pub mod kafka;
pub mod shutdown;
pub mod supervisor;
pub mod telemetry;
