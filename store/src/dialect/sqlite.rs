//! Opening the SQLite store: one file, one writer connection, a few reader connections (WAL
//! lets readers run while the router writes).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, ConnectOptions, Executor};

use super::Dialect;
use crate::store::Store;
use crate::StoreError;

const BACKEND: &str = Dialect::Sqlite.name();
const READER_CONNECTIONS: u32 = 4;

/// Run on every new connection. `Any` opens a SQLite file from a URL, which carries only the
/// file and its open mode; the rest of the set-up comes here.
/// - busy_timeout: another process holding the write lock is waited for 5 s before a write
///   fails.
/// - synchronous FULL, not NORMAL: a committed task must survive a power cut, since the
///   broker offset is committed right after it.
/// - temp_store MEMORY: a multi-row statement inside a transaction keeps a statement journal
///   (to undo itself alone); in a temporary file that was a tenth of the writer's time.
/// - cache_size 32 MiB (default 2 MiB): a batch's transaction dirties more pages than the
///   default holds, and spilled them into the WAL before its commit.
const PRAGMAS: &str = "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
     PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY; \
     PRAGMA cache_size = -32768;";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

pub(crate) async fn open(url: &str) -> Result<Store, StoreError> {
    let (path, query) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .map(|rest| rest.split_once('?').unwrap_or((rest, "")))
        .ok_or_else(|| StoreError::InvalidUrl {
            reason: "a SQLite URL starts with `sqlite://`".to_owned(),
        })?;
    if path.is_empty() || path == ":memory:" || query.contains("mode=memory") {
        return Err(StoreError::InvalidUrl {
            reason: format!(
                "`{url}` is not a database file: the task store must outlive the process, give a path such as sqlite://data/hub.db"
            ),
        });
    }
    let options = SqliteConnectOptions::from_str(url).map_err(|e| StoreError::InvalidUrl {
        reason: format!("`{url}`: {e}"),
    })?;
    let target = options.get_filename().display().to_string();
    let file = create_parent_dir(options.get_filename())?;
    let options = options.filename(file);
    let connect_err = |source| StoreError::Connect {
        backend: BACKEND,
        target: target.clone(),
        source,
    };
    let writer = pool(1, &options.clone().create_if_missing(true))
        .await
        .map_err(connect_err)?;
    MIGRATOR
        .run(&writer)
        .await
        .map_err(|source| StoreError::Migrate {
            backend: BACKEND,
            target: target.clone(),
            source,
        })?;
    // Not created if missing: a URL's `mode=rwc` would otherwise win over read-only in the URL
    // `Any` opens the readers by.
    let readers = pool(
        READER_CONNECTIONS,
        &options.create_if_missing(false).read_only(true),
    )
    .await
    .map_err(connect_err)?;
    Ok(Store {
        dialect: Dialect::Sqlite,
        writer,
        readers,
    })
}

/// Creates the database file's directory if missing, and answers the file's path with that
/// directory resolved (absolute, no `..`), ready to go into a URL.
fn create_parent_dir(file: &Path) -> Result<PathBuf, StoreError> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir_err = |source| StoreError::CreateDir {
        path: dir.to_path_buf(),
        source,
    };
    // Blocking, but once at start-up before anything else runs.
    std::fs::create_dir_all(dir).map_err(dir_err)?;
    let name = file.file_name().ok_or_else(|| StoreError::InvalidUrl {
        reason: format!("`{}` does not name a database file", file.display()),
    })?;
    Ok(std::fs::canonicalize(dir).map_err(dir_err)?.join(name))
}

/// A pool of at most `max` connections to the file `options` names, opened as `options` asks
/// (read-only, created if missing) and set up with [`PRAGMAS`].
async fn pool(max: u32, options: &SqliteConnectOptions) -> Result<AnyPool, sqlx::Error> {
    sqlx::any::install_default_drivers();
    AnyPoolOptions::new()
        .max_connections(max)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute(PRAGMAS).await?;
                Ok(())
            })
        })
        .connect_with(any_options(options)?)
        .await
}

/// The `Any` form of `options`: its absolute file path, percent-encoded so that it reads back
/// exactly, with the open mode, cache and VFS that sqlx writes for it.
fn any_options(options: &SqliteConnectOptions) -> Result<AnyConnectOptions, sqlx::Error> {
    let mut url = String::from("sqlite://");
    for &byte in options.get_filename().as_os_str().as_encoded_bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            url.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(url, "%{byte:02X}");
        }
    }
    if let Some(query) = options.to_url_lossy().query() {
        url.push('?');
        url.push_str(query);
    }
    AnyConnectOptions::from_str(&url)
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use super::*;

    #[tokio::test]
    async fn writer_and_readers_are_set_up_as_before_the_any_driver() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&format!("sqlite://{}/hub.db", dir.path().display()))
            .await
            .unwrap();
        assert_eq!(store.writer.options().get_max_connections(), 1);
        assert_eq!(
            store.readers.options().get_max_connections(),
            READER_CONNECTIONS
        );
        for pool in [&store.writer, &store.readers] {
            let mut conn = pool.acquire().await.unwrap();
            assert_eq!(pragma(&mut conn, "journal_mode").await, "wal");
            assert_eq!(pragma(&mut conn, "synchronous").await, "2"); // FULL
            assert_eq!(pragma(&mut conn, "foreign_keys").await, "1");
            assert_eq!(pragma(&mut conn, "busy_timeout").await, "5000");
        }
        let write = sqlx::query("CREATE TABLE t (a INTEGER)");
        assert!(
            write.execute(&store.readers).await.is_err(),
            "readers are read-only"
        );

        // The driver's own error comes through `Any`, so its code still classifies it.
        let err = sqlx::query("INSERT INTO tasks (task_id) VALUES ('t')")
            .execute(&store.writer)
            .await
            .map_err(StoreError::query(BACKEND, || "insert".to_owned()))
            .unwrap_err();
        assert_eq!(err.class(), crate::FailureClass::Permanent, "{err}");
    }

    async fn pragma(conn: &mut sqlx::AnyConnection, name: &str) -> String {
        let row = sqlx::query(&format!("PRAGMA {name}"))
            .fetch_one(conn)
            .await
            .unwrap();
        row.try_get::<String, _>(0)
            .or_else(|_| row.try_get::<i64, _>(0).map(|n| n.to_string()))
            .unwrap()
    }

    #[test]
    fn any_url_keeps_odd_file_names_and_the_open_mode() {
        let options = SqliteConnectOptions::new()
            .filename("/var/lib/hub data/100%#?é.db")
            .read_only(true);
        let url = any_options(&options).unwrap().database_url;
        let back = SqliteConnectOptions::from_str(url.as_str()).unwrap();
        assert_eq!(
            back.get_filename(),
            Path::new("/var/lib/hub data/100%#?é.db")
        );
        assert!(url.query().unwrap().contains("mode=ro"), "{url}");
    }
}
