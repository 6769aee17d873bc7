//! Mapping tests: each department's record shape maps to the canonical event, and every
//! malformed record is refused with the field and the problem named.

use chrono::{TimeZone, Utc};
use hub_connectors::mapping::{map_record, MappingContext};
use hub_connectors::RawRecord;
use hub_schemas::event::Department;

fn ctx() -> MappingContext<'static> {
    MappingContext {
        source_system: "test.system",
        received_at: Utc.with_ymd_and_hms(2026, 11, 21, 3, 0, 0).unwrap(),
    }
}

fn raw(json: &str) -> RawRecord {
    RawRecord {
        bytes: json.as_bytes().to_vec(),
        uri: "http://dept/api/cases".into(),
    }
}

#[test]
fn urban_management_case_maps_with_local_time_point_and_masked_reporter() {
    let rec = raw(
        r#"{"caseNo":"CG1","eventTypeCode":"010102","eventTypeName":"暴露垃圾",
        "reportTime":"2026-11-21 10:23:00","x":105.43,"y":28.9,"address":"鱼塘路12号",
        "description":"路边垃圾堆积","source":"巡查","reporter":{"name":"张三","phone":"13800001234"}}"#,
    );
    let e = map_record(Department::UrbanManagement, ctx(), &rec).unwrap();
    assert_eq!(e.source_id, "CG1");
    assert_eq!(e.category_code, "010102");
    assert_eq!(
        e.occurred_at,
        Utc.with_ymd_and_hms(2026, 11, 21, 2, 23, 0).unwrap()
    );
    assert_eq!(e.location.point.unwrap().lon, 105.43);
    assert_eq!(e.attributes.get("source").map(String::as_str), Some("巡查"));
    let reporter = e.reporter.clone().unwrap();
    assert_eq!(reporter.phone.as_ref().unwrap().expose(), "13800001234");
    let logged = format!("{e:?}");
    assert!(
        !logged.contains("13800001234") && !logged.contains("张三"),
        "{logged}"
    );
    let raw_ref = e.raw_ref.unwrap();
    assert_eq!(raw_ref.sha256.len(), 64);
    assert_eq!(
        e.event_id,
        hub_schemas::event::CivicEvent::derive_id("test.system", "CG1")
    );
}

#[test]
fn police_incident_maps_compact_time_and_address() {
    let rec = raw(
        r#"{"jjdbh":"J1","bjlbdm":"0201","bjlbmc":"盗窃","bjsj":"20261121102300",
        "fadd":"红星路8号","jd":"105.41","wd":"28.91","jqms":"电动车被盗","sspcs":"红星派出所"}"#,
    );
    let e = map_record(Department::Police, ctx(), &rec).unwrap();
    assert_eq!(e.department, Department::Police);
    assert_eq!(
        e.occurred_at,
        Utc.with_ymd_and_hms(2026, 11, 21, 2, 23, 0).unwrap()
    );
    assert_eq!(e.location.address.as_deref(), Some("红星路8号"));
    assert!(e.reporter.is_none());
}

#[test]
fn sanitation_order_and_civil_affairs_case_map() {
    let rec = raw(
        r#"{"orderId":"HW-1","type":"GARBAGE_OVERFLOW","createdAt":"2026-11-21T10:23:00+08:00",
        "binId":"BIN-7","lng":105.4,"lat":28.9,"fillLevel":97}"#,
    );
    let e = map_record(Department::Sanitation, ctx(), &rec).unwrap();
    assert_eq!(
        e.attributes.get("fillLevel").map(String::as_str),
        Some("97")
    );
    let rec = raw(
        r#"{"case_id":"MZ-1","case_type":"ELDERLY_NO_CONTACT","updated_at":"2026-11-21 08:00:00",
        "grid_code":"510504001001002","person":{"name":"李四","id_number":"510504194001011234"},"hours_without_contact":52}"#,
    );
    let e = map_record(Department::CivilAffairs, ctx(), &rec).unwrap();
    assert_eq!(e.location.grid_code.as_deref(), Some("510504001001002"));
    assert!(!format!("{e:?}").contains("510504194001011234"));
}

#[test]
fn malformed_records_name_the_field_and_problem() {
    let cases: &[(Department, &str, &str, &str)] = &[
        (
            Department::UrbanManagement,
            "not json",
            "(record)",
            "not valid JSON",
        ),
        (
            Department::UrbanManagement,
            "[1,2]",
            "(record)",
            "expected a JSON object",
        ),
        (
            Department::UrbanManagement,
            r#"{"eventTypeCode":"1","reportTime":"2026-11-21 10:00:00","x":1,"y":2}"#,
            "caseNo",
            "missing",
        ),
        (
            Department::UrbanManagement,
            r#"{"caseNo":"C","eventTypeCode":"1","reportTime":"yesterday","x":1,"y":2}"#,
            "reportTime",
            "not a time",
        ),
        (
            Department::UrbanManagement,
            r#"{"caseNo":"C","eventTypeCode":"1","reportTime":"2026-11-21 10:00:00","x":105}"#,
            "y",
            "missing while `x` is given",
        ),
        (
            Department::UrbanManagement,
            r#"{"caseNo":"C","eventTypeCode":"1","reportTime":"2026-11-21 10:00:00"}"#,
            "x/y, address, gridCode",
            "no location",
        ),
        (
            Department::Police,
            r#"{"jjdbh":"J","bjlbdm":"1","bjsj":"20261121102300","jd":500,"wd":28}"#,
            "jd",
            "out of range",
        ),
        (
            Department::Sanitation,
            r#"{"orderId":"H","type":"T","createdAt":"2026-11-21 10:00","lng":1,"lat":2}"#,
            "createdAt",
            "RFC 3339",
        ),
        (
            Department::Sanitation,
            r#"{"orderId":"H","type":"T","createdAt":"2026-11-21T10:00:00+08:00","lng":1,"lat":2,"fillLevel":140}"#,
            "fillLevel",
            "percentage",
        ),
        (
            Department::CivilAffairs,
            r#"{"case_id":"M","case_type":"T","updated_at":"2026-11-21 10:00:00","grid_code":"51A"}"#,
            "grid_code",
            "numeric",
        ),
    ];
    for (dept, json, field, problem) in cases {
        let err = map_record(*dept, ctx(), &raw(json)).unwrap_err();
        assert_eq!(&err.field, field, "{json}");
        assert!(err.problem.contains(problem), "{json}: {err}");
    }
}
