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
    bps_opt(row, column)?.ok_or_else(|| bug(format_args!("no {column}")))
}

/// A nullable basis-points column.
pub fn bps_opt(row: &QueryResult, column: &str) -> DomainResult<Option<u32>> {
    let value: Option<i32> = row.try_get("", column)?;
    value
        .map(|v| u32::try_from(v).map_err(|_| bug(format_args!("a negative {column}"))))
        .transpose()
}

/// A text column holding one of `T`'s variants, spelled as its serde name
/// (which is also its database and API spelling).
pub fn enum_col<T: serde::de::DeserializeOwned>(
    row: &QueryResult,
    column: &str,
) -> DomainResult<T> {
    let text: String = row.try_get("", column)?;
    from_db(&text)
}

/// One of `T`'s variants from its database spelling (its serde name).
pub fn from_db<T: serde::de::DeserializeOwned>(text: &str) -> DomainResult<T> {
    use serde::de::value::{Error, StrDeserializer};
    T::deserialize(StrDeserializer::<Error>::new(text)).map_err(|err| {
        DomainError::Internal(anyhow::anyhow!(
            "unreadable {}: {err}",
            std::any::type_name::<T>()
        ))
    })
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

/// Data-modifying statements sent as ONE statement: each added statement
/// becomes a `WITH` part and the last one the main statement, so the lot
/// costs one round trip and is all or nothing. The parts run on one
/// snapshot and cannot see each other's rows, but constraints (foreign
/// keys included) are checked at the end of the whole statement, so a row
/// may reference another row of the same batch. Each statement numbers its
/// own values from `$1`; no statement may itself start with `WITH`. Parts
/// added with [`Batch::push_named`] can be read by the parts after them and
/// by the main statement (`FROM w`), as a `WITH` statement's parts can.
#[derive(Debug, Default)]
pub struct Batch {
    parts: Vec<(String, String)>,
    values: Vec<Value>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `statement` as the next part.
    pub fn push(&mut self, statement: Statement) {
        let name = format!("p{}", self.parts.len());
        self.push_named(&[&name], [statement.sql], statement.values);
    }

    /// Adds parts called `names`, whose SQL (`sqls`, one per name) shares
    /// one numbering of `values` from `$1`: a `WITH` statement's parts.
    pub fn push_named<const N: usize>(
        &mut self,
        names: &[&str; N],
        sqls: [String; N],
        values: Option<sea_orm::Values>,
    ) {
        let offset = self.values.len();
        for (name, sql) in names.iter().zip(sqls) {
            self.parts
                .push(((*name).to_owned(), renumbered(&sql, offset)));
        }
        if let Some(values) = values {
            self.values.extend(values.0);
        }
    }

    /// Runs the batch with `last` as its main statement; the row `last`
    /// returns, if any.
    pub async fn fetch_one<C: ConnectionTrait>(
        mut self,
        conn: &C,
        last: Statement,
    ) -> DomainResult<Option<QueryResult>> {
        self.push(last);
        let (_, main) = self.parts.pop().unwrap_or_default();
        let sql = if self.parts.is_empty() {
            main
        } else {
            let parts: Vec<String> = self
                .parts
                .iter()
                .map(|(name, part)| format!("{name} AS ({part})"))
                .collect();
            format!("WITH {} {main}", parts.join(", "))
        };
        Ok(conn.query_one_raw(statement(&sql, self.values)).await?)
    }
}

/// `sql` with every placeholder `$n` shifted to `$(n + offset)`. Our
/// statements carry values only as placeholders, never `$` in literals.
fn renumbered(sql: &str, offset: usize) -> String {
    if offset == 0 {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        out.push(c);
        if c != '$' {
            continue;
        }
        let mut n = 0usize;
        let mut digits = false;
        while let Some(&(_, d)) = chars.peek() {
            let Some(digit) = d.to_digit(10) else { break };
            n = n * 10 + digit as usize;
            digits = true;
            chars.next();
        }
        if digits {
            out.push_str(&(n + offset).to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_shift_by_the_values_before_them() {
        assert_eq!(renumbered("VALUES ($1, $2)", 0), "VALUES ($1, $2)");
        assert_eq!(
            renumbered("VALUES ($1, $12::uuid, now() + $3)", 4),
            "VALUES ($5, $16::uuid, now() + $7)"
        );
        assert_eq!(renumbered("a $ b", 3), "a $ b");
    }

    #[test]
    fn a_batch_is_one_statement_with_the_last_part_as_main() {
        let mut batch = Batch::new();
        batch.push(statement("INSERT INTO a VALUES ($1)", vec![1i64.into()]));
        batch.push(statement(
            "INSERT INTO b VALUES ($1, $2)",
            vec![2i64.into(), 3i64.into()],
        ));
        batch.push(statement("INSERT INTO c VALUES ($1)", vec![4i64.into()]));
        let (_, main) = batch.parts.pop().expect("a part");
        assert_eq!(batch.parts[1].1, "INSERT INTO b VALUES ($2, $3)");
        assert_eq!(main, "INSERT INTO c VALUES ($4)");
        assert_eq!(batch.values.len(), 4);
    }

    #[test]
    fn named_parts_share_one_numbering_after_the_parts_before_them() {
        let mut batch = Batch::new();
        batch.push(statement("INSERT INTO a VALUES ($1)", vec![1i64.into()]));
        batch.push_named(
            &["w", "t"],
            [
                "UPDATE b SET x = $1 RETURNING id".to_owned(),
                "INSERT INTO c SELECT id, $2 FROM w".to_owned(),
            ],
            Some(sea_orm::Values(vec![2i64.into(), 3i64.into()])),
        );
        assert_eq!(
            batch.parts[1],
            (
                "w".to_owned(),
                "UPDATE b SET x = $2 RETURNING id".to_owned()
            )
        );
        assert_eq!(
            batch.parts[2],
            (
                "t".to_owned(),
                "INSERT INTO c SELECT id, $3 FROM w".to_owned()
            )
        );
        assert_eq!(batch.values.len(), 3);
    }
}
