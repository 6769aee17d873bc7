//! Wiring: build every component of a hub process from its configuration and run them.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use hub_router::city::City;
use hub_schemas::codec::Codec;
use hub_schemas::registry::{HttpRegistry, LocalRegistry, Registry};
use hub_store::TaskStore;
use tokio::task::JoinSet;

use crate::broker::EmbeddedBroker;
use crate::config::HubConfig;
use crate::dispatcher::Dispatcher;
use crate::health::Health;
use crate::kafka::Kafka;
use crate::outbox_relay::{Destination, Relay};
use crate::routing_state::RoutingState;
use crate::shutdown::{self, ShutdownTrigger};
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

/// Looks up a connector's secret by the environment variable name its config gives.
pub type Secrets = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

pub fn env_secrets() -> Secrets {
    Arc::new(|name| std::env::var(name).ok())
}

/// Clients and state shared by the components of one process.
pub struct Shared {
    pub kafka: Kafka,
    pub codec: Arc<Codec>,
    pub store: Arc<dyn TaskStore>,
    pub city: Arc<City>,
    pub health: Arc<Health>,
    /// Tasks' lifecycle and SLA clocks (Open311 shows the due time as `expected_datetime`).
    pub workflow: Arc<crate::case_workflow::Workflow>,
}

/// A running hub process.
pub struct RunningHub {
    pub api_addr: Option<SocketAddr>,
    pub kafka_brokers: String,
    pub store: Arc<dyn TaskStore>,
    pub workflow: Arc<crate::case_workflow::Workflow>,
    trigger: ShutdownTrigger,
    tasks: JoinSet<()>,
    broker: Option<EmbeddedBroker>,
}

impl RunningHub {
    /// Stop every component gracefully (connectors finish their page, the router commits
    /// its offsets), then the embedded broker if this process started one.
    pub async fn stop(mut self) {
        self.trigger.stop();
        while self.tasks.join_next().await.is_some() {}
        if let Some(broker) = self.broker.take() {
            broker.stop().await;
        }
    }

    /// Run until Ctrl-C, then stop.
    pub async fn run_until_interrupted(self) -> anyhow::Result<()> {
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        tracing::info!("interrupted; stopping");
        self.stop().await;
        Ok(())
    }
}

/// Start a hub process. With no brokers configured it starts the embedded broker first.
pub async fn start(
    config: &HubConfig,
    roles: Roles,
    secrets: Secrets,
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
    let access = Arc::new(crate::auth::Access::load(
        &config.routing.dir,
        &city,
        &secrets,
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
    };

    let (trigger, shutdown) = shutdown::channel();
    let mut tasks = JoinSet::new();
    let dead_letter_topic = config.kafka.topics.dead_letter.name.clone();

    // Connectors (role `connectors`) and their HTTP side (webhooks, Open311, dead letters).
    let connector_routes =
        crate::ingest::start_connectors(config, roles, &secrets, &shared, &shutdown, &mut tasks)?;
    if roles.router {
        let feeds: Vec<&str> = config
            .kafka
            .topics
            .feeds
            .values()
            .map(|t| t.name.as_str())
            .collect();
        let dispatcher = Dispatcher {
            consumer: kafka.consumer(
                &config.kafka.router_group,
                config.kafka.router_assignment,
                &feeds,
            )?,
            kafka: kafka.clone(),
            codec: shared.codec.clone(),
            routing: routing.clone(),
            store: store.clone(),
            workflow: workflow.clone(),
            dead_letter_topic: dead_letter_topic.clone(),
        };
        tasks.spawn(dispatcher.run(shutdown.clone()));
        if config.routing.reload_check_ms > 0 {
            let every = std::time::Duration::from_millis(config.routing.reload_check_ms);
            tasks.spawn(routing.clone().watch(every, shutdown.clone()));
        }
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
            let relay = Relay {
                destination,
                store: store.clone(),
                holder: holder.clone(),
            };
            tasks.spawn(relay.run(shutdown.clone()));
        }
        let tracker = crate::sla_tracker::SlaTracker {
            workflow: workflow.clone(),
            routing: routing.clone(),
            holder: holder.clone(),
            poll: std::time::Duration::from_millis(250),
        };
        tasks.spawn(tracker.run(shutdown.clone()));
    }
    let mut api_addr = None;
    if roles.api {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        api_addr = Some(listener.local_addr()?);
        let console = crate::console_api::ConsoleState {
            workflow: workflow.clone(),
            shutdown: shutdown.clone(),
        };
        let api_routes = api::routes(api::ApiState {
            routing: routing.clone(),
            store: store.clone(),
            health: shared.health.clone(),
            metrics,
        })
        .merge(crate::console_api::routes(console.clone()))
        .merge(crate::indicators::routes(console));
        let auth = crate::auth::AuthState {
            access: access.clone(),
            store: store.clone(),
        };
        // Dead-letter list/replay behind the bearer tokens; webhook pushes (HMAC) and Open311
        // (api keys) authenticate by their own schemes.
        let app = crate::auth::protect(api_routes.merge(connector_routes.admin), auth)
            .merge(connector_routes.public);
        let mut stop = shutdown.clone();
        tasks.spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.wait().await })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "HTTP API stopped");
            }
        });
    }
    Ok(RunningHub {
        api_addr,
        kafka_brokers: brokers,
        store,
        workflow,
        trigger,
        tasks,
        broker,
    })
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
