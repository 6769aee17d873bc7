//! One behaviour suite for the task store, run against every backend: SQLite on a temporary
//! file and PostgreSQL on a fresh database per test (at `HUB_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`). An unreachable PostgreSQL fails the
//! PostgreSQL tests; it never skips them.
//!
//! Each module holds the tests of one concern as `async fn name(db: &TestDb)` and names them
//! in [`store_suite!`], which runs each one as `<module>::sqlite::name` and
//! `<module>::postgres::name`.

/// Runs every named test of the module against each backend, on a store of its own.
macro_rules! store_suite {
    ($($test:ident),+ $(,)?) => {
        store_suite!(@backend sqlite: $($test),+);
        store_suite!(@backend postgres: $($test),+);
    };
    (@backend $backend:ident: $($test:ident),+) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let db = crate::backends::$backend().await;
                    super::$test(&db).await;
                }
            )+
        }
    };
}

mod backends;
mod fixtures;

mod actions;
mod alerts;
mod audit;
mod cursors;
mod events;
mod indicators;
mod migrations;
mod outbox;
mod reports;
mod rules_versions;
mod tasks;
mod workflow;
