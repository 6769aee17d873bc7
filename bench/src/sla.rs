//! `hub bench sla`: the SLA tracker's core on many open clocks, as if the hub restarted.

use std::fmt;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use hub_cases::calendar::{Limit, WorkingCalendar};
use hub_cases::clock::{ClockKind, SlaClock};
use hub_cases::scheduler::{ClockId, Scheduler, Timing};

/// What [`bench_sla`] measured.
#[derive(Debug, Clone)]
pub struct BenchFigures {
    pub clocks: usize,
    pub calendar: String,
    /// Computing every clock's deadline and warning instant from its limit and calendar.
    pub compute: Duration,
    /// Inserting them into the scheduler.
    pub insert: Duration,
    /// compute + insert: how long a restarted tracker needs to have every clock back.
    pub recovery: Duration,
    /// Scheduler memory with every clock in it (heap and map capacity).
    pub memory_bytes: usize,
    /// Events raised at once at the restart instant (fell due while "down").
    pub overdue_at_start: usize,
    pub catch_up: Duration,
    /// Wake-ups (distinct due instants) after the restart and events raised in them.
    pub wakeups: usize,
    pub events: usize,
    /// Time to pop everything due at a wake-up: median and worst. What the tracker adds to
    /// a breach's detection delay on top of its timer's accuracy.
    pub pop_median: Duration,
    pub pop_worst: Duration,
    /// The most events due at one instant (e.g. every clock started overnight with the
    /// same working-hours limit falls due at the same minute).
    pub largest_batch: usize,
    pub pop_total: Duration,
}

impl fmt::Display for BenchFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = self.memory_bytes as f64 / (1024.0 * 1024.0);
        writeln!(f, "open clocks               {}", self.clocks)?;
        writeln!(f, "calendar                  {}", self.calendar)?;
        writeln!(
            f,
            "scheduler memory          {mib:.1} MiB ({} bytes/clock)",
            self.memory_bytes / self.clocks.max(1)
        )?;
        writeln!(
            f,
            "deadline computation      {:.3} s",
            self.compute.as_secs_f64()
        )?;
        writeln!(
            f,
            "scheduler build           {:.3} s",
            self.insert.as_secs_f64()
        )?;
        writeln!(
            f,
            "recovery (both)           {:.3} s",
            self.recovery.as_secs_f64()
        )?;
        writeln!(
            f,
            "overdue at restart        {} events raised in {:.3} s",
            self.overdue_at_start,
            self.catch_up.as_secs_f64()
        )?;
        writeln!(
            f,
            "later wake-ups            {} ({} events, {:.3} s in all)",
            self.wakeups,
            self.events,
            self.pop_total.as_secs_f64()
        )?;
        writeln!(
            f,
            "largest batch             {} events due at one instant",
            self.largest_batch
        )?;
        write!(
            f,
            "pop per wake-up           median {:.1} µs, worst {:.1} ms",
            self.pop_median.as_secs_f64() * 1e6,
            self.pop_worst.as_secs_f64() * 1e3
        )
    }
}

/// Deterministic pseudo-random numbers (SplitMix64), so runs are comparable.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Benchmarks the tracker core on `n` open clocks with spread deadlines, as if the hub
/// restarted at `now`: clocks started over the previous 2 days under a mix of real limits
/// (2 working hours to 20 working days, 30 minutes to 7 natural days), warning at 0.8.
/// Measures rebuilding the scheduler (deadline computation and insertion: the recovery
/// time), its memory, raising what fell due while down, then every later wake-up until all
/// clocks have breached. Wall-clock time is measured with `Instant`; the clocks' time is
/// `now`-based and simulated.
pub fn bench_sla(n: usize, calendar: &WorkingCalendar, now: DateTime<Utc>) -> BenchFigures {
    const LIMITS: [Limit; 9] = [
        Limit::working_hours(2),
        Limit::working_hours(4),
        Limit::working_days(1),
        Limit::working_days(2),
        Limit::working_days(7),
        Limit::working_days(20),
        Limit::minutes(30),
        Limit::hours(24),
        Limit::days(7),
    ];
    let mut rng = SplitMix(0x0005_EED0_FC10);
    let window_ms = 2 * 24 * 3_600_000;

    let t0 = Instant::now();
    let mut timings = Vec::with_capacity(n);
    for _ in 0..n {
        let started = now - TimeDelta::milliseconds(rng.below(window_ms) as i64);
        let limit = LIMITS[rng.below(LIMITS.len() as u64) as usize];
        let clock = SlaClock::start(ClockKind::SignFor, 1, started, limit, Some(0.8), calendar);
        if let Some(t) = Timing::of(&clock) {
            timings.push(t);
        }
    }
    let compute = t0.elapsed();

    let t1 = Instant::now();
    let mut scheduler = Scheduler::with_capacity(timings.len());
    for (id, t) in timings.into_iter().enumerate() {
        scheduler.schedule(id as ClockId, t);
    }
    let insert = t1.elapsed();
    let memory_bytes = scheduler.memory_bytes();

    let mut out = Vec::new();
    let t2 = Instant::now();
    let overdue_at_start = scheduler.pop_due(now, &mut out);
    let catch_up = t2.elapsed();

    let mut pops = Vec::new();
    let mut events = 0;
    let mut largest_batch = 0;
    let t3 = Instant::now();
    while let Some(at) = scheduler.next_due() {
        out.clear();
        let t = Instant::now();
        let batch = scheduler.pop_due(at, &mut out);
        pops.push(t.elapsed());
        events += batch;
        largest_batch = largest_batch.max(batch);
    }
    let pop_total = t3.elapsed();
    pops.sort_unstable();
    BenchFigures {
        clocks: n,
        calendar: calendar.id().to_owned(),
        compute,
        insert,
        recovery: compute + insert,
        memory_bytes,
        overdue_at_start,
        catch_up,
        wakeups: pops.len(),
        events,
        pop_median: pops.get(pops.len() / 2).copied().unwrap_or_default(),
        pop_worst: pops.last().copied().unwrap_or_default(),
        largest_batch,
        pop_total,
    }
}
