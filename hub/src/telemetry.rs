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
/// Records received from a departmental system; labels `connector`, `outcome` =
/// produced | dead_lettered.
pub const CONNECTOR_RECORDS: &str = "hub_connector_records_total";
/// Events consumed by the routing pipeline; label `outcome` = created | duplicate |
/// dead_lettered.
pub const ROUTER_EVENTS: &str = "hub_router_events_total";
/// Seconds from consuming an event to its task being committed.
pub const ROUTER_EVENT_SECONDS: &str = "hub_router_event_duration_seconds";
/// Records written to the dead-letter topic; label `stage`.
pub const DEAD_LETTERS: &str = "hub_dead_letters_total";
/// Failed store operations (retried); label `operation`.
pub const STORE_ERRORS: &str = "hub_store_errors_total";

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
