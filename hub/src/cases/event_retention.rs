//! The event log's retention: accepted events older than `[replay] keep_days` are forgotten,
//! once an hour, by every process with the router role (deleting what another process just
//! deleted deletes nothing).

use std::sync::Arc;
use std::time::Duration;

use hub_store::TaskStore;

use crate::infra::shutdown::Shutdown;

pub struct EventRetention {
    pub store: Arc<dyn TaskStore>,
    pub keep_days: u32,
    pub every: Duration,
}

#[async_trait::async_trait]
impl crate::infra::supervisor::Service for EventRetention {
    async fn run(&mut self, mut shutdown: Shutdown) -> anyhow::Result<()> {
        if self.keep_days == 0 {
            return Ok(());
        }
        loop {
            let before = chrono::Utc::now() - chrono::TimeDelta::days(self.keep_days.into());
            match self.store.prune_events(before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(events = n, %before, "event log pruned"),
                Err(e) => tracing::warn!(error = %e, "event log not pruned; next turn"),
            }
            if !shutdown.sleep(self.every).await {
                return Ok(());
            }
        }
    }
}
