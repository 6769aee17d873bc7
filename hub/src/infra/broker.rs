//! Starts the embedded Kafka-protocol broker (`hub-broker`, tansu) as a child process.
//!
//! It runs in its own process because tansu links its own SQLite, which cannot share a
//! binary with sqlx's. The child exits when this process goes away (it watches its stdin).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct EmbeddedBroker {
    child: Child,
    bootstrap: String,
}

impl EmbeddedBroker {
    /// Start a broker on a free loopback port keeping its data in `data_dir`.
    pub async fn start(data_dir: &Path) -> anyhow::Result<Self> {
        Self::start_on(data_dir, "127.0.0.1:0").await
    }

    /// Start on a given address (a restarted broker keeps its port so clients reconnect).
    pub async fn start_on(data_dir: &Path, listen: &str) -> anyhow::Result<Self> {
        let bin = broker_binary()?;
        let mut child = Command::new(&bin)
            .arg("--listen")
            .arg(listen)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--exit-with-parent")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let stdout = child.stdout.take().context("broker stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(addr) = line.strip_prefix("hub-broker ready ") {
                    return Ok::<_, std::io::Error>(Some(addr.trim().to_owned()));
                }
            }
            Ok(None)
        })
        .await;
        let bootstrap = match ready {
            Ok(Ok(Some(addr))) => addr,
            Ok(Ok(None)) => bail!(
                "{} exited before it was ready (see its error above)",
                bin.display()
            ),
            Ok(Err(e)) => bail!("reading from {}: {e}", bin.display()),
            Err(_) => bail!("{} was not ready within 30 s", bin.display()),
        };
        Ok(EmbeddedBroker { child, bootstrap })
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stop the broker (kill) and wait for it to exit.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// `hub-broker` sits next to the hub executable (`target/<profile>/`); test executables live
/// one level down in `deps/`. `HUB_BROKER_BIN` overrides both.
fn broker_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("HUB_BROKER_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("locating the current executable")?;
    let mut candidates = Vec::new();
    if let Some(dir) = exe.parent() {
        candidates.push(dir.join("hub-broker"));
        if let Some(up) = dir.parent() {
            candidates.push(up.join("hub-broker"));
        }
    }
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    bail!(
        "the embedded broker `hub-broker` was not found (looked at {}). Build it with \
         `cargo build --workspace --bins`, or set kafka.brokers to use an existing Kafka cluster",
        candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}
