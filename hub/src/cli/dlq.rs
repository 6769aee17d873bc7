//! `hub dlq list` and `hub dlq replay`: the dead letters of a running hub.

use anyhow::Context;

use super::{authorized, client, fetch, query};
use crate::pipeline::dead_letters::{Entry, ReplayReport};

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
