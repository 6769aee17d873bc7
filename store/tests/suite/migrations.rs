//! Opening a store again, also from two processes at once.

use hub_store::TaskFilter;

use crate::backends::TestDb;
use crate::fixtures::*;

store_suite!(reopening_runs_migrations_idempotently);

async fn reopening_runs_migrations_idempotently(db: &TestDb) {
    let store = db.open().await;
    let backend = store.backend();
    let first = sample_task("UM-2024-000800", BASE_MS);
    created_id(store.create_routed(&first, &[]).await.unwrap());
    drop(store);

    // Reopened, also by two processes starting at once: the schema is already there.
    let (a, b) = tokio::join!(db.open(), db.open());
    assert_eq!(a.backend(), backend);
    assert_eq!(
        a.get_task(&first.task_id).await.unwrap().unwrap().fields,
        first
    );
    let second = sample_task("UM-2024-000801", BASE_MS + 1);
    created_id(b.create_routed(&second, &[]).await.unwrap());
    assert_eq!(a.count_tasks(&TaskFilter::default()).await.unwrap(), 2);
}
