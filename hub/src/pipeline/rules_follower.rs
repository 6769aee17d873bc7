//! Follows the store's active rules version (`[routing] source = "store"`): every process of
//! a city routes with the version an administrator published or rolled back to, within a
//! poll of it, whichever process or machine the command ran on.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hub_store::TaskStore;

use crate::context::routing::RoutingState;
use crate::context::rules_versions;
use crate::infra::shutdown::Shutdown;
use crate::infra::telemetry;

pub struct RulesFollower {
    pub routing: Arc<RoutingState>,
    pub store: Arc<dyn TaskStore>,
    /// Where versions' files are written to be loaded.
    pub data_dir: PathBuf,
    pub every: Duration,
}

#[async_trait::async_trait]
impl crate::infra::supervisor::Service for RulesFollower {
    async fn run(&mut self, mut shutdown: Shutdown) -> anyhow::Result<()> {
        // A version that did not load is not tried again until another is activated.
        let mut refused: Option<String> = None;
        while shutdown.sleep(self.every).await {
            let Some(active) = rules_versions::active(&*self.store).await? else {
                continue;
            };
            let running = self.routing.version();
            if active.version == running || refused.as_ref() == Some(&active.version) {
                continue;
            }
            match rules_versions::load_version(&*self.store, &active.version, &self.data_dir).await
            {
                Ok(loaded) => {
                    self.routing.install(loaded);
                    refused = None;
                    tracing::info!(
                        version = %active.version,
                        was = %running,
                        action = %active.action,
                        author = %active.author,
                        "routing with the rules version activated in the store"
                    );
                    metrics::counter!(telemetry::RULES_RELOADS, "outcome" => "applied")
                        .increment(1);
                }
                Err(e) => {
                    tracing::error!(
                        version = %active.version,
                        keeping = %running,
                        error = %format!("{e:#}"),
                        "the active rules version does not load in this process; it keeps \
                         routing with the version it has"
                    );
                    metrics::counter!(telemetry::RULES_RELOADS, "outcome" => "refused")
                        .increment(1);
                    refused = Some(active.version);
                }
            }
        }
        Ok(())
    }
}
