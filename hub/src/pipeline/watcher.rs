//! Watches the routing folder and reloads what changed: the routing configuration
//! (validated and its rule tests run before it is swapped in; a failing change is refused
//! with the reasons logged and the previous version keeps routing) and the accounts of
//! `access.toml`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::context::routing::RoutingState;
use crate::infra::shutdown::Shutdown;
use crate::infra::telemetry;

/// Watches the routing folder and reloads on change: the routing configuration (validated
/// and tested first) and the accounts of `access.toml`, which lives in the same folder and
/// is resolved against the city that routes.
pub struct Watcher {
    pub routing: Arc<RoutingState>,
    /// Whether the routing configuration comes from these files (else only the accounts
    /// are reloaded: the rules follow the store's active version).
    pub rules_from_files: bool,
    pub access: Arc<crate::context::access::AccessState>,
    pub every: Duration,
}

#[async_trait::async_trait]
impl crate::infra::supervisor::Service for Watcher {
    async fn run(&mut self, mut shutdown: Shutdown) -> anyhow::Result<()> {
        let dir = self.routing.dir.clone();
        let mut seen = fingerprint(&dir);
        while shutdown.sleep(self.every).await {
            let now = fingerprint(&dir);
            if now == seen {
                continue;
            }
            seen = now;
            if self.rules_from_files {
                self.reload_rules().await?;
            }
            let router = self.routing.current();
            match self.access.reload(router.config().city()) {
                Ok(()) => tracing::info!(
                    "accounts reloaded from {}",
                    crate::context::access::ACCESS_FILE
                ),
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "accounts file refused; the accounts in force stay");
                    metrics::counter!(telemetry::RULES_RELOADS, "outcome" => "access_refused")
                        .increment(1);
                }
            }
        }
        Ok(())
    }
}

impl Watcher {
    /// Tries the routing folder as it is now (validated and tested first).
    async fn reload_rules(&self) -> anyhow::Result<()> {
        let state = self.routing.clone();
        // Loading parses polygons and runs tests: keep it off the async workers.
        let outcome = tokio::task::spawn_blocking(move || state.reload()).await;
        match outcome {
            Ok(Ok(version)) => {
                tracing::info!(version = %version, "routing configuration reloaded");
                metrics::counter!(telemetry::RULES_RELOADS, "outcome" => "applied").increment(1);
            }
            Ok(Err(refused)) => {
                let old = self.routing.version();
                tracing::error!(keeping = %old, "{refused}");
                metrics::counter!(telemetry::RULES_RELOADS, "outcome" => "refused").increment(1);
            }
            Err(e) => anyhow::bail!("the routing reload task failed: {e}"),
        }
        Ok(())
    }
}

/// Names, sizes and modification times of every file under `dir`: a change to any of them
/// is a new configuration to try.
fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(path),
                Ok(m) => out.push((path, m.len(), m.modified().ok())),
                Err(_) => {}
            }
        }
    }
    out.sort();
    out
}
