//! `hub demo`: the hub with the shipped sample city and the simulated departmental systems
//! publishing live events, everything on loopback with no setup.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hub_simulator::generator::load_addresses;
use hub_simulator::live::Simulation;

use crate::app::{self, display_dir, Roles};
use crate::config::{ConnectorConfig, ConnectorKind, HubConfig};

/// The bearer token the simulated departmental systems accept (demo only).
pub const DEMO_TOKEN: &str = "demo-token";

pub async fn run(listen: SocketAddr, data_dir: PathBuf) -> anyhow::Result<()> {
    let shipped = Path::new("config/hub.toml");
    if !shipped.is_file() {
        anyhow::bail!(
            "{} not found: run `hub demo` from the project folder (it uses the shipped sample city)",
            display_dir(shipped)
        );
    }
    let mut config = HubConfig::load(shipped)?;
    if data_dir.exists() {
        std::fs::remove_dir_all(&data_dir)
            .with_context(|| format!("clearing {}", display_dir(&data_dir)))?;
    }
    config.store.url = format!("sqlite://{}/hub.db", data_dir.display());
    config.data_dir = data_dir;
    config.listen = listen;
    config.kafka.brokers.clear();

    let addresses =
        load_addresses(&config.city.dir.join("addresses.csv")).map_err(anyhow::Error::msg)?;
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let sim = Simulation::start(
        addresses,
        DEMO_TOKEN,
        |_| loopback,
        3,
        Duration::from_millis(700),
    )
    .await
    .context("starting the simulated departmental systems")?;
    config.connectors = sim
        .fakes
        .iter()
        .map(|fake| {
            let shape = fake.shape();
            ConnectorConfig {
                name: format!("{}.demo", fake.department().as_str()),
                department: fake.department().as_str().to_owned(),
                kind: ConnectorKind::HttpPoll,
                base_url: fake.base_url(),
                path: shape.path.to_owned(),
                token_env: "HUB_DEMO_TOKEN".to_owned(),
                cursor_param: shape.cursor_param.to_owned(),
                items_pointer: shape.items_pointer.to_owned(),
                cursor_pointer: shape.cursor_pointer.to_owned(),
                page_size: 50,
                poll_interval_ms: 1000,
                timeout_ms: 5000,
            }
        })
        .collect();

    let hub = app::start(
        &config,
        Roles::ALL,
        Arc::new(|_: &str| Some(DEMO_TOKEN.to_owned())),
    )
    .await
    .context("starting the hub")?;
    let api = hub
        .api_addr
        .map(|a| format!("http://{a}"))
        .unwrap_or_default();
    println!();
    let city = hub_router::city::City::load(&config.city.dir)?;
    println!(
        "Civic integration hub demo: sample city {}, {} streets, {} communities, {} grids",
        city.district().name,
        city.streets().len(),
        city.communities().len(),
        city.grids().len()
    );
    println!("  Kafka (embedded broker):  {}", hub.kafka_brokers);
    println!("  task store:               {}", config.store.url);
    for fake in &sim.fakes {
        println!(
            "  simulated {:<16} {}{} (token {DEMO_TOKEN})",
            fake.department().as_str(),
            fake.base_url(),
            fake.shape().path
        );
    }
    println!();
    println!("Try:");
    println!("  curl -s {api}/api/v1/tasks?limit=5");
    println!("  curl -s '{api}/api/v1/tasks?department=police&status=dispatched'");
    println!("  curl -s {api}/api/v1/tasks?community=510504001001");
    println!(
        "  curl -s {api}/api/v1/tasks/<task_id>      # with the routing explanation and history"
    );
    println!("  curl -s {api}/healthz");
    println!("  curl -s {api}/metrics");
    println!("  kcat -C -b {} -t hub.feed.urban-management -c 1 -e | xxd | head   # Avro, Confluent wire format", hub.kafka_brokers);
    println!();
    println!(
        "The API needs no token yet. Ctrl-C stops the demo; its data stays in {}.",
        display_dir(&config.data_dir)
    );
    let result = hub.run_until_interrupted().await;
    drop(sim);
    result
}
