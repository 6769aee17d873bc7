//! Checkpoints of the case histories' hash chains (`hub_store::Audit`): every so often the
//! heads of the chains that moved are recorded, signed with `HUB_AUDIT_KEY`, so that a
//! history rewritten in the database afterwards shows in `hub audit verify`.
//!
//! Every process with the router role runs one; two checkpointing at once take the same
//! number and the store refuses the second, which records those heads at its next turn.

use std::sync::Arc;
use std::time::Duration;

use hub_store::TaskStore;

use crate::infra::shutdown::Shutdown;

/// The environment variable holding the key checkpoints are signed with: kept out of the
/// database, so that someone who can write the database cannot sign a rewritten history.
pub const KEY_VAR: &str = "HUB_AUDIT_KEY";

/// The signing key from [`KEY_VAR`]; `None` (unsigned checkpoints) when it is unset or empty.
pub fn key_from_env() -> Option<Vec<u8>> {
    std::env::var(KEY_VAR)
        .ok()
        .filter(|k| !k.is_empty())
        .map(String::into_bytes)
}

pub struct HistoryCheckpoints {
    pub store: Arc<dyn TaskStore>,
    pub key: Option<Vec<u8>>,
    pub every: Duration,
}

#[async_trait::async_trait]
impl crate::infra::supervisor::Service for HistoryCheckpoints {
    async fn run(&mut self, mut shutdown: Shutdown) -> anyhow::Result<()> {
        while shutdown.sleep(self.every).await {
            let at = chrono::Utc::now();
            match self.store.checkpoint_history(self.key.as_deref(), at).await {
                Ok(Some(c)) => tracing::info!(
                    checkpoint = c.id,
                    heads = c.heads,
                    signed = c.signed,
                    "history checkpoint recorded"
                ),
                Ok(None) => {}
                // Another process took this number, or the store is away: next turn.
                Err(e) => tracing::warn!(error = %e, "history checkpoint not recorded"),
            }
        }
        Ok(())
    }
}
