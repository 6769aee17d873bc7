//! End-to-end tests of the hub against real components: the embedded Kafka-protocol broker,
//! SQLite files and PostgreSQL, with fakes of the departmental systems. One test binary, one
//! module per capability.

mod authorization;
mod bad_input;
mod cases;
mod connectors;
mod console;
mod openapi;
mod pipeline;
mod routing;
mod rules_versions;
mod sla;
mod supervision;
