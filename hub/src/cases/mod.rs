//! Cases as the hub runs them over the store: the lifecycle service that applies the pure
//! case workflow (`hub_cases`) to stored tasks ([`service`]), the SLA tracker that
//! raises warnings, breaches and escalations ([`sla_tracker`]), and the facts each case's
//! indicators are computed from ([`indicators`]).

pub mod indicators;
pub mod service;
pub mod sla_tracker;
