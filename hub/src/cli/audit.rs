//! `hub audit`: proof that no case history was rewritten in the database, and the trail of
//! who did what. It reads the store the configuration names directly, as a DBA or an
//! auditor would, not through a running hub: the answer must not depend on the process it
//! is checking.

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

/// `hub audit actions`: the action trail of a period, as a table or CSV (the same CSV as
/// `GET /api/v1/audit/actions?format=csv`).
pub async fn actions(
    config: &Path,
    from: Option<String>,
    to: Option<String>,
    actor: Option<String>,
    csv: bool,
) -> anyhow::Result<()> {
    let q = crate::http::audit::ActionsQuery {
        from,
        to,
        actor,
        ..Default::default()
    };
    let (mut query, _) = crate::http::audit::parse(&q)
        .map_err(|e| anyhow::anyhow!("{}", e.1["error"].as_str().unwrap_or("bad arguments")))?;
    let store = open(config).await?;
    let mut out = std::io::stdout().lock();
    use std::io::Write as _;
    if csv {
        writeln!(out, "{}", hub_store::ActionRecord::CSV_HEADER)?;
    }
    // Page by id, so a long trail is never held whole.
    query.limit = crate::http::audit::PAGE_MAX;
    let mut shown = 0u64;
    loop {
        let page = store.actions(&query).await?;
        for a in &page {
            if csv {
                writeln!(out, "{}", a.csv_row())?;
            } else {
                let at =
                    a.at.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8"));
                writeln!(
                    out,
                    "{:>6}  {}  {:<12} {:<13} {:<8} {:<28} {:<38} {:>3}  {:<15} {}",
                    a.id,
                    at.format("%Y-%m-%d %H:%M:%S"),
                    if a.actor.is_empty() { "-" } else { &a.actor },
                    if a.role.is_empty() { "-" } else { &a.role },
                    a.via,
                    a.action,
                    if a.target.is_empty() { "-" } else { &a.target },
                    a.outcome,
                    if a.source.is_empty() { "-" } else { &a.source },
                    a.detail
                )?;
            }
        }
        shown += page.len() as u64;
        match page.last() {
            Some(last) if page.len() as u32 == query.limit => query.after_id = Some(last.id),
            _ => break,
        }
    }
    if !csv {
        writeln!(out, "{shown} action(s)")?;
    }
    Ok(())
}

fn print_report(r: &AuditReport, keyed: bool) {
    println!(
        "{} task(s), {} history entries ({} from before the chain began), {} checkpoint(s), \
         {} rules version(s), {} activation(s)",
        r.tasks, r.entries, r.unchained, r.checkpoints, r.rules_versions, r.rules_activations
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
                Place::RulesVersion { seq } => serde_json::json!({"rules_version": seq}),
                Place::RulesActivation { seq } => serde_json::json!({"rules_activation": seq}),
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
        "rules_versions": r.rules_versions,
        "rules_activations": r.rules_activations,
        "signed_checkpoints": r.signed_checkpoints,
        "unsigned_checkpoints": r.unsigned_checkpoints,
        "broken_total": r.broken_total,
        "broken": broken,
    })
}
