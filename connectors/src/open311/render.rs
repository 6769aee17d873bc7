//! Responses in the specification's XML and JSON layouts. XML begins with the declaration
//! and uses the element names and nesting of the specification; an absent value is an empty
//! element in XML and `null` in JSON (the Spark convention the specification follows).
//! Ids and codes are JSON strings; `lat`/`long` are numbers; times are ISO 8601 with an
//! offset (`2026-11-21T10:23:00+08:00`).

use chrono::{DateTime, FixedOffset, SecondsFormat};
use serde_json::{json, Value};

use super::catalog::Service;
use super::query::RequestStatus;
use super::{Format, Open311Error};

const XML_DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n";

/// One entry of a `POST requests` response.
#[derive(Debug, Clone, PartialEq)]
pub struct PostResponse {
    pub service_request_id: String,
    pub service_notice: Option<String>,
    pub account_id: Option<String>,
}

/// One request as `GET requests` and `GET requests/{id}` show it; the hub fills it from the
/// task (status, agency, SLA) and the event.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRequestView {
    pub service_request_id: String,
    pub status: RequestStatus,
    pub status_notes: Option<String>,
    pub service_name: Option<String>,
    pub service_code: String,
    pub description: Option<String>,
    pub agency_responsible: Option<String>,
    pub service_notice: Option<String>,
    pub requested_datetime: DateTime<FixedOffset>,
    pub updated_datetime: Option<DateTime<FixedOffset>>,
    pub expected_datetime: Option<DateTime<FixedOffset>>,
    pub address: Option<String>,
    pub address_id: Option<String>,
    pub zipcode: Option<String>,
    /// (lat, long), WGS-84 as the specification says.
    pub lat_long: Option<(f64, f64)>,
    pub media_url: Option<String>,
}

fn time(t: &DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A tiny writer for the specification's flat, attribute-free XML.
struct Xml(String);

impl Xml {
    fn new() -> Self {
        Xml(XML_DECLARATION.to_owned())
    }
    fn open(&mut self, name: &str) {
        self.0.push('<');
        self.0.push_str(name);
        self.0.push('>');
    }
    fn close(&mut self, name: &str) {
        self.0.push_str("</");
        self.0.push_str(name);
        self.0.push('>');
    }
    fn leaf(&mut self, name: &str, value: Option<&str>) {
        self.open(name);
        if let Some(v) = value {
            escape_into(&mut self.0, v);
        }
        self.close(name);
    }
    fn finish(mut self) -> String {
        self.0.push('\n');
        self.0
    }
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all are dropped rather than break the document.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
}

fn json_text(v: &Value) -> String {
    serde_json::to_string(v).expect("JSON values serialise")
}

fn bool_text(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// `GET services`.
pub fn render_services(services: &[Service], format: Format) -> String {
    match format {
        Format::Json => json_text(&Value::Array(
            services
                .iter()
                .map(|s| {
                    json!({
                        "service_code": s.service_code,
                        "service_name": s.service_name,
                        "description": s.description,
                        "metadata": s.metadata(),
                        "type": s.service_type.as_str(),
                        "keywords": s.keywords.join(", "),
                        "group": s.group,
                    })
                })
                .collect(),
        )),
        Format::Xml => {
            let mut x = Xml::new();
            x.open("services");
            for s in services {
                x.open("service");
                x.leaf("service_code", Some(&s.service_code));
                x.leaf("service_name", Some(&s.service_name));
                x.leaf("description", Some(&s.description));
                x.leaf("metadata", Some(bool_text(s.metadata())));
                x.leaf("type", Some(s.service_type.as_str()));
                x.leaf("keywords", Some(&s.keywords.join(", ")));
                x.leaf("group", Some(&s.group));
                x.close("service");
            }
            x.close("services");
            x.finish()
        }
    }
}

/// `GET services/{service_code}`.
pub fn render_service_definition(service: &Service, format: Format) -> String {
    let attrs = service.ordered_attributes();
    match format {
        Format::Json => json_text(&json!({
            "service_code": service.service_code,
            "attributes": attrs.iter().map(|a| json!({
                "variable": a.variable,
                "code": a.code,
                "datatype": a.datatype.as_str(),
                "required": a.required,
                "datatype_description": a.datatype_description,
                "order": a.order,
                "description": a.description,
                "values": a.values.iter().map(|v| json!({"key": v.key, "name": v.name})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })),
        Format::Xml => {
            let mut x = Xml::new();
            x.open("service_definition");
            x.leaf("service_code", Some(&service.service_code));
            x.open("attributes");
            for a in attrs {
                x.open("attribute");
                x.leaf("variable", Some(bool_text(a.variable)));
                x.leaf("code", Some(&a.code));
                x.leaf("datatype", Some(a.datatype.as_str()));
                x.leaf("required", Some(bool_text(a.required)));
                x.leaf("datatype_description", a.datatype_description.as_deref());
                x.leaf("order", Some(&a.order.to_string()));
                x.leaf("description", Some(&a.description));
                x.open("values");
                for v in &a.values {
                    x.open("value");
                    x.leaf("key", Some(&v.key));
                    x.leaf("name", Some(&v.name));
                    x.close("value");
                }
                x.close("values");
                x.close("attribute");
            }
            x.close("attributes");
            x.close("service_definition");
            x.finish()
        }
    }
}

/// The answer to `POST requests`.
pub fn render_post_response(items: &[PostResponse], format: Format) -> String {
    match format {
        Format::Json => json_text(&Value::Array(
            items
                .iter()
                .map(|r| {
                    json!({
                        "service_request_id": r.service_request_id,
                        "service_notice": r.service_notice,
                        "account_id": r.account_id,
                    })
                })
                .collect(),
        )),
        Format::Xml => {
            let mut x = Xml::new();
            x.open("service_requests");
            for r in items {
                x.open("request");
                x.leaf("service_request_id", Some(&r.service_request_id));
                x.leaf("service_notice", r.service_notice.as_deref());
                x.leaf("account_id", r.account_id.as_deref());
                x.close("request");
            }
            x.close("service_requests");
            x.finish()
        }
    }
}

/// `GET requests` and `GET requests/{id}` (the latter a list of one, as specified).
pub fn render_requests(requests: &[ServiceRequestView], format: Format) -> String {
    match format {
        Format::Json => json_text(&Value::Array(
            requests
                .iter()
                .map(|r| {
                    json!({
                        "service_request_id": r.service_request_id,
                        "status": r.status.as_str(),
                        "status_notes": r.status_notes,
                        "service_name": r.service_name,
                        "service_code": r.service_code,
                        "description": r.description,
                        "agency_responsible": r.agency_responsible,
                        "service_notice": r.service_notice,
                        "requested_datetime": time(&r.requested_datetime),
                        "updated_datetime": r.updated_datetime.as_ref().map(time),
                        "expected_datetime": r.expected_datetime.as_ref().map(time),
                        "address": r.address,
                        "address_id": r.address_id,
                        "zipcode": r.zipcode,
                        "lat": r.lat_long.map(|p| p.0),
                        "long": r.lat_long.map(|p| p.1),
                        "media_url": r.media_url,
                    })
                })
                .collect(),
        )),
        Format::Xml => {
            let mut x = Xml::new();
            x.open("service_requests");
            for r in requests {
                x.open("request");
                x.leaf("service_request_id", Some(&r.service_request_id));
                x.leaf("status", Some(r.status.as_str()));
                x.leaf("status_notes", r.status_notes.as_deref());
                x.leaf("service_name", r.service_name.as_deref());
                x.leaf("service_code", Some(&r.service_code));
                x.leaf("description", r.description.as_deref());
                x.leaf("agency_responsible", r.agency_responsible.as_deref());
                x.leaf("service_notice", r.service_notice.as_deref());
                x.leaf("requested_datetime", Some(&time(&r.requested_datetime)));
                x.leaf(
                    "updated_datetime",
                    r.updated_datetime.as_ref().map(time).as_deref(),
                );
                x.leaf(
                    "expected_datetime",
                    r.expected_datetime.as_ref().map(time).as_deref(),
                );
                x.leaf("address", r.address.as_deref());
                x.leaf("address_id", r.address_id.as_deref());
                x.leaf("zipcode", r.zipcode.as_deref());
                x.leaf("lat", r.lat_long.map(|p| p.0.to_string()).as_deref());
                x.leaf("long", r.lat_long.map(|p| p.1.to_string()).as_deref());
                x.leaf("media_url", r.media_url.as_deref());
                x.close("request");
            }
            x.close("service_requests");
            x.finish()
        }
    }
}

/// The `errors` list (any status).
pub fn render_errors(errors: &[Open311Error], format: Format) -> String {
    match format {
        Format::Json => json_text(&Value::Array(
            errors
                .iter()
                .map(|e| json!({"code": e.code, "description": e.description}))
                .collect(),
        )),
        Format::Xml => {
            let mut x = Xml::new();
            x.open("errors");
            for e in errors {
                x.open("error");
                x.leaf("code", Some(&e.code.to_string()));
                x.leaf("description", Some(&e.description));
                x.close("error");
            }
            x.close("errors");
            x.finish()
        }
    }
}
