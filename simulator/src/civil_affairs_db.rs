//! A fake civil-affairs (民政) database: the welfare case table of the department's care
//! platform, in PostgreSQL, as the hub's database source reads it.
//!
//! The platform keeps one row per person under care. Its check-in service calls elderly
//! people living alone every few hours and updates the row at every attempt: `updated_at`
//! always, `last_contact_at` only when someone was reached. So a row updated 48 hours after
//! its last contact is an elderly person nobody has reached for two days.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, Row};
use tokio::task::JoinHandle;

use crate::generator::Address;

/// The table as the department's system has it.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS welfare_case (
    id              BIGSERIAL PRIMARY KEY,
    case_no         TEXT NOT NULL UNIQUE,
    case_type       TEXT NOT NULL,
    case_type_name  TEXT,
    person_name     TEXT NOT NULL,
    id_number       TEXT,
    phone           TEXT,
    lives_alone     BOOLEAN NOT NULL DEFAULT false,
    last_contact_at TIMESTAMPTZ,
    grid_code       TEXT,
    address         TEXT,
    status          TEXT NOT NULL DEFAULT 'ACTIVE',
    note            TEXT,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS welfare_case_updated ON welfare_case (updated_at, id);
"#;

/// One case to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct WelfareCase {
    pub case_no: String,
    pub case_type: String,
    pub case_type_name: Option<String>,
    pub person_name: String,
    pub id_number: Option<String>,
    pub phone: Option<String>,
    pub lives_alone: bool,
    pub last_contact_at: Option<DateTime<Utc>>,
    pub grid_code: Option<String>,
    pub address: Option<String>,
    pub note: Option<String>,
}

impl WelfareCase {
    /// An elderly person living alone, last reached at `last_contact_at`.
    pub fn elderly_alone(n: u32, at: &Address, last_contact_at: DateTime<Utc>) -> Self {
        WelfareCase {
            case_no: format!("MZ-510504-{n:06}"),
            case_type: "ELDERLY_LIVING_ALONE".into(),
            case_type_name: Some("独居老人".into()),
            person_name: format!(
                "{}{}",
                ["王", "李", "张", "刘", "陈"][n as usize % 5],
                ["秀英", "桂兰", "建国", "淑珍"][n as usize % 4]
            ),
            id_number: Some(format!(
                "5105041940{:02}{:02}{:04}",
                1 + n % 12,
                1 + n % 28,
                n % 10_000
            )),
            phone: Some(format!("138{:08}", 10_000_000 + n)),
            lives_alone: true,
            last_contact_at: Some(last_contact_at),
            grid_code: Some(at.grid_code.clone()),
            address: Some(at.name.clone()),
            note: None,
        }
    }

    /// Another kind of case (left-behind child, hardship, disability support).
    pub fn other(n: u32, case_type: &str, name: &str, at: &Address) -> Self {
        WelfareCase {
            case_no: format!("MZ-510504-{n:06}"),
            case_type: case_type.into(),
            case_type_name: Some(name.into()),
            person_name: format!("赵{}", ["小明", "小红", "伟", "芳"][n as usize % 4]),
            id_number: None,
            phone: Some(format!("139{:08}", 20_000_000 + n)),
            lives_alone: false,
            last_contact_at: None,
            grid_code: Some(at.grid_code.clone()),
            address: Some(at.name.clone()),
            note: Some("季度探访到期".into()),
        }
    }
}

/// A running fake database. [`FakeCivilAffairsDb::drop_database`] removes a database it
/// created.
pub struct FakeCivilAffairsDb {
    pool: PgPool,
    url: String,
    created: Option<(String, String)>,
}

impl std::fmt::Debug for FakeCivilAffairsDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeCivilAffairsDb")
            .field("database", &self.created.as_ref().map(|c| c.1.as_str()))
            .finish()
    }
}

impl FakeCivilAffairsDb {
    /// Create a fresh database `civil_affairs_sim_<random>` on the server at `admin_url`
    /// (any database there, e.g. `postgres://postgres@127.0.0.1:5432/postgres`) with the
    /// welfare table.
    pub async fn create(admin_url: &str) -> Result<Self, String> {
        let mut admin = PgConnection::connect(admin_url).await.map_err(|e| {
            format!("connecting to PostgreSQL to create the fake civil-affairs database: {e}")
        })?;
        let name = format!("civil_affairs_sim_{:016x}", rand::rng().random::<u64>());
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .map_err(|e| format!("creating database {name}: {e}"))?;
        let url = with_database(admin_url, &name);
        let mut db = Self::attach(&url).await?;
        db.created = Some((admin_url.to_owned(), name));
        Ok(db)
    }

    /// Drop (if present) and create the database `name` on the server at `admin_url`, with
    /// the welfare table: a fresh, fixed-name database (the demo's, wiped at each start).
    pub async fn recreate(admin_url: &str, name: &str) -> Result<Self, String> {
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(format!(
                "database name `{name}`: lower-case letters, digits and _ only"
            ));
        }
        let mut admin = PgConnection::connect(admin_url)
            .await
            .map_err(|e| format!("connecting to PostgreSQL: {e}"))?;
        admin
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await
            .map_err(|e| format!("dropping database {name}: {e}"))?;
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .map_err(|e| format!("creating database {name}: {e}"))?;
        Self::attach(&with_database(admin_url, name)).await
    }

    /// Use an existing database (docker-compose, demo), creating the table when missing.
    pub async fn attach(url: &str) -> Result<Self, String> {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|e| format!("connecting to the fake civil-affairs database: {e}"))?;
        pool.execute(SCHEMA)
            .await
            .map_err(|e| format!("creating the welfare_case table: {e}"))?;
        Ok(FakeCivilAffairsDb {
            pool,
            url: url.to_owned(),
            created: None,
        })
    }

    /// The database's URL (for the hub's connector configuration).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Insert a case; returns its row id. `updated_at` is the database's clock. (Times are
    /// bound as RFC 3339 text, which PostgreSQL reads exactly.)
    pub async fn insert(&self, case: &WelfareCase) -> Result<i64, String> {
        let row = sqlx::query(
            "INSERT INTO welfare_case (case_no, case_type, case_type_name, person_name, id_number, phone, lives_alone, last_contact_at, grid_code, address, note) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8::text::timestamptz,$9,$10,$11) RETURNING id",
        )
        .bind(&case.case_no)
        .bind(&case.case_type)
        .bind(&case.case_type_name)
        .bind(&case.person_name)
        .bind(&case.id_number)
        .bind(&case.phone)
        .bind(case.lives_alone)
        .bind(case.last_contact_at.map(|t| t.to_rfc3339()))
        .bind(&case.grid_code)
        .bind(&case.address)
        .bind(&case.note)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| format!("inserting case {}: {e}", case.case_no))?;
        row.try_get(0).map_err(|e| e.to_string())
    }

    /// A check-in attempt: the row is updated; `reached_at` moves the last contact.
    pub async fn check_in(
        &self,
        case_no: &str,
        reached_at: Option<DateTime<Utc>>,
    ) -> Result<(), String> {
        let done = sqlx::query(
            "UPDATE welfare_case SET updated_at = clock_timestamp(), last_contact_at = COALESCE($2::text::timestamptz, last_contact_at) WHERE case_no = $1",
        )
        .bind(case_no)
        .bind(reached_at.map(|t| t.to_rfc3339()))
        .execute(&self.pool)
        .await
        .map_err(|e| format!("check-in for {case_no}: {e}"))?;
        if done.rows_affected() == 0 {
            return Err(format!("check-in for {case_no}: no such case"));
        }
        Ok(())
    }

    /// Close a case (the row is updated, so the hub sees it once more).
    pub async fn close(&self, case_no: &str) -> Result<(), String> {
        sqlx::query("UPDATE welfare_case SET status = 'CLOSED', updated_at = clock_timestamp() WHERE case_no = $1")
            .bind(case_no)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| format!("closing {case_no}: {e}"))
    }

    /// Write raw SQL (malformed rows for tests, e.g. a grid code with letters).
    pub async fn execute(&self, sql: &str) -> Result<u64, String> {
        self.pool
            .execute(sql)
            .await
            .map(|r| r.rows_affected())
            .map_err(|e| e.to_string())
    }

    /// Seed `n` cases at random addresses: mostly elderly people living alone, some of them
    /// already out of contact for more than 48 hours.
    pub async fn seed(
        &self,
        addresses: &[Address],
        n: u32,
        now: DateTime<Utc>,
        seed: u64,
    ) -> Result<(), String> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let start: i64 = sqlx::query_scalar("SELECT count(*) FROM welfare_case")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| e.to_string())?;
        for i in 0..n {
            let k = start as u32 + i + 1;
            let at = &addresses[rng.random_range(0..addresses.len().max(1))];
            let case = match k % 5 {
                0 => WelfareCase::other(k, "LEFT_BEHIND_CHILD", "留守儿童探访", at),
                1 => WelfareCase::other(k, "HARDSHIP", "困难群众帮扶", at),
                _ => {
                    let hours = rng.random_range(1..72);
                    WelfareCase::elderly_alone(k, at, now - chrono::Duration::hours(hours))
                }
            };
            self.insert(&case).await?;
        }
        Ok(())
    }

    /// Run the check-in service: every `interval`, one random elderly person is called;
    /// most are reached.
    pub fn run_check_ins(&self, interval: Duration, seed: u64) -> JoinHandle<()> {
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let db = FakeCivilAffairsDb {
                pool,
                url: String::new(),
                created: None,
            };
            let mut rng = SmallRng::seed_from_u64(seed);
            loop {
                tokio::time::sleep(interval).await;
                let case: Option<String> = sqlx::query_scalar(
                    "SELECT case_no FROM welfare_case WHERE case_type = 'ELDERLY_LIVING_ALONE' AND status = 'ACTIVE' ORDER BY random() LIMIT 1",
                )
                .fetch_optional(&db.pool)
                .await
                .unwrap_or(None);
                if let Some(case_no) = case {
                    let reached = rng.random_bool(0.7).then(Utc::now);
                    if let Err(e) = db.check_in(&case_no, reached).await {
                        tracing::warn!(error = %e, "simulated check-in failed");
                    }
                }
            }
        })
    }

    /// Drop a database this fake created (no-op for an attached one).
    pub async fn drop_database(self) -> Result<(), String> {
        self.pool.close().await;
        if let Some((admin_url, name)) = self.created {
            let mut admin = PgConnection::connect(&admin_url)
                .await
                .map_err(|e| e.to_string())?;
            admin
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await
                .map_err(|e| format!("dropping {name}: {e}"))?;
        }
        Ok(())
    }
}

/// `base` with its database name replaced by `database`.
pub fn with_database(base: &str, database: &str) -> String {
    let (main, query) = base
        .split_once('?')
        .map_or((base, None), |(m, q)| (m, Some(q)));
    let authority = main.find("://").map_or(0, |i| i + 3);
    let root = match main[authority..].find('/') {
        Some(i) => &main[..authority + i],
        None => main,
    };
    match query {
        Some(q) => format!("{root}/{database}?{q}"),
        None => format!("{root}/{database}"),
    }
}
