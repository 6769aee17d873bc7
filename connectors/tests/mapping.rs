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
        limits: Default::default(),
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

#[test]
fn police_rental_housing_and_floating_population_checks_keep_their_details() {
    let rec = raw(
        r#"{"jjdbh":"J2","bjlbdm":"0502","bjlbmc":"流动人口登记","bjsj":"20261121102300",
        "fadd":"红星路8号","fwbh":"FW510504001001001","ldrks":3,"sspcs":"红星派出所",
        "bjrxm":"王芳","bjrdh":"13900001111","bjrsfzh":"510504199001011234"}"#,
    );
    let e = map_record(Department::Police, ctx(), &rec).unwrap();
    assert_eq!(e.attributes.get("ldrks").map(String::as_str), Some("3"));
    assert_eq!(
        e.attributes.get("fwbh").map(String::as_str),
        Some("FW510504001001001")
    );
    assert_eq!(
        e.reporter
            .as_ref()
            .unwrap()
            .id_number
            .as_ref()
            .unwrap()
            .expose(),
        "510504199001011234"
    );
    assert!(!format!("{e:?}").contains("510504199001011234"));
    let masked = hub_connectors::privacy::masked_event(&e);
    let r = masked.reporter.unwrap();
    assert_eq!(r.name.unwrap().expose(), "王*");
    assert_eq!(r.phone.unwrap().expose(), "139****1111");
    assert_eq!(r.id_number.unwrap().expose(), "510504********1234");
}

#[test]
fn a_bin_overflow_episode_maps_to_one_event_keyed_by_the_episode() {
    use hub_connectors::mapping::{Mapped, Mapper, RecordFormat};
    let rec = raw(
        r#"{"episode_id":"BIN-0042@20261121T022300Z","bin_id":"BIN-0042","opened_at":"2026-11-21T02:23:00Z",
        "fill_level":97.0,"lon":105.43,"lat":28.9,"topic":"sanitation/bins/BIN-0042/reading","reading":{"bin_id":"BIN-0042"}}"#,
    );
    let Mapped::Event(e) = Mapper::new(RecordFormat::SanitationBinEpisode)
        .map(ctx(), &rec)
        .unwrap()
    else {
        panic!("an event")
    };
    assert_eq!(e.source_id, "BIN-0042@20261121T022300Z");
    assert_eq!(e.category_code, "GARBAGE_OVERFLOW");
    assert_eq!(
        e.occurred_at,
        Utc.with_ymd_and_hms(2026, 11, 21, 2, 23, 0).unwrap()
    );
    let err = Mapper::new(RecordFormat::SanitationBinEpisode)
        .map(ctx(), &raw(r#"{"episode_id":"E","bin_id":"B","opened_at":"2026-11-21T02:23:00Z","fill_level":97}"#))
        .unwrap_err();
    assert_eq!(err.field, "lon/lat");
}

#[test]
fn each_source_kind_names_its_record_format_or_why_not() {
    use hub_connectors::mapping::RecordFormat;
    use hub_connectors::SourceKind;
    assert_eq!(
        RecordFormat::for_source(SourceKind::Mqtt, Department::Sanitation),
        Ok(RecordFormat::SanitationBinEpisode)
    );
    assert_eq!(
        RecordFormat::for_source(SourceKind::Webhook, Department::UrbanManagement),
        Ok(RecordFormat::UrbanManagementCase)
    );
    let err = RecordFormat::for_source(SourceKind::Mqtt, Department::Police).unwrap_err();
    assert!(
        err.contains("`mqtt` connector for `police` is not supported"),
        "{err}"
    );
    for f in RecordFormat::ALL {
        assert_eq!(RecordFormat::parse(f.as_str()), Some(f));
    }
    let err = map_record(Department::Residents, ctx(), &raw("{}")).unwrap_err();
    assert!(err.problem.contains("Open311"));
}
