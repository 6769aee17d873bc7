//! Opening the PostgreSQL store, for several hub processes sharing one database. Idempotent
//! task creation rests on the unique (source_system, source_id) index, so it holds across
//! processes; migrations take PostgreSQL's advisory lock, so processes may start together.

use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::postgres::PgConnectOptions;

use super::Dialect;
use crate::store::Store;
use crate::StoreError;

const BACKEND: &str = Dialect::Postgres.name();
const MAX_CONNECTIONS: u32 = 10;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Held by every transaction that writes outbox entries, until it commits: entries then
/// become visible in id order, so a relay reading "after id N" never skips one that commits
/// late.
pub(crate) const OUTBOX_ORDER_LOCK: &str = "SELECT pg_advisory_xact_lock(7243001)";

/// Creates a fresh, empty database `<prefix>_<unique suffix>` on the server at `admin_url`
/// (any database there) and returns its URL: for benches and drills that need a store of
/// their own.
pub async fn fresh_database(admin_url: &str, prefix: &str) -> Result<String, String> {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(admin_url)
        .await
        .map_err(|e| e.to_string())?;
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = format!("{prefix}_{}_{unique}", std::process::id());
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("`{prefix}` is not a plain database name prefix"));
    }
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .map_err(|e| format!("creating database {name}: {e}"))?;
    let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
    Ok(format!("{base}/{name}"))
}

pub(crate) async fn open(url: &str) -> Result<Store, StoreError> {
    // sqlx's parse errors do not echo the URL, which may hold a password.
    let invalid = |e: sqlx::Error| StoreError::InvalidUrl {
        reason: format!("PostgreSQL URL: {e}"),
    };
    let options = PgConnectOptions::from_str(url).map_err(invalid)?;
    // host:port/database names the server without the credentials.
    let target = format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or(options.get_username())
    );
    // `Any` reads the same URL into the same options again when it connects.
    let options = AnyConnectOptions::from_str(url).map_err(invalid)?;
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .connect_with(options)
        .await
        .map_err(|source| StoreError::Connect {
            backend: BACKEND,
            target: target.clone(),
            source,
        })?;
    MIGRATOR
        .run(&pool)
        .await
        .map_err(|source| StoreError::Migrate {
            backend: BACKEND,
            target,
            source,
        })?;
    // One pool serves reads and writes: PostgreSQL runs writers side by side.
    Ok(Store {
        dialect: Dialect::Postgres,
        writer: pool.clone(),
        readers: pool,
    })
}
