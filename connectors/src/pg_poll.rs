//! Source: a PostgreSQL table of a departmental system (the civil-affairs welfare cases),
//! read by a keyset cursor on (`updated_at`, id):
//!
//! ```sql
//! SELECT row_to_json(t)::text, t.updated_at::text, t.id::text FROM <table> t
//! WHERE (t.updated_at, t.id) > ($1, $2) AND t.updated_at <= now() - <settle>
//! ORDER BY t.updated_at, t.id LIMIT <page_size>
//! ```
//!
//! Each record's bytes are the row rendered as JSON by PostgreSQL (`row_to_json`), so the
//! record is exactly what the table held; its uri is `<table>:<id>`. An updated row comes
//! again with its new `updated_at`, and the mapping decides whether that is news.
//!
//! Rows written by a transaction that commits *after* the poller passed their `updated_at`
//! would be skipped by any keyset cursor. The `settle` lag (default 5 s) leaves the newest
//! rows for the next poll; set it above the longest write transaction of the department's
//! system. Rows whose `updated_at` is NULL are never read. An index on (`updated_at`, id)
//! keeps each poll cheap.
//!
//! The connection URL holds the password: it is a [`Secret`], and errors and logs name only
//! the host, port and database.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Row;

use crate::config::{duration, RateLimitConfig};
use crate::source::{Batch, Outcome, Receipt, ReceiptInner, Source, SourceError, SourceKind};
use crate::{RawRecord, Secret};

/// A PostgreSQL table read by an `updated_at` + id cursor, as `[[connectors]] kind =
/// "postgres_poll"` configures it. `Debug` shows the URL's variable, never the URL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PgPollConfig {
    /// The connector (also the `source_system` of its events).
    pub name: String,
    pub department: String,
    pub rate_limit: Option<RateLimitConfig>,
    /// Name of the environment variable holding `postgres://user:password@host:5432/db`.
    pub url_env: String,
    /// `table` or `schema.table`.
    pub table: String,
    pub id_column: String,
    pub updated_at_column: String,
    pub page_size: u32,
    /// Rows updated less than this long ago are left for a later poll (see module docs):
    /// longer than the department's longest write transaction.
    #[serde(rename = "settle_ms", deserialize_with = "duration::ms::deserialize")]
    pub settle: Duration,
    /// Session time zone: how `timestamp without time zone` columns are read and how
    /// timestamps are rendered in the JSON. Default `Asia/Shanghai`.
    pub time_zone: String,
    /// Connect and statement timeout.
    #[serde(rename = "timeout_ms", deserialize_with = "duration::ms::deserialize")]
    pub timeout: Duration,
    /// Pause after a page that left nothing waiting.
    #[serde(
        rename = "poll_interval_ms",
        deserialize_with = "duration::ms::deserialize"
    )]
    pub poll_interval: Duration,
    /// An elderly person living alone not reached for this long needs a welfare check.
    pub elderly_no_contact_hours: u32,
}

impl Default for PgPollConfig {
    /// Columns `id` and `updated_at`, pages of 100, 5 s settle, Asia/Shanghai, 10 s
    /// timeout, polls 2 s apart, a welfare check after 48 h without contact.
    fn default() -> Self {
        PgPollConfig {
            name: String::new(),
            department: String::new(),
            rate_limit: None,
            url_env: String::new(),
            table: String::new(),
            id_column: "id".into(),
            updated_at_column: "updated_at".into(),
            page_size: 100,
            settle: Duration::from_secs(5),
            time_zone: "Asia/Shanghai".into(),
            timeout: Duration::from_secs(10),
            poll_interval: Duration::from_secs(2),
            elderly_no_contact_hours: 48,
        }
    }
}

impl PgPollConfig {
    pub fn new(table: impl Into<String>) -> Self {
        PgPollConfig {
            table: table.into(),
            ..PgPollConfig::default()
        }
    }
}

/// The keyset position, saved as the connector's cursor (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysetCursor {
    /// `updated_at` of the last row read, as PostgreSQL prints it.
    pub updated_at: String,
    /// Its id, as text.
    pub id: String,
}

impl KeysetCursor {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a keyset cursor serialises")
    }

    pub fn decode(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| {
            format!("the saved cursor `{}` is not an updated_at/id position ({e}); was this connector's name used for another kind of source?",
                text.chars().take(60).collect::<String>())
        })
    }
}

/// The SQL for one table, built once its column types are known.
#[derive(Debug, Clone)]
struct Queries {
    first: String,
    after: String,
}

pub struct PgPollSource {
    pool: PgPool,
    config: PgPollConfig,
    /// `postgres://user:password@host:5432/db`; never logged.
    url: Secret,
    /// Quoted `"schema"."table"`.
    table_sql: String,
    origin: String,
    queries: Option<Queries>,
    position: Option<KeysetCursor>,
}

impl fmt::Debug for PgPollSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgPollSource")
            .field("origin", &self.origin)
            .field("position", &self.position)
            .finish()
    }
}

/// Column types the cursor can round-trip through text exactly.
const TIME_TYPES: &[&str] = &["timestamp with time zone", "timestamp without time zone"];
const ID_TYPES: &[&str] = &[
    "bigint",
    "integer",
    "smallint",
    "numeric",
    "text",
    "character varying",
    "uuid",
];

impl PgPollSource {
    /// Check the configuration and prepare a lazy pool: nothing connects until the first
    /// batch, so a database that is down at start-up is an outage, not a crash.
    pub fn new(config: PgPollConfig, url: Secret) -> Result<Self, SourceError> {
        let options =
            PgConnectOptions::from_str(url.expose()).map_err(|e| SourceError::Misconfigured {
                origin: format!("postgres table {}", config.table),
                detail: format!(
                    "the database URL is not a valid postgres:// URL: {}",
                    redact(&e.to_string(), &url)
                ),
            })?;
        let origin = format!(
            "postgres://{}:{}/{} table {}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("(default)"),
            config.table
        );
        let bad = |detail: String| SourceError::Misconfigured {
            origin: origin.clone(),
            detail,
        };
        let table_sql = quote_path(&config.table).map_err(&bad)?;
        quote_ident(&config.id_column).map_err(&bad)?;
        quote_ident(&config.updated_at_column).map_err(&bad)?;
        if config.page_size == 0 {
            return Err(bad("page_size must be at least 1".into()));
        }
        let time_zone = config.time_zone.clone();
        let statement_timeout = format!("{}ms", config.timeout.as_millis().max(1));
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(config.timeout)
            .after_connect(move |conn, _meta| {
                let time_zone = time_zone.clone();
                let statement_timeout = statement_timeout.clone();
                Box::pin(async move {
                    // Bound parameters: the time zone comes from configuration, not SQL.
                    sqlx::query("SELECT set_config('TimeZone', $1, false), set_config('statement_timeout', $2, false), set_config('DateStyle', 'ISO, YMD', false)")
                        .bind(time_zone)
                        .bind(statement_timeout)
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .connect_lazy_with(options);
        Ok(PgPollSource {
            pool,
            config,
            url,
            table_sql,
            origin,
            queries: None,
            position: None,
        })
    }

    pub fn position(&self) -> Option<&KeysetCursor> {
        self.position.as_ref()
    }

    fn error(&self, e: sqlx::Error) -> SourceError {
        classify(&self.origin, &self.url, e)
    }

    /// Look the columns up in the catalogue (once) and build the two queries.
    async fn queries(&mut self) -> Result<Queries, SourceError> {
        if let Some(q) = &self.queries {
            return Ok(q.clone());
        }
        let c = &self.config;
        let rows = sqlx::query(
            "SELECT a.attname::text, format_type(a.atttypid, NULL) FROM pg_attribute a \
             WHERE a.attrelid = to_regclass($1) AND a.attname = ANY($2) AND a.attnum > 0 AND NOT a.attisdropped",
        )
        .bind(&self.table_sql)
        .bind(vec![c.id_column.clone(), c.updated_at_column.clone()])
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        let type_of = |column: &str| -> Option<String> {
            rows.iter()
                .find(|r| r.try_get::<String, _>(0).ok().as_deref() == Some(column))
                .and_then(|r| r.try_get::<String, _>(1).ok())
        };
        let bad = |detail: String| SourceError::Misconfigured {
            origin: self.origin.clone(),
            detail,
        };
        let (Some(time_type), Some(id_type)) =
            (type_of(&c.updated_at_column), type_of(&c.id_column))
        else {
            return Err(bad(format!(
                "table `{}` with columns `{}` and `{}` not found (or not visible to this user)",
                c.table, c.updated_at_column, c.id_column
            )));
        };
        if !TIME_TYPES.contains(&time_type.as_str()) {
            return Err(bad(format!(
                "column `{}` is `{time_type}`; the cursor needs a timestamp column",
                c.updated_at_column
            )));
        }
        if !ID_TYPES.contains(&id_type.as_str()) {
            return Err(bad(format!(
                "column `{}` is `{id_type}`; the cursor needs one of {}",
                c.id_column,
                ID_TYPES.join(", ")
            )));
        }
        let upd = format!("t.{}", quote_ident(&c.updated_at_column).map_err(&bad)?);
        let id = format!("t.{}", quote_ident(&c.id_column).map_err(&bad)?);
        let select = format!(
            "SELECT row_to_json(t)::text, {upd}::text, {id}::text FROM {table} AS t WHERE {upd} <= (now() - make_interval(secs => $1))::{time_type}",
            table = self.table_sql
        );
        let order = format!("ORDER BY {upd}, {id} LIMIT $2");
        let queries = Queries {
            first: format!("{select} {order}"),
            after: format!(
                "{select} AND ({upd}, {id}) > ($3::text::{time_type}, $4::text::{id_type}) {order}"
            ),
        };
        self.queries = Some(queries.clone());
        Ok(queries)
    }
}

#[async_trait]
impl Source for PgPollSource {
    fn kind(&self) -> SourceKind {
        SourceKind::PostgresPoll
    }

    async fn start(&mut self, cursor: Option<String>) -> Result<(), SourceError> {
        self.position =
            match cursor {
                None => None,
                Some(text) => Some(KeysetCursor::decode(&text).map_err(|detail| {
                    SourceError::Misconfigured {
                        origin: self.origin.clone(),
                        detail,
                    }
                })?),
            };
        Ok(())
    }

    async fn next_batch(&mut self) -> Result<Batch, SourceError> {
        let queries = self.queries().await?;
        let settle = self.config.settle.as_secs_f64();
        let limit = i64::from(self.config.page_size);
        let rows = match &self.position {
            None => {
                sqlx::query(&queries.first)
                    .bind(settle)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
            }
            Some(p) => {
                sqlx::query(&queries.after)
                    .bind(settle)
                    .bind(limit)
                    .bind(&p.updated_at)
                    .bind(&p.id)
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(|e| self.error(e))?;
        let mut records = Vec::with_capacity(rows.len());
        let mut last = None;
        for row in &rows {
            let read = |i: usize| {
                row.try_get::<String, _>(i)
                    .map_err(|e| SourceError::BadAnswer {
                        origin: self.origin.clone(),
                        detail: format!("reading column {i} of a row: {e}"),
                    })
            };
            let (json, updated_at, id) = (read(0)?, read(1)?, read(2)?);
            records.push(RawRecord {
                bytes: json.into_bytes(),
                uri: format!("{}:{id}", self.config.table),
            });
            last = Some(KeysetCursor { updated_at, id });
        }
        let more = rows.len() as i64 >= limit;
        Ok(Batch {
            records,
            rejected: Vec::new(),
            cursor: last.as_ref().map(KeysetCursor::encode),
            more,
            receipt: Receipt(ReceiptInner::Position(
                last.as_ref().map(KeysetCursor::encode),
            )),
        })
    }

    async fn commit(&mut self, receipt: Receipt, _: &[Outcome]) -> Result<(), SourceError> {
        if let ReceiptInner::Position(Some(text)) = receipt.0 {
            // Encoded by this source a moment ago; decoding cannot fail.
            if let Ok(position) = KeysetCursor::decode(&text) {
                self.position = Some(position);
            }
        }
        Ok(())
    }
}

impl Drop for PgPollSource {
    fn drop(&mut self) {
        // Close the idle connection instead of leaving it to time out on the server.
        let pool = self.pool.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move { pool.close().await });
        }
    }
}

/// Sort a database error into what the hub does about it.
fn classify(origin: &str, url: &Secret, e: sqlx::Error) -> SourceError {
    let origin = origin.to_owned();
    let detail = redact(&e.to_string(), url);
    match &e {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // invalid_password, invalid_authorization_specification (unknown role),
            // insufficient_privilege
            Some("28P01" | "28000" | "42501") => SourceError::Unauthorized {
                origin,
                detail: format!("{detail}; check the connector's database user and password"),
            },
            // undefined table/column, unknown database, bad time zone setting
            Some("42P01" | "42703" | "3D000" | "22023") => {
                SourceError::Misconfigured { origin, detail }
            }
            _ => SourceError::Unavailable { origin, detail },
        },
        sqlx::Error::Configuration(_) => SourceError::Misconfigured { origin, detail },
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_) => SourceError::BadAnswer { origin, detail },
        _ => SourceError::Unavailable { origin, detail },
    }
}

/// Never let the password through, even if a driver message quotes the URL.
fn redact(text: &str, url: &Secret) -> String {
    let mut out = text.replace(url.expose(), "postgres://***");
    if let Some(password) = password_of(url.expose()) {
        if !password.is_empty() {
            out = out.replace(&password, "***");
        }
    }
    out
}

fn password_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.split('@').next().filter(|_| rest.contains('@'))?;
    userinfo.split_once(':').map(|(_, p)| p.to_owned())
}

/// `"name"`, for names of letters, digits and `_` not starting with a digit (what
/// departmental schemas use); anything else is refused rather than escaped.
fn quote_ident(name: &str) -> Result<String, String> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 63;
    if ok {
        Ok(format!("\"{name}\""))
    } else {
        Err(format!(
            "`{name}` is not a plain SQL name (letters, digits and _, at most 63)"
        ))
    }
}

fn quote_path(path: &str) -> Result<String, String> {
    let parts: Vec<&str> = path.split('.').collect();
    if parts.is_empty() || parts.len() > 2 {
        return Err(format!(
            "table `{path}`: expected `table` or `schema.table`"
        ));
    }
    Ok(parts
        .iter()
        .map(|p| quote_ident(p))
        .collect::<Result<Vec<_>, _>>()?
        .join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_or_refused() {
        assert_eq!(
            quote_path("minzheng.welfare_case").unwrap(),
            r#""minzheng"."welfare_case""#
        );
        assert!(quote_path("welfare_case; DROP TABLE x").is_err());
        assert!(quote_ident("1abc").is_err());
        assert!(quote_path("a.b.c").is_err());
    }

    #[test]
    fn cursors_round_trip_and_a_foreign_cursor_is_named() {
        let c = KeysetCursor {
            updated_at: "2026-11-21 10:23:00.123456+08".into(),
            id: "42".into(),
        };
        assert_eq!(KeysetCursor::decode(&c.encode()).unwrap(), c);
        let err = KeysetCursor::decode("17").unwrap_err();
        assert!(err.contains("not an updated_at/id position"), "{err}");
    }

    #[tokio::test]
    async fn the_password_never_shows() {
        let url = Secret::new("postgres://minzheng:Pa55-w0rd@db.example:5432/welfare");
        let config = PgPollConfig::new("welfare_case");
        let source = PgPollSource::new(config, url.clone()).unwrap();
        assert!(!format!("{source:?}").contains("Pa55"));
        let text = redact(
            "cannot connect to postgres://minzheng:Pa55-w0rd@db.example:5432/welfare (Pa55-w0rd)",
            &url,
        );
        assert!(!text.contains("Pa55"), "{text}");
    }
}
