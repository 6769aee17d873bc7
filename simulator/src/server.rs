//! One fake departmental REST system.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hub_schemas::event::Department;
use tokio::task::JoinHandle;

/// How a department's API lays out its pages: path, cursor parameter and where records and
/// the next cursor sit in the JSON. Each department's system differs, as in real life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiShape {
    pub path: &'static str,
    pub cursor_param: &'static str,
    pub items_pointer: &'static str,
    pub cursor_pointer: &'static str,
}

impl ApiShape {
    pub fn of(department: Department) -> ApiShape {
        match department {
            Department::UrbanManagement => ApiShape {
                path: "/api/v1/cases",
                cursor_param: "cursor",
                items_pointer: "/items",
                cursor_pointer: "/next_cursor",
            },
            Department::Police => ApiShape {
                path: "/jq/api/incidents",
                cursor_param: "pageToken",
                items_pointer: "/data/list",
                cursor_pointer: "/data/nextPageToken",
            },
            Department::Sanitation => ApiShape {
                path: "/api/workorders",
                cursor_param: "cursor",
                items_pointer: "/items",
                cursor_pointer: "/next_cursor",
            },
            Department::CivilAffairs | Department::Residents => ApiShape {
                path: "/welfare/cases",
                cursor_param: "after",
                items_pointer: "/data",
                cursor_pointer: "/cursor",
            },
        }
    }
}

struct Shared {
    department: Department,
    token: String,
    /// Every record ever published, as JSON text.
    records: Mutex<Vec<String>>,
    /// Every `fail_every`-th request answers 503 (0 = never).
    fail_every: AtomicU64,
    requests: AtomicU64,
    failures: AtomicU64,
}

/// A running fake; stops when dropped.
pub struct FakeDepartment {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl FakeDepartment {
    /// Start on `addr` (port 0 picks a free one).
    pub async fn start(
        department: Department,
        token: &str,
        addr: SocketAddr,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            department,
            token: token.to_owned(),
            records: Mutex::new(Vec::new()),
            fail_every: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        });
        let shape = ApiShape::of(department);
        let app = Router::new()
            .route(shape.path, get(list))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "fake departmental server stopped");
            }
        });
        Ok(FakeDepartment { shared, addr, task })
    }

    pub fn department(&self) -> Department {
        self.shared.department
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn shape(&self) -> ApiShape {
        ApiShape::of(self.shared.department)
    }

    /// A cheap handle that publishes to this fake from another task.
    pub fn publisher(&self) -> Publisher {
        Publisher(self.shared.clone())
    }

    /// Publish one record. Any JSON value goes, so tests can inject records the hub cannot
    /// map (a missing field, a wrong type, a bare string).
    pub fn publish(&self, record: &serde_json::Value) {
        self.publisher().publish(record);
    }

    pub fn published(&self) -> usize {
        self.shared.records.lock().expect("records lock").len()
    }

    /// Make every `n`-th request fail with 503 (0 turns failures off).
    pub fn fail_every(&self, n: u64) {
        self.shared.fail_every.store(n, Ordering::Relaxed);
    }

    pub fn requests_served(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    pub fn failures_injected(&self) -> u64 {
        self.shared.failures.load(Ordering::Relaxed)
    }
}

/// Publishes records to a running fake; see [`FakeDepartment::publisher`].
#[derive(Clone)]
pub struct Publisher(Arc<Shared>);

impl Publisher {
    pub fn department(&self) -> Department {
        self.0.department
    }

    pub fn publish(&self, record: &serde_json::Value) {
        self.0
            .records
            .lock()
            .expect("records lock")
            .push(record.to_string());
    }
}

impl Drop for FakeDepartment {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn list(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(params): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let n = shared.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let expected = format!("Bearer {}", shared.token);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (StatusCode::UNAUTHORIZED, "invalid token").into_response();
    }
    let every = shared.fail_every.load(Ordering::Relaxed);
    if every > 0 && n.is_multiple_of(every) {
        shared.failures.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::SERVICE_UNAVAILABLE, "upstream database busy").into_response();
    }
    let shape = ApiShape::of(shared.department);
    let start: usize = match params.get(shape.cursor_param) {
        None => 0,
        Some(c) => match c.parse() {
            Ok(v) => v,
            Err(_) => return (StatusCode::BAD_REQUEST, "bad cursor").into_response(),
        },
    };
    let limit: usize = params
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(50)
        .clamp(1, 500);
    let (items, next) = {
        let records = shared.records.lock().expect("records lock");
        let start = start.min(records.len());
        let end = (start + limit).min(records.len());
        (records[start..end].join(","), end)
    };
    // The cursor is the position after the last record served: resuming from it never skips
    // or repeats a record, and an empty page keeps the caller where it is.
    let body = page_body(shared.department, &items, &next.to_string());
    ([("content-type", "application/json")], body).into_response()
}

fn page_body(department: Department, items: &str, next: &str) -> String {
    let next = serde_json::to_string(next).expect("string serialises");
    let items = format!("[{items}]");
    match department {
        Department::Police => {
            format!(r#"{{"code":0,"msg":"ok","data":{{"list":{items},"nextPageToken":{next}}}}}"#)
        }
        Department::CivilAffairs | Department::Residents => {
            format!(r#"{{"data":{items},"cursor":{next}}}"#)
        }
        _ => format!(r#"{{"items":{items},"next_cursor":{next}}}"#),
    }
}
