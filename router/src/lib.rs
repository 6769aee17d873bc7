//! The routing core: city model, place resolution, responsibility under 1+2+X.
//! Pure: no tokio, rdkafka or sqlx here; time is passed in.

pub mod city;
pub mod explanation;
pub mod geo;
pub mod place;
pub mod responsibility;
pub mod routing;
pub mod task;

pub use routing::Router;
