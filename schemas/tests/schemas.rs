//! Behaviour of hub-schemas as its users see it: records survive encoding, framing and the
//! registries; bad input is refused with errors that say what was wrong; another Avro
//! implementation (Python fastavro) reads what the hub writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use hub_schemas::apache_avro::types::Value;
use hub_schemas::apache_avro::{self, Schema};
use hub_schemas::event::{
    CivicEvent, Department, GeoPoint, Location, PersonalData, RawPayloadRef, Reporter,
};
use hub_schemas::task::{TaskDispatched, TaskStatusChanged, UnitRef};
use hub_schemas::{
    decode_body, encode_with_id, frame, unframe, value_subject, AvroRecord, Codec, DecodeError,
    EncodeError, HttpRegistry, LocalRegistry, Registry, RegistryError, WireError,
};
use proptest::prelude::*;
use serde_json::json;

// ---------------------------------------------------------------- sample records

fn at(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap()
}

/// A 12345 complaint with every optional field present, in Chinese.
fn full_event() -> CivicEvent {
    let source_system = "residents.12345.longmatan";
    let source_id = "GD20240315-000731";
    CivicEvent {
        event_id: CivicEvent::derive_id(source_system, source_id),
        source_system: source_system.into(),
        source_id: source_id.into(),
        department: Department::Residents,
        category_code: "0101".into(),
        category_name: Some("暴露垃圾".into()),
        occurred_at: at(1_710_480_600_123),
        received_at: at(1_710_480_663_456),
        location: Location {
            point: Some(GeoPoint {
                lon: 105.443_348,
                lat: 28.882_591,
            }),
            address: Some("四川省泸州市龙马潭区红星街道红星社区3组".into()),
            grid_code: Some("510504001001003".into()),
        },
        description: "小区门口垃圾堆放三天无人清运，气味很大。".into(),
        attributes: BTreeMap::from([
            ("channel".to_string(), "热线".to_string()),
            ("urgency".to_string(), "general".to_string()),
            ("空".to_string(), String::new()),
        ]),
        reporter: Some(Reporter {
            name: Some(PersonalData::new("张三")),
            phone: Some(PersonalData::new("13800138000")),
            id_number: Some(PersonalData::new("510504199001011234")),
        }),
        raw_ref: Some(RawPayloadRef {
            uri: "https://12345.example.gov.cn/orders/GD20240315-000731".into(),
            sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        }),
    }
}

/// A bin-fill sensor reading: every optional field absent.
fn minimal_event() -> CivicEvent {
    CivicEvent {
        event_id: CivicEvent::derive_id("sanitation.bins", "bin-88"),
        source_system: "sanitation.bins".into(),
        source_id: "bin-88".into(),
        department: Department::Sanitation,
        category_code: "BIN_FULL".into(),
        category_name: None,
        occurred_at: at(-86_400_000),
        received_at: at(0),
        location: Location::default(),
        description: String::new(),
        attributes: BTreeMap::new(),
        reporter: None,
        raw_ref: None,
    }
}

fn unit(unit_id: &str, role: &str, name: &str) -> UnitRef {
    UnitRef {
        unit_id: unit_id.into(),
        role: role.into(),
        name: name.into(),
    }
}

fn full_task() -> TaskDispatched {
    TaskDispatched {
        task_id: "T-2024-000001".into(),
        event_id: CivicEvent::derive_id("urban_management.longmatan", "CG-77"),
        source_system: "urban_management.longmatan".into(),
        source_id: "CG-77".into(),
        department: Department::UrbanManagement,
        category_code: "010201".into(),
        district_code: Some("510504".into()),
        street_code: Some("510504001".into()),
        community_code: Some("510504001001".into()),
        grid_code: Some("510504001001003".into()),
        lead_unit: Some(unit(
            "510504001001.workstation",
            "workstation",
            "红星社区工作站",
        )),
        co_handlers: vec![
            unit(
                "510504001001.urban_mgmt",
                "urban_management",
                "红星街道城管中队",
            ),
            unit("510504001001.property", "property_company", "红星物业"),
        ],
        due_at: Some(at(1_710_495_000_000)),
        dispatched_at: at(1_710_480_700_000),
        rules_version: "2024-03-01.3".into(),
    }
}

/// A case no community owns yet: it waits in the street's triage queue.
fn triage_task() -> TaskDispatched {
    TaskDispatched {
        task_id: "T-2024-000002".into(),
        event_id: CivicEvent::derive_id("police.longmatan", "JQ-1"),
        source_system: "police.longmatan".into(),
        source_id: "JQ-1".into(),
        department: Department::Police,
        category_code: "rental_registration".into(),
        district_code: None,
        street_code: None,
        community_code: None,
        grid_code: None,
        lead_unit: None,
        co_handlers: Vec::new(),
        due_at: None,
        dispatched_at: at(1_710_480_700_000),
        rules_version: "2024-03-01.3".into(),
    }
}

fn full_status_change() -> TaskStatusChanged {
    TaskStatusChanged {
        task_id: "T-2024-000001".into(),
        seq: 3,
        source_system: "urban_management.longmatan".into(),
        source_id: "CG-77".into(),
        from_status: Some("dispatched".into()),
        to_status: "returned".into(),
        actor: "510504001001.property".into(),
        note: Some("不属于物业管理范围，退回".into()),
        changed_at: at(1_710_481_000_000),
    }
}

fn first_status_change() -> TaskStatusChanged {
    TaskStatusChanged {
        task_id: "T-2024-000002".into(),
        seq: 1,
        source_system: "police.longmatan".into(),
        source_id: "JQ-1".into(),
        from_status: None,
        to_status: "triage".into(),
        actor: "hub".into(),
        note: None,
        changed_at: at(1_710_480_700_000),
    }
}

fn round_trip<T: AvroRecord + PartialEq + std::fmt::Debug>(record: &T) {
    let message = encode_with_id(42, record).unwrap();
    let (id, body) = unframe(&message).unwrap();
    assert_eq!(id, 42);
    let decoded: T = decode_body(T::schema(), body).unwrap();
    assert_eq!(&decoded, record);
}

fn embedded_schema(file: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

// ---------------------------------------------------------------- schemas and round trips

#[test]
fn embedded_schemas_carry_the_record_names() {
    assert_eq!(
        CivicEvent::schema().name().unwrap().to_string(),
        CivicEvent::SCHEMA_NAME
    );
    assert_eq!(
        TaskDispatched::schema().name().unwrap().to_string(),
        TaskDispatched::SCHEMA_NAME
    );
    assert_eq!(
        TaskStatusChanged::schema().name().unwrap().to_string(),
        TaskStatusChanged::SCHEMA_NAME
    );
}

#[test]
fn department_enum_symbols_are_in_the_order_of_department_all() {
    let expected: Vec<&str> = Department::ALL.iter().map(|d| d.avro_symbol()).collect();
    for file in ["civic_event.avsc", "task_dispatched.avsc"] {
        let schema = embedded_schema(file);
        let department = schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "department")
            .unwrap();
        let symbols: Vec<&str> = department["type"]["symbols"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert_eq!(symbols, expected, "{file}");
    }
}

#[test]
fn civic_events_round_trip_with_and_without_optional_fields() {
    round_trip(&full_event());
    round_trip(&minimal_event());
}

#[test]
fn dispatched_tasks_round_trip_with_and_without_optional_fields() {
    round_trip(&full_task());
    round_trip(&triage_task());
}

#[test]
fn status_changes_round_trip_with_and_without_optional_fields() {
    round_trip(&full_status_change());
    round_trip(&first_status_change());
}

#[test]
fn every_department_round_trips() {
    for department in Department::ALL {
        round_trip(&CivicEvent {
            department,
            ..minimal_event()
        });
    }
}

#[test]
fn times_are_kept_to_the_millisecond() {
    let mut event = minimal_event();
    event.occurred_at = DateTime::from_timestamp(1_710_480_600, 123_456_789).unwrap();
    let message = encode_with_id(1, &event).unwrap();
    let decoded: CivicEvent = decode_body(CivicEvent::schema(), &message[5..]).unwrap();
    assert_eq!(decoded.occurred_at, at(1_710_480_600_123));
}

#[test]
fn debug_output_never_shows_personal_data() {
    let event = full_event();
    let debug = format!("{event:?}");
    for secret in ["张三", "13800138000", "510504199001011234"] {
        assert!(!debug.contains(secret), "Debug shows `{secret}`: {debug}");
    }
    assert!(
        debug.contains("1*********0"),
        "masked phone missing: {debug}"
    );
}

// ---------------------------------------------------------------- decoding errors

/// `event` as an Avro value with the field at `path` replaced by `replacement`.
fn with_field(value: Value, path: &[&str], replacement: Value) -> Value {
    let Value::Record(mut fields) = value else {
        panic!("not a record")
    };
    let (_, slot) = fields.iter_mut().find(|(n, _)| n == path[0]).unwrap();
    let old = std::mem::replace(slot, Value::Null);
    *slot = match (path.len(), old) {
        (1, _) => replacement,
        (_, Value::Union(i, inner)) => {
            Value::Union(i, Box::new(with_field(*inner, &path[1..], replacement)))
        }
        (_, inner) => with_field(inner, &path[1..], replacement),
    };
    Value::Record(fields)
}

#[test]
fn a_field_of_the_wrong_type_is_named_by_its_path_without_its_value() {
    let value = with_field(
        full_event().to_avro(),
        &["location", "point", "lon"],
        Value::String("一百零五".into()),
    );
    let err = CivicEvent::from_avro(value).unwrap_err();
    assert_eq!(
        err.to_string(),
        "city.hub.v1.CivicEvent field `location.point.lon`: expected a double, found String"
    );

    let value = with_field(
        full_event().to_avro(),
        &["reporter", "phone"],
        Value::Union(1, Box::new(Value::Long(13_800_138_000))),
    );
    let message = CivicEvent::from_avro(value).unwrap_err().to_string();
    assert!(message.contains("`reporter.phone`"), "{message}");
    assert!(
        !message.contains("13800138000"),
        "error shows personal data: {message}"
    );
}

#[test]
fn a_bad_array_item_is_named_by_its_position() {
    let Value::Record(mut fields) = full_task().to_avro() else {
        panic!("not a record")
    };
    let (_, handlers) = fields.iter_mut().find(|(n, _)| n == "co_handlers").unwrap();
    let Value::Array(items) = handlers else {
        panic!("not an array")
    };
    items[1] = with_field(items[1].clone(), &["role"], Value::Int(7));
    let err = TaskDispatched::from_avro(Value::Record(fields)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "city.hub.v1.TaskDispatched field `co_handlers.1.role`: expected a string, found Int"
    );
}

#[test]
fn missing_fields_and_unknown_departments_are_named() {
    let Value::Record(mut fields) = first_status_change().to_avro() else {
        panic!("not a record")
    };
    fields.retain(|(n, _)| n != "actor");
    let err = TaskStatusChanged::from_avro(Value::Record(fields)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "city.hub.v1.TaskStatusChanged field `actor`: field is missing"
    );

    let value = with_field(
        minimal_event().to_avro(),
        &["department"],
        Value::Enum(9, "HOUSING".into()),
    );
    let err = CivicEvent::from_avro(value).unwrap_err();
    assert_eq!(
        err.to_string(),
        "city.hub.v1.CivicEvent field `department`: unknown Department symbol `HOUSING`"
    );
}

#[test]
fn a_body_longer_than_its_schema_says_is_refused() {
    let mut message = encode_with_id(1, &first_status_change()).unwrap();
    message.extend_from_slice(&[0, 0]);
    let err =
        decode_body::<TaskStatusChanged>(TaskStatusChanged::schema(), &message[5..]).unwrap_err();
    assert!(
        matches!(err, DecodeError::TrailingBytes { count: 2, .. }),
        "{err}"
    );
}

#[test]
fn a_truncated_body_is_refused() {
    let message = encode_with_id(1, &full_event()).unwrap();
    let err = decode_body::<CivicEvent>(CivicEvent::schema(), &message[5..message.len() - 3])
        .unwrap_err();
    assert!(matches!(err, DecodeError::Avro { .. }), "{err}");
    assert!(err.to_string().contains("city.hub.v1.CivicEvent"), "{err}");
}

// ---------------------------------------------------------------- wire format

#[test]
fn frames_are_magic_byte_big_endian_id_then_body() {
    let message = frame(0x0102_0304, b"avro");
    assert_eq!(message, [0, 1, 2, 3, 4, b'a', b'v', b'r', b'o']);
    assert_eq!(unframe(&message), Ok((0x0102_0304, &b"avro"[..])));
    assert_eq!(unframe(&[0, 0, 0, 0, 9]), Ok((9, &[][..])));
}

#[test]
fn malformed_frames_are_refused_with_the_reason() {
    assert_eq!(unframe(&[]), Err(WireError::Empty));

    // A JSON message on an Avro topic.
    let err = unframe(br#"{"event_id": 1}"#).unwrap_err();
    assert_eq!(err, WireError::WrongMagicByte { found: b'{' });
    assert!(err.to_string().contains("0x7b"), "{err}");

    let err = unframe(&[0, 0, 1]).unwrap_err();
    assert_eq!(err, WireError::TooShort { len: 3 });
    assert!(err.to_string().contains("3 bytes"), "{err}");
}

// ---------------------------------------------------------------- property: any civic event

/// A hundred years of 365.25 days.
const HUNDRED_YEARS_MS: i64 = 36_525 * 86_400_000;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\u{4e00}-\u{9fa5}，。、！？0-9a-zA-Z ]{0,24}",
    ]
}

fn time() -> impl Strategy<Value = DateTime<Utc>> {
    (-HUNDRED_YEARS_MS..=HUNDRED_YEARS_MS).prop_map(at)
}

fn personal() -> impl Strategy<Value = Option<PersonalData>> {
    proptest::option::of(text().prop_map(PersonalData::new))
}

prop_compose! {
    fn location()(
        point in proptest::option::of((-180.0..180.0f64, -90.0..90.0f64)),
        address in proptest::option::of(text()),
        grid_code in proptest::option::of("[0-9]{15,20}"),
    ) -> Location {
        Location { point: point.map(|(lon, lat)| GeoPoint { lon, lat }), address, grid_code }
    }
}

prop_compose! {
    fn civic_event()(
        (source_system, source_id, category_code) in (text(), text(), text()),
        department in proptest::sample::select(Department::ALL.to_vec()),
        category_name in proptest::option::of(text()),
        (occurred_at, received_at) in (time(), time()),
        location in location(),
        description in text(),
        attributes in proptest::collection::btree_map(text(), text(), 0..6),
        reporter in proptest::option::of((personal(), personal(), personal())),
        raw_ref in proptest::option::of((text(), "[0-9a-f]{64}")),
    ) -> CivicEvent {
        CivicEvent {
            event_id: CivicEvent::derive_id(&source_system, &source_id),
            source_system,
            source_id,
            department,
            category_code,
            category_name,
            occurred_at,
            received_at,
            location,
            description,
            attributes,
            reporter: reporter.map(|(name, phone, id_number)| Reporter { name, phone, id_number }),
            raw_ref: raw_ref.map(|(uri, sha256)| RawPayloadRef { uri, sha256 }),
        }
    }
}

proptest! {
    #[test]
    fn any_civic_event_round_trips(event in civic_event(), schema_id in any::<u32>()) {
        let message = encode_with_id(schema_id, &event).unwrap();
        let (id, body) = unframe(&message).unwrap();
        prop_assert_eq!(id, schema_id);
        let decoded: CivicEvent = decode_body(CivicEvent::schema(), body).unwrap();
        prop_assert_eq!(decoded, event);
    }
}

// ---------------------------------------------------------------- local registry

fn schema_of(file: &str) -> Schema {
    Schema::parse_str(&embedded_schema(file).to_string()).unwrap()
}

#[tokio::test]
async fn local_registry_ids_are_distinct_per_schema_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry").join("schemas.json");
    let events = value_subject("civic-events");
    let tasks = value_subject("tasks");

    let registry = Registry::Local(LocalRegistry::open(&path).unwrap());
    assert!(path.exists(), "the file is created on open");
    let event_id = registry
        .register(&events, CivicEvent::schema())
        .await
        .unwrap();
    let task_id = registry
        .register(&tasks, TaskDispatched::schema())
        .await
        .unwrap();
    let change_id = registry
        .register(&tasks, TaskStatusChanged::schema())
        .await
        .unwrap();
    assert_eq!((event_id, task_id, change_id), (1, 2, 3));
    assert_eq!(
        registry
            .register(&events, CivicEvent::schema())
            .await
            .unwrap(),
        event_id
    );
    // Like Confluent's registry: one id per schema, whatever the subject.
    assert_eq!(
        registry
            .register("audit-value", CivicEvent::schema())
            .await
            .unwrap(),
        event_id
    );
    drop(registry);

    let reopened = Registry::Local(LocalRegistry::open(&path).unwrap());
    assert_eq!(
        reopened
            .register(&tasks, TaskDispatched::schema())
            .await
            .unwrap(),
        task_id
    );
    assert_eq!(
        reopened
            .register(&events, CivicEvent::schema())
            .await
            .unwrap(),
        event_id
    );
    assert_eq!(
        *reopened.schema_by_id(change_id).await.unwrap(),
        *TaskStatusChanged::schema()
    );
    assert_eq!(
        *reopened.schema_by_id(event_id).await.unwrap(),
        *CivicEvent::schema()
    );

    // A schema written differently but meaning the same thing is not a new version.
    let reformatted = schema_of("task_dispatched.avsc");
    assert_eq!(
        reopened.register(&tasks, &reformatted).await.unwrap(),
        task_id
    );

    let mut leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    leftovers.sort();
    assert_eq!(
        leftovers,
        ["schemas.json", "schemas.json.lock"],
        "no temporary file left"
    );
}

/// Two hub processes on one machine (a connector process and a router process) share the
/// file: ids one registers are found by the other, and they never hand out the same id for
/// different schemas.
#[tokio::test]
async fn local_registry_file_is_shared_between_processes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ids.json");
    let connector = Registry::Local(LocalRegistry::open(&path).unwrap());
    let router = Registry::Local(LocalRegistry::open(&path).unwrap());
    let event_id = connector
        .register("feed-value", CivicEvent::schema())
        .await
        .unwrap();
    assert_eq!(
        *router.schema_by_id(event_id).await.unwrap(),
        *CivicEvent::schema()
    );
    let task_id = router
        .register("tasks-value", TaskDispatched::schema())
        .await
        .unwrap();
    assert_ne!(task_id, event_id);
    let change_id = connector
        .register("status-value", TaskStatusChanged::schema())
        .await
        .unwrap();
    assert!(change_id != event_id && change_id != task_id);
    assert_eq!(
        *connector.schema_by_id(task_id).await.unwrap(),
        *TaskDispatched::schema()
    );
}

#[tokio::test]
async fn local_registry_reports_unknown_ids() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::Local(LocalRegistry::open(dir.path().join("r.json")).unwrap());
    let err = registry.schema_by_id(7).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::SchemaNotFound { id: 7 }),
        "{err}"
    );
}

#[test]
fn concurrent_registrations_of_one_schema_get_one_id() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(LocalRegistry::open(dir.path().join("r.json")).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let registry = Arc::clone(&registry);
            std::thread::spawn(move || {
                let schema = if i % 2 == 0 {
                    CivicEvent::schema()
                } else {
                    TaskDispatched::schema()
                };
                (
                    i % 2,
                    registry.register(&format!("subject-{i}"), schema).unwrap(),
                )
            })
        })
        .collect();
    let mut ids: Vec<(usize, u32)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_ne!(ids[0].1, ids[1].1);

    let reopened = LocalRegistry::open(registry.path()).unwrap();
    assert_eq!(
        reopened
            .register("subject-0", CivicEvent::schema())
            .unwrap(),
        ids[0].1
    );
    assert_eq!(
        reopened
            .register("subject-1", TaskDispatched::schema())
            .unwrap(),
        ids[1].1
    );
}

#[test]
fn a_corrupt_registry_file_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("schemas.json");
    std::fs::write(
        &path,
        "{\"schemas\": [{\"id\": 1, \"schema\": \"not a schema\"}], \"subjects\": {}}",
    )
    .unwrap();
    let message = LocalRegistry::open(&path).unwrap_err().to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains("schema 1 is not a valid Avro schema"),
        "{message}"
    );

    std::fs::write(&path, "{\"schemas\": [], \"subjects\": {\"x-value\": [4]}}").unwrap();
    let message = LocalRegistry::open(&path).unwrap_err().to_string();
    assert!(
        message.contains("subject `x-value` refers to schema 4"),
        "{message}"
    );

    std::fs::write(&path, "").unwrap();
    assert!(matches!(
        LocalRegistry::open(&path),
        Err(RegistryError::CorruptFile { .. })
    ));
}

// ---------------------------------------------------------------- codec

fn local_codec(dir: &Path) -> Codec {
    Codec::new(
        LocalRegistry::open(dir.join("schemas.json"))
            .unwrap()
            .into(),
    )
}

#[tokio::test]
async fn the_codec_frames_with_the_registered_id_and_decodes_every_record_type() {
    let dir = tempfile::tempdir().unwrap();
    let codec = local_codec(dir.path());

    let event_message = codec
        .encode(&value_subject("civic-events"), &full_event())
        .await
        .unwrap();
    let task_message = codec
        .encode(&value_subject("tasks"), &full_task())
        .await
        .unwrap();
    let change_message = codec
        .encode(&value_subject("task-changes"), &full_status_change())
        .await
        .unwrap();
    assert_eq!(unframe(&event_message).unwrap().0, 1);
    assert_eq!(unframe(&task_message).unwrap().0, 2);
    assert_eq!(unframe(&change_message).unwrap().0, 3);

    // A second process (a fresh codec on the same registry file) reads them.
    let reader = local_codec(dir.path());
    assert_eq!(
        reader.decode::<CivicEvent>(&event_message).await.unwrap(),
        full_event()
    );
    assert_eq!(
        reader
            .decode::<TaskDispatched>(&task_message)
            .await
            .unwrap(),
        full_task()
    );
    assert_eq!(
        reader
            .decode::<TaskStatusChanged>(&change_message)
            .await
            .unwrap(),
        full_status_change()
    );
}

#[tokio::test]
async fn the_codec_names_the_schema_id_it_cannot_find_or_read() {
    let dir = tempfile::tempdir().unwrap();
    let codec = local_codec(dir.path());

    let unknown = encode_with_id(99, &minimal_event()).unwrap();
    let err = codec.decode::<CivicEvent>(&unknown).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "fetching writer schema 99: schema id 99 is not registered"
    );

    // A status change on the civic-events topic.
    let change = codec
        .encode("civic-events-value", &first_status_change())
        .await
        .unwrap();
    let err = codec.decode::<CivicEvent>(&change).await.unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::IncompatibleWriterSchema {
                schema_id: 1,
                record: "city.hub.v1.CivicEvent",
                ..
            }
        ),
        "{err}"
    );

    let err = codec.decode::<CivicEvent>(b"plain text").await.unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::Wire(WireError::WrongMagicByte { found: b'p' })
        ),
        "{err}"
    );
}

#[tokio::test]
async fn events_written_before_a_field_was_added_read_with_its_default() {
    // The schema as it was before `raw_ref` existed.
    let mut old = embedded_schema("civic_event.avsc");
    old["fields"]
        .as_array_mut()
        .unwrap()
        .retain(|f| f["name"] != "raw_ref");
    let old = Schema::parse_str(&old.to_string()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let codec = local_codec(dir.path());
    let Registry::Local(registry) = codec.registry() else {
        unreachable!("a local codec")
    };
    let old_id = registry.register("civic-events-value", &old).unwrap();

    let event = full_event();
    let Value::Record(mut fields) = event.to_avro() else {
        panic!("not a record")
    };
    fields.retain(|(n, _)| n != "raw_ref");
    let body = apache_avro::to_avro_datum(&old, Value::Record(fields)).unwrap();

    let decoded: CivicEvent = codec.decode(&frame(old_id, &body)).await.unwrap();
    assert_eq!(
        decoded,
        CivicEvent {
            raw_ref: None,
            ..event
        }
    );
}

// ---------------------------------------------------------------- HTTP registry against a fake

const CONTENT_TYPE_V1: &str = "application/vnd.schemaregistry.v1+json";
/// `Basic base64("hub:s3cret")`.
const HUB_CREDENTIALS: &str = "Basic aHViOnMzY3JldA==";

/// A schema registry following Confluent's REST API, with counters for cache checks.
#[derive(Default)]
struct FakeRegistry {
    required_authorization: Option<&'static str>,
    schemas: Vec<String>,
    registrations: usize,
    lookups: usize,
}

type Shared = Arc<Mutex<FakeRegistry>>;

fn registry_error(status: StatusCode, error_code: i64, message: &str) -> Response {
    (
        status,
        Json(json!({"error_code": error_code, "message": message})),
    )
        .into_response()
}

fn unauthorized(fake: &FakeRegistry, headers: &HeaderMap) -> Option<Response> {
    let required = fake.required_authorization?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    (given != Some(required)).then(|| registry_error(StatusCode::UNAUTHORIZED, 401, "Unauthorized"))
}

async fn fake_register(
    State(fake): State<Shared>,
    UrlPath(subject): UrlPath<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut fake = fake.lock().unwrap();
    if let Some(refusal) = unauthorized(&fake, &headers) {
        return refusal;
    }
    fake.registrations += 1;
    if headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        != Some(CONTENT_TYPE_V1)
    {
        return registry_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            415,
            "HTTP 415 Unsupported Media Type",
        );
    }
    if subject == "frozen-value" {
        return registry_error(
            StatusCode::CONFLICT,
            409,
            "Schema being registered is incompatible with an earlier schema for subject \"frozen-value\"",
        );
    }
    let Some(schema) = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|b| b["schema"].as_str().map(str::to_owned))
    else {
        return registry_error(StatusCode::UNPROCESSABLE_ENTITY, 42201, "Invalid schema");
    };
    if Schema::parse_str(&schema).is_err() {
        return registry_error(StatusCode::UNPROCESSABLE_ENTITY, 42201, "Invalid schema");
    }
    let id = match fake.schemas.iter().position(|s| *s == schema) {
        Some(i) => i + 1,
        None => {
            fake.schemas.push(schema);
            fake.schemas.len()
        }
    };
    Json(json!({"id": id})).into_response()
}

async fn fake_schema_by_id(
    State(fake): State<Shared>,
    UrlPath(id): UrlPath<usize>,
    headers: HeaderMap,
) -> Response {
    let mut fake = fake.lock().unwrap();
    if let Some(refusal) = unauthorized(&fake, &headers) {
        return refusal;
    }
    fake.lookups += 1;
    match id.checked_sub(1).and_then(|i| fake.schemas.get(i)) {
        Some(schema) => Json(json!({"schema": schema})).into_response(),
        None => registry_error(StatusCode::NOT_FOUND, 40403, "Schema not found"),
    }
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

async fn start_fake_registry(required_authorization: Option<&'static str>) -> (String, Shared) {
    let fake: Shared = Arc::new(Mutex::new(FakeRegistry {
        required_authorization,
        ..FakeRegistry::default()
    }));
    let app = Router::new()
        .route("/subjects/{subject}/versions", post(fake_register))
        .route("/schemas/ids/{id}", get(fake_schema_by_id))
        .with_state(Arc::clone(&fake));
    (serve(app).await, fake)
}

#[tokio::test]
async fn http_registry_registers_and_fetches_schemas_and_caches_both() {
    let (base, fake) = start_fake_registry(None).await;
    let registry = Registry::Http(HttpRegistry::new(&base).unwrap());

    let id = registry
        .register("civic-events-value", CivicEvent::schema())
        .await
        .unwrap();
    assert_eq!(
        registry
            .register("civic-events-value", CivicEvent::schema())
            .await
            .unwrap(),
        id
    );
    let task_id = registry
        .register("tasks-value", TaskDispatched::schema())
        .await
        .unwrap();
    assert_ne!(id, task_id);
    assert_eq!(
        fake.lock().unwrap().registrations,
        2,
        "the second registration is cached"
    );

    // What the registry stored is the hub's schema, logical types and defaults included.
    let fetched = registry.schema_by_id(id).await.unwrap();
    assert_eq!(*fetched, *CivicEvent::schema());
    registry.schema_by_id(id).await.unwrap();
    assert_eq!(
        fake.lock().unwrap().lookups,
        1,
        "the second lookup is cached"
    );
}

#[tokio::test]
async fn http_registry_errors_carry_the_registry_code_and_message() {
    let (base, _fake) = start_fake_registry(None).await;
    let registry = HttpRegistry::new(&format!("{base}/")).unwrap();

    let err = registry.schema_by_id(404).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "schema registry at {base}/schemas/ids/404 refused the request (HTTP 404, error code 40403): Schema not found"
        )
    );

    let err = registry
        .register("frozen-value", CivicEvent::schema())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RegistryError::Rejected { status: 409, error_code: 409, message, .. } if message.contains("incompatible")),
        "{err}"
    );
}

#[tokio::test]
async fn http_registry_sends_basic_auth_and_keeps_passwords_out_of_errors() {
    let (base, fake) = start_fake_registry(Some(HUB_CREDENTIALS)).await;

    let anonymous = HttpRegistry::new(&base).unwrap();
    let err = anonymous
        .register("tasks-value", TaskDispatched::schema())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Rejected { status: 401, .. }),
        "{err}"
    );

    let configured = HttpRegistry::new(&base)
        .unwrap()
        .with_basic_auth("hub", "s3cret");
    let id = configured
        .register("tasks-value", TaskDispatched::schema())
        .await
        .unwrap();

    let in_url = base.replace("http://", "http://hub:s3cret@");
    let from_url = HttpRegistry::new(&in_url).unwrap();
    assert_eq!(
        *from_url.schema_by_id(id).await.unwrap(),
        *TaskDispatched::schema()
    );
    let err = from_url.schema_by_id(id + 1).await.unwrap_err().to_string();
    assert!(err.contains("40403") && !err.contains("s3cret"), "{err}");
    assert_eq!(fake.lock().unwrap().registrations, 1);
}

#[tokio::test]
async fn http_registry_reports_responses_that_are_not_the_registry_api() {
    let proxy = Router::new().fallback(|| async {
        (
            StatusCode::BAD_GATEWAY,
            "<html><body>502 Bad Gateway</body></html>",
        )
    });
    let base = serve(proxy).await;
    let err = HttpRegistry::new(&base)
        .unwrap()
        .register("tasks-value", TaskDispatched::schema())
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, RegistryError::UnexpectedResponse { status: 502, .. }),
        "{message}"
    );
    assert!(message.contains("502 Bad Gateway"), "{message}");
}

#[tokio::test]
async fn http_registry_reports_an_unreachable_registry_with_the_cause() {
    // Bind and release a port so nothing listens on it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = HttpRegistry::new(&base)
        .unwrap()
        .schema_by_id(1)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "schema registry request to {base}/schemas/ids/1 failed: "
        )),
        "{err}"
    );
    assert!(
        err.to_lowercase().contains("connect"),
        "the cause is missing: {err}"
    );
}

#[test]
fn http_registry_refuses_urls_it_cannot_use() {
    for url in ["schema-registry:8081", "ftp://registry", "not a url"] {
        let err = HttpRegistry::new(url).unwrap_err();
        assert!(
            matches!(err, RegistryError::InvalidUrl { .. }),
            "{url}: {err}"
        );
    }
}

#[tokio::test]
async fn records_round_trip_through_the_codec_over_http() {
    let (base, fake) = start_fake_registry(None).await;
    let writer = Codec::new(HttpRegistry::new(&base).unwrap().into());
    let subject = value_subject("civic-events");
    let first = writer.encode(&subject, &full_event()).await.unwrap();
    let second = writer.encode(&subject, &minimal_event()).await.unwrap();

    let reader = Codec::new(HttpRegistry::new(&base).unwrap().into());
    assert_eq!(
        reader.decode::<CivicEvent>(&first).await.unwrap(),
        full_event()
    );
    assert_eq!(
        reader.decode::<CivicEvent>(&second).await.unwrap(),
        minimal_event()
    );
    let fake = fake.lock().unwrap();
    assert_eq!((fake.registrations, fake.lookups), (1, 1));
}

#[tokio::test]
async fn encoding_names_the_subject_the_registry_refused() {
    let (base, _fake) = start_fake_registry(None).await;
    let codec = Codec::new(HttpRegistry::new(&base).unwrap().into());
    let err = codec
        .encode("frozen-value", &full_event())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EncodeError::Registry { subject, .. } if subject == "frozen-value"),
        "{err}"
    );
    assert!(
        err.to_string().starts_with(
            "registering the schema of city.hub.v1.CivicEvent under subject `frozen-value`: "
        ),
        "{err}"
    );
}

// ---------------------------------------------------------------- independent implementation

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn optional<T>(value: &Option<T>, f: impl Fn(&T) -> serde_json::Value) -> serde_json::Value {
    value.as_ref().map_or(serde_json::Value::Null, f)
}

/// What fastavro should read, written from the record's fields (not from `to_avro`).
fn expected_event(e: &CivicEvent) -> serde_json::Value {
    json!({
        "event_id": e.event_id,
        "source_system": e.source_system,
        "source_id": e.source_id,
        "department": e.department.avro_symbol(),
        "category_code": e.category_code,
        "category_name": e.category_name,
        "occurred_at": millis(e.occurred_at),
        "received_at": millis(e.received_at),
        "location": {
            "point": optional(&e.location.point, |p| json!({"lon": p.lon, "lat": p.lat})),
            "address": e.location.address,
            "grid_code": e.location.grid_code,
        },
        "description": e.description,
        "attributes": e.attributes,
        "reporter": optional(&e.reporter, |r| json!({
            "name": r.name.as_ref().map(PersonalData::expose),
            "phone": r.phone.as_ref().map(PersonalData::expose),
            "id_number": r.id_number.as_ref().map(PersonalData::expose),
        })),
        "raw_ref": optional(&e.raw_ref, |r| json!({"uri": r.uri, "sha256": r.sha256})),
    })
}

fn expected_unit(u: &UnitRef) -> serde_json::Value {
    json!({"unit_id": u.unit_id, "role": u.role, "name": u.name})
}

fn expected_task(t: &TaskDispatched) -> serde_json::Value {
    json!({
        "task_id": t.task_id,
        "event_id": t.event_id,
        "source_system": t.source_system,
        "source_id": t.source_id,
        "department": t.department.avro_symbol(),
        "category_code": t.category_code,
        "district_code": t.district_code,
        "street_code": t.street_code,
        "community_code": t.community_code,
        "grid_code": t.grid_code,
        "lead_unit": optional(&t.lead_unit, expected_unit),
        "co_handlers": t.co_handlers.iter().map(expected_unit).collect::<Vec<_>>(),
        "due_at": t.due_at.map(millis),
        "dispatched_at": millis(t.dispatched_at),
        "rules_version": t.rules_version,
    })
}

fn expected_status_change(c: &TaskStatusChanged) -> serde_json::Value {
    json!({
        "task_id": c.task_id,
        "seq": c.seq,
        "source_system": c.source_system,
        "source_id": c.source_id,
        "from_status": c.from_status,
        "to_status": c.to_status,
        "actor": c.actor,
        "note": c.note,
        "changed_at": millis(c.changed_at),
    })
}

fn case<T: AvroRecord>(
    name: &str,
    schema_file: &str,
    schema_id: u32,
    record: &T,
    expected: serde_json::Value,
) -> serde_json::Value {
    let message = encode_with_id(schema_id, record).unwrap();
    let hex: String = message.iter().map(|b| format!("{b:02x}")).collect();
    json!({
        "name": name,
        "schema_file": Path::new(env!("CARGO_MANIFEST_DIR")).join(schema_file),
        "schema_id": schema_id,
        "message_hex": hex,
        "expected": expected,
    })
}

#[test]
fn fastavro_reads_what_the_hub_writes() {
    let cases = vec![
        case(
            "full civic event",
            "civic_event.avsc",
            7,
            &full_event(),
            expected_event(&full_event()),
        ),
        case(
            "minimal civic event",
            "civic_event.avsc",
            7,
            &minimal_event(),
            expected_event(&minimal_event()),
        ),
        case(
            "dispatched task",
            "task_dispatched.avsc",
            8,
            &full_task(),
            expected_task(&full_task()),
        ),
        case(
            "triage task",
            "task_dispatched.avsc",
            8,
            &triage_task(),
            expected_task(&triage_task()),
        ),
        case(
            "status change",
            "task_status_changed.avsc",
            0x0100_0009,
            &full_status_change(),
            expected_status_change(&full_status_change()),
        ),
        case(
            "first status change",
            "task_status_changed.avsc",
            0x0100_0009,
            &first_status_change(),
            expected_status_change(&first_status_change()),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let cases_file = dir.path().join("cases.json");
    std::fs::write(&cases_file, serde_json::to_vec_pretty(&cases).unwrap()).unwrap();

    let script: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fastavro_check.py");
    let output = match Command::new("python3").arg(&script).arg(&cases_file).output() {
        Ok(output) => output,
        Err(e) => panic!(
            "cannot run python3 ({e}): this test needs Python 3 with fastavro (`pip install fastavro`)"
        ),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} failed ({}):\n{stdout}{stderr}",
        script.display(),
        output.status
    );
    assert!(
        stdout.contains("6 of 6 cases decoded as expected"),
        "{stdout}"
    );
}
