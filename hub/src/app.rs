//! Wiring: build every component of a hub process from its configuration and run them.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hub_router::city::City;
use hub_schemas::codec::Codec;
use hub_schemas::registry::{HttpRegistry, LocalRegistry, Registry};
use hub_store::TaskStore;
use tokio::task::JoinSet;

use crate::api::PIPELINE_TASK;
use crate::broker::EmbeddedBroker;
use crate::config::HubConfig;
use crate::dispatcher::Dispatcher;
use crate::health::Health;
use crate::http::auth::AuthState;
use crate::http::RouteTable;
use crate::kafka::Kafka;
use crate::outbox_relay::{Destination, Relay};
use crate::routing_state::RoutingState;
use crate::shutdown::{self, ShutdownTrigger};
use crate::supervisor::Supervisor;
use crate::{api, telemetry};

/// What one hub process runs. A city can split them over processes; by default all run.
#[derive(Debug, Clone, Copy)]
pub struct Roles {
    pub connectors: bool,
    pub router: bool,
    pub api: bool,
}

impl Roles {
    pub const ALL: Roles = Roles {
        connectors: true,
        router: true,
        api: true,
    };
}

pub use crate::context::{env_secrets, Secrets};

/// Clients and state shared by the components of one process.
pub struct Shared {
    pub kafka: Kafka,
    pub codec: Arc<Codec>,
    pub store: Arc<dyn TaskStore>,
    pub city: Arc<City>,
    pub health: Arc<Health>,
    /// Tasks' lifecycle and SLA clocks (Open311 shows the due time as `expected_datetime`).
    pub workflow: Arc<crate::case_workflow::Workflow>,
    /// The bounds records from outside are held to (`[input]`).
    pub limits: hub_schemas::limits::InputLimits,
    /// How the routing pipeline is doing.
    pub pipeline: Arc<crate::health::PipelineStatus>,
}

/// Fault injection for tests (none in production).
#[derive(Clone, Default)]
pub struct Hooks {
    pub routing: crate::dispatcher::Hooks,
}

/// A running hub process.
pub struct RunningHub {
    pub api_addr: Option<SocketAddr>,
    pub kafka_brokers: String,
    pub store: Arc<dyn TaskStore>,
    pub workflow: Arc<crate::case_workflow::Workflow>,
    /// The supervised tasks of this process (and a way to kill one, for tests).
    pub supervisor: Supervisor,
    /// Every HTTP route this process serves, with who may call it.
    pub routes: Vec<crate::http::RouteInfo>,
    /// How long [`RunningHub::stop`] waits for tasks to finish their work.
    pub drain: Duration,
    trigger: ShutdownTrigger,
    tasks: JoinSet<()>,
    broker: Option<EmbeddedBroker>,
}

impl RunningHub {
    /// Stop every component gracefully (connectors finish their page, the router commits
    /// its offsets), waiting at most the drain limit; then the embedded broker if this
    /// process started one. A task still busy after the limit is abandoned: what it had
    /// not committed is redelivered after the next start, so nothing is lost.
    pub async fn stop(mut self) {
        self.trigger.stop();
        let drained = tokio::time::timeout(self.drain, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                drain_ms = self.drain.as_millis() as u64,
                still_running = self.tasks.len(),
                "tasks did not stop within the drain limit; abandoning them"
            );
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
        if let Some(broker) = self.broker.take() {
            broker.stop().await;
        }
    }

    /// Run until Ctrl-C or SIGTERM (how orchestrators stop a process), then stop.
    pub async fn run_until_interrupted(self) -> anyhow::Result<()> {
        let signal = wait_for_stop_signal().await?;
        tracing::info!(signal, "stopping");
        self.stop().await;
        Ok(())
    }
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM; returns which.
async fn wait_for_stop_signal() -> anyhow::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C").map(|_| "SIGINT"),
            _ = term.recv() => Ok("SIGTERM"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")
            .map(|_| "Ctrl-C")
    }
}

/// Start a hub process. With no brokers configured it starts the embedded broker first.
pub async fn start(
    config: &HubConfig,
    roles: Roles,
    secrets: Secrets,
) -> anyhow::Result<RunningHub> {
    start_with(config, roles, secrets, Hooks::default()).await
}

/// [`start`] with test hooks.
pub async fn start_with(
    config: &HubConfig,
    roles: Roles,
    secrets: Secrets,
    hooks: Hooks,
) -> anyhow::Result<RunningHub> {
    let metrics = telemetry::metrics_handle();
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;

    // Loaded, validated and tested before anything starts; a failing configuration stops
    // the start with every problem listed.
    let routing_dir = config.routing.dir.clone();
    let router = tokio::task::spawn_blocking(move || crate::routing_state::load(&routing_dir))
        .await
        .context("loading the routing configuration")??;
    tracing::info!(
        version = router.config().version(),
        "routing configuration loaded"
    );
    let city: Arc<City> = router.config().city().clone();
    let routing = Arc::new(RoutingState::new(&config.routing.dir, router));
    let store = hub_store::open(&config.store.url)
        .await
        .with_context(|| format!("opening store {}", redact_url(&config.store.url)))?;
    // The case workflow (SLA policies in <routing dir>/sla) and the API's accounts.
    let workflow = crate::case_workflow::Workflow::load(&config.routing.dir, store.clone())?;
    let access = Arc::new(crate::access::AccessState::load(
        &config.routing.dir,
        &city,
        secrets.clone(),
    )?);

    let broker = if config.kafka.brokers.trim().is_empty() {
        let broker = EmbeddedBroker::start(&config.data_dir.join("broker")).await?;
        tracing::info!(bootstrap = broker.bootstrap(), "embedded broker started");
        Some(broker)
    } else {
        None
    };
    let brokers = broker
        .as_ref()
        .map(|b| b.bootstrap().to_owned())
        .unwrap_or_else(|| config.kafka.brokers.clone());
    let kafka = Kafka::connect(&brokers, &config.kafka.client_id)?;
    kafka.ensure_topics(&config.all_topics()).await?;

    let registry = if config.schema_registry.url.trim().is_empty() {
        Registry::from(LocalRegistry::open(
            config.data_dir.join("schema-ids.json"),
        )?)
    } else {
        Registry::from(HttpRegistry::new(&config.schema_registry.url)?)
    };
    let shared = Shared {
        kafka: kafka.clone(),
        codec: Arc::new(Codec::new(registry)),
        store: store.clone(),
        city: city.clone(),
        health: Arc::new(Health::default()),
        workflow: workflow.clone(),
        limits: config.input.limits(),
        pipeline: Arc::new(crate::health::PipelineStatus::default()),
    };

    let (trigger, shutdown) = shutdown::channel();
    let supervisor = Supervisor::new(shutdown.clone());
    let mut tasks = JoinSet::new();
    let dead_letter_topic = config.kafka.topics.dead_letter.name.clone();

    // Connectors (role `connectors`) and their HTTP side (webhooks, Open311, dead letters).
    let connector_routes =
        crate::ingest::start_connectors(config, roles, &secrets, &shared, &supervisor, &mut tasks)?;
    if roles.router {
        let feeds: Vec<&str> = config
            .kafka
            .topics
            .feeds
            .values()
            .map(|t| t.name.as_str())
            .collect();
        let feeds: Vec<String> = feeds.into_iter().map(str::to_owned).collect();
        let (consumer_kafka, group, assignment) = (
            kafka.clone(),
            config.kafka.router_group.clone(),
            config.kafka.router_assignment,
        );
        let new_consumer: crate::dispatcher::ConsumerFactory = Box::new(move || {
            let feeds: Vec<&str> = feeds.iter().map(String::as_str).collect();
            consumer_kafka.consumer(&group, assignment, &feeds)
        });
        let dispatcher = Dispatcher::new(
            new_consumer,
            kafka.clone(),
            shared.codec.clone(),
            routing.clone(),
            store.clone(),
            workflow.clone(),
            dead_letter_topic.clone(),
            config.input.limits(),
            shared.pipeline.clone(),
            hooks.routing.clone(),
        );
        supervisor.spawn(&mut tasks, PIPELINE_TASK, "routing_pipeline", dispatcher);
    }
    if config.routing.reload_check_ms > 0 {
        // Routing rules and the accounts file (access.toml lives in the same folder).
        let watcher = crate::routing_state::Watcher {
            routing: routing.clone(),
            access: access.clone(),
            every: Duration::from_millis(config.routing.reload_check_ms),
        };
        supervisor.spawn(&mut tasks, "routing_watcher", "routing_watcher", watcher);
    }
    if roles.router {
        let holder = format!("{}-{}", config.kafka.client_id, uuid_like());
        let mut destinations = vec![Destination::Kafka {
            kafka: kafka.clone(),
            codec: shared.codec.clone(),
            tasks_topic: config.kafka.topics.tasks.name.clone(),
            status_topic: config.kafka.topics.task_status.name.clone(),
        }];
        for w in &config.webhooks {
            let secret = secrets(&w.secret_env).with_context(|| {
                format!(
                    "webhook for {}: environment variable {} (its signing secret) is not set",
                    w.department, w.secret_env
                )
            })?;
            destinations.push(Destination::Webhook {
                department: hub_schemas::event::Department::parse(&w.department)
                    .expect("validated at load"),
                url: w.url.clone(),
                secret: hub_connectors::Secret::new(secret),
                client: reqwest::Client::builder()
                    .timeout(std::time::Duration::from_millis(w.timeout_ms))
                    .build()
                    .context("building the webhook HTTP client")?,
            });
        }
        for destination in destinations {
            let name = format!("outbox_relay:{}", destination.name());
            let relay = Relay {
                destination,
                store: store.clone(),
                holder: holder.clone(),
            };
            supervisor.spawn(&mut tasks, name, "outbox_relay", relay);
        }
        let tracker = crate::sla_tracker::SlaTracker {
            workflow: workflow.clone(),
            routing: routing.clone(),
            holder: holder.clone(),
            poll: std::time::Duration::from_millis(250),
        };
        supervisor.spawn(&mut tasks, "sla_tracker", "sla_tracker", tracker);
    }
    let mut api_addr = None;
    let mut served = Vec::new();
    if roles.api {
        let listener = std::net::TcpListener::bind(config.listen)
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        listener.set_nonblocking(true)?;
        api_addr = Some(listener.local_addr()?);
        let live = Arc::new(crate::live_stream::LiveFeed::default());
        let feed = crate::live_stream::LiveFeedTask {
            feed: live.clone(),
            workflow: workflow.clone(),
            after: None,
        };
        supervisor.spawn(&mut tasks, "live_stream", "live_stream", feed);
        let console = crate::console_api::ConsoleState {
            workflow: workflow.clone(),
            routing: routing.clone(),
            shutdown: shutdown.clone(),
            streams: Arc::default(),
            live,
        };
        let mut table = RouteTable::default();
        table.add(api::routes(api::ApiState {
            routing: routing.clone(),
            store: store.clone(),
            health: shared.health.clone(),
            metrics,
            tasks: supervisor.registry.clone(),
            pipeline: shared.pipeline.clone(),
            routes_events: roles.router,
            limits: config.input.limits(),
        }));
        table.add(crate::console_api::routes(console.clone()));
        table.add(crate::indicators::routes(console));
        table.add(connector_routes.routes);
        let (app, routes) = table.build(AuthState {
            access: access.clone(),
            store: store.clone(),
        });
        served = routes;
        let server = HttpServer {
            listener,
            app: app.layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES)),
        };
        supervisor.spawn(&mut tasks, "http", "http", server);
    }
    Ok(RunningHub {
        api_addr,
        kafka_brokers: brokers,
        store,
        workflow,
        supervisor,
        routes: served,
        drain: Duration::from_millis(config.shutdown_drain_ms),
        trigger,
        tasks,
        broker,
    })
}

/// The largest request body any route takes unless it says less.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The HTTP API, served until shutdown (open requests then finish; live streams end).
struct HttpServer {
    listener: std::net::TcpListener,
    app: axum::Router,
}

#[async_trait::async_trait]
impl crate::supervisor::Service for HttpServer {
    async fn run(&mut self, mut shutdown: crate::shutdown::Shutdown) -> anyhow::Result<()> {
        // A clone of the bound socket: a restarted server serves the same port.
        let listener = tokio::net::TcpListener::from_std(self.listener.try_clone()?)?;
        let app = self
            .app
            .clone()
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.wait().await })
            .await
            .context("serving the HTTP API")
    }
}

/// A process-unique suffix for lease holder names.
fn uuid_like() -> String {
    format!("{}-{:x}", std::process::id(), rand::random::<u64>())
}

/// Hide a password in a database URL before it reaches a log or an error.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Data directories are relative to the working directory; make that visible in messages.
pub fn display_dir(p: &Path) -> String {
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_owned())
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            super::redact_url("postgres://hub:s3cret@db:5432/hub"),
            "postgres://hub:***@db:5432/hub"
        );
        assert_eq!(
            super::redact_url("postgres://postgres@db/hub"),
            "postgres://postgres@db/hub"
        );
        assert_eq!(
            super::redact_url("sqlite://data/hub.db"),
            "sqlite://data/hub.db"
        );
    }
}
