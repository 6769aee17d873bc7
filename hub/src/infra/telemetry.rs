//! Logs (`tracing`) and metrics (`metrics`, exposed as Prometheus text on `/metrics`).
//!
//! Metric names follow one scheme: `hub_<component>_<what>_<unit or total>`, labels in
//! snake_case. Every name the hub records is listed here, so the set is easy to review.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Polls of a departmental system; labels `connector`, `outcome` = ok | error.
pub const CONNECTOR_POLLS: &str = "hub_connector_polls_total";
/// Seconds one poll of a departmental system took; label `connector`.
pub const CONNECTOR_POLL_SECONDS: &str = "hub_connector_poll_duration_seconds";
/// Records from a departmental system; labels `connector`, `outcome` = received |
/// produced | dead_lettered | skipped (received = the other three together).
pub const CONNECTOR_RECORDS: &str = "hub_connector_records_total";
/// Failed attempts of a connector (retried); labels `connector`, `reason` = unauthorized |
/// unavailable | bad_answer | misconfigured | missing_secret | broker | store.
pub const CONNECTOR_FAILURES: &str = "hub_connector_failures_total";
/// Seconds between the newest produced event's `occurred_at` and its production; label
/// `connector`.
pub const CONNECTOR_LAG_SECONDS: &str = "hub_connector_lag_seconds";
/// Times a connector waited for its rate limit; label `connector`.
pub const CONNECTOR_THROTTLED: &str = "hub_connector_throttled_total";
/// Pushed requests refused before they reached the connector; labels `connector`, `reason`
/// (missing_timestamp, malformed_timestamp, missing_signature, malformed_signature,
/// outside_window, bad_signature, replayed, rate_limited, busy, not_running).
pub const CONNECTOR_WEBHOOK_REJECTED: &str = "hub_connector_webhook_rejected_total";
/// Open311 requests; labels `operation` (post, get_requests, get_request, services,
/// service_definition, discovery) and `status` (the HTTP status).
pub const OPEN311_REQUESTS: &str = "hub_open311_requests_total";
/// Events consumed by the routing pipeline; label `outcome` = created | merged | returned |
/// suppressed | duplicate | unmapped | dead_lettered.
pub const ROUTER_EVENTS: &str = "hub_router_events_total";
/// Seconds from consuming an event to its task being committed.
pub const ROUTER_EVENT_SECONDS: &str = "hub_router_event_duration_seconds";
/// Feed events taken together by the routing pipeline (histogram).
pub const ROUTER_BATCH_EVENTS: &str = "hub_router_batch_events";
/// Partitions a consumer of this process holds after its group's last rebalance; label
/// `group`. With several hub processes in `group` assignment, they add up to the feed's.
pub const KAFKA_PARTITIONS_ASSIGNED: &str = "hub_kafka_partitions_assigned";
/// Records written to the dead-letter topic; label `stage`.
pub const DEAD_LETTERS: &str = "hub_dead_letters_total";
/// Outbox entries delivered; label `destination` (`kafka`, `webhook:<department>`).
pub const OUTBOX_DELIVERED: &str = "hub_outbox_delivered_total";
/// Failed outbox deliveries (retried with backoff); label `destination`.
pub const OUTBOX_FAILURES: &str = "hub_outbox_failures_total";
/// Routing configuration reloads; label `outcome` = applied | refused.
pub const RULES_RELOADS: &str = "hub_rules_reloads_total";
/// Open tasks nobody had signed for that an activated rules version re-routed (改派).
pub const RULES_REROUTED_TASKS: &str = "hub_rules_rerouted_tasks_total";
/// SLA alerts raised by this process; label `kind` = warning | breach | step_overdue.
pub const SLA_ALERTS: &str = "hub_sla_alerts_total";
/// Seconds from an SLA alert falling due to its being raised (the breach-detection delay;
/// large after downtime); label `kind`.
pub const SLA_DETECTION_SECONDS: &str = "hub_sla_detection_delay_seconds";
/// Escalation steps raised by this process; label `step` (workstation, ..., district).
pub const SLA_ESCALATIONS: &str = "hub_sla_escalations_total";
/// Open clocks the SLA tracker read from the store when it started (after a restart: every
/// clock that is back).
pub const SLA_CLOCKS_LOADED: &str = "hub_sla_clocks_loaded";
/// Seconds the SLA tracker took to read the open clocks at start.
pub const SLA_RECOVERY_SECONDS: &str = "hub_sla_recovery_seconds";
/// Clocks the SLA tracker of this process has something still to raise on.
pub const SLA_CLOCKS_WATCHED: &str = "hub_sla_clocks_watched";
/// Failed store operations (retried); label `operation`.
pub const STORE_ERRORS: &str = "hub_store_errors_total";
/// Supervised tasks that died and were started again; label `task`.
pub const SUPERVISOR_RESTARTS: &str = "hub_supervisor_restarts_total";
/// Requests refused before reaching their handler's work; labels `route` and `reason`
/// (`unauthenticated`, `throttled`, `too_many_streams`, `bad_request`).
pub const HTTP_REFUSED: &str = "hub_http_refused_total";
/// Accounts' state-changing requests written to the action trail; label `outcome` (`done`,
/// `refused`, or `unrecorded` when the store could not take the record).
pub const AUDIT_ACTIONS: &str = "hub_audit_actions_total";

/// Install the log subscriber (once per process; `RUST_LOG` refines it).
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn,sqlx=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .install_recorder()
                .expect("no other metrics recorder is installed in the hub")
        })
        .clone()
}
