//! Urban management (城管) push: the fake department signs and pushes cases; a receiver
//! built from the connector's pieces (verifier + push source), as the hub's endpoint is,
//! answers only once each case is through the ingest loop.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use chrono::Utc;
use common::{addresses, Hub};
use hub_connectors::mapping::{Mapper, RecordFormat};
use hub_connectors::push::{self, PushHandle, PushSource, SubmitError};
use hub_connectors::webhook::{Verifier, WebhookConfig, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use hub_connectors::{Outcome, RawRecord, Secret};
use hub_schemas::event::Department;
use hub_simulator::generator::Generator;
use hub_simulator::webhook_client::{signature, WebhookClient};

const SECRET: &str = "whsec-um-longmatan";

struct Receiver {
    verifier: Mutex<Verifier>,
    handle: PushHandle,
    refused: Mutex<Vec<&'static str>>,
}

async fn receive(
    State(r): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let verified = r.verifier.lock().unwrap().verify(
        header(TIMESTAMP_HEADER).as_deref(),
        header(SIGNATURE_HEADER).as_deref(),
        &body,
        Utc::now().timestamp(),
    );
    let verified = match verified {
        Ok(v) => v,
        Err(e) => {
            r.refused.lock().unwrap().push(e.reason());
            return (StatusCode::UNAUTHORIZED, e.to_string());
        }
    };
    let record = RawRecord {
        bytes: body.to_vec(),
        uri: "webhook:urban_management.push".into(),
    };
    match r.handle.submit(record).await {
        Ok(Outcome::Produced | Outcome::Skipped { .. }) => (StatusCode::OK, "accepted".into()),
        Ok(Outcome::DeadLettered { reason }) => (StatusCode::UNPROCESSABLE_ENTITY, reason),
        Err(e) => {
            // Not taken: the sender may retry with the very same headers.
            r.verifier.lock().unwrap().forget(&verified);
            let busy = matches!(e, SubmitError::Busy { .. });
            assert!(busy || matches!(e, SubmitError::Unconfirmed | SubmitError::Closed));
            (StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
    }
}

async fn start(capacity: usize) -> (String, Arc<Receiver>, PushSource) {
    let (handle, source) = push::channel(
        "urban_management.push",
        capacity,
        50,
        Duration::from_millis(20),
    );
    let receiver = Arc::new(Receiver {
        verifier: Mutex::new(
            Verifier::new(&WebhookConfig::new(vec![Secret::new(SECRET)])).unwrap(),
        ),
        handle,
        refused: Mutex::new(Vec::new()),
    });
    let app = Router::new()
        .route("/webhooks/urban-management", post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let url = format!(
        "http://{}/webhooks/urban-management",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, receiver, source)
}

fn mapper() -> Mapper {
    Mapper::new(
        RecordFormat::for_source(
            hub_connectors::SourceKind::Webhook,
            Department::UrbanManagement,
        )
        .unwrap(),
    )
}

#[tokio::test]
async fn pushed_cases_are_accepted_once_each_after_they_are_through_the_loop() {
    let (url, receiver, mut source) = start(100).await;
    let client = Arc::new(WebhookClient::new(url, SECRET));
    let mut generator = Generator::new(addresses(), 21);
    let records: Vec<_> = (0..25)
        .map(|_| generator.record(Department::UrbanManagement, Utc::now()))
        .collect();
    let ids: Vec<String> = records
        .iter()
        .map(|r| r["caseNo"].as_str().unwrap().to_owned())
        .collect();
    let pushes: Vec<_> = records
        .into_iter()
        .map(|r| {
            let client = client.clone();
            tokio::spawn(async move { client.push(&r).await.unwrap() })
        })
        .collect();
    let mut hub = Hub::default();
    hub.run_until(&mut source, &mapper(), Duration::from_secs(20), |h| {
        h.events.len() >= 25
    })
    .await;
    for p in pushes {
        let d = p.await.unwrap();
        assert_eq!(d.status, 200, "{}", d.body);
    }
    let mut got = hub.source_ids();
    got.sort();
    let mut want = ids;
    want.sort();
    assert_eq!(got, want);
    assert!(receiver.refused.lock().unwrap().is_empty());
}

#[tokio::test]
async fn replays_forgeries_and_stale_requests_are_refused_with_401_and_counted_by_reason() {
    let (url, receiver, mut source) = start(100).await;
    let client = WebhookClient::new(url.clone(), SECRET);
    let body = Generator::new(addresses(), 22)
        .record(Department::UrbanManagement, Utc::now())
        .to_string();
    // An honest push, driven through the loop.
    let first = tokio::spawn({
        let client = WebhookClient::new(url.clone(), SECRET);
        let body = body.clone();
        async move {
            client
                .push_at(body.as_bytes(), Utc::now().timestamp())
                .await
                .unwrap()
        }
    });
    let mut hub = Hub::default();
    hub.run_until(&mut source, &mapper(), Duration::from_secs(10), |h| {
        h.events.len() == 1
    })
    .await;
    let accepted = first.await.unwrap();
    assert_eq!(accepted.status, 200);

    // Captured and sent again with the same headers.
    let replay = client
        .send_raw(
            body.as_bytes(),
            Some(&accepted.timestamp),
            Some(&accepted.signature),
        )
        .await
        .unwrap();
    assert_eq!(replay.status, 401);
    assert!(replay.body.contains("already accepted"), "{}", replay.body);
    // Signed with a guessed secret.
    let forged = WebhookClient::new(url.clone(), "guessed")
        .push_at(body.as_bytes(), Utc::now().timestamp())
        .await
        .unwrap();
    assert_eq!(forged.status, 401);
    // Body changed after signing.
    let now = Utc::now().timestamp().to_string();
    let tampered = client
        .send_raw(
            body.replace("CG", "XX").as_bytes(),
            Some(&now),
            Some(&signature(SECRET, &now, body.as_bytes())),
        )
        .await
        .unwrap();
    assert_eq!(tampered.status, 401);
    // Signed ten minutes ago.
    let stale = client
        .push_at(body.as_bytes(), Utc::now().timestamp() - 600)
        .await
        .unwrap();
    assert_eq!(stale.status, 401);
    assert!(stale.body.contains("outside the allowed"), "{}", stale.body);
    // No signature at all.
    let unsigned = client
        .send_raw(body.as_bytes(), Some(&now), None)
        .await
        .unwrap();
    assert_eq!(unsigned.status, 401);

    assert_eq!(
        *receiver.refused.lock().unwrap(),
        vec![
            "replayed",
            "bad_signature",
            "bad_signature",
            "outside_window",
            "missing_signature"
        ]
    );
    assert_eq!(hub.events.len(), 1, "nothing refused reached the loop");
}

#[tokio::test]
async fn a_signed_but_malformed_case_is_dead_lettered_and_the_sender_told_why() {
    let (url, _receiver, mut source) = start(100).await;
    let client = WebhookClient::new(url, SECRET);
    let push = tokio::spawn(async move {
        client
            .push(&serde_json::json!({"caseNo": "CG-BAD", "eventTypeCode": "010101", "reportTime": "2026-11-21 10:00:00", "x": 105.4}))
            .await
            .unwrap()
    });
    let mut hub = Hub::default();
    hub.run_until(&mut source, &mapper(), Duration::from_secs(10), |h| {
        h.dead.len() == 1
    })
    .await;
    let d = push.await.unwrap();
    assert_eq!(d.status, 422);
    assert!(d.body.contains("field `y`"), "{}", d.body);
    assert!(String::from_utf8_lossy(&hub.dead[0].0.bytes).contains("CG-BAD"));
}

#[tokio::test]
async fn when_the_hub_cannot_keep_up_pushes_are_refused_at_once_and_retried_by_the_sender() {
    let (url, _receiver, mut source) = start(1).await;
    let client = Arc::new(WebhookClient::new(url, SECRET));
    let mut generator = Generator::new(addresses(), 23);
    let records: Vec<_> = (0..6)
        .map(|_| generator.record(Department::UrbanManagement, Utc::now()))
        .collect();
    // Nobody drives the loop yet: one push waits in the queue, the others are told 503.
    let first: Vec<_> = records
        .iter()
        .cloned()
        .map(|r| {
            let client = client.clone();
            (
                r.clone(),
                tokio::spawn(async move { client.push(&r).await.unwrap().status }),
            )
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (refused, queued): (Vec<_>, Vec<_>) = first.into_iter().partition(|(_, h)| h.is_finished());
    assert_eq!(
        refused.len(),
        5,
        "all but the queued push were refused at once"
    );
    // The department retries each refused case (re-signing each time) while the hub drains.
    let mut retries = Vec::new();
    for (record, handle) in refused {
        assert_eq!(handle.await.unwrap(), 503);
        let client = client.clone();
        retries.push(tokio::spawn(async move {
            client.push_with_retry(&record, 10).await.unwrap().status
        }));
    }
    let mut hub = Hub::default();
    hub.run_until(&mut source, &mapper(), Duration::from_secs(20), |h| {
        h.events.len() == 6
    })
    .await;
    for r in retries {
        assert_eq!(r.await.unwrap(), 200);
    }
    for (_, handle) in queued {
        assert_eq!(
            handle.await.unwrap(),
            200,
            "the queued push was answered once produced"
        );
    }
    let mut ids = hub.source_ids();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "each case once");
}
