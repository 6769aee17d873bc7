//! Residents' requests (12345 hotline apps, WeChat mini-programs, any Open311 client) over
//! Open311 GeoReport v2, under `/open311/v2/`:
//!
//! | method | path | |
//! | --- | --- | --- |
//! | GET | `services.{xml,json}` | the service catalogue (`config/open311/services.toml`) |
//! | GET | `services/{service_code}.{xml,json}` | a service definition: its attributes |
//! | POST | `requests.{xml,json}` | form-encoded, with `api_key`; answers the new `service_request_id` |
//! | GET | `requests.{xml,json}` | requests by id list, service code, date window and status |
//! | GET | `requests/{service_request_id}.{xml,json}` | one request |
//!
//! A path without an extension is XML, the specification's required format. Errors are the
//! specification's `errors` list with 403 (api key), 404 (unknown service, request or
//! jurisdiction) or 400 (anything else, including "the hub cannot record it now"); 429 when
//! over the configured rate limit.
//!
//! An accepted request is produced as a residents' civic event to the residents' feed topic
//! before the hub answers, so it is routed into a task like any departmental event. Its
//! `service_request_id` is the event's source id, `<service_code>-<yyyymmddHHMMSS>-<hex>`
//! (local time, UTC+8): the request's task is found by (source system, source id), and a
//! request merged into another department's task still knows its service and time.
//! `GET requests/{id}` shows the task's status (`closed` once the task is closed or
//! cancelled), its lead unit as `agency_responsible`, and `expected_datetime` when the task
//! carries a due time.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use hub_connectors::mapping::MappingContext;
use hub_connectors::open311::{
    gcj02_to_wgs84, parse_post_request, parse_requests_query, render_errors, render_post_response,
    render_requests, render_service_definition, render_services, to_event, Catalog, Datum, Format,
    Open311Error, PostContext, PostResponse, RequestStatus, ServiceRequestView,
};
use hub_connectors::rate_limit::TokenBucket;
use hub_connectors::Secret;
use hub_router::city::City;
use hub_router::task::{Task, TaskStatus};
use hub_schemas::codec::{value_subject, Codec};
use hub_schemas::event::Department;
use hub_store::{PriorOutcome, TaskFilter, TaskStore};

use crate::config::Open311Config;
use crate::context::health::{BatchCounts, Health};
use crate::http::{ClientAddr, Guard, Route};
use crate::infra::kafka::Kafka;
use crate::infra::telemetry;
use crate::pipeline::ingest::partition_key;

/// How long a posted request that has no task yet (it is being routed) is shown as `open`.
const PENDING_FOR: Duration = Duration::from_secs(3600);
/// How long a post waits for the broker before answering "try again".
const PRODUCE_TIMEOUT: Duration = Duration::from_secs(20);

/// Everything the endpoint needs; cheap to clone.
#[derive(Clone)]
pub struct Open311State {
    inner: Arc<Inner>,
}

struct Inner {
    catalog: Catalog,
    api_keys: Vec<Secret>,
    jurisdiction_id: Option<String>,
    datum: Datum,
    source_system: String,
    service_notice: Option<String>,
    feed_topic: String,
    limiter: Option<Mutex<TokenBucket>>,
    kafka: Kafka,
    codec: Arc<Codec>,
    city: Arc<City>,
    store: Arc<dyn TaskStore>,
    health: Arc<Health>,
    /// For `expected_datetime`: the task's earliest open SLA deadline.
    cases: Arc<crate::cases::service::CaseService>,
    limits: hub_schemas::limits::InputLimits,
    /// Whether reads show other residents' descriptions, addresses and exact points.
    public_details: bool,
    readers: ReadLimiter,
}

/// Reads per client address: a token bucket each, so one scraper cannot take the endpoint
/// (or the store behind it) from everyone else.
struct ReadLimiter {
    per_second: f64,
    burst: u32,
    buckets: Mutex<std::collections::HashMap<std::net::IpAddr, TokenBucket>>,
}

impl ReadLimiter {
    /// Addresses remembered at most; the map is emptied when full (a fresh bucket is full).
    const CAPACITY: usize = 10_000;

    /// How long `ip` must wait, if it is over its rate.
    fn check(&self, ip: Option<std::net::IpAddr>) -> Option<Duration> {
        let ip = ip?;
        let mut buckets = self.buckets.lock().expect("read limiter lock");
        if buckets.len() >= Self::CAPACITY && !buckets.contains_key(&ip) {
            buckets.clear();
        }
        let bucket = match buckets.entry(ip) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(TokenBucket::new(self.per_second, self.burst).ok()?)
            }
        };
        bucket.try_acquire(Instant::now()).err()
    }
}

impl Open311State {
    /// `api_keys`: the value of the configured variable, comma-separated (None: no client may
    /// post).
    pub fn new(
        config: &Open311Config,
        catalog: Catalog,
        api_keys: Option<String>,
        feed_topic: String,
        handles: crate::pipeline::ingest::Handles,
        cases: Arc<crate::cases::service::CaseService>,
    ) -> Self {
        let crate::pipeline::ingest::Handles {
            kafka,
            codec,
            store,
            city,
            health,
            limits,
        } = handles;
        let api_keys: Vec<Secret> = api_keys
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(Secret::new)
            .collect();
        if api_keys.is_empty() {
            tracing::warn!(
                variable = config
                    .api_keys_env
                    .as_deref()
                    .unwrap_or("(none configured)"),
                "Open311: no api keys are set, so every POST requests is refused with 403"
            );
        }
        health.register(&config.source_system, "open311");
        Open311State {
            inner: Arc::new(Inner {
                catalog,
                api_keys,
                jurisdiction_id: config.jurisdiction_id.clone(),
                datum: config.datum,
                source_system: config.source_system.clone(),
                service_notice: config.service_notice.clone(),
                feed_topic,
                limiter: config
                    .rate_limit
                    .and_then(|r| TokenBucket::new(r.per_second, r.burst).ok())
                    .map(Mutex::new),
                kafka,
                codec,
                city,
                store,
                health,
                cases,
                limits,
                public_details: config.public_details,
                readers: ReadLimiter {
                    per_second: config.read_rate_limit.per_second,
                    burst: config.read_rate_limit.burst,
                    buckets: Mutex::new(Default::default()),
                },
            }),
        }
    }
}

/// Reads are open (GeoReport v2 has them so) but rate-limited per client address; posts
/// need an api key. Bodies are small forms: anything over [`MAX_POST_BYTES`] is refused.
pub fn routes(state: Open311State) -> Vec<Route> {
    let s = state;
    vec![
        Route::new(
            Method::GET,
            "/open311/v2/{resource}",
            Guard::Open,
            get(get_resource).with_state(s.clone()),
        ),
        Route::new(
            Method::POST,
            "/open311/v2/{resource}",
            Guard::ApiKey,
            post(post_resource)
                .layer(DefaultBodyLimit::max(MAX_POST_BYTES))
                .with_state(s.clone()),
        ),
        Route::new(
            Method::GET,
            "/open311/v2/services/{code}",
            Guard::Open,
            get(get_service).with_state(s.clone()),
        ),
        Route::new(
            Method::GET,
            "/open311/v2/requests/{id}",
            Guard::Open,
            get(get_request).with_state(s),
        ),
    ]
}

/// The largest form a post may be (a description of 4,000 characters is 36 KB encoded).
pub const MAX_POST_BYTES: usize = 64 * 1024;

/// A response in `format` with the specification's content type.
fn reply(status: u16, format: Format, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, [("content-type", format.content_type())], body).into_response()
}

fn errors(format: Format, errors: &[Open311Error]) -> Response {
    reply(
        Open311Error::status_for(errors),
        format,
        render_errors(errors, format),
    )
}

fn count(operation: &'static str, response: Response) -> Response {
    metrics::counter!(telemetry::OPEN311_REQUESTS, "operation" => operation, "status" => response.status().as_u16().to_string()).increment(1);
    response
}

/// Split `name.ext`; an unknown extension is answered in XML.
fn split(segment: &str) -> Result<(&str, Format), Box<Response>> {
    Format::split(segment).map_err(|e| Box::new(errors(Format::Xml, &[e])))
}

fn query_value(query: &Option<String>, key: &str) -> Option<String> {
    form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes())
        .find(|(k, v)| k == key && !v.trim().is_empty())
        .map(|(_, v)| v.into_owned())
}

impl Inner {
    /// 404 when the client names another jurisdiction.
    fn check_jurisdiction(&self, query: &Option<String>) -> Result<(), Open311Error> {
        match (
            self.jurisdiction_id.as_deref(),
            query_value(query, "jurisdiction_id"),
        ) {
            (Some(expected), Some(given)) if given.trim() != expected => Err(Open311Error::new(
                404,
                format!(
                    "jurisdiction_id `{given}` was not found; this endpoint serves `{expected}`"
                ),
            )),
            _ => Ok(()),
        }
    }
}

type Client = ClientAddr;

/// 429 in the asked format when the client reads too fast.
fn over_read_rate(s: &Open311State, client: &Client, format: Format) -> Option<Response> {
    let wait = s.inner.readers.check(client.0)?;
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut r = errors(
        format,
        &[Open311Error::new(
            429,
            format!("too many requests; try again in {secs} s"),
        )],
    );
    r.headers_mut().insert("retry-after", secs.into());
    Some(r)
}

#[utoipa::path(get, path = "/open311/v2/{resource}", tag = "open311", params(("resource" = String, Path, description = "`services.json`, `services.xml`, `requests.json` or `requests.xml`")), responses((status = 200, description = "The service catalogue, or requests by id list, service, date window and status (GeoReport v2)"), (status = 400, description = "The specification's errors list"), (status = 404, description = "Unknown resource or jurisdiction"), (status = 429, description = "Reading too fast")))]
pub(crate) async fn get_resource(
    State(s): State<Open311State>,
    client: Client,
    Path(resource): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let (name, format) = match split(&resource) {
        Ok(x) => x,
        Err(r) => return count("unknown", *r),
    };
    if let Some(r) = over_read_rate(&s, &client, format) {
        return count("throttled", r);
    }
    match name {
        "services" => count("services", services(&s, format, &query)),
        "requests" => count("get_requests", list_requests(&s, format, &query).await),
        _ => count(
            "unknown",
            errors(
                format,
                &[Open311Error::new(
                    404,
                    format!("`{name}` is not a GeoReport v2 resource; try services or requests"),
                )],
            ),
        ),
    }
}

#[utoipa::path(post, path = "/open311/v2/{resource}", tag = "open311", params(("resource" = String, Path, description = "`requests.json` or `requests.xml`")), request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "GeoReport v2 form with `api_key`, `service_code`, a location and `attribute[code]` fields"), responses((status = 200, description = "The new service_request_id"), (status = 400, description = "Every problem found, each naming its field"), (status = 403, description = "Missing or wrong api_key"), (status = 404, description = "Unknown service"), (status = 413, description = "Over 64 KB"), (status = 429, description = "Over the rate limit")))]
pub(crate) async fn post_resource(
    State(s): State<Open311State>,
    Path(resource): Path<String>,
    body: Bytes,
) -> Response {
    let (name, format) = match split(&resource) {
        Ok(x) => x,
        Err(r) => return count("post", *r),
    };
    if name != "requests" {
        return count(
            "post",
            errors(
                format,
                &[Open311Error::new(
                    404,
                    format!("`{name}` does not take POST; post to requests.{{xml,json}}"),
                )],
            ),
        );
    }
    count("post", post_request(&s, format, &body).await)
}

fn services(s: &Open311State, format: Format, query: &Option<String>) -> Response {
    if let Err(e) = s.inner.check_jurisdiction(query) {
        return errors(format, &[e]);
    }
    reply(
        200,
        format,
        render_services(&s.inner.catalog.services, format),
    )
}

#[utoipa::path(get, path = "/open311/v2/services/{code}", tag = "open311", params(("code" = String, Path, description = "`<service_code>.json` or `.xml`")), responses((status = 200, description = "The service definition: its attributes"), (status = 404, description = "Unknown service"), (status = 429, description = "Reading too fast")))]
pub(crate) async fn get_service(
    State(s): State<Open311State>,
    client: Client,
    Path(segment): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let (code, format) = match split(&segment) {
        Ok(x) => x,
        Err(r) => return count("service_definition", *r),
    };
    if let Some(r) = over_read_rate(&s, &client, format) {
        return count("throttled", r);
    }
    if let Err(e) = s.inner.check_jurisdiction(&query) {
        return count("service_definition", errors(format, &[e]));
    }
    let response = match s.inner.catalog.service(code) {
        Some(service) => reply(200, format, render_service_definition(service, format)),
        None => errors(
            format,
            &[Open311Error::new(
                404,
                format!("service_code `{code}` was not found"),
            )],
        ),
    };
    count("service_definition", response)
}

async fn post_request(s: &Open311State, format: Format, body: &[u8]) -> Response {
    let inner = &s.inner;
    let ctx = PostContext {
        catalog: &inner.catalog,
        api_keys: &inner.api_keys,
        jurisdiction_id: inner.jurisdiction_id.as_deref(),
        limits: inner.limits,
        now: Utc::now(),
    };
    let request = match parse_post_request(body, ctx) {
        Ok(r) => r,
        Err(list) => return errors(format, &list),
    };
    if let Some(limiter) = &inner.limiter {
        let acquired = limiter
            .lock()
            .expect("limiter lock")
            .try_acquire(Instant::now());
        if let Err(wait) = acquired {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            let mut r = reply(
                429,
                format,
                render_errors(
                    &[Open311Error::new(
                        429,
                        format!("too many requests; try again in {secs} s"),
                    )],
                    format,
                ),
            );
            r.headers_mut().insert("retry-after", secs.into());
            return r;
        }
    }
    let Some(service) = inner.catalog.service(&request.service_code) else {
        return errors(
            format,
            &[Open311Error::new(404, "service_code was not found")],
        );
    };
    let now = Utc::now();
    let id = new_request_id(&service.service_code, now);
    let event = to_event(
        &request,
        service,
        &id,
        inner.datum,
        MappingContext {
            source_system: &inner.source_system,
            received_at: now,
            limits: inner.limits,
        },
        body,
    );
    let produced = async {
        let payload = inner
            .codec
            .encode(&value_subject(&inner.feed_topic), &event)
            .await
            .map_err(|e| format!("encoding: {e}"))?;
        let key = partition_key(&inner.city, &event);
        inner
            .kafka
            .produce(
                &inner.feed_topic,
                &key,
                &payload,
                &[("hub.event_id", event.event_id.as_bytes())],
            )
            .await
            .map_err(|e| format!("producing to Kafka: {e}"))
    };
    let produced = match tokio::time::timeout(PRODUCE_TIMEOUT, produced).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "Kafka did not acknowledge within {} s",
            PRODUCE_TIMEOUT.as_secs()
        )),
    };
    if let Err(e) = produced {
        inner.health.failure(
            &inner.source_system,
            &format!("a posted request was not recorded: {e}"),
            false,
        );
        tracing::warn!(error = %e, "Open311: a posted request was not recorded");
        // The specification: 400 for a general service error ("eg CRM is down").
        return errors(
            format,
            &[Open311Error::new(
                400,
                "the request could not be recorded right now; please try again in a minute",
            )],
        );
    }
    inner.health.batch(
        &inner.source_system,
        BatchCounts {
            received: 1,
            produced: 1,
            ..BatchCounts::default()
        },
    );
    metrics::counter!(telemetry::CONNECTOR_RECORDS, "connector" => inner.source_system.clone(), "outcome" => "produced").increment(1);
    tracing::info!(service_request_id = %id, event_id = %event.event_id, service_code = %service.service_code, "Open311 request accepted");
    reply(
        200,
        format,
        render_post_response(
            &[PostResponse {
                service_request_id: id,
                service_notice: inner.service_notice.clone(),
                account_id: request.account_id.clone(),
            }],
            format,
        ),
    )
}

#[utoipa::path(get, path = "/open311/v2/requests/{id}", tag = "open311", params(("id" = String, Path, description = "`<service_request_id>.json` or `.xml`")), responses((status = 200, description = "The request: status, agency responsible, expected_datetime"), (status = 404, description = "Unknown request"), (status = 429, description = "Reading too fast")))]
pub(crate) async fn get_request(
    State(s): State<Open311State>,
    client: Client,
    Path(segment): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let (id, format) = match split(&segment) {
        Ok(x) => x,
        Err(r) => return count("get_request", *r),
    };
    if let Some(r) = over_read_rate(&s, &client, format) {
        return count("throttled", r);
    }
    if let Err(e) = s.inner.check_jurisdiction(&query) {
        return count("get_request", errors(format, &[e]));
    }
    let response = match view_of(&s.inner, id).await {
        Ok(Some(view)) => reply(200, format, render_requests(&[view], format)),
        Ok(None) => errors(
            format,
            &[Open311Error::new(
                404,
                format!("service_request_id `{id}` was not found"),
            )],
        ),
        Err(e) => errors(format, &[e]),
    };
    count("get_request", response)
}

async fn list_requests(s: &Open311State, format: Format, query: &Option<String>) -> Response {
    let inner = &s.inner;
    let q = match parse_requests_query(
        query.as_deref().unwrap_or_default(),
        Utc::now(),
        inner.jurisdiction_id.as_deref(),
    ) {
        Ok(q) => q,
        Err(list) => return errors(format, &list),
    };
    let mut views = Vec::new();
    if !q.service_request_ids.is_empty() {
        // The specification: an id list overrides every other argument.
        for id in q.service_request_ids.iter().take(q.limit) {
            match view_of(inner, id).await {
                Ok(Some(v)) => views.push(v),
                Ok(None) => {}
                Err(e) => return errors(format, &[e]),
            }
        }
        return reply(200, format, render_requests(&views, format));
    }
    let mut offset = 0u32;
    'pages: loop {
        let page = match inner
            .store
            .list_tasks(&TaskFilter {
                department: Some(Department::Residents),
                limit: TaskFilter::MAX_LIMIT,
                offset,
                ..TaskFilter::default()
            })
            .await
        {
            Ok(p) => p,
            Err(e) => return errors(format, &[store_error(e)]),
        };
        let n = page.len() as u32;
        for task in page {
            let t = &task.fields;
            if t.source_system != inner.source_system {
                continue;
            }
            // Newest first: past the window's start, nothing older can match.
            if t.received_at < q.start {
                break 'pages;
            }
            if t.received_at > q.end {
                continue;
            }
            let Some((code, _)) = parse_request_id(&t.source_id) else {
                continue;
            };
            if !q.service_codes.is_empty() && !q.service_codes.iter().any(|c| c == code) {
                continue;
            }
            let view = match inner.view_with_due(&t.source_id, &task).await {
                Ok(v) => v,
                Err(e) => return errors(format, &[e]),
            };
            if !q.statuses.is_empty() && !q.statuses.contains(&view.status) {
                continue;
            }
            views.push(view);
            if views.len() >= q.limit {
                break 'pages;
            }
        }
        if n < TaskFilter::MAX_LIMIT {
            break;
        }
        offset += n;
    }
    reply(200, format, render_requests(&views, format))
}

fn store_error(e: hub_store::StoreError) -> Open311Error {
    tracing::error!(error = %e, "Open311: the task store failed");
    Open311Error::new(
        400,
        "the request status cannot be read right now; please try again in a minute",
    )
}

/// One request as the client sees it, from its task (or as pending while it is routed).
async fn view_of(inner: &Inner, id: &str) -> Result<Option<ServiceRequestView>, Open311Error> {
    let Some((code, requested)) = parse_request_id(id) else {
        return Ok(None);
    };
    let Some(service) = inner.catalog.service(code) else {
        return Ok(None);
    };
    let prior = inner
        .store
        .prior_outcome(&inner.source_system, id)
        .await
        .map_err(store_error)?;
    let base = ServiceRequestView {
        service_request_id: id.to_owned(),
        status: RequestStatus::Open,
        status_notes: None,
        service_name: Some(service.service_name.clone()),
        service_code: service.service_code.clone(),
        description: None,
        agency_responsible: None,
        service_notice: inner.service_notice.clone(),
        requested_datetime: local(requested),
        updated_datetime: None,
        expected_datetime: None,
        address: None,
        address_id: None,
        zipcode: None,
        lat_long: None,
        media_url: None,
    };
    match prior {
        Some(PriorOutcome::Task { task_id }) => {
            match inner.store.get_task(&task_id).await.map_err(store_error)? {
                Some(task) => Ok(Some(inner.view_with_due(id, &task).await?)),
                None => Ok(Some(base)),
            }
        }
        Some(PriorOutcome::Suppressed) => Ok(Some(ServiceRequestView {
            status: RequestStatus::Closed,
            status_notes: Some("已受理，无需派单（received; no task was needed）".into()),
            ..base
        })),
        Some(PriorOutcome::Returned) => Ok(Some(ServiceRequestView {
            status_notes: Some(
                "已退回热线重新分派（the community did not take it; the hotline reassigns it）"
                    .into(),
            ),
            ..base
        })),
        None if Utc::now() - requested
            < chrono::Duration::from_std(PENDING_FOR).expect("an hour fits") =>
        {
            Ok(Some(ServiceRequestView {
                status_notes: Some("已受理，正在分派（received; being assigned）".into()),
                ..base
            }))
        }
        None => Ok(None),
    }
}

impl Inner {
    /// [`Inner::view_from_task`] with `expected_datetime`: the earliest open SLA deadline
    /// of the task while it is open. The list and the single read both answer through here,
    /// so they agree.
    async fn view_with_due(
        &self,
        id: &str,
        task: &Task,
    ) -> Result<ServiceRequestView, Open311Error> {
        let mut view = self.view_from_task(id, task);
        if !matches!(view.status, RequestStatus::Closed) {
            let due = self
                .cases
                .current(&task.fields.task_id)
                .await
                .map_err(store_error)?
                .and_then(|c| c.due_at);
            view.expected_datetime = due.map(local);
        }
        Ok(view)
    }

    /// The request `id` as its task shows it. A request merged into a task created from
    /// another report keeps its own service and time, and says so in `status_notes`.
    fn view_from_task(&self, id: &str, task: &Task) -> ServiceRequestView {
        let t = &task.fields;
        let own = t.source_system == self.source_system && t.source_id == id;
        let (code, requested) = parse_request_id(id).unwrap_or(("", t.received_at));
        let service = self.catalog.service(code);
        let closed = matches!(task.status, TaskStatus::Closed | TaskStatus::Cancelled);
        let mut notes = status_note(task.status).to_owned();
        if !own {
            notes = format!("{notes}; merged with an earlier report of the same problem");
        }
        // Residents' words and exact whereabouts are theirs: the public reads show them
        // only when the operator turned `public_details` on; otherwise the point is
        // rounded to about 100 m and the description and address are left out.
        let details = own && self.public_details;
        let lat_long = t.location.point.filter(|_| own).map(|p| {
            let (lat, lon) = match self.datum {
                Datum::Wgs84 => {
                    let (lon, lat) = gcj02_to_wgs84(p.lon, p.lat);
                    (lat, lon)
                }
                Datum::Gcj02 => (p.lat, p.lon),
            };
            if details {
                (round7(lat), round7(lon))
            } else {
                (round3(lat), round3(lon))
            }
        });
        ServiceRequestView {
            service_request_id: id.to_owned(),
            status: if closed {
                RequestStatus::Closed
            } else {
                RequestStatus::Open
            },
            status_notes: Some(notes),
            service_name: service.map(|s| s.service_name.clone()),
            service_code: if code.is_empty() {
                t.category_code.clone()
            } else {
                code.to_owned()
            },
            description: details
                .then(|| t.description.clone())
                .filter(|d| !d.is_empty()),
            agency_responsible: t.lead_unit.as_ref().map(|u| u.name.clone()),
            service_notice: self.service_notice.clone(),
            requested_datetime: local(if own { t.received_at } else { requested }),
            updated_datetime: Some(local(task.updated_at)),
            expected_datetime: None,
            address: t.location.address.clone().filter(|_| details),
            address_id: None,
            zipcode: None,
            lat_long,
            media_url: None,
        }
    }
}

fn round7(v: f64) -> f64 {
    (v * 1e7).round() / 1e7
}

/// Three decimals: about 110 m north-south, enough to show the neighbourhood.
fn round3(v: f64) -> f64 {
    (v * 1e3).round() / 1e3
}

fn status_note(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Created => "已立案，待分派（created; awaiting assignment）",
        TaskStatus::Dispatched => "已派遣（dispatched to the responsible unit）",
        TaskStatus::SignedFor => "已签收（accepted by the responsible unit）",
        TaskStatus::InProgress => "处置中（being handled）",
        TaskStatus::Resolved => "已处置，待核查（handled; awaiting verification）",
        TaskStatus::Verified => "已核查（verified）",
        TaskStatus::Closed => "已结案（closed）",
        TaskStatus::Cancelled => "已注销（cancelled）",
        TaskStatus::Returned => "已回退，待上级协调（returned; awaiting the level above）",
    }
}

fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

fn local(t: DateTime<Utc>) -> DateTime<FixedOffset> {
    t.with_timezone(&china())
}

/// `<service_code>-<yyyymmddHHMMSS>-<4 hex>`, the time local (UTC+8).
pub fn new_request_id(service_code: &str, at: DateTime<Utc>) -> String {
    format!(
        "{service_code}-{}-{:04x}",
        local(at).format("%Y%m%d%H%M%S"),
        rand::random::<u16>()
    )
}

/// The service code and request time a request id carries.
pub fn parse_request_id(id: &str) -> Option<(&str, DateTime<Utc>)> {
    let mut parts = id.rsplitn(3, '-');
    let suffix = parts.next()?;
    let time = parts.next()?;
    let code = parts.next()?;
    if suffix.len() != 4 || !suffix.bytes().all(|b| b.is_ascii_hexdigit()) || code.is_empty() {
        return None;
    }
    let naive = NaiveDateTime::parse_from_str(time, "%Y%m%d%H%M%S").ok()?;
    let at = china().from_local_datetime(&naive).single()?;
    Some((code, at.with_timezone(&Utc)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_carry_the_service_and_time_and_parse_back() {
        let at = Utc.with_ymd_and_hms(2026, 11, 21, 2, 23, 0).unwrap();
        let id = new_request_id("street-light", at);
        assert!(id.starts_with("street-light-20261121102300-"), "{id}");
        assert_eq!(parse_request_id(&id), Some(("street-light", at)));
        assert_eq!(parse_request_id("638344"), None);
        assert_eq!(parse_request_id("noise-2026-abcd"), None);
        assert_eq!(parse_request_id("noise-20261121102300-xyz1"), None);
    }

    #[test]
    fn the_shipped_catalogue_offers_exactly_the_taxonomy_residents_codes() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let text = std::fs::read_to_string(root.join("config/open311/services.toml")).unwrap();
        let file: Catalog = toml::from_str(&text).unwrap();
        let catalog = Catalog::new(file.services).unwrap();
        let taxonomy: toml::Table = std::fs::read_to_string(root.join("config/taxonomy.toml"))
            .unwrap()
            .parse()
            .unwrap();
        let residents = taxonomy["departments"]["residents"].as_table().unwrap();
        let offered: std::collections::BTreeSet<&str> = catalog
            .services
            .iter()
            .map(|s| s.service_code.as_str())
            .collect();
        let mapped: std::collections::BTreeSet<&str> =
            residents.keys().map(String::as_str).collect();
        assert_eq!(
            offered, mapped,
            "config/open311/services.toml vs config/taxonomy.toml"
        );
        for s in &catalog.services {
            assert!(
                parse_request_id(&new_request_id(&s.service_code, Utc::now())).is_some(),
                "{}",
                s.service_code
            );
        }
    }

    #[test]
    fn query_values_are_decoded() {
        let q = Some("jurisdiction_id=longmatan.gov.cn&x=%E6%B3%B8+%E5%B7%9E".to_owned());
        assert_eq!(
            query_value(&q, "jurisdiction_id").as_deref(),
            Some("longmatan.gov.cn")
        );
        assert_eq!(query_value(&q, "x").as_deref(), Some("泸 州"));
        assert_eq!(query_value(&q, "y"), None);
    }
}
