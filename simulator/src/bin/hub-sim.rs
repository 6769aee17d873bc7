//! `hub-sim`: the simulated departmental systems as a standalone service (docker-compose).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use hub_schemas::event::Department;
use hub_simulator::generator::load_addresses;
use hub_simulator::live::Simulation;

#[derive(Parser)]
#[command(
    version,
    about = "Simulated police, urban-management, sanitation and civil-affairs systems"
)]
struct Args {
    /// Address to bind every fake system on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Ports: police, urban management, sanitation, civil affairs = base, base+1, base+2, base+3.
    #[arg(long, default_value_t = 9101)]
    base_port: u16,
    /// Bearer token every fake system accepts.
    #[arg(long, env = "HUB_SIM_TOKEN", default_value = "demo-token")]
    token: String,
    /// The sample city's gazetteer.
    #[arg(long, default_value = "config/city/addresses.csv")]
    addresses: PathBuf,
    /// Milliseconds between new records.
    #[arg(long, default_value_t = 1500)]
    interval_ms: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let addresses = load_addresses(&args.addresses)?;
    let port = |d: Department| match d {
        Department::Police => args.base_port,
        Department::UrbanManagement => args.base_port + 1,
        Department::Sanitation => args.base_port + 2,
        _ => args.base_port + 3,
    };
    let sim = Simulation::start(
        addresses,
        &args.token,
        |d| SocketAddr::new(args.host, port(d)),
        5,
        Duration::from_millis(args.interval_ms),
    )
    .await?;
    for fake in &sim.fakes {
        println!(
            "{:<17} {}{}",
            fake.department().as_str(),
            fake.base_url(),
            fake.shape().path
        );
    }
    tokio::signal::ctrl_c().await?;
    Ok(())
}
