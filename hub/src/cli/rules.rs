//! `hub rules check` and `hub rules test` read the routing folder and print; `hub rules
//! publish`, `rollback` and `versions` work on the rules versions in the store the hub
//! configuration names. None needs a running hub.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use chrono::Utc;
use hub_cases::Actor;
use hub_router::config;
use hub_router::rules_test;
use hub_router::Router;
use hub_store::TaskStore;

use crate::cases::reroute::reroute_unsigned;
use crate::cases::service::CaseService;
use crate::config::HubConfig;
use crate::context::rules_versions::{self, Published};

/// Validate the city, taxonomy, rules and rule tests; non-zero exit with every problem.
pub fn rules_check(dir: &Path) -> anyhow::Result<()> {
    match config::check(dir) {
        Ok(checked) => {
            for w in &checked.warnings {
                println!("{w}");
            }
            println!(
                "ok: {} — rules version {}, {} rule tests",
                dir.display(),
                checked.config.version(),
                checked.tests.len()
            );
            Ok(())
        }
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            let errors = problems.iter().filter(|p| p.is_error()).count();
            bail!("{} has {errors} error(s)", dir.display())
        }
    }
}

/// Run the rule tests written next to the rules.
pub fn rules_test(dir: &Path) -> anyhow::Result<()> {
    let checked = match config::check(dir) {
        Ok(c) => c,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            bail!(
                "{} does not validate; run `hub rules check` for details",
                dir.display()
            );
        }
    };
    let router = Router::new(checked.config);
    let report = rules_test::run(&router, &checked.tests);
    println!("{report}");
    if !report.passed() {
        bail!("rule tests failed");
    }
    Ok(())
}

async fn store_of(config: &Path) -> anyhow::Result<(Arc<dyn TaskStore>, HubConfig)> {
    let config = HubConfig::load(config)?;
    let store = hub_store::open(&config.store.url)
        .await
        .with_context(|| format!("opening the store at {}", config.store.url))?;
    Ok((store, config))
}

/// `hub rules publish`
pub async fn publish(
    config: &Path,
    dir: &Path,
    author: &str,
    message: &str,
    reroute_unsigned: bool,
) -> anyhow::Result<()> {
    let (store, config) = store_of(config).await?;
    let version = match rules_versions::publish(&*store, dir, author, message).await? {
        Published::AlreadyActive { version } => {
            println!(
                "{} is {version}, the active version already: nothing published",
                dir.display()
            );
            version
        }
        Published::Activated { activation, diff } => {
            let (added, removed) = diff_counts(&diff);
            println!(
                "published {} as the active version (activation {}): {added} line(s) added, {removed} removed",
                activation.version, activation.seq
            );
            print!("{diff}");
            activation.version
        }
    };
    if reroute_unsigned {
        reroute(store, &config, &version, author).await?;
    }
    Ok(())
}

/// Re-routes the open tasks nobody signed for with `version` and prints what it did.
async fn reroute(
    store: Arc<dyn TaskStore>,
    config: &HubConfig,
    version: &str,
    author: &str,
) -> anyhow::Result<()> {
    let routing = rules_versions::routing_of(&*store, version, &config.data_dir).await?;
    let cases = CaseService::new(store, Arc::new(routing));
    let actor = Actor::person(author, None);
    let report = reroute_unsigned(&cases, &actor, Utc::now()).await?;
    println!(
        "open tasks nobody had signed for: {}; re-routed by {}: {}; unchanged: {}; left as they are: {}",
        report.considered,
        report.version,
        report.rerouted.len(),
        report.unchanged,
        report.left.len()
    );
    for r in &report.rerouted {
        let co = if r.co_handlers.is_empty() {
            String::new()
        } else {
            format!(" with {}", r.co_handlers.join(", "))
        };
        println!(
            "  {}  {} -> {}{co}",
            r.task_id,
            r.from.as_deref().unwrap_or("(triage)"),
            r.to
        );
    }
    for (task, why) in &report.left {
        println!("  {task}  left: {why}");
    }
    Ok(())
}

/// `hub rules rollback`
pub async fn rollback(
    config: &Path,
    to: Option<&str>,
    author: &str,
    message: &str,
    reroute_unsigned: bool,
) -> anyhow::Result<()> {
    let (store, config) = store_of(config).await?;
    let a = rules_versions::rollback(&*store, to, author, message, &config.data_dir).await?;
    println!(
        "{} is the active version again (activation {})",
        a.version, a.seq
    );
    if reroute_unsigned {
        reroute(store, &config, &a.version, author).await?;
    }
    Ok(())
}

/// `hub rules versions`
pub async fn versions(config: &Path, diff: Option<&str>) -> anyhow::Result<()> {
    let (store, _) = store_of(config).await?;
    if let Some(version) = diff {
        let v = store
            .rules_version(version)
            .await?
            .with_context(|| format!("no rules version {version} is stored"))?;
        println!(
            "{} (version {}) by {} at {}: {}",
            v.version, v.seq, v.author, v.at, v.message
        );
        print!("{}", v.diff);
        return Ok(());
    }
    let activations = store.rules_activations(20).await?;
    let active = activations.first().map(|a| a.version.clone());
    println!("versions (newest first):");
    for v in store.rules_versions().await?.iter().rev() {
        let (added, removed) = diff_counts(&v.diff);
        println!(
            "{} {:>4}  {}  {}  {:<16} +{added} -{removed}  {}",
            if Some(&v.version) == active.as_ref() {
                "*"
            } else {
                " "
            },
            v.seq,
            v.version,
            v.at.format("%Y-%m-%d %H:%M:%S"),
            v.author,
            v.message
        );
    }
    println!("activations (newest first):");
    for a in &activations {
        println!(
            "  {:>4}  {}  {:<8} {}  {:<16} {}",
            a.seq,
            a.at.format("%Y-%m-%d %H:%M:%S"),
            a.action,
            a.version,
            a.author,
            a.message
        );
    }
    Ok(())
}

/// Lines added and removed in a diff.
fn diff_counts(diff: &str) -> (usize, usize) {
    let count = |p: &str, header: &str| {
        diff.lines()
            .filter(|l| l.starts_with(p) && !l.starts_with(header))
            .count()
    };
    (count("+", "+++ "), count("-", "--- "))
}
