//! The triage page (待分派) of street and district desks: the tasks no community unit took
//! (属地兜底: created with no lead unit) and the returns (回退) awaiting the level above, each
//! with its form — dispatch to a unit, or arbitrate who takes it.

use askama::Template;
use axum::extract::State;
use axum::response::Html;
use axum::Extension;
use hub_cases::lifecycle::ActionKind;
use hub_router::task::{Task, TaskStatus};
use hub_store::TaskFilter;

use super::messages::{self, Labels, ZH};
use super::session::Session;
use super::views::{self, Choice};
use super::{PageError, WebState};
use crate::context::access::Identity;

#[derive(Debug, Clone)]
pub struct TriageRow {
    pub id: String,
    pub status: &'static str,
    pub category: String,
    pub place: String,
    pub why: String,
    pub action: &'static str,
    pub action_label: &'static str,
    pub version: u64,
    pub units: Vec<Choice>,
}

#[derive(Template)]
#[template(path = "web/triage_rows.html")]
pub struct TriageRows<'a> {
    pub t: &'a Labels,
    pub rows: Vec<TriageRow>,
    pub flash: String,
    pub flash_kind: &'static str,
}

#[derive(Template)]
#[template(path = "web/triage.html")]
pub struct TriagePage<'a> {
    pub t: &'a Labels,
    pub account: String,
    pub csrf: String,
    pub nav: &'static str,
    /// Whether the account administers (the 管理 link).
    pub admin: bool,
    pub rows: String,
}

/// The units a task can go to: those of its community, then those of its street.
pub(crate) fn units_for(city: &hub_router::city::City, task: &Task) -> Vec<Choice> {
    let place = &task.fields.place;
    let community = place
        .community_code
        .as_deref()
        .and_then(|c| city.community(c));
    let mut out = Vec::new();
    if let Some(c) = community {
        out.extend(c.units().iter().map(|u| (u.id.clone(), u.name.clone())));
        let street = city.street_of(c);
        out.extend(
            street
                .units()
                .iter()
                .map(|u| (u.id.clone(), u.name.clone())),
        );
    } else if let Some(code) = &place.street_code {
        if let Some(street) = city.streets().iter().find(|s| &s.code == code) {
            out.extend(
                street
                    .units()
                    .iter()
                    .map(|u| (u.id.clone(), u.name.clone())),
            );
        }
    }
    let lead = task.fields.lead_unit.as_ref().map(|u| u.unit_id.as_str());
    out.into_iter()
        .map(|(value, label)| Choice {
            selected: Some(value.as_str()) == lead,
            value,
            label,
        })
        .collect()
}

/// The rows `who` may act on: unassigned tasks to dispatch, returns to arbitrate.
pub async fn rows(s: &WebState, who: &Identity) -> Result<Vec<TriageRow>, PageError> {
    let cases = &s.console.cases;
    let routing = s.console.routing.current();
    let city = routing.config().city();
    let mut out = Vec::new();
    for (status, kind) in [
        (TaskStatus::Created, ActionKind::Dispatch),
        (TaskStatus::Returned, ActionKind::Arbitrate),
    ] {
        let mut filter = TaskFilter {
            status: Some(status),
            limit: 200,
            ..TaskFilter::default()
        };
        if !who.narrow(&mut filter) {
            continue;
        }
        for task in cases.store.list_tasks(&filter).await? {
            let id = task.fields.task_id.clone();
            let units = units_for(city, &task);
            let probe = match kind {
                ActionKind::Dispatch => hub_cases::lifecycle::Action::Dispatch {
                    unit: units.first().map(|u| u.value.clone()).unwrap_or_default(),
                },
                _ => hub_cases::lifecycle::Action::Arbitrate {
                    unit: units.first().map(|u| u.value.clone()).unwrap_or_default(),
                },
            };
            if units.is_empty() || !super::console::may_act(&s.console, who, &task, &probe) {
                continue;
            }
            let version = cases.store.workflow(&id).await?.map_or(0, |r| r.version);
            let why = match status {
                TaskStatus::Returned => cases
                    .store
                    .task_history(&id)
                    .await?
                    .into_iter()
                    .rev()
                    .find(|h| h.to_status == TaskStatus::Returned)
                    .and_then(|h| h.note)
                    .unwrap_or_default(),
                _ => task.fields.explanation.assignment_detail.clone(),
            };
            out.push(TriageRow {
                status: messages::status(task.status),
                category: views::category_of(&task),
                place: task.fields.place.matched_area.clone(),
                why,
                action: kind.as_str(),
                action_label: messages::action(kind),
                version,
                units,
                id,
            });
        }
    }
    Ok(out)
}

pub async fn render_rows(
    s: &WebState,
    who: &Identity,
    flash: (&str, &'static str),
) -> Result<String, PageError> {
    Ok(TriageRows {
        t: &ZH,
        rows: rows(s, who).await?,
        flash: flash.0.to_owned(),
        flash_kind: flash.1,
    }
    .render()?)
}

pub async fn page(
    State(s): State<WebState>,
    Extension(session): Extension<Session>,
) -> Result<Html<String>, PageError> {
    let rows = render_rows(&s, &session.who, ("", "ok")).await?;
    Ok(Html(
        TriagePage {
            t: &ZH,
            account: session.who.name.clone(),
            csrf: session.csrf(&s.key),
            nav: "triage",
            admin: session.who.is_admin(),
            rows,
        }
        .render()?,
    ))
}
