//! `hub audit`: proof that no case history was rewritten in the database. It reads the
//! store the configuration names directly, as a DBA or an auditor would, not through a
//! running hub: the answer must not depend on the process it is checking.

use std::path::Path;

use anyhow::{bail, Context};
use hub_store::AuditReport;

use crate::cases::history_checkpoints::{key_from_env, KEY_VAR};
use crate::config::HubConfig;

async fn open(config: &Path) -> anyhow::Result<std::sync::Arc<dyn hub_store::TaskStore>> {
    let config = HubConfig::load(config)?;
    hub_store::open(&config.store.url)
        .await
        .with_context(|| format!("opening the store at {}", config.store.url))
}

/// `hub audit verify`: checks every task's history chain (or one task's), the heads the
/// checkpoints recorded and the checkpoints' signatures; prints each broken link and fails
/// when there is one.
pub async fn verify(config: &Path, task: Option<&str>, json: bool) -> anyhow::Result<()> {
    let store = open(config).await?;
    let key = key_from_env();
    let report = store.verify_history(task, key.as_deref()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report_json(&report))?);
    } else {
        print_report(&report, key.is_some());
    }
    if !report.is_clean() {
        bail!(
            "{} broken link(s): the history was changed outside the hub",
            report.broken_total
        );
    }
    Ok(())
}

/// `hub audit checkpoint`: records the chains' heads now (the hub does it every
/// `audit.checkpoint_every_s`), e.g. before a backup or an appeal.
pub async fn checkpoint(config: &Path) -> anyhow::Result<()> {
    let store = open(config).await?;
    let key = key_from_env();
    match store
        .checkpoint_history(key.as_deref(), chrono::Utc::now())
        .await?
    {
        Some(c) => println!(
            "checkpoint {}: {} head(s), digest {}, {}",
            c.id,
            c.heads,
            c.digest,
            if c.signed { "signed" } else { "NOT signed" }
        ),
        None => println!("no history moved since the last checkpoint"),
    }
    if key.is_none() {
        eprintln!("note: {KEY_VAR} is not set, so the checkpoint is not signed");
    }
    Ok(())
}

fn print_report(r: &AuditReport, keyed: bool) {
    println!(
        "{} task(s), {} history entries ({} from before the chain began), {} checkpoint(s)",
        r.tasks, r.entries, r.unchained, r.checkpoints
    );
    if keyed {
        println!(
            "signatures: {} held, {} checkpoint(s) unsigned",
            r.signed_checkpoints, r.unsigned_checkpoints
        );
    } else {
        println!("signatures: not checked ({KEY_VAR} is not set)");
    }
    if r.is_clean() {
        println!("OK: every chain and checkpoint holds");
        return;
    }
    println!("BROKEN: {} link(s)", r.broken_total);
    for b in &r.broken {
        println!("  {}: {}", b.at, b.reason);
    }
    if r.broken_total > r.broken.len() as u64 {
        println!("  ... and {} more", r.broken_total - r.broken.len() as u64);
    }
}

fn report_json(r: &AuditReport) -> serde_json::Value {
    use hub_store::Place;
    let broken: Vec<serde_json::Value> = r
        .broken
        .iter()
        .map(|b| {
            let mut v = match &b.at {
                Place::Entry { task_id, seq } => {
                    serde_json::json!({"task_id": task_id, "seq": seq})
                }
                Place::Task { task_id } => serde_json::json!({"task_id": task_id}),
                Place::Checkpoint { id } => serde_json::json!({"checkpoint": id}),
            };
            v["where"] = b.at.to_string().into();
            v["reason"] = b.reason.clone().into();
            v
        })
        .collect();
    serde_json::json!({
        "clean": r.is_clean(),
        "tasks": r.tasks,
        "entries": r.entries,
        "unchained_entries": r.unchained,
        "checkpoints": r.checkpoints,
        "signed_checkpoints": r.signed_checkpoints,
        "unsigned_checkpoints": r.unsigned_checkpoints,
        "broken_total": r.broken_total,
        "broken": broken,
    })
}
