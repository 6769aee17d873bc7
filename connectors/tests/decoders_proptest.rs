//! Property tests over the decoders a careless or hostile department (or client) reaches:
//! the record mappings of every [`RecordFormat`], the Open311 `POST requests` form body and
//! the `GET requests` query string.
//!
//! Whatever arrives: they never panic; a refusal always says what is wrong (a mapping names
//! the field and the problem; an Open311 refusal is a non-empty list of 4xx errors, each
//! with a description); and whatever they accept stays inside the hub's input bounds, the
//! same [`check_event`] the routing pipeline applies again (no control characters except
//! line breaks and tabs in free text, times from ten years back to one day ahead).
//!
//! Inputs: arbitrary bytes; arbitrary JSON trees (deep nesting, huge numbers, control
//! characters, NUL, invalid UTF-8 spliced in as raw bytes); and "almost valid" records,
//! a valid record per format with one field removed, retyped or replaced by something
//! nasty (far-future and far-past times, text at the length limits, NaN-like strings).

use std::collections::HashSet;

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use hub_connectors::mapping::{
    sha256_hex, Mapped, Mapper, MappingContext, MappingError, MappingRules, RecordFormat,
};
use hub_connectors::open311::{
    parse_post_request, parse_requests_query, to_event, Catalog, Datum, PostContext, DEFAULT_LIMIT,
    MAX_IDS, MAX_SPAN_DAYS,
};
use hub_connectors::{RawRecord, Secret};
use hub_schemas::limits::{check_event, InputLimits};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use serde_json::{json, Value};

/// Cases per property: enough to reach the corners, small enough for a quick debug run.
/// `PROPTEST_CASES` asks for more (a longer hunt).
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig::with_cases(cases)
}

/// The hub's clock in these tests (03:00 UTC is 11:00 in China).
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 3, 0, 0).unwrap()
}

fn mapping_ctx() -> MappingContext<'static> {
    MappingContext {
        source_system: "test.system",
        received_at: now(),
        limits: InputLimits::default(),
    }
}

// ------------------------------------------------------------------ nasty values

/// Text a careless or hostile system might put anywhere.
const SPECIAL_TEXT: &[&str] = &[
    "",
    " ",
    "\t",
    "\r\n",
    "NaN",
    "nan",
    "-NaN",
    "Infinity",
    "-Infinity",
    "inf",
    "-inf",
    "1e309",
    "-1e309",
    "1e-400",
    "0x10",
    "+0",
    "-0",
    "1_000",
    "٣",
    "１２３",
    "\u{0}",
    "a\u{0}b",
    "\u{1b}[31mred",
    "\u{7f}",
    "\u{85}",
    "\u{2028}",
    "\u{feff}",
    "\u{202e}",
    "\u{fffd}",
    "null",
    "true",
    "[]",
    "{}",
    "🙂",
    "ELDERLY_LIVING_ALONE",
    "ELDERLY_OTHER",
    "CLOSED",
    "closed",
    "ACTIVE",
    "510504001001002",
    "51050400100100２",
    "105.43",
    "28.9",
    "97",
    "-3",
    "2.5",
];

/// Times at and beyond the edges of what the parsers and chrono can represent.
const EXTREME_TIMES: &[&str] = &[
    "9999-12-31 23:59:59",
    "0001-01-01 00:00:00",
    "0000-01-01 00:00:00",
    "+262143-01-01T00:00:00Z",
    "-262143-01-01T00:00:00Z",
    "+262142-12-31T23:59:59Z",
    "-262144-01-01T00:00:00Z",
    "262143-12-31 23:59:59",
    "-262143-12-31 23:59:59",
    "99991231235959",
    "00010101000000",
    "00000000000000",
    "2026112110230",
    "202611211023000",
    "2026-11-21 23:59:60",
    "2026-11-21T23:59:60Z",
    "2026-11-21T10:59:60+08:00",
    "2026-02-29 10:00:00",
    "2026-02-30T10:00:00Z",
    "2026-11-21 24:00:00",
    "2026-11-21T10:23:00+24:00",
    "2026-11-21T10:23:00+23:59",
    "2026-11-21T10:23:00-23:59",
    "2026-11-22T03:00:00Z",
    "2026-11-22T03:00:01Z",
    "2026-11-22 11:00:00",
    "2026-11-22 11:00:01",
    "2016-11-23T03:00:00Z",
    "2016-11-23T02:59:59Z",
    "2016-11-23 11:00:00",
    "1970-01-01T00:00:00Z",
    "2026-11-21T10:23:00.999999999999+08:00",
    "2026-11-21T10:23:00.123456",
    "2026-11-21 10:23:00.123456",
    "20261121102300.5",
    "2026-11-21T10:23:00",
    " 2026-11-21 10:23:00 ",
    "２０２６-11-21 10:23:00",
    "2026-11-21t10:23:00z",
    "2026-11-21 10:23:00Z",
];

const TIME_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S",
    "%Y%m%d%H%M%S",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%dT%H:%M:%S%:z",
    "%+",
    "%Y-%m-%d",
];

/// Where text length limits sit (ids 200, lines 1000, Open311 description 4000, free text
/// 10 000 characters).
const LENGTH_EDGES: &[usize] = &[
    199, 200, 201, 499, 500, 501, 999, 1000, 1001, 3999, 4000, 4001, 9999, 10_000, 10_001,
];

/// Any instant chrono can hold.
fn any_time() -> impl Strategy<Value = DateTime<Utc>> {
    (DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp())
        .prop_map(|s| DateTime::from_timestamp(s, 0).unwrap())
}

/// Instants around the accepted window and its edges.
fn near_window_time() -> impl Strategy<Value = DateTime<Utc>> {
    let now = now();
    let back = now - Duration::days(3650);
    let ahead = now + Duration::days(1);
    prop_oneof![
        (-12 * 365 * 86_400i64..2 * 86_400).prop_map(move |s| now + Duration::seconds(s)),
        (-9 * 3600i64..9 * 3600).prop_map(move |s| back + Duration::seconds(s)),
        (-9 * 3600i64..9 * 3600).prop_map(move |s| ahead + Duration::seconds(s)),
    ]
}

fn time_text() -> BoxedStrategy<String> {
    // Offsets only for instants a day inside chrono's range, so the local time exists.
    let inner = (DateTime::<Utc>::MIN_UTC.timestamp() + 86_400)
        ..=(DateTime::<Utc>::MAX_UTC.timestamp() - 86_400);
    prop_oneof![
        3 => select(EXTREME_TIMES).prop_map(str::to_owned),
        2 => (any_time(), select(TIME_FORMATS)).prop_map(|(t, f)| t.format(f).to_string()),
        4 => (near_window_time(), select(TIME_FORMATS)).prop_map(|(t, f)| t.format(f).to_string()),
        2 => (inner, -86_399i32..=86_399).prop_map(|(s, off)| {
            let offset = FixedOffset::east_opt(off).unwrap();
            DateTime::from_timestamp(s, 0).unwrap().with_timezone(&offset).to_rfc3339()
        }),
        2 => (near_window_time(), -86_399i32..=86_399).prop_map(|(t, off)| {
            t.with_timezone(&FixedOffset::east_opt(off).unwrap()).to_rfc3339()
        }),
    ]
    .boxed()
}

/// Text of a given length, at the limits.
fn edge_length_text() -> impl Strategy<Value = String> {
    (
        select(LENGTH_EDGES),
        select(vec!["x", "很", "1", " ", "x\n"]),
    )
        .prop_map(|(n, unit)| {
            let s: String = unit.repeat(n);
            s.chars().take(n).collect()
        })
}

fn nasty_text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => any::<String>(),
        3 => "[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}\\u{2028}\\u{feff}\\u{fffd}a-z0-9 .:+-]{0,24}",
        3 => select(SPECIAL_TEXT).prop_map(str::to_owned),
        3 => time_text(),
        1 => edge_length_text(),
    ]
    .boxed()
}

fn json_f64(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

fn nasty_number() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(json_f64),
        select(vec![
            0.0,
            -0.0,
            90.0,
            -90.0,
            90.000_000_1,
            180.0,
            -180.0,
            180.000_000_1,
            100.0,
            100.000_000_1,
            -1e-300,
            3.5,
            1e15,
            1e16,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            f64::EPSILON,
        ])
        .prop_map(json_f64),
    ]
    .boxed()
}

/// Every field name the departmental layouts use, so random objects hit real fields.
const KNOWN_FIELDS: &[&str] = &[
    "jjdbh",
    "bjlbdm",
    "bjlbmc",
    "bjsj",
    "fadd",
    "jd",
    "wd",
    "jqms",
    "bjrxm",
    "bjrdh",
    "bjrsfzh",
    "sspcs",
    "fwbh",
    "ldrks",
    "caseNo",
    "eventTypeCode",
    "eventTypeName",
    "reportTime",
    "x",
    "y",
    "address",
    "gridCode",
    "description",
    "source",
    "reporter",
    "name",
    "phone",
    "orderId",
    "type",
    "typeName",
    "createdAt",
    "binId",
    "lng",
    "lat",
    "fillLevel",
    "remark",
    "episode_id",
    "bin_id",
    "opened_at",
    "fill_level",
    "lon",
    "topic",
    "reading",
    "case_id",
    "case_type",
    "case_type_name",
    "updated_at",
    "grid_code",
    "hours_without_contact",
    "person",
    "id_number",
    "note",
    "id",
    "case_no",
    "person_name",
    "lives_alone",
    "last_contact_at",
    "status",
];

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(KNOWN_FIELDS).prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

fn json_leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        nasty_number(),
        nasty_text().prop_map(Value::String),
    ]
    .boxed()
}

/// Nested JSON trees (serde_json's own recursion limit is exercised by `raw_token`).
fn json_value() -> BoxedStrategy<Value> {
    json_leaf()
        .prop_recursive(8, 96, 8, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..8).prop_map(Value::Array),
                btree_map(json_key(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed()
}

/// An object with mostly known field names: reaches further into each mapping.
fn json_object() -> impl Strategy<Value = Value> {
    btree_map(
        json_key(),
        prop_oneof![3 => json_leaf(), 1 => json_value()],
        0..16,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// Raw JSON text for one value that a `Value` cannot carry: numbers beyond f64, lone
/// surrogates, nesting past serde_json's limit, invalid UTF-8 inside a string.
fn raw_token() -> BoxedStrategy<Vec<u8>> {
    let fixed: Vec<&'static [u8]> = vec![
        b"1e400",
        b"-1e400",
        b"123456789012345678901234567890123456789",
        b"-123456789012345678901234567890123456789",
        b"0.0000000000000000000000001e-400",
        b"NaN",
        b"Infinity",
        b"-0",
        b"01",
        b"1.",
        b"\"\\u0000\"",
        b"\"\\ud800\"",
        b"\"\\udc00\\ud800\"",
        b"\"a\\u001bb\"",
        b"\"\\u202e\"",
        b"\"\\u0085\"",
        b"\"\xff\"",
        b"\"\xc3\x28\"",
        b"\"\xed\xa0\x80\"",
        b"\"\xf4\x90\x80\x80\"",
        b"\"\xc0\xaf\"",
        b"\"\x00\"",
        b"\"\x1f\"",
        b"\"20261121\xff102300\"",
    ];
    prop_oneof![
        3 => select(fixed).prop_map(<[u8]>::to_vec),
        1 => (1usize..400).prop_map(|n| [vec![b'['; n], vec![b']'; n]].concat()),
        1 => (1usize..400).prop_map(|n| {
            let mut t = b"{\"a\":".repeat(n);
            t.push(b'1');
            t.extend(std::iter::repeat_n(b'}', n));
            t
        }),
        1 => vec(any::<u8>(), 0..24).prop_map(|b| [b"\"".as_slice(), &b, b"\""].concat()),
        1 => vec(any::<u8>(), 0..24),
    ]
    .boxed()
}

// ------------------------------------------------------------------ records

/// One valid record per format, as the department sends it (see tests/mapping.rs).
fn valid_record(format: RecordFormat) -> Value {
    match format {
        RecordFormat::PoliceIncident => json!({
            "jjdbh": "J1", "bjlbdm": "0201", "bjlbmc": "盗窃", "bjsj": "20261121102300",
            "fadd": "红星路8号", "jd": "105.41", "wd": "28.91", "jqms": "电动车被盗\n车棚内",
            "sspcs": "红星派出所", "fwbh": "FW510504001001001", "ldrks": 3,
            "bjrxm": "王芳", "bjrdh": "13900001111", "bjrsfzh": "510504199001011234"
        }),
        RecordFormat::UrbanManagementCase => json!({
            "caseNo": "CG1", "eventTypeCode": "010102", "eventTypeName": "暴露垃圾",
            "reportTime": "2026-11-21 10:23:00", "x": 105.43, "y": 28.9, "address": "鱼塘路12号",
            "gridCode": "510504001001001", "description": "路边垃圾堆积", "source": "巡查",
            "reporter": {"name": "张三", "phone": "13800001234"}
        }),
        RecordFormat::SanitationWorkOrder => json!({
            "orderId": "HW-1", "type": "GARBAGE_OVERFLOW", "typeName": "垃圾满溢",
            "createdAt": "2026-11-21T10:23:00+08:00", "binId": "BIN-7", "lng": 105.4,
            "lat": 28.9, "fillLevel": 97, "remark": "满溢", "address": "鱼塘路12号"
        }),
        RecordFormat::SanitationBinEpisode => json!({
            "episode_id": "BIN-0042@20261121T022300Z", "bin_id": "BIN-0042",
            "opened_at": "2026-11-21T02:23:00Z", "fill_level": 97.0, "lon": 105.43, "lat": 28.9,
            "topic": "sanitation/bins/BIN-0042/reading", "reading": {"bin_id": "BIN-0042"}
        }),
        RecordFormat::CivilAffairsCase => json!({
            "case_id": "MZ-1", "case_type": "ELDERLY_NO_CONTACT", "case_type_name": "独居老人失联",
            "updated_at": "2026-11-21 08:00:00", "grid_code": "510504001001002",
            "address": "鱼塘路12号", "hours_without_contact": 52, "note": "多次电话未接",
            "person": {"name": "李四", "id_number": "510504194001011234", "phone": "13800001234"}
        }),
        RecordFormat::CivilAffairsRow => json!({
            "id": 17, "case_no": "MZ-510504-000017", "case_type": "ELDERLY_LIVING_ALONE",
            "case_type_name": "独居老人", "person_name": "李四", "id_number": "510504194001011234",
            "phone": "13800001234", "lives_alone": true,
            "last_contact_at": "2026-11-18T08:00:00+08:00", "grid_code": "510504001001002",
            "address": "鱼塘路12号", "status": "ACTIVE", "note": "子女在外地",
            "updated_at": "2026-11-21T10:23:00.123456+08:00"
        }),
    }
}

/// The paths of a record's fields: top-level keys and the keys of nested objects.
fn field_paths(record: &Value) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    if let Value::Object(map) = record {
        for (k, v) in map {
            paths.push(vec![k.clone()]);
            if let Value::Object(inner) = v {
                for k2 in inner.keys() {
                    paths.push(vec![k.clone(), k2.clone()]);
                }
            }
        }
    }
    paths
}

fn slot<'a>(record: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut current = record;
    for key in path {
        current = current.as_object_mut()?.get_mut(key)?;
    }
    Some(current)
}

/// Stands in for a raw token in the serialised record, then is replaced by its bytes.
const PLACEHOLDER: &str = "__raw_token_placeholder__";

/// One change to a valid record.
#[derive(Debug, Clone)]
enum Mutation {
    Remove(Index),
    Set(Index, Value),
    Raw(Index, Vec<u8>),
    Add(String, Value),
}

fn value_for_a_field() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => nasty_text().prop_map(Value::String),
        3 => time_text().prop_map(Value::String),
        2 => nasty_number(),
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => json_value(),
    ]
    .boxed()
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => any::<Index>().prop_map(Mutation::Remove),
        6 => (any::<Index>(), value_for_a_field()).prop_map(|(i, v)| Mutation::Set(i, v)),
        2 => (any::<Index>(), raw_token()).prop_map(|(i, t)| Mutation::Raw(i, t)),
        1 => (json_key(), value_for_a_field()).prop_map(|(k, v)| Mutation::Add(k, v)),
    ]
}

/// The bytes of `format`'s valid record with `m` applied.
fn mutated(format: RecordFormat, m: &Mutation) -> Vec<u8> {
    let mut record = valid_record(format);
    let paths = field_paths(&record);
    let mut raw = None;
    match m {
        Mutation::Remove(i) => {
            let path = &paths[i.index(paths.len())];
            let (last, parent) = path.split_last().unwrap();
            if let Some(Value::Object(map)) = slot(&mut record, parent) {
                map.remove(last);
            }
        }
        Mutation::Set(i, v) => {
            *slot(&mut record, &paths[i.index(paths.len())]).unwrap() = v.clone()
        }
        Mutation::Raw(i, token) => {
            *slot(&mut record, &paths[i.index(paths.len())]).unwrap() =
                Value::String(PLACEHOLDER.into());
            raw = Some(token);
        }
        Mutation::Add(k, v) => {
            record.as_object_mut().unwrap().insert(k.clone(), v.clone());
        }
    }
    let text = serde_json::to_vec(&record).unwrap();
    match raw {
        None => text,
        Some(token) => {
            let quoted = format!("\"{PLACEHOLDER}\"");
            let at = text
                .windows(quoted.len())
                .position(|w| w == quoted.as_bytes())
                .unwrap();
            [&text[..at], token.as_slice(), &text[at + quoted.len()..]].concat()
        }
    }
}

fn rules() -> impl Strategy<Value = MappingRules> {
    prop_oneof![
        3 => Just(48u32),
        1 => 1u32..=u32::MAX,
    ]
    .prop_map(|h| MappingRules {
        elderly_no_contact: Duration::hours(i64::from(h)),
    })
}

fn map_bytes(
    format: RecordFormat,
    rules: &MappingRules,
    bytes: &[u8],
) -> Result<Mapped, MappingError> {
    let raw = RawRecord {
        bytes: bytes.to_vec(),
        uri: "http://dept/api/page?cursor=1".into(),
    };
    Mapper::new(format)
        .with_rules(rules.clone())
        .map(mapping_ctx(), &raw)
}

/// The mapping's answer to `bytes` holds the properties.
fn check_mapping(
    format: RecordFormat,
    rules: &MappingRules,
    bytes: &[u8],
) -> Result<(), TestCaseError> {
    let ctx = mapping_ctx();
    let answer = map_bytes(format, rules, bytes);
    let shown = || {
        String::from_utf8_lossy(bytes)
            .chars()
            .take(600)
            .collect::<String>()
    };
    match &answer {
        Ok(Mapped::Event(e)) => {
            let checked = check_event(e, &InputLimits::default(), ctx.received_at);
            prop_assert!(
                checked.is_ok(),
                "{}: an accepted event breaks the input bounds: {:?}\nrecord: {}",
                format,
                checked,
                shown()
            );
            prop_assert_eq!(e.department, format.department());
            prop_assert_eq!(e.received_at, ctx.received_at);
            prop_assert_eq!(
                e.raw_ref.as_ref().map(|r| r.sha256.clone()),
                Some(sha256_hex(bytes))
            );
        }
        Ok(Mapped::Skip { reason }) => {
            prop_assert!(
                !reason.trim().is_empty(),
                "{format}: a skip without a reason"
            );
        }
        Err(e) => {
            prop_assert!(
                !e.field.trim().is_empty() && !e.problem.trim().is_empty(),
                "{}: a refusal without its field or problem: {:?}\nrecord: {}",
                format,
                e,
                shown()
            );
        }
    }
    Ok(())
}

#[test]
fn every_valid_example_record_maps_to_an_event() {
    for format in RecordFormat::ALL {
        let bytes = serde_json::to_vec(&valid_record(format)).unwrap();
        check_mapping(format, &MappingRules::default(), &bytes).unwrap();
        let answer = map_bytes(format, &MappingRules::default(), &bytes);
        assert!(
            matches!(answer, Ok(Mapped::Event(_))),
            "{format}: {answer:?}"
        );
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mapping_arbitrary_bytes_never_panics_and_refusals_name_a_field(
        bytes in prop_oneof![
            vec(any::<u8>(), 0..512),
            // JSON text with one byte broken.
            (json_object(), any::<Index>(), any::<u8>()).prop_map(|(v, i, b)| {
                let mut t = serde_json::to_vec(&v).unwrap();
                let at = i.index(t.len());
                t[at] = b;
                t
            }),
        ],
        rules in rules(),
    ) {
        for format in RecordFormat::ALL {
            check_mapping(format, &rules, &bytes)?;
        }
    }

    #[test]
    fn mapping_arbitrary_json_never_panics_and_accepts_only_bounded_events(
        value in prop_oneof![1 => json_value(), 3 => json_object()],
        rules in rules(),
    ) {
        let bytes = serde_json::to_vec(&value).unwrap();
        for format in RecordFormat::ALL {
            check_mapping(format, &rules, &bytes)?;
        }
    }

    #[test]
    fn mapping_almost_valid_records_never_panics_and_accepts_only_bounded_events(
        m in mutation(),
        rules in rules(),
    ) {
        for format in RecordFormat::ALL {
            check_mapping(format, &rules, &mutated(format, &m))?;
        }
    }
}

// ------------------------------------------------------------------ Open311 POST

/// The catalogue of tests/open311.rs, plus a service with every datatype.
const CATALOG: &str = r#"
[[services]]
service_code = "001"
service_name = "Cans left out 24x7"
description = "Garbage or recycling cans left out."
type = "realtime"
group = "sanitation"

[[services.attributes]]
code = "WHISHETN"
datatype = "singlevaluelist"
required = true
order = 1
description = "What is the ticket/tag/DL number?"
values = [{ key = "123", name = "Ford" }, { key = "124", name = "Chrysler" }]

[[services.attributes]]
code = "COLOURS"
datatype = "multivaluelist"
order = 2
description = "Colours of the cans"
values = [{ key = "green", name = "绿色" }, { key = "grey", name = "灰色" }]

[[services.attributes]]
code = "COUNT"
datatype = "number"
order = 3
description = "How many cans?"

[[services]]
service_code = "URB-ILLEGAL-BUILD"
service_name = "违章搭建"
description = "屋顶、楼道、绿地等处私搭乱建"
group = "市容环境"

[[services]]
service_code = "SVC-ALL"
service_name = "所有类型"
group = "test"

[[services.attributes]]
code = "NOTE"
datatype = "text"
order = 1
description = "Anything else?"

[[services.attributes]]
code = "LINE"
datatype = "string"
order = 2
description = "One line"

[[services.attributes]]
code = "WHEN"
datatype = "datetime"
order = 3
description = "When did it start?"

[[services.attributes]]
code = "INFO"
variable = false
datatype = "string"
order = 4
description = "Read this first"

[[services.attributes]]
code = "KIND"
datatype = "singlevaluelist"
order = 5
description = "Which kind?"
values = [{ key = "a", name = "A" }, { key = "b", name = "B" }]

[[services.attributes]]
code = "TAGS"
datatype = "multivaluelist"
order = 6
description = "Tags"
values = [{ key = "x", name = "X" }, { key = "y", name = "Y" }, { key = "z", name = "Z" }]

[[services.attributes]]
code = "SIZE"
datatype = "number"
order = 7
description = "How big?"
"#;

fn catalog() -> Catalog {
    #[derive(serde::Deserialize)]
    struct File {
        services: Vec<hub_connectors::open311::Service>,
    }
    let file: File = toml::from_str(CATALOG).unwrap();
    Catalog::new(file.services).unwrap()
}

fn api_keys() -> Vec<Secret> {
    vec![Secret::new("xyz"), Secret::new("app-2")]
}

fn post_ctx<'a>(catalog: &'a Catalog, keys: &'a [Secret]) -> PostContext<'a> {
    PostContext {
        catalog,
        api_keys: keys,
        jurisdiction_id: Some("longmatan.gov.cn"),
        limits: InputLimits::default(),
        now: now(),
    }
}

const ATTRIBUTE_CODES: &[&str] = &[
    "WHISHETN", "COLOURS", "COUNT", "NOTE", "LINE", "WHEN", "INFO", "KIND", "TAGS", "SIZE", "NOPE",
    "", "]", "[",
];
const LIST_KEYS: &[&str] = &["123", "124", "green", "grey", "a", "b", "x", "y", "z"];

fn coordinate_text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => (-90.0f64..=90.0).prop_map(|v| v.to_string()),
        2 => (-180.0f64..=180.0).prop_map(|v| v.to_string()),
        // Inside China, where the datum conversion shifts the point.
        2 => (18.0f64..54.0).prop_map(|v| v.to_string()),
        2 => (73.0f64..135.0).prop_map(|v| v.to_string()),
        2 => select(vec![
            "90", "-90", "180", "-180", "90.0000001", "-90.0000001", "180.0000001",
            "-180.0000001", "NaN", "nan", "inf", "-inf", "infinity", "Infinity", "1e309",
            "-1e309", "1e308", "0x1p3", " 28.9 ", "28,9", "+28.9", "-0", "1e-400", "", "٣",
        ])
        .prop_map(str::to_owned),
        1 => any::<f64>().prop_map(|v| v.to_string()),
        1 => nasty_text(),
    ]
    .boxed()
}

/// A value for a personal or free-text field: ordinary, at the length limits, or nasty.
fn field_text() -> BoxedStrategy<String> {
    prop_oneof![
        2 => select(vec![
            "john", "smith", "张", "三", "1234 5th street", "smit333@sfgov.edu",
            "http://farm3.static.flickr.com/2002/2212426634_5ed477a060.jpg", "111111111",
            "+86 (138) 0000-1234", "A large sinkhole\nis destroying the street", "545483",
            "tt222111",
        ])
        .prop_map(str::to_owned),
        2 => edge_length_text(),
        2 => nasty_text(),
    ]
    .boxed()
}

fn attribute_value() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(LIST_KEYS).prop_map(str::to_owned),
        2 => time_text(),
        1 => coordinate_text(),
        2 => field_text(),
    ]
    .boxed()
}

const OPTIONAL_KEYS: &[&str] = &[
    "jurisdiction_id",
    "address_string",
    "address_id",
    "email",
    "device_id",
    "account_id",
    "first_name",
    "last_name",
    "phone",
    "description",
    "media_url",
];

const ATTRIBUTE_FORMS: &[&str] = &[
    "attribute[{}]",
    "attribute[{}][]",
    "attribute[{}",
    "attribute{}",
    "attribute[{}][0]",
];

/// Any parameter name: the specification's, attribute forms, or garbage.
fn form_key() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(OPTIONAL_KEYS).prop_map(str::to_owned),
        2 => select(vec!["api_key", "service_code", "lat", "long"]).prop_map(str::to_owned),
        3 => (select(ATTRIBUTE_CODES), select(ATTRIBUTE_FORMS))
            .prop_map(|(code, form)| form.replace("{}", code)),
        1 => "attribute\\[[^\\]]{0,10}\\](\\[\\])?",
        1 => nasty_text(),
    ]
    .boxed()
}

/// Keys, codes and ids the endpoint knows (and some it does not).
const PLAIN_VALUES: &[&str] = &[
    "xyz",
    "app-2",
    "nope",
    "001",
    "SVC-ALL",
    "URB-ILLEGAL-BUILD",
    "999",
    "longmatan.gov.cn",
];

fn form_value() -> BoxedStrategy<String> {
    prop_oneof![
        2 => field_text(),
        1 => coordinate_text(),
        1 => attribute_value(),
        1 => select(PLAIN_VALUES).prop_map(str::to_owned),
    ]
    .boxed()
}

/// Bytes spliced into an encoded body: broken escapes, invalid UTF-8, separators.
fn body_fragment() -> BoxedStrategy<Vec<u8>> {
    let fixed: Vec<&'static [u8]> = vec![
        b"%",
        b"%z",
        b"%zz",
        b"%ff",
        b"%FF",
        b"%C3%28",
        b"%ED%A0%80",
        b"%F4%90%80%80",
        b"%C0%AF",
        b"%EF%BF%BD",
        b"%00",
        b"%0A",
        b"%1B",
        b"&&",
        b"=",
        b"==",
        b"+",
        b"&=&",
        b"\xff",
        b"\xef\xbf\xbd",
        b"\xc3",
        b"\x00",
        b"%E5%BE%88",
    ];
    prop_oneof![
        3 => select(fixed).prop_map(<[u8]>::to_vec),
        1 => vec(any::<u8>(), 1..12),
    ]
    .boxed()
}

/// `attribute[code]` (or `attribute[code][]` when the flag is set) with its values.
type AttributeInput = (&'static str, bool, Vec<String>);

#[derive(Debug, Clone)]
struct PostBody {
    service: &'static str,
    with_key: Option<&'static str>,
    lat_long: (Option<String>, Option<String>),
    optional: Vec<Option<String>>,
    attributes: Vec<AttributeInput>,
    extra: Vec<(String, String)>,
    repeat: Option<(String, String, usize)>,
    splice: Vec<(Index, Vec<u8>)>,
}

impl PostBody {
    fn encode(&self) -> Vec<u8> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(key) = self.with_key {
            pairs.push(("api_key".into(), key.into()));
        }
        pairs.push(("service_code".into(), self.service.into()));
        if let Some(lat) = &self.lat_long.0 {
            pairs.push(("lat".into(), lat.clone()));
        }
        if let Some(long) = &self.lat_long.1 {
            pairs.push(("long".into(), long.clone()));
        }
        for (key, value) in OPTIONAL_KEYS.iter().zip(&self.optional) {
            if let Some(v) = value {
                pairs.push(((*key).into(), v.clone()));
            }
        }
        for (code, multi, values) in &self.attributes {
            let key = if *multi {
                format!("attribute[{code}][]")
            } else {
                format!("attribute[{code}]")
            };
            pairs.extend(values.iter().map(|v| (key.clone(), v.clone())));
        }
        pairs.extend(self.extra.iter().cloned());
        if let Some((k, v, n)) = &self.repeat {
            pairs.extend(std::iter::repeat_n((k.clone(), v.clone()), *n));
        }
        let mut body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
            .into_bytes();
        for (at, bytes) in &self.splice {
            let at = at.index(body.len() + 1);
            body.splice(at..at, bytes.iter().copied());
        }
        body
    }
}

/// Text of up to `max` characters made of `units`, often right at a length limit.
fn sized_text(max: usize, units: Vec<&'static str>) -> BoxedStrategy<String> {
    let edges: Vec<usize> = [
        1, 2, 199, 200, 201, 499, 500, 501, 999, 1000, 3999, 4000, 9999, 10_000,
    ]
    .into_iter()
    .filter(|n| *n <= max)
    .collect();
    (prop_oneof![2 => select(edges), 1 => 1..=max], select(units))
        .prop_map(|(n, unit)| unit.repeat(n).chars().take(n).collect())
        .boxed()
}

/// A value the endpoint should accept for an optional parameter (see [`OPTIONAL_KEYS`]).
fn valid_optional(key: &str) -> BoxedStrategy<String> {
    match key {
        "jurisdiction_id" => Just("longmatan.gov.cn".to_owned()).boxed(),
        "email" => (0usize..990)
            .prop_map(|n| format!("{}smit333@sfgov.edu", "a".repeat(n)))
            .boxed(),
        "phone" => sized_text(1000, vec!["1", "138 0000-1234", "+86 (138)"]),
        "description" => sized_text(4000, vec!["x", "很", "第一行\n", "a\tb", "ab c"]),
        "media_url" => (0usize..980)
            .prop_map(|n| format!("https://media.example.cn/{}", "a".repeat(n)))
            .boxed(),
        _ => sized_text(1000, vec!["x", "很", "ab c", "鱼塘路12号"]),
    }
}

/// Values the endpoint should accept for an attribute of the catalogue.
fn valid_attribute(code: &'static str) -> BoxedStrategy<AttributeInput> {
    let one = |s: BoxedStrategy<String>| s.prop_map(move |v| (code, false, vec![v])).boxed();
    match code {
        "WHISHETN" => one(select(vec!["123", "124"]).prop_map(str::to_owned).boxed()),
        "KIND" => one(select(vec!["a", "b"]).prop_map(str::to_owned).boxed()),
        "COUNT" | "SIZE" => one(prop_oneof![
            any::<i32>().prop_map(|n| n.to_string()),
            (-1e300f64..1e300).prop_map(|v| v.to_string())
        ]
        .boxed()),
        "NOTE" => one(sized_text(10_000, vec!["x", "很", "第一行\n", "a\tb"])),
        "LINE" => one(sized_text(10_000, vec!["x", "很", "a\tb"])),
        "WHEN" => one(near_window_time()
            .prop_map(|t| {
                t.with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap())
                    .to_rfc3339()
            })
            .boxed()),
        "COLOURS" | "TAGS" => {
            let keys: Vec<&'static str> = if code == "COLOURS" {
                vec!["green", "grey"]
            } else {
                vec!["x", "y", "z"]
            };
            (
                vec(select(keys).prop_map(str::to_owned), 1..6),
                any::<bool>(),
            )
                .prop_map(move |(values, multi)| (code, multi || values.len() > 1, values))
                .boxed()
        }
        other => unreachable!("no valid values for {other}"),
    }
}

fn service_attributes(service: &str) -> Vec<&'static str> {
    match service {
        "001" => vec!["WHISHETN", "COLOURS", "COUNT"],
        "SVC-ALL" => vec!["NOTE", "LINE", "WHEN", "KIND", "TAGS", "SIZE"],
        _ => Vec::new(),
    }
}

type Coordinates = (Option<String>, Option<String>);

fn api_key_choice() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![
        8 => Just(Some("xyz")),
        1 => Just(Some("app-2")),
        1 => Just(None),
        1 => Just(Some("nope")),
    ]
}

/// Mostly a valid point (anywhere, or inside China where the datum shifts it); sometimes
/// none, one of the two, or nasty text.
fn lat_long_choice() -> impl Strategy<Value = Coordinates> {
    let pair = |lat: f64, long: f64| (Some(lat.to_string()), Some(long.to_string()));
    prop_oneof![
        4 => (-90.0f64..=90.0, -180.0f64..=180.0).prop_map(move |(a, b)| pair(a, b)),
        4 => (18.0f64..54.0, 73.0f64..135.0).prop_map(move |(a, b)| pair(a, b)),
        1 => Just((None, None)),
        2 => (
            prop::option::weighted(0.8, coordinate_text()),
            prop::option::weighted(0.8, coordinate_text()),
        ),
    ]
}

/// Attributes the service may not have, in either form, with any values.
fn wrong_attributes() -> impl Strategy<Value = Vec<AttributeInput>> {
    let one = (
        select(ATTRIBUTE_CODES),
        any::<bool>(),
        vec(attribute_value(), 1..4),
    );
    prop_oneof![3 => Just(Vec::new()), 1 => vec(one, 1..3)]
}

/// Posts built around valid ones: optional fields present with valid values, often right
/// at their length limits; then a few fields made nasty, wrong attributes, extra and
/// repeated parameters, and raw bytes spliced into the encoded body.
fn post_body() -> impl Strategy<Value = PostBody> {
    let services = vec![
        "001",
        "001",
        "SVC-ALL",
        "SVC-ALL",
        "URB-ILLEGAL-BUILD",
        "999",
    ];
    select(services).prop_flat_map(|service| {
        let optional: Vec<BoxedStrategy<Option<String>>> = OPTIONAL_KEYS
            .iter()
            .map(|k| prop::option::weighted(0.5, valid_optional(k)).boxed())
            .collect();
        let attributes: Vec<BoxedStrategy<Option<AttributeInput>>> = service_attributes(service)
            .into_iter()
            .map(|code| {
                let p = if code == "WHISHETN" { 0.95 } else { 0.5 };
                prop::option::weighted(p, valid_attribute(code)).boxed()
            })
            .collect();
        let nasty_fields = prop_oneof![
            3 => Just(Vec::new()),
            2 => vec((any::<Index>(), field_text()), 1..3),
        ];
        let extra = prop_oneof![
            3 => Just(Vec::new()),
            1 => vec((form_key(), form_value()), 1..4),
        ];
        let repeat = prop::option::weighted(0.05, (form_key(), form_value(), 0usize..120));
        let splice = prop_oneof![
            6 => Just(Vec::new()),
            1 => vec((any::<Index>(), body_fragment()), 1..3),
        ];
        let nasty_coordinate =
            || prop_oneof![6 => Just(None), 1 => coordinate_text().prop_map(Some)];
        (
            (api_key_choice(), lat_long_choice(), optional, nasty_fields),
            (attributes, wrong_attributes()),
            (extra, repeat, splice),
            (nasty_coordinate(), nasty_coordinate()),
        )
            .prop_map(move |(basics, attrs, more, over)| {
                let (with_key, lat_long, mut optional, nasty) = basics;
                for (i, v) in nasty {
                    optional[i.index(OPTIONAL_KEYS.len())] = Some(v);
                }
                let (valid, wrong) = attrs;
                let mut attributes: Vec<AttributeInput> = valid.into_iter().flatten().collect();
                attributes.extend(wrong);
                let (extra, repeat, splice) = more;
                PostBody {
                    service,
                    with_key,
                    lat_long: (over.0.or(lat_long.0), over.1.or(lat_long.1)),
                    optional,
                    attributes,
                    extra,
                    repeat,
                    splice,
                }
            })
    })
}

/// Whether every name and value of a form body, once percent-decoded, is UTF-8: what a
/// post must be to be accepted.
fn form_is_utf8(body: &[u8]) -> bool {
    fn decode(part: &[u8]) -> Vec<u8> {
        let hex = |b: u8| (b as char).to_digit(16);
        let mut out = Vec::with_capacity(part.len());
        let mut i = 0;
        while i < part.len() {
            match part[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < part.len()
                    && hex(part[i + 1]).is_some()
                    && hex(part[i + 2]).is_some() =>
                {
                    out.push((hex(part[i + 1]).unwrap() * 16 + hex(part[i + 2]).unwrap()) as u8);
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        out
    }
    body.split(|b| *b == b'&').all(|pair| {
        let (name, value) = match pair.iter().position(|b| *b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &[][..]),
        };
        std::str::from_utf8(&decode(name)).is_ok() && std::str::from_utf8(&decode(value)).is_ok()
    })
}

/// The answer to a posted body holds the properties.
fn check_post(catalog: &Catalog, keys: &[Secret], body: &[u8]) -> Result<bool, TestCaseError> {
    let ctx = post_ctx(catalog, keys);
    let shown = || {
        String::from_utf8_lossy(body)
            .chars()
            .take(600)
            .collect::<String>()
    };
    match parse_post_request(body, ctx) {
        Err(errors) => {
            prop_assert!(!errors.is_empty(), "a refusal without errors: {}", shown());
            for e in &errors {
                prop_assert!(
                    (400..500).contains(&e.code) && !e.description.trim().is_empty(),
                    "a refusal entry without a 4xx code or description: {:?}\nbody: {}",
                    e,
                    shown()
                );
            }
            Ok(false)
        }
        Ok(request) => {
            prop_assert!(
                form_is_utf8(body),
                "a post that is not UTF-8 was accepted: {}",
                shown()
            );
            let service = catalog.service(&request.service_code);
            prop_assert!(
                service.is_some(),
                "accepted with an unknown service: {request:?}"
            );
            if let Some((lat, long)) = request.location.lat_long {
                prop_assert!(
                    lat.is_finite() && long.is_finite() && lat.abs() <= 90.0 && long.abs() <= 180.0
                );
            }
            for datum in [Datum::Wgs84, Datum::Gcj02] {
                let event = to_event(
                    &request,
                    service.unwrap(),
                    "R20261121000001",
                    datum,
                    MappingContext {
                        source_system: "open311.longmatan",
                        received_at: ctx.now,
                        limits: ctx.limits,
                    },
                    body,
                );
                let checked = check_event(&event, &InputLimits::default(), ctx.now);
                prop_assert!(
                    checked.is_ok(),
                    "an accepted post makes an event that breaks the bounds ({:?}): {:?}\nbody: {}",
                    datum,
                    checked,
                    shown()
                );
            }
            Ok(true)
        }
    }
}

#[test]
fn the_example_posts_are_accepted() {
    let (c, keys) = (catalog(), api_keys());
    for body in [
        "api_key=xyz&jurisdiction_id=longmatan.gov.cn&service_code=001&lat=28.9012&long=105.4345&address_string=1234+5th+street&email=smit333%40sfgov.edu&first_name=john&last_name=smith&phone=111111111&description=A+large+sinkhole&attribute[WHISHETN]=123&attribute[COLOURS][]=green&attribute[COLOURS][]=grey",
        "api_key=app-2&service_code=SVC-ALL&address_id=545483&attribute[NOTE]=line+one%0Aline+two&attribute[LINE]=x&attribute[WHEN]=2026-11-21T08:00:00%2B08:00&attribute[KIND]=a&attribute[TAGS][]=x&attribute[TAGS][]=z&attribute[SIZE]=2.5",
        "api_key=xyz&service_code=URB-ILLEGAL-BUILD&lat=-33.9&long=151.2",
    ] {
        assert!(check_post(&c, &keys, body.as_bytes()).unwrap(), "{body}");
    }
}

/// Regression (found by `post_almost_valid_requests_become_only_bounded_events`): each name
/// part was held to 1000 characters, but the event carries them joined as one line of at
/// most 1000, so the routing pipeline dead-lettered a request the resident had been given
/// an id for.
#[test]
fn first_and_last_name_together_must_fit_one_line() {
    let (c, keys) = (catalog(), api_keys());
    let post = |first: &str, last: &str| {
        format!(
            "api_key=xyz&service_code=URB-ILLEGAL-BUILD&lat=28.9&long=105.4\
             &first_name={first}&last_name={last}"
        )
    };
    let body = post(&"x".repeat(1000), &"y".repeat(1000));
    let errors = parse_post_request(body.as_bytes(), post_ctx(&c, &keys)).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].code, 400);
    assert!(
        errors[0]
            .description
            .contains("first_name and last_name together are longer than 1000 characters"),
        "{errors:?}"
    );
    // Exactly one line's worth is accepted: "given family" with a space, Chinese without.
    for body in [
        post(&"x".repeat(500), &"y".repeat(499)),
        post(&"很".repeat(500), &"张".repeat(500)),
    ] {
        assert!(check_post(&c, &keys, body.as_bytes()).unwrap(), "{body}");
    }
    let body = post(&"很".repeat(501), &"张".repeat(500));
    assert!(!check_post(&c, &keys, body.as_bytes()).unwrap());
}

/// Regression (found by `post_almost_valid_requests_become_only_bounded_events`): invalid
/// UTF-8 was let through, silently replaced by U+FFFD, whenever the body also held a
/// percent-encoded U+FFFD (`%EF%BF%BD`) anywhere.
#[test]
fn invalid_utf8_is_refused_even_beside_an_encoded_replacement_character() {
    let (c, keys) = (catalog(), api_keys());
    let base = "api_key=xyz&service_code=URB-ILLEGAL-BUILD&lat=28.9&long=105.4";
    let tails: [&[u8]; 4] = [
        b"&description=%EF%BF%BD&first_name=%FF",
        b"&first_name=%C3%28&last_name=%EF%BF%BD",
        b"&description=ok%E5%BE&address_string=%EF%BF%BD",
        b"&description=raw\xff+%EF%BF%BD",
    ];
    for tail in tails {
        let body = [base.as_bytes(), tail].concat();
        let errors = parse_post_request(&body, post_ctx(&c, &keys)).unwrap_err();
        let shown = String::from_utf8_lossy(tail);
        assert_eq!(errors.len(), 1, "{shown}: {errors:?}");
        assert_eq!(errors[0].code, 400);
        assert!(
            errors[0].description.contains("not valid UTF-8"),
            "{errors:?}"
        );
    }
    // A replacement character the client really sent is its text, and kept.
    let body = format!("{base}&description=%EF%BF%BD+and+%E5%BE%88");
    let request = parse_post_request(body.as_bytes(), post_ctx(&c, &keys)).unwrap();
    assert_eq!(request.description.as_deref(), Some("\u{fffd} and 很"));
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn post_arbitrary_bytes_never_panics_and_refusals_are_4xx_with_reasons(
        body in prop_oneof![
            vec(any::<u8>(), 0..512),
            // With a valid key first, so the rest of the body is looked at.
            vec(any::<u8>(), 0..512).prop_map(|b| [b"api_key=xyz&".as_slice(), &b].concat()),
        ],
    ) {
        check_post(&catalog(), &api_keys(), &body)?;
    }

    #[test]
    fn post_arbitrary_pairs_never_panics_and_refusals_are_4xx_with_reasons(
        key_first in any::<bool>(),
        pairs in vec((form_key(), form_value()), 0..24),
    ) {
        let mut s = form_urlencoded::Serializer::new(String::new());
        if key_first {
            s.append_pair("api_key", "xyz");
        }
        let body = s.extend_pairs(pairs).finish();
        check_post(&catalog(), &api_keys(), body.as_bytes())?;
    }

    #[test]
    fn post_almost_valid_requests_become_only_bounded_events(body in post_body()) {
        check_post(&catalog(), &api_keys(), &body.encode())?;
    }
}

// ------------------------------------------------------------------ Open311 GET query

fn query_key() -> BoxedStrategy<String> {
    prop_oneof![
        6 => select(vec![
            "service_request_id", "service_code", "status", "start_date", "end_date",
            "jurisdiction_id", "limit", "page",
        ])
        .prop_map(str::to_owned),
        1 => nasty_text(),
    ]
    .boxed()
}

fn id_list() -> impl Strategy<Value = String> {
    prop_oneof![
        vec("[A-Za-z0-9-]{0,12}", 0..300).prop_map(|ids| ids.join(",")),
        // Few distinct ids, many repeats.
        vec(select(vec!["R1", "R2", " R3 ", "", "R4"]), 0..400).prop_map(|ids| ids.join(",")),
        (0usize..=(2 * MAX_IDS)).prop_map(|n| {
            (0..n)
                .map(|i| format!("R{i}"))
                .collect::<Vec<_>>()
                .join(",")
        }),
    ]
}

const STATUS_AND_OTHER_VALUES: &[&str] = &[
    "open",
    "closed",
    "open,closed",
    "closed , open",
    "pending",
    "",
    ",",
    "longmatan.gov.cn",
    "x",
];

fn query_value() -> BoxedStrategy<String> {
    prop_oneof![
        4 => time_text(),
        2 => id_list(),
        2 => select(STATUS_AND_OTHER_VALUES).prop_map(str::to_owned),
        2 => nasty_text(),
    ]
    .boxed()
}

fn check_query(query: &str) -> Result<(), TestCaseError> {
    let now = now();
    match parse_requests_query(query, now, Some("longmatan.gov.cn")) {
        Err(errors) => {
            prop_assert!(!errors.is_empty(), "a refusal without errors: {query}");
            for e in &errors {
                prop_assert!(
                    (400..500).contains(&e.code) && !e.description.trim().is_empty(),
                    "a refusal entry without a 4xx code or description: {:?}",
                    e
                );
            }
        }
        Ok(q) => {
            prop_assert!(q.start <= q.end, "start {} after end {}", q.start, q.end);
            prop_assert!(q.end - q.start <= Duration::days(MAX_SPAN_DAYS));
            prop_assert!(q.service_request_ids.len() <= MAX_IDS);
            let distinct: HashSet<&String> = q.service_request_ids.iter().collect();
            prop_assert_eq!(distinct.len(), q.service_request_ids.len());
            prop_assert!(q
                .service_request_ids
                .iter()
                .chain(&q.service_codes)
                .all(|v| !v.is_empty() && v.trim() == v));
            prop_assert_eq!(q.limit, DEFAULT_LIMIT);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn query_garbage_never_panics(
        query in prop_oneof![
            any::<String>(),
            vec(any::<u8>(), 0..256).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        ],
    ) {
        check_query(&query)?;
    }

    #[test]
    fn query_accepted_windows_are_ordered_bounded_and_ids_capped(
        pairs in vec((query_key(), query_value()), 0..8),
        dates in (
            prop::option::weighted(0.6, time_text()),
            prop::option::weighted(0.6, time_text()),
        ),
    ) {
        let mut s = form_urlencoded::Serializer::new(String::new());
        if let Some(start) = &dates.0 {
            s.append_pair("start_date", start);
        }
        if let Some(end) = &dates.1 {
            s.append_pair("end_date", end);
        }
        check_query(&s.extend_pairs(pairs).finish())?;
    }
}

#[test]
fn queries_at_the_edges_of_the_calendar_are_refused_or_bounded() {
    for query in [
        "start_date=%2B262143-01-01T00:00:00Z",
        "end_date=-262143-01-01T00:00:00Z",
        "start_date=%2B262143-01-01T00:00:00Z&end_date=-262143-01-01T00:00:00Z",
        "start_date=0001-01-01T00:00:00Z",
        "end_date=0001-01-01T00:00:00Z",
        "start_date=9999-12-31T23:59:59Z",
        "end_date=9999-12-31T23:59:59Z",
        "start_date=0001-01-01T00:00:00Z&end_date=9999-12-31T23:59:59Z",
        "start_date=9999-12-31T23:59:59-23:59&end_date=0001-01-01T00:00:00%2B23:59",
    ] {
        check_query(query).unwrap();
    }
    let ids: Vec<String> = (0..=MAX_IDS).map(|i| format!("R{i}")).collect();
    let e = parse_requests_query(
        &format!("service_request_id={}", ids.join(",")),
        now(),
        None,
    )
    .unwrap_err();
    assert!(e[0].description.contains("at most"), "{e:?}");
    let q = parse_requests_query(
        &format!("service_request_id={}", ids[..MAX_IDS].join(",")),
        now(),
        None,
    )
    .unwrap();
    assert_eq!(q.service_request_ids.len(), MAX_IDS);
}
