//! The web console in a real browser (headless Chromium over WebDriver, see
//! `hub_tests::browser`): sign-in and scope, the queue's order and filters, a task handled
//! through its forms, the message a stale page gets, a task from a feed appearing without a
//! reload, labels on every control, and no request to any host but the hub.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use hub::startup::{self, Roles, RunningHub};
use hub_router::task::NewTask;
use hub_schemas::event::{CivicEvent, Department, GeoPoint};
use hub_tests::browser::Browser;
use hub_tests::*;
use serde_json::{json, Value};

use crate::cases::{task, unit, Api};

/// 梧桐社区 510504001001, acting for its workstation.
const WUTONG: &str = "demo-community-510504001001";
/// 清泉社区 510504001002.
const QINGQUAN: &str = "demo-community-510504001002";
const STREET1: &str = "demo-street-510504001";

struct Console {
    _dir: tempfile::TempDir,
    _broker: hub::infra::broker::EmbeddedBroker,
    hub: RunningHub,
    base: String,
    broker: String,
}

async fn console(roles: Roles) -> Console {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let url = fresh_store_url(Backend::Sqlite, dir.path()).await;
    let config = hub_config(dir.path(), broker.bootstrap(), &url);
    let hub = startup::start(&config, roles, with_demo_tokens(Arc::new(|_: &str| None)))
        .await
        .expect("hub starts");
    Console {
        base: format!("http://{}", hub.api_addr.unwrap()),
        broker: broker.bootstrap().to_owned(),
        _dir: dir,
        _broker: broker,
        hub,
    }
}

const ROUTER_AND_API: Roles = Roles {
    connectors: false,
    router: true,
    api: true,
};

const API_ONLY: Roles = Roles {
    connectors: false,
    router: false,
    api: true,
};

impl Console {
    /// Stores a task of a community of street 510504001, led by its workstation, reported
    /// `age` ago (its clocks started then).
    async fn seed(&self, source_id: &str, community: &str, age: TimeDelta) -> String {
        let mut t = task(
            source_id,
            Department::UrbanManagement,
            "510504001",
            community,
            unit(&format!("{community}.workstation"), "workstation"),
            vec![],
        );
        t.created_at = Utc::now() - age;
        t.occurred_at = t.created_at;
        t.description = format!("{source_id} 的问题描述");
        let opening = self.hub.cases.open(&t);
        self.hub.store.create_task(&t, &opening).await.unwrap();
        t.task_id
    }

    fn api(&self) -> Api {
        Api {
            base: self.base.clone(),
            client: reqwest::Client::new(),
        }
    }
}

/// The task ids of the queue's rows, in order.
async fn rows(b: &Browser) -> Vec<String> {
    let v = b
        .execute(
            "return [...document.querySelectorAll('#queue tr[data-task]')].map(r => r.dataset.task);",
            vec![],
        )
        .await;
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect()
}

async fn wait_rows(b: &Browser, want: &[&str], what: &str) -> Vec<String> {
    let started = Instant::now();
    loop {
        let got = rows(b).await;
        if got.iter().map(String::as_str).collect::<Vec<_>>() == want {
            return got;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what}: rows {got:?}, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every form control on the page has a label (a `<label for>` or an aria-label), and every
/// SLA band says in words what its colour says.
async fn assert_accessible(b: &Browser, page: &str) {
    let unlabelled = b
        .execute(
            "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
               .filter(e => !(e.id && document.querySelector('label[for=\"' + e.id + '\"]'))
                            && !e.getAttribute('aria-label'))
               .map(e => e.outerHTML);",
            vec![],
        )
        .await;
    assert_eq!(unlabelled, json!([]), "{page}: controls without a label");
    let wordless = b
        .execute(
            "return [...document.querySelectorAll('.band')].filter(e => !e.innerText.trim()).length;",
            vec![],
        )
        .await;
    assert_eq!(wordless, json!(0), "{page}: an SLA band without words");
    // Keyboard: every control can take the focus.
    let unfocusable = b
        .execute(
            "return [...document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea')]
               .filter(e => e.tabIndex < 0 || e.disabled).length;",
            vec![],
        )
        .await;
    assert_eq!(
        unfocusable,
        json!(0),
        "{page}: controls the keyboard cannot reach"
    );
}

/// Nothing the browser loaded came from anywhere but the hub.
async fn assert_only_the_hub(b: &Browser, base: &str) {
    let requested = b.requested().await;
    assert!(
        requested.len() >= 3,
        "the page loaded its assets: {requested:?}"
    );
    for url in requested {
        assert!(url.starts_with(base), "a request left the hub: {url}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_community_account_sees_only_its_tasks_most_overdue_first_and_filters_by_breach() {
    // With the SLA tracker (router role), which marks the overdue task breached.
    let c = console(ROUTER_AND_API).await;
    let overdue = c.seed("WEB-W1", "510504001001", TimeDelta::days(20)).await;
    let fresh = c.seed("WEB-W2", "510504001001", TimeDelta::zero()).await;
    let other = c.seed("WEB-Q1", "510504001002", TimeDelta::days(20)).await;
    let b = Browser::start("console-scope").await;

    // Without a session the console asks to sign in.
    b.goto(&format!("{}/queue", c.base)).await;
    assert!(b.url().await.contains("/login?next="), "{}", b.url().await);
    b.sign_in(&c.base, WUTONG).await;
    let got = wait_rows(&b, &[&overdue, &fresh], "梧桐's open queue").await;
    assert!(!got.contains(&other));
    let first = b
        .wait_text("#queue tbody tr", "已超时", Duration::from_secs(5))
        .await;
    assert!(first.contains("私搭乱建"), "{first}");
    assert_accessible(&b, "queue").await;
    assert_only_the_hub(&b, &c.base).await;

    // Only the breached, and the filter stays in the address (a link to send a colleague).
    let breached = b.find("#f-breached").await;
    b.click(&breached).await;
    wait_rows(&b, &[&overdue], "breached only").await;
    assert!(b.url().await.contains("breached=true"), "{}", b.url().await);
    b.goto(&b.url().await).await;
    wait_rows(&b, &[&overdue], "the saved filter, reopened").await;

    // A community account has no community to choose; the department filter narrows.
    assert!(b.find_all("#f-community").await.is_empty());
    b.execute(
        "const s = document.getElementById('f-department'); s.value = 'police';
         s.dispatchEvent(new Event('change', {bubbles: true})); return null;",
        vec![],
    )
    .await;
    wait_rows(&b, &[], "police cases only (there are none)").await;
    assert!(
        b.url().await.contains("department=police"),
        "{}",
        b.url().await
    );
    // By major class: the cases are 私搭乱建 (E0101, 市容环境 E01).
    b.execute(
        "document.getElementById('f-department').value = '';
         document.getElementById('f-breached').checked = false;
         const s = document.getElementById('f-category'); s.value = 'E01';
         s.dispatchEvent(new Event('change', {bubbles: true})); return null;",
        vec![],
    )
    .await;
    wait_rows(&b, &[&overdue, &fresh], "市容环境 only").await;
    b.execute(
        "const s = document.getElementById('f-category'); s.value = 'E04';
         s.dispatchEvent(new Event('change', {bubbles: true})); return null;",
        vec![],
    )
    .await;
    wait_rows(&b, &[], "街面秩序 (there are none)").await;
    assert!(b.url().await.contains("category=E04"), "{}", b.url().await);

    // Another community's task is not there even by its address.
    b.goto(&format!("{}/tasks/{other}", c.base)).await;
    let body = b.execute("return document.body.innerText;", vec![]).await;
    assert!(body.as_str().unwrap().contains("没有这个工单"), "{body}");
    b.save_screenshot("console-scope").await;
    drop(b);
    c.hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_is_signed_for_and_handled_through_its_forms_and_a_stale_page_is_told_so() {
    let c = console(API_ONLY).await;
    let id = c.seed("WEB-F1", "510504001001", TimeDelta::zero()).await;
    let b = Browser::start("console-forms").await;
    b.sign_in(&c.base, WUTONG).await;
    b.goto(&format!("{}/tasks/{id}", c.base)).await;
    b.wait_text("#task", "已派遣", Duration::from_secs(5)).await;
    assert_accessible(&b, "task").await;
    assert_only_the_hub(&b, &c.base).await;

    // 签收: the page answers in place, with the history and the sign-for clock updated.
    b.click(&b.find("button[value=sign_for]").await).await;
    let text = b
        .wait_text("#task", "已办理：已签收", Duration::from_secs(5))
        .await;
    assert!(
        text.contains("community-510504001001"),
        "the actor is in the history: {text}"
    );
    let clocks = b
        .wait_text("table.clocks", "按时完成", Duration::from_secs(5))
        .await;
    assert!(clocks.contains("签收"), "{clocks}");

    // 开始处置, then 处置反馈 with what was done.
    b.click(&b.find("button[value=start]").await).await;
    b.wait_text("#task", "已办理：处置中", Duration::from_secs(5))
        .await;
    let feedback = b.find("#resolve-feedback").await;
    b.type_into(&feedback, "违建已拆除，现场已清理").await;
    b.click(&b.find("button[value=resolve]").await).await;
    let text = b
        .wait_text("#task", "已办理：已反馈", Duration::from_secs(5))
        .await;
    assert!(
        text.contains("违建已拆除"),
        "the feedback is in the history: {text}"
    );

    // Another session moves the task on (the street verifies it) while this page is open:
    // the page's next action is refused with the words for it, and shows the new state.
    let b2 = Browser::start("console-forms-stale").await;
    b2.sign_in(&c.base, STREET1).await;
    b2.goto(&format!("{}/tasks/{id}", c.base)).await;
    b2.click(&b2.find("button[value=verify]").await).await;
    b2.wait_text("#task", "已办理：已核查", Duration::from_secs(5))
        .await;
    drop(b2);
    let second = c.seed("WEB-F2", "510504001001", TimeDelta::zero()).await;
    b.goto(&format!("{}/tasks/{second}", c.base)).await;
    b.wait_text("#task", "已派遣", Duration::from_secs(5)).await;
    let (status, answer) = c
        .api()
        .act(STREET1, &second, json!({"action": "sign_for"}))
        .await;
    assert!(status.is_success(), "{answer}");
    b.click(&b.find("button[value=sign_for]").await).await;
    let text = b
        .wait_text("#task", "工单状态已变化", Duration::from_secs(5))
        .await;
    assert!(
        text.contains("已签收"),
        "the page shows the state it moved to: {text}"
    );
    b.save_screenshot("console-forms").await;
    drop(b);
    c.hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_from_a_feed_appears_in_the_open_queue_without_a_reload() {
    let c = console(ROUTER_AND_API).await;
    let b = Browser::start("console-live").await;
    b.sign_in(&c.base, QINGQUAN).await;
    b.wait_text("#live", "实时更新中", Duration::from_secs(10))
        .await;
    assert_eq!(rows(&b).await, Vec::<String>::new());
    // Mark the page: a reload would lose the mark.
    b.execute("window.__still_here = true; return null;", vec![])
        .await;

    let qingquan = crate::routing::addresses()
        .into_iter()
        .find(|a| a.community_code() == "510504001002")
        .unwrap();
    let event: CivicEvent = crate::routing::event(
        Department::UrbanManagement,
        "WEB-LIVE-1",
        "010101",
        GeoPoint {
            lon: qingquan.lon,
            lat: qingquan.lat,
        },
        Utc::now(),
    );
    let task_id = NewTask::derive_id(&event.event_id);
    let feed = crate::routing::Feed::new(c._dir.path(), &c.broker);
    let sent = Instant::now();
    feed.publish(&event).await;
    // When the pipeline committed the task, and when the open page showed it (both polled).
    let (mut stored, mut shown) = (None, None);
    while shown.is_none() {
        assert!(
            sent.elapsed() < Duration::from_secs(20),
            "the routed task did not appear on the open queue"
        );
        if stored.is_none() && c.hub.store.get_task(&task_id).await.unwrap().is_some() {
            stored = Some(sent.elapsed());
        }
        if rows(&b).await.contains(&task_id) {
            shown = Some(sent.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (stored, shown) = (stored.unwrap_or_default(), shown.unwrap());
    println!(
        "event published → task committed {} ms → row on the open queue {} ms (commit to row {} ms)",
        stored.as_millis(),
        shown.as_millis(),
        shown.saturating_sub(stored).as_millis()
    );
    let still: Value = b
        .execute("return window.__still_here === true;", vec![])
        .await;
    assert_eq!(still, json!(true), "the page was reloaded");
    let seen: BTreeSet<String> = rows(&b).await.into_iter().collect();
    assert_eq!(seen.len(), 1);
    drop(b);
    c.hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_map_draws_the_city_outlines_and_the_task_pin_in_sync_with_its_list() {
    let c = console(API_ONLY).await;
    let wutong = crate::routing::addresses()
        .into_iter()
        .find(|a| a.community_code() == "510504001001")
        .unwrap();
    let mut t = task(
        "WEB-MAP-1",
        Department::UrbanManagement,
        "510504001",
        "510504001001",
        unit("510504001001.workstation", "workstation"),
        vec![],
    );
    t.place.point = Some(GeoPoint {
        lon: wutong.lon,
        lat: wutong.lat,
    });
    let opening = c.hub.cases.open(&t);
    c.hub.store.create_task(&t, &opening).await.unwrap();
    let b = Browser::start("console-map").await;
    b.sign_in(&c.base, WUTONG).await;
    b.goto(&format!("{}/map", c.base)).await;
    b.find("#map[data-ready=true]").await;
    let outlines = b
        .execute(
            "return document.getElementById('map').dataset.outlines;",
            vec![],
        )
        .await;
    let routing = hub_router::config::check(&workspace_root().join("config")).unwrap();
    let city = routing.config.city();
    assert_eq!(
        outlines,
        json!((city.communities().len() + city.grids().len()).to_string()),
        "every community and grid outline is drawn"
    );
    let points = b
        .execute(
            "return document.getElementById('map').dataset.points;",
            vec![],
        )
        .await;
    assert_eq!(points, json!("1"));
    assert_eq!(rows_of(&b, "#map-rows").await, vec![t.task_id.clone()]);
    // Hovering the row marks it (and its pin).
    b.execute(
        "document.querySelector('#map-rows tr').dispatchEvent(new Event('mouseenter')); return null;",
        vec![],
    )
    .await;
    let selected = b
        .execute(
            "return document.querySelector('#map-rows tr').classList.contains('selected');",
            vec![],
        )
        .await;
    assert_eq!(selected, json!(true));
    let datum = b
        .wait_text(
            ".leaflet-control-attribution",
            "GCJ-02",
            Duration::from_secs(5),
        )
        .await;
    assert!(datum.contains("无底图"), "{datum}");
    assert_only_the_hub(&b, &c.base).await;
    assert_accessible(&b, "map").await;
    b.save_screenshot("console-map").await;
    drop(b);
    c.hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_street_desk_arbitrates_a_returned_task_from_its_triage_page() {
    let c = console(API_ONLY).await;
    let id = c.seed("WEB-RET-1", "510504001001", TimeDelta::zero()).await;
    let api = c.api();
    let (status, answer) = api
        .act(
            WUTONG,
            &id,
            json!({"action": "return", "reason": "not_our_remit", "note": "应由派出所处理"}),
        )
        .await;
    assert!(status.is_success(), "{answer}");
    let b = Browser::start("console-triage").await;
    b.sign_in(&c.base, STREET1).await;
    b.goto(&format!("{}/triage", c.base)).await;
    let row = b
        .wait_text(
            &format!("tr[data-task='{id}']"),
            "应由派出所处理",
            Duration::from_secs(5),
        )
        .await;
    assert!(row.contains("已回退"), "{row}");
    assert_accessible(&b, "triage").await;
    // The street chooses the police station and arbitrates.
    let police = "510504001001.police_station";
    b.execute(
        "const s = document.querySelector(arguments[0]); s.value = arguments[1]; return null;",
        vec![json!(format!("#unit-{id}")), json!(police)],
    )
    .await;
    b.click(&b.find(&format!("tr[data-task='{id}'] button")).await)
        .await;
    b.wait_text("#triage", "已办理", Duration::from_secs(5))
        .await;
    assert!(
        rows_of(&b, "#triage").await.is_empty(),
        "the arbitrated task left triage"
    );
    let (_, task) = api.get(Some(STREET1), &format!("/api/v1/tasks/{id}")).await;
    assert_eq!(task["task"]["status"], json!("dispatched"), "{task}");
    let last = task["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last["actor"],
        json!("street-510504001@510504001.triage_desk")
    );
    assert!(last["note"].as_str().unwrap().contains(police), "{last}");
    drop(b);
    c.hub.stop().await;
}

/// The task ids of the rows under `container`.
async fn rows_of(b: &Browser, container: &str) -> Vec<String> {
    let v = b
        .execute(
            "return [...document.querySelectorAll(arguments[0] + ' tr[data-task]')].map(r => r.dataset.task);",
            vec![json!(container)],
        )
        .await;
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect()
}

/// Figures, not a timed test: `cargo nextest run -p hub-tests --run-ignored only
/// console_figures --no-capture` (use `--release` for production figures). 10,000 open
/// tasks in a SQLite store; the queue page, its rows, the map's points and, as a baseline
/// measured in the same run, `GET /healthz`, each asked 20 times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: prints figures"]
async fn console_figures_with_10000_open_tasks() {
    let c = console(API_ONLY).await;
    let addresses = crate::routing::addresses();
    let started = Instant::now();
    for i in 0..10_000 {
        let a = &addresses[i % addresses.len()];
        let community = a.community_code().to_owned();
        let street = community[..9].to_owned();
        let mut t = task(
            &format!("FIG-{i:05}"),
            Department::UrbanManagement,
            &street,
            &community,
            unit(&format!("{community}.workstation"), "workstation"),
            vec![],
        );
        t.place.point = Some(GeoPoint {
            lon: a.lon,
            lat: a.lat,
        });
        t.created_at = Utc::now() - TimeDelta::minutes(i as i64 % 5000);
        let opening = c.hub.cases.open(&t);
        c.hub.store.create_task(&t, &opening).await.unwrap();
    }
    println!(
        "seeded 10,000 open tasks in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = client
        .post(format!("{}/login", c.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=demo-admin")
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    for (what, path) in [
        ("baseline GET /healthz", "/healthz"),
        ("queue page (100 rows)", "/queue"),
        ("queue rows, breached", "/queue/rows?breached=true"),
        ("map points", "/map/tasks.json"),
        ("map outlines (GeoJSON)", "/map/areas.geojson"),
    ] {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..20 {
            let t0 = Instant::now();
            let resp = client
                .get(format!("{}{path}", c.base))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success(), "{path}: {}", resp.status());
            bytes = resp.bytes().await.unwrap().len();
            times.push(t0.elapsed());
        }
        times.sort();
        println!(
            "{what:<28} median {:>6.1} ms  worst {:>6.1} ms  ({} KB)",
            times[10].as_secs_f64() * 1e3,
            times[19].as_secs_f64() * 1e3,
            bytes / 1024
        );
    }
    c.hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_figures_page_shows_the_numbers_of_hub_report() {
    let c = console(API_ONLY).await;
    let api = c.api();
    // Three cases in 梧桐, one in 清泉: one closed after the whole workflow, one signed for.
    let done = c.seed("WEB-FIG-1", "510504001001", TimeDelta::zero()).await;
    let signed = c.seed("WEB-FIG-2", "510504001001", TimeDelta::zero()).await;
    c.seed("WEB-FIG-3", "510504001001", TimeDelta::zero()).await;
    c.seed("WEB-FIG-4", "510504001002", TimeDelta::zero()).await;
    for body in [
        json!({"action": "sign_for"}),
        json!({"action": "start"}),
        json!({"action": "resolve", "feedback": "已处置"}),
    ] {
        let (status, answer) = api.act(WUTONG, &done, body).await;
        assert!(status.is_success(), "{answer}");
    }
    for body in [json!({"action": "verify"}), json!({"action": "close"})] {
        let (status, answer) = api.act(STREET1, &done, body).await;
        assert!(status.is_success(), "{answer}");
    }
    let (status, answer) = api
        .act(WUTONG, &signed, json!({"action": "sign_for"}))
        .await;
    assert!(status.is_success(), "{answer}");

    let today = Utc::now().date_naive();
    let (from, to) = (today.to_string(), today.succ_opt().unwrap().to_string());
    let report = tokio::process::Command::new(workspace_root().join("target/debug/hub"))
        .args([
            "report",
            "--api",
            &c.base,
            "--token",
            "demo-admin",
            "--by",
            "community",
        ])
        .args(["--from", &from, "--to", &to, "--csv"])
        .output()
        .await
        .expect("hub report runs");
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let csv = String::from_utf8(report.stdout).unwrap();

    let b = Browser::start("console-figures").await;
    b.sign_in(&c.base, "demo-admin").await;
    b.goto(&format!(
        "{}/figures?by=community&from={from}&to={to}",
        c.base
    ))
    .await;
    b.find("table.figures").await;
    assert_accessible(&b, "figures").await;
    // Page columns: rank, name, received, then 按期结案率, 结案率, 立案率, 响应率, 解决率, 满意率,
    // 返工率, 延期率; the CSV has filing, closing, on-time, rework, extension, response,
    // resolution, satisfaction from its 14th column.
    let csv_order = [15, 14, 13, 18, 19, 20, 16, 17];
    let mut compared = 0;
    for line in csv.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        let key = cols[0];
        let cells = b
            .execute(
                "const r = document.querySelector('table.figures tr[data-key=\"' + arguments[0] + '\"]');
                 return r ? [...r.querySelectorAll('td')].map(td => td.innerText) : null;",
                vec![json!(key)],
            )
            .await;
        let cells: Vec<String> = serde_json::from_value(cells)
            .unwrap_or_else(|_| panic!("the page has no row for {key}; hub report has {line}"));
        assert_eq!(cells[2], cols[1], "{key}: received");
        for (i, csv_col) in csv_order.iter().enumerate() {
            let want = match cols[*csv_col] {
                "" => "—".to_owned(),
                v => format!("{:.1}%", v.parse::<f64>().unwrap() * 100.0),
            };
            assert_eq!(cells[3 + i], want, "{key}: column {}", 3 + i);
        }
        compared += 1;
    }
    assert_eq!(compared, 2, "two communities had cases: {csv}");
    // The CSV the page offers is hub report's.
    let link = b
        .execute("return document.querySelector('a.download').href;", vec![])
        .await;
    let cookie_csv = b
        .execute(
            "return fetch(arguments[0]).then(r => r.text());",
            vec![link],
        )
        .await;
    assert_eq!(cookie_csv.as_str().unwrap(), csv);
    b.save_screenshot("console-figures").await;
    // The open queue leaves the closed case out and keeps the others.
    b.goto(&format!("{}/queue", c.base)).await;
    b.find("#queue tr[data-task]").await;
    let open = rows(&b).await;
    assert!(!open.contains(&done) && open.contains(&signed), "{open:?}");
    assert_eq!(open.len(), 3);
    drop(b);
    c.hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_tasks_are_signed_for_at_once_from_the_queue_and_the_rest_is_explained() {
    let c = console(API_ONLY).await;
    let a = c
        .seed("WEB-BULK-1", "510504001001", TimeDelta::zero())
        .await;
    let b_id = c
        .seed("WEB-BULK-2", "510504001001", TimeDelta::zero())
        .await;
    let signed = c
        .seed("WEB-BULK-3", "510504001001", TimeDelta::zero())
        .await;
    let untouched = c
        .seed("WEB-BULK-4", "510504001001", TimeDelta::zero())
        .await;
    let (status, answer) = c
        .api()
        .act(WUTONG, &signed, json!({"action": "sign_for"}))
        .await;
    assert!(status.is_success(), "{answer}");
    let b = Browser::start("console-bulk").await;
    b.sign_in(&c.base, WUTONG).await;
    b.find("#queue tr[data-task]").await;
    for id in [&a, &b_id, &signed] {
        b.click(&b.find(&format!("#sel-{id}")).await).await;
    }
    b.click(&b.find("#bulk button[value=sign_for]").await).await;
    // The outcome stays on the page while live updates refresh the rows.
    let text = b
        .wait_text(
            "#queue-flash",
            "已签收 2 件；未签收 1 件",
            Duration::from_secs(10),
        )
        .await;
    assert!(text.contains("当前状态不能签收"), "{text}");
    for (id, want) in [
        (&a, "signed_for"),
        (&b_id, "signed_for"),
        (&untouched, "dispatched"),
    ] {
        let (_, t) = c
            .api()
            .get(Some(WUTONG), &format!("/api/v1/tasks/{id}"))
            .await;
        assert_eq!(t["task"]["status"], json!(want), "{id}");
    }
    assert_accessible(&b, "queue with bulk").await;
    drop(b);
    c.hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_street_desk_escalates_a_case_to_the_joint_meeting_from_its_page() {
    let c = console(API_ONLY).await;
    let id = c.seed("WEB-ESC-1", "510504001001", TimeDelta::zero()).await;
    let b = Browser::start("console-escalate").await;
    // The community's own account has no 督办 form; the street desk has.
    b.sign_in(&c.base, WUTONG).await;
    b.goto(&format!("{}/tasks/{id}", c.base)).await;
    b.wait_text("#task", "已派遣", Duration::from_secs(5)).await;
    assert!(b.find_all("button[value=escalate]").await.is_empty());
    b.sign_in(&c.base, STREET1).await;
    b.goto(&format!("{}/tasks/{id}", c.base)).await;
    b.execute(
        "document.getElementById('escalate-step').value = 'joint_meeting'; return null;",
        vec![],
    )
    .await;
    b.click(&b.find("button[value=escalate]").await).await;
    b.wait_text("#task", "已办理", Duration::from_secs(5)).await;
    let (_, task) = c
        .api()
        .get(Some(STREET1), &format!("/api/v1/tasks/{id}"))
        .await;
    let last = task["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last["actor"],
        json!("street-510504001@510504001.triage_desk")
    );
    assert!(
        last["note"].as_str().unwrap().contains("joint_meeting"),
        "{last}"
    );
    drop(b);
    c.hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joint_meeting_is_convened_from_the_page_and_each_unit_reports_in_for_itself() {
    let c = console(API_ONLY).await;
    let id = c.seed("WEB-JM-1", "510504001001", TimeDelta::zero()).await;
    let b = Browser::start("console-joint").await;
    b.sign_in(&c.base, STREET1).await;
    b.goto(&format!("{}/tasks/{id}", c.base)).await;
    b.wait_text("#task", "已派遣", Duration::from_secs(5)).await;
    // Where and why, in words.
    let why = b
        .wait_text("ul.why", "主办：", Duration::from_secs(5))
        .await;
    assert!(
        why.contains("（社区工作站）"),
        "the lead's role in words: {why}"
    );
    assert_accessible(&b, "task with the joint-meeting form").await;

    // 吹哨: a co-handler's part without its unit is refused in words, nothing is convened.
    let set = |field: &str, value: &str| {
        format!("document.getElementById('convene_joint_meeting-{field}').value = {value:?};")
    };
    let script = format!(
        "{}{} return null;",
        set("lead_part", "牵头协调，现场处置"),
        set("co_part_1", "清运垃圾")
    );
    b.execute(&script, vec![]).await;
    b.click(&b.find("button[value=convene_joint_meeting]").await)
        .await;
    b.wait_text(
        "#task",
        "第1个协办单位填写了分工，但没有选择单位",
        Duration::from_secs(5),
    )
    .await;
    assert!(b.find_all("table.joint").await.is_empty());

    // With the unit chosen the meeting is convened: every unit to report in.
    let script = format!(
        "{}{}{} return null;",
        set("lead_part", "牵头协调，现场处置"),
        set("co_unit_1", "510504001001.property_company"),
        set("co_part_1", "清运垃圾")
    );
    b.execute(&script, vec![]).await;
    b.click(&b.find("button[value=convene_joint_meeting]").await)
        .await;
    let joint = b
        .wait_text("table.joint", "物业", Duration::from_secs(5))
        .await;
    assert!(
        joint.contains("牵头") && joint.contains("清运垃圾"),
        "{joint}"
    );
    assert!(
        joint.contains("时限"),
        "report-in deadlines are shown: {joint}"
    );
    assert!(b
        .find_all("button[value=convene_joint_meeting]")
        .await
        .is_empty());

    // The community's account reports in for its own unit only (the workstation).
    b.sign_in(&c.base, WUTONG).await;
    b.goto(&format!("{}/tasks/{id}", c.base)).await;
    let options = b
        .execute(
            "return [...document.querySelectorAll('#report_in-unit option')].map(o => o.value);",
            vec![],
        )
        .await;
    assert_eq!(options, json!(["510504001001.workstation"]));
    b.click(&b.find("button[value=report_in]").await).await;
    b.wait_text("#task", "已办理", Duration::from_secs(5)).await;
    let joint = b
        .wait_text("table.joint", "完成", Duration::from_secs(5))
        .await;
    assert!(
        joint.contains("待报到"),
        "the property company has not: {joint}"
    );
    // Then finishes its part.
    b.click(&b.find("button[value=complete_part]").await).await;
    b.wait_text("#task", "已办理", Duration::from_secs(5)).await;
    eventually(Duration::from_secs(5), "the part shown done", || async {
        b.find_all("button[value=complete_part]")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    let (_, task) = c
        .api()
        .get(Some(STREET1), &format!("/api/v1/tasks/{id}/workflow"))
        .await;
    let case = &task["state"]["joint_case"]["participants"];
    assert!(case[0]["part_done_at"].is_string(), "{task}");
    assert!(case[1]["reported_in_at"].is_null(), "{task}");
    // The history says it in words, with units by name.
    let history = b
        .wait_text("ol.timeline", "完成分工", Duration::from_secs(5))
        .await;
    assert!(
        history.contains("吹哨（召集联席会议）") && history.contains("报到"),
        "{history}"
    );
    assert!(
        !history.contains("510504001001.property_company"),
        "{history}"
    );
    b.execute(
        "document.querySelector('table.joint').scrollIntoView(); return null;",
        vec![],
    )
    .await;
    b.save_screenshot("console-joint").await;
    drop(b);
    c.hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_street_desk_sends_several_returned_tasks_to_one_unit_at_once() {
    let c = console(API_ONLY).await;
    let api = c.api();
    let mut returned = Vec::new();
    for n in 1..=2 {
        let id = c
            .seed(&format!("WEB-BA-{n}"), "510504001001", TimeDelta::zero())
            .await;
        let (status, answer) = api
            .act(
                WUTONG,
                &id,
                json!({"action": "return", "reason": "not_our_remit"}),
            )
            .await;
        assert!(status.is_success(), "{answer}");
        returned.push(id);
    }
    let dispatched = c.seed("WEB-BA-3", "510504001001", TimeDelta::zero()).await;
    let b = Browser::start("console-bulk-assign").await;
    b.sign_in(&c.base, STREET1).await;
    // Without a community in focus there is nothing to send to; with one, its units.
    b.find("#queue tr[data-task]").await;
    assert!(b.find_all("#bulk-unit").await.is_empty());
    b.goto(&format!("{}/queue?community=510504001001", c.base))
        .await;
    b.find("#bulk-unit").await;
    assert_accessible(&b, "queue with bulk assignment").await;
    for id in returned.iter().chain([&dispatched]) {
        b.click(&b.find(&format!("#sel-{id}")).await).await;
    }
    let police = "510504001001.police_station";
    b.execute(
        "document.getElementById('bulk-unit').value = arguments[0]; return null;",
        vec![json!(police)],
    )
    .await;
    b.click(&b.find("#bulk button[value=assign]").await).await;
    let text = b
        .wait_text(
            "#queue-flash",
            "已派遣 2 件；未派遣 1 件",
            Duration::from_secs(10),
        )
        .await;
    assert!(text.contains("已派遣，无需再派"), "{text}");
    for id in &returned {
        let (_, t) = api.get(Some(STREET1), &format!("/api/v1/tasks/{id}")).await;
        assert_eq!(t["task"]["status"], json!("dispatched"), "{t}");
        // The police station holds it now: the lists, scopes and figures follow.
        assert_eq!(t["task"]["lead_unit"]["unit_id"], json!(police), "{t}");
        let last = t["history"].as_array().unwrap().last().unwrap().clone();
        assert!(
            last["note"].as_str().unwrap().starts_with("re-dispatched"),
            "{last}"
        );
    }
    drop(b);
    c.hub.stop().await;
}
