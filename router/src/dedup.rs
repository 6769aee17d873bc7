//! Duplicate detection: the same incident reported by several departments or residents
//! becomes one task. A new report merges into an open task of the same category group
//! whose report lies within the group's radius and time window (see `taxonomy`); with
//! several such tasks, into the earliest, so that every duplicate lands on the same one.
//!
//! The pipeline asks [`Router::merge_candidate`](crate::Router::merge_candidate) for the new
//! task's candidate, fetches the open tasks of that group whose occurrence lies in
//! `candidate.window_start() ..= candidate.window_end()`, and calls [`find_merge_target`].

use chrono::{DateTime, TimeDelta, Utc};
use hub_schemas::event::GeoPoint;

/// Mean Earth radius (IUGG), metres.
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A new task that may duplicate an open one.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeCandidate {
    pub task_id: String,
    /// Category group id.
    pub group: String,
    pub point: GeoPoint,
    pub occurred_at: DateTime<Utc>,
    pub radius_m: f64,
    pub window: TimeDelta,
}

impl MergeCandidate {
    /// Earliest occurrence an open task may have to be the same incident.
    pub fn window_start(&self) -> DateTime<Utc> {
        // Checked: an event time at the edge of the calendar must not overflow.
        self.occurred_at
            .checked_sub_signed(self.window)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// Latest occurrence (a report may arrive after a later report of the same incident).
    pub fn window_end(&self) -> DateTime<Utc> {
        self.occurred_at
            .checked_add_signed(self.window)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

/// An open task's report as the store holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenReport {
    pub task_id: String,
    pub group: String,
    pub point: GeoPoint,
    pub occurred_at: DateTime<Utc>,
}

/// The task `candidate` should be merged into: among open reports of its group within its
/// radius and window (both inclusive), the one that occurred first (ties: the smaller task
/// id). `None`: the candidate is a new incident.
pub fn find_merge_target<'a>(
    candidate: &MergeCandidate,
    open: &'a [OpenReport],
) -> Option<&'a str> {
    open.iter()
        .filter(|r| {
            r.task_id != candidate.task_id
                && r.group == candidate.group
                && (r.occurred_at - candidate.occurred_at).abs() <= candidate.window
                && distance_m(r.point, candidate.point) <= candidate.radius_m
        })
        .min_by(|a, b| {
            a.occurred_at
                .cmp(&b.occurred_at)
                .then_with(|| a.task_id.cmp(&b.task_id))
        })
        .map(|r| r.task_id.as_str())
}

/// Great-circle distance in metres (haversine). GCJ-02's offset is nearly constant across a
/// city, so distances between two GCJ-02 points are as good as between WGS-84 ones.
pub fn distance_m(a: GeoPoint, b: GeoPoint) -> f64 {
    let (lat1, lat2) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = lat2 - lat1;
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minute: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 6, 3, 2, 0, 0).unwrap() + TimeDelta::minutes(minute)
    }

    /// `metres_east` of a point in 梧桐社区.
    fn point(metres_east: f64) -> GeoPoint {
        let lat: f64 = 28.95;
        GeoPoint {
            lon: 105.35
                + metres_east / (EARTH_RADIUS_M * lat.to_radians().cos()) * 180.0
                    / std::f64::consts::PI,
            lat,
        }
    }

    fn report(id: &str, group: &str, metres_east: f64, minute: i64) -> OpenReport {
        OpenReport {
            task_id: id.into(),
            group: group.into(),
            point: point(metres_east),
            occurred_at: at(minute),
        }
    }

    fn garbage_candidate(minute: i64) -> MergeCandidate {
        MergeCandidate {
            task_id: "new".into(),
            group: "garbage".into(),
            point: point(0.0),
            occurred_at: at(minute),
            radius_m: 80.0,
            window: TimeDelta::hours(12),
        }
    }

    #[test]
    fn distance_is_in_metres() {
        let d = distance_m(point(0.0), point(100.0));
        assert!((d - 100.0).abs() < 0.01, "{d}");
        // One degree of latitude is about 111.2 km.
        let north = GeoPoint {
            lon: 105.35,
            lat: 29.95,
        };
        assert!((distance_m(point(0.0), north) - 111_195.0).abs() < 10.0);
    }

    #[test]
    fn merges_into_the_earliest_nearby_report_of_the_group() {
        let open = [
            report("later", "garbage", 30.0, 200),
            report("earliest", "garbage", 70.0, 100),
            report("too-far", "garbage", 81.0, 50),
            report("other-group", "noise", 0.0, 10),
            report("too-old", "garbage", 0.0, 300 - 12 * 60 - 1),
        ];
        assert_eq!(
            find_merge_target(&garbage_candidate(300), &open),
            Some("earliest")
        );
    }

    #[test]
    fn window_and_radius_are_inclusive_both_ways() {
        let open = [report("edge", "garbage", 79.99, 0)];
        assert_eq!(
            find_merge_target(&garbage_candidate(12 * 60), &open),
            Some("edge")
        );
        // A report arriving late for an earlier incident still finds the later task.
        let open = [report("later-task", "garbage", 0.0, 12 * 60)];
        assert_eq!(
            find_merge_target(&garbage_candidate(0), &open),
            Some("later-task")
        );
        let open = [report("late", "garbage", 0.0, 12 * 60 + 1)];
        assert_eq!(find_merge_target(&garbage_candidate(0), &open), None);
    }

    #[test]
    fn never_merges_into_itself_and_breaks_ties_by_id() {
        let mut open = vec![report("new", "garbage", 0.0, 0)];
        assert_eq!(find_merge_target(&garbage_candidate(0), &open), None);
        open.push(report("b", "garbage", 0.0, 0));
        open.push(report("a", "garbage", 0.0, 0));
        assert_eq!(find_merge_target(&garbage_candidate(0), &open), Some("a"));
        let c = garbage_candidate(0);
        assert_eq!((c.window_start(), c.window_end()), (at(-720), at(720)));
    }
}
