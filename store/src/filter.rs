//! The `WHERE` clause and page of a task listing, built from a [`TaskFilter`].

use std::fmt::Write as _;

use hub_router::task::TaskStatus;
use hub_schemas::event::Department;
use sqlx::any::AnyArguments;
use sqlx::error::BoxDynError;
use sqlx::{Any, Arguments, Encode, Type};

use crate::dialect::Dialect;
use crate::{TaskFilter, TaskOrder};

/// SQL text and its arguments, built together. sqlx's `QueryBuilder` writes `?` placeholders
/// for the `Any` driver, which PostgreSQL does not read; this one writes `$1`, `$2`... like
/// the crate's fixed queries, which both dialects read (or `?` for SQLite's batch writes:
/// see [`SqlBuilder::for_rows`]).
pub(crate) struct SqlBuilder<'a> {
    sql: String,
    args: AnyArguments<'a>,
    /// Placeholders are `?`, numbered by position, instead of `$N`.
    anonymous: bool,
    /// The first value that could not be encoded, reported by [`SqlBuilder::build`].
    error: Option<BoxDynError>,
}

impl<'a> SqlBuilder<'a> {
    pub(crate) fn new(sql: impl Into<String>) -> Self {
        SqlBuilder {
            sql: sql.into(),
            args: AnyArguments::default(),
            anonymous: false,
            error: None,
        }
    }

    /// A builder for a multi-row statement of a batch's writes (`sql` has no placeholder of
    /// its own). On SQLite its placeholders are `?`: binding a statement with numbered ones
    /// looks each number up in a list (`sqlite3_bind_parameter_name`), which made binding
    /// quadratic in the number of values and a few thousand values cost more than running
    /// the statement (measured: 17 % of the writer thread at 32 tasks a statement).
    pub(crate) fn for_rows(dialect: Dialect, sql: impl Into<String>) -> Self {
        let sql = sql.into();
        debug_assert!(
            !sql.contains('$'),
            "a row statement binds only what it pushes"
        );
        SqlBuilder {
            anonymous: dialect == Dialect::Sqlite,
            ..SqlBuilder::new(sql)
        }
    }

    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends the next placeholder and binds `value` to it.
    pub(crate) fn push_bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'a + Encode<'a, Any> + Type<Any>,
    {
        match self.args.add(value) {
            Ok(()) => {
                if self.anonymous {
                    self.sql.push('?');
                } else {
                    // Writing to a String cannot fail.
                    let _ = write!(self.sql, "${}", self.args.len());
                }
            }
            Err(e) if self.error.is_none() => self.error = Some(e),
            Err(_) => {}
        }
        self
    }

    /// Appends `, ` and the next placeholder, binding `value`: a value after the first of a
    /// row in a `VALUES` list.
    pub(crate) fn push_bind_next<T>(&mut self, value: T) -> &mut Self
    where
        T: 'a + Encode<'a, Any> + Type<Any>,
    {
        self.push(", ").push_bind(value)
    }

    /// Appends what `row` writes for each item (a parenthesised value list), comma-separated.
    pub(crate) fn push_rows<T>(
        &mut self,
        items: &'a [T],
        mut row: impl FnMut(&mut Self, &'a T),
    ) -> &mut Self {
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            row(self, item);
        }
        self
    }

    /// The SQL and its arguments, for `sqlx::query_with` and its kin.
    pub(crate) fn build(self) -> Result<(String, AnyArguments<'a>), sqlx::Error> {
        match self.error {
            Some(e) => Err(sqlx::Error::Encode(e)),
            None => Ok((self.sql, self.args)),
        }
    }
}

/// Appends ` WHERE ...` for the filter's conditions (nothing when it has none).
pub(crate) fn push_filter<'a>(query: &mut SqlBuilder<'a>, filter: &'a TaskFilter) {
    let conditions = [
        ("community_code", filter.community_code.as_deref()),
        ("street_code", filter.street_code.as_deref()),
        ("status", filter.status.map(TaskStatus::as_str)),
        ("department", filter.department.map(Department::as_str)),
        ("grid_code", filter.grid_code.as_deref()),
    ];
    let mut keyword = " WHERE ";
    for (column, value) in conditions {
        if let Some(value) = value {
            query
                .push(keyword)
                .push(column)
                .push(" = ")
                .push_bind(value);
            keyword = " AND ";
        }
    }
    if filter.open_only {
        query
            .push(keyword)
            .push("status NOT IN ('closed', 'cancelled')");
        keyword = " AND ";
    }
    if let Some(prefix) = filter.category.as_deref() {
        query
            .push(keyword)
            .push("taxonomy_code LIKE ")
            .push_bind(format!("{}%", like_escape(prefix)))
            .push(" ESCAPE '!'");
        keyword = " AND ";
    }
    // `+c.is_open` in the subqueries: a task's own clocks are found by task id (see
    // `SELECT_POINTS`).
    if filter.paused {
        // A paused clock is open with no deadline (it has none until it runs again).
        query.push(keyword).push(
            "EXISTS (SELECT 1 FROM sla_clocks c WHERE c.task_id = tasks.task_id \
             AND +c.is_open = 1 AND c.deadline IS NULL)",
        );
        keyword = " AND ";
    }
    if let Some(now) = filter.at_risk_at {
        let now = now.timestamp_millis();
        query
            .push(keyword)
            .push(
                "EXISTS (SELECT 1 FROM sla_clocks c WHERE c.task_id = tasks.task_id \
                 AND +c.is_open = 1 AND c.warning_at <= ",
            )
            .push_bind(now)
            .push(" AND c.deadline > ")
            .push_bind(now)
            .push(")");
        keyword = " AND ";
    }
    // Unit ids and roles appear in the co-handlers' JSON as `"<community>.<role>"`; the
    // text form of the column is the same in both dialects up to spacing, which the
    // patterns do not depend on.
    if let Some(unit) = filter.unit_id.as_deref() {
        query
            .push(keyword)
            .push("(lead_unit_id = ")
            .push_bind(unit)
            .push(" OR CAST(co_handlers AS TEXT) LIKE ")
            .push_bind(format!("%\"{}\"%", like_escape(unit)))
            .push(" ESCAPE '!')");
        keyword = " AND ";
    }
    if let Some(inv) = &filter.involving {
        query
            .push(keyword)
            .push("(department = ")
            .push_bind(inv.department.as_str());
        for role in &inv.unit_roles {
            query
                .push(" OR lead_unit_role = ")
                .push_bind(role.as_str())
                .push(" OR CAST(co_handlers AS TEXT) LIKE ")
                .push_bind(format!("%.{}\"%", like_escape(role.as_str())))
                .push(" ESCAPE '!'");
        }
        query.push(")");
        keyword = " AND ";
    }
    if let Some(from) = filter.created_from {
        query
            .push(keyword)
            .push("created_at >= ")
            .push_bind(from.timestamp_millis());
        keyword = " AND ";
    }
    if let Some(before) = filter.created_before {
        query
            .push(keyword)
            .push("created_at < ")
            .push_bind(before.timestamp_millis());
        keyword = " AND ";
    }
    if let Some(before) = filter.due_before {
        query
            .push(keyword)
            .push("due_at IS NOT NULL AND due_at <= ")
            .push_bind(before.timestamp_millis());
        keyword = " AND ";
    }
    if let Some(breached) = filter.breached {
        query
            .push(keyword)
            .push("breached = ")
            .push_bind(i64::from(breached));
    }
}

/// Escapes LIKE's wildcards (escape character `!`).
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '!') {
            out.push('!');
        }
        out.push(c);
    }
    out
}

/// Appends the listing order (task id breaking ties) and the page.
pub(crate) fn push_page(query: &mut SqlBuilder<'_>, filter: &TaskFilter) {
    let order = match filter.order {
        TaskOrder::Newest => " ORDER BY created_at DESC, task_id DESC LIMIT ",
        // Tasks with no open deadline last.
        TaskOrder::SoonestDue => {
            " ORDER BY CASE WHEN due_at IS NULL THEN 1 ELSE 0 END, due_at ASC, task_id ASC LIMIT "
        }
    };
    query
        .push(order)
        .push_bind(i64::from(filter.effective_limit()))
        .push(" OFFSET ")
        .push_bind(i64::from(filter.offset));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        let filter = TaskFilter {
            street_code: Some("510504001".to_owned()),
            unit_id: Some("510504001001.workstation".to_owned()),
            breached: Some(true),
            ..TaskFilter::default()
        };
        let mut query = SqlBuilder::new("SELECT COUNT(*) FROM tasks");
        push_filter(&mut query, &filter);
        push_page(&mut query, &filter);
        let (sql, args) = query.build().unwrap();
        assert_eq!(
            sql,
            "SELECT COUNT(*) FROM tasks WHERE street_code = $1 AND (lead_unit_id = $2 OR \
             CAST(co_handlers AS TEXT) LIKE $3 ESCAPE '!') AND breached = $4 \
             ORDER BY created_at DESC, task_id DESC LIMIT $5 OFFSET $6"
        );
        assert_eq!(args.len(), 6);
    }
}
