//! `hub demo`: the hub with the shipped sample city and every kind of source feeding it live,
//! on loopback with no setup:
//!
//! | source | how it reaches the hub |
//! | --- | --- |
//! | police 110 incidents | REST polling (token, cursor pages) |
//! | urban management cases | REST polling, and pushed to the signed webhook |
//! | sanitation | bin sensors over MQTT (Mosquitto at 127.0.0.1:1883), and REST work orders |
//! | civil affairs welfare cases | a PostgreSQL table at 127.0.0.1:5432 (database `hub_demo_civil_affairs`) |
//! | residents | a simulated 12345 app posting Open311 requests |
//!
//! When Mosquitto or PostgreSQL is not reachable, the demo runs without that source and says
//! which it skipped and why (civil affairs then falls back to its REST feed).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hub_connectors::open311::gcj02_to_wgs84;
use hub_schemas::event::Department;
use hub_simulator::civil_affairs_db::FakeCivilAffairsDb;
use hub_simulator::generator::{load_addresses, Address};
use hub_simulator::live::{push_cases, Simulation};
use hub_simulator::open311_client::Open311Client;
use hub_simulator::sensors::{LiveBins, SensorGateway};
use hub_simulator::webhook_client::WebhookClient;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::config::{
    ConnectorConfig, DebounceConfig, HttpPollConfig, HubConfig, MqttConfig, PgPollConfig,
    WebhookSourceConfig,
};
use crate::startup::{self, display_dir, Roles};

/// The bearer token the simulated departmental systems accept (demo only).
pub const DEMO_TOKEN: &str = "demo-token";
/// The secret the simulated urban-management system signs its pushes with (demo only).
pub const DEMO_WEBHOOK_SECRET: &str = "demo-webhook-secret";
/// The api key of the simulated residents' app (demo only).
pub const DEMO_OPEN311_KEY: &str = "demo-open311-key";
/// Where the demo looks for Mosquitto (`HUB_DEMO_MQTT=host:port` overrides).
pub const DEMO_MQTT: (&str, u16) = ("127.0.0.1", 1883);
/// The PostgreSQL server the demo creates its civil-affairs database on
/// (`HUB_DEMO_POSTGRES_URL` overrides).
pub const DEMO_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const DEMO_DATABASE: &str = "hub_demo_civil_affairs";
const MQTT_PREFIX: &str = "hub-demo/sanitation/bins";

const TOKEN_VAR: &str = "HUB_DEMO_TOKEN";
const WEBHOOK_VAR: &str = "HUB_DEMO_WEBHOOK_SECRET";
const DB_VAR: &str = "HUB_DEMO_CIVIL_AFFAIRS_DB";

pub async fn run(listen: SocketAddr, data_dir: PathBuf) -> anyhow::Result<()> {
    let shipped = Path::new("config/hub.toml");
    if !shipped.is_file() {
        anyhow::bail!(
            "{} not found: run `hub demo` from the project folder (it uses the shipped sample city)",
            display_dir(shipped)
        );
    }
    let mut config = HubConfig::load(shipped)?;
    if data_dir.exists() {
        std::fs::remove_dir_all(&data_dir)
            .with_context(|| format!("clearing {}", display_dir(&data_dir)))?;
    }
    config.store.url = format!("sqlite://{}/hub.db", data_dir.display());
    config.routing.dir = on_demo_clock(&config.routing.dir, &data_dir)?;
    config.data_dir = data_dir;
    config.listen = listen;
    config.kafka.brokers.clear();

    let addresses =
        load_addresses(&config.city_dir().join("addresses.csv")).map_err(anyhow::Error::msg)?;
    let mut running: Vec<String> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();

    // Civil affairs: the welfare table in PostgreSQL, or the REST feed when there is none.
    let pg_admin = std::env::var("HUB_DEMO_POSTGRES_URL").unwrap_or_else(|_| DEMO_POSTGRES.into());
    let welfare = match prepare_welfare_db(&pg_admin, &addresses).await {
        Ok(db) => Some(db),
        Err(e) => {
            skipped.push(format!(
                "civil affairs database: PostgreSQL at {} is not usable ({e}); civil affairs uses its REST feed instead. Start PostgreSQL (scripts/test shows how) or set HUB_DEMO_POSTGRES_URL",
                startup::redact_url(&pg_admin)
            ));
            None
        }
    };
    // Sanitation sensors: Mosquitto.
    let (mqtt_host, mqtt_port) = match std::env::var("HUB_DEMO_MQTT") {
        Ok(v) => v
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
            .with_context(|| format!("HUB_DEMO_MQTT `{v}`: expected host:port"))?,
        Err(_) => (DEMO_MQTT.0.to_owned(), DEMO_MQTT.1),
    };
    let mqtt_ok = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect((mqtt_host.as_str(), mqtt_port)),
    )
    .await
    .is_ok_and(|c| c.is_ok());
    if !mqtt_ok {
        skipped.push(format!(
            "sanitation bin sensors: no MQTT broker at {mqtt_host}:{mqtt_port} (Debian: apt-get install mosquitto && mosquitto -d; or set HUB_DEMO_MQTT=host:port)"
        ));
    }

    let mut rest = vec![
        Department::Police,
        Department::UrbanManagement,
        Department::Sanitation,
    ];
    if welfare.is_none() {
        rest.push(Department::CivilAffairs);
    }
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let sim = Simulation::start_for(
        &rest,
        addresses.clone(),
        DEMO_TOKEN,
        |_| loopback,
        3,
        Duration::from_millis(700),
    )
    .await
    .context("starting the simulated departmental systems")?;
    config.connectors = sim
        .fakes
        .iter()
        .map(|fake| {
            let shape = fake.shape();
            running.push(format!(
                "{:<28} REST polling  {}{} (token {DEMO_TOKEN})",
                format!("{}.demo", fake.department().as_str()),
                fake.base_url(),
                shape.path
            ));
            ConnectorConfig::HttpPoll(HttpPollConfig {
                name: format!("{}.demo", fake.department().as_str()),
                department: fake.department().as_str().to_owned(),
                base_url: fake.base_url(),
                path: shape.path.to_owned(),
                token_env: TOKEN_VAR.to_owned(),
                cursor_param: shape.cursor_param.to_owned(),
                items_pointer: shape.items_pointer.to_owned(),
                cursor_pointer: shape.cursor_pointer.to_owned(),
                page_size: 50,
                poll_interval: Duration::from_secs(1),
                timeout: Duration::from_secs(5),
                ..HttpPollConfig::default()
            })
        })
        .collect();
    config
        .connectors
        .push(ConnectorConfig::Webhook(WebhookSourceConfig {
            name: "urban_management.push".into(),
            department: "urban_management".into(),
            rate_limit: None,
            path: None,
            secret_env: WEBHOOK_VAR.into(),
            previous_secret_env: None,
            tolerance_secs: 300,
            queue_capacity: 1000,
            max_batch: 100,
            linger_ms: 20,
        }));
    if mqtt_ok {
        config.connectors.push(ConnectorConfig::Mqtt(MqttConfig {
            name: "sanitation.bins".into(),
            department: "sanitation".into(),
            host: mqtt_host.clone(),
            port: mqtt_port,
            client_id: "hub-demo-sanitation-bins".into(),
            topic: format!("{MQTT_PREFIX}/+/reading"),
            connect_timeout: Duration::from_secs(3),
            // Bins are emptied within minutes in the demo: a minute below 60 % ends an
            // overflow, so the next one is a new task.
            debounce: DebounceConfig {
                clear_hold: Duration::from_secs(60),
                forget_after: Duration::from_secs(600),
                ..DebounceConfig::default()
            },
            ..MqttConfig::default()
        }));
        running.push(format!(
            "{:<28} MQTT          mqtt://{}:{}/{MQTT_PREFIX}/+/reading (12 bins, debounced)",
            "sanitation.bins", mqtt_host, mqtt_port
        ));
    }
    if let Some(db) = &welfare {
        config
            .connectors
            .push(ConnectorConfig::PostgresPoll(PgPollConfig {
                name: "civil_affairs.welfare".into(),
                department: "civil_affairs".into(),
                url_env: DB_VAR.into(),
                table: "welfare_case".into(),
                settle: Duration::from_secs(1),
                poll_interval: Duration::from_secs(1),
                timeout: Duration::from_secs(5),
                ..PgPollConfig::default()
            }));
        running.push(format!(
            "{:<28} PostgreSQL    {} table welfare_case",
            "civil_affairs.welfare",
            startup::redact_url(db.url())
        ));
    }
    let open311 = config
        .open311
        .get_or_insert_with(|| crate::config::Open311Config {
            enabled: true,
            source_system: "residents.open311".into(),
            services: "config/open311/services.toml".into(),
            api_keys_env: None,
            jurisdiction_id: None,
            datum: Default::default(),
            rate_limit: None,
            service_notice: None,
            public_details: false,
            read_rate_limit: crate::config::RateLimitConfig {
                per_second: 10.0,
                burst: 30,
            },
        });
    open311.enabled = true;
    let keys_var = open311
        .api_keys_env
        .get_or_insert_with(|| "HUB_OPEN311_API_KEYS".into())
        .clone();

    let db_url = welfare.as_ref().map(|db| db.url().to_owned());
    let secrets: crate::context::Secrets = Arc::new(move |var: &str| match var {
        TOKEN_VAR => Some(DEMO_TOKEN.to_owned()),
        WEBHOOK_VAR => Some(DEMO_WEBHOOK_SECRET.to_owned()),
        DB_VAR => db_url.clone(),
        v if v == keys_var => Some(DEMO_OPEN311_KEY.to_owned()),
        crate::context::access::DEMO_TOKENS_VAR => Some("1".to_owned()),
        _ => None,
    });
    let hub = startup::start(&config, Roles::ALL, secrets)
        .await
        .context("starting the hub")?;
    let api = hub
        .api_addr
        .map(|a| format!("http://{a}"))
        .unwrap_or_default();

    // The sources that talk to the hub, started once it listens.
    let push_url = format!("{api}/api/v1/connectors/urban_management.push/records");
    let pushes = push_cases(
        WebhookClient::new(push_url.clone(), DEMO_WEBHOOK_SECRET),
        addresses.clone(),
        Duration::from_secs(3),
        11,
    );
    running.push(format!(
        "{:<28} webhook push  POST {push_url} (HMAC-SHA256, secret {DEMO_WEBHOOK_SECRET})",
        "urban_management.push"
    ));
    let _bins = if mqtt_ok {
        let gateway =
            Arc::new(SensorGateway::connect(&mqtt_host, mqtt_port, "hub-demo-bin-gateway").await);
        Some(LiveBins::start(
            gateway,
            MQTT_PREFIX.to_owned(),
            &addresses,
            12,
            Duration::from_secs(2),
            7,
        ))
    } else {
        None
    };
    let check_ins = welfare
        .as_ref()
        .map(|db| db.run_check_ins(Duration::from_secs(5), 13));
    let residents = tokio::spawn(residents(
        Open311Client::new(format!("{api}/open311/v2"), DEMO_OPEN311_KEY),
        addresses.clone(),
        Duration::from_secs(4),
    ));
    running.push(format!(
        "{:<28} Open311       {api}/open311/v2/ (a simulated 12345 app, api_key {DEMO_OPEN311_KEY})",
        "residents.open311"
    ));
    // The people: dispatchers signing for, handling, checking and closing cases.
    let _people = hub_simulator::people::start(
        api.clone(),
        hub_simulator::people::Accounts::demo(),
        Duration::from_secs(6),
        17,
    );

    println!();
    let city = hub_router::city::City::load(&config.city_dir())?;
    println!(
        "Civic integration hub demo: sample city {}, {} streets, {} communities, {} grids",
        city.district().name,
        city.streets().len(),
        city.communities().len(),
        city.grids().len()
    );
    println!("  Kafka (embedded broker):  {}", hub.kafka_brokers);
    println!("  task store:               {}", config.store.url);
    println!(
        "  SLA limits:               on the demo clock (an hour of the city's time is a minute here): {}",
        display_dir(&config.routing.dir.join(hub_router::bundle::SLA_DIR))
    );
    println!();
    println!("Sources feeding the hub:");
    for line in &running {
        println!("  {line}");
    }
    if !skipped.is_empty() {
        println!();
        println!("Skipped:");
        for line in &skipped {
            println!("  {line}");
        }
    }
    println!();
    println!(
        "Web console (工单列表, 工单详情): open {api}/ and sign in with an account token below."
    );
    println!();
    println!("API tokens (demo accounts from config/access.toml):");
    println!("  administrator: demo-admin   street 510504001: demo-street-510504001");
    println!("  community 510504001001: demo-community-510504001001   police: demo-police");
    println!();
    println!("Try:");
    println!("  export T='Authorization: Bearer demo-admin'");
    println!("  curl -s -H \"$T\" {api}/api/v1/tasks?limit=5");
    println!("  curl -s -H \"$T\" '{api}/api/v1/tasks?department=police&status=dispatched'");
    println!("  curl -s -H 'Authorization: Bearer demo-community-510504001001' {api}/api/v1/console/tasks");
    println!("  curl -s -H \"$T\" {api}/api/v1/tasks/<task_id>/workflow   # state, allowed actions, SLA clocks");
    println!(
        "  curl -s -H \"$T\" -d '{{\"action\":\"sign_for\"}}' {api}/api/v1/tasks/<task_id>/actions"
    );
    println!(
        "  curl -s -H \"$T\" {api}/api/v1/tasks/<task_id>      # with the routing explanation and history"
    );
    println!("  curl -s {api}/open311/v2/services.json");
    println!("  curl -s {api}/open311/v2/requests.json");
    println!(
        "  curl -s -d api_key={DEMO_OPEN311_KEY} -d service_code=noise -d 'attribute[NOISE_SOURCE]=neighbours' \\\n       --data-urlencode address_string=梧桐社区党群服务中心 {api}/open311/v2/requests.json"
    );
    println!("  curl -s {api}/healthz                      # every connector's state");
    println!("  ./target/debug/hub connectors status --api {api}");
    println!("  ./target/debug/hub dlq list --api {api} --token demo-admin");
    println!("  curl -s {api}/metrics | grep hub_connector");
    println!("  kcat -C -b {} -t hub.feed.urban-management -c 1 -e | xxd | head   # Avro, Confluent wire format", hub.kafka_brokers);
    println!();
    println!(
        "Ctrl-C stops the demo; its data stays in {}.",
        display_dir(&config.data_dir)
    );
    let result = hub.run_until_interrupted().await;
    pushes.abort();
    residents.abort();
    if let Some(task) = check_ins {
        task.abort();
    }
    drop(sim);
    result
}

/// A copy of the routing folder in `data_dir` with every SLA limit on the demo clock (an hour
/// of the city's time is a minute of the demo's, in natural time), so that within minutes
/// the demo shows warnings, breaches and escalations at any hour of the day; the shipped
/// folder is left as it is.
fn on_demo_clock(routing: &Path, data_dir: &Path) -> anyhow::Result<PathBuf> {
    let copy = data_dir.join("routing");
    copy_dir(routing, &copy)
        .with_context(|| format!("copying {} for the demo", display_dir(routing)))?;
    let policies = copy
        .join(hub_router::bundle::SLA_DIR)
        .join(hub_cases::POLICIES_FILE);
    let text = std::fs::read_to_string(&policies)
        .with_context(|| format!("reading {}", display_dir(&policies)))?;
    std::fs::write(&policies, demo_clock(&text))
        .with_context(|| format!("writing {}", display_dir(&policies)))?;
    Ok(copy)
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Every quoted limit in an SLA policies file, scaled 60 times down to natural time: hours
/// become minutes, minutes seconds, a day 24 minutes and a working day 7 (its 7 hours).
fn demo_clock(policies: &str) -> String {
    let scaled = |amount: u64, unit: &str| -> Option<String> {
        Some(match unit {
            "minutes" | "working_minutes" => format!("{amount} seconds"),
            "hours" | "working_hours" => format!("{amount} minutes"),
            "days" => format!("{} minutes", amount * 24),
            "working_days" => format!("{} minutes", amount * 7),
            _ => return None,
        })
    };
    let mut out = String::with_capacity(policies.len());
    for line in policies.split_inclusive('\n') {
        let (code, comment) = match line.find('#') {
            Some(i) => line.split_at(i),
            None => (line, ""),
        };
        let mut parts = code.split('"');
        let mut rewritten = parts.next().unwrap_or_default().to_owned();
        for (i, part) in parts.enumerate() {
            rewritten.push('"');
            // Odd pieces are inside quotes.
            let limit = (i % 2 == 0)
                .then(|| part.split_once(' '))
                .flatten()
                .and_then(|(n, unit)| scaled(n.parse().ok()?, unit));
            rewritten.push_str(limit.as_deref().unwrap_or(part));
        }
        out.push_str(&rewritten);
        out.push_str(comment);
    }
    out
}

/// A fresh welfare database with seeded cases, or why there is none.
async fn prepare_welfare_db(
    admin_url: &str,
    addresses: &[Address],
) -> Result<FakeCivilAffairsDb, String> {
    let db = tokio::time::timeout(
        Duration::from_secs(5),
        FakeCivilAffairsDb::recreate(admin_url, DEMO_DATABASE),
    )
    .await
    .map_err(|_| "no answer within 5 s".to_owned())??;
    db.seed(addresses, 20, chrono::Utc::now(), 5).await?;
    Ok(db)
}

/// Residents reporting problems through a 12345 app: every `interval` one request at a
/// gazetteer address (its position sent as GPS coordinates, as phones do), with the service's
/// required attributes filled in.
async fn residents(client: Open311Client, addresses: Vec<Address>, interval: Duration) {
    const NAMES: [(&str, &str); 6] = [
        ("建国", "王"),
        ("秀英", "李"),
        ("志强", "张"),
        ("海燕", "刘"),
        ("俊杰", "陈"),
        ("淑珍", "杨"),
    ];
    let mut rng = SmallRng::seed_from_u64(31);
    let mut codes: Vec<(String, String)> = Vec::new();
    loop {
        tokio::time::sleep(interval).await;
        if codes.is_empty() {
            match client
                .get("services.json")
                .await
                .ok()
                .and_then(|a| a.json())
            {
                Some(list) => {
                    codes = list
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|s| {
                            Some((
                                s["service_code"].as_str()?.to_owned(),
                                s["service_name"].as_str()?.to_owned(),
                            ))
                        })
                        .collect();
                }
                None => continue,
            }
            if codes.is_empty() {
                continue;
            }
        }
        let (code, name) = codes[rng.random_range(0..codes.len())].clone();
        let at = &addresses[rng.random_range(0..addresses.len())];
        let (lon, lat) = gcj02_to_wgs84(at.lon, at.lat);
        let (first, last) = NAMES[rng.random_range(0..NAMES.len())];
        let mut fields = vec![
            ("service_code".to_owned(), code.clone()),
            ("lat".to_owned(), format!("{lat:.6}")),
            ("long".to_owned(), format!("{lon:.6}")),
            ("address_string".to_owned(), at.name.clone()),
            (
                "description".to_owned(),
                format!("居民反映：{}附近{}", at.name, name),
            ),
            ("first_name".to_owned(), first.to_owned()),
            ("last_name".to_owned(), last.to_owned()),
            (
                "phone".to_owned(),
                format!("139{:08}", rng.random_range(0..100_000_000u32)),
            ),
            (
                "device_id".to_owned(),
                format!("demo-phone-{}", rng.random_range(1..50)),
            ),
        ];
        match client.required_attributes(&code).await {
            Ok(attrs) => fields.extend(attrs),
            Err(e) => {
                tracing::warn!(error = %e, "simulated resident: reading a service definition failed");
                continue;
            }
        }
        match client.post_request("json", &fields).await {
            Ok(a) if a.status == 200 => {
                tracing::debug!(service_code = %code, answer = %a.body, "simulated resident posted a request")
            }
            Ok(a) => {
                tracing::warn!(status = a.status, body = %a.body, "the hub refused a simulated resident's request")
            }
            Err(e) => tracing::warn!(error = %e, "a simulated resident could not reach the hub"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_clock_scales_limits_and_leaves_the_rest() {
        let shipped = "version = \"2026.1\"\nname = \"12345 紧急诉求\" # \"2 hours\"\n\
                       sign_for = \"2 working_hours\"\nhandling = \"5 working_days\"\n\
                       report_in = \"30 minutes\"\nverification = \"7 days\"\n";
        assert_eq!(
            demo_clock(shipped),
            "version = \"2026.1\"\nname = \"12345 紧急诉求\" # \"2 hours\"\n\
             sign_for = \"2 minutes\"\nhandling = \"35 minutes\"\n\
             report_in = \"30 seconds\"\nverification = \"168 minutes\"\n"
        );
        let real = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/sla/policies.toml"),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(hub_cases::POLICIES_FILE), demo_clock(&real)).unwrap();
        std::fs::create_dir(dir.path().join(hub_cases::CALENDARS_DIR)).unwrap();
        for f in
            std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/sla/calendars"))
                .unwrap()
        {
            let f = f.unwrap();
            std::fs::copy(
                f.path(),
                dir.path()
                    .join(hub_cases::CALENDARS_DIR)
                    .join(f.file_name()),
            )
            .unwrap();
        }
        hub_cases::SlaConfig::load(dir.path()).expect("the demo's policies load");
    }
}
