//! The SLA tracker's timer core: which open clock falls due next, and what is due now.
//!
//! A binary min-heap of compact entries (24 bytes: due instant, clock id, generation, phase)
//! plus a map from clock id to its times (24 bytes + key). Each clock has at most one live
//! entry: its warning, then — once the warning is raised — its breach. Rescheduling or
//! cancelling a clock bumps its generation, leaving the old entry to be skipped when it
//! surfaces (and compacted away when stale entries outnumber live ones). A million open
//! clocks take about 70 MB.
//!
//! The scheduler holds no clock details: the tracker keeps those in the store, and after a
//! restart rebuilds the scheduler from the open clocks, passing only what is still to raise
//! (no warning if the warning was already raised). Anything that fell due while the hub was
//! down is returned by the first [`Scheduler::pop_due`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};

use super::calendar::{Limit, WorkingCalendar};
use super::clock::{ClockKind, SlaClock};

/// The tracker's id for a clock (the store's row id).
pub type ClockId = u64;

/// What fell due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DueKind {
    /// The clock passed its warning fraction.
    Warning,
    /// The clock's limit ran out: raise the breach and climb the ladder.
    Breach,
    /// An escalation step's own limit ran out: climb to the next step.
    StepOverdue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub clock: ClockId,
    pub kind: DueKind,
    /// When it fell due (earlier than `now` after downtime).
    pub at: DateTime<Utc>,
}

/// The instants to watch for one clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// `None` if the clock has no warning or its warning was already raised.
    pub warning_at: Option<DateTime<Utc>>,
    pub deadline: DateTime<Utc>,
    /// Whether the clock is an escalation step (its breach is a [`DueKind::StepOverdue`]).
    pub escalation_step: bool,
}

impl Timing {
    /// The timing of an open, running clock; `None` for a stopped or paused one (a paused
    /// clock is rescheduled when it resumes).
    pub fn of(clock: &SlaClock) -> Option<Timing> {
        if !clock.is_open() || clock.is_paused() {
            return None;
        }
        Some(Timing {
            warning_at: clock.warning_at(),
            deadline: clock.deadline()?,
            escalation_step: clock.kind.is_escalation(),
        })
    }
}

const WARNING: u8 = 0;
const BREACH: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    due_ms: i64,
    clock: ClockId,
    generation: u32,
    phase: u8,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    warning_ms: i64,
    deadline_ms: i64,
    generation: u32,
    phase: u8,
    escalation_step: bool,
}

/// Clock ids are already well spread (row ids); a multiply-shift mix is enough and much
/// cheaper than SipHash for a million entries.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (n ^ (n >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9) ^ (n >> 32);
    }
}

/// See the module documentation.
#[derive(Default)]
pub struct Scheduler {
    heap: BinaryHeap<Reverse<Entry>>,
    slots: HashMap<ClockId, Slot, BuildHasherDefault<IdHasher>>,
    stale: usize,
}

impl fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduler")
            .field("clocks", &self.slots.len())
            .field("heap_entries", &self.heap.len())
            .finish()
    }
}

/// Milliseconds since the epoch, rounded up so an instant is never reported due early.
fn to_ms(t: DateTime<Utc>) -> i64 {
    let ms = t.timestamp_millis();
    let below_ms = t.timestamp_subsec_nanos() - t.timestamp_subsec_millis() * 1_000_000;
    if below_ms > 0 {
        ms.saturating_add(1)
    } else {
        ms
    }
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl Scheduler {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(clocks: usize) -> Self {
        Scheduler {
            heap: BinaryHeap::with_capacity(clocks),
            slots: HashMap::with_capacity_and_hasher(clocks, BuildHasherDefault::default()),
            stale: 0,
        }
    }

    /// Number of clocks with something still to raise.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn contains(&self, clock: ClockId) -> bool {
        self.slots.contains_key(&clock)
    }

    /// Watches a clock, replacing what was scheduled for it before.
    pub fn schedule(&mut self, clock: ClockId, timing: Timing) {
        let deadline_ms = to_ms(timing.deadline);
        let warning_ms = timing.warning_at.map(to_ms).filter(|w| *w < deadline_ms);
        let generation = match self.slots.get(&clock) {
            Some(old) => {
                self.stale += 1;
                old.generation.wrapping_add(1)
            }
            None => 0,
        };
        let (phase, due_ms) = match warning_ms {
            Some(w) => (WARNING, w),
            None => (BREACH, deadline_ms),
        };
        self.slots.insert(
            clock,
            Slot {
                warning_ms: warning_ms.unwrap_or(i64::MIN),
                deadline_ms,
                generation,
                phase,
                escalation_step: timing.escalation_step,
            },
        );
        self.heap.push(Reverse(Entry {
            due_ms,
            clock,
            generation,
            phase,
        }));
        self.maybe_compact();
    }

    /// Stops watching a clock (stopped or paused). Returns whether it was watched.
    pub fn cancel(&mut self, clock: ClockId) -> bool {
        let removed = self.slots.remove(&clock).is_some();
        if removed {
            self.stale += 1;
            self.maybe_compact();
        }
        removed
    }

    /// The next instant something falls due, if anything is scheduled.
    pub fn next_due(&mut self) -> Option<DateTime<Utc>> {
        while let Some(Reverse(top)) = self.heap.peek().copied() {
            if self.is_live(&top) {
                return Some(from_ms(top.due_ms));
            }
            self.heap.pop();
            self.stale = self.stale.saturating_sub(1);
        }
        None
    }

    fn is_live(&self, e: &Entry) -> bool {
        self.slots
            .get(&e.clock)
            .is_some_and(|s| s.generation == e.generation && s.phase == e.phase)
    }

    /// Appends everything due at `now` to `out`, earliest first (a clock's warning before
    /// its breach), and forgets clocks whose breach was returned. Returns how many.
    pub fn pop_due(&mut self, now: DateTime<Utc>, out: &mut Vec<Due>) -> usize {
        let now_ms = now.timestamp_millis();
        let before = out.len();
        while let Some(Reverse(top)) = self.heap.peek().copied() {
            if top.due_ms > now_ms {
                break;
            }
            self.heap.pop();
            if !self.is_live(&top) {
                self.stale = self.stale.saturating_sub(1);
                continue;
            }
            let Some(slot) = self.slots.get_mut(&top.clock) else {
                continue;
            };
            if top.phase == WARNING {
                out.push(Due {
                    clock: top.clock,
                    kind: DueKind::Warning,
                    at: from_ms(slot.warning_ms),
                });
                slot.phase = BREACH;
                let entry = Entry {
                    due_ms: slot.deadline_ms,
                    clock: top.clock,
                    generation: slot.generation,
                    phase: BREACH,
                };
                self.heap.push(Reverse(entry));
            } else {
                let kind = if slot.escalation_step {
                    DueKind::StepOverdue
                } else {
                    DueKind::Breach
                };
                out.push(Due {
                    clock: top.clock,
                    kind,
                    at: from_ms(slot.deadline_ms),
                });
                self.slots.remove(&top.clock);
            }
        }
        out.len() - before
    }

    /// Bytes held by the heap and the map (their capacities), an estimate of the resident
    /// memory the scheduler needs.
    pub fn memory_bytes(&self) -> usize {
        let heap = self.heap.capacity() * std::mem::size_of::<Reverse<Entry>>();
        // hashbrown: one control byte per bucket, buckets ≥ capacity·8/7 rounded to a power
        // of two.
        let buckets = (self.slots.capacity() * 8).div_ceil(7).next_power_of_two();
        let map = buckets * (std::mem::size_of::<(ClockId, Slot)>() + 1);
        heap + map
    }

    fn maybe_compact(&mut self) {
        if self.stale > 1024 && self.stale > self.slots.len() {
            let entries: Vec<Reverse<Entry>> = self
                .slots
                .iter()
                .map(|(&clock, s)| {
                    let due_ms = if s.phase == WARNING {
                        s.warning_ms
                    } else {
                        s.deadline_ms
                    };
                    Reverse(Entry {
                        due_ms,
                        clock,
                        generation: s.generation,
                        phase: s.phase,
                    })
                })
                .collect();
            self.heap = BinaryHeap::from(entries);
            self.stale = 0;
        }
    }
}

// ------------------------------------------------------------------------------ benchmark

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

#[cfg(test)]
mod tests {
    use super::*;

    fn t(min: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000 + min * 60, 0).unwrap()
    }

    #[test]
    fn warning_then_breach_in_time_order() {
        let mut s = Scheduler::new();
        s.schedule(
            1,
            Timing {
                warning_at: Some(t(8)),
                deadline: t(10),
                escalation_step: false,
            },
        );
        s.schedule(
            2,
            Timing {
                warning_at: None,
                deadline: t(9),
                escalation_step: true,
            },
        );
        assert_eq!(s.next_due(), Some(t(8)));
        let mut out = Vec::new();
        s.pop_due(t(20), &mut out);
        let got: Vec<_> = out.iter().map(|d| (d.clock, d.kind, d.at)).collect();
        assert_eq!(
            got,
            vec![
                (1, DueKind::Warning, t(8)),
                (2, DueKind::StepOverdue, t(9)),
                (1, DueKind::Breach, t(10))
            ]
        );
        assert!(s.is_empty());
        assert_eq!(s.next_due(), None);
    }

    #[test]
    fn rescheduled_and_cancelled_clocks_do_not_fire_twice() {
        let mut s = Scheduler::new();
        s.schedule(
            1,
            Timing {
                warning_at: None,
                deadline: t(5),
                escalation_step: false,
            },
        );
        s.schedule(
            1,
            Timing {
                warning_at: None,
                deadline: t(15),
                escalation_step: false,
            },
        );
        s.schedule(
            2,
            Timing {
                warning_at: None,
                deadline: t(6),
                escalation_step: false,
            },
        );
        assert!(s.cancel(2));
        let mut out = Vec::new();
        assert_eq!(s.pop_due(t(10), &mut out), 0);
        assert_eq!(s.next_due(), Some(t(15)));
        assert_eq!(s.pop_due(t(15), &mut out), 1);
        assert_eq!(out[0].clock, 1);
    }

    #[test]
    fn compaction_keeps_live_entries() {
        let mut s = Scheduler::new();
        for round in 0..5 {
            for id in 0..1000u64 {
                s.schedule(
                    id,
                    Timing {
                        warning_at: None,
                        deadline: t(100 + round),
                        escalation_step: false,
                    },
                );
            }
        }
        assert!(
            s.heap.len() < 3000,
            "stale entries were compacted: {}",
            s.heap.len()
        );
        let mut out = Vec::new();
        assert_eq!(s.pop_due(t(200), &mut out), 1000);
        assert!(out.iter().all(|d| d.at == t(104)));
    }
}
