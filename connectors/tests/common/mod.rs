//! The hub's ingest loop in miniature: drives a [`Source`] the way
//! `hub/src/pipeline/ingest.rs` is meant to (map, collect, save the cursor, then commit), so
//! each source is tested against its fake exactly as the hub will use it.
#![allow(dead_code)]

use std::time::Duration;

use chrono::Utc;
use hub_connectors::mapping::{Mapped, Mapper, MappingContext};
use hub_connectors::{Outcome, RawRecord, Source, SourceError};
use hub_schemas::event::CivicEvent;

pub const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn postgres_url() -> String {
    std::env::var("HUB_TEST_POSTGRES_URL").unwrap_or_else(|_| POSTGRES_URL.to_owned())
}

/// What the "hub" kept: events produced, records dead-lettered with their reasons, skips,
/// and the last saved cursor.
#[derive(Debug, Default)]
pub struct Hub {
    pub events: Vec<CivicEvent>,
    pub dead: Vec<(RawRecord, String)>,
    pub skipped: Vec<String>,
    pub cursor: Option<String>,
    pub batches: usize,
}

impl Hub {
    pub fn source_ids(&self) -> Vec<String> {
        self.events.iter().map(|e| e.source_id.clone()).collect()
    }

    /// One turn of the loop. Returns whether the source says more is ready.
    pub async fn turn(
        &mut self,
        source: &mut dyn Source,
        mapper: &Mapper,
    ) -> Result<bool, SourceError> {
        let batch = source.next_batch().await?;
        self.batches += 1;
        let ctx = MappingContext {
            source_system: "test.connector",
            received_at: Utc::now(),
            limits: Default::default(),
        };
        let mut outcomes = Vec::new();
        for record in &batch.records {
            match mapper.map(ctx, record) {
                Ok(Mapped::Event(e)) => {
                    self.events.push(*e);
                    outcomes.push(Outcome::Produced);
                }
                Ok(Mapped::Skip { reason }) => {
                    self.skipped.push(reason.clone());
                    outcomes.push(Outcome::Skipped { reason });
                }
                Err(e) => {
                    self.dead.push((record.clone(), e.to_string()));
                    outcomes.push(Outcome::DeadLettered {
                        reason: e.to_string(),
                    });
                }
            }
        }
        for r in batch.rejected {
            self.dead.push((r.record, r.reason));
        }
        if let Some(c) = batch.cursor {
            self.cursor = Some(c);
        }
        source.commit(batch.receipt, &outcomes).await?;
        Ok(batch.more)
    }

    /// Turn until `done` holds, retrying transient errors (as the hub does with backoff);
    /// fails the test with the last error after `within`.
    pub async fn run_until(
        &mut self,
        source: &mut dyn Source,
        mapper: &Mapper,
        within: Duration,
        mut done: impl FnMut(&Hub) -> bool,
    ) -> Vec<SourceError> {
        let deadline = tokio::time::Instant::now() + within;
        let mut errors = Vec::new();
        while !done(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "not done within {within:?}: {} events, {} dead, errors: {:?}",
                self.events.len(),
                self.dead.len(),
                errors.iter().map(ToString::to_string).collect::<Vec<_>>()
            );
            let turn = tokio::time::timeout_at(deadline, self.turn(source, mapper)).await;
            match turn {
                Err(_) => continue,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    assert!(e.is_transient(), "a non-transient error while running: {e}");
                    errors.push(e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        errors
    }
}

pub fn addresses() -> Vec<hub_simulator::generator::Address> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/city/addresses.csv");
    hub_simulator::generator::load_addresses(&path).expect("the sample city's gazetteer loads")
}

/// The shared Mosquitto at 127.0.0.1:1883; a test fails with this message when it is not
/// running (these tests are never skipped).
pub fn require_mosquitto() {
    if std::net::TcpStream::connect_timeout(
        &"127.0.0.1:1883".parse().unwrap(),
        Duration::from_secs(2),
    )
    .is_err()
    {
        panic!(
            "Mosquitto is not reachable at 127.0.0.1:1883: install and start it \
             (Debian: apt-get install mosquitto; mosquitto -d) — the sanitation MQTT tests need it"
        );
    }
}

/// A private Mosquitto on a free port, for tests that stop the broker or need passwords.
pub struct PrivateBroker {
    pub port: u16,
    child: Option<std::process::Child>,
    dir: std::path::PathBuf,
}

impl PrivateBroker {
    /// `password`: Some((user, pass)) turns anonymous access off.
    pub fn start(password: Option<(&str, &str)>) -> Self {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let dir = std::env::temp_dir().join(format!("hub-mqtt-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut conf = format!(
            "listener {port} 127.0.0.1\npersistence true\npersistence_location {}/\nuser root\n",
            dir.display()
        );
        match password {
            None => conf.push_str("allow_anonymous true\n"),
            Some((user, pass)) => {
                let file = dir.join("passwords");
                let status = std::process::Command::new("mosquitto_passwd")
                    .args(["-b", "-c"])
                    .arg(&file)
                    .args([user, pass])
                    .status()
                    .unwrap_or_else(|e| panic!("mosquitto_passwd is needed for this test (apt-get install mosquitto): {e}"));
                assert!(status.success(), "mosquitto_passwd failed");
                conf.push_str(&format!(
                    "allow_anonymous false\npassword_file {}\n",
                    file.display()
                ));
            }
        }
        std::fs::write(dir.join("mosquitto.conf"), conf).unwrap();
        let mut broker = PrivateBroker {
            port,
            child: None,
            dir,
        };
        broker.resume();
        broker
    }

    /// Start (again) on the same port and data.
    pub fn resume(&mut self) {
        let child = std::process::Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("the mosquitto broker binary is needed for this test (apt-get install mosquitto): {e}"));
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the private mosquitto did not start on port {}", self.port);
    }

    /// Stop gracefully (SIGTERM: Mosquitto saves its sessions and queued messages).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
