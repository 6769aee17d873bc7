//! Bin-fill sensor readings to overflow *episodes*: one overflow makes one event, however
//! many readings report it. Pure: readings and the current time are passed in.
//!
//! A bin is overflowing when a reading carries the overflow flag or its fill is at or above
//! `overflow_at_pct`. The first such reading opens an episode whose id is the bin id and that
//! reading's time (`BIN-0042@20261121T022300Z`), so the same readings always give the same
//! id. The episode ends once the fill has stayed below `clear_below_pct` (without the flag)
//! for `clear_hold` of reading time; readings in between keep it open. Only then can a new
//! overflow open a new episode.
//!
//! Per-bin times are compared so that a reading older than one already seen for that bin
//! (an MQTT redelivery, a sensor resending its buffer) changes nothing. The state is small
//! (bins in or recently out of an episode) and is saved as the connector's cursor with each
//! batch ([`Debouncer::snapshot`], [`Debouncer::restore`]), so a restart replays unacked
//! readings against exactly the state they were first seen with.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Thresholds, all configurable per connector (`debounce = { ... }`; times in seconds).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DebounceConfig {
    /// Fill (%) at or above which a reading is an overflow. Default 90.
    pub overflow_at_pct: f64,
    /// Fill (%) below which the bin counts as emptied. Default 60.
    pub clear_below_pct: f64,
    /// How long the fill must stay below `clear_below_pct` to end the episode. Default 30 min.
    #[serde(
        rename = "clear_hold_secs",
        deserialize_with = "crate::config::duration::secs::deserialize"
    )]
    pub clear_hold: Duration,
    /// How long a bin whose episode ended is remembered. Default 6 h.
    #[serde(
        rename = "forget_after_secs",
        deserialize_with = "crate::config::duration::secs::deserialize"
    )]
    pub forget_after: Duration,
    /// Readings stamped further ahead of the hub's clock are refused. Default 10 min.
    #[serde(
        rename = "max_clock_skew_secs",
        deserialize_with = "crate::config::duration::secs::deserialize"
    )]
    pub max_clock_skew: Duration,
}

impl Default for DebounceConfig {
    fn default() -> Self {
        DebounceConfig {
            overflow_at_pct: 90.0,
            clear_below_pct: 60.0,
            clear_hold: Duration::from_secs(30 * 60),
            forget_after: Duration::from_secs(6 * 3600),
            max_clock_skew: Duration::from_secs(600),
        }
    }
}

impl DebounceConfig {
    pub fn validate(&self) -> Result<(), String> {
        let pct = 0.0..=100.0;
        if !pct.contains(&self.overflow_at_pct) || !pct.contains(&self.clear_below_pct) {
            return Err("overflow_at_pct and clear_below_pct must be between 0 and 100".into());
        }
        if self.clear_below_pct >= self.overflow_at_pct {
            return Err(format!(
                "clear_below_pct ({}) must be below overflow_at_pct ({}), or every reading would open or close an episode",
                self.clear_below_pct, self.overflow_at_pct
            ));
        }
        if self.forget_after < self.clear_hold {
            return Err("forget_after must be at least clear_hold".into());
        }
        Ok(())
    }
}

/// One sensor reading, as published on `sanitation/bins/<bin_id>/reading`:
///
/// ```json
/// {"bin_id": "BIN-0042", "fill_level": 97, "overflow": true,
///  "lon": 105.43, "lat": 28.90, "time": "2026-11-21T10:23:00+08:00"}
/// ```
/// `overflow` defaults to false; `lon`/`lat` are optional but come as a pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub bin_id: String,
    pub fill_pct: f64,
    pub overflow: bool,
    pub point: Option<(f64, f64)>,
    pub at: DateTime<Utc>,
}

impl Reading {
    /// Parse a reading; errors name the field and the problem.
    pub fn parse(bytes: &[u8]) -> Result<Reading, String> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("reading is not valid JSON: {e}"))?;
        let obj = value.as_object().ok_or("reading is not a JSON object")?;
        let bin_id = match obj.get("bin_id") {
            Some(Value::String(s)) if !s.trim().is_empty() => {
                if let Some(problem) =
                    hub_schemas::limits::text_problem(s, hub_schemas::limits::TextKind::Id)
                {
                    return Err(format!("field `bin_id`: {problem}"));
                }
                s.trim().to_owned()
            }
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err("field `bin_id`: missing".into())
            }
            Some(_) => return Err("field `bin_id`: expected text".into()),
        };
        let fill_pct = match obj.get("fill_level") {
            Some(Value::Number(n)) => n
                .as_f64()
                .filter(|v| (0.0..=100.0).contains(v))
                .ok_or_else(|| format!("field `fill_level`: {n} is not a percentage"))?,
            None | Some(Value::Null) => return Err("field `fill_level`: missing".into()),
            Some(_) => return Err("field `fill_level`: expected a number".into()),
        };
        let overflow = match obj.get("overflow") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err("field `overflow`: expected true or false".into()),
        };
        let coord = |field: &str, range: f64| -> Result<Option<f64>, String> {
            match obj.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => n
                    .as_f64()
                    .filter(|v| v.abs() <= range)
                    .map(Some)
                    .ok_or_else(|| format!("field `{field}`: {n} is out of range")),
                Some(_) => Err(format!("field `{field}`: expected a number")),
            }
        };
        let point = match (coord("lon", 180.0)?, coord("lat", 90.0)?) {
            (Some(lon), Some(lat)) => Some((lon, lat)),
            (None, None) => None,
            (Some(_), None) => return Err("field `lat`: missing while `lon` is given".into()),
            (None, Some(_)) => return Err("field `lon`: missing while `lat` is given".into()),
        };
        let at = match obj.get("time") {
            Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| format!("field `time`: `{s}` is not an RFC 3339 time: {e}"))?,
            None | Some(Value::Null) => return Err("field `time`: missing".into()),
            Some(_) => return Err("field `time`: expected text".into()),
        };
        Ok(Reading {
            bin_id,
            fill_pct,
            overflow,
            point,
            at,
        })
    }

    fn is_overflow(&self, config: &DebounceConfig) -> bool {
        self.overflow || self.fill_pct >= config.overflow_at_pct
    }
}

/// A newly opened overflow episode: the one event it makes.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    /// Stable: `<bin_id>@<opening reading's time, UTC, %Y%m%dT%H%M%SZ>`.
    pub id: String,
    pub bin_id: String,
    pub opened_at: DateTime<Utc>,
    pub fill_pct: f64,
    pub point: Option<(f64, f64)>,
}

/// What one reading did.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// An overflow began: make one event.
    Opened(Episode),
    /// Still overflowing, or not yet emptied for long enough.
    Continuing { episode_id: String },
    /// Emptied for `clear_hold`: the episode is over.
    Closed { episode_id: String },
    /// Nothing to do (a bin in normal use).
    Quiet,
    /// Older than a reading already seen for this bin (a redelivery); changes nothing.
    Stale,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct BinState {
    last_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    episode: Option<OpenEpisode>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OpenEpisode {
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    below_since: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    debouncer: u32,
    bins: BTreeMap<String, BinState>,
}

const SNAPSHOT_VERSION: u32 = 1;

#[derive(Debug, Clone)]
pub struct Debouncer {
    config: DebounceConfig,
    bins: BTreeMap<String, BinState>,
}

impl Debouncer {
    pub fn new(config: DebounceConfig) -> Result<Self, String> {
        config.validate()?;
        Ok(Debouncer {
            config,
            bins: BTreeMap::new(),
        })
    }

    /// Feed one reading, `now` being the hub's clock (only used to refuse readings from the
    /// future, which would otherwise make every later reading look stale).
    pub fn observe(&mut self, reading: &Reading, now: DateTime<Utc>) -> Result<Observed, String> {
        let skew = chrono::Duration::from_std(self.config.max_clock_skew).unwrap_or_default();
        if reading.at > now + skew {
            return Err(format!(
                "field `time`: {} is ahead of the hub's clock ({}) by more than {} s; check the sensor's clock",
                reading.at.to_rfc3339(),
                now.to_rfc3339(),
                self.config.max_clock_skew.as_secs()
            ));
        }
        let overflowing = reading.is_overflow(&self.config);
        let Some(state) = self.bins.get_mut(&reading.bin_id) else {
            if !overflowing {
                return Ok(Observed::Quiet);
            }
            let episode = open(reading);
            self.bins.insert(
                reading.bin_id.clone(),
                BinState {
                    last_at: reading.at,
                    episode: Some(OpenEpisode {
                        id: episode.id.clone(),
                        below_since: None,
                    }),
                },
            );
            return Ok(Observed::Opened(episode));
        };
        if reading.at <= state.last_at {
            return Ok(Observed::Stale);
        }
        state.last_at = reading.at;
        let Some(current) = &mut state.episode else {
            if !overflowing {
                return Ok(Observed::Quiet);
            }
            let episode = open(reading);
            state.episode = Some(OpenEpisode {
                id: episode.id.clone(),
                below_since: None,
            });
            return Ok(Observed::Opened(episode));
        };
        let emptied = !reading.overflow && reading.fill_pct < self.config.clear_below_pct;
        if !emptied {
            current.below_since = None;
            return Ok(Observed::Continuing {
                episode_id: current.id.clone(),
            });
        }
        let since = *current.below_since.get_or_insert(reading.at);
        let hold = chrono::Duration::from_std(self.config.clear_hold).unwrap_or_default();
        if reading.at - since >= hold {
            let episode_id = current.id.clone();
            state.episode = None;
            Ok(Observed::Closed { episode_id })
        } else {
            Ok(Observed::Continuing {
                episode_id: current.id.clone(),
            })
        }
    }

    /// Bins currently in an overflow episode.
    pub fn open_episodes(&self) -> usize {
        self.bins.values().filter(|b| b.episode.is_some()).count()
    }

    /// The state as text, to be saved as the connector's cursor. Bins whose episode ended
    /// longer than `forget_after` before the newest reading are dropped first.
    pub fn snapshot(&mut self) -> String {
        if let Some(newest) = self.bins.values().map(|b| b.last_at).max() {
            let keep = chrono::Duration::from_std(self.config.forget_after).unwrap_or_default();
            self.bins
                .retain(|_, b| b.episode.is_some() || newest - b.last_at <= keep);
        }
        let snapshot = Snapshot {
            debouncer: SNAPSHOT_VERSION,
            bins: self.bins.clone(),
        };
        serde_json::to_string(&snapshot).expect("the debouncer state serialises")
    }

    /// Replace the state with a saved snapshot.
    pub fn restore(&mut self, cursor: &str) -> Result<(), String> {
        let snapshot: Snapshot = serde_json::from_str(cursor).map_err(|e| {
            format!("the saved cursor is not a bin-debouncer snapshot ({e}); was this connector's name used for another kind of source?")
        })?;
        if snapshot.debouncer != SNAPSHOT_VERSION {
            return Err(format!(
                "the saved debouncer snapshot has version {}, this hub reads version {SNAPSHOT_VERSION}",
                snapshot.debouncer
            ));
        }
        self.bins = snapshot.bins;
        Ok(())
    }
}

fn open(reading: &Reading) -> Episode {
    Episode {
        id: format!("{}@{}", reading.bin_id, reading.at.format("%Y%m%dT%H%M%SZ")),
        bin_id: reading.bin_id.clone(),
        opened_at: reading.at,
        fill_pct: reading.fill_pct,
        point: reading.point,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(minute: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 2, 0, 0).unwrap() + chrono::Duration::minutes(minute)
    }

    fn reading(bin: &str, minute: i64, fill: f64, overflow: bool) -> Reading {
        Reading {
            bin_id: bin.into(),
            fill_pct: fill,
            overflow,
            point: Some((105.43, 28.9)),
            at: t(minute),
        }
    }

    fn debouncer() -> Debouncer {
        Debouncer::new(DebounceConfig::default()).unwrap()
    }

    /// Feed readings, return the ids of the episodes opened.
    fn opened(d: &mut Debouncer, readings: &[Reading]) -> Vec<String> {
        readings
            .iter()
            .filter_map(|r| match d.observe(r, t(10_000)).unwrap() {
                Observed::Opened(e) => Some(e.id),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn one_overflow_makes_one_event_however_many_readings_report_it() {
        let mut d = debouncer();
        let mut readings = vec![reading("B1", 0, 40.0, false), reading("B1", 5, 92.0, false)];
        // Twenty more readings of the full bin, one dipping to 70 % (not emptied).
        for m in 0..20 {
            let fill = if m == 7 { 70.0 } else { 98.0 };
            readings.push(reading("B1", 6 + m, fill, m % 2 == 0));
        }
        assert_eq!(opened(&mut d, &readings), vec!["B1@20261121T020500Z"]);
        assert_eq!(d.open_episodes(), 1);
    }

    #[test]
    fn the_episode_ends_only_after_the_bin_stays_emptied_for_the_hold_time() {
        let mut d = debouncer();
        assert_eq!(opened(&mut d, &[reading("B1", 0, 95.0, false)]).len(), 1);
        // Emptied for 20 minutes, then full again: still the same episode.
        let r = [
            reading("B1", 10, 20.0, false),
            reading("B1", 30, 20.0, false),
            reading("B1", 31, 96.0, false),
        ];
        assert!(opened(&mut d, &r).is_empty());
        // Emptied for 30 minutes: closed; the next overflow is a new episode.
        assert_eq!(
            d.observe(&reading("B1", 40, 10.0, false), t(100)).unwrap(),
            Observed::Continuing {
                episode_id: "B1@20261121T020000Z".into()
            }
        );
        assert_eq!(
            d.observe(&reading("B1", 70, 10.0, false), t(100)).unwrap(),
            Observed::Closed {
                episode_id: "B1@20261121T020000Z".into()
            }
        );
        assert_eq!(
            opened(&mut d, &[reading("B1", 90, 99.0, true)]),
            vec!["B1@20261121T033000Z"]
        );
    }

    #[test]
    fn the_overflow_flag_alone_opens_and_keeps_an_episode() {
        let mut d = debouncer();
        assert_eq!(opened(&mut d, &[reading("B2", 0, 50.0, true)]).len(), 1);
        // Low fill but the lid sensor still reports overflow: not emptied.
        d.observe(&reading("B2", 40, 5.0, true), t(100)).unwrap();
        assert_eq!(
            d.observe(&reading("B2", 75, 5.0, false), t(100)).unwrap(),
            Observed::Continuing {
                episode_id: "B2@20261121T020000Z".into()
            }
        );
    }

    #[test]
    fn redelivered_and_out_of_order_readings_change_nothing() {
        let mut d = debouncer();
        let first = reading("B3", 0, 97.0, false);
        assert_eq!(opened(&mut d, std::slice::from_ref(&first)).len(), 1);
        assert_eq!(d.observe(&first, t(100)).unwrap(), Observed::Stale);
        d.observe(&reading("B3", 50, 10.0, false), t(100)).unwrap();
        d.observe(&reading("B3", 90, 10.0, false), t(100)).unwrap();
        // An old overflow reading arriving after the episode closed opens nothing.
        assert_eq!(
            d.observe(&reading("B3", 20, 99.0, false), t(100)).unwrap(),
            Observed::Stale
        );
    }

    #[test]
    fn a_restored_snapshot_replays_to_the_same_episodes() {
        let readings: Vec<Reading> = (0..40)
            .map(|m| {
                let bin = if m % 2 == 0 { "B4" } else { "B5" };
                let fill = if (10..20).contains(&m) { 99.0 } else { 30.0 };
                reading(bin, m, fill, false)
            })
            .collect();
        let mut whole = debouncer();
        let all = opened(&mut whole, &readings);
        // Crash after 15 readings with the snapshot saved; the rest are redelivered, and a
        // few of the saved ones too (an ack that never reached the broker).
        let mut before = debouncer();
        let mut got = opened(&mut before, &readings[..15]);
        let cursor = before.snapshot();
        let mut after = debouncer();
        after.restore(&cursor).unwrap();
        got.extend(opened(&mut after, &readings[12..]));
        assert_eq!(got, all);
        assert_eq!(all.len(), 2);
        assert!(after
            .restore(r#"{"items":[]}"#)
            .unwrap_err()
            .contains("not a bin-debouncer snapshot"));
    }

    #[test]
    fn closed_bins_are_forgotten_and_readings_from_the_future_refused() {
        let mut d = debouncer();
        opened(&mut d, &[reading("B6", 0, 99.0, false)]);
        d.observe(&reading("B6", 10, 0.0, false), t(100)).unwrap();
        d.observe(&reading("B6", 45, 0.0, false), t(100)).unwrap();
        opened(&mut d, &[reading("B7", 45 + 6 * 60 + 1, 99.0, false)]);
        let snapshot = d.snapshot();
        assert!(
            !snapshot.contains("B6") && snapshot.contains("B7"),
            "{snapshot}"
        );
        let err = d
            .observe(&reading("B8", 60, 99.0, false), t(0))
            .unwrap_err();
        assert!(err.contains("ahead of the hub's clock"), "{err}");
    }

    #[test]
    fn malformed_readings_name_the_field() {
        let cases = [
            ("not json", "not valid JSON"),
            (
                r#"{"fill_level":10,"time":"2026-11-21T10:00:00+08:00"}"#,
                "`bin_id`: missing",
            ),
            (
                r#"{"bin_id":"B","fill_level":140,"time":"2026-11-21T10:00:00+08:00"}"#,
                "`fill_level`: 140",
            ),
            (
                r#"{"bin_id":"B","fill_level":"full","time":"2026-11-21T10:00:00+08:00"}"#,
                "`fill_level`: expected a number",
            ),
            (
                r#"{"bin_id":"B","fill_level":10,"time":"10:00"}"#,
                "`time`: `10:00`",
            ),
            (
                r#"{"bin_id":"B","fill_level":10,"lon":105.4,"time":"2026-11-21T10:00:00+08:00"}"#,
                "`lat`: missing",
            ),
            (
                r#"{"bin_id":"B","fill_level":10,"overflow":"yes","time":"2026-11-21T10:00:00+08:00"}"#,
                "`overflow`",
            ),
        ];
        for (json, problem) in cases {
            let err = Reading::parse(json.as_bytes()).unwrap_err();
            assert!(err.contains(problem), "{json}: {err}");
        }
        let ok = Reading::parse(
            br#"{"bin_id":"BIN-1","fill_level":97,"overflow":true,"lon":105.4,"lat":28.9,"time":"2026-11-21T10:00:00+08:00"}"#,
        )
        .unwrap();
        assert_eq!(ok.at, t(0));
        assert!(DebounceConfig {
            clear_below_pct: 95.0,
            ..DebounceConfig::default()
        }
        .validate()
        .is_err());
    }
}
