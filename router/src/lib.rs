//! The routing core: city model, place resolution, responsibility under 1+2+X.
//! Pure: no tokio, rdkafka or sqlx here; time is passed in.

pub mod admission;
pub mod bundle;
pub mod city;
pub mod config;
pub mod dedup;
pub mod diagnostic;
pub mod explanation;
pub mod geo;
pub mod place;
pub mod priority;
pub mod responsibility;
pub mod routing;
pub mod rules;
pub mod rules_test;
pub mod spatial_index;
pub mod task;
pub mod taxonomy;
pub mod topology;

pub use routing::Router;
