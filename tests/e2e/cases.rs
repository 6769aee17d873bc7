//! The case workflow through the console API: every lifecycle action over HTTP, refusals
//! naming the state and the allowed moves, and the authorization matrix (no cross-scope read
//! or write, for every endpoint and role).

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use hub::startup::{self, Roles, RunningHub};
use hub_router::explanation::Explanation;
use hub_router::place::{PlaceLevel, PlaceMethod, ResolvedPlace};
use hub_router::priority::Priority;
use hub_router::task::{AssignedUnit, NewTask};
use hub_router::taxonomy::CategoryRef;
use hub_schemas::event::{CivicEvent, Department, Location};
use hub_tests::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const API_ONLY: Roles = Roles {
    connectors: false,
    router: false,
    api: true,
};

pub(crate) fn unit(id: &str, role: &str) -> AssignedUnit {
    AssignedUnit {
        unit_id: id.to_owned(),
        role: hub_router::city::UnitRole::parse(role).expect("a unit role"),
        name: id.to_owned(),
    }
}

/// A dispatched task in `community` (of `street`), from `department`, led by `lead`.
pub(crate) fn task(
    source_id: &str,
    department: Department,
    street: &str,
    community: &str,
    lead: AssignedUnit,
    co_handlers: Vec<AssignedUnit>,
) -> NewTask {
    let source_system = format!("{}.test", department.as_str());
    let event_id = CivicEvent::derive_id(&source_system, source_id);
    let category = CategoryRef {
        code: "E0101".to_owned(),
        name: "私搭乱建".to_owned(),
        group: "illegal_construction".to_owned(),
    };
    let place = ResolvedPlace {
        level: PlaceLevel::Community,
        method: PlaceMethod::Address,
        district_code: Some("510504".to_owned()),
        street_code: Some(street.to_owned()),
        community_code: Some(community.to_owned()),
        grid_code: None,
        matched_area: community.to_owned(),
        point: None,
    };
    let now = Utc::now();
    NewTask {
        task_id: NewTask::derive_id(&event_id),
        event_id,
        source_system,
        source_id: source_id.to_owned(),
        department,
        category_code: "010101".to_owned(),
        category_name: None,
        category: category.clone(),
        priority: Priority::Normal,
        sla_policy: None,
        description: "test case".to_owned(),
        location: Location {
            point: None,
            address: Some("test".to_owned()),
            grid_code: None,
        },
        occurred_at: now,
        received_at: now,
        place,
        lead_unit: Some(lead),
        co_handlers,
        explanation: Explanation {
            place_method: PlaceMethod::Address,
            place_level: PlaceLevel::Community,
            matched_area: community.to_owned(),
            place_detail: String::new(),
            rule_id: "test".to_owned(),
            rules_version: "test".to_owned(),
            admission: None,
            category: Some(category),
            category_detail: String::new(),
            rule_detail: String::new(),
            assignment_detail: String::new(),
            merged_into: None,
        },
        rules_version: "test".to_owned(),
        created_at: now,
    }
}

pub(crate) struct Api {
    pub base: String,
    pub client: reqwest::Client,
}

impl Api {
    pub async fn get(&self, token: Option<&str>, path: &str) -> (StatusCode, Value) {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("GET");
        let status = resp.status();
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn post(&self, token: Option<&str>, path: &str, body: Value) -> (StatusCode, Value) {
        let mut req = self.client.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("POST");
        let status = resp.status();
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn act(&self, token: &str, id: &str, body: Value) -> (StatusCode, Value) {
        self.post(Some(token), &format!("/api/v1/tasks/{id}/actions"), body)
            .await
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    _broker: hub::infra::broker::EmbeddedBroker,
    hub: RunningHub,
    api: Api,
    /// In 清泉社区 (510504001002, street 510504001), from urban management, an urban
    /// management squad co-handling.
    a: String,
    /// In 翠屏社区 (510504002001, street 510504002), from police, led by its police station.
    b: String,
    store_url: String,
}

async fn fixture() -> Fixture {
    fixture_on(Backend::Sqlite).await
}

async fn fixture_on(backend: Backend) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let url = fresh_store_url(backend, dir.path()).await;
    let config = hub_config(dir.path(), broker.bootstrap(), &url);
    let hub = startup::start(
        &config,
        API_ONLY,
        with_demo_tokens(Arc::new(|_: &str| None)),
    )
    .await
    .expect("hub starts");
    let a = task(
        "A-1",
        Department::UrbanManagement,
        "510504001",
        "510504001002",
        unit("510504001002.workstation", "workstation"),
        vec![unit(
            "510504001002.urban_management_squad",
            "urban_management_squad",
        )],
    );
    let b = task(
        "B-1",
        Department::Police,
        "510504002",
        "510504002001",
        unit("510504002001.police_station", "police_station"),
        vec![],
    );
    for t in [&a, &b] {
        let opening = hub.cases.open(t);
        hub.store.create_task(t, &opening).await.unwrap();
    }
    let api = Api {
        base: format!("http://{}", hub.api_addr.unwrap()),
        client: reqwest::Client::new(),
    };
    Fixture {
        _dir: dir,
        _broker: broker,
        hub,
        api,
        a: a.task_id,
        b: b.task_id,
        store_url: url,
    }
}

const ADMIN: &str = "demo-admin";
const STREET1: &str = "demo-street-510504001";
const STREET2: &str = "demo-street-510504002";
const QINGQUAN: &str = "demo-community-510504001002";
const WUTONG: &str = "demo-community-510504001001";
const POLICE: &str = "demo-police";
const URBAN: &str = "demo-urban-management";
const SANITATION: &str = "demo-sanitation";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_lifecycle_action_goes_through_the_console_api() {
    let f = fixture().await;
    let api = &f.api;
    let a = f.a.as_str();

    let (s, w) = api
        .get(Some(QINGQUAN), &format!("/api/v1/tasks/{a}/workflow"))
        .await;
    assert_eq!(s, StatusCode::OK, "{w}");
    assert_eq!(w["state"]["status"], "dispatched");
    assert_eq!(w["version"], 0);
    let kinds: Vec<&str> = w["clocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"]["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"sign_for") && kinds.contains(&"handling"),
        "{w}"
    );
    assert!(w["clocks"][0]["deadline"].is_string(), "{w}");

    // An illegal move names the state and what is allowed.
    let (s, e) = api.act(STREET1, a, json!({"action": "close"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    let msg = e["error"].as_str().unwrap();
    assert!(
        msg.contains("dispatched") && msg.contains("sign_for"),
        "{msg}"
    );
    assert!(
        e["allowed"]
            .as_array()
            .unwrap()
            .contains(&json!("sign_for")),
        "{e}"
    );

    let step = |token: &'static str, body: Value, to: &'static str| {
        let api = &f.api;
        async move {
            let (s, r) = api.act(token, a, body.clone()).await;
            assert_eq!(s, StatusCode::OK, "{body} → {r}");
            assert_eq!(r["to"], to, "{body} → {r}");
            r
        }
    };
    step(
        QINGQUAN,
        json!({"action": "sign_for", "note": "收到"}),
        "signed_for",
    )
    .await;
    step(QINGQUAN, json!({"action": "start"}), "in_progress").await;
    step(
        QINGQUAN,
        json!({"action": "request_extension", "by": "2 days"}),
        "in_progress",
    )
    .await;
    // Extension decisions belong to the level above.
    let (s, _) = api
        .act(QINGQUAN, a, json!({"action": "approve_extension"}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    step(
        STREET1,
        json!({"action": "approve_extension"}),
        "in_progress",
    )
    .await;
    step(
        QINGQUAN,
        json!({"action": "request_extension", "by": "1 days"}),
        "in_progress",
    )
    .await;
    step(
        STREET1,
        json!({"action": "refuse_extension"}),
        "in_progress",
    )
    .await;
    let (s, e) = api
        .act(QINGQUAN, a, json!({"action": "resolve", "feedback": " "}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    step(
        QINGQUAN,
        json!({"action": "resolve", "feedback": "已拆除"}),
        "resolved",
    )
    .await;
    // The community's own workstation handled it: checking its own work is not its call.
    let (s, e) = api.act(QINGQUAN, a, json!({"action": "verify"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    step(
        STREET1,
        json!({"action": "verify", "passed": false, "finding": "仍有残留"}),
        "in_progress",
    )
    .await;
    step(
        QINGQUAN,
        json!({"action": "resolve", "feedback": "已清理"}),
        "resolved",
    )
    .await;
    step(STREET1, json!({"action": "verify"}), "verified").await;
    step(STREET1, json!({"action": "close"}), "closed").await;
    let r = step(
        STREET1,
        json!({"action": "callback", "satisfied": false}),
        "dispatched",
    )
    .await;
    assert_eq!(r["label"], "reopened");
    step(
        QINGQUAN,
        json!({"action": "return", "reason": "not_our_remit"}),
        "returned",
    )
    .await;
    let (s, _) = api
        .act(
            QINGQUAN,
            a,
            json!({"action": "arbitrate", "unit": "510504001002.party_branch"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "arbitration is the level above's");
    let r = step(
        STREET1,
        json!({"action": "arbitrate", "unit": "510504001002.party_branch"}),
        "dispatched",
    )
    .await;
    assert_eq!(r["label"], "re-dispatched");
    // A decision on a stale version is refused and changes nothing.
    let (s, e) = api
        .act(
            QINGQUAN,
            a,
            json!({"action": "sign_for", "expected_version": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    let (s, e) = api
        .act(QINGQUAN, a, json!({"action": "cancel", "reason": "other"}))
        .await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "a cancel for `other` needs a note: {e}"
    );
    step(
        QINGQUAN,
        json!({"action": "cancel", "reason": "duplicate", "note": "同 A-0"}),
        "cancelled",
    )
    .await;
    let (s, e) = api.act(QINGQUAN, a, json!({"action": "sign_for"})).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(e["error"].as_str().unwrap().contains("cancelled"), "{e}");

    // Every action is in the history with its actor, and in the outbox.
    let (_, w) = api
        .get(Some(ADMIN), &format!("/api/v1/tasks/{a}/workflow"))
        .await;
    let history = w["history"].as_array().unwrap();
    assert_eq!(history.len(), 2 + 15, "{w:#}");
    assert_eq!(
        history[2]["actor"],
        "community-510504001002@510504001002.workstation"
    );
    assert!(history[2]["note"].as_str().unwrap().contains("收到"));
    assert_eq!(w["state"]["status"], "cancelled");
    assert_eq!(w["version"], 15);
    let events = f.hub.store.outbox_after(0, None, 1000).await.unwrap();
    let changes = events
        .iter()
        .filter(|e| e.event.task_id() == a && e.event.kind() == "task_status_changed")
        .count();
    assert_eq!(changes, 2 + 15);
    f.hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_matrix_allows_no_cross_scope_read_or_write() {
    let f = fixture().await;
    let api = &f.api;
    let (a, b) = (f.a.as_str(), f.b.as_str());
    // Who may see which task.
    let sees = [
        (ADMIN, true, true),
        (STREET1, true, false),
        (STREET2, false, true),
        (QINGQUAN, true, false),
        (WUTONG, false, false),
        (POLICE, false, true),
        (URBAN, true, false),
        (SANITATION, false, false),
    ];
    for (token, sees_a, sees_b) in sees {
        for (id, allowed) in [(a, sees_a), (b, sees_b)] {
            // Outside the scope is the same 404 as a task that does not exist.
            let want = if allowed {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            };
            for path in [
                format!("/api/v1/tasks/{id}"),
                format!("/api/v1/tasks/{id}/workflow"),
            ] {
                let (s, body) = api.get(Some(token), &path).await;
                assert_eq!(s, want, "{token} GET {path}: {body}");
            }
            // Writing: out of scope is 404 and changes nothing; a department that only
            // reported or co-handles a task may not handle it (403).
            let before = f.hub.store.workflow(id).await.unwrap().unwrap().version;
            let handles = allowed && token != URBAN;
            let (s, body) = api
                .act(token, id, json!({"action": "await_resident"}))
                .await;
            let want_act = if !allowed {
                StatusCode::NOT_FOUND
            } else if handles {
                // Allowed in scope, but illegal in `dispatched`: 409, not 403.
                StatusCode::CONFLICT
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(s, want_act, "{token} acts on {id}: {body}");
            let (s, body) = api
                .act(
                    token,
                    id,
                    json!({"action": "sign_for", "expected_version": 99}),
                )
                .await;
            assert!(
                s == want_act || (handles && s == StatusCode::CONFLICT),
                "{token} signs for {id}: {s} {body}"
            );
            assert_eq!(
                f.hub.store.workflow(id).await.unwrap().unwrap().version,
                before
            );
        }
        // Listings hold only what the account may see, whatever it asks for.
        for path in [
            "/api/v1/tasks?limit=1000",
            "/api/v1/console/tasks?limit=1000",
        ] {
            let (s, body) = api.get(Some(token), path).await;
            assert_eq!(s, StatusCode::OK, "{token} GET {path}: {body}");
            let ids: Vec<&str> = body["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    t["task_id"]
                        .as_str()
                        .or_else(|| t["fields"]["task_id"].as_str())
                        .unwrap_or_default()
                })
                .collect();
            assert_eq!(ids.contains(&a), sees_a, "{token} GET {path}: {ids:?}");
            assert_eq!(ids.contains(&b), sees_b, "{token} GET {path}: {ids:?}");
        }
        // Asking for another scope outright is refused.
        if token != ADMIN && token != POLICE && token != URBAN && token != SANITATION {
            for path in [
                "/api/v1/tasks?community=510504003001",
                "/api/v1/console/tasks?community=510504003001",
            ] {
                let (s, _) = api.get(Some(token), path).await;
                assert_eq!(s, StatusCode::FORBIDDEN, "{token} GET {path}");
            }
        }
        // Administrator-only: routing dry-run.
        let (s, _) = api
            .post(Some(token), "/api/v1/route/dry-run", json!({}))
            .await;
        if token == ADMIN {
            assert_eq!(s, StatusCode::BAD_REQUEST, "admin reaches the dry-run");
        } else {
            assert_eq!(s, StatusCode::FORBIDDEN, "{token} dry-run");
        }
        // Returns: administrators, and a department for its own.
        let (s, _) = api
            .get(Some(token), "/api/v1/returns?department=police")
            .await;
        let want = if token == ADMIN || token == POLICE {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(s, want, "{token} returns");
    }
    // No token or a wrong one: 401 everywhere under /api/, until the address has failed
    // ten times: then 429 for a minute, whatever it presents; health and metrics stay open.
    let mut failures = 0;
    let mut refused = |s: StatusCode, what: &str| {
        let want = if failures < hub::context::access::LoginThrottle::MAX_FAILURES {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        failures += 1;
        assert_eq!(s, want, "{what} (failure {failures})");
    };
    for token in [None, Some("nope")] {
        for path in [
            "/api/v1/tasks".to_owned(),
            format!("/api/v1/tasks/{a}"),
            format!("/api/v1/tasks/{a}/workflow"),
            "/api/v1/console/tasks".to_owned(),
            "/api/v1/returns".to_owned(),
        ] {
            let (s, _) = api.get(token, &path).await;
            refused(s, &format!("{token:?} GET {path}"));
        }
        let (s, _) = api
            .post(
                token,
                &format!("/api/v1/tasks/{a}/actions"),
                json!({"action": "sign_for"}),
            )
            .await;
        refused(s, &format!("{token:?} POST actions"));
    }
    let (s, _) = api.get(Some(ADMIN), "/api/v1/tasks").await;
    assert_eq!(
        s,
        StatusCode::TOO_MANY_REQUESTS,
        "even a good token waits out the throttle"
    );
    assert_eq!(f.hub.store.workflow(a).await.unwrap().unwrap().version, 0);
    for path in ["/healthz", "/metrics"] {
        let resp = reqwest::get(format!("{}{path}", api.base)).await.unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
    }
    let _ = TimeDelta::zero();
    f.hub.stop().await;
}

/// Reads server-sent events from `resp` until `until` holds for one of them (or 20 s pass):
/// every event as (id, event name, data).
async fn read_events(
    resp: &mut reqwest::Response,
    until: impl Fn(&(String, String, Value)) -> bool,
) -> Vec<(String, String, Value)> {
    let mut buf = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("the awaited event did not come; got {events:?}"))
            .expect("stream readable")
            .expect("stream still open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let (mut id, mut name, mut data) = (String::new(), String::new(), Value::Null);
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = serde_json::from_str(v.trim()).unwrap_or(Value::Null);
                }
            }
            if id.is_empty() {
                continue; // a keep-alive comment
            }
            let event = (id, name, data);
            let done = until(&event);
            events.push(event);
            if done {
                return events;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_stream_shows_each_scope_its_own_changes_and_resumes_after_a_reconnect() {
    let f = fixture().await;
    let open = |token: &'static str, query: &'static str, last: Option<String>| {
        let mut req = f
            .api
            .client
            .get(format!("{}/api/v1/console/stream{query}", f.api.base))
            .bearer_auth(token);
        if let Some(id) = last {
            req = req.header("Last-Event-ID", id);
        }
        req.send()
    };
    // Outside its scope: refused, as for lists.
    let refused = open(QINGQUAN, "?community=510504002001", None)
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let unauthenticated = f
        .api
        .client
        .get(format!("{}/api/v1/console/stream", f.api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);

    let mut community = open(QINGQUAN, "", None).await.unwrap();
    assert_eq!(community.status(), StatusCode::OK);
    assert!(community.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut street2 = open(STREET2, "", None).await.unwrap();
    // B (another street) changes first, then A.
    for id in [&f.b, &f.a] {
        let (status, body) = f.api.act(ADMIN, id, json!({ "action": "sign_for" })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let seen = read_events(&mut community, |(_, _, d)| d["task_id"] == json!(f.a)).await;
    assert!(
        seen.iter().all(|(_, _, d)| d["task_id"] == json!(f.a)),
        "the community saw another community's task: {seen:?}"
    );
    let (signed_id, name, data) = seen.last().unwrap().clone();
    assert_eq!(name, "task_status_changed");
    assert_eq!(data["status"], json!("signed_for"));
    assert_eq!(data["community_code"], json!("510504001002"));
    let other = read_events(&mut street2, |(_, _, d)| d["task_id"] == json!(f.b)).await;
    assert!(
        other.iter().all(|(_, _, d)| d["task_id"] == json!(f.b)),
        "{other:?}"
    );

    // The console drops; A moves on meanwhile; reconnecting with the last id it saw gives
    // it what it missed, and nothing twice.
    drop(community);
    let (status, body) = f
        .api
        .act(QINGQUAN, &f.a, json!({ "action": "start" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut resumed = open(QINGQUAN, "", Some(signed_id.clone())).await.unwrap();
    let missed = read_events(&mut resumed, |(_, _, d)| d["task_id"] == json!(f.a)).await;
    let (id, _, data) = &missed[0];
    assert!(id.parse::<i64>().unwrap() > signed_id.parse::<i64>().unwrap());
    assert_eq!(data["status"], json!("in_progress"));
    drop(resumed);
    drop(street2);
    f.hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indicators_per_community_street_and_unit_over_http_and_as_csv() {
    let f = fixture().await;
    // A is handled to the end, reworked once, and the resident is satisfied; B is left.
    for body in [
        json!({ "action": "sign_for" }),
        json!({ "action": "start" }),
        json!({ "action": "resolve", "feedback": "structure removed" }),
        json!({ "action": "rework", "finding": "debris left behind" }),
        json!({ "action": "resolve", "feedback": "debris cleared" }),
        json!({ "action": "verify" }),
        json!({ "action": "close" }),
        json!({ "action": "callback", "satisfied": true }),
    ] {
        let (status, resp) = f.api.act(ADMIN, &f.a, body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body}: {resp}");
    }
    let today = Utc::now().date_naive();
    let period = format!("from={today}&to={}", today.succ_opt().unwrap());
    let (status, report) = f
        .api
        .get(
            Some(ADMIN),
            &format!("/api/v1/reports/indicators?by=community&{period}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let groups = report["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{report}");
    let a = groups.iter().find(|g| g["key"] == "510504001002").unwrap();
    assert_eq!(a["received"], json!(1));
    assert_eq!(a["closed"], json!(1));
    assert_eq!(a["closing_rate"], json!(1.0));
    assert_eq!(a["on_time_closing_rate"], json!(1.0));
    assert_eq!(a["rework_rate"], json!(1.0));
    assert_eq!(a["response_rate"], json!(1.0));
    assert_eq!(a["satisfaction_rate"], json!(1.0));
    let b = groups.iter().find(|g| g["key"] == "510504002001").unwrap();
    assert_eq!(
        (b["received"].clone(), b["closed"].clone()),
        (json!(1), json!(0))
    );
    assert_eq!(b["closing_rate"], Value::Null, "B is not yet due to close");
    assert_eq!(b["resolution_rate"], json!(0.0));

    // A period without the cases has no groups; a community account sees only its own.
    let (_, empty) = f
        .api
        .get(
            Some(ADMIN),
            "/api/v1/reports/indicators?from=2020-01-01&to=2020-02-01",
        )
        .await;
    assert_eq!(empty["groups"], json!([]));
    let (_, own) = f
        .api
        .get(Some(QINGQUAN), "/api/v1/reports/indicators?by=street")
        .await;
    assert_eq!(own["cases"], json!(1), "{own}");
    let (status, _) = f
        .api
        .get(
            Some(QINGQUAN),
            "/api/v1/reports/indicators?community=510504002001",
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, err) = f
        .api
        .get(Some(ADMIN), "/api/v1/reports/indicators?by=grid")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(err["error"].as_str().unwrap().contains("`by`"), "{err}");

    // `hub report --csv`, the assessor's spreadsheet, per unit.
    let out = tokio::process::Command::new(workspace_root().join("target/debug/hub"))
        .args(["report", "--api", &f.api.base, "--by", "unit", "--csv"])
        .env("HUB_API_TOKEN", STREET1)
        .output()
        .await
        .expect("run hub report");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("key,received,filed"), "{csv}");
    assert!(lines[0].contains("按期结案率"), "{csv}");
    assert_eq!(
        lines.len(),
        2,
        "street 510504001 has one unit with cases: {csv}"
    );
    assert!(
        lines[1].starts_with("510504001002.workstation,1,1,1,1,1,1,1,1,1,0,1,1,"),
        "{csv}"
    );
    f.hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_holds_a_bounded_number_of_live_streams() {
    let f = fixture().await;
    let open = || async {
        f.api
            .client
            .get(format!("{}/api/v1/console/stream", f.api.base))
            .bearer_auth(WUTONG)
            .send()
            .await
            .unwrap()
    };
    let mut streams = Vec::new();
    for _ in 0..hub::http::stream::StreamLimits::PER_ACCOUNT {
        let s = open().await;
        assert_eq!(s.status(), StatusCode::OK);
        streams.push(s);
    }
    let refused = open().await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another account is not affected.
    let other = f
        .api
        .client
        .get(format!("{}/api/v1/console/stream", f.api.base))
        .bearer_auth(QINGQUAN)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    // A closed stream gives its place back.
    drop(streams.pop());
    eventually(Duration::from_secs(30), "a place freed", || async {
        let s = open().await;
        (s.status() == StatusCode::OK).then_some(())
    })
    .await;
    f.hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_names_a_history_entry_edited_in_sqlite() {
    audit_verify_names_a_history_entry_edited_in_the_database(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_names_a_history_entry_edited_in_postgres() {
    audit_verify_names_a_history_entry_edited_in_the_database(Backend::Postgres).await;
}

/// A case history changed in the database behind the hub's back: `hub audit verify` names
/// the task and the entry and exits non-zero; untouched histories verify clean; a history
/// cut back to a shorter, whole chain after a signed checkpoint is caught as well.
async fn audit_verify_names_a_history_entry_edited_in_the_database(backend: Backend) {
    let f = fixture_on(backend).await;
    let (a, b) = (f.a.as_str(), f.b.as_str());
    for (token, task, body) in [
        (QINGQUAN, a, json!({"action": "sign_for", "note": "收到"})),
        (QINGQUAN, a, json!({"action": "start"})),
        (ADMIN, b, json!({"action": "sign_for"})),
    ] {
        let (s, r) = f.api.act(token, task, body).await;
        assert_eq!(s, StatusCode::OK, "{r}");
    }
    let audit = |args: Vec<&str>| {
        let url = f.store_url.clone();
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        async move {
            let out = tokio::process::Command::new(workspace_root().join("target/debug/hub"))
                .arg("audit")
                .args(args)
                .arg("--config")
                .arg(workspace_root().join("config/hub.toml"))
                .env("HUB__STORE__URL", format!("\"{url}\""))
                .env("HUB_AUDIT_KEY", "the city's audit key")
                .env("RUST_LOG", "warn")
                .output()
                .await
                .expect("run hub audit");
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            (out.status.success(), format!("{stdout}{stderr}"))
        }
    };
    let (ok, out) = audit(vec!["checkpoint"]).await;
    assert!(
        ok && out.contains("checkpoint 1: 2 head(s)") && out.contains("signed"),
        "{out}"
    );
    let (ok, out) = audit(vec!["verify"]).await;
    assert!(
        ok && out.contains("OK: every chain and checkpoint holds"),
        "{out}"
    );
    assert!(out.contains("signatures: 1 held"), "{out}");

    // The sign-for is moved an hour earlier: the task would count as signed for on time.
    let history = f.hub.store.task_history(a).await.unwrap();
    let sign_for = history
        .iter()
        .find(|e| e.to_status.as_str() == "signed_for")
        .expect("a sign-for entry");
    execute_sql(
        &f.store_url,
        &format!(
            "UPDATE task_history SET at = at - 3600000 WHERE task_id = '{a}' AND seq = {}",
            sign_for.seq
        ),
    )
    .await;
    let (ok, out) = audit(vec!["verify"]).await;
    assert!(!ok, "a broken chain fails the command: {out}");
    assert!(
        out.contains(&format!(
            "task {a} entry {}: the entry's content does not match its hash",
            sign_for.seq
        )),
        "{out}"
    );
    assert!(out.contains("BROKEN: 1 link(s)"), "{out}");
    let (ok, out) = audit(vec!["verify", "--task", b]).await;
    assert!(ok, "the other task is untouched: {out}");

    // The other task's last entry (its sign-for) is deleted: what is left is a whole chain,
    // but not the one the checkpoint recorded.
    let last = f
        .hub
        .store
        .task_history(b)
        .await
        .unwrap()
        .last()
        .unwrap()
        .seq;
    execute_sql(
        &f.store_url,
        &format!("DELETE FROM task_history WHERE task_id = '{b}' AND seq = {last}"),
    )
    .await;
    let (ok, out) = audit(vec!["verify", "--task", b, "--json"]).await;
    assert!(!ok, "{out}");
    let json_end = out.rfind('}').unwrap() + 1;
    let report: Value = serde_json::from_str(&out[..json_end]).unwrap();
    assert_eq!(report["broken"][0]["task_id"], b, "{report}");
    assert_eq!(report["broken"][0]["seq"], last, "{report}");
    assert!(
        report["broken"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("checkpoint 1 recorded is gone"),
        "{report}"
    );
    f.hub.stop().await;
}

/// Runs `sql` on the store's database over a connection of its own, as someone with write
/// access to the database (not through the hub) would.
async fn execute_sql(url: &str, sql: &str) {
    use sqlx::Connection;
    let done = if url.starts_with("sqlite") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query(sql)
            .execute(&mut conn)
            .await
            .unwrap()
            .rows_affected()
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(sql)
            .execute(&mut conn)
            .await
            .unwrap()
            .rows_affected()
    };
    assert_eq!(done, 1, "{sql}");
}

/// A console session of `token` on `base`: its cookie and the page's CSRF token.
async fn console_session(base: &str, token: &str) -> (String, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}&next=%2Fqueue"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "sign-in of {token}");
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = client
        .get(format!("{base}/queue"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split("\"x-csrf-token\": \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page carries the session's CSRF token")
        .to_owned();
    (cookie, csrf)
}

/// Who did what through the API and the console is kept: actor, role, action, target,
/// time, source address and outcome, refusals included; an administrator reads it as JSON,
/// as CSV, on the 管理 page and with `hub audit actions`; nobody else reads it; reading it
/// adds nothing to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_action_trail_records_who_did_what_through_the_api_and_the_console() {
    let f = fixture().await;
    let (api, a) = (&f.api, f.a.as_str());
    let before = Utc::now();
    let (s, r) = api.act(QINGQUAN, a, json!({"action": "sign_for"})).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    // Outside 梧桐社区's scope: refused as if the task did not exist, and recorded.
    let (s, _) = api.act(WUTONG, a, json!({"action": "start"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Its own workstation leads: closing its own work is not its to do.
    let (s, _) = api.act(QINGQUAN, a, json!({"action": "close"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // The console: a refused sign-in, then the street's dispatcher starts the handling.
    let client = reqwest::Client::new();
    let refused = client
        .post(format!("{}/login", api.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let (cookie, csrf) = console_session(&api.base, STREET1).await;
    let started = client
        .post(format!("{}/tasks/{a}/actions", api.base))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .header("hx-request", "true")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("action=start")
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), StatusCode::OK);

    let (s, trail) = api.get(Some(ADMIN), "/api/v1/audit/actions").await;
    assert_eq!(s, StatusCode::OK, "{trail}");
    let rows: Vec<(String, String, String, String, String, u64)> = trail["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap().to_owned();
            (
                text("actor"),
                text("role"),
                text("via"),
                text("action"),
                text("target"),
                r["outcome"].as_u64().unwrap(),
            )
        })
        .collect();
    let row = |actor: &str, role: &str, via: &str, action: &str, target: &str, outcome: u64| {
        (
            actor.to_owned(),
            role.to_owned(),
            via.to_owned(),
            action.to_owned(),
            target.to_owned(),
            outcome,
        )
    };
    assert_eq!(
        rows,
        vec![
            row(
                "community-510504001002",
                "community",
                "api",
                "task.sign_for",
                a,
                200
            ),
            row(
                "community-510504001001",
                "community",
                "api",
                "POST /api/v1/tasks/{id}/actions",
                a,
                404
            ),
            row(
                "community-510504001002",
                "community",
                "api",
                "task.close",
                a,
                403
            ),
            row("", "", "console", "sign_in_refused", "", 401),
            row("street-510504001", "street", "console", "sign_in", "", 303),
            row(
                "street-510504001",
                "street",
                "console",
                "task.start",
                a,
                200
            ),
        ],
        "{trail:#}"
    );
    let first = &trail["actions"][0];
    assert_eq!(first["source"], "127.0.0.1", "{first}");
    let at = chrono::DateTime::parse_from_rfc3339(first["at"].as_str().unwrap()).unwrap();
    assert!(at >= before && at <= Utc::now(), "{first}");
    for refused in [1, 2] {
        let r = &trail["actions"][refused];
        assert!(
            !r["detail"].as_str().unwrap().is_empty(),
            "a refusal keeps what the hub answered: {r}"
        );
    }

    // Only administrators read it; a malformed period is named; reads are not recorded.
    let (s, _) = api.get(Some(STREET1), "/api/v1/audit/actions").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, e) = api
        .get(Some(ADMIN), "/api/v1/audit/actions?from=yesterday")
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(e["error"].as_str().unwrap().contains("`from`"), "{e}");
    let (_, again) = api
        .get(Some(ADMIN), "/api/v1/audit/actions?actor=street-510504001")
        .await;
    assert_eq!(again["count"], 2, "{again}");

    let csv = client
        .get(format!("{}/api/v1/audit/actions?format=csv", api.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = csv.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 7, "{csv}");
    assert_eq!(
        lines[0],
        "id,at,actor,role,via,action,target,outcome,source,detail"
    );
    assert!(
        lines[1].contains(&format!(
            ",community-510504001002,community,api,task.sign_for,{a},200,127.0.0.1,"
        )),
        "{}",
        lines[1]
    );

    // The 管理 page lists the newest actions in words.
    let (cookie, _) = console_session(&api.base, ADMIN).await;
    let page = client
        .get(format!("{}/admin", api.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let section = page
        .split("id=\"trail\"")
        .nth(1)
        .expect("the 管理 page has the 操作记录 section");
    for words in [
        "开始处置",
        "签收",
        "登录失败",
        "未通过（403）",
        "street-510504001",
    ] {
        assert!(section.contains(words), "{words} in {section}");
    }

    // The command line reads the same trail from the store.
    let out = tokio::process::Command::new(workspace_root().join("target/debug/hub"))
        .args([
            "audit",
            "actions",
            "--csv",
            "--actor",
            "community-510504001002",
        ])
        .arg("--config")
        .arg(workspace_root().join("config/hub.toml"))
        .env("HUB__STORE__URL", format!("\"{}\"", f.store_url))
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run hub audit actions");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().count(),
        3,
        "header and two actions: {stdout}"
    );
    assert!(stdout.contains("task.close"), "{stdout}");
}
