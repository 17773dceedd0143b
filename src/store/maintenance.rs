//! Maintenance of a database file, beside or without a running hookd: an integrity and schema
//! check, and a new operator token. (A backup is `crate::db::backup`.)

use std::path::Path;

use rusqlite::OpenFlags;

use super::{Store, StoreError, migrate};
use crate::db::{open_existing, sqlite_file};
use crate::model::auth::{hash_secret, random_token};

/// What `hookd check` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The file's schema version.
    pub schema_version: i64,
    /// The newest version this build knows.
    pub known_version: i64,
    /// What SQLite's integrity check reported: empty when the file is sound.
    pub problems: Vec<String>,
}

impl CheckReport {
    /// Whether the file is sound and of a version this build serves (it may still need
    /// migrating, which `hookd serve` does at start).
    pub fn healthy(&self) -> bool {
        self.problems.is_empty() && self.schema_version <= self.known_version
    }
}

/// Checks a database file's integrity and schema version, read-only.
pub fn check(db: &Path) -> Result<CheckReport, StoreError> {
    sqlite_file(db, "check")?;
    let conn = open_existing(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let schema_version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let mut problems: Vec<String> = conn
        .prepare("PRAGMA integrity_check")?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    problems.retain(|p| p != "ok");
    let foreign: Vec<String> = conn
        .prepare("PRAGMA foreign_key_check")?
        .query_map([], |r| {
            Ok(format!(
                "a row of {} points at a missing {}",
                r.get::<_, String>(0)?,
                r.get::<_, String>(2)?
            ))
        })?
        .collect::<Result<_, _>>()?;
    problems.extend(foreign);
    Ok(CheckReport {
        schema_version,
        known_version: migrate::latest(),
        problems,
    })
}

impl Store {
    /// Replaces the operator token with a new one; returns it (shown once, stored hashed).
    pub async fn rotate_operator_token(&self) -> Result<String, StoreError> {
        self.writer
            .write(|c, _| {
                let token = format!("hko_{}", random_token());
                c.execute(
                    "INSERT INTO meta (key, value) VALUES ('operator_token_sha256', ?1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    &[hex::encode(hash_secret(&token)).into()],
                )?;
                Ok(token)
            })
            .await
    }
}
