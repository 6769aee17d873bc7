//! Sanitation (环卫) bin sensors over MQTT against a real Mosquitto: debounced episodes,
//! malformed readings, restarts mid-stream, a broker restart and wrong credentials.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{require_mosquitto, Hub, PrivateBroker};
use hub_connectors::mapping::{Mapper, RecordFormat};
use hub_connectors::mqtt::{MqttConfig, MqttSource};
use hub_connectors::{Secret, Source, SourceError, SourceKind};
use hub_schemas::event::Department;
use hub_simulator::sensors::{reading, SensorGateway};

fn mapper() -> Mapper {
    Mapper::new(RecordFormat::for_source(SourceKind::Mqtt, Department::Sanitation).unwrap())
}

/// A fresh topic prefix and client id per test, so tests share the broker safely.
fn names() -> (String, String) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    (format!("hubtest/{id}/bins"), format!("hub-test-{id}"))
}

fn config(port: u16, client_id: &str, prefix: &str) -> MqttConfig {
    let mut c = MqttConfig::new("127.0.0.1", port, client_id, format!("{prefix}/+/reading"));
    c.linger = Duration::from_millis(300);
    c.connect_timeout = Duration::from_secs(2);
    c
}

fn minutes_ago(m: i64) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::minutes(m)
}

/// Connect and subscribe: a first short turn that sees no readings.
async fn subscribe(hub: &mut Hub, source: &mut MqttSource) {
    let _ = tokio::time::timeout(Duration::from_millis(800), hub.turn(source, &mapper())).await;
}

#[tokio::test]
async fn one_overflow_makes_one_event_however_many_readings_report_it() {
    require_mosquitto();
    let (prefix, client_id) = names();
    let mut source = MqttSource::new(config(1883, &client_id, &prefix), None).unwrap();
    source.start(None).await.unwrap();
    let mut hub = Hub::default();
    subscribe(&mut hub, &mut source).await;

    let sensors = SensorGateway::connect("127.0.0.1", 1883, &format!("{client_id}-sensors")).await;
    let base = Utc::now();
    let at = |i: usize| base - chrono::Duration::minutes(60 - i as i64);
    // BIN-A fills up and reports its overflow twelve times; BIN-B stays normal; BIN-C's lid
    // sensor flags an overflow.
    for (i, fill) in [
        40, 70, 88, 93, 97, 99, 100, 100, 100, 100, 100, 100, 100, 100, 100,
    ]
    .iter()
    .enumerate()
    {
        sensors
            .publish(
                &prefix,
                &reading("BIN-A", *fill, *fill == 100, 105.43, 28.90, at(i)),
            )
            .await
            .unwrap();
        sensors
            .publish(&prefix, &reading("BIN-B", 30, false, 105.44, 28.91, at(i)))
            .await
            .unwrap();
    }
    sensors
        .publish(
            &prefix,
            &reading("BIN-C", 55, true, 105.45, 28.92, minutes_ago(5)),
        )
        .await
        .unwrap();
    sensors.flush(Duration::from_secs(5)).await.unwrap();

    hub.run_until(&mut source, &mapper(), Duration::from_secs(15), |h| {
        h.events.len() >= 2
    })
    .await;
    // Anything still in flight would show up as a third event here.
    let _ =
        tokio::time::timeout(Duration::from_millis(800), hub.turn(&mut source, &mapper())).await;
    assert_eq!(hub.events.len(), 2, "{:?}", hub.source_ids());
    let a = hub
        .events
        .iter()
        .find(|e| e.source_id.starts_with("BIN-A@"))
        .expect("BIN-A overflow");
    assert_eq!(a.category_code, "GARBAGE_OVERFLOW");
    assert_eq!(
        a.occurred_at.timestamp(),
        at(3).timestamp(),
        "opened by the 93 % reading"
    );
    assert_eq!(a.location.point.unwrap().lon, 105.43);
    assert!(hub.events.iter().any(|e| e.source_id.starts_with("BIN-C@")));
    assert!(hub.dead.is_empty());
    assert!(
        hub.cursor.as_deref().unwrap().contains("BIN-A"),
        "the debouncer state is the cursor"
    );
}

#[tokio::test]
async fn malformed_readings_are_refused_with_their_bytes_and_reason_and_the_stream_goes_on() {
    require_mosquitto();
    let (prefix, client_id) = names();
    let mut source = MqttSource::new(config(1883, &client_id, &prefix), None).unwrap();
    source.start(None).await.unwrap();
    let mut hub = Hub::default();
    subscribe(&mut hub, &mut source).await;
    let sensors = SensorGateway::connect("127.0.0.1", 1883, &format!("{client_id}-sensors")).await;
    sensors
        .publish_raw(&format!("{prefix}/BIN-X/reading"), b"fill=97%".to_vec())
        .await
        .unwrap();
    sensors
        .publish_raw(
            &format!("{prefix}/BIN-Y/reading"),
            reading("BIN-Z", 99, true, 105.4, 28.9, minutes_ago(1))
                .to_string()
                .into_bytes(),
        )
        .await
        .unwrap();
    sensors
        .publish_raw(
            &format!("{prefix}/BIN-F/reading"),
            reading(
                "BIN-F",
                99,
                true,
                105.4,
                28.9,
                Utc::now() + chrono::Duration::days(1),
            )
            .to_string()
            .into_bytes(),
        )
        .await
        .unwrap();
    sensors
        .publish(
            &prefix,
            &reading("BIN-OK", 98, false, 105.4, 28.9, minutes_ago(1)),
        )
        .await
        .unwrap();
    sensors.flush(Duration::from_secs(5)).await.unwrap();
    hub.run_until(&mut source, &mapper(), Duration::from_secs(15), |h| {
        h.events.len() == 1 && h.dead.len() == 3
    })
    .await;
    let reasons: Vec<&str> = hub.dead.iter().map(|(_, r)| r.as_str()).collect();
    assert!(reasons[0].contains("not valid JSON"), "{reasons:?}");
    assert!(
        reasons[1].contains("field `bin_id`") && reasons[1].contains("BIN-Y"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].contains("ahead of the hub's clock"),
        "{reasons:?}"
    );
    assert_eq!(hub.dead[0].0.bytes, b"fill=97%".to_vec());
    assert!(hub.dead[0].0.uri.ends_with("/BIN-X/reading"));
    assert!(hub.events[0].source_id.starts_with("BIN-OK@"));
}

#[tokio::test]
async fn a_restart_mid_stream_neither_loses_nor_doubles_an_episode() {
    require_mosquitto();
    let (prefix, client_id) = names();
    let mut hub = Hub::default();
    let mut first = MqttSource::new(config(1883, &client_id, &prefix), None).unwrap();
    first.start(None).await.unwrap();
    subscribe(&mut hub, &mut first).await;
    let sensors = SensorGateway::connect("127.0.0.1", 1883, &format!("{client_id}-sensors")).await;
    for m in 0..5 {
        sensors
            .publish(
                &prefix,
                &reading("BIN-1", 99, true, 105.4, 28.9, minutes_ago(50 - m)),
            )
            .await
            .unwrap();
    }
    sensors.flush(Duration::from_secs(5)).await.unwrap();

    // Crash 1: the batch is built but neither produced nor acknowledged.
    let lost = first.next_batch().await.unwrap();
    assert_eq!(lost.records.len(), 1);
    drop(lost);
    drop(first);

    // The broker redelivers to the same client id; the episode is made, produced and its
    // cursor saved — then crash 2, before the acknowledgements reach the broker.
    let mut second = MqttSource::new(config(1883, &client_id, &prefix), None).unwrap();
    second.start(hub.cursor.clone()).await.unwrap();
    let batch = tokio::time::timeout(Duration::from_secs(10), second.next_batch())
        .await
        .expect("redelivered")
        .unwrap();
    assert_eq!(
        batch.records.len(),
        1,
        "the unacknowledged readings came back"
    );
    let event = mapper()
        .map(
            hub_connectors::mapping::MappingContext {
                source_system: "s",
                received_at: Utc::now(),
                limits: Default::default(),
            },
            &batch.records[0],
        )
        .unwrap();
    let hub_connectors::mapping::Mapped::Event(event) = event else {
        panic!("an event")
    };
    hub.events.push(*event);
    hub.cursor = batch.cursor.clone();
    drop(batch);
    drop(second);

    // Third life: the redelivered readings are stale against the saved state: no new event.
    // New readings keep the same episode open.
    let mut third = MqttSource::new(config(1883, &client_id, &prefix), None).unwrap();
    third.start(hub.cursor.clone()).await.unwrap();
    sensors
        .publish(
            &prefix,
            &reading("BIN-1", 100, true, 105.4, 28.9, minutes_ago(10)),
        )
        .await
        .unwrap();
    sensors
        .publish(
            &prefix,
            &reading("BIN-2", 97, false, 105.5, 28.8, minutes_ago(9)),
        )
        .await
        .unwrap();
    sensors.flush(Duration::from_secs(5)).await.unwrap();
    hub.run_until(&mut third, &mapper(), Duration::from_secs(15), |h| {
        h.events.len() >= 2
    })
    .await;
    let _ = tokio::time::timeout(Duration::from_millis(800), hub.turn(&mut third, &mapper())).await;
    let ids = hub.source_ids();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(
        ids[0].starts_with("BIN-1@") && ids[1].starts_with("BIN-2@"),
        "{ids:?}"
    );
}

#[tokio::test]
async fn a_broker_restart_is_an_outage_and_queued_readings_arrive_after_it() {
    let mut broker = PrivateBroker::start(None);
    let (prefix, client_id) = names();
    let mut hub = Hub::default();
    let mut source = MqttSource::new(config(broker.port, &client_id, &prefix), None).unwrap();
    source.start(None).await.unwrap();
    subscribe(&mut hub, &mut source).await;
    drop(source); // the hub is down

    let sensors =
        SensorGateway::connect("127.0.0.1", broker.port, &format!("{client_id}-sensors")).await;
    sensors
        .publish(
            &prefix,
            &reading("BIN-9", 99, true, 105.4, 28.9, minutes_ago(3)),
        )
        .await
        .unwrap();
    sensors.flush(Duration::from_secs(5)).await.unwrap();
    broker.stop();

    let mut source = MqttSource::new(config(broker.port, &client_id, &prefix), None).unwrap();
    source.start(hub.cursor.clone()).await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), source.next_batch())
        .await
        .expect("fails fast")
        .unwrap_err();
    assert!(matches!(err, SourceError::Unavailable { .. }), "{err}");
    assert!(err.is_transient());
    assert!(
        err.to_string()
            .contains(&format!("127.0.0.1:{}", broker.port)),
        "{err}"
    );

    broker.resume();
    hub.run_until(&mut source, &mapper(), Duration::from_secs(20), |h| {
        h.events.len() == 1
    })
    .await;
    assert!(hub.events[0].source_id.starts_with("BIN-9@"));
}

#[tokio::test]
async fn wrong_credentials_are_a_clear_error_that_is_not_an_outage() {
    let broker = PrivateBroker::start(Some(("hub", "right-password")));
    let (prefix, client_id) = names();
    let mut c = config(broker.port, &client_id, &prefix);
    c.username = Some("hub".into());
    let mut source = MqttSource::new(c.clone(), Some(Secret::new("wrong-password"))).unwrap();
    source.start(None).await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), source.next_batch())
        .await
        .expect("fails fast")
        .unwrap_err();
    assert!(matches!(err, SourceError::Unauthorized { .. }), "{err}");
    assert!(!err.is_transient());
    let text = err.to_string();
    assert!(
        text.contains("username and password") && !text.contains("wrong-password"),
        "{text}"
    );

    // With the right password the same source configuration works.
    let mut source = MqttSource::new(c, Some(Secret::new("right-password"))).unwrap();
    source.start(None).await.unwrap();
    let mut hub = Hub::default();
    subscribe(&mut hub, &mut source).await;
    let sensors = SensorGateway::connect_with(
        "127.0.0.1",
        broker.port,
        &format!("{client_id}-sensors"),
        Some(("hub", "right-password")),
    )
    .await;
    sensors
        .publish(
            &prefix,
            &reading("BIN-7", 99, true, 105.4, 28.9, minutes_ago(2)),
        )
        .await
        .unwrap();
    sensors.flush(Duration::from_secs(5)).await.unwrap();
    hub.run_until(&mut source, &mapper(), Duration::from_secs(15), |h| {
        h.events.len() == 1
    })
    .await;
}

#[test]
fn a_bad_topic_or_thresholds_are_refused_before_connecting() {
    let mut c = MqttConfig::new("127.0.0.1", 1883, "x", "sanitation/bins+/reading");
    assert!(matches!(
        MqttSource::new(c.clone(), None).unwrap_err(),
        SourceError::Misconfigured { .. }
    ));
    c.topic = "sanitation/bins/+/reading".into();
    c.debounce.clear_below_pct = 95.0;
    let err = MqttSource::new(c, None).unwrap_err();
    assert!(err.to_string().contains("clear_below_pct"), "{err}");
}
