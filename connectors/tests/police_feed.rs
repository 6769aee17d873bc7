//! Police (公安) REST feed against its fake: token auth, cursor pagination, outages,
//! restarts, malformed records and wrong credentials.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::{addresses, Hub};
use hub_connectors::http_poll::{
    HttpPollConfig, HttpPollSource, HttpPoller, DEFAULT_MAX_BODY_BYTES,
};
use hub_connectors::mapping::{Mapper, RecordFormat};
use hub_connectors::rate_limit::TokenBucket;
use hub_connectors::{Source, SourceError};
use hub_schemas::event::Department;
use hub_simulator::generator::Generator;
use hub_simulator::FakeDepartment;

const TOKEN: &str = "police-token";

async fn fake() -> FakeDepartment {
    FakeDepartment::start(Department::Police, TOKEN, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("the fake police system starts")
}

fn source(fake: &FakeDepartment, token: &str, page_size: u32) -> HttpPollSource {
    let shape = fake.shape();
    HttpPollSource::new(
        HttpPoller::new(
            HttpPollConfig {
                base_url: fake.base_url(),
                path: shape.path.into(),
                page_size,
                cursor_param: shape.cursor_param.into(),
                items_pointer: shape.items_pointer.into(),
                cursor_pointer: shape.cursor_pointer.into(),
                timeout: Duration::from_secs(5),
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                ..HttpPollConfig::default()
            },
            hub_connectors::Secret::new(token),
        )
        .unwrap(),
    )
}

fn mapper() -> Mapper {
    Mapper::new(
        RecordFormat::for_source(hub_connectors::SourceKind::HttpPoll, Department::Police).unwrap(),
    )
}

fn publish(fake: &FakeDepartment, generator: &mut Generator, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let r = generator.record(Department::Police, Utc::now());
            fake.publish(&r);
            r["jjdbh"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn incidents_of_every_kind_arrive_once_with_categories_and_masked_reporters() {
    let fake = fake().await;
    let mut generator = Generator::new(addresses(), 5);
    let ids = publish(&fake, &mut generator, 60);
    let mut src = source(&fake, TOKEN, 7);
    src.start(None).await.unwrap();
    let mut hub = Hub::default();
    hub.run_until(&mut src, &mapper(), Duration::from_secs(20), |h| {
        h.events.len() >= 60
    })
    .await;
    assert_eq!(hub.source_ids(), ids, "every incident once, in order");
    let codes: BTreeSet<&str> = hub
        .events
        .iter()
        .map(|e| e.category_code.as_str())
        .collect();
    for code in ["0201", "0301", "0501", "0502"] {
        assert!(
            codes.contains(code),
            "theft, dispute, rental-housing and floating-population codes all seen: {codes:?}"
        );
    }
    let rental = hub
        .events
        .iter()
        .find(|e| e.category_code == "0501")
        .unwrap();
    assert!(rental.attributes.contains_key("fwbh") && rental.attributes.contains_key("ldrks"));
    assert!(hub
        .events
        .iter()
        .all(|e| e.attributes.contains_key("sspcs")));
    let logged = format!("{:?}", hub.events);
    for e in &hub.events {
        let phone = e.reporter.as_ref().unwrap().phone.as_ref().unwrap();
        assert!(!logged.contains(phone.expose()));
    }
    // Idle: a further poll returns nothing and keeps the cursor.
    let before = hub.cursor.clone();
    hub.turn(&mut src, &mapper()).await.unwrap();
    assert_eq!(hub.events.len(), 60);
    assert_eq!(hub.cursor, before);
}

#[tokio::test]
async fn an_outage_is_retried_and_nothing_is_lost_or_doubled() {
    let fake = fake().await;
    let mut generator = Generator::new(addresses(), 6);
    let ids = publish(&fake, &mut generator, 40);
    fake.fail_every(3);
    let mut src = source(&fake, TOKEN, 5);
    src.start(None).await.unwrap();
    let mut hub = Hub::default();
    let errors = hub
        .run_until(&mut src, &mapper(), Duration::from_secs(20), |h| {
            h.events.len() >= 40
        })
        .await;
    assert!(fake.failures_injected() > 0 && !errors.is_empty());
    for e in &errors {
        assert!(
            matches!(e, SourceError::Unavailable { .. }),
            "5xx is an outage: {e}"
        );
        assert!(e.to_string().contains("503"), "{e}");
    }
    assert_eq!(hub.source_ids(), ids);
}

#[tokio::test]
async fn a_restart_mid_stream_resumes_at_the_saved_cursor_without_gap_or_duplicate() {
    let fake = fake().await;
    let mut generator = Generator::new(addresses(), 7);
    let ids = publish(&fake, &mut generator, 30);
    let mut hub = Hub::default();
    {
        let mut first = source(&fake, TOKEN, 4);
        first.start(None).await.unwrap();
        for _ in 0..3 {
            hub.turn(&mut first, &mapper()).await.unwrap();
        }
        // A batch fetched but never committed (the process dies before the broker acks).
        let _lost = first.next_batch().await.unwrap();
    }
    assert_eq!(hub.events.len(), 12);
    let mut second = source(&fake, TOKEN, 4);
    second.start(hub.cursor.clone()).await.unwrap();
    hub.run_until(&mut second, &mapper(), Duration::from_secs(20), |h| {
        h.events.len() >= 30
    })
    .await;
    assert_eq!(hub.source_ids(), ids);
}

#[tokio::test]
async fn a_malformed_incident_is_refused_with_its_field_and_the_stream_goes_on() {
    let fake = fake().await;
    let mut generator = Generator::new(addresses(), 8);
    publish(&fake, &mut generator, 2);
    fake.publish(&serde_json::json!({"jjdbh": "J-BAD", "bjlbdm": "0201", "bjsj": "2026-13-45", "fadd": "某路"}));
    fake.publish(&serde_json::json!({"jjdbh": "J-BAD2", "bjlbdm": "0502", "bjsj": "20261121102300", "fadd": "某路", "ldrks": -2}));
    publish(&fake, &mut generator, 2);
    let mut src = source(&fake, TOKEN, 50);
    src.start(None).await.unwrap();
    let mut hub = Hub::default();
    hub.turn(&mut src, &mapper()).await.unwrap();
    assert_eq!(hub.events.len(), 4);
    assert_eq!(hub.dead.len(), 2);
    assert!(hub.dead[0].1.contains("field `bjsj`"), "{}", hub.dead[0].1);
    assert!(hub.dead[1].1.contains("field `ldrks`"), "{}", hub.dead[1].1);
    assert!(
        String::from_utf8_lossy(&hub.dead[0].0.bytes).contains("J-BAD"),
        "original bytes kept"
    );
}

#[tokio::test]
async fn wrong_credentials_are_a_clear_error_that_is_not_retried_as_an_outage() {
    let fake = fake().await;
    let mut src = source(&fake, "expired-token", 10);
    src.start(None).await.unwrap();
    let err = src.next_batch().await.unwrap_err();
    assert!(matches!(err, SourceError::Unauthorized { .. }), "{err}");
    assert!(!err.is_transient());
    assert_eq!(err.label(), "unauthorized");
    let text = err.to_string();
    assert!(
        text.contains("credentials refused") && text.contains("token"),
        "{text}"
    );
    assert!(
        !text.contains("expired-token"),
        "the token itself is never shown: {text}"
    );
    assert!(!format!("{src:?}").contains("expired-token"));
}

#[tokio::test]
async fn a_rate_limit_spaces_the_polls() {
    let fake = fake().await;
    let mut src = source(&fake, TOKEN, 10).with_rate_limit(TokenBucket::new(10.0, 1).unwrap());
    src.start(None).await.unwrap();
    let started = Instant::now();
    for _ in 0..4 {
        src.next_batch().await.unwrap();
    }
    // One at once, then three more at 10 per second.
    assert!(
        started.elapsed() >= Duration::from_millis(280),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.requests_served(), 4);
}

#[tokio::test]
async fn an_unreachable_system_is_an_outage_naming_the_cause() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut src = HttpPollSource::new(
        HttpPoller::new(
            HttpPollConfig {
                base_url: format!("http://127.0.0.1:{port}"),
                path: "/jq/api/incidents".into(),
                page_size: 10,
                cursor_param: "pageToken".into(),
                items_pointer: "/data/list".into(),
                cursor_pointer: "/data/nextPageToken".into(),
                timeout: Duration::from_secs(2),
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                ..HttpPollConfig::default()
            },
            hub_connectors::Secret::new(TOKEN),
        )
        .unwrap(),
    );
    src.start(None).await.unwrap();
    let err = src.next_batch().await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(
        err.to_string().to_lowercase().contains("refused"),
        "the cause is shown: {err}"
    );
}
