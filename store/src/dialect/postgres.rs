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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Held by the relay numbering committed outbox entries ([`OUTBOX_SEQUENCE`]), so that two
/// relays (of any processes) never number at once. Writers never take it.
const OUTBOX_SEQUENCE_LOCK: &str = "SELECT pg_advisory_xact_lock(7243001)";

/// Numbers the committed entries that have no `id` yet, in `entry_id` order, after the
/// highest `id` given (migration 0008). Entries of one task commit one after the other (each
/// writer changes the task's row first), so their ids keep their order.
const OUTBOX_SEQUENCE: &str = "WITH todo AS (SELECT entry_id, \
     ROW_NUMBER() OVER (ORDER BY entry_id) AS n FROM outbox WHERE id IS NULL \
     ORDER BY entry_id LIMIT 10000), head AS (SELECT COALESCE(MAX(id), 0) AS top FROM outbox) \
     UPDATE outbox SET id = head.top + todo.n FROM todo, head WHERE outbox.entry_id = todo.entry_id";

/// The statements that number committed outbox entries, in one transaction.
pub(crate) const OUTBOX_SEQUENCING: [&str; 2] = [OUTBOX_SEQUENCE_LOCK, OUTBOX_SEQUENCE];

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

/// A table [`replicate_tasks`] copies: its name, the columns that change with each copy
/// (with their value), and the columns the database fills in.
type Copied = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
);

/// For benchmarks at city scale: copies every task of the database at `url` `copies - 1`
/// times, with its history, clocks and indicator facts, copy `k` shifted `k × shift_ms`
/// later (ids and source ids suffixed `~k`), then brings the planner's statistics up to date. Returns the
/// number of tasks afterwards. Reports, returns and the outbox are not copied, nor the times
/// inside the JSON columns (the clock JSON keeps the original deadlines; the columns move).
pub async fn replicate_tasks(url: &str, copies: u32, shift_ms: i64) -> Result<i64, String> {
    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    // The tables, the columns that change with each copy (the rest are copied as they are),
    // and the columns the database fills in itself.
    let tables: [Copied; 4] = [
        (
            "tasks",
            &[
                ("task_id", "task_id || '~' || k"),
                ("event_id", "event_id || '~' || k"),
                ("source_id", "source_id || '~' || k"),
                ("occurred_at", "occurred_at + k * $1"),
                ("received_at", "received_at + k * $1"),
                ("created_at", "created_at + k * $1"),
                ("updated_at", "updated_at + k * $1"),
                ("due_at", "due_at + k * $1"),
            ],
            &[],
        ),
        (
            "task_history",
            // Copies are not what was recorded: outside the hash chains (history.rs).
            &[
                ("task_id", "task_id || '~' || k"),
                ("at", "at + k * $1"),
                ("prev_hash", "NULL"),
                ("hash", "NULL"),
            ],
            &[],
        ),
        (
            "sla_clocks",
            &[
                ("task_id", "task_id || '~' || k"),
                ("deadline", "deadline + k * $1"),
                ("warning_at", "warning_at + k * $1"),
                ("changed_at", "changed_at + k * $1"),
            ],
            &["id"],
        ),
        (
            "case_facts",
            &[
                ("task_id", "task_id || '~' || k"),
                ("created_at", "created_at + k * $1"),
                ("dispatched_at", "dispatched_at + k * $1"),
                ("signed_for_at", "signed_for_at + k * $1"),
                ("resolved_at", "resolved_at + k * $1"),
                ("closed_at", "closed_at + k * $1"),
                ("sign_for_due", "sign_for_due + k * $1"),
                ("handling_due", "handling_due + k * $1"),
            ],
            &[],
        ),
    ];
    for (table, moved, generated) in tables {
        let columns: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_name = $1 AND table_schema = current_schema() ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(&mut db)
        .await
        .map_err(|e| format!("columns of {table}: {e}"))?;
        let columns: Vec<&String> = columns
            .iter()
            .filter(|c| !generated.contains(&c.as_str()))
            .collect();
        let select: Vec<String> = columns
            .iter()
            .map(|c| {
                moved
                    .iter()
                    .find(|(name, _)| name == c)
                    .map_or_else(|| c.to_string(), |(_, expr)| expr.to_string())
            })
            .collect();
        let list: Vec<&str> = columns.iter().map(|c| c.as_str()).collect();
        let sql = format!(
            "INSERT INTO {table} ({}) SELECT {} FROM {table} \
             CROSS JOIN generate_series(1, {}) AS k ORDER BY k",
            list.join(", "),
            select.join(", "),
            copies.saturating_sub(1)
        );
        sqlx::query(&sql)
            .bind(shift_ms)
            .execute(&mut db)
            .await
            .map_err(|e| format!("copying {table}: {e}"))?;
    }
    sqlx::query("VACUUM ANALYZE")
        .execute(&mut db)
        .await
        .map_err(|e| format!("VACUUM ANALYZE: {e}"))?;
    sqlx::query_scalar("SELECT COUNT(*) FROM tasks")
        .fetch_one(&mut db)
        .await
        .map_err(|e| e.to_string())
}

pub(crate) async fn open(url: &str, pool: &crate::PoolOptions) -> Result<Store, StoreError> {
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
    // `Any` reads the same URL into the same options again when it connects; the pool's
    // name goes with it, so the server's `pg_stat_activity` shows whose connection it is.
    let named = match &pool.name {
        Some(name) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}application_name={name}")
        }
        None => url.to_owned(),
    };
    let options = AnyConnectOptions::from_str(&named).map_err(invalid)?;
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(pool.max_connections.max(1))
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
