//! `hub-sim`: the simulated departmental systems as a standalone service (docker-compose).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use hub_schemas::event::Department;
use hub_simulator::civil_affairs_db::FakeCivilAffairsDb;
use hub_simulator::generator::load_addresses;
use hub_simulator::live::{push_cases, Simulation};
use hub_simulator::sensors::{LiveBins, SensorGateway, TOPIC_PREFIX};
use hub_simulator::webhook_client::WebhookClient;

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
    /// Also run bin-fill sensors publishing to this MQTT broker (`host:port`).
    #[arg(long, value_name = "HOST:PORT")]
    mqtt: Option<String>,
    /// Number of simulated bins.
    #[arg(long, default_value_t = 40)]
    bins: usize,
    /// Also push urban-management cases to this hub webhook URL, signed with
    /// `--webhook-secret`.
    #[arg(long, value_name = "URL")]
    webhook_url: Option<String>,
    /// Secret shared with the hub for signing pushes.
    #[arg(long, env = "HUB_SIM_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
    /// Also run the civil-affairs welfare database in this PostgreSQL database (created
    /// table, seeded cases, periodic check-ins).
    #[arg(
        long,
        env = "HUB_SIM_CIVIL_AFFAIRS_DB",
        hide_env_values = true,
        value_name = "URL"
    )]
    civil_affairs_db: Option<String>,
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
    let interval = Duration::from_millis(args.interval_ms);
    let _bins = match &args.mqtt {
        None => None,
        Some(broker) => {
            let (host, port) = broker
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
                .ok_or_else(|| format!("--mqtt `{broker}`: expected HOST:PORT"))?;
            let gateway =
                Arc::new(SensorGateway::connect(&host, port, "hub-sim-bin-gateway").await);
            println!(
                "{:<17} mqtt://{host}:{port}/{TOPIC_PREFIX}/<bin>/reading ({} bins)",
                "sanitation bins", args.bins
            );
            Some(LiveBins::start(
                gateway,
                TOPIC_PREFIX.to_owned(),
                &addresses_again(&args)?,
                args.bins,
                interval,
                7,
            ))
        }
    };
    let _pushes = match (&args.webhook_url, &args.webhook_secret) {
        (None, _) => None,
        (Some(_), None) => {
            return Err("--webhook-url needs --webhook-secret (or HUB_SIM_WEBHOOK_SECRET)".into())
        }
        (Some(url), Some(secret)) => {
            println!("{:<17} pushing to {url}", "urban mgmt push");
            Some(push_cases(
                WebhookClient::new(url.clone(), secret.clone()),
                addresses_again(&args)?,
                interval,
                11,
            ))
        }
    };
    let _welfare = match &args.civil_affairs_db {
        None => None,
        Some(url) => {
            let db = FakeCivilAffairsDb::attach(url).await?;
            db.seed(&addresses_again(&args)?, 20, chrono::Utc::now(), 5)
                .await?;
            println!(
                "{:<17} table welfare_case (check-ins every {} ms)",
                "civil affairs db", args.interval_ms
            );
            let task = db.run_check_ins(interval, 13);
            Some((db, task))
        }
    };
    tokio::signal::ctrl_c().await?;
    Ok(())
}

fn addresses_again(args: &Args) -> Result<Vec<hub_simulator::generator::Address>, String> {
    load_addresses(&args.addresses)
}
