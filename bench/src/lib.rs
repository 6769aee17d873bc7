//! The benchmarks `hub bench` runs, kept out of the product crates' API. Each prints its
//! figures with a baseline measured in the same run (see the README's "Benchmarks").
//!
//! - [`route`]: routing decisions per second on a generated city, spatial index against a
//!   linear scan;
//! - [`sla`]: the SLA tracker's core on many open clocks, as if the hub restarted.

pub mod route;
pub mod sla;
