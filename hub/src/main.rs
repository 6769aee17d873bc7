//! `hub`: the command line of the civic integration hub.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use hub::context::Roles;
use hub_cases::indicators::GroupBy;

#[derive(Parser)]
#[command(
    name = "hub",
    version,
    about = "Civic integration hub: links departmental systems (police, urban management, \
             sanitation, civil affairs, residents) to communities under the 1+2+X model",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub with a configuration file. Without configured Kafka brokers it starts its
    /// embedded broker; with an sqlite:// store it needs nothing else.
    Run {
        /// The hub configuration file.
        #[arg(long, default_value = "config/hub.toml")]
        config: PathBuf,
        /// HTTP API address (overrides `listen` in the file).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// What this process runs, comma-separated: connectors, router, api. A city can run
        /// connectors and routers in separate processes.
        #[arg(long, value_delimiter = ',', default_values = ["connectors", "router", "api"])]
        roles: Vec<Role>,
    },
    #[cfg(feature = "demo")]
    /// Run the hub with the shipped sample city and simulated departmental systems feeding
    /// live events. Needs no arguments. Run it from the project folder.
    Demo {
        /// HTTP API address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Where the demo keeps its store and broker data (wiped at start).
        #[arg(long, default_value = "data/demo")]
        data_dir: PathBuf,
    },
    /// Connectors of a running hub: their state, last success and last error.
    #[command(subcommand)]
    Connectors(ConnectorsCommand),
    /// The dead-letter topic of a running hub: list records, replay them after a fix.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Routing rules: validate them, run their tests.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Tamper evidence of the case histories: verify the hash chains and their checkpoints,
    /// or record a checkpoint now. Reads the store of the configuration directly.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Benchmarks that print their figures last.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Assessment indicators (立案率, 结案率, 按期结案率, 返工率, 延期率, response, resolution
    /// and satisfaction rates, average sign-for and handling times) from a running hub.
    Report {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        api: String,
        /// An API token; the indicators are those of its scope.
        #[arg(long, env = "HUB_API_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Group by street, community or unit.
        #[arg(long, default_value = "community", value_parser = group_by())]
        by: GroupBy,
        /// First day of the period (cases created from it), e.g. 2026-11-01.
        #[arg(long)]
        from: Option<String>,
        /// Day after the period, e.g. 2026-12-01.
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        community: Option<String>,
        #[arg(long)]
        street: Option<String>,
        #[arg(long)]
        unit: Option<String>,
        /// CSV instead of a table.
        #[arg(long)]
        csv: bool,
    },
}

#[derive(Subcommand)]
enum ConnectorsCommand {
    /// One line per connector from the hub's /healthz; exit status 1 when one is failing.
    Status {
        /// The hub's HTTP API.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        api: String,
        /// Print the JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Records on the dead-letter topic with their reason (personal data masked).
    List {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        api: String,
        /// An administrator's API token.
        #[arg(long, env = "HUB_API_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Only this connector's records.
        #[arg(long)]
        source: Option<String>,
        /// Only records after this offset.
        #[arg(long)]
        after: Option<i64>,
        /// At most this many (the newest).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Re-run connector records through the current mapping: those that map now are produced
    /// to their feed topic, the rest stay. Safe to repeat.
    Replay {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        api: String,
        /// An administrator's API token.
        #[arg(long, env = "HUB_API_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[arg(long)]
        source: Option<String>,
        #[arg(long)]
        after: Option<i64>,
        /// Show what would be produced without producing it.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Validate the city, taxonomy, rules and rule tests; exits non-zero naming the file and
    /// line of every problem.
    Check {
        /// The routing configuration folder (city/, taxonomy.toml, rules/).
        #[arg(long, default_value = "config")]
        dir: PathBuf,
    },
    /// Run the rule tests in <dir>/rules/tests (input event → expected community, lead,
    /// co-handlers, outcome).
    Test {
        #[arg(long, default_value = "config")]
        dir: PathBuf,
    },
    /// Store the routing folder as a new rules version and make it the active one, after it
    /// validates and its rule tests pass. Every hub process with `[routing] source =
    /// "store"` routes with it within a poll.
    Publish {
        /// The routing folder to publish.
        #[arg(long, default_value = "config")]
        dir: PathBuf,
        /// The hub configuration file (its store keeps the versions).
        #[arg(long, default_value = "config/hub.toml")]
        config: PathBuf,
        /// Who publishes (kept with the version).
        #[arg(long)]
        author: String,
        /// Why (kept with the version).
        #[arg(long)]
        message: String,
        /// Also re-route (改派) the open tasks nobody has signed for yet that the version
        /// hands to another unit; without it, only new events route by it.
        #[arg(long)]
        reroute_unsigned: bool,
    },
    /// Make an earlier rules version the active one again (by default the one active before
    /// the current one), after it loads and its tests pass with this hub.
    Rollback {
        #[arg(long, default_value = "config/hub.toml")]
        config: PathBuf,
        /// The version to return to (`r-…`, as `hub rules versions` lists them).
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        author: String,
        #[arg(long)]
        message: String,
        /// Also re-route (改派) the open tasks nobody has signed for yet that the version
        /// hands to another unit; without it, only new events route by it.
        #[arg(long)]
        reroute_unsigned: bool,
    },
    /// Route the logged events of a period again with a candidate (a routing folder or a
    /// stored version) and print what would change against the versions that routed them:
    /// community, lead unit, co-handlers, priority, SLA policy, deadlines, task or not, and
    /// each unit's and community's load. Writes nothing.
    Replay {
        #[arg(long, default_value = "config/hub.toml")]
        config: PathBuf,
        /// A routing folder, or a stored version (`r-…`).
        #[arg(long)]
        candidate: String,
        /// From this day (2026-11-01, China Standard Time) or RFC 3339 time.
        #[arg(long)]
        from: String,
        /// Up to this day (inclusive) or time (exclusive).
        #[arg(long)]
        to: String,
        #[arg(long, value_enum, default_value = "table")]
        format: hub::cli::replay::Format,
    },
    /// List the stored rules versions and the activations, newest first; with a version,
    /// show its diff.
    Versions {
        #[arg(long, default_value = "config/hub.toml")]
        config: PathBuf,
        /// Show this version's diff against the version active when it was stored.
        #[arg(long)]
        diff: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every task's history chain (or one task's), the heads the checkpoints recorded
    /// and, with HUB_AUDIT_KEY set, their signatures. Names the task and entry of each broken
    /// link and exits non-zero when there is one.
    Verify {
        /// The hub configuration file (its store is checked).
        #[arg(long, default_value = "config/hub.toml")]
        config: PathBuf,
        /// Only this task's history (and the heads recorded of it).
        #[arg(long)]
        task: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Record the heads of the chains that moved since the last checkpoint, now.
    Checkpoint {
        #[arg(long, default_value = "config/hub.toml")]
        config: PathBuf,
    },
    /// Print the trail of who did what through the API and the console (actor, role,
    /// action, target, time, source address, outcome), oldest first, as a table or CSV.
    Actions {
        #[arg(long, default_value = "config/hub.toml")]
        config: PathBuf,
        /// From this day (2026-11-01, China Standard Time) or RFC 3339 time.
        #[arg(long)]
        from: Option<String>,
        /// Up to this day (inclusive) or time (exclusive).
        #[arg(long)]
        to: Option<String>,
        /// One account's actions.
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        csv: bool,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Routing decisions per second on one core for a generated city of 5,000 communities and
    /// 50,000 grids, beside a linear scan over all polygons, and the index's memory.
    Route {
        /// Fewer decisions (a quick look; the figures are noisier).
        #[arg(long)]
        quick: bool,
    },
    /// The routing pipeline beside its broker on the embedded broker and the sample city:
    /// the raw produce and consume rates, the hub routing the same backlog to committed
    /// tasks on SQLite and PostgreSQL (when one answers), and the delay at a fixed rate.
    #[cfg(feature = "demo")]
    Pipeline {
        /// 5,000 events and a 5 s latency run at 500 events/s instead of 100,000 and 20 s
        /// at 2,000 events/s.
        #[arg(long)]
        quick: bool,
        /// Events in the backlog instead (for a closer look at one part).
        #[arg(long)]
        events: Option<usize>,
        /// The PostgreSQL server to create a fresh database on.
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        postgres: String,
    },
    /// The assessment indicators of a city-year on PostgreSQL: cases routed by the sample
    /// city and driven through the workflow, copied until there are N over a year, then the
    /// indicators per community, street and unit, beside a count and the case-by-case reads.
    #[cfg(feature = "demo")]
    Indicators {
        /// Cases in the year.
        #[arg(long, default_value_t = 1_000_000)]
        cases: u32,
        /// Cases driven through the workflow before copying.
        #[arg(long, default_value_t = 800)]
        template: u32,
        /// The PostgreSQL server to create a fresh database on.
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        postgres: String,
        /// The configuration folder (city, rules, SLA policies).
        #[arg(long, default_value = "config")]
        dir: PathBuf,
    },
    /// `hub rules replay` over a year of logged events on SQLite (a candidate with one more
    /// holiday against the shipped configuration): its rate excluding the read and its
    /// summary, beside reading the log alone and routing each event once.
    #[cfg(feature = "demo")]
    Replay {
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        /// The configuration folder the events are routed with.
        #[arg(long, default_value = "config")]
        dir: PathBuf,
    },
    /// The SLA tracker's scheduler with many open tasks (deadlines spread over working
    /// hours): resident memory, breach-detection delay (median, worst), restart recovery.
    Sla {
        /// Open tasks.
        #[arg(long, default_value_t = 1_000_000)]
        tasks: usize,
        /// The configuration folder (its sla/ holds policies and calendars).
        #[arg(long, default_value = "config")]
        dir: PathBuf,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Role {
    Connectors,
    Router,
    Api,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    hub::infra::telemetry::init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            config,
            listen,
            roles,
        } => {
            let roles = Roles {
                connectors: roles.contains(&Role::Connectors),
                router: roles.contains(&Role::Router),
                api: roles.contains(&Role::Api),
            };
            hub::cli::run::run(config, listen, roles).await
        }
        #[cfg(feature = "demo")]
        Command::Demo { listen, data_dir } => hub::cli::demo::run(listen, data_dir).await,
        Command::Connectors(ConnectorsCommand::Status { api, json }) => {
            hub::cli::connectors::status(&api, json).await
        }
        Command::Dlq(DlqCommand::List {
            api,
            token,
            source,
            after,
            limit,
            json,
        }) => hub::cli::dlq::dlq_list(&api, token.as_deref(), source, after, limit, json).await,
        Command::Rules(RulesCommand::Check { dir }) => hub::cli::rules::rules_check(&dir),
        Command::Rules(RulesCommand::Test { dir }) => hub::cli::rules::rules_test(&dir),
        Command::Rules(RulesCommand::Publish {
            dir,
            config,
            author,
            message,
            reroute_unsigned,
        }) => hub::cli::rules::publish(&config, &dir, &author, &message, reroute_unsigned).await,
        Command::Rules(RulesCommand::Rollback {
            config,
            to,
            author,
            message,
            reroute_unsigned,
        }) => {
            let to = to.as_deref();
            hub::cli::rules::rollback(&config, to, &author, &message, reroute_unsigned).await
        }
        Command::Rules(RulesCommand::Replay {
            config,
            candidate,
            from,
            to,
            format,
        }) => hub::cli::replay::replay(&config, &candidate, &from, &to, format).await,
        Command::Rules(RulesCommand::Versions { config, diff }) => {
            hub::cli::rules::versions(&config, diff.as_deref()).await
        }
        Command::Audit(AuditCommand::Verify { config, task, json }) => {
            hub::cli::audit::verify(&config, task.as_deref(), json).await
        }
        Command::Audit(AuditCommand::Actions {
            config,
            from,
            to,
            actor,
            csv,
        }) => hub::cli::audit::actions(&config, from, to, actor, csv).await,
        Command::Audit(AuditCommand::Checkpoint { config }) => {
            hub::cli::audit::checkpoint(&config).await
        }
        Command::Bench(BenchCommand::Route { quick }) => hub::cli::bench::bench_route(quick),
        Command::Bench(BenchCommand::Sla { tasks, dir }) => hub::cli::bench::bench_sla(&dir, tasks),
        #[cfg(feature = "demo")]
        Command::Bench(BenchCommand::Replay { events, dir }) => {
            hub::cli::bench_replay::bench_replay(&dir, events).await
        }
        #[cfg(feature = "demo")]
        Command::Bench(BenchCommand::Pipeline {
            quick,
            events,
            postgres,
        }) => {
            let mut params = hub::cli::bench_pipeline::Params::new(quick, postgres);
            params.events = events.unwrap_or(params.events);
            hub::cli::bench_pipeline::bench_pipeline(&params).await
        }
        #[cfg(feature = "demo")]
        Command::Bench(BenchCommand::Indicators {
            cases,
            template,
            postgres,
            dir,
        }) => {
            let params = hub::cli::bench_indicators::Params {
                cases,
                template,
                postgres,
            };
            hub::cli::bench_indicators::bench_indicators(&dir, &params).await
        }
        Command::Report {
            api,
            token,
            by,
            from,
            to,
            community,
            street,
            unit,
            csv,
        } => {
            let query = [
                ("by", Some(by.as_str().to_owned())),
                ("from", from),
                ("to", to),
                ("community", community),
                ("street", street),
                ("unit", unit),
            ];
            hub::cli::report::report_cli(&api, token.as_deref(), &query, csv).await
        }
        Command::Dlq(DlqCommand::Replay {
            api,
            token,
            source,
            after,
            dry_run,
            json,
        }) => hub::cli::dlq::dlq_replay(&api, token.as_deref(), source, after, dry_run, json).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hub: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `--by`: the groups indicators come in, checked by clap against the names the API takes.
fn group_by() -> impl clap::builder::TypedValueParser<Value = GroupBy> {
    use clap::builder::TypedValueParser;
    let names = GroupBy::ALL.map(GroupBy::as_str);
    clap::builder::PossibleValuesParser::new(names)
        .map(|name| GroupBy::parse(&name).expect("clap admitted only the possible values"))
}
