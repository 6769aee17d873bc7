//! `hub run`: a hub process from a configuration file, until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use crate::config::HubConfig;
use crate::context::Roles;
use crate::startup;

pub async fn run(
    config_path: PathBuf,
    listen: Option<SocketAddr>,
    roles: Roles,
) -> anyhow::Result<()> {
    let mut config = HubConfig::load(&config_path)?;
    if let Some(listen) = listen {
        config.listen = listen;
    }
    let hub = startup::start(&config, roles, crate::context::env_secrets())
        .await
        .with_context(|| format!("starting the hub from {}", config_path.display()))?;
    if let Some(addr) = hub.api_addr {
        println!("hub: API on http://{addr} (tasks: http://{addr}/api/v1/tasks)");
    }
    hub.run_until_interrupted().await
}
