//! Open311 GeoReport v2, the pure pieces: the service catalogue, parsing and validating a
//! form-encoded `POST requests`, parsing `GET requests` queries, rendering every response in
//! XML and JSON exactly as the specification lays them out, and turning a posted request
//! into a [`CivicEvent`](hub_schemas::event::CivicEvent) of the residents' department.
//!
//! The hub serves these under `/open311/v2/`: `services.{xml,json}`,
//! `services/{code}.{xml,json}`, `requests.{xml,json}` (GET and POST) and
//! `requests/{id}.{xml,json}`, and fills status, `agency_responsible` and
//! `expected_datetime` from the routed task and its SLA.
//!
//! Status codes (specification, "Errors"): 403 for a missing or wrong `api_key`, 404 for a
//! resource that does not exist (unknown `service_code`, request id or `jurisdiction_id`),
//! 400 for anything else; the body is always the `errors` list
//! ([`Open311Error::status_for`] picks the status for a list).

mod catalog;
mod datum;
mod post;
mod query;
mod render;

pub use catalog::{Attribute, AttributeValue, Catalog, Datatype, Service, ServiceType};
pub use datum::{gcj02_to_wgs84, wgs84_to_gcj02, Datum};
pub use post::{
    parse_post_request, to_event, PostContext, PostRequest, RequestLocation, MAX_DESCRIPTION_CHARS,
    MAX_PARAMETERS,
};
pub use query::{
    parse_requests_query, RequestStatus, RequestsQuery, DEFAULT_LIMIT, MAX_IDS, MAX_SPAN_DAYS,
};
pub use render::{
    render_errors, render_post_response, render_requests, render_service_definition,
    render_services, PostResponse, ServiceRequestView,
};

use std::fmt;

/// The two output formats; XML is the specification's required one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Xml,
    Json,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Xml => "text/xml; charset=utf-8",
            Format::Json => "application/json; charset=utf-8",
        }
    }

    /// Split a path segment like `services.json` or `001.xml` into the resource and its
    /// format. A segment without an extension is XML (the required format); an unknown
    /// extension is a 400 error naming the supported ones.
    pub fn split(segment: &str) -> Result<(&str, Format), Open311Error> {
        match segment.rsplit_once('.') {
            None => Ok((segment, Format::Xml)),
            Some((name, "xml")) => Ok((name, Format::Xml)),
            Some((name, "json")) => Ok((name, Format::Json)),
            Some((_, other)) => Err(Open311Error::new(
                400,
                format!("format `{other}` is not supported; use .xml or .json"),
            )),
        }
    }
}

/// One entry of the specification's `errors` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open311Error {
    /// Usually the HTTP status (403, 404, 400).
    pub code: u16,
    /// Meant for the person using the client: names the field and the problem.
    pub description: String,
}

impl Open311Error {
    pub fn new(code: u16, description: impl Into<String>) -> Self {
        Open311Error {
            code,
            description: description.into(),
        }
    }

    /// The HTTP status for a list of errors: 403 before 404 before 400 (an unauthorised
    /// client learns nothing else).
    pub fn status_for(errors: &[Open311Error]) -> u16 {
        [403, 404]
            .into_iter()
            .find(|c| errors.iter().any(|e| e.code == *c))
            .unwrap_or(400)
    }
}

impl fmt::Display for Open311Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.description)
    }
}

impl std::error::Error for Open311Error {}
