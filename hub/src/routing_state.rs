//! The routing configuration a running hub routes with, and its hot reload.
//!
//! A change to the files is validated (`hub_router::config::check`) and its rule tests run
//! before it is swapped in, atomically; a failing change is refused with the reasons logged,
//! and the previous version keeps routing. Every task records the version it was routed with.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use hub_router::config::{self, Checked};
use hub_router::rules_test;
use hub_router::Router;

use crate::shutdown::Shutdown;
use crate::telemetry;

/// The current router, shared by the pipeline and the API.
pub struct RoutingState {
    dir: PathBuf,
    current: RwLock<Arc<Router>>,
}

/// Why a configuration was refused: every problem found, one per line.
#[derive(Debug, thiserror::Error)]
#[error("routing configuration in {dir} refused:\n{problems}")]
pub struct Refused {
    pub dir: String,
    pub problems: String,
}

/// Load, validate and test the configuration in `dir`.
pub fn load(dir: &Path) -> Result<Router, Refused> {
    let refused = |problems: String| Refused {
        dir: dir.display().to_string(),
        problems,
    };
    let Checked {
        config,
        tests,
        warnings,
    } = config::check(dir).map_err(|problems| {
        refused(
            problems
                .iter()
                .map(|p| format!("  {p}"))
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    for w in &warnings {
        tracing::warn!(warning = %w, "routing configuration");
    }
    let router = Router::new(config);
    let report = rules_test::run(&router, &tests);
    if !report.passed() {
        return Err(refused(format!("rule tests failed:\n{report}")));
    }
    Ok(router)
}

impl RoutingState {
    pub fn new(dir: &Path, router: Router) -> Self {
        RoutingState {
            dir: dir.to_owned(),
            current: RwLock::new(Arc::new(router)),
        }
    }

    pub fn current(&self) -> Arc<Router> {
        self.current.read().expect("routing lock").clone()
    }

    /// Try the files as they are now; swap them in if they pass.
    pub fn reload(&self) -> Result<String, Refused> {
        let router = load(&self.dir)?;
        let version = router.config().version().to_owned();
        *self.current.write().expect("routing lock") = Arc::new(router);
        Ok(version)
    }
}

/// Watches the routing folder and reloads on change: the routing configuration (validated
/// and tested first) and the accounts of `access.toml`, which lives in the same folder and
/// is resolved against the city that routes.
pub struct Watcher {
    pub routing: Arc<RoutingState>,
    pub access: Arc<crate::access::AccessState>,
    pub every: Duration,
}

#[async_trait::async_trait]
impl crate::supervisor::Service for Watcher {
    async fn run(&mut self, mut shutdown: Shutdown) -> anyhow::Result<()> {
        let dir = self.routing.dir.clone();
        let mut seen = fingerprint(&dir);
        while shutdown.sleep(self.every).await {
            let now = fingerprint(&dir);
            if now == seen {
                continue;
            }
            seen = now;
            let state = self.routing.clone();
            // Loading parses polygons and runs tests: keep it off the async workers.
            let outcome = tokio::task::spawn_blocking(move || state.reload()).await;
            match outcome {
                Ok(Ok(version)) => {
                    tracing::info!(version = %version, "routing configuration reloaded");
                    metrics::counter!(telemetry::RULES_RELOADS, "outcome" => "applied")
                        .increment(1);
                }
                Ok(Err(refused)) => {
                    let old = self.routing.current().config().version().to_owned();
                    tracing::error!(keeping = %old, "{refused}");
                    metrics::counter!(telemetry::RULES_RELOADS, "outcome" => "refused")
                        .increment(1);
                }
                Err(e) => anyhow::bail!("the routing reload task failed: {e}"),
            }
            let router = self.routing.current();
            match self.access.reload(router.config().city()) {
                Ok(()) => tracing::info!("accounts reloaded from {}", crate::access::ACCESS_FILE),
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
