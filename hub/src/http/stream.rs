//! `GET /api/v1/console/stream?community=|street=|unit=`: a live stream of task changes in a
//! scope, as server-sent events, for dispatch consoles.
//!
//! The stream tails the outbox — every task event is written there with the change that
//! caused it, whichever hub process made it — so a console sees the router's dispatches, other
//! consoles' actions and the SLA tracker's warnings, breaches and escalations alike. One
//! supervised task per process (`crate::pipeline::live_feed`) reads the outbox and hands
//! each new page to every open stream; a stream that is behind (it resumed, or fell behind the fan-out) reads
//! what it missed from the store first. Each
//! event's SSE id is its outbox id: a console that reconnects with `Last-Event-ID` misses
//! nothing. Without one the stream starts at the newest entry. The account's scope narrows
//! the stream as it narrows lists; a scope outside the account's is refused with 403. An
//! account holds at most [`StreamLimits::PER_ACCOUNT`] streams at once (429 beyond).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use hub_router::task::Task;
use hub_store::{OutboxEvent, TaskEvent, TaskFilter, TaskStore};
use serde_json::json;
use tokio::sync::broadcast;

use crate::context::access::Identity;
use crate::http::auth::Caller;
use crate::http::console::ConsoleState;
use crate::http::{ApiError, ApiQuery};
use crate::infra::shutdown::Shutdown;
use crate::infra::telemetry;
use crate::pipeline::live_feed::{Page, PAGE};

/// Tasks remembered for scope checks before the cache is emptied.
const CACHE: usize = 10_000;

/// Live streams open per account.
#[derive(Default)]
pub struct StreamLimits {
    open: Mutex<HashMap<String, usize>>,
}

impl StreamLimits {
    /// A console needs one or two (a tab, a wall screen); more is a leak or an attack.
    pub const PER_ACCOUNT: usize = 4;

    fn open(self: &Arc<Self>, account: &str) -> Option<StreamPermit> {
        let mut open = self.open.lock().expect("stream limits lock");
        let n = open.entry(account.to_owned()).or_insert(0);
        if *n >= Self::PER_ACCOUNT {
            return None;
        }
        *n += 1;
        Some(StreamPermit {
            limits: self.clone(),
            account: account.to_owned(),
        })
    }
}

/// One open stream of an account; closing the stream (dropping it) gives it back.
struct StreamPermit {
    limits: Arc<StreamLimits>,
    account: String,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().expect("stream limits lock");
        if let Some(n) = open.get_mut(&self.account) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.account);
            }
        }
    }
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct StreamQuery {
    community: Option<String>,
    street: Option<String>,
    unit: Option<String>,
}

struct Tail {
    _permit: StreamPermit,
    store: Arc<dyn TaskStore>,
    who: Identity,
    filter: TaskFilter,
    after: i64,
    pending: VecDeque<Event>,
    tasks: HashMap<String, Option<Task>>,
    pages: broadcast::Receiver<Arc<Page>>,
    position: tokio::sync::watch::Receiver<i64>,
    shutdown: Shutdown,
}

#[utoipa::path(get, path = "/api/v1/console/stream", tag = "console", params(StreamQuery, ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event")), security(("bearer" = [])), responses((status = 200, description = "Server-sent events, one per task change in the scope", content_type = "text/event-stream"), (status = 403, description = "Another scope"), (status = 429, description = "The account holds its most live streams already, or too many failed sign-ins"), (status = 400, description = "A parameter is unknown, repeated or malformed; the error names it"), (status = 401, description = "No valid bearer token"), (status = 429, description = "Too many failed sign-ins from this address")))]
pub(crate) async fn stream(
    State(s): State<ConsoleState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<StreamQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let bad = |m: String| ApiError::msg(StatusCode::BAD_REQUEST, m);
    let mut filter = TaskFilter {
        community_code: q.community,
        street_code: q.street,
        unit_id: q.unit,
        ..TaskFilter::default()
    };
    if !who.narrow(&mut filter) {
        return Err(ApiError::msg(
            StatusCode::FORBIDDEN,
            format!("{} may not follow tasks outside its scope", who.name),
        ));
    }
    let store = s.cases.store.clone();
    let after = match headers.get("last-event-id") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .ok_or_else(|| bad("Last-Event-ID must be the id of an event of this stream".into()))?,
        None => store.outbox_head().await?,
    };
    let Some(permit) = s.streams.open(&who.name) else {
        metrics::counter!(telemetry::HTTP_REFUSED, "reason" => "too_many_streams").increment(1);
        return Err(ApiError::msg(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "{} already has {} live streams open; close one first",
                who.name,
                StreamLimits::PER_ACCOUNT
            ),
        ));
    };
    let tail = Tail {
        _permit: permit,
        store,
        who,
        filter,
        after,
        pending: VecDeque::new(),
        tasks: HashMap::new(),
        pages: s.live.pages.subscribe(),
        position: s.live.position.subscribe(),
        shutdown: s.shutdown.clone(),
    };
    let events = futures::stream::unfold(tail, |mut tail| async move {
        let event = tail.next().await?;
        Some((Ok(event), tail))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

impl Tail {
    /// The next event in scope; `None` when the hub shuts down.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            // Behind the feed (resumed from an older event, or too slow for the fan-out):
            // what was missed comes from the store, in order.
            let feed_at = *self.position.borrow_and_update();
            if self.after < feed_at {
                match self.store.outbox_after(self.after, None, PAGE).await {
                    Ok(entries) if entries.is_empty() => self.after = feed_at,
                    Ok(entries) => self.take(&entries).await,
                    Err(e) => {
                        tracing::warn!(error = %e, "live stream cannot read the outbox; retrying");
                        if !self.shutdown.sleep(Duration::from_secs(1)).await {
                            return None;
                        }
                    }
                }
                continue;
            }
            tokio::select! {
                page = self.pages.recv() => match page {
                    // A page that starts past this stream's position: the store read above
                    // fills the gap at the next turn.
                    Ok(page) if page.after > self.after => {}
                    Ok(page) => self.take(&page.entries).await,
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = self.shutdown.wait() => return None,
            }
        }
    }

    /// Queues the entries after this stream's position that are in its scope.
    async fn take(&mut self, entries: &[OutboxEvent]) {
        for entry in entries {
            if entry.id <= self.after {
                continue;
            }
            self.after = entry.id;
            if let Some(event) = self.in_scope(entry).await {
                self.pending.push_back(event);
            }
        }
    }

    /// The SSE event for an outbox entry, if its task is in the stream's scope.
    async fn in_scope(&mut self, entry: &OutboxEvent) -> Option<Event> {
        let task_id = entry.event.task_id();
        if task_id.is_empty() {
            return None; // a returned event has no task, hence no community console
        }
        if !self.tasks.contains_key(task_id) {
            if self.tasks.len() >= CACHE {
                self.tasks.clear();
            }
            let task = self.store.get_task(task_id).await.ok().flatten();
            self.tasks.insert(task_id.to_owned(), task);
        }
        let task = self.tasks.get(task_id)?.as_ref()?;
        if !self.who.may_see(task) || !matches(&self.filter, task) {
            return None;
        }
        let f = &task.fields;
        let data = match &entry.event {
            TaskEvent::TaskDispatched(d) => json!({
                "task_id": d.task_id,
                "what": "dispatched",
                "status": "dispatched",
                "at": entry.created_at,
            }),
            TaskEvent::TaskStatusChanged(c) => json!({
                "task_id": c.task_id,
                "what": c.note,
                "from": c.from_status,
                "status": c.to_status,
                "actor": c.actor,
                "at": c.changed_at,
            }),
            TaskEvent::EventReturned(_) => return None,
        };
        let mut data = data;
        data["community_code"] = json!(f.place.community_code);
        data["street_code"] = json!(f.place.street_code);
        data["lead_unit"] = json!(f.lead_unit.as_ref().map(|u| &u.unit_id));
        Some(
            Event::default()
                .id(entry.id.to_string())
                .event(entry.event.kind())
                .data(data.to_string()),
        )
    }
}

/// Whether a task is inside a (narrowed) scope filter.
fn matches(filter: &TaskFilter, task: &Task) -> bool {
    let f = &task.fields;
    let eq = |want: &Option<String>, have: &Option<String>| {
        want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
    };
    eq(&filter.community_code, &f.place.community_code)
        && eq(&filter.street_code, &f.place.street_code)
        && filter.unit_id.as_ref().is_none_or(|u| {
            f.lead_unit
                .iter()
                .chain(f.co_handlers.iter())
                .any(|a| &a.unit_id == u)
        })
}
