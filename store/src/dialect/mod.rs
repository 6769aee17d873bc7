//! What differs between SQLite and PostgreSQL, and nothing else.
//!
//! The store runs every query through sqlx's `Any` driver, so one implementation serves both
//! databases. The SQL is written once, for PostgreSQL; [`Dialect::sql`] turns it into SQLite's.
//! Opening the database (pools, pragmas, migrations) is per backend, in [`sqlite`] and
//! [`postgres`].

use std::borrow::Cow;

pub mod postgres;
pub(crate) mod sqlite;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `"sqlite"` or `"postgres"`: what [`crate::TaskStore::backend`] answers and what errors
    /// carry, since [`crate::StoreError::class`] reads a database's error codes by it.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }

    /// `sql`, written for PostgreSQL, as this dialect runs it.
    ///
    /// The crate's SQL uses `$1`-style placeholders, which SQLite reads too. PostgreSQL keeps
    /// JSON in JSONB columns, so JSON parameters are cast `::jsonb` on the way in and JSON
    /// columns read back `::text` (and a nullable text parameter is cast `::text` where
    /// `$1 IS NULL` alone would leave its type open). SQLite keeps JSON as TEXT: it drops
    /// those casts, and joins strings with `group_concat` where PostgreSQL has `string_agg`.
    pub(crate) fn sql(self, sql: &str) -> Cow<'_, str> {
        match self {
            Dialect::Sqlite if sql.contains("::") || sql.contains("string_agg(") => Cow::Owned(
                sql.replace("::jsonb", "")
                    .replace("::text", "")
                    .replace("string_agg(", "group_concat("),
            ),
            Dialect::Sqlite | Dialect::Postgres => Cow::Borrowed(sql),
        }
    }

    /// Rows per statement when many rows of one kind are written together (a batch's tasks,
    /// history, clocks, reports, outbox events). PostgreSQL pays a round trip per statement:
    /// many rows each. SQLite runs in-process, but each statement still goes to sqlx's
    /// worker thread and back, a thread switch each way: 100 rows a statement, with `?`
    /// placeholders ([`crate::filter::SqlBuilder::for_rows`]) so that binding stays linear
    /// (measured with `hub bench pipeline --events 30000`: 2,400 events/s at one row a
    /// statement, 4,100 at 100).
    pub(crate) fn rows_per_statement(self) -> usize {
        match self {
            Dialect::Sqlite => 100,
            Dialect::Postgres => 1_000,
        }
    }

    /// Whether the statements that write a batch's rows are kept prepared. On SQLite the
    /// same few statements (a full chunk of [`Self::rows_per_statement`] rows, and the rest)
    /// come back in every batch: preparing each again cost more than running it. PostgreSQL's
    /// multi-row statements are not kept: a cached statement keeps the parameter types of its
    /// first rows (a NULL there) and applies them to later values.
    pub(crate) fn keeps_row_statements(self) -> bool {
        match self {
            Dialect::Sqlite => true,
            Dialect::Postgres => false,
        }
    }

    /// The statements a relay runs (in one transaction) to number the outbox entries that
    /// committed since, before it reads "after id N", if the dialect needs them: see
    /// [`postgres::OUTBOX_SEQUENCING`]. SQLite needs none: its one writer commits
    /// transactions one after the other, so its entry ids are in commit order already.
    pub(crate) fn outbox_sequencing(self) -> &'static [&'static str] {
        match self {
            Dialect::Sqlite => &[],
            Dialect::Postgres => &postgres::OUTBOX_SEQUENCING,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_drops_postgres_casts_and_renames_the_aggregate() {
        let sql = "SELECT payload::text AS payload, (SELECT string_agg(kind, ',') FROM a) \
                   FROM outbox WHERE ($1::text IS NULL OR department = $1) AND x = $2::jsonb";
        assert_eq!(
            Dialect::Sqlite.sql(sql),
            "SELECT payload AS payload, (SELECT group_concat(kind, ',') FROM a) \
             FROM outbox WHERE ($1 IS NULL OR department = $1) AND x = $2"
        );
        assert_eq!(Dialect::Postgres.sql(sql), sql);
        assert!(matches!(
            Dialect::Sqlite.sql("SELECT 1 FROM t WHERE a = $1"),
            Cow::Borrowed(_)
        ));
    }
}
