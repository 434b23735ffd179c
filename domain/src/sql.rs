//! The domain layer's SQL plumbing: batches of statements sent as one
//! round trip, enum spellings, checked text input, and the few helpers the
//! query builder lacks.

use std::fmt::{self, Write as _};

use sea_orm::sea_query::{
    Expr, Func, PostgresQueryBuilder, QueryBuilder, SqlWriter, SubQueryStatement,
};
use sea_orm::{
    ConnectionTrait, DbBackend, FromQueryResult, QueryResult, SelectModel, Selector, Statement,
    Value,
};

use crate::error::{DomainError, DomainResult};

/// A Postgres statement with positional (`$n`) values.
pub fn statement(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// The one row `query` selects, if any, read as `Row` and made a `View`.
pub async fn one_as<Row, View, C>(
    conn: &C,
    query: Selector<SelectModel<Row>>,
) -> DomainResult<Option<View>>
where
    Row: FromQueryResult + Send + Sync,
    View: TryFrom<Row, Error = DomainError>,
    C: ConnectionTrait,
{
    query.one(conn).await?.map(View::try_from).transpose()
}

/// Every row `query` selects, each read as `Row` and made a `View`.
pub async fn all_as<Row, View, C>(
    conn: &C,
    query: Selector<SelectModel<Row>>,
) -> DomainResult<Vec<View>>
where
    Row: FromQueryResult + Send + Sync,
    View: TryFrom<Row, Error = DomainError>,
    C: ConnectionTrait,
{
    query
        .all(conn)
        .await?
        .into_iter()
        .map(View::try_from)
        .collect()
}

/// `unnest(array)`, for a select list: several of them in one list run in
/// step, so arrays of equal length make rows, the k-th elements the k-th
/// row. Rows go in as one array per column, not a row of values each, as
/// a statement may hold more rows (an event's prize units) than values.
pub fn unnest(array: impl Into<Value>) -> Expr {
    Expr::from(Func::cust("unnest").arg(array.into()))
}

/// An `Internal` error for a state the database should make impossible.
pub fn bug(message: impl std::fmt::Display) -> DomainError {
    DomainError::Internal(anyhow::anyhow!("{message}"))
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

/// Data-modifying statements sent as ONE statement: each part becomes a
/// `WITH` part and the last one the main statement, so the lot costs one
/// round trip and is all or nothing. The parts run on one snapshot and
/// cannot see each other's rows, but constraints (foreign keys included)
/// are checked at the end of the whole statement, so a row may reference
/// another row of the same batch. A part added with a name
/// ([`Batch::named`]) can be read by the parts after it and by the main
/// statement (`FROM w`), as a `WITH` statement's parts can.
///
/// Values get their placeholders as they are bound, in order: a part's SQL
/// is written with the [`Param`]s [`Batch::bind`] returned (hand-written
/// SQL), or by sea-query with this batch's numbering ([`Batch::push`]). No
/// SQL text is ever renumbered.
#[derive(Debug, Default)]
pub struct Batch {
    parts: Vec<(String, String)>,
    values: Vec<Value>,
}

/// The placeholder (`$n`) of a value bound in a [`Batch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param(usize);

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${}", self.0)
    }
}

/// Placeholders written as a list (`$4, $5, $6`), e.g. a row of `VALUES`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params(Vec<Param>);

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, param) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{param}")?;
        }
        Ok(())
    }
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Binds `value`: its placeholder, for the SQL of a part of this batch.
    pub fn bind(&mut self, value: impl Into<Value>) -> Param {
        self.values.push(value.into());
        Param(self.values.len())
    }

    /// Binds each of `values`, in order.
    pub fn binds<const N: usize>(&mut self, values: [Value; N]) -> [Param; N] {
        values.map(|value| self.bind(value))
    }

    /// Binds each of `values` as one list of placeholders.
    pub fn bind_list(&mut self, values: impl IntoIterator<Item = Value>) -> Params {
        Params(values.into_iter().map(|value| self.bind(value)).collect())
    }

    /// Adds hand-written `sql`, whose placeholders were bound on this
    /// batch, as the next part.
    pub fn sql(&mut self, sql: String) {
        let name = format!("p{}", self.parts.len());
        self.parts.push((name, sql));
    }

    /// Adds hand-written `sql` as the part called `name`, which the parts
    /// after it may read.
    pub fn named(&mut self, name: &str, sql: String) {
        self.parts.push((name.to_owned(), sql));
    }

    /// Adds a sea-query statement as the next part, its values bound on
    /// this batch as sea-query writes them.
    pub fn push(&mut self, query: impl Into<SubQueryStatement>) {
        let sql = self.write(&query.into());
        self.sql(sql);
    }

    /// Adds a sea-query statement as the part called `name`, which the
    /// parts after it may read.
    pub fn push_named(&mut self, name: &str, query: impl Into<SubQueryStatement>) {
        let sql = self.write(&query.into());
        self.named(name, sql);
    }

    /// `query`'s SQL, its values bound on this batch.
    fn write(&mut self, query: &SubQueryStatement) -> String {
        let mut writer = Writer {
            sql: String::new(),
            values: &mut self.values,
        };
        PostgresQueryBuilder.prepare_query_statement(query, &mut writer);
        writer.sql
    }

    /// The batch as one statement, its last part the main statement.
    pub fn into_statement(mut self) -> Statement {
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
        statement(&sql, self.values)
    }

    /// Runs the batch; the row its last part returns, if any.
    pub async fn fetch_one<C: ConnectionTrait>(
        self,
        conn: &C,
    ) -> DomainResult<Option<QueryResult>> {
        Ok(conn.query_one_raw(self.into_statement()).await?)
    }

    /// Runs the batch; every row its last part returns.
    pub async fn fetch_all<C: ConnectionTrait>(self, conn: &C) -> DomainResult<Vec<QueryResult>> {
        Ok(conn.query_all_raw(self.into_statement()).await?)
    }

    /// Runs the batch; the rows its last part changed.
    pub async fn execute<C: ConnectionTrait>(self, conn: &C) -> DomainResult<u64> {
        Ok(conn
            .execute_raw(self.into_statement())
            .await?
            .rows_affected())
    }
}

/// Where sea-query writes a part of a [`Batch`]: each value it meets gets
/// the batch's next placeholder.
struct Writer<'a> {
    sql: String,
    values: &'a mut Vec<Value>,
}

impl fmt::Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.sql.write_str(s)
    }
}

impl fmt::Display for Writer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sql)
    }
}

impl SqlWriter for Writer<'_> {
    fn push_param<T: QueryBuilder>(&mut self, value: Value, _: &T) {
        self.values.push(value);
        let _ = write!(self.sql, "${}", self.values.len());
    }

    fn as_writer(&mut self) -> &mut dyn fmt::Write {
        self as _
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::sea_query::{Alias, Query};

    use super::*;

    #[test]
    fn parts_are_numbered_as_their_values_are_bound() {
        let mut batch = Batch::new();
        let a = batch.bind(1i64);
        batch.sql(format!("INSERT INTO a VALUES ({a})"));
        let [b, c] = batch.binds([2i64.into(), 3i64.into()]);
        batch.named(
            "w",
            format!("UPDATE b SET x = {b} WHERE y = {c} RETURNING id"),
        );
        let row = batch.bind_list([4i64.into(), 5i64.into()]);
        batch.sql(format!("INSERT INTO c SELECT w.id, {row}, {a} FROM w"));
        let statement = batch.into_statement();
        assert_eq!(
            statement.sql,
            "WITH p0 AS (INSERT INTO a VALUES ($1)), w AS (UPDATE b SET x = $2 WHERE y = $3 RETURNING id) \
             INSERT INTO c SELECT w.id, $4, $5, $1 FROM w"
        );
        assert_eq!(statement.values.map(|v| v.0.len()), Some(5));
    }

    #[test]
    fn a_sea_query_part_continues_the_numbering() {
        let mut batch = Batch::new();
        let a = batch.bind(1i64);
        batch.sql(format!("INSERT INTO a VALUES ({a})"));
        batch.push(
            Query::insert()
                .into_table(Alias::new("b"))
                .columns([Alias::new("x"), Alias::new("y")])
                .values_panic([2i64.into(), 3i64.into()])
                .to_owned(),
        );
        let c = batch.bind(4i64);
        batch.sql(format!("SELECT {c}"));
        let statement = batch.into_statement();
        assert_eq!(
            statement.sql,
            "WITH p0 AS (INSERT INTO a VALUES ($1)), p1 AS (INSERT INTO \"b\" (\"x\", \"y\") VALUES ($2, $3)) SELECT $4"
        );
    }

    #[test]
    fn a_batch_of_one_part_is_that_statement() {
        let mut batch = Batch::new();
        let a = batch.bind(1i64);
        batch.sql(format!("SELECT {a}"));
        assert_eq!(batch.into_statement().sql, "SELECT $1");
    }
}
