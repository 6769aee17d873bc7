//! The mapping between the hub's record types and Avro values, written out field by field.
//!
//! Explicit `Value`s (rather than serde) keep the Avro shape visible next to the `.avsc` files:
//! optional fields are unions `["null", T]` (branch 0 = null, branch 1 = the value), times are
//! `timestamp-millis`, the department is the `Department` enum.
//!
//! Times are carried to the millisecond: sub-millisecond precision is dropped on encoding.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use apache_avro::types::{Value, ValueKind};
use apache_avro::Schema;
use chrono::{DateTime, Utc};

use crate::error::DecodeError;
use crate::event::{
    CivicEvent, Department, GeoPoint, Location, PersonalData, RawPayloadRef, Reporter,
};
use crate::task::{TaskDispatched, TaskStatusChanged, UnitRef};

/// The `.avsc` text of `city.hub.v1.CivicEvent`.
pub const CIVIC_EVENT_AVSC: &str = include_str!("../civic_event.avsc");
/// The `.avsc` text of `city.hub.v1.TaskDispatched`.
pub const TASK_DISPATCHED_AVSC: &str = include_str!("../task_dispatched.avsc");
/// The `.avsc` text of `city.hub.v1.TaskStatusChanged`.
pub const TASK_STATUS_CHANGED_AVSC: &str = include_str!("../task_status_changed.avsc");

// The embedded schemas are part of the binary; a parse failure is a build defect that the
// crate's own tests catch, so panicking here cannot be triggered by input.
static CIVIC_EVENT_SCHEMA: LazyLock<Schema> =
    LazyLock::new(|| parse_embedded("civic_event.avsc", CIVIC_EVENT_AVSC));
static TASK_DISPATCHED_SCHEMA: LazyLock<Schema> =
    LazyLock::new(|| parse_embedded("task_dispatched.avsc", TASK_DISPATCHED_AVSC));
static TASK_STATUS_CHANGED_SCHEMA: LazyLock<Schema> =
    LazyLock::new(|| parse_embedded("task_status_changed.avsc", TASK_STATUS_CHANGED_AVSC));

fn parse_embedded(file: &str, text: &str) -> Schema {
    Schema::parse_str(text).unwrap_or_else(|e| panic!("embedded schema {file} is invalid: {e}"))
}

/// A record the hub writes to and reads from Kafka as Avro.
pub trait AvroRecord: Sized {
    /// Full Avro name, e.g. `city.hub.v1.CivicEvent`.
    const SCHEMA_NAME: &'static str;

    /// The schema this version of the hub writes, and reads into (the reader schema).
    fn schema() -> &'static Schema;

    /// The record as an Avro value of [`Self::schema`].
    fn to_avro(&self) -> Value;

    /// Builds the record from a value of [`Self::schema`] (after schema resolution).
    /// Errors name the field that did not fit, never its content (it may be personal data).
    fn from_avro(value: Value) -> Result<Self, DecodeError>;
}

impl AvroRecord for CivicEvent {
    const SCHEMA_NAME: &'static str = "city.hub.v1.CivicEvent";

    fn schema() -> &'static Schema {
        &CIVIC_EVENT_SCHEMA
    }

    fn to_avro(&self) -> Value {
        Value::Record(vec![
            ("event_id".into(), string(&self.event_id)),
            ("source_system".into(), string(&self.source_system)),
            ("source_id".into(), string(&self.source_id)),
            ("department".into(), department(self.department)),
            ("category_code".into(), string(&self.category_code)),
            (
                "category_name".into(),
                optional(self.category_name.as_deref(), string),
            ),
            ("occurred_at".into(), timestamp(self.occurred_at)),
            ("received_at".into(), timestamp(self.received_at)),
            ("location".into(), location(&self.location)),
            ("description".into(), string(&self.description)),
            ("attributes".into(), string_map(&self.attributes)),
            (
                "reporter".into(),
                optional(self.reporter.as_ref(), reporter),
            ),
            (
                "raw_ref".into(),
                optional(self.raw_ref.as_ref(), raw_payload_ref),
            ),
        ])
    }

    fn from_avro(value: Value) -> Result<Self, DecodeError> {
        let read = |value| -> Result<Self, FieldError> {
            let mut r = Fields::of(value)?;
            Ok(CivicEvent {
                event_id: r.take("event_id", to_string)?,
                source_system: r.take("source_system", to_string)?,
                source_id: r.take("source_id", to_string)?,
                department: r.take("department", to_department)?,
                category_code: r.take("category_code", to_string)?,
                category_name: r.take("category_name", |v| to_optional(v, to_string))?,
                occurred_at: r.take("occurred_at", to_timestamp)?,
                received_at: r.take("received_at", to_timestamp)?,
                location: r.take("location", to_location)?,
                description: r.take("description", to_string)?,
                attributes: r.take("attributes", to_string_map)?,
                reporter: r.take("reporter", |v| to_optional(v, to_reporter))?,
                raw_ref: r.take("raw_ref", |v| to_optional(v, to_raw_payload_ref))?,
            })
        };
        read(value).map_err(|e| e.in_record(Self::SCHEMA_NAME))
    }
}

impl AvroRecord for TaskDispatched {
    const SCHEMA_NAME: &'static str = "city.hub.v1.TaskDispatched";

    fn schema() -> &'static Schema {
        &TASK_DISPATCHED_SCHEMA
    }

    fn to_avro(&self) -> Value {
        Value::Record(vec![
            ("task_id".into(), string(&self.task_id)),
            ("event_id".into(), string(&self.event_id)),
            ("source_system".into(), string(&self.source_system)),
            ("source_id".into(), string(&self.source_id)),
            ("department".into(), department(self.department)),
            ("category_code".into(), string(&self.category_code)),
            (
                "district_code".into(),
                optional(self.district_code.as_deref(), string),
            ),
            (
                "street_code".into(),
                optional(self.street_code.as_deref(), string),
            ),
            (
                "community_code".into(),
                optional(self.community_code.as_deref(), string),
            ),
            (
                "grid_code".into(),
                optional(self.grid_code.as_deref(), string),
            ),
            (
                "lead_unit".into(),
                optional(self.lead_unit.as_ref(), unit_ref),
            ),
            (
                "co_handlers".into(),
                Value::Array(self.co_handlers.iter().map(unit_ref).collect()),
            ),
            ("due_at".into(), optional(self.due_at, timestamp)),
            ("dispatched_at".into(), timestamp(self.dispatched_at)),
            ("rules_version".into(), string(&self.rules_version)),
        ])
    }

    fn from_avro(value: Value) -> Result<Self, DecodeError> {
        let read = |value| -> Result<Self, FieldError> {
            let mut r = Fields::of(value)?;
            Ok(TaskDispatched {
                task_id: r.take("task_id", to_string)?,
                event_id: r.take("event_id", to_string)?,
                source_system: r.take("source_system", to_string)?,
                source_id: r.take("source_id", to_string)?,
                department: r.take("department", to_department)?,
                category_code: r.take("category_code", to_string)?,
                district_code: r.take("district_code", |v| to_optional(v, to_string))?,
                street_code: r.take("street_code", |v| to_optional(v, to_string))?,
                community_code: r.take("community_code", |v| to_optional(v, to_string))?,
                grid_code: r.take("grid_code", |v| to_optional(v, to_string))?,
                lead_unit: r.take("lead_unit", |v| to_optional(v, to_unit_ref))?,
                co_handlers: r.take("co_handlers", |v| to_array(v, to_unit_ref))?,
                due_at: r.take("due_at", |v| to_optional(v, to_timestamp))?,
                dispatched_at: r.take("dispatched_at", to_timestamp)?,
                rules_version: r.take("rules_version", to_string)?,
            })
        };
        read(value).map_err(|e| e.in_record(Self::SCHEMA_NAME))
    }
}

impl AvroRecord for TaskStatusChanged {
    const SCHEMA_NAME: &'static str = "city.hub.v1.TaskStatusChanged";

    fn schema() -> &'static Schema {
        &TASK_STATUS_CHANGED_SCHEMA
    }

    fn to_avro(&self) -> Value {
        Value::Record(vec![
            ("task_id".into(), string(&self.task_id)),
            ("seq".into(), Value::Long(self.seq)),
            ("source_system".into(), string(&self.source_system)),
            ("source_id".into(), string(&self.source_id)),
            (
                "from_status".into(),
                optional(self.from_status.as_deref(), string),
            ),
            ("to_status".into(), string(&self.to_status)),
            ("actor".into(), string(&self.actor)),
            ("note".into(), optional(self.note.as_deref(), string)),
            ("changed_at".into(), timestamp(self.changed_at)),
        ])
    }

    fn from_avro(value: Value) -> Result<Self, DecodeError> {
        let read = |value| -> Result<Self, FieldError> {
            let mut r = Fields::of(value)?;
            Ok(TaskStatusChanged {
                task_id: r.take("task_id", to_string)?,
                seq: r.take("seq", to_long)?,
                source_system: r.take("source_system", to_string)?,
                source_id: r.take("source_id", to_string)?,
                from_status: r.take("from_status", |v| to_optional(v, to_string))?,
                to_status: r.take("to_status", to_string)?,
                actor: r.take("actor", to_string)?,
                note: r.take("note", |v| to_optional(v, to_string))?,
                changed_at: r.take("changed_at", to_timestamp)?,
            })
        };
        read(value).map_err(|e| e.in_record(Self::SCHEMA_NAME))
    }
}

// ---- record type -> Avro value ----

fn string(s: &str) -> Value {
    Value::String(s.to_owned())
}

/// An optional field: branch 0 of `["null", T]` when absent, branch 1 when present.
fn optional<T>(value: Option<T>, convert: impl FnOnce(T) -> Value) -> Value {
    match value {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(v) => Value::Union(1, Box::new(convert(v))),
    }
}

fn timestamp(t: DateTime<Utc>) -> Value {
    Value::TimestampMillis(t.timestamp_millis())
}

fn department(d: Department) -> Value {
    let index = Department::ALL
        .iter()
        .position(|&x| x == d)
        .expect("Department::ALL lists every department");
    // The schema's symbols are in the order of `Department::ALL` (checked by the tests).
    Value::Enum(index as u32, d.avro_symbol().to_owned())
}

fn string_map(map: &BTreeMap<String, String>) -> Value {
    Value::Map(
        map.iter()
            .map(|(k, v)| (k.clone(), string(v)))
            .collect::<HashMap<_, _>>(),
    )
}

fn personal(data: &PersonalData) -> Value {
    string(data.expose())
}

fn location(l: &Location) -> Value {
    Value::Record(vec![
        ("point".into(), optional(l.point.as_ref(), geo_point)),
        ("address".into(), optional(l.address.as_deref(), string)),
        ("grid_code".into(), optional(l.grid_code.as_deref(), string)),
    ])
}

fn geo_point(p: &GeoPoint) -> Value {
    Value::Record(vec![
        ("lon".into(), Value::Double(p.lon)),
        ("lat".into(), Value::Double(p.lat)),
    ])
}

fn reporter(r: &Reporter) -> Value {
    Value::Record(vec![
        ("name".into(), optional(r.name.as_ref(), personal)),
        ("phone".into(), optional(r.phone.as_ref(), personal)),
        ("id_number".into(), optional(r.id_number.as_ref(), personal)),
    ])
}

fn raw_payload_ref(r: &RawPayloadRef) -> Value {
    Value::Record(vec![
        ("uri".into(), string(&r.uri)),
        ("sha256".into(), string(&r.sha256)),
    ])
}

fn unit_ref(u: &UnitRef) -> Value {
    Value::Record(vec![
        ("unit_id".into(), string(&u.unit_id)),
        ("role".into(), string(&u.role)),
        ("name".into(), string(&u.name)),
    ])
}

// ---- Avro value -> record type ----

/// A value that did not fit, with the path of the field it was found in (built up on the way
/// out, so the happy path allocates no paths).
struct FieldError {
    /// Innermost first: field names, and item positions within arrays.
    path: Vec<String>,
    problem: String,
}

impl FieldError {
    fn new(problem: impl Into<String>) -> Self {
        FieldError {
            path: Vec::new(),
            problem: problem.into(),
        }
    }

    /// The kind of value found, never the value itself: it may be personal data.
    fn expected(what: &str, found: &Value) -> Self {
        Self::new(format!(
            "expected {what}, found {:?}",
            ValueKind::from(found)
        ))
    }

    fn in_record(mut self, record: &'static str) -> DecodeError {
        self.path.reverse();
        DecodeError::Field {
            record,
            field: self.path.join("."),
            problem: self.problem,
        }
    }
}

/// The fields of a record value, taken out one by one by name.
struct Fields(Vec<(String, Value)>);

impl Fields {
    fn of(value: Value) -> Result<Self, FieldError> {
        match value {
            Value::Record(fields) => Ok(Fields(fields)),
            other => Err(FieldError::expected("a record", &other)),
        }
    }

    fn take<T>(
        &mut self,
        name: &'static str,
        convert: impl FnOnce(Value) -> Result<T, FieldError>,
    ) -> Result<T, FieldError> {
        let at = |mut e: FieldError| {
            e.path.push(name.to_owned());
            e
        };
        let index = self
            .0
            .iter()
            .position(|(n, _)| n == name)
            .ok_or_else(|| at(FieldError::new("field is missing")))?;
        let (_, value) = self.0.swap_remove(index);
        convert(value).map_err(at)
    }
}

fn to_string(value: Value) -> Result<String, FieldError> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(FieldError::expected("a string", &other)),
    }
}

fn to_long(value: Value) -> Result<i64, FieldError> {
    match value {
        Value::Long(n) => Ok(n),
        other => Err(FieldError::expected("a long", &other)),
    }
}

fn to_double(value: Value) -> Result<f64, FieldError> {
    match value {
        Value::Double(x) => Ok(x),
        other => Err(FieldError::expected("a double", &other)),
    }
}

fn to_timestamp(value: Value) -> Result<DateTime<Utc>, FieldError> {
    match value {
        Value::TimestampMillis(ms) => DateTime::from_timestamp_millis(ms).ok_or_else(|| {
            FieldError::new(format!(
                "timestamp-millis {ms} is outside the representable range"
            ))
        }),
        other => Err(FieldError::expected("a timestamp-millis", &other)),
    }
}

fn to_department(value: Value) -> Result<Department, FieldError> {
    match value {
        Value::Enum(_, symbol) => Department::from_avro_symbol(&symbol)
            .ok_or_else(|| FieldError::new(format!("unknown Department symbol `{symbol}`"))),
        other => Err(FieldError::expected("a Department enum", &other)),
    }
}

/// Reads a `["null", T]` union. A bare value (not wrapped in a union) is accepted too.
fn to_optional<T>(
    value: Value,
    convert: impl FnOnce(Value) -> Result<T, FieldError>,
) -> Result<Option<T>, FieldError> {
    let inner = match value {
        Value::Union(_, inner) => *inner,
        other => other,
    };
    match inner {
        Value::Null => Ok(None),
        v => convert(v).map(Some),
    }
}

fn to_array<T>(
    value: Value,
    convert: impl Fn(Value) -> Result<T, FieldError>,
) -> Result<Vec<T>, FieldError> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                convert(item).map_err(|mut e| {
                    e.path.push(i.to_string());
                    e
                })
            })
            .collect(),
        other => Err(FieldError::expected("an array", &other)),
    }
}

fn to_string_map(value: Value) -> Result<BTreeMap<String, String>, FieldError> {
    match value {
        Value::Map(map) => map
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                // The key is a department's attribute name, not personal data.
                other => Err(FieldError::new(format!(
                    "map entry `{k}`: expected a string, found {:?}",
                    ValueKind::from(&other)
                ))),
            })
            .collect(),
        other => Err(FieldError::expected("a map", &other)),
    }
}

fn to_personal(value: Value) -> Result<PersonalData, FieldError> {
    to_string(value).map(PersonalData::new)
}

fn to_location(value: Value) -> Result<Location, FieldError> {
    let mut r = Fields::of(value)?;
    Ok(Location {
        point: r.take("point", |v| to_optional(v, to_geo_point))?,
        address: r.take("address", |v| to_optional(v, to_string))?,
        grid_code: r.take("grid_code", |v| to_optional(v, to_string))?,
    })
}

fn to_geo_point(value: Value) -> Result<GeoPoint, FieldError> {
    let mut r = Fields::of(value)?;
    Ok(GeoPoint {
        lon: r.take("lon", to_double)?,
        lat: r.take("lat", to_double)?,
    })
}

fn to_reporter(value: Value) -> Result<Reporter, FieldError> {
    let mut r = Fields::of(value)?;
    Ok(Reporter {
        name: r.take("name", |v| to_optional(v, to_personal))?,
        phone: r.take("phone", |v| to_optional(v, to_personal))?,
        id_number: r.take("id_number", |v| to_optional(v, to_personal))?,
    })
}

fn to_raw_payload_ref(value: Value) -> Result<RawPayloadRef, FieldError> {
    let mut r = Fields::of(value)?;
    Ok(RawPayloadRef {
        uri: r.take("uri", to_string)?,
        sha256: r.take("sha256", to_string)?,
    })
}

fn to_unit_ref(value: Value) -> Result<UnitRef, FieldError> {
    let mut r = Fields::of(value)?;
    Ok(UnitRef {
        unit_id: r.take("unit_id", to_string)?,
        role: r.take("role", to_string)?,
        name: r.take("name", to_string)?,
    })
}
