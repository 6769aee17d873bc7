//! Connector cursors.

use crate::backends::TestDb;

store_suite!(cursors_round_trip_overwrite_and_survive_reopen);

async fn cursors_round_trip_overwrite_and_survive_reopen(db: &TestDb) {
    let store = db.open().await;
    let police = "police.longmatan";
    assert_eq!(store.load_cursor(police).await.unwrap(), None);

    store
        .save_cursor(police, "2024-06-01T08:00:00Z#1001")
        .await
        .unwrap();
    store
        .save_cursor("civil_affairs.longmatan", "row:77")
        .await
        .unwrap();
    assert_eq!(
        store.load_cursor(police).await.unwrap().as_deref(),
        Some("2024-06-01T08:00:00Z#1001")
    );
    store
        .save_cursor(police, "2024-06-01T09:30:00Z#1042")
        .await
        .unwrap();
    drop(store);

    let reopened = db.open().await;
    assert_eq!(
        reopened.load_cursor(police).await.unwrap().as_deref(),
        Some("2024-06-01T09:30:00Z#1042")
    );
    assert_eq!(
        reopened
            .load_cursor("civil_affairs.longmatan")
            .await
            .unwrap()
            .as_deref(),
        Some("row:77")
    );
}
