//! Small helpers for the hand-written SQL of the domain layer.

use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, Value};

use crate::error::{DomainError, DomainResult};
use crate::money::Amount;

/// A Postgres statement with positional (`$n`) values.
pub fn statement(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// The row `sql` selects, if any, read by `view`.
pub async fn fetch_one<C: ConnectionTrait, T>(
    conn: &C,
    sql: &str,
    values: Vec<Value>,
    view: fn(&QueryResult) -> DomainResult<T>,
) -> DomainResult<Option<T>> {
    let row = conn.query_one_raw(statement(sql, values)).await?;
    row.as_ref().map(view).transpose()
}

/// Every row `sql` selects, read by `view`.
pub async fn fetch_all<C: ConnectionTrait, T>(
    conn: &C,
    sql: &str,
    values: Vec<Value>,
    view: fn(&QueryResult) -> DomainResult<T>,
) -> DomainResult<Vec<T>> {
    let rows = conn.query_all_raw(statement(sql, values)).await?;
    rows.iter().map(view).collect()
}

/// The row of `table` (`columns` of it) with primary key `id`.
pub async fn by_id<C: ConnectionTrait, T>(
    conn: &C,
    table: &str,
    columns: &str,
    id: uuid::Uuid,
    view: fn(&QueryResult) -> DomainResult<T>,
) -> DomainResult<Option<T>> {
    let sql = format!("SELECT {columns} FROM {table} WHERE id = $1");
    fetch_one(conn, &sql, vec![id.into()], view).await
}

/// The rows of `table` with these primary keys (unknown ones are skipped),
/// in one query.
pub async fn by_ids<C: ConnectionTrait, T>(
    conn: &C,
    table: &str,
    columns: &str,
    ids: &[uuid::Uuid],
    view: fn(&QueryResult) -> DomainResult<T>,
) -> DomainResult<Vec<T>> {
    let sql = format!("SELECT {columns} FROM {table} WHERE id = ANY($1)");
    fetch_all(conn, &sql, vec![ids.to_vec().into()], view).await
}

/// An `Internal` error for a state the database should make impossible.
pub fn bug(message: impl std::fmt::Display) -> DomainError {
    DomainError::Internal(anyhow::anyhow!("{message}"))
}

/// The non-negative money column `column` of `row`.
pub fn amount(row: &QueryResult, column: &str) -> DomainResult<Amount> {
    let minor: i64 = row.try_get("", column)?;
    Amount::new(minor).map_err(|_| bug(format_args!("a negative {column}")))
}

/// The nullable money column `column` of `row`.
pub fn amount_opt(row: &QueryResult, column: &str) -> DomainResult<Option<Amount>> {
    let minor: Option<i64> = row.try_get("", column)?;
    minor
        .map(|m| Amount::new(m).map_err(|_| bug(format_args!("a negative {column}"))))
        .transpose()
}

/// The basis-point column `column` of `row`.
pub fn bps(row: &QueryResult, column: &str) -> DomainResult<u32> {
    let value: i32 = row.try_get("", column)?;
    u32::try_from(value).map_err(|_| bug(format_args!("a negative {column}")))
}

/// A text column holding one of `T`'s variants, spelled as its serde name
/// (which is also its database and API spelling).
pub fn enum_col<T: serde::de::DeserializeOwned>(
    row: &QueryResult,
    column: &str,
) -> DomainResult<T> {
    let text: String = row.try_get("", column)?;
    crate::ledger::from_db(&text)
}

/// The database spelling of an enum value (its serde name).
pub fn db_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

/// A trimmed text input of `min..=max` characters, else `BAD_USER_INPUT`
/// on `field`.
pub fn text_input(raw: &str, field: &str, min: usize, max: usize) -> DomainResult<String> {
    let text = raw.trim();
    let length = text.chars().count();
    if length < min || length > max || text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(DomainError::bad_input(
            field,
            if min == 0 {
                format!("must be at most {max} characters")
            } else {
                format!("must be {min}-{max} characters")
            },
        ));
    }
    Ok(text.to_owned())
}
