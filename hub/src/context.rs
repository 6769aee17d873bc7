//! Handles shared by every layer of the hub, with no dependencies of their own: how secrets
//! are looked up.

use std::sync::Arc;

/// Looks up a secret (a connector's token, an account's token) by the name of the
/// environment variable the configuration gives.
pub type Secrets = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Secrets from the process environment.
pub fn env_secrets() -> Secrets {
    Arc::new(|name| std::env::var(name).ok())
}
