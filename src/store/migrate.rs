//! Numbered migrations from `schema.sql`: every `-- migration: N` section above the file's
//! `PRAGMA user_version` is applied, in order, each in its own transaction.

use rusqlite::Connection;

use super::StoreError;

const SCHEMA: &str = include_str!("../../schema.sql");
const MARKER: &str = "-- migration: ";

/// The migrations in `schema.sql`, as (version, SQL).
fn migrations() -> Vec<(i64, &'static str)> {
    sections(SCHEMA)
}

/// The numbered sections of a schema file, as (version, SQL): each starts at a
/// `-- migration: N` line and runs to the next.
pub(super) fn sections(schema: &'static str) -> Vec<(i64, &'static str)> {
    let mut out = Vec::new();
    let mut rest = schema;
    while let Some(start) = rest.find(MARKER) {
        let after = &rest[start + MARKER.len()..];
        let line_end = after.find('\n').unwrap_or(after.len());
        let version = after[..line_end].trim().parse().unwrap_or(0);
        let body = &after[line_end..];
        let end = body.find(MARKER).unwrap_or(body.len());
        out.push((version, &body[..end]));
        rest = &body[end..];
    }
    out
}

/// The newest schema version this build knows.
pub fn latest() -> i64 {
    migrations().last().map(|(v, _)| *v).unwrap_or(0)
}

/// Brings the file up to [`latest`]; refuses a file from a newer hookd.
pub fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = latest();
    if current > known {
        return Err(StoreError::TooNew {
            found: current,
            known,
        });
    }
    for (version, sql) in migrations() {
        if version <= current {
            continue;
        }
        if version == IDS_NEVER_REUSED {
            ids_never_reused(conn, version)?;
            tracing::info!(version, "applied schema migration");
            continue;
        }
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;"
        ))
        .inspect_err(|_| {
            let _ = conn.execute_batch("ROLLBACK");
        })?;
        tracing::info!(version, "applied schema migration");
    }
    Ok(())
}

/// The migration that makes every public id AUTOINCREMENT (see `schema.sql`).
const IDS_NEVER_REUSED: i64 = 12;

/// Rebuilds each table of [`super::ID_TABLES`] as AUTOINCREMENT, keeping its rows, indexes and
/// triggers, in one transaction that also records `version`. Foreign keys are off meanwhile
/// (dropping a referenced table would otherwise cascade) and checked before the commit.
fn ids_never_reused(conn: &Connection, version: i64) -> Result<(), StoreError> {
    conn.execute_batch("PRAGMA foreign_keys = OFF; PRAGMA legacy_alter_table = ON;")?;
    let rebuilt = conn
        .execute_batch("BEGIN IMMEDIATE")
        .map_err(StoreError::from)
        .and_then(|()| {
            for table in super::ID_TABLES {
                rebuild_autoincrement(conn, table)?;
            }
            let dangling: i64 =
                conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                    r.get(0)
                })?;
            if dangling > 0 {
                return Err(StoreError::Corrupt {
                    what: "foreign keys",
                    detail: format!("{dangling} rows reference rows that do not exist"),
                });
            }
            conn.execute_batch(&format!("PRAGMA user_version = {version}; COMMIT;"))?;
            Ok(())
        });
    if rebuilt.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    conn.execute_batch("PRAGMA legacy_alter_table = OFF; PRAGMA foreign_keys = ON;")?;
    rebuilt
}

/// Recreates `table` from its own definition with `AUTOINCREMENT` on its `id`.
fn rebuild_autoincrement(conn: &Connection, table: &str) -> Result<(), StoreError> {
    let definition: String = conn.query_row(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |r| r.get(0),
    )?;
    // Already rebuilt (a file whose version was set back to migrate again).
    if definition.contains("AUTOINCREMENT") {
        return Ok(());
    }
    let extras: Vec<String> = conn
        .prepare(
            "SELECT sql FROM sqlite_master
             WHERE tbl_name = ?1 AND type IN ('index', 'trigger') AND sql IS NOT NULL",
        )?
        .query_map([table], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let staged = format!("hookd_rebuilt_{table}");
    let create = autoincrement(&definition, table, &staged).ok_or_else(|| StoreError::Corrupt {
        what: "table definition",
        detail: format!("{table} has no `id INTEGER PRIMARY KEY` to make AUTOINCREMENT"),
    })?;
    conn.execute_batch(&format!(
        "{create};
         INSERT INTO {staged} SELECT * FROM {table};
         DROP TABLE {table};
         ALTER TABLE {staged} RENAME TO {table};"
    ))?;
    for sql in extras {
        conn.execute_batch(&sql)?;
    }
    Ok(())
}

/// `definition` (a `CREATE TABLE table (id INTEGER PRIMARY KEY, …)`) as a table named `to`
/// whose id is AUTOINCREMENT; `None` when it does not have that shape.
fn autoincrement(definition: &str, table: &str, to: &str) -> Option<String> {
    let rest = definition.strip_prefix(&format!("CREATE TABLE {table} ("))?;
    let (first, columns) = rest.split_once(',')?;
    let mut words = first.split_whitespace();
    let shape = [words.next()?, words.next()?, words.next()?, words.next()?];
    if shape != ["id", "INTEGER", "PRIMARY", "KEY"] || words.next().is_some() {
        return None;
    }
    Some(format!(
        "CREATE TABLE {to} (id INTEGER PRIMARY KEY AUTOINCREMENT,{columns}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        let versions: Vec<i64> = migrations().iter().map(|(v, _)| *v).collect();
        let expected: Vec<i64> = (1..=versions.len() as i64).collect();
        assert_eq!(versions, expected);
    }

    #[test]
    fn every_table_with_a_public_id_is_autoincrement() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        for table in super::super::ID_TABLES {
            let sql: String = conn
                .query_row(
                    "SELECT sql FROM sqlite_master WHERE name = ?1",
                    [table],
                    |r| r.get(0),
                )
                .unwrap();
            // A renamed table's name is quoted.
            let sql = sql.replacen(&format!("\"{table}\""), table, 1);
            assert!(
                sql.starts_with(&format!(
                    "CREATE TABLE {table} (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                )),
                "{sql}"
            );
        }
        let bad: Vec<String> = conn
            .prepare("PRAGMA integrity_check")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(bad, ["ok"]);
    }

    /// A file from before ids were AUTOINCREMENT keeps its rows, references and triggers,
    /// and hands out no id at or below the highest it holds.
    #[test]
    fn the_autoincrement_rebuild_keeps_rows_references_and_triggers() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        for (version, sql) in migrations() {
            if version < IDS_NEVER_REUSED {
                conn.execute_batch(&format!("{sql}\nPRAGMA user_version = {version};"))
                    .unwrap();
            }
        }
        conn.execute_batch(
            "INSERT INTO tenants (id, name, created_at) VALUES (1, 'a', 0), (2, 'b', 0);
             INSERT INTO tenant_usage VALUES (2, 1, 5);
             INSERT INTO events (id, tenant_id, type, data, deliveries, created_at)
                 VALUES (7, 1, 'a.b', '{}', 0, 0), (9, 1, 'a.b', '{}', 0, 0);
             INSERT INTO list_blocks VALUES (2, 1, 'a.b', 0, 2);",
        )
        .unwrap();
        migrate(&conn).unwrap();
        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(count("SELECT count(*) FROM events"), 2);
        // The trigger on events still counts a delete; the cascade from tenants still runs.
        conn.execute_batch("DELETE FROM events WHERE id = 9; DELETE FROM tenants WHERE id = 2;")
            .unwrap();
        assert_eq!(count("SELECT n FROM list_blocks WHERE list = 2"), 1);
        assert_eq!(count("SELECT count(*) FROM tenant_usage"), 0);
        // Neither the deleted event's id nor the deleted tenant's comes back.
        conn.execute_batch(
            "INSERT INTO events (tenant_id, type, data, deliveries, created_at)
                 VALUES (1, 'a.b', '{}', 0, 0);
             INSERT INTO tenants (name, created_at) VALUES ('c', 0);",
        )
        .unwrap();
        assert_eq!(count("SELECT max(id) FROM events"), 10);
        assert_eq!(count("SELECT max(id) FROM tenants"), 3);
        assert_eq!(count("SELECT count(*) FROM pragma_foreign_key_check"), 0);
    }

    #[test]
    fn a_fresh_file_migrates_and_a_newer_one_is_refused() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, latest());
        migrate(&conn).unwrap();
        conn.execute_batch(&format!("PRAGMA user_version = {}", latest() + 1))
            .unwrap();
        assert!(matches!(migrate(&conn), Err(StoreError::TooNew { .. })));
    }
}
