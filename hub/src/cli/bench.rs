//! `hub bench route` and `hub bench sla`: benchmarks that print their figures last.

use std::path::Path;

/// Routing decisions per second on one core for a generated city, against a linear scan.
pub fn bench_route(quick: bool) -> anyhow::Result<()> {
    let mut params = hub_bench::route::BenchParams::default();
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
    let report = hub_bench::route::bench_route(&params)?;
    println!("{report}");
    Ok(())
}

/// The SLA tracker's core with `n` open clocks: memory, detection delay, restart recovery.
pub fn bench_sla(dir: &Path, n: usize) -> anyhow::Result<()> {
    let sla = hub_cases::SlaConfig::load(&dir.join("sla"))?;
    let calendar = sla.calendar_of(sla.policies.default_policy());
    if cfg!(debug_assertions) {
        eprintln!(
            "note: a debug build; run `cargo run --release -p hub -- bench sla` for real figures"
        );
    }
    let figures = hub_bench::sla::bench_sla(n, calendar, chrono::Utc::now());
    let detection = detection_delay(n, 2_000, std::time::Duration::from_secs(3));
    println!("{figures}");
    println!("{detection}");
    println!("{}", resident_memory());
    Ok(())
}

/// The tracker's timer loop run in real time while it holds `held` open clocks (deadlines
/// spread over the next 30 days): `due_soon` more clocks fall due over `span`, and each is
/// detected when the loop wakes and pops it — what the tracker adds before it writes the
/// breach. The baseline is an empty scheduler running the same loop.
fn detection_delay(held: usize, due_soon: usize, span: std::time::Duration) -> String {
    use hub_cases::scheduler::Timing;
    use hub_cases::Scheduler;
    let run = |held: usize| {
        let now = chrono::Utc::now();
        let mut scheduler = Scheduler::with_capacity(held + due_soon);
        let mut x: u64 = 0x5EED;
        for id in 0..held as u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let deadline = now + chrono::TimeDelta::seconds(10 + (x >> 33) as i64 % (30 * 86_400));
            scheduler.schedule(
                id,
                Timing {
                    warning_at: None,
                    deadline,
                    escalation_step: false,
                },
            );
        }
        let start = chrono::Utc::now() + chrono::TimeDelta::milliseconds(100);
        for i in 0..due_soon as u64 {
            let offset = span.as_millis() as i64 * i as i64 / due_soon as i64;
            let deadline = start + chrono::TimeDelta::milliseconds(offset);
            scheduler.schedule(
                held as u64 + i,
                Timing {
                    warning_at: None,
                    deadline,
                    escalation_step: false,
                },
            );
        }
        let mut delays = Vec::with_capacity(due_soon);
        let mut out = Vec::new();
        while delays.len() < due_soon {
            if let Some(next) = scheduler.next_due() {
                let wait = (next - chrono::Utc::now()).to_std().unwrap_or_default();
                std::thread::sleep(wait);
            }
            out.clear();
            let now = chrono::Utc::now();
            scheduler.pop_due(now, &mut out);
            let popped = chrono::Utc::now();
            for d in &out {
                delays.push((popped - d.at).num_microseconds().unwrap_or(i64::MAX));
            }
        }
        delays.sort_unstable();
        (delays[delays.len() / 2], delays[delays.len() - 1])
    };
    let (base_median, base_worst) = run(0);
    let (median, worst) = run(held);
    format!(
        "breach detection delay    median {:.2} ms, worst {:.2} ms ({due_soon} breaches over {} s \
         with {held} clocks held; baseline with none: median {:.2} ms, worst {:.2} ms)",
        median as f64 / 1e3,
        worst as f64 / 1e3,
        span.as_secs(),
        base_median as f64 / 1e3,
        base_worst as f64 / 1e3,
    )
}

/// This process's resident memory, now and at its peak (Linux).
fn resident_memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| format!("{:.0} MiB", kb / 1024.0))
            .unwrap_or_else(|| "unknown".to_owned())
    };
    format!(
        "resident memory           {} now, {} peak (whole process)",
        field("VmRSS:"),
        field("VmHWM:")
    )
}
