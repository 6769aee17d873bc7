//! A live simulation: the four departments' fake systems, each publishing a realistic record
//! every few seconds, as `hub demo` and the docker-compose `simulator` service run them.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::Utc;
use hub_schemas::event::Department;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::generator::{Address, Generator};
use crate::server::FakeDepartment;

/// The departments with a polled system (residents come in through Open311 instead).
pub const POLLED_DEPARTMENTS: [Department; 4] = [
    Department::Police,
    Department::UrbanManagement,
    Department::Sanitation,
    Department::CivilAffairs,
];

pub struct Simulation {
    pub fakes: Vec<FakeDepartment>,
    feeder: tokio::task::JoinHandle<()>,
}

impl Simulation {
    /// Start one fake per polled department on `addr(department)`, publish `initial` records
    /// to each at once, then one record to a random department every `interval`.
    pub async fn start(
        addresses: Vec<Address>,
        token: &str,
        addr: impl Fn(Department) -> SocketAddr,
        initial: usize,
        interval: Duration,
    ) -> std::io::Result<Self> {
        Self::start_for(
            &POLLED_DEPARTMENTS,
            addresses,
            token,
            addr,
            initial,
            interval,
        )
        .await
    }

    /// As [`Simulation::start`], for the given departments only.
    pub async fn start_for(
        departments: &[Department],
        addresses: Vec<Address>,
        token: &str,
        addr: impl Fn(Department) -> SocketAddr,
        initial: usize,
        interval: Duration,
    ) -> std::io::Result<Self> {
        let mut fakes = Vec::new();
        for d in departments.iter().copied() {
            fakes.push(FakeDepartment::start(d, token, addr(d)).await?);
        }
        let seed = Utc::now().timestamp_millis() as u64;
        let mut generator = Generator::new(addresses, seed);
        for fake in &fakes {
            for _ in 0..initial {
                fake.publish(&generator.record(fake.department(), Utc::now()));
            }
        }
        let handles: Vec<_> = fakes.iter().map(|f| f.publisher()).collect();
        let feeder = tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed);
            loop {
                tokio::time::sleep(interval).await;
                if handles.is_empty() {
                    continue;
                }
                let publisher = &handles[rng.random_range(0..handles.len())];
                publisher.publish(&generator.record(publisher.department(), Utc::now()));
            }
        });
        Ok(Simulation { fakes, feeder })
    }

    pub fn fake(&self, department: Department) -> Option<&FakeDepartment> {
        self.fakes.iter().find(|f| f.department() == department)
    }
}

impl Drop for Simulation {
    fn drop(&mut self) {
        self.feeder.abort();
    }
}

/// Push a generated urban-management case to the hub's webhook every `interval`, as a
/// department with a push integration does (re-signed and retried on failure).
pub fn push_cases(
    client: crate::webhook_client::WebhookClient,
    addresses: Vec<Address>,
    interval: Duration,
    seed: u64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut generator = Generator::new(addresses, seed);
        loop {
            tokio::time::sleep(interval).await;
            let record = generator.record(Department::UrbanManagement, Utc::now());
            match client.push_with_retry(&record, 5).await {
                Ok(d) if d.status >= 300 => {
                    tracing::warn!(status = d.status, "the hub refused a pushed case")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "pushing a case to the hub failed"),
            }
        }
    })
}
