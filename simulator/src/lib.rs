//! Fakes of the departmental systems the hub links, for the tests and `hub demo`.
//!
//! They are outside the hub: each is a small HTTP server shaped like the department's real
//! API (token auth, cursor pagination, occasional 5xx), fed either by a test pushing exact
//! records or by [`generator`] producing realistic ones over time.

pub mod generator;
pub mod live;
pub mod server;

pub use server::{ApiShape, FakeDepartment};
