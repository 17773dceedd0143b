//! One way to run the store's SQL on SQLite or on PostgreSQL.
//!
//! Most of the store's statements are the same on both databases once SQLite's `?N`
//! placeholders read as PostgreSQL's `$N` (a census is in the PostgreSQL issue's notes): [`Conn`]
//! runs a statement written for SQLite on either, binding [`Value`]s and reading rows through
//! typed getters ([`Row`]). Statements are prepared once per connection and reused. The
//! store's modules move onto it one at a time (the writer's batches, tenants and keys, event
//! types, retention so far); what has moved runs on PostgreSQL too.
//! PostgreSQL goes through the synchronous `postgres` client, which works on the writer's own
//! thread and in `spawn_blocking` reads exactly as rusqlite does.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use postgres::types::{ToSql, Type};

use super::StoreError;

/// A value bound to a statement or read from a row: the four kinds hookd stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An integer (SQLite INTEGER, PostgreSQL BIGINT).
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes (SQLite BLOB, PostgreSQL BYTEA).
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Self::Blob(v.to_vec())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

impl Value {
    /// The value for a PostgreSQL parameter of type `ty` (a NULL takes the parameter's type).
    pub(super) fn to_postgres(&self, ty: &Type) -> Box<dyn ToSql + Sync + Send> {
        match self {
            Self::Int(i) => Box::new(*i),
            Self::Text(t) => Box::new(t.clone()),
            Self::Blob(b) => Box::new(b.clone()),
            Self::Null if *ty == Type::INT8 => Box::new(None::<i64>),
            Self::Null if *ty == Type::BYTEA => Box::new(None::<Vec<u8>>),
            Self::Null => Box::new(None::<String>),
        }
    }

    pub(super) fn to_sqlite(&self) -> rusqlite::types::Value {
        match self {
            Self::Null => rusqlite::types::Value::Null,
            Self::Int(i) => rusqlite::types::Value::Integer(*i),
            Self::Text(t) => rusqlite::types::Value::Text(t.clone()),
            Self::Blob(b) => rusqlite::types::Value::Blob(b.clone()),
        }
    }
}

/// One row of a result, read by column index.
pub enum Row<'a> {
    /// A SQLite row.
    Sqlite(&'a rusqlite::Row<'a>),
    /// A PostgreSQL row.
    Postgres(&'a postgres::Row),
}

impl Row<'_> {
    /// Column `i` as it is stored.
    pub fn value(&self, i: usize) -> Result<Value, StoreError> {
        Ok(match self {
            Self::Sqlite(r) => match r.get_ref(i)? {
                rusqlite::types::ValueRef::Null => Value::Null,
                rusqlite::types::ValueRef::Integer(v) => Value::Int(v),
                rusqlite::types::ValueRef::Real(v) => Value::Text(v.to_string()),
                rusqlite::types::ValueRef::Text(t) => {
                    Value::Text(String::from_utf8_lossy(t).into_owned())
                }
                rusqlite::types::ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            },
            Self::Postgres(r) => {
                let ty = r.columns()[i].type_();
                if *ty == Type::INT8 {
                    r.try_get::<_, Option<i64>>(i)
                        .map_err(postgres)?
                        .map_or(Value::Null, Value::Int)
                } else if *ty == Type::INT4 {
                    r.try_get::<_, Option<i32>>(i)
                        .map_err(postgres)?
                        .map_or(Value::Null, |v| Value::Int(v.into()))
                } else if *ty == Type::BOOL {
                    r.try_get::<_, Option<bool>>(i)
                        .map_err(postgres)?
                        .map_or(Value::Null, |v| Value::Int(v.into()))
                } else if *ty == Type::BYTEA {
                    r.try_get::<_, Option<Vec<u8>>>(i)
                        .map_err(postgres)?
                        .map_or(Value::Null, Value::Blob)
                } else {
                    r.try_get::<_, Option<String>>(i)
                        .map_err(postgres)?
                        .map_or(Value::Null, Value::Text)
                }
            }
        })
    }

    /// The first `width` columns as they are stored.
    pub fn values(&self, width: usize) -> Result<Vec<Value>, StoreError> {
        (0..width).map(|i| self.value(i)).collect()
    }

    /// Column `i` as an integer; NULL is an error.
    pub fn int(&self, i: usize) -> Result<i64, StoreError> {
        self.opt_int(i)?.ok_or_else(|| null(i))
    }

    /// Column `i` as an integer or NULL.
    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self.value(i)? {
            Value::Null => Ok(None),
            Value::Int(v) => Ok(Some(v)),
            other => Err(kind(i, "an integer", &other)),
        }
    }

    /// Column `i` as text; NULL is an error.
    pub fn text(&self, i: usize) -> Result<String, StoreError> {
        self.opt_text(i)?.ok_or_else(|| null(i))
    }

    /// Column `i` as text or NULL.
    pub fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        match self.value(i)? {
            Value::Null => Ok(None),
            Value::Text(v) => Ok(Some(v)),
            other => Err(kind(i, "text", &other)),
        }
    }

    /// Column `i` as bytes; NULL is an error.
    pub fn blob(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        match self.value(i)? {
            Value::Blob(v) => Ok(v),
            other => Err(kind(i, "bytes", &other)),
        }
    }
}

fn null(i: usize) -> StoreError {
    StoreError::Corrupt {
        what: "column",
        detail: format!("column {i} is NULL where a value is required"),
    }
}

fn kind(i: usize, wanted: &str, found: &Value) -> StoreError {
    StoreError::Corrupt {
        what: "column",
        detail: format!("column {i} should be {wanted}, found {found:?}"),
    }
}

/// A connection on either database. Statements are written for SQLite (`?1`, `?2`, …) and
/// prepared once per connection.
pub enum Conn<'c> {
    /// A SQLite connection.
    Sqlite(&'c rusqlite::Connection),
    /// A PostgreSQL client, with the statements prepared on it so far.
    Postgres(RefCell<PgSession<'c>>),
}

/// A PostgreSQL client and its prepared statements, keyed by their SQLite text.
pub struct PgSession<'c> {
    client: &'c mut postgres::Client,
    prepared: HashMap<String, postgres::Statement>,
}

impl<'c> Conn<'c> {
    /// Runs statements on a PostgreSQL client (keep the `Conn` to reuse what it prepared).
    pub fn postgres(client: &'c mut postgres::Client) -> Self {
        Self::Postgres(RefCell::new(PgSession {
            client,
            prepared: HashMap::new(),
        }))
    }

    /// Runs a statement; returns how many rows it changed.
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        match self {
            Self::Sqlite(c) => {
                let bound: Vec<rusqlite::types::Value> =
                    params.iter().map(Value::to_sqlite).collect();
                let n = c
                    .prepare_cached(sql)?
                    .execute(rusqlite::params_from_iter(bound))?;
                Ok(n as u64)
            }
            Self::Postgres(session) => {
                let mut session = session.borrow_mut();
                let statement = session.statement(sql)?;
                let bound = bind(&statement, params);
                let refs = as_refs(&bound);
                session.client.execute(&statement, &refs).map_err(postgres)
            }
        }
    }

    /// Runs a query; `each` turns every row into a `T`.
    pub fn query<T>(
        &self,
        sql: &str,
        params: &[Value],
        mut each: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        match self {
            Self::Sqlite(c) => {
                let bound: Vec<rusqlite::types::Value> =
                    params.iter().map(Value::to_sqlite).collect();
                let mut statement = c.prepare_cached(sql)?;
                let mut rows = statement.query(rusqlite::params_from_iter(bound))?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    out.push(each(&Row::Sqlite(row))?);
                }
                Ok(out)
            }
            Self::Postgres(session) => {
                let mut session = session.borrow_mut();
                let statement = session.statement(sql)?;
                let bound = bind(&statement, params);
                let refs = as_refs(&bound);
                let rows = session.client.query(&statement, &refs).map_err(postgres)?;
                rows.iter().map(|r| each(&Row::Postgres(r))).collect()
            }
        }
    }

    /// Runs a query expected to answer at most one row.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        params: &[Value],
        each: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        Ok(self.query(sql, params, each)?.into_iter().next())
    }
}

impl PgSession<'_> {
    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, StoreError> {
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self
            .client
            .prepare(&dollar_placeholders(sql))
            .map_err(postgres)?;
        self.prepared.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

fn bind(statement: &postgres::Statement, params: &[Value]) -> Vec<Box<dyn ToSql + Sync + Send>> {
    params
        .iter()
        .zip(statement.params())
        .map(|(v, ty)| v.to_postgres(ty))
        .collect()
}

fn as_refs(bound: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    bound
        .iter()
        .map(|b| b.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// SQLite's numbered placeholders (`?1`) as PostgreSQL's (`$1`), leaving string literals and
/// quoted names alone.
pub fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
            None => out.push(c),
        }
    }
    out
}

fn postgres(e: postgres::Error) -> StoreError {
    StoreError::Postgres(Arc::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars_outside_literals() {
        assert_eq!(
            dollar_placeholders("SELECT ?1, '?2', \"a?3\" FROM t WHERE x = ?12 AND y = ?"),
            "SELECT $1, '?2', \"a?3\" FROM t WHERE x = $12 AND y = ?"
        );
    }

    #[test]
    fn sqlite_binds_and_reads_every_kind() {
        let c = rusqlite::Connection::open_in_memory().expect("open");
        c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, s TEXT, b BLOB)")
            .expect("table");
        let conn = Conn::Sqlite(&c);
        let id = conn
            .query_opt(
                "INSERT INTO t (n, s, b) VALUES (?1, ?2, ?3) RETURNING id",
                &[Value::Null, "x".into(), Value::Blob(vec![0, 1])],
                |r| r.int(0),
            )
            .expect("insert");
        assert_eq!(id, Some(1));
        let rows = conn
            .query("SELECT n, s, b FROM t WHERE id = ?1", &[1.into()], |r| {
                Ok((r.opt_int(0)?, r.text(1)?, r.blob(2)?))
            })
            .expect("select");
        assert_eq!(rows, [(None, "x".to_owned(), vec![0, 1])]);
        assert!(
            conn.query("SELECT s FROM t", &[], |r| r.int(0)).is_err(),
            "text is not an int"
        );
    }
}
