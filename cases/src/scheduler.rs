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

use chrono::{DateTime, Utc};

use super::clock::SlaClock;

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
