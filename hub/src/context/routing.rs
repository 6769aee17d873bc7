//! The routing configuration a running hub routes with: the router (city, taxonomy, rules,
//! admission lists) and the SLA policies and calendars of the same version, swapped together.
//!
//! A configuration is validated (`hub_router::config::check`, the SLA policies the rules
//! name) and its rule tests run before it is swapped in, atomically; a failing one is
//! refused with the reasons, and the previous version keeps routing. Every task records the
//! version it was routed with. Where a new version comes from is the caller's: the routing
//! folder (`crate::pipeline::watcher`) or the store's active rules version
//! (`crate::pipeline::rules_follower`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use hub_cases::SlaConfig;
use hub_router::bundle::{Bundle, SLA_DIR};
use hub_router::config::{self, Checked};
use hub_router::rules_test;
use hub_router::Router;

/// A routing configuration, loaded and tested.
pub struct Loaded {
    pub router: Router,
    pub sla: SlaConfig,
    /// A digest of everything but the SLA policies and calendars: two configurations with
    /// the same one route every event alike (a replay then routes it once).
    pub routing_digest: String,
}

impl Loaded {
    pub fn version(&self) -> &str {
        self.router.config().version()
    }
}

/// The configuration in force, shared by the pipeline, the case workflow and the API.
pub struct RoutingState {
    /// The routing folder this process was started with (its accounts file lives there).
    pub(crate) dir: PathBuf,
    current: RwLock<(Arc<Router>, Arc<SlaConfig>)>,
}

/// Why a configuration was refused: every problem found, one per line.
#[derive(Debug, thiserror::Error)]
#[error("routing configuration in {dir} refused:\n{problems}")]
pub struct Refused {
    pub dir: String,
    pub problems: String,
}

/// Load, validate and test the configuration in `dir`.
pub fn load(dir: &Path) -> Result<Loaded, Refused> {
    let refused = |problems: String| Refused {
        dir: dir.display().to_string(),
        problems,
    };
    let lines = |problems: &[hub_router::diagnostic::Diagnostic]| {
        problems
            .iter()
            .map(|p| format!("  {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let Checked {
        config,
        tests,
        warnings,
    } = config::check(dir).map_err(|problems| refused(lines(&problems)))?;
    for w in &warnings {
        tracing::warn!(warning = %w, "routing configuration");
    }
    let sla_dir = dir.join(SLA_DIR);
    let sla = SlaConfig::load(&sla_dir)
        .map_err(|e| refused(format!("  SLA policies in {}: {e}", sla_dir.display())))?;
    let unknown = config.check_sla_policies(|name| sla.policies.get(name).is_some());
    if !unknown.is_empty() {
        return Err(refused(lines(&unknown)));
    }
    let router = Router::new(config);
    let report = rules_test::run(&router, &tests);
    if !report.passed() {
        return Err(refused(format!("rule tests failed:\n{report}")));
    }
    let routing_digest = Bundle::read(dir)
        .map(|b| b.without(SLA_DIR).digest())
        .map_err(|e| refused(format!("  {e}")))?;
    Ok(Loaded {
        router,
        sla,
        routing_digest,
    })
}

impl RoutingState {
    pub fn new(dir: &Path, loaded: Loaded) -> Self {
        RoutingState {
            dir: dir.to_owned(),
            current: RwLock::new((Arc::new(loaded.router), Arc::new(loaded.sla))),
        }
    }

    pub fn current(&self) -> Arc<Router> {
        self.current.read().expect("routing lock").0.clone()
    }

    /// The SLA policies and calendars of the version in force.
    pub fn sla(&self) -> Arc<SlaConfig> {
        self.current.read().expect("routing lock").1.clone()
    }

    /// The version in force.
    pub fn version(&self) -> String {
        self.current().config().version().to_owned()
    }

    /// Routes with `loaded` from now on.
    pub fn install(&self, loaded: Loaded) {
        *self.current.write().expect("routing lock") =
            (Arc::new(loaded.router), Arc::new(loaded.sla));
    }

    /// Try the routing folder as it is now; swap it in if it passes.
    pub fn reload(&self) -> Result<String, Refused> {
        let loaded = load(&self.dir)?;
        let version = loaded.version().to_owned();
        self.install(loaded);
        Ok(version)
    }
}
