//! Cases as the hub runs them over the store: the lifecycle service that applies the pure
//! case workflow (`hub_cases`) to stored tasks ([`service`]) and the SLA tracker that
//! raises warnings, breaches and escalations ([`sla_tracker`]), and the checkpoints that
//! make a rewritten case history show ([`history_checkpoints`]); what a candidate rules
//! version would have done to a period's cases ([`replay`], run over the store by
//! [`replay_run`]) over the event log, kept for
//! `[replay] keep_days` ([`event_retention`]); the open tasks nobody signed for re-routed
//! by a version an administrator activates ([`reroute`]). The indicators are tallied by
//! the store (`TaskStore::tally_indicators`) and shown by `http::indicators`.

pub mod event_retention;
#[cfg(test)]
mod fixtures;
pub mod history_checkpoints;
pub mod replay;
pub mod replay_run;
pub mod reroute;
pub mod service;
pub mod sla_tracker;
