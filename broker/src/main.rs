//! `hub-broker`: runs the tansu Kafka-protocol broker on loopback with SQLite storage.
//!
//! The hub (`hub demo`, `hub run` without configured brokers) and the test harness start this
//! binary as a child process. It prints one line `hub-broker ready 127.0.0.1:PORT` on stdout
//! once the port accepts connections, so the parent never races for a port.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Parser;
use tansu_broker::{broker::Broker, coordinator::group::administrator::Controller};
use tansu_storage::StorageContainer;
use tokio::io::AsyncReadExt;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Embedded Kafka-protocol broker (tansu, SQLite storage) for the hub"
)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Folder holding the broker's SQLite file (created if missing; survives restarts).
    #[arg(long, default_value = "data/broker")]
    data_dir: PathBuf,
    /// Stop when standard input closes, i.e. when the parent process is gone.
    #[arg(long)]
    exit_with_parent: bool,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(e) = run(args).await {
        eprintln!("hub-broker: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", args.data_dir.display()))?;
    // tansu takes the SQLite path relative to the working directory.
    std::env::set_current_dir(&args.data_dir)?;

    // The advertised port must equal the bound one, so port 0 is resolved here first;
    // a rare race with another process is retried.
    let mut last_err = None;
    for _ in 0..5 {
        let addr = resolve_port(args.listen)?;
        match start(addr).await {
            Ok(task) => {
                println!("hub-broker ready {addr}");
                if args.exit_with_parent {
                    tokio::spawn(async {
                        let mut buf = [0u8; 64];
                        let mut stdin = tokio::io::stdin();
                        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
                        std::process::exit(0);
                    });
                }
                task.await?;
                return Ok(());
            }
            Err(e) if args.listen.port() == 0 => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| "could not start the broker".into()))
}

fn resolve_port(listen: SocketAddr) -> std::io::Result<SocketAddr> {
    if listen.port() != 0 {
        return Ok(listen);
    }
    std::net::TcpListener::bind(listen)?.local_addr()
}

async fn start(
    addr: SocketAddr,
) -> Result<tokio::task::JoinHandle<()>, Box<dyn std::error::Error>> {
    let url = url::Url::parse(&format!("tcp://{addr}"))?;
    let mut broker = Broker::<Controller<StorageContainer>, StorageContainer>::builder()
        .node_id(111)
        .cluster_id("civic-hub")
        .incarnation_id(uuid::Uuid::new_v4())
        .advertised_listener(url.clone())
        .listener(url)
        .storage(url::Url::parse("sqlite://broker.db")?)
        .silent(true)
        .build()
        .await?;
    let task = tokio::spawn(async move {
        if let Err(e) = broker.serve(tokio::time::Instant::now()).await {
            eprintln!("hub-broker: broker stopped: {e}");
            std::process::exit(1);
        }
    });
    // Ready when the port accepts connections.
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(task);
        }
        if task.is_finished() {
            return Err(format!("broker exited while starting on {addr}").into());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    task.abort();
    Err(format!("broker did not accept connections on {addr} within 5 s").into())
}
