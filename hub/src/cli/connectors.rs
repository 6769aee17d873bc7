//! `hub connectors status`: every connector's state from a running hub's `/healthz`.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use chrono::Utc;

use super::{client, fetch};
use crate::context::health::{ConnectorHealth, ConnectorState};

fn ago(t: Option<chrono::DateTime<Utc>>) -> String {
    match t {
        None => "never".into(),
        Some(t) => {
            let s = (Utc::now() - t).num_seconds().max(0);
            match s {
                0..=119 => format!("{s}s ago"),
                120..=7199 => format!("{}m ago", s / 60),
                _ => format!("{}h ago", s / 3600),
            }
        }
    }
}

/// `hub connectors status --api URL`: one line per connector from `/healthz`. Fails (exit
/// status 1) when a connector is failing, so it can serve as a check.
pub async fn status(api: &str, json: bool) -> anyhow::Result<()> {
    let url = format!("{}/healthz", api.trim_end_matches('/'));
    let body = fetch(client().get(&url), &format!("GET {url}")).await?;
    let connectors: BTreeMap<String, ConnectorHealth> =
        serde_json::from_value(body["connectors"].clone())
            .context("reading `connectors` from /healthz")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&body["connectors"])?);
    } else {
        println!(
            "{:<28} {:<13} {:<9} {:<13} {:>8} {:>8} {:>5} {:>7} {:>8} {:>8}  last error",
            "connector",
            "kind",
            "state",
            "last success",
            "received",
            "produced",
            "dlq",
            "skipped",
            "failures",
            "lag"
        );
        for (name, h) in &connectors {
            let error = match (&h.last_error, h.last_error_at) {
                (Some(e), at) => format!("{} ({})", e, ago(at)),
                (None, _) => "-".into(),
            };
            println!(
                "{:<28} {:<13} {:<9} {:<13} {:>8} {:>8} {:>5} {:>7} {:>8} {:>8}  {}",
                name,
                h.kind,
                h.state.as_str(),
                ago(h.last_success_at),
                h.records_received,
                h.records_produced,
                h.records_dead_lettered,
                h.records_skipped,
                h.failures,
                h.lag_seconds
                    .map(|l| format!("{l:.1}s"))
                    .unwrap_or_else(|| "-".into()),
                error
            );
        }
        if connectors.is_empty() {
            println!("(no connectors run in this hub)");
        }
    }
    let failing: Vec<&str> = connectors
        .iter()
        .filter(|(_, h)| h.state == ConnectorState::Failing)
        .map(|(n, _)| n.as_str())
        .collect();
    if !failing.is_empty() {
        bail!("failing: {}", failing.join(", "));
    }
    Ok(())
}
