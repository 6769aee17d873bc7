//! Civil affairs (民政) welfare table polled in PostgreSQL (at `HUB_TEST_POSTGRES_URL`,
//! default postgres://postgres@127.0.0.1:5432/postgres; an unreachable server fails these
//! tests, it never skips them), against the fake civil-affairs database.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{addresses, postgres_url, Hub};
use hub_connectors::mapping::{Mapper, RecordFormat};
use hub_connectors::pg_poll::{PgPollConfig, PgPollSource};
use hub_connectors::{Secret, Source, SourceError, SourceKind};
use hub_schemas::event::Department;
use hub_simulator::civil_affairs_db::{with_database, FakeCivilAffairsDb, WelfareCase};

async fn fake_db() -> FakeCivilAffairsDb {
    let url = postgres_url();
    FakeCivilAffairsDb::create(&url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL for the civil-affairs tests is unreachable at {url}: {e}\nstart PostgreSQL or point HUB_TEST_POSTGRES_URL at one (these tests are not skipped)")
    })
}

fn source(url: &str, page_size: u32) -> PgPollSource {
    let mut c = PgPollConfig::new("welfare_case");
    c.page_size = page_size;
    c.settle = Duration::ZERO;
    c.timeout = Duration::from_secs(5);
    PgPollSource::new(c, Secret::new(url)).unwrap()
}

fn mapper() -> Mapper {
    Mapper::new(
        RecordFormat::for_source(SourceKind::PostgresPoll, Department::CivilAffairs).unwrap(),
    )
}

fn hours_ago(h: i64) -> chrono::DateTime<Utc> {
    Utc::now() - chrono::Duration::hours(h)
}

#[tokio::test]
async fn an_elderly_person_out_of_contact_for_48_hours_becomes_one_welfare_check() {
    let db = fake_db().await;
    let a = addresses();
    db.insert(&WelfareCase::elderly_alone(1, &a[0], hours_ago(52)))
        .await
        .unwrap();
    db.insert(&WelfareCase::elderly_alone(2, &a[1], hours_ago(3)))
        .await
        .unwrap();
    db.insert(&WelfareCase::other(
        3,
        "LEFT_BEHIND_CHILD",
        "留守儿童探访",
        &a[2],
    ))
    .await
    .unwrap();
    let mut src = source(db.url(), 10);
    src.start(None).await.unwrap();
    let mut hub = Hub::default();
    hub.turn(&mut src, &mapper()).await.unwrap();
    assert_eq!(hub.events.len(), 2, "skipped: {:?}", hub.skipped);
    let check = &hub.events[0];
    assert_eq!(check.category_code, "ELDERLY_NO_CONTACT");
    assert!(
        check
            .source_id
            .starts_with("MZ-510504-000001/no-contact-since-"),
        "{}",
        check.source_id
    );
    assert_eq!(
        check.attributes.get("action").map(String::as_str),
        Some("welfare_check")
    );
    assert!(
        check.attributes["hours_without_contact"]
            .parse::<i64>()
            .unwrap()
            >= 52
    );
    assert_eq!(
        check.location.grid_code.as_deref(),
        Some(a[0].grid_code.as_str())
    );
    assert!(check
        .raw_ref
        .as_ref()
        .unwrap()
        .uri
        .starts_with("welfare_case:"));
    let shown = format!("{check:?}");
    let person = check.reporter.as_ref().unwrap();
    assert!(
        !shown.contains(person.id_number.as_ref().unwrap().expose())
            && !shown.contains(person.name.as_ref().unwrap().expose())
    );
    assert_eq!(hub.events[1].category_code, "LEFT_BEHIND_CHILD");
    assert_eq!(hub.skipped.len(), 1);
    assert!(
        hub.skipped[0].contains("under the 48 h threshold"),
        "{}",
        hub.skipped[0]
    );

    // Failed check-ins update the row again and again: still the same welfare check.
    db.check_in("MZ-510504-000001", None).await.unwrap();
    db.check_in("MZ-510504-000001", None).await.unwrap();
    // Person 2 is now reached; person 1 finally too, then lost again for 49 hours.
    db.check_in("MZ-510504-000002", Some(Utc::now()))
        .await
        .unwrap();
    hub.turn(&mut src, &mapper()).await.unwrap();
    let ids: std::collections::BTreeSet<&str> =
        hub.events.iter().map(|e| e.source_id.as_str()).collect();
    assert_eq!(
        ids.len(),
        2,
        "repeated rows of one silence map to one source id: {:?}",
        hub.source_ids()
    );
    db.check_in("MZ-510504-000001", Some(hours_ago(49)))
        .await
        .unwrap();
    hub.turn(&mut src, &mapper()).await.unwrap();
    let ids: std::collections::BTreeSet<&str> =
        hub.events.iter().map(|e| e.source_id.as_str()).collect();
    assert_eq!(
        ids.len(),
        3,
        "a new silence is a new welfare check: {ids:?}"
    );
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn a_restart_mid_stream_resumes_at_the_saved_keyset_without_gap_or_duplicate() {
    let db = fake_db().await;
    db.seed(&addresses(), 45, Utc::now(), 3).await.unwrap();
    let mut hub = Hub::default();
    let mut rows_seen = Vec::new();
    {
        let mut first = source(db.url(), 8);
        first.start(None).await.unwrap();
        for _ in 0..2 {
            let batch = first.next_batch().await.unwrap();
            rows_seen.extend(batch.records.iter().map(|r| r.uri.clone()));
            hub.cursor = batch.cursor.clone();
            first.commit(batch.receipt, &[]).await.unwrap();
        }
        // Fetched, never saved: lost with the process.
        let _ = first.next_batch().await.unwrap();
    }
    // Rows written while the hub was down are read too.
    db.seed(&addresses(), 5, Utc::now(), 4).await.unwrap();
    let mut second = source(db.url(), 8);
    second.start(hub.cursor.clone()).await.unwrap();
    loop {
        let batch = second.next_batch().await.unwrap();
        rows_seen.extend(batch.records.iter().map(|r| r.uri.clone()));
        let more = batch.more;
        second.commit(batch.receipt, &[]).await.unwrap();
        if !more {
            break;
        }
    }
    let mut unique = rows_seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(rows_seen.len(), 50, "every row exactly once: {rows_seen:?}");
    assert_eq!(unique.len(), 50);
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn a_malformed_row_is_refused_with_its_field_and_the_rest_goes_on() {
    let db = fake_db().await;
    let a = addresses();
    db.insert(&WelfareCase::elderly_alone(1, &a[0], hours_ago(60)))
        .await
        .unwrap();
    let mut bad = WelfareCase::elderly_alone(2, &a[1], hours_ago(60));
    bad.grid_code = Some("51050400100A".into());
    db.insert(&bad).await.unwrap();
    let mut no_contact = WelfareCase::elderly_alone(3, &a[2], hours_ago(60));
    no_contact.last_contact_at = None;
    db.insert(&no_contact).await.unwrap();
    db.insert(&WelfareCase::elderly_alone(4, &a[3], hours_ago(70)))
        .await
        .unwrap();
    let mut src = source(db.url(), 10);
    src.start(None).await.unwrap();
    let mut hub = Hub::default();
    hub.turn(&mut src, &mapper()).await.unwrap();
    assert_eq!(hub.events.len(), 2);
    assert_eq!(hub.dead.len(), 2);
    assert!(
        hub.dead[0].1.contains("field `grid_code`"),
        "{}",
        hub.dead[0].1
    );
    assert!(
        hub.dead[1].1.contains("field `last_contact_at`"),
        "{}",
        hub.dead[1].1
    );
    assert!(
        String::from_utf8_lossy(&hub.dead[0].0.bytes).contains("51050400100A"),
        "the row's own JSON is kept"
    );
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn wrong_credentials_and_a_missing_table_are_clear_errors_for_an_operator() {
    let db = fake_db().await;
    let unknown_role = db.url().replacen(
        "postgres://postgres@",
        "postgres://nobody_here:secret-pw@",
        1,
    );
    let mut src = source(&unknown_role, 10);
    src.start(None).await.unwrap();
    let err = src.next_batch().await.unwrap_err();
    assert!(matches!(err, SourceError::Unauthorized { .. }), "{err}");
    assert!(!err.is_transient());
    assert!(!err.to_string().contains("secret-pw"), "{err}");

    // A user who may log in but not read the table.
    // Roles are server-wide: one per test database.
    let role = format!("hub_no_rights_{}", db.url().rsplit('_').next().unwrap());
    db.execute(&format!("CREATE ROLE {role} LOGIN"))
        .await
        .unwrap();
    let no_rights = db
        .url()
        .replacen("postgres://postgres@", &format!("postgres://{role}@"), 1);
    let mut src = source(&no_rights, 10);
    src.start(None).await.unwrap();
    let err = src.next_batch().await.unwrap_err();
    // The catalogue hides nothing, the SELECT is refused.
    assert!(matches!(err, SourceError::Unauthorized { .. }), "{err}");

    let mut c = PgPollConfig::new("welfare_cases");
    c.settle = Duration::ZERO;
    let mut src = PgPollSource::new(c, Secret::new(db.url())).unwrap();
    src.start(None).await.unwrap();
    let err = src.next_batch().await.unwrap_err();
    assert!(matches!(err, SourceError::Misconfigured { .. }), "{err}");
    assert!(err.to_string().contains("welfare_cases"), "{err}");
    let mut src = source(db.url(), 10);
    let err = src.start(Some("page-3".into())).await.unwrap_err();
    assert!(
        err.to_string().contains("not an updated_at/id position"),
        "{err}"
    );
    drop(src);
    db.drop_database().await.unwrap();
    let admin = sqlx::PgPool::connect(&postgres_url()).await.unwrap();
    sqlx::query(&format!("DROP ROLE IF EXISTS {role}"))
        .execute(&admin)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_outage_is_retried_and_the_poll_resumes_with_no_loss() {
    let db = fake_db().await;
    db.seed(&addresses(), 12, Utc::now(), 9).await.unwrap();
    // Nothing listens on this port: an outage.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let down = with_database(&format!("postgres://postgres@127.0.0.1:{port}/x"), "x");
    let mut src = source(&down, 10);
    src.start(None).await.unwrap();
    let err = src.next_batch().await.unwrap_err();
    assert!(
        matches!(err, SourceError::Unavailable { .. }) && err.is_transient(),
        "{err}"
    );

    // The database drops every connection (a restart) between two polls.
    let mut src = source(db.url(), 5);
    src.start(None).await.unwrap();
    let mut hub = Hub::default();
    hub.turn(&mut src, &mapper()).await.unwrap();
    let name = db.url().rsplit('/').next().unwrap().to_owned();
    let admin = sqlx::PgPool::connect(&postgres_url()).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
        .bind(&name)
        .execute(&admin)
        .await
        .unwrap();
    let rows = || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM welfare_case")
            .fetch_one(db.pool())
            .await
            .unwrap();
        n as usize
    };
    let total = rows().await;
    let mut seen = 0;
    hub.run_until(&mut src, &mapper(), Duration::from_secs(20), |h| {
        seen = h.events.len() + h.skipped.len() + h.dead.len();
        seen >= total
    })
    .await;
    assert_eq!(seen, total, "every row once after the outage");
    admin.close().await;
    db.drop_database().await.unwrap();
}
