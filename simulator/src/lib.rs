//! Fakes of the departmental systems the hub links, for the tests and `hub demo`.
//!
//! They are outside the hub, shaped like each department's real interface:
//! - [`server`]: REST feeds (token auth, cursor pagination, occasional 5xx), fed by a test
//!   pushing exact records or by [`generator`] producing realistic ones over time;
//! - [`webhook_client`]: an urban-management system pushing cases to the hub's webhook,
//!   signed with HMAC-SHA256 (and able to replay, tamper and send stale requests);
//! - [`sensors`]: sanitation bin-fill sensors publishing readings over MQTT;
//! - [`open311_client`]: a resident's Open311 GeoReport v2 client;
//! - [`civil_affairs_db`]: the civil-affairs welfare case table in PostgreSQL, with its
//!   check-in service updating rows;
//! - [`people`]: the street and community dispatchers working their queues (for the demo).

pub mod civil_affairs_db;
pub mod generator;
pub mod live;
pub mod open311_client;
pub mod people;
pub mod sensors;
pub mod server;
pub mod webhook_client;

pub use server::{ApiShape, FakeDepartment};
