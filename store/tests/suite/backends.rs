//! The backends the suite runs against: a store location that lives as long as one test.

use std::sync::Arc;

use hub_store::TaskStore;
use sqlx::{Connection, Executor, PgConnection};

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A store location that lives as long as one test.
pub struct TestDb {
    url: String,
    _cleanup: Cleanup,
}

/// Held only for what dropping it does.
enum Cleanup {
    RemoveDir { _dir: tempfile::TempDir },
    DropDatabase { _database: PgDatabase },
}

impl TestDb {
    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn open(&self) -> Arc<dyn TaskStore> {
        hub_store::open(&self.url)
            .await
            .unwrap_or_else(|e| panic!("opening the store at {} failed: {e}", self.url))
    }
}

/// A file in a directory that does not exist yet, so `open` has to create both.
pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let url = format!("sqlite://{}/data/hub.db", dir.path().display());
    TestDb {
        url,
        _cleanup: Cleanup::RemoveDir { _dir: dir },
    }
}

pub async fn postgres() -> TestDb {
    let admin_url =
        std::env::var("HUB_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
    let mut admin = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL for the hub-store suite is unreachable at {admin_url}: {e}\n\
             start PostgreSQL or point HUB_TEST_POSTGRES_URL at one (these tests are not skipped)"
        )
    });
    let name = format!("hub_test_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap_or_else(|e| panic!("creating test database {name} at {admin_url} failed: {e}"));
    TestDb {
        url: with_database(&admin_url, &name),
        _cleanup: Cleanup::DropDatabase {
            _database: PgDatabase { admin_url, name },
        },
    }
}

/// `base` with its database name replaced by `database`.
fn with_database(base: &str, database: &str) -> String {
    let (main, query) = base
        .split_once('?')
        .map_or((base, None), |(m, q)| (m, Some(q)));
    let authority = main.find("://").map_or(0, |i| i + 3);
    let root = main[authority..]
        .find('/')
        .map_or(main, |i| &main[..authority + i]);
    match query {
        Some(query) => format!("{root}/{database}?{query}"),
        None => format!("{root}/{database}"),
    }
}

/// Drops its database when the test ends, passed or failed.
struct PgDatabase {
    admin_url: String,
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread of its own.
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url)
                    .await
                    .map_err(|e| e.to_string())?;
                // FORCE: pools of the stores under test may still hold connections.
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: test database {} was not dropped: {e}", self.name),
            Err(_) => eprintln!("warning: dropping test database {} panicked", self.name),
        }
    }
}
