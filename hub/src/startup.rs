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

use crate::config::{HubConfig, RulesSource};
use crate::context::health::Health;
use crate::context::routing::RoutingState;
use crate::http::auth::AuthState;
use crate::http::health::PIPELINE_TASK;
use crate::http::RouteTable;
use crate::infra::broker::EmbeddedBroker;
use crate::infra::kafka::Kafka;
use crate::infra::shutdown::{self, ShutdownTrigger};
use crate::infra::supervisor::Supervisor;
use crate::infra::telemetry;
use crate::pipeline::ingest::Handles;
use crate::pipeline::outbox_relay::{Destination, Relay};
use crate::pipeline::routing::RoutingPipeline;

pub use crate::context::{env_secrets, Roles, Secrets};

/// Fault injection for tests (none in production).
#[derive(Clone, Default)]
pub struct Hooks {
    pub routing: crate::pipeline::routing::Hooks,
}

/// A running hub process.
pub struct RunningHub {
    pub api_addr: Option<SocketAddr>,
    pub kafka_brokers: String,
    pub store: Arc<dyn TaskStore>,
    pub cases: Arc<crate::cases::service::CaseService>,
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

/// A store handle for one role of the process, its pool named `<client id>.<role>` on the
/// server (`pg_stat_activity.application_name`).
async fn open_store(
    config: &HubConfig,
    role: &str,
    connections: u32,
) -> anyhow::Result<Arc<dyn TaskStore>> {
    let client: String = config
        .kafka
        .client_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let pool = hub_store::PoolOptions {
        max_connections: connections,
        name: Some(format!("{client}.{role}")),
    };
    hub_store::open_with(&config.store.url, &pool)
        .await
        .with_context(|| format!("opening store {}", redact_url(&config.store.url)))
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
    let store = open_store(config, "shared", config.store.connections).await?;
    let loaded = match config.routing.source {
        RulesSource::Files => {
            let routing_dir = config.routing.dir.clone();
            tokio::task::spawn_blocking(move || crate::context::routing::load(&routing_dir))
                .await
                .context("loading the routing configuration")??
        }
        RulesSource::Store => crate::context::rules_versions::load_active(
            &*store,
            &config.routing.dir,
            &config.data_dir,
        )
        .await
        .context("loading the active rules version from the store")?,
    };
    tracing::info!(
        version = loaded.version(),
        source = ?config.routing.source,
        "routing configuration loaded"
    );
    let city: Arc<City> = loaded.router.config().city().clone();
    let routing = Arc::new(RoutingState::new(&config.routing.dir, loaded));
    // PostgreSQL: the routing pipeline's connections are its own. SQLite: one writer per
    // file, so one handle (a second would only wait for the first's lock).
    let routing_store = if roles.router && hub_store::pools_per_handle(&config.store.url) {
        open_store(config, "routing", config.store.routing_connections).await?
    } else {
        store.clone()
    };
    // The case workflow (with the SLA policies of the version in force) and the API's
    // accounts.
    let cases = crate::cases::service::CaseService::new(store.clone(), routing.clone());
    let access = Arc::new(crate::context::access::AccessState::load(
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
    let shared = Handles {
        kafka: kafka.clone(),
        codec: Arc::new(Codec::new(registry)),
        store: store.clone(),
        city: city.clone(),
        health: Arc::new(Health::default()),
        limits: config.input.limits(),
    };
    let pipeline_status = Arc::new(crate::context::health::PipelineStatus::default());

    let (trigger, shutdown) = shutdown::channel();
    let supervisor = Supervisor::new(shutdown.clone());
    let mut tasks = JoinSet::new();
    let dead_letter_topic = config.kafka.topics.dead_letter.name.clone();

    // Connectors (role `connectors`); their HTTP side is served below (role `api`).
    let connectors = crate::pipeline::ingest::start_connectors(
        config,
        roles,
        &secrets,
        &shared,
        &supervisor,
        &mut tasks,
    );
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
        let new_consumer: crate::pipeline::routing::ConsumerFactory = Box::new(move || {
            let feeds: Vec<&str> = feeds.iter().map(String::as_str).collect();
            consumer_kafka.consumer(&group, assignment, &feeds)
        });
        let pipeline = RoutingPipeline::new(
            new_consumer,
            kafka.clone(),
            shared.codec.clone(),
            routing.clone(),
            routing_store.clone(),
            cases.clone(),
            dead_letter_topic.clone(),
            config.input.limits(),
            pipeline_status.clone(),
            hooks.routing.clone(),
        )
        .with_batch(config.kafka.router_batch);
        supervisor.spawn(&mut tasks, PIPELINE_TASK, "routing_pipeline", pipeline);
    }
    if config.routing.reload_check_ms > 0 {
        // Routing rules and the accounts file (access.toml lives in the same folder).
        let watcher = crate::pipeline::watcher::Watcher {
            routing: routing.clone(),
            rules_from_files: config.routing.source == RulesSource::Files,
            access: access.clone(),
            every: Duration::from_millis(config.routing.reload_check_ms),
        };
        supervisor.spawn(&mut tasks, "routing_watcher", "routing_watcher", watcher);
        if config.routing.source == RulesSource::Store {
            let follower = crate::pipeline::rules_follower::RulesFollower {
                routing: routing.clone(),
                store: store.clone(),
                data_dir: config.data_dir.clone(),
                every: Duration::from_millis(config.routing.reload_check_ms),
            };
            supervisor.spawn(&mut tasks, "rules_follower", "rules_follower", follower);
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
            let name = format!("outbox_relay:{}", destination.name());
            let relay = Relay {
                destination,
                store: store.clone(),
                holder: holder.clone(),
            };
            supervisor.spawn(&mut tasks, name, "outbox_relay", relay);
        }
        let tracker = crate::cases::sla_tracker::SlaTracker {
            cases: cases.clone(),
            routing: routing.clone(),
            holder: holder.clone(),
            poll: std::time::Duration::from_millis(250),
        };
        supervisor.spawn(&mut tasks, "sla_tracker", "sla_tracker", tracker);
        let key = crate::cases::history_checkpoints::key_from_env();
        if key.is_none() {
            tracing::warn!(
                variable = crate::cases::history_checkpoints::KEY_VAR,
                "no audit key is set: history checkpoints are not signed, so a history \
                 rewritten together with its checkpoints would not show"
            );
        }
        let retention = crate::cases::event_retention::EventRetention {
            store: store.clone(),
            keep_days: config.replay.keep_days,
            every: Duration::from_secs(3600),
        };
        supervisor.spawn(&mut tasks, "event_retention", "event_retention", retention);
        let checkpoints = crate::cases::history_checkpoints::HistoryCheckpoints {
            store: store.clone(),
            key,
            every: std::time::Duration::from_secs(config.audit.checkpoint_every_s),
        };
        supervisor.spawn(
            &mut tasks,
            "history_checkpoints",
            "history_checkpoints",
            checkpoints,
        );
    }
    let mut api_addr = None;
    let mut served = Vec::new();
    if roles.api {
        let listener = std::net::TcpListener::bind(config.listen)
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        listener.set_nonblocking(true)?;
        api_addr = Some(listener.local_addr()?);
        let live = Arc::new(crate::pipeline::live_feed::LiveFeed::default());
        let feed = crate::pipeline::live_feed::LiveFeedTask {
            feed: live.clone(),
            cases: cases.clone(),
            after: None,
        };
        supervisor.spawn(&mut tasks, "live_stream", "live_stream", feed);
        let console = crate::http::console::ConsoleState {
            cases: cases.clone(),
            routing: routing.clone(),
            shutdown: shutdown.clone(),
            streams: Arc::default(),
            live,
        };
        let mut table = RouteTable::default();
        table.add(crate::http::health::routes(
            crate::http::health::HealthState {
                routing: routing.clone(),
                store: store.clone(),
                health: shared.health.clone(),
                metrics,
                tasks: supervisor.registry.clone(),
                pipeline: pipeline_status.clone(),
                routes_events: roles.router,
            },
        ));
        let tasks_state = crate::http::tasks::TasksState {
            routing: routing.clone(),
            store: store.clone(),
            limits: config.input.limits(),
        };
        table.add(crate::http::tasks::routes(tasks_state.clone()));
        table.add(crate::http::console::routes(console.clone()));
        table.add(crate::http::indicators::routes(console.clone()));
        table.add(crate::http::audit::routes(store.clone()));
        let rules = crate::http::rules::RulesState {
            store: store.clone(),
            config: Arc::new(config.clone()),
            cases: cases.clone(),
        };
        table.add(crate::http::rules::routes(rules.clone()));
        let webhook_paths: Vec<String> = connectors.paths.values().cloned().collect();
        let dlq = connector_routes(&mut table, config, &secrets, &shared, &cases, connectors)?;
        let sessions = crate::http::web::session::SessionKey::from_secret(secrets(
            crate::http::web::session::KEY_VAR,
        ));
        table.add(crate::http::web::routes(
            crate::http::web::WebState {
                console,
                access: access.clone(),
                key: sessions.clone(),
            },
            crate::http::web::admin::AdminState {
                health: shared.health.clone(),
                tasks: tasks_state,
                dlq,
                rules,
            },
        ));
        table.add(crate::http::openapi::routes(
            &crate::http::openapi::document(&webhook_paths),
        ));
        let (app, routes) = table.build(AuthState {
            access: access.clone(),
            store: store.clone(),
            sessions,
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
        cases,
        supervisor,
        routes: served,
        drain: Duration::from_millis(config.shutdown_drain_ms),
        trigger,
        tasks,
        broker,
    })
}

/// The connector-facing routes: webhook pushes (HMAC), Open311 (api keys for posts; reads
/// are open, as GeoReport v2 has them) and the dead-letter list and replay (administrators).
fn connector_routes(
    table: &mut RouteTable,
    config: &HubConfig,
    secrets: &Secrets,
    shared: &Handles,
    cases: &Arc<crate::cases::service::CaseService>,
    connectors: crate::pipeline::ingest::ConnectorHandles,
) -> anyhow::Result<crate::pipeline::dead_letters::DlqState> {
    use hub_schemas::event::Department;
    table.add(crate::http::push::routes(
        crate::http::push::PushState::new(
            connectors.endpoints,
            connectors.unavailable,
            shared.health.clone(),
        ),
        &connectors.paths,
    ));
    if let Some(o) = config.open311.as_ref().filter(|o| o.enabled) {
        let catalog = o
            .load_catalog()
            .map_err(|e| anyhow::anyhow!("open311: {e}"))?;
        let keys = o.api_keys_env.as_deref().and_then(|var| secrets(var));
        let state = crate::http::open311::Open311State::new(
            o,
            catalog,
            keys,
            config.feed_topic(Department::Residents).name.clone(),
            shared.clone(),
            cases.clone(),
        );
        table.add(crate::http::open311::routes(state));
    }
    let feeds = Department::ALL
        .into_iter()
        .map(|d| (d, config.feed_topic(d).name.clone()))
        .collect();
    let dlq = crate::pipeline::dead_letters::DlqState {
        kafka: shared.kafka.clone(),
        dead_letter_topic: config.kafka.topics.dead_letter.name.clone(),
        feeds,
        codec: shared.codec.clone(),
        city: shared.city.clone(),
        mappers: connectors.mappers,
        limits: shared.limits,
    };
    table.add(crate::http::deadletters::routes(dlq.clone()));
    Ok(dlq)
}

/// The largest request body any route takes unless it says less.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The HTTP API, served until shutdown (open requests then finish; live streams end).
struct HttpServer {
    listener: std::net::TcpListener,
    app: axum::Router,
}

#[async_trait::async_trait]
impl crate::infra::supervisor::Service for HttpServer {
    async fn run(&mut self, mut shutdown: crate::infra::shutdown::Shutdown) -> anyhow::Result<()> {
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
