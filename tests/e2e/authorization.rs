//! Authorization, walked over every route the hub serves — the list comes from the running
//! hub's own route table, so a new route cannot be forgotten — with every account and with
//! encoded, repeated and malformed parameters: no response outside an account's scope holds
//! a task it may not see, a task outside the scope answers exactly like one that does not
//! exist (404), nothing is written outside the scope, and the action matrix decides who may
//! take which lifecycle action.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hub::http::Guard;
use hub::startup::{self, Roles, RunningHub};
use hub_schemas::event::Department;
use hub_tests::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::cases::{task, unit};

const API_ONLY: Roles = Roles {
    connectors: false,
    router: false,
    api: true,
};

const ADMIN: &str = "demo-admin";
const STREET1: &str = "demo-street-510504001";
const STREET2: &str = "demo-street-510504002";
/// 梧桐社区 510504001001, acting for its workstation.
const WUTONG: &str = "demo-community-510504001001";
const QINGQUAN: &str = "demo-community-510504001002";
const POLICE: &str = "demo-police";
const URBAN: &str = "demo-urban-management";
const SANITATION: &str = "demo-sanitation";
const CIVIL: &str = "demo-civil-affairs";
const RESIDENTS: &str = "demo-residents";
const ACCOUNTS: [&str; 10] = [
    ADMIN, STREET1, STREET2, WUTONG, QINGQUAN, POLICE, URBAN, SANITATION, CIVIL, RESIDENTS,
];

struct Fixture {
    _dir: tempfile::TempDir,
    _broker: hub::infra::broker::EmbeddedBroker,
    hub: RunningHub,
    base: String,
    /// Task id and the marker in its description, by name (T1, T2, T3).
    tasks: BTreeMap<&'static str, (String, String)>,
    /// Which tasks each account may see.
    sees: BTreeMap<&'static str, Vec<&'static str>>,
    client: reqwest::Client,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let url = fresh_store_url(Backend::Sqlite, dir.path()).await;
    let config = hub_config(dir.path(), broker.bootstrap(), &url);
    let hub = startup::start(
        &config,
        API_ONLY,
        with_demo_tokens(Arc::new(|_: &str| None)),
    )
    .await
    .expect("hub starts");
    // T1: 梧桐社区, reported by urban management, led by the police station, the urban
    // management squad co-handling. T2: 梧桐社区, reported by civil affairs, led by the
    // community's own workstation. T3: 翠屏社区 of the other street, police.
    let specs = [
        (
            "T1",
            task(
                "AUTH-T1",
                Department::UrbanManagement,
                "510504001",
                "510504001001",
                unit("510504001001.police_station", "police_station"),
                vec![unit(
                    "510504001001.urban_management_squad",
                    "urban_management_squad",
                )],
            ),
        ),
        (
            "T2",
            task(
                "AUTH-T2",
                Department::CivilAffairs,
                "510504001",
                "510504001001",
                unit("510504001001.workstation", "workstation"),
                vec![],
            ),
        ),
        (
            "T3",
            task(
                "AUTH-T3",
                Department::Police,
                "510504002",
                "510504002001",
                unit("510504002001.police_station", "police_station"),
                vec![],
            ),
        ),
    ];
    let mut tasks = BTreeMap::new();
    for (name, mut t) in specs {
        let marker = format!("MARKER-{name}-{}", uuid::Uuid::new_v4().simple());
        t.description = marker.clone();
        let opening = hub.cases.open(&t);
        hub.store.create_task(&t, &opening).await.unwrap();
        tasks.insert(name, (t.task_id.clone(), marker));
    }
    let sees = BTreeMap::from([
        (ADMIN, vec!["T1", "T2", "T3"]),
        (STREET1, vec!["T1", "T2"]),
        (STREET2, vec!["T3"]),
        (WUTONG, vec!["T1", "T2"]),
        (QINGQUAN, vec![]),
        (POLICE, vec!["T1", "T3"]),
        (URBAN, vec!["T1"]),
        (SANITATION, vec![]),
        (CIVIL, vec!["T2"]),
        (RESIDENTS, vec![]),
    ]);
    Fixture {
        base: format!("http://{}", hub.api_addr.unwrap()),
        _dir: dir,
        _broker: broker,
        hub,
        tasks,
        sees,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    }
}

/// A client on another loopback address each time, so that refused sign-ins are not
/// throttled (the throttle counts per address; it has its own test).
fn fresh_client() -> reqwest::Client {
    static NEXT: AtomicU8 = AtomicU8::new(2);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 1, n)))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

struct Answer {
    status: StatusCode,
    body: String,
    /// Where a redirect points.
    location: String,
}

/// A console session: its cookie and its CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

impl Fixture {
    async fn call(
        &self,
        client: &reqwest::Client,
        method: &Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = client.request(method.clone(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if path.contains("/console/stream") {
            // A live stream from the first outbox entry: whatever it replays must be in
            // scope. Read what comes within a second.
            req = req.header("last-event-id", "0");
        }
        if let Some(b) = body {
            req = req.json(&b);
        } else if *method == Method::POST {
            req = req.json(&json!({}));
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status();
        let body = if path.contains("/console/stream") && status.is_success() {
            let mut resp = resp;
            let mut text = String::new();
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while let Ok(Some(chunk)) = resp.chunk().await {
                    text.push_str(&String::from_utf8_lossy(&chunk));
                }
            })
            .await;
            text
        } else {
            resp.text().await.unwrap_or_default()
        };
        Answer {
            status,
            body,
            location: String::new(),
        }
    }

    /// Signs `token`'s account in to the console, as the sign-in form does.
    async fn session(&self, token: &str) -> Session {
        let client = no_redirects();
        let resp = client
            .post(format!("{}/login", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}&next=%2Fqueue"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "sign-in of {token}");
        let set = resp.headers()["set-cookie"].to_str().unwrap();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        let cookie = set.split(';').next().unwrap().to_owned();
        let page = client
            .get(format!("{}/queue", self.base))
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
        Session { cookie, csrf }
    }

    /// A console request, with a session or without.
    async fn call_session(&self, method: &Method, path: &str, session: Option<&Session>) -> Answer {
        let mut req = no_redirects().request(method.clone(), format!("{}{path}", self.base));
        if let Some(s) = session {
            req = req
                .header("cookie", &s.cookie)
                .header("x-csrf-token", &s.csrf);
        }
        if path.contains("/console/stream") {
            req = req.header("last-event-id", "0");
        }
        if *method == Method::POST {
            req = req
                .header("content-type", "application/x-www-form-urlencoded")
                .body("");
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status();
        let location = resp
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let mut resp = resp;
        let mut text = String::new();
        // A live stream does not end: read what comes within half a second (it replays from
        // the first outbox entry at once).
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            while let Ok(Some(chunk)) = resp.chunk().await {
                text.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await;
        Answer {
            status,
            body: text,
            location,
        }
    }

    /// Fails if `body` holds anything of a task `account` may not see (its id counts only
    /// when the request did not name it: a 404 may echo the id it was asked for).
    fn no_leak(&self, account: &str, what: &str, body: &str) {
        for (name, (id, marker)) in &self.tasks {
            if self.sees[account].contains(name) {
                continue;
            }
            let asked = what.contains(id.as_str()) || what.contains(&percent_encode(id));
            assert!(
                !body.contains(marker.as_str()) && (asked || !body.contains(id.as_str())),
                "{account} {what}: the answer holds {name}, outside its scope: {}",
                &body[..body.len().min(500)]
            );
        }
    }
}

/// The concrete paths to try for a route pattern.
fn paths_for(pattern: &str, f: &Fixture) -> Vec<String> {
    if pattern.contains("{id}") {
        let mut ids: Vec<String> = f.tasks.values().map(|(id, _)| id.clone()).collect();
        ids.push("00000000-0000-0000-0000-000000000000".into());
        // The same ids percent-encoded: decoded before any decision.
        ids.push(percent_encode(&f.tasks["T3"].0));
        ids.push(format!("{}%2F..%2F{}", f.tasks["T1"].0, f.tasks["T3"].0));
        return ids
            .into_iter()
            .map(|id| pattern.replace("{id}", &id))
            .collect();
    }
    vec![pattern
        .replace("{name}", "urban_management.push")
        .replace("{resource}", "requests.json")
        .replace("{code}", "noise.json")]
}

fn percent_encode(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// Queries tried on every route: none, repeated scope keys, another community, encoded
/// values, malformed numbers, durations and dates, bad percent-encoding.
const QUERIES: [&str; 10] = [
    "",
    "?community=510504002001&community=510504001001",
    "?community=510504002001",
    "?community=%35%31%30%35%30%34%30%30%32%30%30%31",
    "?street=510504002&street=510504001",
    "?limit=-1",
    "?limit=99999999999999999999",
    "?due_within=9999999999999d",
    "?from=2026-13-45&to=0000-00-00",
    "?community=%FF%FE&unit=%ZZ",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_with_every_account_stays_inside_its_scope() {
    let f = fixture().await;
    let routes = f.hub.routes.clone();
    assert!(
        routes.len() >= 15,
        "the hub lists the routes it serves: {routes:?}"
    );
    let mut tried = 0;
    for route in &routes {
        let method = Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
        for path in paths_for(&route.path, &f) {
            match route.guard {
                Guard::Account | Guard::Administrator => {
                    // Without a token, or with a wrong one: 401, and nothing in the answer.
                    for token in [None, Some("not-a-token"), Some("")] {
                        let a = f.call(&fresh_client(), &method, &path, token, None).await;
                        assert_eq!(
                            a.status,
                            StatusCode::UNAUTHORIZED,
                            "{method} {path} with {token:?}: {}",
                            a.body
                        );
                        f.no_leak(
                            RESIDENTS,
                            &format!("{method} {path} unauthenticated"),
                            &a.body,
                        );
                    }
                    for account in ACCOUNTS {
                        for query in QUERIES {
                            let full = format!("{path}{query}");
                            let a = f.call(&f.client, &method, &full, Some(account), None).await;
                            tried += 1;
                            let what = format!("{method} {full}");
                            assert!(
                                !a.status.is_server_error(),
                                "{account} {what}: {} {}",
                                a.status,
                                a.body
                            );
                            f.no_leak(account, &what, &a.body);
                            if route.guard == Guard::Administrator && account != ADMIN {
                                assert_eq!(a.status, StatusCode::FORBIDDEN, "{account} {what}");
                            }
                            if route.path.contains("{id}") && method == Method::GET {
                                expect_task_read(&f, account, &path, query, &a);
                            }
                        }
                    }
                }
                Guard::Session => {
                    // Without a session a page sends the browser to sign in; a form post is
                    // refused.
                    let a = f.call_session(&method, &path, None).await;
                    if method == Method::GET {
                        assert_eq!(a.status, StatusCode::SEE_OTHER, "{method} {path}");
                        assert!(a.location.starts_with("/login?next="), "{}", a.location);
                    } else {
                        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{method} {path}");
                    }
                    for account in ACCOUNTS {
                        let session = f.session(account).await;
                        for query in QUERIES {
                            let full = format!("{path}{query}");
                            let a = f.call_session(&method, &full, Some(&session)).await;
                            tried += 1;
                            let what = format!("console {method} {full}");
                            assert!(
                                !a.status.is_server_error(),
                                "{account} {what}: {} {}",
                                a.status,
                                a.body
                            );
                            f.no_leak(account, &what, &a.body);
                            if route.path.contains("{id}") && method == Method::GET {
                                expect_task_read(&f, account, &path, query, &a);
                            }
                        }
                    }
                }
                Guard::Open | Guard::Signed | Guard::ApiKey => {
                    // Reached without an account; it must still hold no task data.
                    for query in QUERIES {
                        let full = format!("{path}{query}");
                        let a = f.call(&fresh_client(), &method, &full, None, None).await;
                        tried += 1;
                        // A push to a connector this process does not run is a 503 (retry).
                        assert!(
                            !a.status.is_server_error() || route.guard == Guard::Signed,
                            "{method} {full}: {} {}",
                            a.status,
                            a.body
                        );
                        f.no_leak(RESIDENTS, &format!("{method} {full}"), &a.body);
                    }
                }
            }
        }
    }
    assert!(tried > 500, "{tried} calls");
    // Nothing was written by any of it.
    for (id, _) in f.tasks.values() {
        let record = f.hub.store.workflow(id).await.unwrap().unwrap();
        assert_eq!(record.version, 0, "task {id} was changed");
    }
    f.hub.stop().await;
}

/// A task read: 200 when the account sees the task (the id decoded from the path), else
/// the same 404 as an id that does not exist.
fn expect_task_read(f: &Fixture, account: &str, path: &str, query: &str, a: &Answer) {
    let seen = f
        .tasks
        .iter()
        .find(|(_, (id, _))| path.contains(id.as_str()) || path.contains(&percent_encode(id)));
    let traversal = path.contains("%2F");
    let want = match seen {
        Some((name, _)) if !traversal && f.sees[account].contains(name) => StatusCode::OK,
        _ => StatusCode::NOT_FOUND,
    };
    // The query of a task read is not looked at.
    assert_eq!(a.status, want, "{account} GET {path}{query}: {}", a.body);
    if want == StatusCode::NOT_FOUND {
        // The API's words, or the console page's.
        assert!(
            a.body.contains("no task with id") || a.body.contains("没有这个工单"),
            "{account} GET {path}: {}",
            a.body
        );
    }
}

/// What each account may do, stated here independently of the code: (action body, who may
/// take it on T1, who on T2). T1 is led by the police station (police's unit); T2 by 梧桐's
/// own workstation, so 梧桐 may not check its own work there.
fn matrix() -> Vec<(Value, Vec<&'static str>, Vec<&'static str>)> {
    let above = vec![ADMIN, STREET1];
    let dispatchers = vec![ADMIN, STREET1, WUTONG];
    let handlers_t1 = vec![ADMIN, STREET1, WUTONG, POLICE];
    let handlers_t2 = vec![ADMIN, STREET1, WUTONG];
    let checkers_t2 = vec![ADMIN, STREET1];
    let handler = |a: Value| (a, handlers_t1.clone(), handlers_t2.clone());
    vec![
        handler(json!({"action": "sign_for"})),
        handler(json!({"action": "start"})),
        handler(json!({"action": "report_stage", "stage": "停工"})),
        handler(json!({"action": "resolve", "feedback": "已处置"})),
        handler(json!({"action": "return", "reason": "not_our_remit"})),
        handler(json!({"action": "request_extension", "by": "1 days"})),
        handler(json!({"action": "await_resident"})),
        handler(json!({"action": "resident_responded"})),
        (
            json!({"action": "verify"}),
            dispatchers.clone(),
            checkers_t2.clone(),
        ),
        (
            json!({"action": "rework", "finding": "未清理"}),
            dispatchers.clone(),
            checkers_t2.clone(),
        ),
        (
            json!({"action": "close"}),
            dispatchers.clone(),
            checkers_t2.clone(),
        ),
        (
            json!({"action": "callback", "satisfied": true}),
            dispatchers.clone(),
            checkers_t2.clone(),
        ),
        (
            json!({"action": "dispatch", "unit": "510504001001.residents_committee"}),
            dispatchers.clone(),
            dispatchers.clone(),
        ),
        (
            json!({"action": "cancel", "reason": "duplicate"}),
            dispatchers.clone(),
            dispatchers.clone(),
        ),
        (
            json!({"action": "convene_joint_meeting",
                   "lead": {"unit": "510504001001.workstation", "part": "牵头"},
                   "co_handlers": [{"unit": "510504001001.police_station", "part": "协办"}]}),
            dispatchers.clone(),
            dispatchers.clone(),
        ),
        (
            json!({"action": "arbitrate", "unit": "510504001001.workstation"}),
            above.clone(),
            above.clone(),
        ),
        (
            json!({"action": "approve_extension"}),
            above.clone(),
            above.clone(),
        ),
        (
            json!({"action": "refuse_extension"}),
            above.clone(),
            above.clone(),
        ),
        (
            json!({"action": "escalate", "step": "street"}),
            above.clone(),
            above.clone(),
        ),
        // A unit acts only for itself in a joint case; the level above for anyone.
        (
            json!({"action": "report_in", "unit": "510504001001.police_station"}),
            vec![ADMIN, STREET1, POLICE],
            vec![ADMIN, STREET1],
        ),
        (
            json!({"action": "report_in", "unit": "510504001001.workstation"}),
            vec![ADMIN, STREET1, WUTONG],
            vec![ADMIN, STREET1, WUTONG],
        ),
        (
            json!({"action": "complete_part", "unit": "510504001001.urban_management_squad"}),
            vec![ADMIN, STREET1, URBAN],
            vec![ADMIN, STREET1],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_action_matrix_decides_who_may_take_which_action() {
    let f = fixture().await;
    let mut decided = 0;
    for (body, on_t1, on_t2) in matrix() {
        for (name, allowed) in [("T1", &on_t1), ("T2", &on_t2), ("T3", &vec![ADMIN])] {
            let (id, _) = &f.tasks[name];
            for account in ACCOUNTS {
                // A stale version: an allowed action is refused for that (409) after the
                // matrix let it through, so nothing changes either way.
                let mut b = body.clone();
                b["expected_version"] = json!(999);
                let a = f
                    .call(
                        &f.client,
                        &Method::POST,
                        &format!("/api/v1/tasks/{id}/actions"),
                        Some(account),
                        Some(b),
                    )
                    .await;
                let want = if !f.sees[account].contains(&name) {
                    StatusCode::NOT_FOUND
                } else if allowed.contains(&account) {
                    StatusCode::CONFLICT
                } else {
                    StatusCode::FORBIDDEN
                };
                // T3's handlers are the other street's and the police: they may act.
                let want = if name == "T3" && want == StatusCode::FORBIDDEN {
                    t3_expectation(&body, account)
                } else {
                    want
                };
                assert_eq!(a.status, want, "{account} {body} on {name}: {}", a.body);
                decided += 1;
            }
        }
    }
    for (id, _) in f.tasks.values() {
        assert_eq!(f.hub.store.workflow(id).await.unwrap().unwrap().version, 0);
    }
    assert!(decided >= 600, "{decided}");
    f.hub.stop().await;
}

/// T3 (led by 翠屏's police station, in street 510504002): the other street is the level
/// above there, and the police lead it.
fn t3_expectation(body: &Value, account: &str) -> StatusCode {
    let action = body["action"].as_str().unwrap();
    let unit = body["unit"].as_str().unwrap_or_default();
    let handler = matches!(
        action,
        "sign_for"
            | "start"
            | "report_stage"
            | "resolve"
            | "return"
            | "request_extension"
            | "await_resident"
            | "resident_responded"
    );
    let ok = match account {
        STREET2 => true,
        POLICE => {
            handler
                || (matches!(action, "report_in" | "complete_part")
                    && unit.ends_with(".police_station"))
        }
        _ => false,
    };
    if ok {
        StatusCode::CONFLICT
    } else {
        StatusCode::FORBIDDEN
    }
}
