//! Open311 GeoReport v2 pieces, checked against the specification's own examples and rules:
//! element names and nesting, JSON shapes, the error list, status codes and the
//! form-encoded POST with `api_key` and `attribute[code]` fields.

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use hub_connectors::mapping::MappingContext;
use hub_connectors::open311::{
    gcj02_to_wgs84, parse_post_request, parse_requests_query, render_errors, render_post_response,
    render_requests, render_service_definition, render_services, to_event, Catalog, Datum, Format,
    Open311Error, PostContext, PostResponse, RequestStatus, ServiceRequestView,
};
use hub_connectors::Secret;
use hub_schemas::event::Department;

const CATALOG: &str = r#"
[[services]]
service_code = "001"
service_name = "Cans left out 24x7"
description = "Garbage or recycling cans that have been left out for more than 24 hours after collection. Violators will be cited."
type = "realtime"
keywords = ["lorem", "ipsum", "dolor"]
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
keywords = ["违建", "私搭乱建"]
group = "市容环境"
"#;

fn catalog() -> Catalog {
    #[derive(serde::Deserialize)]
    struct File {
        services: Vec<hub_connectors::open311::Service>,
    }
    let file: File = toml::from_str(CATALOG).unwrap();
    Catalog::new(file.services).unwrap()
}

fn keys() -> Vec<Secret> {
    vec![Secret::new("xyz"), Secret::new("app-2")]
}

fn ctx<'a>(catalog: &'a Catalog, keys: &'a [Secret]) -> PostContext<'a> {
    PostContext {
        catalog,
        api_keys: keys,
        jurisdiction_id: Some("longmatan.gov.cn"),
        limits: Default::default(),
        now: chrono::Utc::now(),
    }
}

#[test]
fn services_render_as_the_specification_shows_them() {
    let c = catalog();
    let xml = render_services(&c.services[..1], Format::Xml);
    assert_eq!(
        xml,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<services><service><service_code>001</service_code>\
<service_name>Cans left out 24x7</service_name><description>Garbage or recycling cans that have been left out for more than 24 hours after collection. Violators will be cited.</description>\
<metadata>true</metadata><type>realtime</type><keywords>lorem, ipsum, dolor</keywords><group>sanitation</group></service></services>\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(&render_services(&c.services, Format::Json)).unwrap();
    assert_eq!(json[0]["service_code"], "001");
    assert_eq!(json[0]["metadata"], true);
    assert_eq!(json[0]["keywords"], "lorem, ipsum, dolor");
    assert_eq!(json[1]["metadata"], false, "no attributes, no metadata");
    assert_eq!(json[1]["service_name"], "违章搭建");
    assert_eq!(json.as_array().unwrap()[0].as_object().unwrap().len(), 7);
}

#[test]
fn a_service_definition_renders_attributes_in_order_with_values() {
    let c = catalog();
    let xml = render_service_definition(&c.services[0], Format::Xml);
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<service_definition><service_code>001</service_code><attributes><attribute><variable>true</variable><code>WHISHETN</code><datatype>singlevaluelist</datatype><required>true</required><datatype_description></datatype_description><order>1</order><description>What is the ticket/tag/DL number?</description><values><value><key>123</key><name>Ford</name></value><value><key>124</key><name>Chrysler</name></value></values></attribute>"), "{xml}");
    let json: serde_json::Value =
        serde_json::from_str(&render_service_definition(&c.services[0], Format::Json)).unwrap();
    assert_eq!(json["service_code"], "001");
    let a = &json["attributes"][0];
    assert_eq!(a["datatype_description"], serde_json::Value::Null);
    assert_eq!(a["values"][1]["name"], "Chrysler");
    assert_eq!(json["attributes"][2]["code"], "COUNT");
}

#[test]
fn the_specifications_example_post_is_accepted_and_becomes_a_residents_event() {
    let c = catalog();
    let keys = keys();
    let body = "api_key=xyz&jurisdiction_id=longmatan.gov.cn&service_code=001&lat=28.9012&long=105.4345&address_string=1234+5th+street&email=smit333%40sfgov.edu&device_id=tt222111&account_id=123456&first_name=john&last_name=smith&phone=111111111&description=A+large+sinkhole+is+destroying+the+street&media_url=http%3A%2F%2Ffarm3.static.flickr.com%2F2002%2F2212426634_5ed477a060.jpg&attribute[WHISHETN]=123&attribute[COLOURS][]=green&attribute[COLOURS][]=grey";
    let req = parse_post_request(body.as_bytes(), ctx(&c, &keys)).unwrap();
    assert_eq!(req.service_code, "001");
    assert_eq!(req.location.lat_long, Some((28.9012, 105.4345)));
    assert_eq!(req.attributes["COLOURS"], vec!["green", "grey"]);
    assert_eq!(
        req.description.as_deref(),
        Some("A large sinkhole is destroying the street")
    );
    let shown = format!("{req:?}");
    assert!(
        !shown.contains("smit333") && !shown.contains("111111111") && !shown.contains("xyz"),
        "{shown}"
    );

    let received = Utc.with_ymd_and_hms(2026, 11, 21, 2, 23, 0).unwrap();
    let event = to_event(
        &req,
        c.service("001").unwrap(),
        "R20261121000001",
        Datum::Wgs84,
        MappingContext {
            source_system: "open311.longmatan",
            received_at: received,
            limits: Default::default(),
        },
        body.as_bytes(),
    );
    assert_eq!(event.department, Department::Residents);
    assert_eq!(event.source_id, "R20261121000001");
    assert_eq!(event.category_code, "001");
    assert_eq!(event.attributes["attribute.COLOURS"], "green,grey");
    assert_eq!(
        event
            .reporter
            .as_ref()
            .unwrap()
            .name
            .as_ref()
            .unwrap()
            .expose(),
        "john smith"
    );
    // GPS position converted to the city's GCJ-02 datum, and back.
    let p = event.location.point.unwrap();
    assert!((p.lon - 105.4345).abs() > 0.001);
    let (lon, lat) = gcj02_to_wgs84(p.lon, p.lat);
    assert!((lon - 105.4345).abs() < 1e-6 && (lat - 28.9012).abs() < 1e-6);
    assert!(!format!("{event:?}").contains("111111111"));
}

#[test]
fn refusals_follow_the_specifications_codes_and_list_every_problem() {
    let c = catalog();
    let keys = keys();
    let check = |body: &str| parse_post_request(body.as_bytes(), ctx(&c, &keys)).unwrap_err();

    // Wrong or missing key: 403 and nothing else.
    let e = check("api_key=nope&service_code=999");
    assert_eq!((Open311Error::status_for(&e), e.len()), (403, 1));
    assert_eq!(
        Open311Error::status_for(&check("service_code=001&lat=1&long=2")),
        403
    );
    // Unknown service: 404.
    let e = check("api_key=xyz&service_code=999&lat=28.9&long=105.4");
    assert_eq!(Open311Error::status_for(&e), 404);
    assert!(e[0]
        .description
        .contains("service_code `999` was not found"));
    // Other jurisdiction: 404.
    assert_eq!(
        Open311Error::status_for(&check(
            "api_key=xyz&jurisdiction_id=sfgov.org&service_code=URB-ILLEGAL-BUILD&lat=1&long=2"
        )),
        404
    );
    // Several problems at once: 400 with each named.
    let e = check("api_key=app-2&service_code=001&lat=91&attribute[WHISHETN]=125&attribute[COUNT]=many&attribute[NOPE]=1&media_url=ftp://x&email=bad");
    assert_eq!(Open311Error::status_for(&e), 400);
    let text: Vec<&str> = e.iter().map(|e| e.description.as_str()).collect();
    for expected in [
        "long is missing while lat is given",
        "media_url",
        "email",
        "attribute[NOPE]",
        "attribute[WHISHETN]: `125` is not one of 123, 124",
        "attribute[COUNT]: `many` is not a number",
    ] {
        assert!(
            text.iter().any(|t| t.contains(expected)),
            "{expected} in {text:?}"
        );
    }
    // No location at all; a required attribute missing; empty values count as absent.
    let e = check("api_key=xyz&service_code=001&address_string=&attribute[WHISHETN]=");
    let text: Vec<&str> = e.iter().map(|e| e.description.as_str()).collect();
    assert!(
        text.iter().any(|t| t.starts_with("a location is required")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.starts_with("attribute[WHISHETN] is required")),
        "{text:?}"
    );
    // A single-value attribute given twice, [] on a non-list.
    let e = check("api_key=xyz&service_code=001&address_id=545483&attribute[WHISHETN]=123&attribute[WHISHETN]=124&attribute[COUNT][]=3");
    assert_eq!(e.len(), 2, "{e:?}");
}

#[test]
fn errors_render_as_the_specifications_list() {
    let errors = [Open311Error::new(
        403,
        "Invalid api_key received -- can't proceed with create_request.",
    )];
    assert_eq!(
        render_errors(&errors, Format::Xml),
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<errors><error><code>403</code><description>Invalid api_key received -- can&apos;t proceed with create_request.</description></error></errors>\n"
    );
    assert_eq!(
        render_errors(&errors, Format::Json),
        r#"[{"code":403,"description":"Invalid api_key received -- can't proceed with create_request."}]"#
    );
}

fn view(id: &str, status: RequestStatus) -> ServiceRequestView {
    let t = |s: &str| DateTime::<FixedOffset>::parse_from_rfc3339(s).unwrap();
    ServiceRequestView {
        service_request_id: id.into(),
        status,
        status_notes: (status == RequestStatus::Closed).then(|| "Duplicate request.".into()),
        service_name: Some("Sidewalk and Curb Issues".into()),
        service_code: "006".into(),
        description: None,
        agency_responsible: None,
        service_notice: None,
        requested_datetime: t("2010-04-14T06:37:38-08:00"),
        updated_datetime: Some(t("2010-04-14T06:37:38-08:00")),
        expected_datetime: Some(t("2010-04-15T06:37:38-08:00")),
        address: Some("8TH AVE and JUDAH ST".into()),
        address_id: Some("545483".into()),
        zipcode: Some("94122".into()),
        lat_long: Some((37.762221815, -122.4651145)),
        media_url: Some("http://city.gov.s3.amazonaws.com/requests/media/638344.jpg".into()),
    }
}

#[test]
fn requests_render_with_the_specifications_elements_order_and_times() {
    let xml = render_requests(&[view("638344", RequestStatus::Closed)], Format::Xml);
    assert_eq!(
        xml,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<service_requests><request><service_request_id>638344</service_request_id><status>closed</status><status_notes>Duplicate request.</status_notes><service_name>Sidewalk and Curb Issues</service_name><service_code>006</service_code><description></description><agency_responsible></agency_responsible><service_notice></service_notice><requested_datetime>2010-04-14T06:37:38-08:00</requested_datetime><updated_datetime>2010-04-14T06:37:38-08:00</updated_datetime><expected_datetime>2010-04-15T06:37:38-08:00</expected_datetime><address>8TH AVE and JUDAH ST</address><address_id>545483</address_id><zipcode>94122</zipcode><lat>37.762221815</lat><long>-122.4651145</long><media_url>http://city.gov.s3.amazonaws.com/requests/media/638344.jpg</media_url></request></service_requests>\n"
    );
    let json: serde_json::Value = serde_json::from_str(&render_requests(
        &[view("638349", RequestStatus::Open)],
        Format::Json,
    ))
    .unwrap();
    let r = &json[0];
    assert_eq!(r["status"], "open");
    assert_eq!(r["status_notes"], serde_json::Value::Null);
    assert_eq!(r["expected_datetime"], "2010-04-15T06:37:38-08:00");
    assert_eq!(r["lat"], 37.762221815);
    assert_eq!(r.as_object().unwrap().len(), 17);
    // China time keeps its offset; UTC is written with Z.
    let mut v = view("1", RequestStatus::Open);
    v.requested_datetime = FixedOffset::east_opt(8 * 3600)
        .unwrap()
        .with_ymd_and_hms(2026, 11, 21, 10, 23, 0)
        .unwrap();
    v.updated_datetime = Some(
        Utc.with_ymd_and_hms(2026, 11, 21, 2, 23, 0)
            .unwrap()
            .fixed_offset(),
    );
    let xml = render_requests(&[v], Format::Xml);
    assert!(
        xml.contains("<requested_datetime>2026-11-21T10:23:00+08:00</requested_datetime>"),
        "{xml}"
    );
    assert!(
        xml.contains("<updated_datetime>2026-11-21T02:23:00Z</updated_datetime>"),
        "{xml}"
    );
}

#[test]
fn the_post_answer_lists_the_new_request_id() {
    let answer = [PostResponse {
        service_request_id: "293944".into(),
        service_notice: Some("The City will inspect within 24 hours".into()),
        account_id: None,
    }];
    assert_eq!(
        render_post_response(&answer, Format::Xml),
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<service_requests><request><service_request_id>293944</service_request_id><service_notice>The City will inspect within 24 hours</service_notice><account_id></account_id></request></service_requests>\n"
    );
    assert_eq!(
        render_post_response(&answer, Format::Json),
        r#"[{"account_id":null,"service_notice":"The City will inspect within 24 hours","service_request_id":"293944"}]"#
    );
}

#[test]
fn request_queries_default_to_90_days_and_refuse_wider_or_malformed_ones() {
    let now = Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 0).unwrap();
    let q = parse_requests_query("", now, None).unwrap();
    assert_eq!((q.end - q.start).num_days(), 90);
    assert_eq!(q.limit, 1000);
    let q = parse_requests_query("service_code=001,006&status=open&start_date=2026-11-01T00:00:00Z&end_date=2026-11-20T00:00:00%2B08:00", now, None).unwrap();
    assert_eq!(q.service_codes, vec!["001", "006"]);
    assert_eq!(q.statuses, vec![RequestStatus::Open]);
    let e = parse_requests_query(
        "start_date=2026-01-01T00:00:00Z&end_date=2026-11-01T00:00:00Z",
        now,
        None,
    )
    .unwrap_err();
    assert!(e[0].description.contains("90 days"));
    let e = parse_requests_query(
        "status=pending&start_date=yesterday",
        now,
        Some("longmatan.gov.cn"),
    )
    .unwrap_err();
    assert_eq!(e.len(), 2);
    assert_eq!(
        Open311Error::status_for(
            &parse_requests_query("jurisdiction_id=x", now, Some("longmatan.gov.cn")).unwrap_err()
        ),
        404
    );
}

#[test]
fn resource_formats_and_catalogue_mistakes_are_named() {
    assert_eq!(
        Format::split("services.json").unwrap(),
        ("services", Format::Json)
    );
    assert_eq!(Format::split("001.xml").unwrap(), ("001", Format::Xml));
    assert_eq!(
        Format::split("requests").unwrap(),
        ("requests", Format::Xml)
    );
    assert_eq!(Format::split("requests.csv").unwrap_err().code, 400);
    let mut services = catalog().services;
    services[1].service_code = "001".into();
    services[0].attributes[1].order = 1;
    services[0].attributes[2]
        .values
        .push(hub_connectors::open311::AttributeValue {
            key: "k".into(),
            name: "n".into(),
        });
    let problems = Catalog::new(services).unwrap_err();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("used twice")));
}
