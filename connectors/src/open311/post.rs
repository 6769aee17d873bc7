//! `POST requests`: the form-encoded body (`application/x-www-form-urlencoded`) checked
//! against the catalogue, and the accepted request as a civic event.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use hub_schemas::event::{CivicEvent, Department, GeoPoint, Location, PersonalData, Reporter};
use hub_schemas::limits::{text_problem, InputLimits, TextKind, MAX_LINE_CHARS};

use super::catalog::{Catalog, Datatype, Service};
use super::datum::{wgs84_to_gcj02, Datum};
use super::Open311Error;
use crate::mapping::{sha256_hex, MappingContext};
use crate::Secret;

/// The specification's limit on `description`.
pub const MAX_DESCRIPTION_CHARS: usize = 4000;
/// Limit for the other free-text fields (not in the specification; keeps rows sane).
const MAX_FIELD_CHARS: usize = 1000;

/// What the endpoint checks a post against.
#[derive(Debug, Clone, Copy)]
pub struct PostContext<'a> {
    pub catalog: &'a Catalog,
    /// Keys issued to client applications.
    pub api_keys: &'a [Secret],
    /// The jurisdiction this endpoint serves; a different `jurisdiction_id` is a 404.
    pub jurisdiction_id: Option<&'a str>,
    /// The bounds values are held to (`datetime` attributes inside the window around `now`).
    pub limits: InputLimits,
    pub now: DateTime<Utc>,
}

/// Most parameters one post may carry (the catalogue's services have a handful).
pub const MAX_PARAMETERS: usize = 100;

/// Where the problem is. At least one part is present.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestLocation {
    /// (lat, long) exactly as posted (WGS-84 by the specification).
    pub lat_long: Option<(f64, f64)>,
    pub address_string: Option<String>,
    pub address_id: Option<String>,
}

/// An accepted `POST requests`. `Debug` masks the personal fields; the api key is a
/// [`Secret`].
#[derive(Clone, PartialEq)]
pub struct PostRequest {
    pub api_key: Secret,
    pub service_code: String,
    pub location: RequestLocation,
    /// `attribute[code]` values; a multivaluelist may have several.
    pub attributes: BTreeMap<String, Vec<String>>,
    pub email: Option<String>,
    pub device_id: Option<String>,
    pub account_id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub description: Option<String>,
    pub media_url: Option<String>,
}

impl std::fmt::Debug for PostRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::privacy::{mask, PersonalKind};
        let m = |kind, v: &Option<String>| v.as_deref().map(|v| mask(kind, v));
        f.debug_struct("PostRequest")
            .field("service_code", &self.service_code)
            .field("location", &self.location)
            .field("attributes", &self.attributes)
            .field("email", &m(PersonalKind::Email, &self.email))
            .field("device_id", &m(PersonalKind::Other, &self.device_id))
            .field("account_id", &m(PersonalKind::Other, &self.account_id))
            .field("first_name", &m(PersonalKind::Name, &self.first_name))
            .field("last_name", &m(PersonalKind::Name, &self.last_name))
            .field("phone", &m(PersonalKind::Phone, &self.phone))
            .field("description", &self.description)
            .field("media_url", &self.media_url)
            .finish()
    }
}

/// Parse and check a posted body. On refusal, every problem found is listed (a missing or
/// wrong api key alone, so an unauthorised client learns nothing else).
pub fn parse_post_request(
    body: &[u8],
    ctx: PostContext<'_>,
) -> Result<PostRequest, Vec<Open311Error>> {
    let mut fields: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        // The specification: an empty parameter is the same as one not sent.
        if v.trim().is_empty() {
            continue;
        }
        fields
            .entry(k.into_owned())
            .or_default()
            .push(v.into_owned());
    }
    // Checked on the decoded bytes: `form_urlencoded` would silently turn invalid UTF-8
    // into U+FFFD, and a resident's text must not be altered behind their back.
    if !form_is_utf8(body) {
        return Err(vec![Open311Error::new(
            400,
            "the request body is not valid UTF-8",
        )]);
    }

    // The key first: nothing else is looked at for a client that is not let in.
    let api_key = match fields.get("api_key").map(Vec::as_slice) {
        Some([key])
            if ctx
                .api_keys
                .iter()
                .fold(false, |found, k| k.matches(key) | found) =>
        {
            Secret::new(key.clone())
        }
        Some([_]) => {
            return Err(vec![Open311Error::new(
                403,
                "Invalid api_key received -- can't proceed with create_request.",
            )])
        }
        Some(_) => {
            return Err(vec![Open311Error::new(
                403,
                "api_key was given more than once",
            )])
        }
        None => {
            return Err(vec![Open311Error::new(
                403,
                "api_key is required to create a request",
            )])
        }
    };

    let mut errors = Vec::new();
    // Control characters and runaway sizes, in any parameter, named.
    let count: usize = fields.values().map(Vec::len).sum();
    if count > MAX_PARAMETERS {
        return Err(vec![Open311Error::new(
            400,
            format!("the request has {count} parameters; at most {MAX_PARAMETERS} are accepted"),
        )]);
    }
    for (name, values) in &fields {
        if let Some(problem) = text_problem(name, TextKind::Id) {
            errors.push(Open311Error::new(
                400,
                format!("a parameter name {problem}"),
            ));
            continue;
        }
        let kind = if name == "description" || name.starts_with("attribute[") {
            TextKind::FreeText
        } else {
            TextKind::Line
        };
        for v in values {
            if let Some(problem) = text_problem(v, kind) {
                errors.push(Open311Error::new(400, format!("{name} {problem}")));
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let single = |name: &str, errors: &mut Vec<Open311Error>| -> Option<String> {
        match fields.get(name).map(Vec::as_slice) {
            None => None,
            Some([one]) => Some(one.trim().to_owned()),
            Some(_) => {
                errors.push(Open311Error::new(
                    400,
                    format!("{name} was given more than once"),
                ));
                None
            }
        }
    };

    if let (Some(expected), Some(given)) =
        (ctx.jurisdiction_id, single("jurisdiction_id", &mut errors))
    {
        if given != expected {
            errors.push(Open311Error::new(
                404,
                format!(
                    "jurisdiction_id `{given}` was not found; this endpoint serves `{expected}`"
                ),
            ));
        }
    }

    let service = match single("service_code", &mut errors) {
        None => {
            errors.push(Open311Error::new(400, "service_code was not provided"));
            None
        }
        Some(code) => match ctx.catalog.service(&code) {
            Some(s) => Some(s),
            None => {
                errors.push(Open311Error::new(
                    404,
                    format!("service_code `{code}` was not found"),
                ));
                None
            }
        },
    };

    let lat = single("lat", &mut errors);
    let long = single("long", &mut errors);
    let number = |name: &str, text: &str, limit: f64, errors: &mut Vec<Open311Error>| match text
        .parse::<f64>()
    {
        Ok(v) if v.is_finite() && v.abs() <= limit => Some(v),
        _ => {
            errors.push(Open311Error::new(
                400,
                format!("{name}: `{text}` is not a {name} between -{limit} and {limit}"),
            ));
            None
        }
    };
    let lat_long = match (lat, long) {
        (Some(lat), Some(long)) => {
            match (
                number("lat", &lat, 90.0, &mut errors),
                number("long", &long, 180.0, &mut errors),
            ) {
                (Some(lat), Some(long)) => Some((lat, long)),
                _ => None,
            }
        }
        (Some(_), None) => {
            errors.push(Open311Error::new(
                400,
                "long is missing while lat is given; send both",
            ));
            None
        }
        (None, Some(_)) => {
            errors.push(Open311Error::new(
                400,
                "lat is missing while long is given; send both",
            ));
            None
        }
        (None, None) => None,
    };
    let address_string = single("address_string", &mut errors);
    let address_id = single("address_id", &mut errors);
    let had_coordinates = fields.contains_key("lat") || fields.contains_key("long");
    if lat_long.is_none() && address_string.is_none() && address_id.is_none() && !had_coordinates {
        errors.push(Open311Error::new(
            400,
            "a location is required: lat and long, address_string or address_id",
        ));
    }

    let email = single("email", &mut errors);
    if let Some(e) = &email {
        let ok = e
            .split_once('@')
            .is_some_and(|(u, d)| !u.is_empty() && d.contains('.') && !d.starts_with('.'));
        if !ok {
            errors.push(Open311Error::new(400, "email is not an e-mail address"));
        }
    }
    let media_url = single("media_url", &mut errors);
    if let Some(u) = &media_url {
        if !(u.starts_with("http://") || u.starts_with("https://"))
            || u.contains(char::is_whitespace)
        {
            errors.push(Open311Error::new(
                400,
                "media_url must be an http:// or https:// URL",
            ));
        }
    }
    let description = single("description", &mut errors);
    if let Some(d) = &description {
        if d.chars().count() > MAX_DESCRIPTION_CHARS {
            errors.push(Open311Error::new(
                400,
                format!("description is longer than {MAX_DESCRIPTION_CHARS} characters"),
            ));
        }
    }
    let text_field = |name: &str, errors: &mut Vec<Open311Error>| {
        let v = single(name, errors);
        if v.as_ref()
            .is_some_and(|v| v.chars().count() > MAX_FIELD_CHARS)
        {
            errors.push(Open311Error::new(
                400,
                format!("{name} is longer than {MAX_FIELD_CHARS} characters"),
            ));
        }
        v
    };
    let device_id = text_field("device_id", &mut errors);
    let account_id = text_field("account_id", &mut errors);
    let first_name = text_field("first_name", &mut errors);
    let last_name = text_field("last_name", &mut errors);
    // The event carries the full name as one line of text.
    if let (Some(f), Some(l)) = (first_name.as_deref(), last_name.as_deref()) {
        let name = full_name(Some(f), Some(l)).unwrap_or_default();
        if name.chars().count() > MAX_LINE_CHARS {
            errors.push(Open311Error::new(
                400,
                format!(
                    "first_name and last_name together are longer than {MAX_LINE_CHARS} characters"
                ),
            ));
        }
    }
    let phone = text_field("phone", &mut errors);
    if let Some(p) = &phone {
        if !p.chars().all(|c| c.is_ascii_digit() || "+-() ".contains(c)) {
            errors.push(Open311Error::new(
                400,
                "phone may hold only digits, spaces and + - ( )",
            ));
        }
    }

    let attributes = service
        .map(|s| check_attributes(s, &fields, &ctx, &mut errors))
        .unwrap_or_default();

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(PostRequest {
        api_key,
        service_code: service.map(|s| s.service_code.clone()).unwrap_or_default(),
        location: RequestLocation {
            lat_long,
            address_string,
            address_id,
        },
        attributes,
        email,
        device_id,
        account_id,
        first_name,
        last_name,
        phone,
        description,
        media_url,
    })
}

/// Whether every name and value of a form body is UTF-8 once `+` and `%XX` are decoded
/// (what `form_urlencoded::parse` does before it replaces invalid sequences with U+FFFD).
fn form_is_utf8(body: &[u8]) -> bool {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let mut decoded = Vec::new();
    body.split(|b| *b == b'&').all(|pair| {
        pair.splitn(2, |b| *b == b'=').all(|part| {
            decoded.clear();
            let mut i = 0;
            while i < part.len() {
                match (
                    part[i],
                    part.get(i + 1).copied().and_then(hex),
                    part.get(i + 2).copied().and_then(hex),
                ) {
                    (b'%', Some(hi), Some(lo)) => {
                        decoded.push(hi * 16 + lo);
                        i += 3;
                    }
                    (b'+', ..) => {
                        decoded.push(b' ');
                        i += 1;
                    }
                    (b, ..) => {
                        decoded.push(b);
                        i += 1;
                    }
                }
            }
            std::str::from_utf8(&decoded).is_ok()
        })
    })
}

/// `attribute[code]=v` and `attribute[code][]=v` against the service definition.
fn check_attributes(
    service: &Service,
    fields: &BTreeMap<String, Vec<String>>,
    ctx: &PostContext<'_>,
    errors: &mut Vec<Open311Error>,
) -> BTreeMap<String, Vec<String>> {
    let mut given: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, values) in fields {
        let Some(inner) = key.strip_prefix("attribute[") else {
            continue;
        };
        let (code, multi) = match inner.strip_suffix("][]") {
            Some(code) => (code, true),
            None => match inner.strip_suffix(']') {
                Some(code) => (code, false),
                None => {
                    errors.push(Open311Error::new(
                        400,
                        format!("`{key}` is not of the form attribute[code]"),
                    ));
                    continue;
                }
            },
        };
        let Some(def) = service.attribute(code) else {
            errors.push(Open311Error::new(
                400,
                format!(
                    "attribute[{code}] is not an attribute of service {}",
                    service.service_code
                ),
            ));
            continue;
        };
        if !def.variable {
            errors.push(Open311Error::new(
                400,
                format!("attribute[{code}] takes no input"),
            ));
            continue;
        }
        if multi && def.datatype != Datatype::Multivaluelist {
            errors.push(Open311Error::new(
                400,
                format!(
                    "attribute[{code}][] is only for a multivaluelist; {code} is a {}",
                    def.datatype.as_str()
                ),
            ));
            continue;
        }
        given
            .entry(code.to_owned())
            .or_default()
            .extend(values.iter().map(|v| v.trim().to_owned()));
    }
    for def in service.ordered_attributes() {
        let values = given.get(&def.code);
        let code = &def.code;
        match values {
            None if def.required => errors.push(Open311Error::new(
                400,
                format!("attribute[{code}] is required: {}", def.description),
            )),
            None => {}
            Some(values) => {
                if def.datatype != Datatype::Multivaluelist && values.len() > 1 {
                    errors.push(Open311Error::new(
                        400,
                        format!("attribute[{code}] takes one value"),
                    ));
                    continue;
                }
                for v in values {
                    let problem = match def.datatype {
                        Datatype::Number => v.parse::<f64>().ok().filter(|n| n.is_finite()).is_none().then(|| format!("`{v}` is not a number")),
                        Datatype::Datetime => match DateTime::parse_from_rfc3339(v) {
                            Err(_) => Some(format!("`{v}` is not an ISO 8601 date and time with an offset, e.g. 2026-11-21T10:23:00+08:00")),
                            Ok(t) => ctx.limits.time_problem(t.with_timezone(&Utc), ctx.now),
                        },
                        Datatype::String => v.contains(['\n', '\r']).then(|| "must be one line".to_owned()),
                        Datatype::Text => None,
                        Datatype::Singlevaluelist | Datatype::Multivaluelist => (!def.values.iter().any(|o| &o.key == v)).then(|| {
                            let keys: Vec<&str> = def.values.iter().map(|o| o.key.as_str()).collect();
                            format!("`{v}` is not one of {}", keys.join(", "))
                        }),
                    };
                    if let Some(problem) = problem {
                        errors.push(Open311Error::new(
                            400,
                            format!("attribute[{code}]: {problem}"),
                        ));
                    }
                }
            }
        }
    }
    given
}

/// The accepted request as a civic event of the residents' department.
///
/// `service_request_id` is the id the hub answers with (the event's source id); `body` is
/// the posted form, referenced by digest only (it holds the api key and personal data).
/// Coordinates are converted from the client's `datum` to GCJ-02, the city's datum.
pub fn to_event(
    request: &PostRequest,
    service: &Service,
    service_request_id: &str,
    datum: Datum,
    ctx: MappingContext<'_>,
    body: &[u8],
) -> CivicEvent {
    let point = request.location.lat_long.map(|(lat, long)| {
        let (lon, lat) = match datum {
            Datum::Wgs84 => wgs84_to_gcj02(long, lat),
            Datum::Gcj02 => (long, lat),
        };
        GeoPoint { lon, lat }
    });
    let mut attributes = BTreeMap::new();
    for (code, values) in &request.attributes {
        attributes.insert(format!("attribute.{code}"), values.join(","));
    }
    if let Some(id) = &request.location.address_id {
        attributes.insert("address_id".into(), id.clone());
    }
    if let Some(url) = &request.media_url {
        attributes.insert("media_url".into(), url.clone());
    }
    if let Some(p) = request.location.lat_long {
        // As posted, so GET requests can answer in the client's own coordinates.
        attributes.insert("posted_lat_long".into(), format!("{},{}", p.0, p.1));
    }
    let name = full_name(request.first_name.as_deref(), request.last_name.as_deref());
    let reporter = (name.is_some() || request.phone.is_some()).then(|| Reporter {
        name: name.map(PersonalData::new),
        phone: request.phone.clone().map(PersonalData::new),
        id_number: None,
    });
    CivicEvent {
        event_id: CivicEvent::derive_id(ctx.source_system, service_request_id),
        source_system: ctx.source_system.to_owned(),
        source_id: service_request_id.to_owned(),
        department: Department::Residents,
        category_code: service.service_code.clone(),
        category_name: Some(service.service_name.clone()),
        occurred_at: ctx.received_at,
        received_at: ctx.received_at,
        location: Location {
            point,
            address: request.location.address_string.clone(),
            grid_code: None,
        },
        description: request.description.clone().unwrap_or_default(),
        attributes,
        reporter,
        raw_ref: Some(hub_schemas::event::RawPayloadRef {
            uri: format!("open311:requests/{service_request_id}"),
            sha256: sha256_hex(body),
        }),
    }
}

/// Chinese names are family name first with no space; others given name first.
fn full_name(first: Option<&str>, last: Option<&str>) -> Option<String> {
    let cjk = |s: &str| s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
    match (first, last) {
        (None, None) => None,
        (Some(f), None) => Some(f.to_owned()),
        (None, Some(l)) => Some(l.to_owned()),
        (Some(f), Some(l)) if cjk(f) || cjk(l) => Some(format!("{l}{f}")),
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
    }
}
