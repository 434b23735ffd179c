//! The entities and the migrated database agree: every table of our schemas
//! has an entity (listed by `giftdrop_entities::tables`), every entity column
//! exists in its table with the same type and nullability and every table
//! column in its entity, primary keys match, and every closed-set column (a
//! `col IN (...)` check) is an active enum over exactly the checked values.

use std::collections::{BTreeMap, BTreeSet};

use giftdrop_entities::{Table, tables};
use sea_orm::sea_query::{ColumnType, StringLen};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

use crate::support::{fresh_database, server_url};

/// The schemas migrations create; `public` holds only sea-orm's own
/// `seaql_migrations`.
const SCHEMAS: [&str; 5] = ["identity", "giftcard", "giveaway", "ledger", "ops"];

/// A column as Postgres has it.
#[derive(Debug)]
struct DbColumn {
    /// `format_type` of its type, e.g. `timestamp with time zone`.
    data_type: String,
    not_null: bool,
}

type TableKey = (String, String);

#[tokio::test(crate = "crate::support::harness")]
async fn every_table_has_an_entity_that_matches_it() {
    let database = fresh_database().await;
    let db = Database::connect(format!("{}/{database}", server_url()))
        .await
        .expect("connect to the migrated database");
    let columns = db_columns(&db).await;
    let primary_keys = db_primary_keys(&db).await;
    let closed = db_closed_sets(&db).await;
    db.close().await.expect("close");

    assert!(!columns.is_empty(), "the migrated database has tables");

    let entities = tables();
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for table in &entities {
        let key = (table.schema.clone(), table.name.clone());
        if !seen.insert(key.clone()) {
            problems.push(format!("{}.{}: listed twice", key.0, key.1));
        }
        match columns.get(&key) {
            None => problems.push(format!("{}.{}: entity without a table", key.0, key.1)),
            Some(db_columns) => {
                compare_columns(table, db_columns, &mut problems);
                compare_primary_key(table, primary_keys.get(&key), &mut problems);
                compare_closed_sets(table, closed.get(&key), &mut problems);
            }
        }
    }
    for (schema, name) in columns.keys() {
        if !seen.contains(&(schema.clone(), name.clone())) {
            problems.push(format!("{schema}.{name}: table without an entity"));
        }
    }
    assert!(
        problems.is_empty(),
        "entities and database disagree:\n{}",
        problems.join("\n")
    );
}

fn compare_columns(
    table: &Table,
    db_columns: &BTreeMap<String, DbColumn>,
    problems: &mut Vec<String>,
) {
    let qualified = format!("{}.{}", table.schema, table.name);
    for (name, def) in &table.columns {
        let Some(db) = db_columns.get(name) else {
            problems.push(format!(
                "{qualified}.{name}: entity column not in the table"
            ));
            continue;
        };
        let declared = pg_type(def.get_column_type());
        if declared != db.data_type {
            problems.push(format!(
                "{qualified}.{name}: entity type {declared}, database type {}",
                db.data_type
            ));
        }
        if def.is_null() == db.not_null {
            problems.push(format!(
                "{qualified}.{name}: entity {}, database {}",
                nullability(def.is_null()),
                nullability(!db.not_null)
            ));
        }
    }
    for name in db_columns.keys() {
        if !table.columns.iter().any(|(column, _)| column == name) {
            problems.push(format!(
                "{qualified}.{name}: table column not in the entity"
            ));
        }
    }
}

fn compare_primary_key(table: &Table, db: Option<&Vec<String>>, problems: &mut Vec<String>) {
    let db = db.cloned().unwrap_or_default();
    if table.primary_key != db {
        problems.push(format!(
            "{}.{}: entity primary key {:?}, database {db:?}",
            table.schema, table.name, table.primary_key
        ));
    }
}

fn compare_closed_sets(
    table: &Table,
    db: Option<&BTreeMap<String, BTreeSet<String>>>,
    problems: &mut Vec<String>,
) {
    let empty = BTreeMap::new();
    let db = db.unwrap_or(&empty);
    let declared: BTreeMap<&str, BTreeSet<String>> = table
        .closed
        .iter()
        .map(|(column, values)| (column.as_str(), values.iter().cloned().collect()))
        .collect();
    for (column, values) in &declared {
        match db.get(*column) {
            Some(checked) if checked == values => {}
            Some(checked) => problems.push(format!(
                "{}.{}.{column}: entity values {values:?}, check constraint {checked:?}",
                table.schema, table.name
            )),
            None => problems.push(format!(
                "{}.{}.{column}: an active enum without a `{column} IN (...)` check",
                table.schema, table.name
            )),
        }
    }
    for (column, checked) in db {
        if !declared.contains_key(column.as_str()) {
            problems.push(format!(
                "{}.{}.{column}: checked to {checked:?} but not an active enum in the entity",
                table.schema, table.name
            ));
        }
    }
}

fn nullability(nullable: bool) -> &'static str {
    if nullable { "nullable" } else { "NOT NULL" }
}

/// The name Postgres's `format_type` gives the type sea-query creates for
/// `column`.
fn pg_type(column: &ColumnType) -> String {
    match column {
        ColumnType::Text => "text".into(),
        ColumnType::String(StringLen::N(n)) => format!("character varying({n})"),
        ColumnType::String(_) => "character varying".into(),
        ColumnType::Char(n) => format!("character({})", n.unwrap_or(1)),
        ColumnType::SmallInteger => "smallint".into(),
        ColumnType::Integer => "integer".into(),
        ColumnType::BigInteger => "bigint".into(),
        ColumnType::Boolean => "boolean".into(),
        ColumnType::Uuid => "uuid".into(),
        ColumnType::Date => "date".into(),
        ColumnType::DateTime | ColumnType::Timestamp => "timestamp without time zone".into(),
        ColumnType::TimestampWithTimeZone => "timestamp with time zone".into(),
        ColumnType::Json => "json".into(),
        ColumnType::JsonBinary => "jsonb".into(),
        ColumnType::Binary(_) | ColumnType::VarBinary(_) | ColumnType::Blob => "bytea".into(),
        ColumnType::Array(inner) => format!("{}[]", pg_type(inner)),
        ColumnType::Enum { name, .. } => name.to_string(),
        other => format!("<no Postgres name for {other:?}>"),
    }
}

async fn rows(db: &DatabaseConnection, sql: &str) -> Vec<sea_orm::QueryResult> {
    db.query_all_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        sql,
        [SCHEMAS.map(str::to_owned).to_vec().into()],
    ))
    .await
    .expect("catalog query")
}

fn get<T: sea_orm::TryGetable>(row: &sea_orm::QueryResult, column: &str) -> T {
    row.try_get("", column)
        .unwrap_or_else(|e| panic!("catalog column {column}: {e}"))
}

/// Every column of every ordinary table in [`SCHEMAS`].
async fn db_columns(db: &DatabaseConnection) -> BTreeMap<TableKey, BTreeMap<String, DbColumn>> {
    let mut tables: BTreeMap<TableKey, BTreeMap<String, DbColumn>> = BTreeMap::new();
    for row in rows(
        db,
        "SELECT n.nspname::text AS schema, c.relname::text AS name, a.attname::text AS column, \
                format_type(a.atttypid, a.atttypmod) AS data_type, a.attnotnull AS not_null \
           FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
          WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1)",
    )
    .await
    {
        tables
            .entry((get(&row, "schema"), get(&row, "name")))
            .or_default()
            .insert(
                get(&row, "column"),
                DbColumn {
                    data_type: get(&row, "data_type"),
                    not_null: get(&row, "not_null"),
                },
            );
    }
    tables
}

/// Each table's primary key columns, in key order.
async fn db_primary_keys(db: &DatabaseConnection) -> BTreeMap<TableKey, Vec<String>> {
    rows(
        db,
        "SELECT n.nspname::text AS schema, c.relname::text AS name, \
                array_agg(a.attname::text ORDER BY k.ord) AS columns \
           FROM pg_constraint con \
           JOIN pg_class c ON c.oid = con.conrelid \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
           CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k (attnum, ord) \
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum \
          WHERE con.contype = 'p' AND n.nspname = ANY($1) \
          GROUP BY n.nspname, c.relname",
    )
    .await
    .iter()
    .map(|row| ((get(row, "schema"), get(row, "name")), get(row, "columns")))
    .collect()
}

/// Columns whose whole check constraint is `col IN ('A', 'B', ...)`, with
/// the values. (A check that merely mentions such a list, like
/// `(kind IN ('USER', 'MERCHANT')) = (owner_id IS NOT NULL)`, does not
/// define the column's set.)
async fn db_closed_sets(
    db: &DatabaseConnection,
) -> BTreeMap<TableKey, BTreeMap<String, BTreeSet<String>>> {
    let mut sets: BTreeMap<TableKey, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for row in rows(
        db,
        "SELECT n.nspname::text AS schema, c.relname::text AS name, \
                pg_get_constraintdef(con.oid) AS definition \
           FROM pg_constraint con \
           JOIN pg_class c ON c.oid = con.conrelid \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE con.contype = 'c' AND n.nspname = ANY($1)",
    )
    .await
    {
        let definition: String = get(&row, "definition");
        if let Some((column, values)) = closed_set(&definition) {
            sets.entry((get(&row, "schema"), get(&row, "name")))
                .or_default()
                .insert(column, values);
        }
    }
    sets
}

/// `CHECK ((role = ANY (ARRAY['A'::text, 'B'::text])))` as Postgres prints
/// `role IN ('A', 'B')`: the column and its values.
fn closed_set(definition: &str) -> Option<(String, BTreeSet<String>)> {
    let inner = definition.strip_prefix("CHECK ((")?.strip_suffix("])))")?;
    let (column, array) = inner.split_once(" = ANY (ARRAY[")?;
    if column.contains(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        return None;
    }
    let values = array
        .split(", ")
        .map(|item| {
            item.strip_suffix("::text")
                .and_then(|quoted| quoted.strip_prefix('\''))
                .and_then(|quoted| quoted.strip_suffix('\''))
                .map(str::to_owned)
        })
        .collect::<Option<BTreeSet<_>>>()?;
    Some((column.to_owned(), values))
}

#[test]
fn closed_sets_are_read_from_whole_in_checks_only() {
    assert_eq!(
        closed_set("CHECK ((role = ANY (ARRAY['PARTICIPANT'::text, 'HOST'::text])))"),
        Some((
            "role".to_owned(),
            BTreeSet::from(["PARTICIPANT".to_owned(), "HOST".to_owned()])
        ))
    );
    assert_eq!(
        closed_set(
            "CHECK (((kind = ANY (ARRAY['USER'::text, 'MERCHANT'::text])) = (owner_id IS NOT NULL)))"
        ),
        None
    );
    assert_eq!(closed_set("CHECK ((amount > 0))"), None);
}
