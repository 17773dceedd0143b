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
