//! Reading fields out of a departmental JSON record, with errors that name the field.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use hub_schemas::event::GeoPoint;
use hub_schemas::limits::{text_problem, InputLimits, TextKind};
use serde_json::{Map, Value};

use super::MappingError;

/// China Standard Time: departmental systems write local times without an offset.
pub fn china_time() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

/// A departmental record, with the bounds its values are held to: text without control
/// characters, times inside the accepted window around `now`.
pub struct Record {
    map: Map<String, Value>,
    limits: InputLimits,
    now: DateTime<Utc>,
}

impl Record {
    pub fn parse(
        bytes: &[u8],
        limits: InputLimits,
        now: DateTime<Utc>,
    ) -> Result<Self, MappingError> {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(Record { map, limits, now }),
            Ok(other) => Err(MappingError::new(
                "(record)",
                format!("expected a JSON object, got {}", kind(&other)),
            )),
            Err(e) => Err(MappingError::new(
                "(record)",
                format!("not valid JSON: {e}"),
            )),
        }
    }

    pub fn object(&self, field: &str) -> Result<Option<Record>, MappingError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Record {
                map: m.clone(),
                limits: self.limits,
                now: self.now,
            })),
            Some(other) => Err(MappingError::new(
                field,
                format!("expected an object, got {}", kind(other)),
            )),
        }
    }

    /// A required, non-empty string (numbers are accepted as their decimal text, since
    /// departmental systems are loose about ids).
    pub fn text(&self, field: &str) -> Result<String, MappingError> {
        self.opt_text(field)?
            .ok_or_else(|| MappingError::new(field, "missing"))
    }

    /// One line of text: control characters and overlong values are refused.
    pub fn opt_text(&self, field: &str) -> Result<Option<String>, MappingError> {
        self.opt_text_of(field, TextKind::Line)
    }

    /// Free text (a description): may hold line breaks and tabs.
    pub fn opt_free_text(&self, field: &str) -> Result<Option<String>, MappingError> {
        self.opt_text_of(field, TextKind::FreeText)
    }

    fn opt_text_of(
        &self,
        field: &str,
        text_kind: TextKind,
    ) -> Result<Option<String>, MappingError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => match text_problem(s, text_kind) {
                Some(problem) => Err(MappingError::new(field, problem)),
                None => Ok(Some(s.trim().to_owned())),
            },
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(MappingError::new(
                field,
                format!("expected text, got {}", kind(other)),
            )),
        }
    }

    pub fn opt_number(&self, field: &str) -> Result<Option<f64>, MappingError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_f64()
                .filter(|v| v.is_finite())
                .map(Some)
                .ok_or_else(|| MappingError::new(field, "not a finite number")),
            Some(Value::String(s)) => s
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .map(Some)
                .ok_or_else(|| MappingError::new(field, format!("`{s}` is not a number"))),
            Some(other) => Err(MappingError::new(
                field,
                format!("expected a number, got {}", kind(other)),
            )),
        }
    }

    /// A point from two coordinate fields; both or neither must be present.
    pub fn opt_point(
        &self,
        lon_field: &str,
        lat_field: &str,
    ) -> Result<Option<GeoPoint>, MappingError> {
        match (self.opt_number(lon_field)?, self.opt_number(lat_field)?) {
            (None, None) => Ok(None),
            (Some(lon), Some(lat)) => {
                if !(-180.0..=180.0).contains(&lon) {
                    return Err(MappingError::new(
                        lon_field,
                        format!("longitude {lon} out of range"),
                    ));
                }
                if !(-90.0..=90.0).contains(&lat) {
                    return Err(MappingError::new(
                        lat_field,
                        format!("latitude {lat} out of range"),
                    ));
                }
                Ok(Some(GeoPoint { lon, lat }))
            }
            (Some(_), None) => Err(MappingError::new(
                lat_field,
                format!("missing while `{lon_field}` is given"),
            )),
            (None, Some(_)) => Err(MappingError::new(
                lon_field,
                format!("missing while `{lat_field}` is given"),
            )),
        }
    }

    /// A local (UTC+8) time in the given chrono format, e.g. `%Y-%m-%d %H:%M:%S`.
    pub fn local_time(&self, field: &str, format: &str) -> Result<DateTime<Utc>, MappingError> {
        let text = self.text(field)?;
        let naive = NaiveDateTime::parse_from_str(&text, format).map_err(|e| {
            MappingError::new(field, format!("`{text}` is not a time like {format}: {e}"))
        })?;
        let t = china_time()
            .from_local_datetime(&naive)
            .single()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| {
                MappingError::new(field, format!("`{text}` is not a valid local time"))
            })?;
        self.in_window(field, t)
    }

    /// The time if it lies in the accepted window (by default ten years back to one day
    /// ahead of the hub's clock).
    fn in_window(&self, field: &str, t: DateTime<Utc>) -> Result<DateTime<Utc>, MappingError> {
        match self.limits.time_problem(t, self.now) {
            Some(problem) => Err(MappingError::new(field, problem)),
            None => Ok(t),
        }
    }

    /// An RFC 3339 time with its offset, e.g. `2026-11-21T10:23:00+08:00`.
    pub fn rfc3339_time(&self, field: &str) -> Result<DateTime<Utc>, MappingError> {
        let text = self.text(field)?;
        let t = DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                MappingError::new(field, format!("`{text}` is not an RFC 3339 time: {e}"))
            })?;
        self.in_window(field, t)
    }

    /// A time as databases and feeds write it: RFC 3339 with an offset, or an ISO local
    /// time without one (`2026-11-21T10:23:00.123456` or with a space), read as UTC+8.
    pub fn flexible_time(&self, field: &str) -> Result<DateTime<Utc>, MappingError> {
        self.opt_flexible_time(field)?
            .ok_or_else(|| MappingError::new(field, "missing"))
    }

    pub fn opt_flexible_time(&self, field: &str) -> Result<Option<DateTime<Utc>>, MappingError> {
        let Some(text) = self.opt_text(field)? else {
            return Ok(None);
        };
        if let Ok(t) = DateTime::parse_from_rfc3339(&text) {
            return self.in_window(field, t.with_timezone(&Utc)).map(Some);
        }
        let naive = NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f")
            .or_else(|_| NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f"))
            .map_err(|_| {
                MappingError::new(
                    field,
                    format!("`{text}` is not a time (RFC 3339, or local `YYYY-MM-DD HH:MM:SS`)"),
                )
            })?;
        let t = china_time()
            .from_local_datetime(&naive)
            .single()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| {
                MappingError::new(field, format!("`{text}` is not a valid local time"))
            })?;
        self.in_window(field, t).map(Some)
    }

    pub fn opt_bool(&self, field: &str) -> Result<Option<bool>, MappingError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(MappingError::new(
                field,
                format!("expected true or false, got {}", kind(other)),
            )),
        }
    }

    /// Copy the listed scalar fields into event attributes (department-specific extras).
    pub fn attributes(&self, fields: &[&str]) -> std::collections::BTreeMap<String, String> {
        fields
            .iter()
            .filter_map(|f| match self.map.get(*f) {
                Some(Value::String(s)) if !s.is_empty() => Some(((*f).to_owned(), s.clone())),
                Some(Value::Number(n)) => Some(((*f).to_owned(), n.to_string())),
                Some(Value::Bool(b)) => Some(((*f).to_owned(), b.to_string())),
                _ => None,
            })
            .collect()
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A location needs at least one usable part; a record with none cannot be routed.
pub fn require_some_location(
    location: &hub_schemas::event::Location,
    fields: &str,
) -> Result<(), MappingError> {
    if location.point.is_none() && location.address.is_none() && location.grid_code.is_none() {
        return Err(MappingError::new(
            fields,
            "no location: none of these fields is given",
        ));
    }
    Ok(())
}
