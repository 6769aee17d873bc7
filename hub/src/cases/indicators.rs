//! The facts of each case the indicators (考核) are computed from
//! (`hub_cases::indicators`): when it was dispatched, signed for, resolved and closed (its
//! history), whether it was reworked, extended or called back (its workflow state), and its
//! deadlines (its clocks).

use hub_cases::indicators::CaseFacts;
use hub_cases::ClockKind;
use hub_router::task::{Task, TaskStatus};
use hub_store::{StoreError, TaskFilter, TaskStore};

/// The facts of every case matching `filter` (paged through the store).
pub async fn case_facts(
    store: &dyn TaskStore,
    mut filter: TaskFilter,
) -> Result<Vec<CaseFacts>, StoreError> {
    filter.limit = TaskFilter::MAX_LIMIT;
    filter.offset = 0;
    let mut out = Vec::new();
    loop {
        let page = store.list_tasks(&filter).await?;
        for task in &page {
            out.push(facts_of(store, task).await?);
        }
        if page.len() < filter.limit as usize {
            return Ok(out);
        }
        filter.offset += filter.limit;
    }
}

async fn facts_of(store: &dyn TaskStore, task: &Task) -> Result<CaseFacts, StoreError> {
    let id = &task.fields.task_id;
    let history = store.task_history(id).await?;
    let record = store.workflow(id).await?;
    let clocks = store.task_clocks(id).await?;
    // Entries that change the status (not alerts, escalations or report-ins).
    let moves = || {
        history
            .iter()
            .filter(|h| h.from_status != Some(h.to_status))
    };
    let first = |s: TaskStatus| moves().find(|h| h.to_status == s).map(|h| h.at);
    let last = |s: TaskStatus| moves().rfind(|h| h.to_status == s).map(|h| h.at);
    let state = record.as_ref().and_then(|r| r.state.as_ref());
    let sign_for_due = clocks
        .iter()
        .find(|c| c.clock.kind == ClockKind::SignFor)
        .and_then(|c| c.clock.deadline());
    let handling_due = clocks
        .iter()
        .filter(|c| matches!(c.clock.kind, ClockKind::Handling { .. } | ClockKind::Rework))
        .filter_map(|c| c.clock.deadline())
        .max();
    let f = &task.fields;
    Ok(CaseFacts {
        task_id: id.clone(),
        street_code: f.place.street_code.clone(),
        community_code: f.place.community_code.clone(),
        lead_unit: f.lead_unit.as_ref().map(|u| u.unit_id.clone()),
        status: task.status,
        created_at: f.created_at,
        dispatched_at: first(TaskStatus::Dispatched),
        signed_for_at: first(TaskStatus::SignedFor),
        resolved_at: last(TaskStatus::Resolved),
        closed_at: last(TaskStatus::Closed),
        sign_for_due,
        handling_due,
        reworked: state.is_some_and(|s| s.rework_count > 0),
        extended: state.is_some_and(|s| s.extension_count > 0),
        satisfied: state.and_then(|s| s.callback_satisfied),
    })
}
