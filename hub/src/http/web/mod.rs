//! The web console at `/`: server-rendered pages (askama templates in `hub/templates/web/`),
//! htmx for partial updates, the hub's own live stream for changes, every asset embedded in
//! the binary. Nothing is fetched from another host.
//!
//! Pages read exactly as the API does: the session's [`Identity`] goes through the same
//! extractors ([`TaskInScope`]), the same filter narrowing ([`Identity::narrow`]) and, for a
//! lifecycle action, the same [`console::perform`] as `POST /api/v1/tasks/{id}/actions`.
//!
//! * [`session`]: sign-in with an account token, signed session cookies, CSRF;
//! * [`views`]: what the queue and task pages show, and their templates;
//! * [`map`]: the map page and its GeoJSON; [`triage`]: the street desks' 待分派 page;
//!   [`figures`]: the indicators (考核); [`admin`]: administration (管理);
//! * [`messages`]: the message catalogue, every word the console shows (Simplified Chinese);
//! * [`assets`]: the stylesheet, the scripts and the vendored htmx and Leaflet.

pub mod admin;
pub mod assets;
pub mod figures;
pub mod map;
pub mod messages;
pub mod session;
pub mod triage;
pub mod views;

use std::collections::BTreeMap;
use std::time::Instant;

use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Extension;
use chrono::Utc;
use hub_cases::lifecycle::{Action, ActionKind, CancelReason, ReturnReason};
use hub_cases::Limit;
use hub_router::task::TaskStatus;
use hub_store::{TaskFilter, TaskOrder};
use serde_json::{json, Map, Value};

use crate::context::access::{AccessState, Identity};
use crate::http::action_trail::ActionNote;
use crate::http::auth::TaskInScope;
use crate::http::console::{self, ConsoleState};
use crate::http::{ApiError, ClientAddr, Guard, Route};
use session::{Session, SessionKey};
use views::{QueueFilters, QueuePage, QueueRows, TaskBody, TaskFacts, TaskPage};

/// What the console's pages need.
#[derive(Clone)]
pub struct WebState {
    pub console: ConsoleState,
    pub access: std::sync::Arc<AccessState>,
    pub key: SessionKey,
}

pub fn routes(state: WebState, admin: admin::AdminState) -> Vec<Route> {
    let s = state;
    let with_admin = (s.clone(), admin);
    let page = |method: Method, path: &str, guard: Guard, handler: MethodRouter| Route {
        console: true,
        ..Route::new(
            method,
            path,
            guard,
            handler.layer(axum::middleware::map_response(with_policy)),
        )
    };
    vec![
        page(Method::GET, "/", Guard::Open, get(home)),
        page(
            Method::GET,
            "/login",
            Guard::Open,
            get(login_page).with_state(s.clone()),
        ),
        // Open (it is how one signs in), and recorded: a sign-in is an action too.
        Route {
            recorded: true,
            ..page(
                Method::POST,
                "/login",
                Guard::Open,
                post(login).with_state(s.clone()),
            )
        },
        page(Method::POST, "/logout", Guard::Session, post(logout)),
        page(
            Method::GET,
            "/queue",
            Guard::Session,
            get(queue).with_state(s.clone()),
        ),
        page(
            Method::GET,
            "/queue/rows",
            Guard::Session,
            get(queue_rows).with_state(s.clone()),
        ),
        page(
            Method::POST,
            "/queue/bulk",
            Guard::Session,
            post(queue_bulk).with_state(s.clone()),
        ),
        page(
            Method::GET,
            "/tasks/{id}",
            Guard::Session,
            get(task_page).with_state(s.clone()),
        ),
        page(
            Method::POST,
            "/tasks/{id}/actions",
            Guard::Session,
            post(task_action).with_state(s.clone()),
        ),
        page(
            Method::GET,
            "/map",
            Guard::Session,
            get(map::page).with_state(s.clone()),
        ),
        page(
            Method::GET,
            "/map/areas.geojson",
            Guard::Session,
            get(map::areas_json).with_state(s.clone()),
        ),
        page(
            Method::GET,
            "/map/tasks.json",
            Guard::Session,
            get(map::tasks_json).with_state(s.clone()),
        ),
        page(
            Method::GET,
            "/figures",
            Guard::Session,
            get(figures::page).with_state(s.clone()),
        ),
        page(
            Method::GET,
            "/figures.csv",
            Guard::Session,
            get(figures::csv).with_state(s.clone()),
        ),
        page(
            Method::GET,
            "/admin",
            Guard::Session,
            get(admin::page).with_state(with_admin.clone()),
        ),
        page(
            Method::GET,
            "/admin/actions.csv",
            Guard::Session,
            get(admin::trail_csv).with_state(with_admin.clone()),
        ),
        page(
            Method::POST,
            "/admin/dry-run",
            Guard::Session,
            post(admin::dry_run).with_state(with_admin.clone()),
        ),
        page(
            Method::POST,
            "/admin/rules/activate",
            Guard::Session,
            post(admin::rules_activate).with_state(with_admin.clone()),
        ),
        page(
            Method::POST,
            "/admin/rules/replay",
            Guard::Session,
            post(admin::rules_replay).with_state(with_admin.clone()),
        ),
        page(
            Method::POST,
            "/admin/replay",
            Guard::Session,
            post(admin::replay).with_state(with_admin),
        ),
        page(
            Method::GET,
            "/triage",
            Guard::Session,
            get(triage::page).with_state(s.clone()),
        ),
        page(
            Method::GET,
            "/console/stream",
            Guard::Session,
            get(crate::http::stream::stream).with_state(s.console.clone()),
        ),
        page(
            Method::GET,
            "/assets/{*path}",
            Guard::Open,
            get(assets::serve),
        ),
    ]
}

/// Every console answer tells the browser to load nothing from anywhere but the hub, and
/// not to be framed by another site.
async fn with_policy(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    r
}

/// A page, or the plain-text error a person can read.
pub struct PageError(StatusCode, String);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        (
            self.0,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.1,
        )
            .into_response()
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        tracing::error!(error = %e, "a console template failed to render");
        PageError(
            StatusCode::INTERNAL_SERVER_ERROR,
            messages::ZH.page_failed.to_owned(),
        )
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        let message = e.1["error"].as_str().unwrap_or("").to_owned();
        let text = match e.0 {
            StatusCode::NOT_FOUND => messages::ZH.no_such_task.to_owned(),
            StatusCode::SERVICE_UNAVAILABLE => messages::ZH.store_unavailable_refresh.to_owned(),
            _ => messages::request_invalid_because(&message),
        };
        PageError(e.0, text)
    }
}

impl From<hub_store::StoreError> for PageError {
    fn from(e: hub_store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

async fn home() -> Redirect {
    Redirect::to("/queue")
}

// ------------------------------------------------------------------------------ sign-in

#[derive(serde::Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

/// Only a path of this site: never `//other.host` or `https://...`.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/queue".to_owned(),
    }
}

async fn login_page(
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
) -> Result<Html<String>, PageError> {
    let next = safe_next(q.next.as_deref());
    Ok(Html(views::LoginPage::new("", &next).render()?))
}

async fn login(
    State(s): State<WebState>,
    ClientAddr(client): ClientAddr,
    note: ActionNote,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let form: BTreeMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let token = form.get("token").map_or("", String::as_str);
    let next = safe_next(form.get("next").map(String::as_str));
    let throttle = &s.access.throttle;
    let now = Instant::now();
    let refuse = |message: &str, code: StatusCode| -> Result<Response, PageError> {
        let page = views::LoginPage::new(message, &next).render()?;
        Ok((code, Html(page)).into_response())
    };
    if client.and_then(|ip| throttle.blocked(ip, now)).is_some() {
        note.actor("", "");
        note.add("sign_in_refused", "", None, "throttled");
        return refuse(
            messages::ZH.sign_in_throttled,
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let access = s.access.current();
    let Some((digest, who)) = access.identify_with_digest(token) else {
        if let Some(ip) = client {
            throttle.failed(ip, now);
        }
        tracing::info!(client = ?client, "console sign-in with an unknown token refused");
        note.actor("", "");
        note.add("sign_in_refused", "", None, "unknown token");
        return refuse(messages::ZH.sign_in_failed, StatusCode::UNAUTHORIZED);
    };
    if let Some(ip) = client {
        throttle.succeeded(ip);
    }
    tracing::info!(account = %who.name, "signed in to the console");
    note.actor(who.name.clone(), who.role_name());
    note.add("sign_in", "", None, "");
    let cookie = session::issue(&s.key, &who.name, &digest);
    let mut r = Redirect::to(&next).into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session::set_cookie(&cookie));
    Ok(r)
}

async fn logout(note: ActionNote) -> Response {
    note.add("sign_out", "", None, "");
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session::clear_cookie());
    r.headers_mut()
        .insert("hx-redirect", HeaderValue::from_static("/login"));
    r
}

// ------------------------------------------------------------------------------ queue

/// The queue's filters from its query string. Unknown parameters are ignored (a bookmarked
/// address from an older console still opens); values are checked when the rows are read.
struct QueueQuery(QueueFilters);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for QueueQuery {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        Ok(QueueQuery(QueueFilters::from_pairs(
            pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )))
    }
}

/// Rows on one queue page.
const QUEUE_PAGE: u32 = 100;

/// The communities an account may narrow its queue to.
fn communities_of<'c>(
    city: &'c hub_router::city::City,
    who: &Identity,
) -> Vec<&'c hub_router::city::Community> {
    city.communities()
        .iter()
        .filter(|c| {
            let mut f = TaskFilter {
                community_code: Some(c.code.clone()),
                ..TaskFilter::default()
            };
            who.narrow(&mut f)
        })
        .collect()
}

/// The community the queue is about: the one chosen, or the account's only one.
fn focus<'c>(
    communities: &[&'c hub_router::city::Community],
    q: &QueueFilters,
) -> Option<&'c hub_router::city::Community> {
    match communities {
        [only] => Some(*only),
        _ => communities.iter().copied().find(|c| c.code == q.community),
    }
}

/// A community's units, then its street's, as choices.
fn units_of(
    city: &hub_router::city::City,
    community: &hub_router::city::Community,
) -> Vec<(String, String)> {
    community
        .units()
        .iter()
        .chain(city.street_of(community).units())
        .map(|u| (u.id.clone(), u.name.clone()))
        .collect()
}

async fn queue_rows_html(
    s: &WebState,
    who: &Identity,
    q: &QueueFilters,
    flash: (&str, &'static str),
) -> Result<String, PageError> {
    let bad = |m: String| PageError(StatusCode::BAD_REQUEST, m);
    let now = Utc::now();
    let (status, open_only) = match q.status.as_str() {
        "" | "open" => (None, true),
        "any" => (None, false),
        other => (
            Some(TaskStatus::parse(other).ok_or_else(|| bad(messages::unknown_status(other)))?),
            false,
        ),
    };
    let within = match q.due_within.as_str() {
        "" => None,
        w => Some(console::parse_within(w).ok_or_else(|| bad(messages::bad_due_within(w)))?),
    };
    let department = match q.department.as_str() {
        "" => None,
        d => Some(
            hub_schemas::event::Department::parse(d)
                .ok_or_else(|| bad(messages::unknown_department(d)))?,
        ),
    };
    let routing = s.console.routing.current();
    let city = routing.config().city();
    let known =
        |v: &str, ok: bool, unknown: fn(&str) -> String| -> Result<Option<String>, PageError> {
            match v {
                "" => Ok(None),
                v if ok => Ok(Some(v.to_owned())),
                v => Err(bad(unknown(v))),
            }
        };
    let category = known(
        &q.category,
        routing
            .config()
            .taxonomy()
            .majors()
            .iter()
            .any(|m| q.category.starts_with(&m.code) && q.category.len() <= 16),
        messages::unknown_category,
    )?;
    let unit = known(
        &q.unit,
        city.unit(&q.unit).is_some(),
        messages::unknown_unit,
    )?;
    let grid = known(
        &q.grid,
        city.grid(&q.grid).is_some(),
        messages::unknown_grid,
    )?;
    let mut filter = TaskFilter {
        status,
        // The open queue leaves out what is finished; a status filter shows it.
        open_only,
        department,
        community_code: Some(q.community.clone()).filter(|c| !c.is_empty()),
        category,
        unit_id: unit,
        grid_code: grid,
        breached: q.breached.then_some(true),
        at_risk_at: q.at_risk.then_some(now),
        paused: q.paused,
        due_before: within.and_then(|w| now.checked_add_signed(w)),
        order: match q.sort.as_str() {
            "newest" => TaskOrder::Newest,
            _ => TaskOrder::SoonestDue,
        },
        limit: QUEUE_PAGE,
        ..TaskFilter::default()
    };
    if !who.narrow(&mut filter) {
        return Err(PageError(
            StatusCode::FORBIDDEN,
            messages::ZH.out_of_scope.to_owned(),
        ));
    }
    let store = &s.console.cases.store;
    let total = store.count_tasks(&filter).await?;
    let tasks = store.list_tasks(&filter).await?;
    let sla = s.console.cases.sla();
    let sla = &*sla;
    let mut rows = Vec::with_capacity(tasks.len());
    for t in &tasks {
        let clocks = store.task_clocks(&t.fields.task_id).await?;
        rows.push(views::queue_row(
            t,
            views::task_countdown(&clocks, sla, now),
        ));
    }
    // Departments take their own work; dispatching is for the community and above.
    let assign_units = match focus(&communities_of(city, who), q) {
        Some(c) if !who.is_department() => units_of(city, c)
            .into_iter()
            .map(|(value, label)| views::Choice {
                value,
                label,
                selected: false,
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(QueueRows {
        t: &messages::ZH,
        rows,
        assign_units,
        total,
        flash: flash.0.to_owned(),
        flash_kind: flash.1,
    }
    .render()?)
}

async fn queue(
    State(s): State<WebState>,
    Extension(session): Extension<Session>,
    QueueQuery(q): QueueQuery,
) -> Result<Html<String>, PageError> {
    let rows = queue_rows_html(&s, &session.who, &q, ("", "ok")).await?;
    let routing = s.console.routing.current();
    let city = routing.config().city();
    // The communities the account may narrow to; units and grids are offered for one.
    let communities = communities_of(city, &session.who);
    let focus = focus(&communities, &q);
    let pairs = |it: &mut dyn Iterator<Item = (&String, &String)>| -> Vec<(String, String)> {
        it.map(|(a, b)| (a.clone(), b.clone())).collect()
    };
    let offered = views::QueueChoices {
        communities: pairs(&mut communities.iter().map(|c| (&c.code, &c.name))),
        categories: routing
            .config()
            .taxonomy()
            .majors()
            .iter()
            .map(|m| (m.code.clone(), format!("{} {}", m.code, m.name)))
            .collect(),
        units: focus.map_or_else(Vec::new, |c| units_of(city, c)),
        grids: focus.map_or_else(Vec::new, |c| {
            pairs(
                &mut city
                    .grids()
                    .iter()
                    .filter(|g| g.community_code == c.code)
                    .map(|g| (&g.code, &g.name)),
            )
        }),
    };
    let page = QueuePage::new(
        &session.who.name,
        session.who.is_admin(),
        session.csrf(&s.key),
        &q,
        &offered,
        rows,
    );
    Ok(Html(page.render()?))
}

/// The queue's rows for the filters chosen. The page's address follows the filters (replaced,
/// not pushed, so refreshes do not fill the browser's history): it can be bookmarked or sent.
async fn queue_rows(
    State(s): State<WebState>,
    Extension(session): Extension<Session>,
    QueueQuery(q): QueueQuery,
) -> Result<Response, PageError> {
    let html = queue_rows_html(&s, &session.who, &q, ("", "ok")).await?;
    let address = format!("/queue{}", q.query());
    let mut r = Html(html).into_response();
    if let Ok(v) = HeaderValue::from_str(&address) {
        r.headers_mut().insert("hx-replace-url", v);
    }
    Ok(r)
}

/// At most this many tasks in one bulk action.
const BULK_MAX: usize = 200;

/// A bulk action from the queue: 批量签收 (`sign_for`), or 批量派遣 (`assign` with
/// `assign_unit`: a task awaiting triage is dispatched, a returned one arbitrated, to that
/// unit). Each chosen task the account may see goes through the same checks as one at a
/// time; the answer is the queue's rows (its filters came along) and how many were done or
/// refused, and why.
async fn queue_bulk(
    State(s): State<WebState>,
    Extension(session): Extension<Session>,
    note: ActionNote,
    body: axum::body::Bytes,
) -> Result<Html<String>, PageError> {
    let who = &session.who;
    let (mut action, mut unit) = (None, None);
    let mut ids = Vec::new();
    // The queue's filters come along, to answer with the rows they show.
    let mut q = QueueFilters::default();
    for (k, v) in form_urlencoded::parse(&body) {
        match k.as_ref() {
            "action" => action = Some(v.into_owned()),
            "assign_unit" => unit = Some(v.into_owned()).filter(|u| !u.is_empty()),
            "task" => ids.push(v.into_owned()),
            k => {
                q.set(k, &v);
            }
        }
    }
    let (verb, unit) = match (action.as_deref(), unit) {
        (Some("sign_for"), _) => (messages::action(ActionKind::SignFor), None),
        (Some("assign"), Some(u)) => (messages::action(ActionKind::Dispatch), Some(u)),
        (Some("assign"), None) => {
            return Err(PageError(
                StatusCode::BAD_REQUEST,
                messages::ZH.bulk_choose_unit.to_owned(),
            ))
        }
        _ => {
            return Err(PageError(
                StatusCode::BAD_REQUEST,
                messages::ZH.bulk_unknown_action.to_owned(),
            ))
        }
    };
    ids.truncate(BULK_MAX);
    let (mut done, mut refused) = (0, Vec::new());
    for id in &ids {
        let short = id.chars().take(8).collect::<String>();
        let task = match s.console.cases.store.get_task(id).await? {
            Some(task) if who.may_see(&task) => task,
            _ => {
                refused.push(messages::bulk_refusal(
                    &short,
                    messages::ZH.bulk_no_such_task,
                ));
                continue;
            }
        };
        let body = match &unit {
            None => json!({"action": "sign_for"}),
            Some(unit) => {
                let units = triage::units_for(s.console.routing.current().config().city(), &task);
                if !units.iter().any(|u| &u.value == unit) {
                    refused.push(messages::bulk_refusal(
                        &short,
                        messages::ZH.bulk_unit_elsewhere,
                    ));
                    continue;
                }
                match task.status {
                    TaskStatus::Created => json!({"action": "dispatch", "unit": unit}),
                    TaskStatus::Returned => json!({"action": "arbitrate", "unit": unit}),
                    _ => {
                        refused.push(messages::bulk_refusal(
                            &short,
                            messages::ZH.bulk_already_dispatched,
                        ));
                        continue;
                    }
                }
            }
        };
        let result = console::perform(&s.console, who, id, body.clone()).await;
        note.task_action(id, &body, &result);
        match result {
            Ok(_) => done += 1,
            Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, _)) => {
                return Err(PageError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    messages::ZH.store_unavailable_retry.to_owned(),
                ))
            }
            Err(ApiError(code, _)) => refused.push(messages::bulk_refusal(
                &short,
                &if code == StatusCode::CONFLICT {
                    messages::bulk_not_now(verb)
                } else {
                    messages::bulk_not_allowed(verb)
                },
            )),
        }
    }
    let flash = if ids.is_empty() {
        messages::ZH.bulk_none_chosen.to_owned()
    } else if refused.is_empty() {
        messages::bulk_done(verb, done)
    } else {
        messages::bulk_done_in_part(verb, done, &refused)
    };
    let kind = if refused.is_empty() && !ids.is_empty() {
        "ok"
    } else {
        "error"
    };
    Ok(Html(queue_rows_html(&s, who, &q, (&flash, kind)).await?))
}

// ------------------------------------------------------------------------------ task page

/// An action of each kind that has a form, to ask the action matrix whether the account
/// may take that kind at all (`unit`: a unit the task could go to).
fn sample(kind: ActionKind, unit: &str) -> Option<Action> {
    Some(match kind {
        ActionKind::Dispatch => Action::Dispatch {
            unit: unit.to_owned(),
        },
        ActionKind::Arbitrate => Action::Arbitrate {
            unit: unit.to_owned(),
        },
        ActionKind::ReportStage => Action::ReportStage {
            stage: String::new(),
        },
        ActionKind::ApproveExtension => Action::ApproveExtension { by: None },
        ActionKind::Escalate => Action::Escalate {
            step: hub_router::city::LadderStep::Street,
        },
        ActionKind::SignFor => Action::SignFor,
        ActionKind::Start => Action::Start,
        ActionKind::Resolve => Action::Resolve {
            feedback: String::new(),
        },
        ActionKind::Verify => Action::Verify,
        ActionKind::Rework => Action::Rework {
            finding: String::new(),
        },
        ActionKind::Close => Action::Close,
        ActionKind::Return => Action::Return {
            reason: ReturnReason::Other,
        },
        ActionKind::RequestExtension => Action::RequestExtension {
            by: Limit::working_days(1),
        },
        ActionKind::RefuseExtension => Action::RefuseExtension,
        ActionKind::AwaitResident => Action::AwaitResident,
        ActionKind::ResidentResponded => Action::ResidentResponded,
        ActionKind::Callback => Action::Callback { satisfied: true },
        ActionKind::Cancel => Action::Cancel {
            reason: CancelReason::Other,
        },
        _ => return None,
    })
}

/// A joint case of the task's first two units, to ask the action matrix whether the account
/// may convene one at all (the matrix does not look at the case itself).
fn sample_case(
    cases: &crate::cases::service::CaseService,
    task: &hub_router::task::Task,
    units: &[views::Choice],
) -> hub_cases::JointCase {
    use hub_cases::joint_case::Assignment;
    let at = |i: usize| Assignment::new(&units[i].value, "sample", None);
    cases
        .convene(task, at(0), vec![at(1)], Utc::now())
        .expect("two distinct units with parts make a joint case")
}

async fn task_body(
    s: &WebState,
    who: &Identity,
    id: &str,
    flash: (&str, &'static str),
) -> Result<(views::TaskView, String), PageError> {
    let cases = &s.console.cases;
    let current = cases
        .current(id)
        .await?
        .ok_or_else(|| ApiError::no_task(id))?;
    let history = cases.store.task_history(id).await?;
    let reports = cases.store.task_reports(id).await?;
    let units = {
        let routing = s.console.routing.current();
        triage::units_for(routing.config().city(), &current.task)
    };
    let first_unit = units.first().map_or("", |u| u.value.as_str());
    let may = |a: &Action| console::may_act(&s.console, who, &current.task, a);
    let routing = s.console.routing.current();
    let city = routing.config().city();
    let unit_name = |id: &str| {
        city.unit(id)
            .map_or_else(|| id.to_owned(), |u| u.name.clone())
    };
    let joint = current.state.joint_case.as_ref();
    // The units of the joint case this account may report in or finish a part for.
    let joint_choices = {
        let pick = |wanted: &dyn Fn(&hub_cases::joint_case::Participant) -> bool,
                    action: &dyn Fn(String) -> Action| {
            joint
                .map(|c| c.participants.as_slice())
                .unwrap_or_default()
                .iter()
                .filter(|p| wanted(p) && may(&action(p.unit.clone())))
                .map(|p| views::Choice {
                    value: p.unit.clone(),
                    label: unit_name(&p.unit),
                    selected: false,
                })
                .collect()
        };
        views::JointChoices {
            report_in: pick(&|p| p.reported_in_at.is_none(), &|unit| Action::ReportIn {
                unit,
            }),
            complete_part: pick(
                &|p| p.reported_in_at.is_some() && p.part_done_at.is_none(),
                &|unit| Action::CompletePart { unit },
            ),
        }
    };
    let allowed: Vec<ActionKind> = current
        .state
        .allowed_actions()
        .into_iter()
        .filter(|k| match k {
            ActionKind::ReportIn => !joint_choices.report_in.is_empty(),
            ActionKind::CompletePart => !joint_choices.complete_part.is_empty(),
            // A meeting needs a lead and at least one other unit to call.
            ActionKind::ConveneJointMeeting => {
                units.len() >= 2
                    && may(&Action::ConveneJointMeeting {
                        case: sample_case(&s.console.cases, &current.task, &units),
                    })
            }
            k => sample(*k, first_unit).is_some_and(|a| may(&a)),
        })
        .collect();
    let view = views::task_view(
        &TaskFacts {
            task: &current.task,
            version: current.version,
            clocks: &current.clocks,
            history: &history,
            reports: &reports,
            allowed: &allowed,
            units: &units,
            joint,
            joint_choices: &joint_choices,
            unit_name: &unit_name,
        },
        &cases.sla(),
        Utc::now(),
    );
    let body = TaskBody {
        t: &messages::ZH,
        v: &view,
        flash: flash.0.to_owned(),
        flash_kind: flash.1,
    }
    .render()?;
    Ok((view, body))
}

/// A task page: 404 in words for a task that does not exist or is outside the scope (the
/// same answer for both, as in the API).
async fn task_page(
    State(s): State<WebState>,
    Extension(session): Extension<Session>,
    task: Result<TaskInScope, Response>,
) -> Result<Html<String>, PageError> {
    let TaskInScope { task, who } = task.map_err(|r| {
        let status = r.status();
        if status == StatusCode::NOT_FOUND {
            PageError(status, messages::ZH.no_such_task.to_owned())
        } else {
            PageError(status, messages::ZH.request_invalid.to_owned())
        }
    })?;
    let (view, body) = task_body(&s, &who, &task.fields.task_id, ("", "ok")).await?;
    let page = TaskPage {
        t: &messages::ZH,
        account: who.name.clone(),
        csrf: session.csrf(&s.key),
        nav: "queue",
        admin: who.is_admin(),
        v: &view,
        body,
    };
    Ok(Html(page.render()?))
}

/// The joint meeting's form (吹哨) as the API's `lead` and `co_handlers`: each called unit
/// with its part and the parts' time limit. Errors say in words what is missing.
fn convene_parts(
    form: &BTreeMap<String, String>,
    body: &mut Map<String, Value>,
) -> Result<(), String> {
    let field = |name: &str| form.get(name).map_or("", |v| v.trim());
    let limit = match field("part_limit") {
        "" => Value::Null,
        l => json!(l),
    };
    let lead = field("lead_unit");
    if lead.is_empty() {
        return Err(messages::ZH.joint_no_lead.to_owned());
    }
    if field("lead_part").is_empty() {
        return Err(messages::ZH.joint_no_lead_part.to_owned());
    }
    body.insert(
        "lead".to_owned(),
        json!({"unit": lead, "part": field("lead_part"), "limit": limit}),
    );
    let mut co = Vec::new();
    for i in 1..=views::CONVENE_CO_HANDLERS {
        let (unit, part) = (
            field(&format!("co_unit_{i}")),
            field(&format!("co_part_{i}")),
        );
        match (unit.is_empty(), part.is_empty()) {
            (true, true) => {}
            (true, false) => return Err(messages::joint_co_part_without_unit(i)),
            (false, true) => return Err(messages::joint_co_unit_without_part(i)),
            (false, false) => co.push(json!({"unit": unit, "part": part, "limit": limit})),
        }
    }
    if co.is_empty() {
        return Err(messages::ZH.joint_no_co_handlers.to_owned());
    }
    let mut called = vec![lead];
    for c in &co {
        let unit = c["unit"].as_str().unwrap_or_default();
        if called.contains(&unit) {
            return Err(messages::ZH.joint_unit_twice.to_owned());
        }
        called.push(unit);
    }
    body.insert("co_handlers".to_owned(), Value::Array(co));
    Ok(())
}

/// The fields of an action form, as the API's JSON body: text fields as they are,
/// `satisfied` as a boolean, `expected_version` as a number; empty fields left out. The
/// joint meeting's fields become its `lead` and `co_handlers`.
fn action_body(form: &BTreeMap<String, String>) -> Result<Value, String> {
    let mut body = Map::new();
    if form.get("action").map(String::as_str) == Some("convene_joint_meeting") {
        convene_parts(form, &mut body)?;
    }
    for (name, value) in form {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let v = match name.as_str() {
            "action" | "note" | "feedback" | "finding" | "reason" | "by" | "unit" | "stage"
            | "step" => json!(value),
            // The button pressed (its form's `action` says the same), and the page to answer
            // with.
            "submit" | "view" => continue,
            // Read above, into `lead` and `co_handlers`.
            "lead_unit" | "lead_part" | "part_limit" => continue,
            n if n.starts_with("co_unit_") || n.starts_with("co_part_") => continue,
            "satisfied" => json!(value == "true"),
            "expected_version" => json!(value
                .parse::<u64>()
                .map_err(|_| messages::version_not_a_number(value))?),
            other => return Err(messages::unknown_form_field(other)),
        };
        body.insert(name.clone(), v);
    }
    Ok(Value::Object(body))
}

/// A lifecycle action from a task page's form. Answers with the task's part of the page,
/// re-read after the action, and a message: done, or why not (409 when the task moved on
/// since the page was loaded, in the words a dispatcher needs).
async fn task_action(
    State(s): State<WebState>,
    TaskInScope { task, who }: TaskInScope,
    headers: HeaderMap,
    note: ActionNote,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let id = task.fields.task_id.clone();
    if body.len() > console::ACTION_MAX_BYTES {
        return Err(PageError(
            StatusCode::PAYLOAD_TOO_LARGE,
            messages::ZH.form_too_long.to_owned(),
        ));
    }
    let form: BTreeMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let action_kind = form
        .get("action")
        .and_then(|a| ActionKind::ALL.into_iter().find(|k| k.as_str() == a));
    // Our own checks of the form answer in words; the API's refusals are put in words below.
    let (outcome, own_words) = match action_body(&form) {
        Ok(json) => {
            let outcome = console::perform(&s.console, &who, &id, json.clone()).await;
            note.task_action(&id, &json, &outcome);
            (outcome, false)
        }
        Err(m) => {
            let outcome = Err(ApiError::bad_request(m));
            let asked = json!({"action": form.get("action")});
            note.task_action(&id, &asked, &outcome);
            (outcome, true)
        }
    };
    let (code, flash) = match &outcome {
        Ok(done) => {
            // The new status, or what was done when the status stays (报到, 督办, ...).
            let to = done["to"].as_str().and_then(TaskStatus::parse);
            let from = done["from"].as_str().and_then(TaskStatus::parse);
            let what = match (to, action_kind) {
                (Some(to), _) if from != Some(to) => messages::status(to),
                (_, Some(kind)) => messages::action(kind),
                (Some(to), None) => messages::status(to),
                (None, None) => "",
            };
            (StatusCode::OK, messages::action_done(what))
        }
        Err(ApiError(StatusCode::CONFLICT, _)) => {
            (StatusCode::CONFLICT, messages::ZH.moved_on.to_owned())
        }
        Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, _)) => {
            return Err(PageError(
                StatusCode::SERVICE_UNAVAILABLE,
                messages::ZH.store_unavailable_retry.to_owned(),
            ))
        }
        Err(ApiError(code, v)) => {
            let said = v["error"].as_str().unwrap_or("");
            let why = match *code {
                _ if own_words => said.to_owned(),
                StatusCode::FORBIDDEN => messages::not_allowed_to(
                    action_kind.map_or(messages::ZH.this_action, messages::action),
                ),
                // Only a form changed by hand gets here: the words are the API's.
                _ => messages::form_invalid_because(said),
            };
            (*code, messages::action_refused(&why))
        }
    };
    let kind = if outcome.is_ok() { "ok" } else { "error" };
    let html = if form.get("view").map(String::as_str) == Some("triage") {
        triage::render_rows(&s, &who, (&flash, kind)).await?
    } else {
        task_body(&s, &who, &id, (&flash, kind)).await?.1
    };
    // htmx swaps only successful answers; the form's outcome is in the fragment, the status
    // code says it for other clients.
    let status = if headers.contains_key("hx-request") {
        StatusCode::OK
    } else {
        code
    };
    Ok((status, Html(html)).into_response())
}

/// Percent-encodes a query value.
pub fn url_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
