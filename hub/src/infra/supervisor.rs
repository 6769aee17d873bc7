//! Supervision of the hub's long-running tasks: each connector, the routing pipeline, the
//! outbox relays, the SLA tracker, the routing-configuration watcher and the HTTP server.
//!
//! A task that dies — returns an error, panics, or ends while the hub is running — is logged
//! with its cause, counted (`hub_supervisor_restarts_total`), shown in `/healthz` as
//! `restarting` with the cause, and started again after a backoff (200 ms doubling to 30 s;
//! reset once a run lasted a minute). Each [`Service`] resumes from what the store and the
//! broker hold (saved cursors, committed offsets, open clocks), so a restart neither loses
//! nor repeats work. Shutdown ends every task for good.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use hub_connectors::backoff::Backoff;
use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::infra::shutdown::Shutdown;
use crate::infra::telemetry;

/// A long-running task of the hub.
#[async_trait]
pub trait Service: Send + 'static {
    /// Runs until `shutdown` (then `Ok`), or until it fails. Called again after a failure:
    /// it must start from what the store and the broker hold, not from memory.
    async fn run(&mut self, shutdown: Shutdown) -> anyhow::Result<()>;
}

/// What `/healthz` shows of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Running,
    /// It died; it is started again after a backoff.
    Restarting,
    /// The hub is stopping.
    Stopped,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskHealth {
    /// `connector`, `routing_pipeline`, `outbox_relay`, `sla_tracker`, `routing_watcher`,
    /// `http`.
    pub kind: &'static str,
    pub state: TaskState,
    pub started_at: DateTime<Utc>,
    pub restarts: u64,
    pub last_failure: Option<String>,
    pub last_failure_at: Option<DateTime<Utc>>,
}

/// Every supervised task of this process, by name.
#[derive(Default)]
pub struct Registry {
    tasks: RwLock<BTreeMap<String, (TaskHealth, Arc<Notify>)>>,
}

impl Registry {
    pub fn snapshot(&self) -> BTreeMap<String, TaskHealth> {
        self.tasks
            .read()
            .expect("supervisor lock")
            .iter()
            .map(|(k, (h, _))| (k.clone(), h.clone()))
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<TaskHealth> {
        self.tasks
            .read()
            .expect("supervisor lock")
            .get(name)
            .map(|(h, _)| h.clone())
    }

    /// Ends the current run of a task as if it had crashed (an operator's or a test's
    /// "kill"); the supervisor restarts it. False when no task has that name.
    pub fn kill(&self, name: &str) -> bool {
        match self.tasks.read().expect("supervisor lock").get(name) {
            Some((_, kill)) => {
                kill.notify_one();
                true
            }
            None => false,
        }
    }

    fn started(&self, name: &str, kind: &'static str) -> Arc<Notify> {
        let mut all = self.tasks.write().expect("supervisor lock");
        let entry = all.entry(name.to_owned()).or_insert_with(|| {
            (
                TaskHealth {
                    kind,
                    state: TaskState::Running,
                    started_at: Utc::now(),
                    restarts: 0,
                    last_failure: None,
                    last_failure_at: None,
                },
                Arc::new(Notify::new()),
            )
        });
        entry.0.state = TaskState::Running;
        entry.0.started_at = Utc::now();
        entry.1.clone()
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut TaskHealth)) {
        if let Some((h, _)) = self.tasks.write().expect("supervisor lock").get_mut(name) {
            f(h);
        }
    }
}

/// Starts services under supervision.
#[derive(Clone)]
pub struct Supervisor {
    pub registry: Arc<Registry>,
    shutdown: Shutdown,
}

/// A run that lasted this long was healthy: the next failure starts the backoff anew.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

impl Supervisor {
    pub fn new(shutdown: Shutdown) -> Self {
        Supervisor {
            registry: Arc::new(Registry::default()),
            shutdown,
        }
    }

    /// Runs `service` on `tasks` as `name` until shutdown, restarting it whenever it dies.
    pub fn spawn(
        &self,
        tasks: &mut JoinSet<()>,
        name: impl Into<String>,
        kind: &'static str,
        mut service: impl Service,
    ) {
        let name = name.into();
        let registry = self.registry.clone();
        let mut shutdown = self.shutdown.clone();
        tasks.spawn(async move {
            let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
            loop {
                let kill = registry.started(&name, kind);
                let began = Instant::now();
                let ended = tokio::select! {
                    r = AssertUnwindSafe(service.run(shutdown.clone())).catch_unwind() => r,
                    _ = kill.notified() => Ok(Err(anyhow::anyhow!("killed (its run was ended from outside)"))),
                };
                if shutdown.is_stopping() {
                    registry.update(&name, |h| h.state = TaskState::Stopped);
                    return;
                }
                let cause = match ended {
                    Ok(Ok(())) => "it ended while the hub was running".to_owned(),
                    Ok(Err(e)) => format!("{e:#}"),
                    Err(panic) => format!("it panicked: {}", panic_message(panic.as_ref())),
                };
                if began.elapsed() >= HEALTHY_RUN {
                    backoff.reset();
                }
                let delay = backoff.next_delay();
                tracing::error!(task = %name, kind, cause = %cause, restart_in_ms = delay.as_millis() as u64, "a hub task died; restarting it");
                metrics::counter!(telemetry::SUPERVISOR_RESTARTS, "task" => name.clone())
                    .increment(1);
                registry.update(&name, |h| {
                    h.state = TaskState::Restarting;
                    h.restarts += 1;
                    h.last_failure = Some(cause);
                    h.last_failure_at = Some(Utc::now());
                });
                if !shutdown.sleep(delay).await {
                    registry.update(&name, |h| h.state = TaskState::Stopped);
                    return;
                }
            }
        });
    }
}

/// The text a panic carried.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// Fails its first two runs (an error, then a panic), then runs until shutdown.
    struct Flaky(Arc<AtomicU32>);

    #[async_trait]
    impl Service for Flaky {
        async fn run(&mut self, mut shutdown: Shutdown) -> anyhow::Result<()> {
            match self.0.fetch_add(1, Ordering::SeqCst) {
                0 => anyhow::bail!("the store went away"),
                1 => panic!("a bug"),
                _ => {
                    shutdown.wait().await;
                    Ok(())
                }
            }
        }
    }

    #[tokio::test]
    async fn a_dying_task_is_restarted_with_its_cause_recorded_and_stops_at_shutdown() {
        let (trigger, shutdown) = crate::infra::shutdown::channel();
        let supervisor = Supervisor::new(shutdown);
        let runs = Arc::new(AtomicU32::new(0));
        let mut tasks = JoinSet::new();
        supervisor.spawn(&mut tasks, "flaky", "test", Flaky(runs.clone()));
        let deadline = Instant::now() + Duration::from_secs(5);
        while runs.load(Ordering::SeqCst) < 3 {
            assert!(Instant::now() < deadline, "not restarted twice");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let h = supervisor.registry.get("flaky").unwrap();
        assert_eq!(h.state, TaskState::Running);
        assert_eq!(h.restarts, 2);
        assert!(h.last_failure.unwrap().contains("panicked: a bug"));
        assert!(supervisor.registry.kill("flaky"));
        let deadline = Instant::now() + Duration::from_secs(5);
        while runs.load(Ordering::SeqCst) < 4 {
            assert!(Instant::now() < deadline, "not restarted after a kill");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(supervisor
            .registry
            .get("flaky")
            .unwrap()
            .last_failure
            .unwrap()
            .contains("killed"));
        trigger.stop();
        while tasks.join_next().await.is_some() {}
        assert_eq!(
            supervisor.registry.get("flaky").unwrap().state,
            TaskState::Stopped
        );
    }
}
