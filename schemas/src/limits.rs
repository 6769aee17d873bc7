//! What the hub accepts from outside: a sane time window, text without control characters,
//! lengths the store holds comfortably, finite coordinates on the globe.
//!
//! Connectors check each departmental field as they read it (so the refusal names the
//! department's own field); [`check_event`] checks a whole civic event once more where the
//! routing pipeline takes it from Kafka, because anything with the broker's address can
//! write to a feed topic. A refusal names the field and what is wrong, never the value when
//! it might be personal data.

use chrono::{DateTime, TimeDelta, Utc};

use crate::event::CivicEvent;

/// The bounds every input is held to. Copy, so it travels in contexts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputLimits {
    /// How far back an event's time may lie (default ten years).
    pub max_age: TimeDelta,
    /// How far ahead of the hub's clock an event's time may lie (default one day: clocks of
    /// departmental systems drift, the future does not report).
    pub max_ahead: TimeDelta,
}

impl Default for InputLimits {
    fn default() -> Self {
        InputLimits {
            max_age: TimeDelta::days(3650),
            max_ahead: TimeDelta::days(1),
        }
    }
}

/// Longest identifier (source id, category code, grid code, attribute key).
pub const MAX_ID_CHARS: usize = 200;
/// Longest one-line text (names, addresses, attribute values).
pub const MAX_LINE_CHARS: usize = 1000;
/// Longest free text (a description).
pub const MAX_TEXT_CHARS: usize = 10_000;
/// Most attributes on one event.
pub const MAX_ATTRIBUTES: usize = 64;

/// A field that cannot be accepted, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {problem}")]
pub struct FieldProblem {
    pub field: String,
    pub problem: String,
}

impl FieldProblem {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        FieldProblem {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// What kind of text a field holds, which decides its length and whether line breaks and
/// tabs are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    Id,
    Line,
    FreeText,
}

impl TextKind {
    fn max_chars(self) -> usize {
        match self {
            TextKind::Id => MAX_ID_CHARS,
            TextKind::Line => MAX_LINE_CHARS,
            TextKind::FreeText => MAX_TEXT_CHARS,
        }
    }
}

/// Why `text` cannot be stored as a field of `kind`: a control character (NUL, which
/// PostgreSQL refuses outright, and the others, which no departmental system means to send),
/// or too many characters. Free text may hold line breaks and tabs.
pub fn text_problem(text: &str, kind: TextKind) -> Option<String> {
    if let Some((i, c)) = text.chars().enumerate().find(|(_, c)| {
        c.is_control() && !(kind == TextKind::FreeText && matches!(c, '\n' | '\r' | '\t'))
    }) {
        return Some(format!(
            "holds the control character U+{:04X} at character {}",
            c as u32,
            i + 1
        ));
    }
    let n = text.chars().count();
    let max = kind.max_chars();
    (n > max).then(|| format!("is {n} characters long; at most {max} are accepted"))
}

/// Checks one text field.
pub fn check_text(field: &str, text: &str, kind: TextKind) -> Result<(), FieldProblem> {
    match text_problem(text, kind) {
        Some(problem) => Err(FieldProblem::new(field, problem)),
        None => Ok(()),
    }
}

impl InputLimits {
    /// The earliest and latest accepted time, seen from `now`. Saturates at chrono's range.
    pub fn window(&self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        (
            now.checked_sub_signed(self.max_age)
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
            now.checked_add_signed(self.max_ahead)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        )
    }

    /// Why time `t` is not accepted at `now`, if it is not.
    pub fn time_problem(&self, t: DateTime<Utc>, now: DateTime<Utc>) -> Option<String> {
        let (earliest, latest) = self.window(now);
        if t < earliest {
            Some(format!(
                "{} is more than {} days in the past",
                t.to_rfc3339(),
                self.max_age.num_days()
            ))
        } else if t > latest {
            Some(format!(
                "{} is more than {} hours ahead of the hub's clock",
                t.to_rfc3339(),
                self.max_ahead.num_hours()
            ))
        } else {
            None
        }
    }

    pub fn check_time(
        &self,
        field: &str,
        t: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), FieldProblem> {
        match self.time_problem(t, now) {
            Some(problem) => Err(FieldProblem::new(field, problem)),
            None => Ok(()),
        }
    }
}

/// Checks a whole civic event: every text field, both times, the point. The first problem
/// found is returned.
pub fn check_event(
    event: &CivicEvent,
    limits: &InputLimits,
    now: DateTime<Utc>,
) -> Result<(), FieldProblem> {
    let must_have = |field: &str, v: &str| {
        if v.trim().is_empty() {
            Err(FieldProblem::new(field, "is empty"))
        } else {
            Ok(())
        }
    };
    must_have("event_id", &event.event_id)?;
    must_have("source_system", &event.source_system)?;
    must_have("source_id", &event.source_id)?;
    must_have("category_code", &event.category_code)?;
    check_text("event_id", &event.event_id, TextKind::Id)?;
    check_text("source_system", &event.source_system, TextKind::Id)?;
    check_text("source_id", &event.source_id, TextKind::Id)?;
    check_text("category_code", &event.category_code, TextKind::Id)?;
    if let Some(name) = &event.category_name {
        check_text("category_name", name, TextKind::Line)?;
    }
    limits.check_time("occurred_at", event.occurred_at, now)?;
    limits.check_time("received_at", event.received_at, now)?;
    if let Some(p) = event.location.point {
        if !p.lon.is_finite() || !(-180.0..=180.0).contains(&p.lon) {
            return Err(FieldProblem::new(
                "location.point.lon",
                format!("{} is not a longitude between -180 and 180", p.lon),
            ));
        }
        if !p.lat.is_finite() || !(-90.0..=90.0).contains(&p.lat) {
            return Err(FieldProblem::new(
                "location.point.lat",
                format!("{} is not a latitude between -90 and 90", p.lat),
            ));
        }
    }
    if let Some(a) = &event.location.address {
        check_text("location.address", a, TextKind::Line)?;
    }
    if let Some(g) = &event.location.grid_code {
        check_text("location.grid_code", g, TextKind::Id)?;
    }
    check_text("description", &event.description, TextKind::FreeText)?;
    if event.attributes.len() > MAX_ATTRIBUTES {
        return Err(FieldProblem::new(
            "attributes",
            format!(
                "{} attributes; at most {MAX_ATTRIBUTES} are accepted",
                event.attributes.len()
            ),
        ));
    }
    for (k, v) in &event.attributes {
        check_text("attributes (a key)", k, TextKind::Id)?;
        // Values may be a resident's free-text answer to a service question.
        check_text(&format!("attributes.{k}"), v, TextKind::FreeText)?;
    }
    if let Some(r) = &event.reporter {
        for (field, v) in [
            ("reporter.name", &r.name),
            ("reporter.phone", &r.phone),
            ("reporter.id_number", &r.id_number),
        ] {
            if let Some(v) = v {
                check_text(field, v.expose(), TextKind::Line)?;
            }
        }
    }
    if let Some(raw) = &event.raw_ref {
        check_text("raw_ref.uri", &raw.uri, TextKind::Line)?;
        check_text("raw_ref.sha256", &raw.sha256, TextKind::Id)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Department, GeoPoint, Location};

    fn event() -> CivicEvent {
        let now = Utc::now();
        CivicEvent {
            event_id: "e-1".into(),
            source_system: "urban_management.demo".into(),
            source_id: "CG1".into(),
            department: Department::UrbanManagement,
            category_code: "010102".into(),
            category_name: Some("暴露垃圾".into()),
            occurred_at: now,
            received_at: now,
            location: Location {
                point: Some(GeoPoint {
                    lon: 105.43,
                    lat: 28.9,
                }),
                address: None,
                grid_code: None,
            },
            description: "路口\n有垃圾\t堆放".into(),
            attributes: Default::default(),
            reporter: None,
            raw_ref: None,
        }
    }

    #[test]
    fn a_plain_event_passes_and_free_text_may_hold_line_breaks() {
        assert_eq!(
            check_event(&event(), &InputLimits::default(), Utc::now()),
            Ok(())
        );
    }

    #[test]
    fn control_characters_are_named_with_the_field() {
        let mut e = event();
        e.source_id = "CG\u{0}1".into();
        let err = check_event(&e, &InputLimits::default(), Utc::now()).unwrap_err();
        assert_eq!(err.field, "source_id");
        assert!(err.problem.contains("U+0000"), "{err}");
        let mut e = event();
        e.location.address = Some("a\u{1b}[31mred".into());
        let err = check_event(&e, &InputLimits::default(), Utc::now()).unwrap_err();
        assert_eq!(err.field, "location.address");
        let mut e = event();
        e.category_name = Some("two\nlines".into());
        assert_eq!(
            check_event(&e, &InputLimits::default(), Utc::now())
                .unwrap_err()
                .field,
            "category_name"
        );
    }

    #[test]
    fn times_outside_the_window_are_refused_and_the_window_saturates() {
        let now = Utc::now();
        let limits = InputLimits::default();
        let mut e = event();
        e.occurred_at = now + TimeDelta::days(2);
        let err = check_event(&e, &limits, now).unwrap_err();
        assert_eq!(err.field, "occurred_at");
        assert!(err.problem.contains("ahead"), "{err}");
        e.occurred_at = DateTime::<Utc>::MIN_UTC;
        assert!(check_event(&e, &limits, now)
            .unwrap_err()
            .problem
            .contains("past"));
        let huge = InputLimits {
            max_age: TimeDelta::MAX,
            max_ahead: TimeDelta::MAX,
        };
        assert_eq!(
            huge.window(now),
            (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC)
        );
    }

    #[test]
    fn non_finite_and_out_of_range_points_are_refused() {
        for (lon, lat, field) in [
            (f64::NAN, 28.9, "location.point.lon"),
            (105.0, f64::INFINITY, "location.point.lat"),
            (181.0, 28.9, "location.point.lon"),
        ] {
            let mut e = event();
            e.location.point = Some(GeoPoint { lon, lat });
            let err = check_event(&e, &InputLimits::default(), Utc::now()).unwrap_err();
            assert_eq!(err.field, field);
        }
    }

    #[test]
    fn overlong_text_is_refused() {
        let mut e = event();
        e.description = "很".repeat(MAX_TEXT_CHARS + 1);
        let err = check_event(&e, &InputLimits::default(), Utc::now()).unwrap_err();
        assert_eq!(err.field, "description");
        assert!(err.problem.contains("10001 characters"), "{err}");
    }
}
