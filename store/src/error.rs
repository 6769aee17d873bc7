//! What can go wrong in the task store, said so that an operator knows where to look.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL names a database the hub cannot use. The URL itself is not repeated:
    /// it may carry a password.
    #[error(
        "unsupported task store URL scheme `{scheme}`: use `sqlite://PATH` or `postgres://USER@HOST:PORT/DATABASE` (also `postgresql://`)"
    )]
    UnsupportedScheme { scheme: String },

    #[error("invalid task store URL: {reason}")]
    InvalidUrl { reason: String },

    #[error("cannot create directory {} for the SQLite task store: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot connect to the {backend} task store at {target}: {source}")]
    Connect {
        backend: &'static str,
        target: String,
        source: sqlx::Error,
    },

    #[error("cannot migrate the {backend} task store at {target}: {source}")]
    Migrate {
        backend: &'static str,
        target: String,
        source: sqlx::migrate::MigrateError,
    },

    #[error("{backend} task store: {operation} failed: {source}")]
    Query {
        backend: &'static str,
        operation: String,
        source: sqlx::Error,
    },

    /// The task cannot be stored as given (checked before anything is written).
    #[error("task {task_id} cannot be stored: {reason}")]
    InvalidTask { task_id: String, reason: String },

    /// A stored row does not decode into a task: written by something other than this crate,
    /// or by a version that knew a value this one does not.
    #[error("stored task {task_id} is unreadable: column `{column}`: {reason}")]
    Corrupt {
        task_id: String,
        column: &'static str,
        reason: String,
    },

    /// An outbox entry that cannot be read back.
    #[error("outbox entry {id} cannot be read: {reason}")]
    CorruptOutbox { id: i64, reason: String },

    /// The database answered something that its constraints should have made impossible.
    #[error("{backend} task store: {operation}: {reason}")]
    Inconsistent {
        backend: &'static str,
        operation: String,
        reason: String,
    },
}

impl StoreError {
    /// A closure for `map_err` that wraps a driver error with the backend and operation.
    pub(crate) fn query(
        backend: &'static str,
        operation: impl FnOnce() -> String,
    ) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| StoreError::Query {
            backend,
            operation: operation(),
            source,
        }
    }
}
