//! `hub bench indicators`: the assessment indicators of a city-year (default 1,000,000 cases)
//! on PostgreSQL, in one aggregate query per grouping.
//!
//! 1. **Template**: a few hundred police cases routed by the shipped city and driven through
//!    the case workflow (CaseService, the SLA policies' real clocks): never signed for,
//!    signed for late, closed on time and late, reworked, extended, cancelled, called back.
//! 2. **A year**: the template copied in the database until there are N cases, each copy
//!    shifted later, so the cases spread over a year.
//! 3. **Figures**: the indicators of that year per community, street and unit (as the API
//!    and `hub report` ask for them), against two baselines measured in the same run: a
//!    plain count of the year's cases (one scan), and reading each case's history, state
//!    and clocks one by one (how the indicators were computed before), timed on the template
//!    and projected to N.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, TimeDelta, Utc};
use hub_cases::indicators::GroupBy;
use hub_cases::lifecycle::{Action, CancelReason, ReturnReason};
use hub_cases::{Actor, Limit};
use hub_store::{TaskFilter, TaskStore};

use crate::cases::service::CaseService;
use crate::cli::bench_pipeline::Events;
use crate::context::routing::{self, RoutingState};

/// What one run measures.
#[derive(Debug, Clone)]
pub struct Params {
    /// Cases in the year.
    pub cases: u32,
    /// Cases driven through the workflow, then copied.
    pub template: u32,
    pub postgres: String,
}

const YEAR_MS: i64 = 365 * 86_400_000;

pub async fn bench_indicators(dir: &Path, p: &Params) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!(
            "note: a debug build; run `cargo run --release -p hub -- bench indicators` for real figures"
        );
    }
    let template = p.template.clamp(1, p.cases.max(1));
    let copies = p.cases.div_ceil(template);
    let url = match hub_store::fresh_postgres_database(&p.postgres, "hub_bench_indicators").await {
        Ok(url) => url,
        Err(e) => bail!(
            "PostgreSQL at {} does not answer ({e}): the indicators bench needs one",
            p.postgres
        ),
    };
    let store: Arc<dyn TaskStore> = hub_store::open(&url).await?;
    let routing = Arc::new(RoutingState::new(dir, routing::load(dir)?));
    let cases = CaseService::new(store.clone(), routing.clone());

    // 1. The template: the first copy's cases spread over its share of the year.
    let year_start = DateTime::from_timestamp_millis(1_767_225_600_000) // 2026-01-01 (UTC)
        .context("the bench year")?;
    let shift_ms = YEAR_MS / i64::from(copies);
    let started = Instant::now();
    let addresses =
        hub_simulator::generator::load_addresses(&dir.join("city").join("addresses.csv"))
            .map_err(anyhow::Error::msg)?;
    let mut events = Events::new(addresses);
    let router = routing.current();
    for n in 0..template {
        let created =
            year_start + TimeDelta::milliseconds(shift_ms * i64::from(n) / i64::from(template));
        let event = events.next("IND")?;
        let Some(mut task) = router
            .route(&event, created)
            .ok()
            .and_then(|d| d.into_task())
        else {
            bail!("a generated case was not routed to a task");
        };
        task.created_at = created;
        let id = task.task_id.clone();
        store.create_task(&task, &cases.open(&task)).await?;
        drive(&cases, &id, n, created).await?;
    }
    let seeded = started.elapsed();

    // The baseline of before: each case's history, state and clocks, read one by one.
    let all = TaskFilter {
        limit: TaskFilter::MAX_LIMIT,
        ..TaskFilter::default()
    };
    let started = Instant::now();
    let mut read = 0u32;
    loop {
        let page = store
            .list_tasks(&TaskFilter {
                offset: read,
                ..all.clone()
            })
            .await?;
        for task in &page {
            let id = &task.fields.task_id;
            store.task_history(id).await?;
            store.workflow(id).await?;
            store.task_clocks(id).await?;
        }
        read += u32::try_from(page.len()).unwrap_or(u32::MAX);
        if page.len() < all.limit as usize {
            break;
        }
    }
    let per_case = started.elapsed() / read.max(1);

    // 2. The year.
    let started = Instant::now();
    let total = hub_store::replicate_postgres_tasks(&url, copies, shift_ms)
        .await
        .map_err(anyhow::Error::msg)?;
    let copied = started.elapsed();

    // 3. The figures.
    let year = TaskFilter {
        created_from: Some(year_start),
        created_before: Some(year_start + TimeDelta::milliseconds(YEAR_MS)),
        ..TaskFilter::default()
    };
    let as_of = year_start + TimeDelta::milliseconds(YEAR_MS);
    let count = best_of(3, || async { store.count_tasks(&year).await.map(|_| ()) }).await?;
    let in_year = store.count_tasks(&year).await?;
    let mut lines = Vec::new();
    for by in GroupBy::ALL {
        let tallies = store.tally_indicators(&year, by, as_of).await?;
        let received: u64 = tallies.iter().map(|t| t.received).sum();
        if received != in_year {
            bail!(
                "the indicators by {} count {received} cases, the year has {in_year}",
                by.as_str()
            );
        }
        let took = best_of(3, || async {
            store.tally_indicators(&year, by, as_of).await.map(|_| ())
        })
        .await?;
        let closed: u64 = tallies.iter().map(|t| t.closed).sum();
        lines.push(format!(
            "  by {:<9} {:>5} groups, {closed} closed: {:>7.0} ms (best of 3)",
            by.as_str(),
            tallies.len(),
            ms(took)
        ));
    }
    println!("indicators of a city-year on PostgreSQL (release build, fresh database)");
    println!(
        "  template: {template} cases routed and driven through the workflow in {:.1} s; \
         copied to {total} cases ({in_year} in the year) in {:.1} s",
        seeded.as_secs_f64(),
        copied.as_secs_f64()
    );
    println!(
        "  baseline, case by case (history, state, clocks): {:.2} ms per case, \
         {:.0} s projected for {in_year} cases",
        ms(per_case),
        per_case.as_secs_f64() * in_year as f64
    );
    println!("  baseline, count of the year's cases: {:.0} ms", ms(count));
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

async fn best_of<F, Fut>(n: usize, mut run: F) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), hub_store::StoreError>>,
{
    let mut best = Duration::MAX;
    for _ in 0..n {
        let started = Instant::now();
        run().await?;
        best = best.min(started.elapsed());
    }
    Ok(best)
}

/// The case's life, by its number: the same mix as the store suite's indicators test.
async fn drive(
    cases: &CaseService,
    id: &str,
    n: u32,
    created: DateTime<Utc>,
) -> anyhow::Result<()> {
    let mut at = created;
    let mut act = async |action: Action, minutes: i64| -> anyhow::Result<()> {
        at += TimeDelta::minutes(minutes);
        let current = cases.current(id).await?.context("the case just stored")?;
        let unit = current.state.assignee.clone();
        let actor = Actor::person("bench", unit.as_deref());
        cases.act(id, action.into(), &actor, at, None).await?;
        Ok(())
    };
    let feedback = || Action::Resolve {
        feedback: "已处置".to_owned(),
    };
    match n % 8 {
        0 => {
            act(
                Action::Return {
                    reason: ReturnReason::NotOurRemit,
                },
                20,
            )
            .await?;
            let current = cases.current(id).await?.context("the case")?;
            let unit = current.state.returned_by.clone().unwrap_or_default();
            act(Action::Arbitrate { unit }, 60).await?;
        }
        1 => act(Action::SignFor, 3 * 24 * 60).await?,
        2 | 3 => {
            act(Action::SignFor, 5).await?;
            act(feedback(), 90).await?;
            act(Action::Verify, 30).await?;
            act(Action::Close, 10).await?;
            act(
                Action::Callback {
                    satisfied: n % 8 == 2,
                },
                60,
            )
            .await?;
        }
        4 => {
            act(Action::SignFor, 5).await?;
            act(feedback(), 60).await?;
            act(
                Action::Rework {
                    finding: "未处理完".to_owned(),
                },
                30,
            )
            .await?;
            act(feedback(), 30 * 24 * 60).await?;
            act(Action::Verify, 10).await?;
            act(Action::Close, 10).await?;
        }
        5 => {
            act(Action::SignFor, 5).await?;
            act(
                Action::RequestExtension {
                    by: Limit::parse("3 days").map_err(anyhow::Error::msg)?,
                },
                20,
            )
            .await?;
            act(Action::ApproveExtension { by: None }, 20).await?;
            act(feedback(), 600).await?;
        }
        6 => {
            act(
                Action::Cancel {
                    reason: CancelReason::Invalid,
                },
                15,
            )
            .await?
        }
        _ => act(Action::SignFor, 1).await?,
    }
    Ok(())
}
