//! Small helpers for the hand-written SQL of the domain layer.

use sea_orm::{DbBackend, QueryResult, Statement, Value};

use crate::error::{DomainError, DomainResult};
use crate::money::Amount;

/// A Postgres statement with positional (`$n`) values.
pub fn statement(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
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
