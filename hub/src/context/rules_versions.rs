//! Rules versions through the store: publishing a routing folder as a new version,
//! rolling back to an earlier one, and loading the active one to route with.
//!
//! A version is published or reactivated only after it loads here: validated, its SLA
//! policy names known, its rule tests passing (`routing::load`), with this binary. Every hub
//! process whose `[routing] source` is `store` routes with the active version: it writes the
//! version's files under `<data_dir>/rules/<version>/` and loads them from there, so a
//! version is loaded exactly as a folder is.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use chrono::Utc;
use hub_router::bundle::Bundle;
use hub_store::{Activating, RulesActivation, RulesVersion, TaskStore};

use super::routing::{load, Loaded, RoutingState};

/// What [`publish`] did.
#[derive(Debug)]
pub enum Published {
    /// The folder is a new active version (`diff` against the one before).
    Activated {
        activation: RulesActivation,
        diff: String,
    },
    /// The folder is the version already active: nothing was written.
    AlreadyActive { version: String },
}

/// The version that routes, if any was ever published.
pub async fn active(store: &dyn TaskStore) -> anyhow::Result<Option<RulesActivation>> {
    Ok(store.rules_activations(1).await?.into_iter().next())
}

/// Loads `dir` (refusing it with every problem if it fails), stores it as a version unless
/// it is the active one, and activates it.
pub async fn publish(
    store: &dyn TaskStore,
    dir: &Path,
    author: &str,
    message: &str,
) -> anyhow::Result<Published> {
    let bundle = Bundle::read(dir).with_context(|| format!("reading {}", dir.display()))?;
    let owned = dir.to_owned();
    let loaded = tokio::task::spawn_blocking(move || load(&owned))
        .await
        .context("loading the routing configuration")??;
    let version = loaded.version().to_owned();
    if version != bundle.digest() {
        bail!(
            "{} changed while it was being published; publish it again",
            dir.display()
        );
    }
    let before = match active(store).await? {
        Some(a) if a.version == version => return Ok(Published::AlreadyActive { version }),
        Some(a) => stored_bundle(store, &a.version).await?,
        None => Bundle::default(),
    };
    let diff = bundle.diff(&before);
    let activation = store
        .publish_rules(
            &RulesVersion {
                seq: 0,
                version,
                author: author.to_owned(),
                at: Utc::now(),
                message: message.to_owned(),
                diff: diff.clone(),
                files: bundle.files().clone(),
            },
            &Activating {
                action: "publish".into(),
                author: author.to_owned(),
                at: Utc::now(),
                message: message.to_owned(),
            },
        )
        .await
        .context(
            "storing the version (another publish at the same moment is refused; try again)",
        )?;
    Ok(Published::Activated { activation, diff })
}

/// Makes `to` (or, without it, the version active before the current one) the active
/// version again, after loading it with this binary. `scratch` is where its files are
/// written to be loaded.
pub async fn rollback(
    store: &dyn TaskStore,
    to: Option<&str>,
    author: &str,
    message: &str,
    scratch: &Path,
) -> anyhow::Result<RulesActivation> {
    let history = store.rules_activations(1000).await?;
    let Some(current) = history.first() else {
        bail!("no rules version was ever published: nothing to roll back");
    };
    let target = match to {
        Some(v) => v.to_owned(),
        None => match history.iter().find(|a| a.version != current.version) {
            Some(a) => a.version.clone(),
            None => bail!(
                "only {} was ever active: there is no earlier version to roll back to",
                current.version
            ),
        },
    };
    if target == current.version {
        bail!("{target} is the active version already");
    }
    let dir = materialize(store, &target, scratch).await?;
    tokio::task::spawn_blocking(move || load(&dir))
        .await
        .context("loading the version")?
        .with_context(|| format!("{target} no longer loads with this hub; it stays inactive"))?;
    store
        .activate_rules(
            &target,
            &Activating {
                action: "rollback".into(),
                author: author.to_owned(),
                at: Utc::now(),
                message: message.to_owned(),
            },
        )
        .await?
        .with_context(|| format!("no rules version {target} is stored"))
}

/// The configuration a process whose rules come from the store starts with: the active
/// version, or — on the very first start — `dir` published as the first version.
pub async fn load_active(
    store: &dyn TaskStore,
    dir: &Path,
    data_dir: &Path,
) -> anyhow::Result<Loaded> {
    let version = match active(store).await? {
        Some(a) => a.version,
        None => {
            let first = publish(
                store,
                dir,
                "hub",
                &format!("首个版本（启动时发布自 {}）", dir.display()),
            )
            .await;
            match (first, active(store).await?) {
                (Ok(_), Some(a)) => a.version,
                // Another process published first (the same folder, in a city's rollout).
                (Err(_), Some(a)) => a.version,
                (Err(e), None) => return Err(e),
                (Ok(_), None) => bail!("the first rules version was published but is not active"),
            }
        }
    };
    load_version(store, &version, data_dir).await
}

/// A stored version in force on its own: what a process uses for the work of a version it
/// does not (yet) route with, such as re-routing open tasks at its activation.
pub async fn routing_of(
    store: &dyn TaskStore,
    version: &str,
    data_dir: &Path,
) -> anyhow::Result<RoutingState> {
    let loaded = load_version(store, version, data_dir).await?;
    let dir = materialize(store, version, data_dir).await?;
    Ok(RoutingState::new(&dir, loaded))
}

/// Loads a stored version (written under `data_dir`).
pub async fn load_version(
    store: &dyn TaskStore,
    version: &str,
    data_dir: &Path,
) -> anyhow::Result<Loaded> {
    let dir = materialize(store, version, data_dir).await?;
    let loaded = tokio::task::spawn_blocking(move || load(&dir))
        .await
        .context("loading the rules version")??;
    if loaded.version() != version {
        bail!(
            "rules version {version} loads as {}: its stored files were changed",
            loaded.version()
        );
    }
    Ok(loaded)
}

async fn stored_bundle(store: &dyn TaskStore, version: &str) -> anyhow::Result<Bundle> {
    let v = store
        .rules_version(version)
        .await?
        .with_context(|| format!("no rules version {version} is stored"))?;
    Bundle::from_files(v.files).with_context(|| format!("rules version {version}"))
}

/// The folder holding `version`'s files under `base/rules/`, written once (into a
/// temporary folder renamed into place, so a process stopped halfway leaves no half
/// version behind).
pub async fn materialize(
    store: &dyn TaskStore,
    version: &str,
    base: &Path,
) -> anyhow::Result<PathBuf> {
    if !version.starts_with("r-") || !version[2..].chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("`{version}` is not a rules version (r- and hex digits)");
    }
    let root = base.join("rules");
    let dir = root.join(version);
    if dir.is_dir() {
        return Ok(dir);
    }
    let bundle = stored_bundle(store, version).await?;
    let partial = root.join(format!(".{version}.{}", rand::random::<u64>()));
    let written = bundle.write(&partial).and_then(|()| {
        match std::fs::rename(&partial, &dir) {
            // Another task of this process wrote it meanwhile: the same files.
            Err(_) if dir.is_dir() => std::fs::remove_dir_all(&partial),
            other => other,
        }
    });
    written.with_context(|| format!("writing rules version {version} under {}", root.display()))?;
    Ok(dir)
}
