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

    /// A question the store cannot answer as asked (a filter a query does not support).
    #[error("{reason}")]
    Unsupported { reason: String },

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

/// Whether a failure is the store's (retry: it will pass) or the data's (retrying cannot
/// help: the record must be set aside so the stream goes on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// The database is unreachable, busy, locked, restarting or out of resources.
    Transient,
    /// The database refuses these values (a NUL character, a number out of range, a value
    /// too big), or the data cannot be written or read as it is.
    Permanent,
    /// Not known to be either; the caller decides (the routing pipeline retries a few
    /// times, then asks the store whether it answers at all).
    Unknown,
}

impl StoreError {
    /// Classifies the failure (see [`FailureClass`]).
    pub fn class(&self) -> FailureClass {
        match self {
            StoreError::Connect { .. } | StoreError::CreateDir { .. } => FailureClass::Transient,
            StoreError::Query {
                source, backend, ..
            } => class_of(backend, source),
            StoreError::InvalidTask { .. }
            | StoreError::Unsupported { .. }
            | StoreError::Corrupt { .. }
            | StoreError::CorruptOutbox { .. } => FailureClass::Permanent,
            StoreError::UnsupportedScheme { .. }
            | StoreError::InvalidUrl { .. }
            | StoreError::Migrate { .. }
            | StoreError::Inconsistent { .. } => FailureClass::Unknown,
        }
    }
}

fn class_of(backend: &str, e: &sqlx::Error) -> FailureClass {
    use sqlx::Error as E;
    match e {
        E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => {
            FailureClass::Transient
        }
        E::Encode(_) | E::Decode(_) | E::ColumnDecode { .. } | E::TypeNotFound { .. } => {
            FailureClass::Permanent
        }
        E::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or_default();
            if backend == "postgres" {
                postgres_class(code)
            } else {
                code.parse::<u32>()
                    .map_or(FailureClass::Unknown, |n| sqlite_class(n & 0xff))
            }
        }
        _ => FailureClass::Unknown,
    }
}

/// A PostgreSQL SQLSTATE: five characters, the first two its class.
fn postgres_class(sqlstate: &str) -> FailureClass {
    match sqlstate {
        // lock_not_available, query_canceled (statement timeout)
        "55P03" | "57014" => FailureClass::Transient,
        s => match s.get(..2).unwrap_or_default() {
            // connection, transaction rollback (serialization, deadlock), resources,
            // operator intervention (shutdown), system error
            "08" | "40" | "53" | "57" | "58" => FailureClass::Transient,
            // data exception (NUL in text, out of range, bad datetime), integrity
            // constraint, syntax or access rule
            "22" | "23" | "42" | "2B" | "0A" => FailureClass::Permanent,
            _ => FailureClass::Unknown,
        },
    }
}

/// A SQLite primary result code (the low byte of an extended one).
fn sqlite_class(primary: u32) -> FailureClass {
    match primary {
        // BUSY, LOCKED, NOMEM, IOERR, FULL, CANTOPEN, PROTOCOL
        5 | 6 | 7 | 10 | 13 | 14 | 15 => FailureClass::Transient,
        // TOOBIG, CONSTRAINT, MISMATCH, RANGE
        18 | 19 | 20 | 25 => FailureClass::Permanent,
        _ => FailureClass::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_codes_are_classified_by_dialect() {
        assert_eq!(postgres_class("22021"), FailureClass::Permanent); // NUL in UTF-8 text
        assert_eq!(postgres_class("22003"), FailureClass::Permanent); // numeric out of range
        assert_eq!(postgres_class("40P01"), FailureClass::Transient); // deadlock
        assert_eq!(postgres_class("08006"), FailureClass::Transient); // connection failure
        assert_eq!(postgres_class("57P01"), FailureClass::Transient); // admin shutdown
        assert_eq!(postgres_class("55P03"), FailureClass::Transient); // lock not available
        assert_eq!(postgres_class("HV000"), FailureClass::Unknown);
        assert_eq!(sqlite_class(5), FailureClass::Transient); // SQLITE_BUSY
        assert_eq!(sqlite_class(517 & 0xff), FailureClass::Transient); // SQLITE_BUSY_SNAPSHOT
        assert_eq!(sqlite_class(18), FailureClass::Permanent); // SQLITE_TOOBIG
        assert_eq!(sqlite_class(2067 & 0xff), FailureClass::Permanent); // CONSTRAINT_UNIQUE
    }
}
