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
//! * [`messages`]: every label, in Simplified Chinese;
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
        page(
            Method::POST,
            "/login",
            Guard::Open,
            post(login).with_state(s.clone()),
        ),
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
            "/map/tasks.geojson",
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
            Method::POST,
            "/admin/dry-run",
            Guard::Session,
            post(admin::dry_run).with_state(with_admin.clone()),
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
        PageError(StatusCode::INTERNAL_SERVER_ERROR, "页面生成失败".to_owned())
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        let message = e.1["error"].as_str().unwrap_or("").to_owned();
        let text = match e.0 {
            StatusCode::NOT_FOUND => "没有这个工单，或不在您的管辖范围内。".to_owned(),
            StatusCode::SERVICE_UNAVAILABLE => "数据库暂时不可用，请稍后刷新。".to_owned(),
            _ => format!("请求有误：{message}"),
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
        return refuse(messages::ZH.sign_in_failed, StatusCode::UNAUTHORIZED);
    };
    if let Some(ip) = client {
        throttle.succeeded(ip);
    }
    tracing::info!(account = %who.name, "signed in to the console");
    let cookie = session::issue(&s.key, &who.name, &digest);
    let mut r = Redirect::to(&next).into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session::set_cookie(&cookie));
    Ok(r)
}

async fn logout() -> Response {
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session::clear_cookie());
    r.headers_mut()
        .insert("hx-redirect", HeaderValue::from_static("/login"));
    r
}

// ------------------------------------------------------------------------------ queue

/// The queue's query string. Unknown parameters are ignored here (a bookmarked address from
/// an older console still opens); values are checked.
#[derive(Debug, Default, serde::Deserialize)]
struct QueueQuery {
    status: Option<String>,
    due_within: Option<String>,
    sort: Option<String>,
    breached: Option<String>,
    department: Option<String>,
    community: Option<String>,
}

impl QueueQuery {
    fn filters(&self) -> QueueFilters {
        QueueFilters {
            status: self.status.clone().unwrap_or_default(),
            due_within: self.due_within.clone().unwrap_or_default(),
            sort: self.sort.clone().unwrap_or_default(),
            breached: self.breached.as_deref() == Some("true"),
            department: self.department.clone().unwrap_or_default(),
            community: self.community.clone().unwrap_or_default(),
        }
    }
}

/// Rows on one queue page.
const QUEUE_PAGE: u32 = 100;

async fn queue_rows_html(
    s: &WebState,
    who: &Identity,
    q: &QueueQuery,
    flash: (&str, &'static str),
) -> Result<String, PageError> {
    let bad = |m: String| PageError(StatusCode::BAD_REQUEST, m);
    let now = Utc::now();
    let status = q.status.as_deref().unwrap_or("open");
    let (status, open_only) = match status {
        "open" => (None, true),
        "" => (None, false),
        other => (
            Some(TaskStatus::parse(other).ok_or_else(|| bad(format!("未知的状态：{other}")))?),
            false,
        ),
    };
    let within = match q.due_within.as_deref().filter(|w| !w.is_empty()) {
        Some(w) => Some(console::parse_within(w).ok_or_else(|| bad(format!("到期时间有误：{w}")))?),
        None => None,
    };
    let department = match q.department.as_deref().filter(|d| !d.is_empty()) {
        Some(d) => Some(
            hub_schemas::event::Department::parse(d)
                .ok_or_else(|| bad(format!("未知的部门：{d}")))?,
        ),
        None => None,
    };
    let mut filter = TaskFilter {
        status,
        // The open queue leaves out what is finished; a status filter shows it.
        open_only,
        department,
        community_code: q.community.clone().filter(|c| !c.is_empty()),
        breached: (q.breached.as_deref() == Some("true")).then_some(true),
        due_before: within.and_then(|w| now.checked_add_signed(w)),
        order: match q.sort.as_deref() {
            Some("newest") => TaskOrder::Newest,
            _ => TaskOrder::SoonestDue,
        },
        limit: QUEUE_PAGE,
        ..TaskFilter::default()
    };
    if !who.narrow(&mut filter) {
        return Err(PageError(StatusCode::FORBIDDEN, "超出管辖范围".to_owned()));
    }
    let store = &s.console.cases.store;
    let total = store.count_tasks(&filter).await?;
    let tasks = store.list_tasks(&filter).await?;
    let sla = &s.console.cases.sla;
    let mut rows = Vec::with_capacity(tasks.len());
    for t in &tasks {
        let clocks = store.task_clocks(&t.fields.task_id).await?;
        rows.push(views::queue_row(
            t,
            views::task_countdown(&clocks, sla, now),
        ));
    }
    Ok(QueueRows {
        t: &messages::ZH,
        rows,
        total,
        flash: flash.0.to_owned(),
        flash_kind: flash.1,
    }
    .render()?)
}

async fn queue(
    State(s): State<WebState>,
    Extension(session): Extension<Session>,
    axum::extract::Query(q): axum::extract::Query<QueueQuery>,
) -> Result<Html<String>, PageError> {
    let rows = queue_rows_html(&s, &session.who, &q, ("", "ok")).await?;
    // The communities the account may narrow to.
    let routing = s.console.routing.current();
    let communities: Vec<(String, String)> = routing
        .config()
        .city()
        .communities()
        .iter()
        .filter(|c| {
            let mut f = TaskFilter {
                community_code: Some(c.code.clone()),
                ..TaskFilter::default()
            };
            session.who.narrow(&mut f)
        })
        .map(|c| (c.code.clone(), c.name.clone()))
        .collect();
    let page = QueuePage::new(
        &session.who.name,
        session.who.is_admin(),
        session.csrf(&s.key),
        &q.filters(),
        &communities,
        rows,
    );
    Ok(Html(page.render()?))
}

/// The queue's rows for the filters chosen. The page's address follows the filters (replaced,
/// not pushed, so refreshes do not fill the browser's history): it can be bookmarked or sent.
async fn queue_rows(
    State(s): State<WebState>,
    Extension(session): Extension<Session>,
    axum::extract::Query(q): axum::extract::Query<QueueQuery>,
) -> Result<Response, PageError> {
    let html = queue_rows_html(&s, &session.who, &q, ("", "ok")).await?;
    let address = format!("/queue{}", q.filters().query());
    let mut r = Html(html).into_response();
    if let Ok(v) = HeaderValue::from_str(&address) {
        r.headers_mut().insert("hx-replace-url", v);
    }
    Ok(r)
}

/// At most this many tasks in one bulk action.
const BULK_MAX: usize = 200;

/// A bulk action from the queue (批量签收): the action on every chosen task the account may
/// see and take it on, each through the same checks as one at a time; answers with the
/// queue's rows (its filters came along) and how many were done or refused, and why.
async fn queue_bulk(
    State(s): State<WebState>,
    Extension(session): Extension<Session>,
    body: axum::body::Bytes,
) -> Result<Html<String>, PageError> {
    let who = &session.who;
    let mut action = None;
    let mut ids = Vec::new();
    let mut q = QueueQuery::default();
    for (k, v) in form_urlencoded::parse(&body) {
        match k.as_ref() {
            "action" => action = Some(v.into_owned()),
            "task" => ids.push(v.into_owned()),
            "status" => q.status = Some(v.into_owned()),
            "due_within" => q.due_within = Some(v.into_owned()),
            "sort" => q.sort = Some(v.into_owned()),
            "breached" => q.breached = Some(v.into_owned()),
            "department" => q.department = Some(v.into_owned()),
            "community" => q.community = Some(v.into_owned()),
            _ => {}
        }
    }
    if action.as_deref() != Some("sign_for") {
        return Err(PageError(
            StatusCode::BAD_REQUEST,
            "批量操作目前只支持签收。".to_owned(),
        ));
    }
    ids.truncate(BULK_MAX);
    let (mut done, mut refused) = (0, Vec::new());
    for id in &ids {
        let visible = match s.console.cases.store.get_task(id).await? {
            Some(task) => who.may_see(&task),
            None => false,
        };
        if !visible {
            refused.push(format!(
                "{}：没有这个工单",
                id.chars().take(8).collect::<String>()
            ));
            continue;
        }
        match console::perform(&s.console, who, id, json!({"action": "sign_for"})).await {
            Ok(_) => done += 1,
            Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, _)) => {
                return Err(PageError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "数据库暂时不可用，请稍后重试。".to_owned(),
                ))
            }
            Err(ApiError(code, _)) => refused.push(format!(
                "{}：{}",
                id.chars().take(8).collect::<String>(),
                if code == StatusCode::CONFLICT {
                    "当前状态不能签收"
                } else {
                    "无权签收"
                }
            )),
        }
    }
    let flash = if ids.is_empty() {
        "请先勾选工单。".to_owned()
    } else if refused.is_empty() {
        format!("已签收 {done} 件。")
    } else {
        format!(
            "已签收 {done} 件；未签收 {} 件（{}）。",
            refused.len(),
            refused.join("；")
        )
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
    let allowed: Vec<ActionKind> = current
        .state
        .allowed_actions()
        .into_iter()
        .filter(|k| {
            sample(*k, first_unit)
                .is_some_and(|a| console::may_act(&s.console, who, &current.task, &a))
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
        },
        &cases.sla,
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
            PageError(status, "没有这个工单，或不在您的管辖范围内。".to_owned())
        } else {
            PageError(status, "请求有误。".to_owned())
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

/// The fields of an action form, as the API's JSON body: text fields as they are,
/// `satisfied` as a boolean, `expected_version` as a number; empty fields left out.
fn action_body(form: &BTreeMap<String, String>) -> Result<Value, String> {
    let mut body = Map::new();
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
            "satisfied" => json!(value == "true"),
            "expected_version" => json!(value
                .parse::<u64>()
                .map_err(|_| format!("expected_version `{value}` is not a number"))?),
            other => return Err(format!("unknown form field `{other}`")),
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
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let id = task.fields.task_id.clone();
    if body.len() > console::ACTION_MAX_BYTES {
        return Err(PageError(
            StatusCode::PAYLOAD_TOO_LARGE,
            "内容过长".to_owned(),
        ));
    }
    let form: BTreeMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let outcome = match action_body(&form) {
        Ok(json) => console::perform(&s.console, &who, &id, json).await,
        Err(m) => Err(ApiError::bad_request(m)),
    };
    let (code, flash) = match &outcome {
        Ok(done) => (
            StatusCode::OK,
            format!(
                "{}：{}",
                messages::ZH.done,
                done["to"]
                    .as_str()
                    .and_then(TaskStatus::parse)
                    .map_or("", messages::status)
            ),
        ),
        Err(ApiError(StatusCode::CONFLICT, _)) => {
            (StatusCode::CONFLICT, messages::ZH.moved_on.to_owned())
        }
        Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, _)) => {
            return Err(PageError(
                StatusCode::SERVICE_UNAVAILABLE,
                "数据库暂时不可用，请稍后重试。".to_owned(),
            ))
        }
        Err(ApiError(code, v)) => (
            *code,
            format!(
                "{}：{}",
                messages::ZH.refused,
                v["error"].as_str().unwrap_or("")
            ),
        ),
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
