//! The routing configuration a running hub routes with (its hot reload is
//! `crate::pipeline::watcher`).
//!
//! A change to the files is validated (`hub_router::config::check`) and its rule tests run
//! before it is swapped in, atomically; a failing change is refused with the reasons logged,
//! and the previous version keeps routing. Every task records the version it was routed with.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use hub_router::config::{self, Checked};
use hub_router::rules_test;
use hub_router::Router;

/// The current router, shared by the pipeline and the API.
pub struct RoutingState {
    pub(crate) dir: PathBuf,
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
