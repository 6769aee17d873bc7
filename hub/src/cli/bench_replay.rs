//! `hub bench replay`: `hub rules replay` over a year of logged events (1,000,000 by
//! default) on a SQLite store of its own, with a candidate that adds one holiday (National
//! Day week gets a day longer). Printed beside it, measured in the same run: reading the log
//! alone, and routing each event once with one version (the least a replay must do).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, TimeDelta, Utc};
use hub_router::bundle::Bundle;
use hub_schemas::event::CivicEvent;
use hub_simulator::generator::load_addresses;

use crate::cases::replay_run::{run, Baselines};
use crate::cli::bench_pipeline::Events;
use crate::cli::replay::print_table;
use crate::context::routing::{load, Loaded};

/// The day the candidate adds to the holidays.
const EXTRA_HOLIDAY: &str = "2026-10-08";

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

pub async fn bench_replay(dir: &std::path::Path, events: usize) -> anyhow::Result<()> {
    let scratch = std::env::temp_dir().join(format!("hub-bench-replay-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let result = bench_in(dir, events, &scratch).await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

async fn bench_in(
    dir: &std::path::Path,
    n: usize,
    scratch: &std::path::Path,
) -> anyhow::Result<()> {
    let owned = dir.to_owned();
    let baseline = Arc::new(tokio::task::spawn_blocking(move || load(&owned)).await??);
    let candidate = candidate(dir, scratch).await?;
    println!(
        "baseline {} (from {}), candidate {} (one more holiday: {EXTRA_HOLIDAY})",
        baseline.version(),
        dir.display(),
        candidate.version()
    );

    // A year of police thefts in the sample city, received evenly through 2026.
    let store = hub_store::open(&format!("sqlite://{}/hub.db", scratch.display())).await?;
    let addresses =
        load_addresses(&dir.join("city").join("addresses.csv")).map_err(anyhow::Error::msg)?;
    let mut generated = Events::new(addresses);
    let year: DateTime<Utc> = "2025-12-31T16:00:00Z".parse()?; // 2026-01-01 China Standard Time
    let step = TimeDelta::milliseconds(365 * 86_400_000 / n.max(1) as i64);
    let started = Instant::now();
    let mut chunk: Vec<CivicEvent> = Vec::with_capacity(10_000);
    for i in 0..n {
        let mut e = generated.next("REPLAY")?;
        e.received_at = year + step * i as i32;
        e.occurred_at = e.received_at - TimeDelta::minutes(10);
        chunk.push(e);
        if chunk.len() == 10_000 || i + 1 == n {
            let refs: Vec<&CivicEvent> = chunk.iter().collect();
            store.record_events(&refs).await?;
            chunk.clear();
        }
    }
    println!(
        "event log: {n} events written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (from, to) = (year, year + TimeDelta::days(365));

    // Baselines measured in this run: reading the log, and routing each event once.
    let mut read_all = Duration::ZERO;
    let mut route_once = Duration::ZERO;
    let mut cursor = None;
    let mut read = 0u64;
    loop {
        let t = Instant::now();
        let page = store
            .logged_events(from, to, cursor.as_ref(), 10_000)
            .await?;
        read_all += t.elapsed();
        let t = Instant::now();
        for e in &page {
            let _ = std::hint::black_box(baseline.router.route(e, e.received_at));
        }
        route_once += t.elapsed();
        read += page.len() as u64;
        match page.last() {
            Some(last) if page.len() == 10_000 => {
                cursor = Some(hub_store::EventCursor {
                    received_at: last.received_at,
                    source_system: last.source_system.clone(),
                    source_id: last.source_id.clone(),
                })
            }
            _ => break,
        }
    }

    let replayed = run(
        &*store,
        &Baselines::single(baseline.clone()),
        &candidate,
        from,
        to,
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
    )
    .await?;
    let r = &replayed.report;
    println!();
    print_table(&mut std::io::stdout().lock(), r, candidate.version())?;
    println!();
    println!(
        "reading the log alone: {read} events in {:.2} s ({:.0} events/s)",
        read_all.as_secs_f64(),
        rate(read, read_all)
    );
    println!(
        "routing each event once, one version (no clocks, no comparison): {:.0} events/s",
        rate(read, route_once)
    );
    println!(
        "replay: {} events in {:.2} s excluding the read: {:.0} events/s on one core \
         ({:.2} s reading)",
        r.events,
        replayed.replaying.as_secs_f64(),
        rate(r.events, replayed.replaying),
        replayed.reading.as_secs_f64()
    );
    Ok(())
}

/// The shipped configuration with one more holiday on [`EXTRA_HOLIDAY`].
async fn candidate(dir: &std::path::Path, scratch: &std::path::Path) -> anyhow::Result<Loaded> {
    let bundle = Bundle::read(dir)?;
    let mut files: BTreeMap<String, String> = bundle.files().clone();
    let calendar = files
        .get_mut("sla/calendars/cn-mainland.toml")
        .context("the shipped calendar sla/calendars/cn-mainland.toml")?;
    calendar.push_str(&format!(
        "\n[[holidays]]\nname = \"加一天\"\noff = [\"{EXTRA_HOLIDAY}\"]\n"
    ));
    let out = scratch.join("candidate");
    Bundle::from_files(files)?.write(&out)?;
    Ok(tokio::task::spawn_blocking(move || load(&out)).await??)
}
