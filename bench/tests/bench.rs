//! The benchmarks' own checks: their figures add up on small runs; the full runs are
//! `#[ignore]`d (run them in release, or through `hub bench`).

use std::path::PathBuf;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use hub_bench::route::{bench_route, BenchParams};
use hub_bench::sla::bench_sla;
use hub_cases::{SlaConfig, WorkingCalendar};

fn config() -> SlaConfig {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/sla");
    SlaConfig::load(&dir).expect("the shipped SLA configuration loads")
}

fn calendar(config: &SlaConfig) -> &WorkingCalendar {
    config
        .calendars
        .get("cn-mainland")
        .expect("cn-mainland calendar")
}

/// A China Standard Time wall-clock instant.
fn cn(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    let cst = FixedOffset::east_opt(8 * 3600).unwrap();
    cst.with_ymd_and_hms(y, m, d, h, min, 0)
        .unwrap()
        .with_timezone(&Utc)
}

#[test]
fn bench_figures_add_up() {
    let config = config();
    let figures = bench_sla(20_000, calendar(&config), cn(2026, 3, 16, 10, 0));
    assert_eq!(figures.clocks, 20_000);
    // Every clock warns (0.8) and breaches exactly once, before or after the restart.
    assert_eq!(figures.overdue_at_start + figures.events, 40_000);
    assert!(
        figures.memory_bytes < 20_000 * 200,
        "{}",
        figures.memory_bytes
    );
    assert!(figures
        .to_string()
        .contains("open clocks               20000"));
}

/// `cargo test -p hub-bench --release --test bench -- --ignored --nocapture bench_sla_one_million`
/// prints the figures `hub bench sla` reports, plus the process's resident memory.
#[test]
#[ignore = "a benchmark: run it in release mode"]
fn bench_sla_one_million() {
    // Peak resident set size (VmHWM), in KiB.
    fn rss_kib() -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
    let config = config();
    let before = rss_kib();
    let figures = bench_sla(1_000_000, calendar(&config), cn(2026, 3, 16, 10, 0));
    let after = rss_kib();
    println!("{figures}");
    if let (Some(b), Some(a)) = (before, after) {
        println!(
            "process peak RSS          {:.1} MiB (was {:.1} MiB before)",
            a as f64 / 1024.0,
            b as f64 / 1024.0
        );
    }
}

// ------------------------------------------------------------------ the benchmark

/// `cargo test -p hub-bench --release --test bench -- --ignored --nocapture bench`
#[test]
#[ignore = "minutes in debug builds; run in release"]
fn bench_route_at_city_scale() {
    let report = bench_route(&BenchParams::default()).unwrap();
    println!("{report}");
    assert_eq!((report.communities, report.grids), (5_000, 50_000));
    assert!(report.min_vertices >= 100);
    assert_eq!(report.disagreements, 0);
}
