//! `hub`: the command line of the civic integration hub.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hub::app::{self, Roles};
use hub::config::HubConfig;

#[derive(Parser)]
#[command(
    name = "hub",
    version,
    about = "Civic integration hub: links departmental systems (police, urban management, \
             sanitation, civil affairs, residents) to communities under the 1+2+X model",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub with a configuration file. Without configured Kafka brokers it starts its
    /// embedded broker; with an sqlite:// store it needs nothing else.
    Run {
        /// The hub configuration file.
        #[arg(long, default_value = "config/hub.toml")]
        config: PathBuf,
        /// HTTP API address (overrides `listen` in the file).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// What this process runs, comma-separated: connectors, router, api. A city can run
        /// connectors and routers in separate processes.
        #[arg(long, value_delimiter = ',', default_values = ["connectors", "router", "api"])]
        roles: Vec<Role>,
    },
    /// Run the hub with the shipped sample city and simulated departmental systems feeding
    /// live events. Needs no arguments. Run it from the project folder.
    Demo {
        /// HTTP API address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Where the demo keeps its store and broker data (wiped at start).
        #[arg(long, default_value = "data/demo")]
        data_dir: PathBuf,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Role {
    Connectors,
    Router,
    Api,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    hub::telemetry::init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            config,
            listen,
            roles,
        } => {
            let roles = Roles {
                connectors: roles.contains(&Role::Connectors),
                router: roles.contains(&Role::Router),
                api: roles.contains(&Role::Api),
            };
            run(config, listen, roles).await
        }
        Command::Demo { listen, data_dir } => hub::demo::run(listen, data_dir).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hub: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(config_path: PathBuf, listen: Option<SocketAddr>, roles: Roles) -> anyhow::Result<()> {
    let mut config = HubConfig::load(&config_path)?;
    if let Some(listen) = listen {
        config.listen = listen;
    }
    let hub = app::start(&config, roles, app::env_secrets())
        .await
        .with_context(|| format!("starting the hub from {}", config_path.display()))?;
    if let Some(addr) = hub.api_addr {
        println!("hub: API on http://{addr} (tasks: http://{addr}/api/v1/tasks)");
    }
    hub.run_until_interrupted().await
}
