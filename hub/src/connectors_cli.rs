//! `hub connectors status` and `hub dlq list|replay`: clients of a running hub's HTTP API
//! (they work the same with the embedded broker, whose address only the hub knows).

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use chrono::Utc;

use crate::dlq::{Entry, ReplayReport};
use crate::health::{ConnectorHealth, ConnectorState};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .expect("a plain HTTP client builds")
}

async fn fetch(request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<serde_json::Value> {
    let response = request
        .send()
        .await
        .with_context(|| format!("{what}: is the hub running and is --api right?"))?;
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .await
        .with_context(|| format!("{what}: the answer is not JSON"))?;
    if !status.is_success() && body.get("connectors").is_none() {
        bail!(
            "{what}: HTTP {status}: {}",
            body.get("error").and_then(|e| e.as_str()).unwrap_or("")
        );
    }
    Ok(body)
}

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

fn authorized(request: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
    match token {
        Some(t) => request.bearer_auth(t),
        None => request,
    }
}

fn query(pairs: &[(&str, Option<String>)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| ((*k).to_owned(), v)))
        .collect()
}

/// `hub dlq list`.
pub async fn dlq_list(
    api: &str,
    token: Option<&str>,
    source: Option<String>,
    after: Option<i64>,
    limit: usize,
    json: bool,
) -> anyhow::Result<()> {
    let url = format!("{}/api/v1/deadletters", api.trim_end_matches('/'));
    let q = query(&[
        ("source", source),
        ("after", after.map(|a| a.to_string())),
        ("limit", Some(limit.to_string())),
    ]);
    let body = fetch(
        authorized(client().get(&url).query(&q), token),
        &format!("GET {url}"),
    )
    .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let entries: Vec<Entry> =
        serde_json::from_value(body["entries"].clone()).context("reading the entries")?;
    println!(
        "{} dead letters on {} (personal data masked):",
        entries.len(),
        body["topic"].as_str().unwrap_or("?")
    );
    for e in &entries {
        println!(
            "\n#{}/{}  {}  {}  {}  ({} bytes)\n  from:   {}\n  reason: {}\n  record: {}",
            e.partition,
            e.offset,
            e.at.map(|t| t.to_rfc3339()).unwrap_or_default(),
            e.stage,
            e.source,
            e.size,
            e.origin,
            e.reason,
            e.preview
        );
    }
    Ok(())
}

/// `hub dlq replay`.
pub async fn dlq_replay(
    api: &str,
    token: Option<&str>,
    source: Option<String>,
    after: Option<i64>,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<()> {
    let url = format!("{}/api/v1/deadletters/replay", api.trim_end_matches('/'));
    let q = query(&[
        ("source", source),
        ("after", after.map(|a| a.to_string())),
        ("dry_run", Some(dry_run.to_string())),
    ]);
    let body = fetch(
        authorized(client().post(&url).query(&q), token),
        &format!("POST {url}"),
    )
    .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let r: ReplayReport = serde_json::from_value(body).context("reading the replay report")?;
    let verb = if dry_run { "would produce" } else { "produced" };
    println!(
        "examined {}: {verb} {}, skipped {}, still failing {}, not replayable {}",
        r.examined,
        r.produced.len(),
        r.skipped.len(),
        r.still_failing.len(),
        r.not_replayable.len()
    );
    for p in &r.produced {
        println!(
            "  {verb}  #{}  {} {} → {}",
            p.offset, p.source, p.source_id, p.topic
        );
    }
    for l in &r.still_failing {
        println!("  still failing  #{}  {}: {}", l.offset, l.source, l.reason);
    }
    for l in &r.not_replayable {
        println!("  left  #{}  {}: {}", l.offset, l.source, l.reason);
    }
    Ok(())
}
