//! One way to run the store's SQL on SQLite or on PostgreSQL.
//!
//! The store's statements are the same on both databases once SQLite's `?N` placeholders read
//! as PostgreSQL's `$N` (a census is in the PostgreSQL issue's notes; the few that differ ask
//! [`Conn::is_postgres`]): [`Conn`] runs a statement written for SQLite on either, binding
//! [`Value`]s (borrowed, so binding copies nothing) and reading rows through typed getters
//! ([`Row::get`]). Statements are prepared once per connection and reused.
//! PostgreSQL goes through the synchronous `postgres` client, which works on the writer's own
//! thread and in `spawn_blocking` reads exactly as rusqlite does.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use postgres::types::ToSql;

use super::StoreError;

mod values;
pub use values::{Bind, Column, Row};

/// A value bound to a statement or read from a row: the four kinds hookd stores. Bound values
/// borrow what they bind; values read from a row own their contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// SQL NULL.
    Null,
    /// An integer (SQLite INTEGER, PostgreSQL BIGINT).
    Int(i64),
    /// Text.
    Text(Cow<'a, str>),
    /// Bytes (SQLite BLOB, PostgreSQL BYTEA).
    Blob(Cow<'a, [u8]>),
}

/// Statement parameters, as [`vals!`] writes them.
pub type Params<'a> = [Value<'a>];

/// Statements this process has run through a [`Conn`] (on SQLite or PostgreSQL, the writer's
/// and the reads' alike), served in `/metrics` as `hookd_db_statements_total`: what the bench
/// divides by deliveries.
pub static STATEMENTS: std::sync::LazyLock<prometheus_client::metrics::counter::Counter> =
    std::sync::LazyLock::new(Default::default);

/// Binds each expression as a statement parameter (like rusqlite's `params!`): `vals![id, name]`.
macro_rules! vals {
    ($($x:expr),* $(,)?) => {
        [$($crate::db::sql::Bind::bind(&$x)),*]
    };
}
pub(crate) use vals;

/// A connection on either database. Statements are written for SQLite (`?1`, `?2`, …) and
/// prepared once per connection.
pub enum Conn<'c> {
    /// A SQLite connection.
    Sqlite(&'c rusqlite::Connection),
    /// A PostgreSQL client, with the statements prepared on it so far.
    Postgres(RefCell<&'c mut PgClient>),
}

/// A PostgreSQL client and the statements prepared on it, keyed by their SQLite text: they
/// live as long as the connection (a pooled one keeps them between reads).
pub struct PgClient {
    client: postgres::Client,
    prepared: HashMap<String, Prepared>,
}

impl PgClient {
    /// Wraps a connected client.
    pub fn new(client: postgres::Client) -> Self {
        Self {
            client,
            prepared: HashMap::new(),
        }
    }
}

/// How the read pool connects to PostgreSQL: `url`'s settings, and every statement planned
/// for its values (`plan_cache_mode`). Statements stay prepared on a client, but a generic plan
/// is made once, from the statistics of that moment: one made while little was pending read
/// the whole backlog for every claim once a backlog built up (a claim's per-endpoint rooms and
/// its LIMIT from a subquery are slower still in a generic plan). The writer's connection
/// keeps PostgreSQL's default (a publish's inserts gain nothing from being planned again
/// each time) and asks for this only around the results ([`Conn::plan_each_execution`]).
pub fn pg_config(url: &str) -> Result<postgres::Config, postgres::Error> {
    let mut config: postgres::Config = url.parse()?;
    config.options("-c plan_cache_mode=force_custom_plan");
    Ok(config)
}

/// An r2d2 pool's manager of [`PgClient`]s (`r2d2_postgres`'s, keeping prepared statements).
#[derive(Debug)]
pub struct PgManager(pub r2d2_postgres::PostgresConnectionManager<postgres::NoTls>);

impl r2d2::ManageConnection for PgManager {
    type Connection = PgClient;
    type Error = postgres::Error;

    fn connect(&self) -> Result<PgClient, postgres::Error> {
        self.0.connect().map(PgClient::new)
    }

    fn is_valid(&self, conn: &mut PgClient) -> Result<(), postgres::Error> {
        self.0.is_valid(&mut conn.client)
    }

    fn has_broken(&self, conn: &mut PgClient) -> bool {
        self.0.has_broken(&mut conn.client)
    }
}

impl<'c> Conn<'c> {
    /// Runs statements on a PostgreSQL client, reusing what was prepared on it.
    pub fn postgres(client: &'c mut PgClient) -> Self {
        Self::Postgres(RefCell::new(client))
    }

    /// Whether the connection is gone for good (a PostgreSQL client whose server went away).
    pub fn is_broken(&self) -> bool {
        match self {
            Self::Sqlite(_) => false,
            Self::Postgres(session) => session.borrow().client.is_closed(),
        }
    }

    /// A condition that `column` is one of the integers of the JSON array bound as parameter
    /// `n` (`[1,2]`): any number of ids in one statement, each found through the column's
    /// index (on PostgreSQL the array is built once, and `= ANY` keeps the index lookups
    /// that a join with a set-returning function may trade for a scan).
    pub fn in_ids(&self, column: &str, n: usize) -> String {
        match self {
            Self::Sqlite(_) => format!("{column} IN (SELECT value FROM json_each(?{n}))"),
            Self::Postgres(_) => format!(
                "{column} = ANY(ARRAY(SELECT CAST(jsonb_array_elements_text(CAST(CAST(?{n} AS TEXT) AS jsonb)) AS BIGINT)))"
            ),
        }
    }

    /// `ids` as the JSON list [`Conn::in_ids`] reads.
    pub fn id_list(ids: &[i64]) -> String {
        let items: Vec<String> = ids.iter().map(i64::to_string).collect();
        format!("[{}]", items.join(","))
    }

    /// Whether this is PostgreSQL (for the few statements written twice).
    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// On PostgreSQL, has the rest of this transaction plan each execution of a prepared
    /// statement for its values (`plan_cache_mode`), as [`pg_config`]'s connections do: for a
    /// write on the writer's connection whose statements read among the pending deliveries,
    /// where a generic plan made while little was pending would read the whole backlog once
    /// one builds up. Nothing on SQLite.
    pub fn plan_each_execution(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(_) => Ok(()),
            Self::Postgres(_) => self
                .execute("SET LOCAL plan_cache_mode = force_custom_plan", &[])
                .map(drop),
        }
    }

    /// Runs a statement; returns how many rows it changed.
    pub fn execute(&self, sql: &str, params: &Params<'_>) -> Result<usize, StoreError> {
        STATEMENTS.inc();
        match self {
            Self::Sqlite(c) => Ok(c
                .prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(params))?),
            Self::Postgres(session) => {
                let mut session = session.borrow_mut();
                let statement = session.statement(sql)?;
                let n = session
                    .client
                    .execute(&statement.statement, &statement.bind(params))
                    .map_err(postgres)?;
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            }
        }
    }

    /// Runs a query; `each` turns every row into a `T`.
    pub fn query<T>(
        &self,
        sql: &str,
        params: &Params<'_>,
        mut each: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        STATEMENTS.inc();
        match self {
            Self::Sqlite(c) => {
                let mut statement = c.prepare_cached(sql)?;
                let mut rows = statement.query(rusqlite::params_from_iter(params))?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    out.push(each(&Row::Sqlite(row))?);
                }
                Ok(out)
            }
            Self::Postgres(session) => {
                let mut session = session.borrow_mut();
                let statement = session.statement(sql)?;
                let rows = session
                    .client
                    .query(&statement.statement, &statement.bind(params))
                    .map_err(postgres)?;
                rows.iter().map(|r| each(&Row::Postgres(r))).collect()
            }
        }
    }

    /// Runs a query and hands its rows to `each` as they come, until it answers `false`.
    pub fn query_each(
        &self,
        sql: &str,
        params: &Params<'_>,
        mut each: impl FnMut(&Row<'_>) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        STATEMENTS.inc();
        match self {
            Self::Sqlite(c) => {
                let mut statement = c.prepare_cached(sql)?;
                let mut rows = statement.query(rusqlite::params_from_iter(params))?;
                while let Some(row) = rows.next()? {
                    if !each(&Row::Sqlite(row))? {
                        break;
                    }
                }
            }
            Self::Postgres(session) => {
                use postgres::fallible_iterator::FallibleIterator;
                let mut session = session.borrow_mut();
                let statement = session.statement(sql)?;
                let mut rows = session
                    .client
                    .query_raw(&statement.statement, statement.bind(params))
                    .map_err(postgres)?;
                while let Some(row) = rows.next().map_err(postgres)? {
                    if !each(&Row::Postgres(&row))? {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs an `INSERT` of one row; returns the new row's `id`.
    pub fn insert(&self, sql: &str, params: &Params<'_>) -> Result<i64, StoreError> {
        STATEMENTS.inc();
        match self {
            Self::Sqlite(c) => {
                c.prepare_cached(sql)?
                    .execute(rusqlite::params_from_iter(params))?;
                Ok(c.last_insert_rowid())
            }
            Self::Postgres(session) => {
                let mut session = session.borrow_mut();
                let statement = session.statement_as(sql, || format!("{sql} RETURNING id"))?;
                let row = session
                    .client
                    .query_one(&statement.statement, &statement.bind(params))
                    .map_err(postgres)?;
                Row::Postgres(&row).get(0)
            }
        }
    }

    /// Whether a query answers any row.
    pub fn exists(&self, sql: &str, params: &Params<'_>) -> Result<bool, StoreError> {
        Ok(self.query_opt(sql, params, |_| Ok(()))?.is_some())
    }

    /// Runs a query expected to answer at most one row.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        params: &Params<'_>,
        each: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        Ok(self.query(sql, params, each)?.into_iter().next())
    }

    /// Runs a query that answers one row; no row is [`StoreError::NotFound`].
    pub fn query_one<T>(
        &self,
        sql: &str,
        params: &Params<'_>,
        each: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.query_opt(sql, params, each)?
            .ok_or(StoreError::NotFound)
    }
}

impl PgClient {
    fn statement(&mut self, sql: &str) -> Result<Prepared, StoreError> {
        self.statement_as(sql, || sql.to_owned())
    }

    /// The statement prepared for `sql`, written for PostgreSQL as `postgres_sql` makes it.
    fn statement_as(
        &mut self,
        sql: &str,
        postgres_sql: impl FnOnce() -> String,
    ) -> Result<Prepared, StoreError> {
        if let Some(prepared) = self.prepared.get(sql) {
            return Ok(prepared.clone());
        }
        let (text, used) = dollar_placeholders(&postgres_sql());
        let statement = self.client.prepare(&text).map_err(postgres)?;
        let prepared = Prepared { statement, used };
        self.prepared.insert(sql.to_owned(), prepared.clone());
        Ok(prepared)
    }
}

/// A statement prepared on PostgreSQL, and which of the SQLite statement's parameters it
/// takes, in order (PostgreSQL must know every numbered parameter's type; SQLite lets a
/// statement skip one).
#[derive(Clone)]
struct Prepared {
    statement: postgres::Statement,
    used: Vec<usize>,
}

impl Prepared {
    fn bind<'p>(&self, params: &'p Params<'_>) -> Vec<&'p (dyn ToSql + Sync)> {
        self.used
            .iter()
            .map(|&i| {
                params
                    .get(i)
                    .map_or(&Value::Null as &(dyn ToSql + Sync), |p| {
                        p as &(dyn ToSql + Sync)
                    })
            })
            .collect()
    }
}

/// Parameters as the `postgres` client takes them.
pub(crate) fn as_refs<'p>(params: &'p Params<'_>) -> Vec<&'p (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

/// SQLite's numbered placeholders (`?1`) as PostgreSQL's (`$1`), leaving string literals and
/// quoted names alone, numbered again without gaps; with the (0-based) parameter each takes.
pub fn dollar_placeholders(sql: &str) -> (String, Vec<usize>) {
    let mut used: Vec<usize> = Vec::new();
    let mut quote: Option<char> = None;
    let mut pieces: Vec<Result<char, usize>> = Vec::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                pieces.push(Ok(c));
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                pieces.push(Ok(c));
            }
            None if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) => {
                let mut n = 0usize;
                while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                    n = n * 10 + d as usize;
                    chars.next();
                }
                let index = n.saturating_sub(1);
                if !used.contains(&index) {
                    used.push(index);
                }
                pieces.push(Err(index));
            }
            None => pieces.push(Ok(c)),
        }
    }
    used.sort_unstable();
    let mut out = String::with_capacity(sql.len());
    for piece in pieces {
        match piece {
            Ok(c) => out.push(c),
            Err(index) => {
                let rank = used.iter().position(|&u| u == index).unwrap_or(0) + 1;
                out.push('$');
                out.push_str(&rank.to_string());
            }
        }
    }
    (out, used)
}

pub(super) fn postgres(e: postgres::Error) -> StoreError {
    StoreError::Postgres(Arc::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars_outside_literals() {
        assert_eq!(
            dollar_placeholders(
                "SELECT ?1, '?2', \"a?3\" FROM t WHERE x = ?12 AND y = ? OR z = ?1"
            ),
            (
                "SELECT $1, '?2', \"a?3\" FROM t WHERE x = $2 AND y = ? OR z = $1".to_owned(),
                vec![0, 11]
            ),
            "numbered again without the gap"
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
                &[Value::Null, "x".into(), Value::Blob(vec![0, 1].into())],
                |r| r.get::<i64>(0),
            )
            .expect("insert");
        assert_eq!(id, Some(1));
        let rows = conn
            .query("SELECT n, s, b FROM t WHERE id = ?1", &[1.into()], |r| {
                Ok((
                    r.get::<Option<i64>>(0)?,
                    r.get::<String>(1)?,
                    r.get::<Vec<u8>>(2)?,
                ))
            })
            .expect("select");
        assert_eq!(rows, [(None, "x".to_owned(), vec![0, 1])]);
        assert!(
            conn.query("SELECT s FROM t", &[], |r| r.get::<i64>(0))
                .is_err(),
            "text is not an int"
        );
    }
}
