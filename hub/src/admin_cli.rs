//! Administrator commands: `hub rules check`, `hub rules test`, `hub bench route`,
//! `hub bench sla`. They read files and print; none of them needs a running hub.

use std::path::Path;

use anyhow::bail;
use hub_router::config;
use hub_router::rules_test;
use hub_router::Router;

/// Validate the city, taxonomy, rules and rule tests; non-zero exit with every problem.
pub fn rules_check(dir: &Path) -> anyhow::Result<()> {
    match config::check(dir) {
        Ok(checked) => {
            for w in &checked.warnings {
                println!("{w}");
            }
            println!(
                "ok: {} — rules version {}, {} rule tests",
                dir.display(),
                checked.config.version(),
                checked.tests.len()
            );
            Ok(())
        }
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            let errors = problems.iter().filter(|p| p.is_error()).count();
            bail!("{} has {errors} error(s)", dir.display())
        }
    }
}

/// Run the rule tests written next to the rules.
pub fn rules_test(dir: &Path) -> anyhow::Result<()> {
    let checked = match config::check(dir) {
        Ok(c) => c,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            bail!(
                "{} does not validate; run `hub rules check` for details",
                dir.display()
            );
        }
    };
    let router = Router::new(checked.config);
    let report = rules_test::run(&router, &checked.tests);
    println!("{report}");
    if !report.passed() {
        bail!("rule tests failed");
    }
    Ok(())
}

/// Routing decisions per second on one core for a generated city, against a linear scan.
pub fn bench_route(quick: bool) -> anyhow::Result<()> {
    let mut params = hub_router::bench::BenchParams::default();
    if quick {
        params.index_decisions /= 20;
        params.scan_decisions /= 10;
        params.route_decisions /= 20;
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "note: a debug build; run `cargo run --release -p hub -- bench route` for real figures"
        );
    }
    let report = hub_router::bench::bench_route(&params)?;
    println!("{report}");
    Ok(())
}

/// The SLA tracker's core with `n` open clocks: memory, detection delay, restart recovery.
pub fn bench_sla(dir: &Path, n: usize) -> anyhow::Result<()> {
    let sla = hub_router::workflow::SlaConfig::load(&dir.join("sla"))?;
    let calendar = sla.calendar_of(sla.policies.default_policy());
    if cfg!(debug_assertions) {
        eprintln!(
            "note: a debug build; run `cargo run --release -p hub -- bench sla` for real figures"
        );
    }
    let figures = hub_router::workflow::scheduler::bench_sla(n, calendar, chrono::Utc::now());
    println!("{figures}");
    Ok(())
}
