//! Administration (管理), for administrators: connector health, the dead letters and their
//! replay, the routing configuration as it runs, and a dry-run of one event — the same
//! functions as `/healthz`, `/api/v1/deadletters`, `/api/v1/route/dry-run`.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Html;
use axum::Extension;
use chrono::{DateTime, Utc};

use super::messages::{self, Labels, ZH};
use super::session::Session;
use super::{PageError, WebState};
use crate::context::health::Health;
use crate::http::action_trail::ActionNote;
use crate::http::rules::OpenTasks;
use crate::http::tasks::TasksState;
use crate::pipeline::dead_letters::{self, DlqState, Filter};

/// What the administration page needs besides the console's state.
#[derive(Clone)]
pub struct AdminState {
    pub health: Arc<Health>,
    pub tasks: TasksState,
    pub dlq: DlqState,
    /// Rules versions and their replay.
    pub rules: crate::http::rules::RulesState,
}

fn cst(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "—".to_owned(),
        |t| super::views::cst_as(t, "%m-%d %H:%M:%S"),
    )
}

pub struct ConnectorRow {
    pub name: String,
    pub kind: String,
    pub state: &'static str,
    pub band: &'static str,
    pub last_success: String,
    pub last_error: String,
    pub received: u64,
    pub produced: u64,
    pub dead_lettered: u64,
    pub lag: String,
}

pub struct LetterRow {
    pub at: String,
    pub source: String,
    pub stage: String,
    pub reason: String,
    pub preview: String,
}

/// A community of the city with its 1+2+X units and its admission list (准入制).
pub struct CommunityRow {
    pub name: String,
    pub code: String,
    pub units: String,
    pub admission: String,
}

fn community_rows(city: &hub_router::city::City) -> Vec<CommunityRow> {
    use hub_router::city::Admitted;
    use hub_schemas::event::Department;
    city.communities()
        .iter()
        .map(|c| CommunityRow {
            name: c.name.clone(),
            code: c.code.clone(),
            units: messages::listed(
                &c.units()
                    .iter()
                    .map(|u| messages::with_aside(&u.name, &u.role.to_string()))
                    .collect::<Vec<_>>(),
            ),
            admission: messages::clauses(
                &Department::ALL
                    .iter()
                    .map(|d| {
                        let what = match c.admission.of(*d) {
                            Some(Admitted::All) => ZH.admission_all.to_owned(),
                            Some(Admitted::Categories(codes)) => {
                                codes.iter().cloned().collect::<Vec<_>>().join(" ")
                            }
                            None => ZH.admission_none.to_owned(),
                        };
                        messages::labelled(messages::department(*d), &what)
                    })
                    .collect::<Vec<_>>(),
            ),
        })
        .collect()
}

/// A stored rules version, as the replay form offers it.
pub struct VersionChoice {
    pub version: String,
    pub label: String,
}

/// One moved event of a replay, in words.
pub struct MovedRow {
    pub source_id: String,
    pub changed: String,
    pub before: String,
    pub after: String,
    /// The rule test that keeps the candidate's outcome (copied into its folder).
    pub rule_test: String,
}

#[derive(Template)]
#[template(path = "web/admin_replay.html")]
pub struct ReplayFragment<'a> {
    pub t: &'a Labels,
    pub ok: bool,
    pub title: String,
    pub lines: Vec<String>,
    pub rows: Vec<MovedRow>,
}

/// One entry of the action trail (操作记录).
pub struct TrailRow {
    pub at: String,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub refused: bool,
    pub source: String,
    pub detail: String,
}

pub struct RuleRow {
    pub order: usize,
    pub id: String,
    pub action: String,
    pub location: String,
    pub description: String,
}

#[derive(Template)]
#[template(path = "web/admin.html")]
pub struct AdminPage<'a> {
    pub t: &'a Labels,
    pub account: String,
    pub csrf: String,
    pub nav: &'static str,
    /// Whether the account administers (the 管理 link).
    pub admin: bool,
    pub connectors: Vec<ConnectorRow>,
    pub letters: Vec<LetterRow>,
    pub letters_heading: String,
    pub letters_error: String,
    pub sources: Vec<String>,
    /// The routing rules' heading, with their version.
    pub rules_heading: String,
    pub rules: Vec<RuleRow>,
    pub communities: Vec<CommunityRow>,
    pub sample: String,
    pub trail: Vec<TrailRow>,
    pub trail_heading: String,
    pub trail_error: String,
    pub versions: Vec<VersionChoice>,
    pub replay_from: String,
    pub replay_to: String,
}

#[derive(Template)]
#[template(path = "web/admin_result.html")]
pub struct ResultFragment<'a> {
    pub t: &'a Labels,
    pub ok: bool,
    pub title: String,
    pub lines: Vec<String>,
}

fn forbidden() -> PageError {
    PageError(StatusCode::FORBIDDEN, ZH.admin_only.to_owned())
}

/// A connector's state in words, and its band (a CSS class).
fn state_words(s: &str) -> (&'static str, &'static str) {
    match s {
        "healthy" => (ZH.connector_healthy, "ok"),
        "degraded" | "retrying" => (ZH.connector_retrying, "warn"),
        "failing" => (ZH.connector_failing, "late"),
        "starting" => (ZH.connector_starting, "paused"),
        _ => (ZH.connector_stopped, "none"),
    }
}

/// How many of the newest dead letters the page lists.
const LETTERS_SHOWN: usize = 50;
/// How many of the newest actions of the trail the page lists.
const TRAIL_SHOWN: u32 = 30;

/// An event to start a dry-run from: a pile of rubbish at 梧桐社区's service centre.
/// Its description is a sample report's data (a reporter's words), not a word of the console.
const SAMPLE_EVENT: &str = r#"{
  "event_id": "dry-run-1",
  "source_system": "sanitation.console",
  "source_id": "DRY-1",
  "department": "sanitation",
  "category_code": "GARBAGE_OVERFLOW",
  "category_name": null,
  "occurred_at": "NOW",
  "received_at": "NOW",
  "location": {"point": {"lon": 105.382181, "lat": 29.060633}, "address": null, "grid_code": null},
  "description": "垃圾桶满溢",
  "attributes": {},
  "reporter": null,
  "raw_ref": null
}"#;

pub async fn page(
    State((s, admin)): State<(WebState, AdminState)>,
    Extension(session): Extension<Session>,
) -> Result<Html<String>, PageError> {
    if !session.who.is_admin() {
        return Err(forbidden());
    }
    let connectors = admin
        .health
        .snapshot()
        .into_iter()
        .map(|(name, h)| {
            let (state, band) = state_words(h.state.as_str());
            ConnectorRow {
                name,
                kind: h.kind,
                state,
                band,
                last_success: cst(h.last_success_at),
                last_error: h.last_error.unwrap_or_default(),
                received: h.records_received,
                produced: h.records_produced,
                dead_lettered: h.records_dead_lettered,
                lag: h
                    .lag_seconds
                    .map_or_else(|| "—".to_owned(), messages::lag_seconds),
            }
        })
        .collect::<Vec<_>>();
    let filter = Filter {
        limit: Some(LETTERS_SHOWN),
        ..Filter::default()
    };
    let (letters, letters_error) = match dead_letters::read(
        admin.dlq.kafka.brokers(),
        &admin.dlq.dead_letter_topic,
        &filter,
    )
    .await
    {
        Ok(entries) => (
            entries
                .into_iter()
                .rev()
                .map(|e| LetterRow {
                    at: cst(e.at),
                    source: e.source,
                    stage: e.stage,
                    reason: e.reason,
                    preview: e.preview.chars().take(200).collect(),
                })
                .collect::<Vec<_>>(),
            String::new(),
        ),
        Err(e) => (
            Vec::new(),
            messages::dead_letters_unreadable(&format!("{e:#}")),
        ),
    };
    let mut sources: Vec<String> = admin.dlq.mappers.keys().cloned().collect();
    sources.sort();
    let router = s.console.routing.current();
    let rules = router
        .config()
        .rules()
        .rules()
        .iter()
        .enumerate()
        .map(|(i, r)| RuleRow {
            order: i + 1,
            id: r.id.clone(),
            action: match &r.action {
                hub_router::rules::Action::Dispatch { lead, co_handlers } => {
                    let names = |roles: &[hub_router::rules::Role]| {
                        roles
                            .iter()
                            .map(|r| r.to_string())
                            .collect::<Vec<_>>()
                            .join(" / ")
                    };
                    messages::rule_dispatch(&names(lead), &names(co_handlers))
                }
                hub_router::rules::Action::Triage => ZH.rule_triage.to_owned(),
                hub_router::rules::Action::Suppress => ZH.rule_suppress.to_owned(),
            },
            location: r.location(),
            description: r.description.clone().unwrap_or_default(),
        })
        .collect();
    let newest = hub_store::ActionQuery {
        limit: TRAIL_SHOWN,
        newest_first: true,
        ..hub_store::ActionQuery::default()
    };
    let (trail, trail_error) = match s.console.cases.store.actions(&newest).await {
        Ok(actions) => (
            actions
                .into_iter()
                .map(|a| TrailRow {
                    at: cst(Some(a.at)),
                    actor: if a.actor.is_empty() {
                        "—".to_owned()
                    } else {
                        a.actor
                    },
                    role: messages::role(&a.role).to_owned(),
                    action: messages::trail_action(&a.action),
                    target: a.target,
                    outcome: messages::trail_outcome(a.outcome),
                    refused: !(200..400).contains(&a.outcome),
                    source: a.source,
                    detail: a.detail,
                })
                .collect(),
            String::new(),
        ),
        Err(e) => (Vec::new(), messages::trail_unreadable(&e.to_string())),
    };
    let active = admin
        .rules
        .store
        .rules_activations(1)
        .await?
        .into_iter()
        .next()
        .map(|a| a.version);
    let versions = admin
        .rules
        .store
        .rules_versions()
        .await?
        .into_iter()
        .rev()
        .map(|v| VersionChoice {
            label: messages::version_choice(
                &v.version,
                &v.author,
                &cst(Some(v.at)),
                &v.message,
                active.as_deref() == Some(v.version.as_str()),
            ),
            version: v.version,
        })
        .collect();
    let today = (Utc::now() + chrono::TimeDelta::hours(8)).date_naive();
    Ok(Html(
        AdminPage {
            t: &ZH,
            account: session.who.name.clone(),
            csrf: session.csrf(&s.key),
            nav: "admin",
            admin: true,
            connectors,
            letters,
            letters_heading: messages::dead_letters_heading(LETTERS_SHOWN),
            letters_error,
            sources,
            rules_heading: messages::rules_heading(router.config().version()),
            rules,
            communities: community_rows(router.config().city()),
            sample: SAMPLE_EVENT.replace(
                "NOW",
                &Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
            trail,
            trail_heading: messages::trail_heading(TRAIL_SHOWN as usize),
            trail_error,
            versions,
            replay_from: (today - chrono::TimeDelta::days(30)).to_string(),
            replay_to: today.to_string(),
        }
        .render()?,
    ))
}

fn form(body: &[u8]) -> std::collections::BTreeMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// A dry-run of the event in the form: where it would go and why; nothing is written.
pub async fn dry_run(
    State((_, admin)): State<(WebState, AdminState)>,
    Extension(session): Extension<Session>,
    body: axum::body::Bytes,
) -> Result<Html<String>, PageError> {
    if !session.who.is_admin() {
        return Err(forbidden());
    }
    let form = form(&body);
    let event = form.get("event").map_or("", String::as_str);
    let fragment = match crate::http::tasks::dry_run_decision(&admin.tasks, event.as_bytes()) {
        Ok(v) => {
            let d = &v["decision"];
            let mut lines = vec![messages::labelled(
                ZH.rules_version,
                v["rules_version"].as_str().unwrap_or(""),
            )];
            let outcome = d["outcome"].as_str().unwrap_or("");
            lines.push(messages::labelled(
                ZH.dry_run_outcome,
                messages::route_outcome(outcome).unwrap_or(outcome),
            ));
            if matches!(outcome, "dispatch" | "triage") {
                lines.push(messages::labelled(
                    ZH.place,
                    d["place"]["matched_area"].as_str().unwrap_or(""),
                ));
                lines.push(messages::labelled(
                    ZH.lead_unit,
                    d["lead_unit"]["name"].as_str().unwrap_or("—"),
                ));
                let e = &d["explanation"];
                for key in [
                    "place_detail",
                    "category_detail",
                    "rule_detail",
                    "assignment_detail",
                ] {
                    if let Some(text) = e[key].as_str().filter(|s| !s.is_empty()) {
                        lines.push(text.to_owned());
                    }
                }
            } else if let Some(reason) = d["reason"].as_str() {
                lines.push(reason.to_owned());
            }
            ResultFragment {
                t: &ZH,
                ok: true,
                title: ZH.dry_run_done.to_owned(),
                lines,
            }
        }
        Err(e) => ResultFragment {
            t: &ZH,
            ok: false,
            title: ZH.dry_run_failed.to_owned(),
            lines: vec![e.1["error"].as_str().unwrap_or("").to_owned()],
        },
    };
    Ok(Html(fragment.render()?))
}

/// Replays the dead letters of one source through its current mapping.
pub async fn replay(
    State((_, admin)): State<(WebState, AdminState)>,
    Extension(session): Extension<Session>,
    note: ActionNote,
    body: axum::body::Bytes,
) -> Result<Html<String>, PageError> {
    if !session.who.is_admin() {
        return Err(forbidden());
    }
    let form = form(&body);
    let source = form.get("source").cloned().filter(|s| !s.is_empty());
    let filter = Filter {
        source: source.clone(),
        limit: Some(dead_letters::MAX_LISTED),
        ..Filter::default()
    };
    let outcome = dead_letters::replay(&admin.dlq, &filter, false).await;
    let detail = match &outcome {
        Ok(report) => report.summary(),
        Err(e) => format!("{e:#}"),
    };
    // The fragment answers 200 either way; the trail says how it went.
    let status = outcome.is_err().then_some(StatusCode::SERVICE_UNAVAILABLE);
    note.add(
        "dead_letters.replay",
        source.clone().unwrap_or_default(),
        status,
        detail,
    );
    let fragment = match outcome {
        Ok(report) => ResultFragment {
            t: &ZH,
            ok: true,
            title: messages::replay_done(source.as_deref()),
            lines: messages::replay_report(
                report.examined,
                report.produced.len(),
                report.still_failing.len(),
                report.skipped.len(),
                report.not_replayable.len(),
            ),
        },
        Err(e) => ResultFragment {
            t: &ZH,
            ok: false,
            title: ZH.replay_failed.to_owned(),
            lines: vec![format!("{e:#}")],
        },
    };
    Ok(Html(fragment.render()?))
}

/// The whole action trail (or a period of it: `?from=&to=`, as the API takes them) as CSV.
pub async fn trail_csv(
    State((s, _)): State<(WebState, AdminState)>,
    Extension(session): Extension<Session>,
    crate::http::ApiQuery(q): crate::http::ApiQuery<crate::http::audit::ActionsQuery>,
) -> Result<axum::response::Response, PageError> {
    use axum::response::IntoResponse;
    if !session.who.is_admin() {
        return Err(forbidden());
    }
    let (mut query, _) = crate::http::audit::parse(&q)?;
    query.limit = crate::http::audit::CSV_MAX;
    let actions = s.console.cases.store.actions(&query).await.map_err(|e| {
        PageError(
            StatusCode::SERVICE_UNAVAILABLE,
            messages::trail_unreadable(&e.to_string()),
        )
    })?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"actions.csv\"",
            ),
        ],
        crate::http::audit::csv_of(&actions),
    )
        .into_response())
}

/// A replay of the form's stored version over its period: the summary and the moved
/// events, in words (the same replay as `POST /api/v1/rules/replay`).
pub async fn rules_replay(
    State((s, admin)): State<(WebState, AdminState)>,
    Extension(session): Extension<Session>,
    note: ActionNote,
    body: axum::body::Bytes,
) -> Result<Html<String>, PageError> {
    if !session.who.is_admin() {
        return Err(forbidden());
    }
    let form = form(&body);
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    let request = crate::http::rules::ReplayRequest {
        candidate: field("candidate"),
        from: field("from"),
        to: field("to"),
    };
    let outcome = crate::http::rules::replay(&admin.rules, &request, &note).await;
    let fragment = match outcome {
        Ok(report) => {
            let router = s.console.routing.current();
            let city = router.config().city();
            let unit = |id: &Option<String>| {
                id.as_deref()
                    .map(|id| city.unit(id).map_or(id.to_owned(), |u| u.name.clone()))
            };
            let side = |o: &crate::cases::replay::Outcome| {
                messages::replay_side(
                    o.kind,
                    unit(&o.lead).as_deref(),
                    &o.co_handlers
                        .iter()
                        .map(|c| unit(&Some(c.clone())).unwrap_or_default())
                        .collect::<Vec<_>>(),
                    o.deadlines.values().max().map(|d| cst(Some(*d))).as_deref(),
                )
            };
            let rows = report
                .moved_events
                .iter()
                .take(MOVED_SHOWN)
                .map(|m| MovedRow {
                    source_id: m.source_id.clone(),
                    changed: messages::listed(
                        &m.changed
                            .iter()
                            .map(|c| messages::replay_change(c).to_owned())
                            .collect::<Vec<_>>(),
                    ),
                    before: side(&m.before),
                    after: side(&m.after),
                    rule_test: m.rule_test(),
                })
                .collect();
            let mut lines = vec![messages::replay_summary(
                report.events,
                report.moved,
                &request.candidate,
            )];
            for (unit_id, load) in &report.unit_load {
                lines.push(messages::replay_load(
                    &unit(&Some(unit_id.clone())).unwrap_or_default(),
                    load.before,
                    load.after,
                ));
            }
            for (unit_id, o) in &report.unit_on_time {
                lines.push(messages::replay_on_time(
                    &unit(&Some(unit_id.clone())).unwrap_or_default(),
                    (o.on_time_before, o.resolved_before),
                    (o.on_time_after, o.resolved_after),
                ));
            }
            ReplayFragment {
                t: &ZH,
                ok: true,
                title: ZH.replay_rules_done.to_owned(),
                lines,
                rows,
            }
        }
        Err(e) => ReplayFragment {
            t: &ZH,
            ok: false,
            title: ZH.replay_rules_failed.to_owned(),
            lines: vec![e.1["error"].as_str().unwrap_or("").to_owned()],
            rows: Vec::new(),
        },
    };
    Ok(Html(fragment.render()?))
}

/// Moved events a replay fragment lists.
const MOVED_SHOWN: usize = 200;

/// Routes with the form's stored version from now on (the same as
/// `POST /api/v1/rules/activate`).
pub async fn rules_activate(
    State((_, admin)): State<(WebState, AdminState)>,
    Extension(session): Extension<Session>,
    note: ActionNote,
    body: axum::body::Bytes,
) -> Result<Html<String>, PageError> {
    if !session.who.is_admin() {
        return Err(forbidden());
    }
    let form = form(&body);
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    let open_tasks = match field("open_tasks").as_str() {
        "reroute_unsigned" => OpenTasks::RerouteUnsigned,
        _ => OpenTasks::Keep,
    };
    let request = crate::http::rules::ActivateRequest {
        version: field("candidate"),
        message: field("message"),
        open_tasks,
    };
    let outcome = crate::http::rules::activate(&admin.rules, &session.who, &request, &note).await;
    let fragment = match outcome {
        Ok(a) => {
            let mut lines = vec![ZH.version_activated_hint.to_owned()];
            if let Some(r) = &a.rerouted {
                lines.push(messages::reroute_summary(
                    r.considered,
                    r.rerouted.len(),
                    r.unchanged,
                    r.left.len(),
                ));
                for m in r.rerouted.iter().take(MOVED_SHOWN) {
                    let from = m.from_name.as_deref().unwrap_or(ZH.triage);
                    lines.push(messages::rerouted_line(
                        &m.task_id,
                        (from, &m.to_name),
                        (&m.from_co_handler_names, &m.co_handler_names),
                    ));
                }
                for (task, why) in r.left.iter().take(MOVED_SHOWN) {
                    lines.push(messages::left_line(task, why));
                }
            }
            ResultFragment {
                t: &ZH,
                ok: true,
                title: messages::version_activated(&a.activation.version),
                lines,
            }
        }
        Err(e) => ResultFragment {
            t: &ZH,
            ok: false,
            title: ZH.version_not_activated.to_owned(),
            lines: vec![e.1["error"].as_str().unwrap_or("").to_owned()],
        },
    };
    Ok(Html(fragment.render()?))
}
