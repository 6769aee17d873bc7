//! `hub rules replay`: what a candidate rules version would have done to the events of a
//! period (see `crate::cases::replay`). It reads the event log of the store the
//! configuration names and writes nothing.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{bail, Context};

use crate::cases::replay::Report;
use crate::cases::replay_run::{configuration, run, Baselines};
use crate::config::HubConfig;

/// How the result is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// `hub rules replay`
pub async fn replay(
    config: &Path,
    candidate: &str,
    from: &str,
    to: &str,
    format: Format,
) -> anyhow::Result<()> {
    let bad = |e: crate::http::ApiError| {
        anyhow::anyhow!("{}", e.1["error"].as_str().unwrap_or("bad period"))
    };
    let from = crate::http::audit::instant("from", from, false).map_err(bad)?;
    let to = crate::http::audit::instant("to", to, true).map_err(bad)?;
    if from >= to {
        bail!("the period is empty: --from must be before --to");
    }
    let config = HubConfig::load(config)?;
    let store = hub_store::open(&config.store.url)
        .await
        .with_context(|| format!("opening the store at {}", config.store.url))?;
    let candidate = configuration(&*store, &config, candidate).await?;
    let baselines = Baselines::load(&*store, &config, from, to).await?;

    let progress = std::io::stderr().is_terminal();
    let run = run(&*store, &baselines, &candidate, from, to, progress).await?;
    let (report, replaying, reading) = (run.report, run.replaying, run.reading);
    let rate = report.events as f64 / replaying.as_secs_f64().max(1e-9);
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            let mut v = serde_json::to_value(&report)?;
            v["candidate"] = candidate.version().into();
            v["from"] = from.to_rfc3339().into();
            v["to"] = to.to_rfc3339().into();
            v["events_per_second"] = rate.round().into();
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
        Format::Csv => {
            writeln!(out, "{}", Report::CSV_HEADER)?;
            for row in report.csv_rows() {
                writeln!(out, "{row}")?;
            }
        }
        Format::Table => print_table(&mut out, &report, candidate.version())?,
    }
    eprintln!(
        "replayed {} events in {:.2} s ({:.0} events/s on one core; {:.2} s reading the log)",
        report.events,
        replaying.as_secs_f64(),
        rate,
        reading.as_secs_f64()
    );
    Ok(())
}

pub fn print_table(out: &mut impl Write, r: &Report, candidate: &str) -> std::io::Result<()> {
    writeln!(
        out,
        "{} events replayed with {candidate}: {} would change",
        r.events, r.moved
    )?;
    for (what, n) in &r.by_change {
        writeln!(out, "  {what:<12} {n}")?;
    }
    if !r.unit_load.is_empty() {
        writeln!(
            out,
            "lead units whose load changes (tasks led, before → after):"
        )?;
        for (unit, l) in &r.unit_load {
            let delta = l.after as i64 - l.before as i64;
            writeln!(
                out,
                "  {unit:<40} {:>6} → {:<6} ({delta:+})",
                l.before, l.after
            )?;
        }
    }
    if !r.community_load.is_empty() {
        writeln!(out, "communities whose load changes:")?;
        for (c, l) in &r.community_load {
            let delta = l.after as i64 - l.before as i64;
            writeln!(
                out,
                "  {c:<40} {:>6} → {:<6} ({delta:+})",
                l.before, l.after
            )?;
        }
    }
    for (heading, figures) in [
        ("lead units", &r.unit_on_time),
        ("communities", &r.community_on_time),
    ] {
        if figures.is_empty() {
            continue;
        }
        writeln!(
            out,
            "{heading} whose tasks resolved on time change (moved tasks that were resolved, \
             held to each version's deadline: on time/resolved, before → after):"
        )?;
        for (key, o) in figures {
            writeln!(
                out,
                "  {key:<40} {:>6} → {:<6}",
                format!("{}/{}", o.on_time_before, o.resolved_before),
                format!("{}/{}", o.on_time_after, o.resolved_after)
            )?;
        }
    }
    const SHOWN: usize = 20;
    if !r.moved_events.is_empty() {
        writeln!(
            out,
            "moved events (first {SHOWN}; --format csv lists them all):"
        )?;
    }
    for m in r.moved_events.iter().take(SHOWN) {
        let side = |o: &crate::cases::replay::Outcome| {
            let mut s = format!(
                "{} {}",
                o.kind,
                o.lead.as_deref().or(o.community.as_deref()).unwrap_or("-")
            );
            if !o.co_handlers.is_empty() {
                s.push_str(&format!(" +{}", o.co_handlers.join("+")));
            }
            if let Some(due) = o.deadlines.values().max() {
                let cst = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8");
                s.push_str(&format!(
                    " due {}",
                    due.with_timezone(&cst).format("%m-%d %H:%M")
                ));
            }
            s
        };
        writeln!(
            out,
            "  {}/{} [{}]: {} → {}",
            m.source_system,
            m.source_id,
            m.changed.join(","),
            side(&m.before),
            side(&m.after)
        )?;
    }
    Ok(())
}
