//! What every layer of the hub shares, depending on no other module of it: the accounts and
//! what they may do ([`access`]), the health of connectors and of the routing pipeline
//! ([`health`]), the routing configuration in force ([`routing`]) and its versions in the
//! store ([`rules_versions`]), the roles of this process and how secrets are looked up.

pub mod access;
pub mod health;
pub mod routing;
pub mod rules_versions;

use std::sync::Arc;

/// Looks up a secret (a connector's token, an account's token) by the name of the
/// environment variable the configuration gives.
pub type Secrets = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Secrets from the process environment.
pub fn env_secrets() -> Secrets {
    Arc::new(|name| std::env::var(name).ok())
}

/// What one hub process runs. A city can split them over processes; by default all run.
#[derive(Debug, Clone, Copy)]
pub struct Roles {
    pub connectors: bool,
    pub router: bool,
    pub api: bool,
}

impl Roles {
    pub const ALL: Roles = Roles {
        connectors: true,
        router: true,
        api: true,
    };
}
