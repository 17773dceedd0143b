//! Where a SQLite database lives, checked before hookd makes any file beside it (the lock
//! file, the credentials key, the WAL): a folder that is missing or not writable, or a file
//! that is not a database, is named as such instead of surfacing as the first side file that
//! could not be made. And the SQLite file's own things: its lock file (one hookd per file),
//! its private creation, the writer's connection.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use super::StoreError;

/// The first bytes of every SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Checks that `path` can be (or already is) a SQLite database: its folder exists and this
/// user may write in it, and the file, if there is one, is a database (or empty).
pub fn check_location(path: &Path) -> Result<(), StoreError> {
    let shown = || path.display().to_string();
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let folder_shown = folder.display().to_string();
    match std::fs::metadata(folder) {
        Err(_) => return Err(StoreError::NoFolder(folder_shown)),
        Ok(m) if !m.is_dir() => return Err(StoreError::NotFolder(folder_shown)),
        Ok(_) => {}
    }
    if path.is_dir() {
        return Err(StoreError::DbIsFolder(shown()));
    }
    if path.exists() {
        let mut head = Vec::with_capacity(SQLITE_HEADER.len());
        let read = std::fs::File::open(path)
            .and_then(|f| f.take(SQLITE_HEADER.len() as u64).read_to_end(&mut head));
        if let Err(e) = read {
            return Err(StoreError::CreateFile {
                path: shown(),
                source: Arc::new(e),
            });
        }
        if !head.is_empty() && head.as_slice() != SQLITE_HEADER {
            return Err(StoreError::NotDatabase(shown()));
        }
    }
    // The only sure test of "may this user write here" is to write: a file of its own, gone
    // at once.
    let probe = folder.join(format!(".hookd-probe-{}", std::process::id()));
    match std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::FolderNotWritable {
            folder: folder_shown,
            source: Arc::new(e),
        }),
    }
}

/// Takes the lock file beside a database file (`<file>.lock`), as a serving hookd does: held
/// until the returned file is dropped; refused while another process holds it.
pub fn lock(path: &Path) -> Result<std::fs::File, StoreError> {
    let lock_path = PathBuf::from(format!("{}.lock", path.display()));
    let mut options = std::fs::File::options();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let lock = options.open(&lock_path).map_err(|e| StoreError::LockFile {
        path: lock_path.display().to_string(),
        source: Arc::new(e),
    })?;
    // A lock is shared by every process holding its open file, and a child process forked
    // by this one holds it from the fork until its exec closes it: a lock released moments
    // ago may be held that briefly still. So a refusal is retried for a moment.
    let deadline = Instant::now() + LOCK_PATIENCE;
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok(lock),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => {
                return Err(StoreError::Locked {
                    path: path.display().to_string(),
                    lock: lock_path.display().to_string(),
                });
            }
        }
    }
}

/// How long a held lock file is tried again before the file is reported in use.
const LOCK_PATIENCE: Duration = Duration::from_millis(250);

/// Creates `path` empty and readable by its owner alone, unless it exists. SQLite gives the
/// files it makes beside a database (`-wal`, `-shm`) the database file's mode, so they are
/// private too: they hold secrets (signing secrets, tokens' hashes, sealed credentials).
pub fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::File::options();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::CreateFile {
            path: path.display().to_string(),
            source: Arc::new(e),
        }),
    }
}

/// Whether `db` names a PostgreSQL database (`postgres://…` or `postgresql://…`) rather than
/// a SQLite file.
pub fn is_postgres_url(db: &Path) -> bool {
    let db = db.to_string_lossy();
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// How long a connection waits on a lock before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection: more than the store has distinct statements, so
/// none is parsed twice.
pub const STATEMENT_CACHE: usize = 128;

/// Opens an existing SQLite file (maintenance: `hookd check`, `hookd backup`).
pub fn open_existing(db: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    if !db.exists() {
        return Err(StoreError::Invalid(
            format!("{} does not exist", db.display()).into(),
        ));
    }
    let conn = Connection::open_with_flags(db, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// Writes a consistent copy of `db` to `to` (which must not exist yet), while hookd may be
/// serving from `db`.
pub fn backup(db: &Path, to: &Path) -> Result<(), StoreError> {
    sqlite_file(db, "back up")?;
    if to.exists() {
        return Err(StoreError::Conflict(format!(
            "{} already exists; a backup never overwrites a file",
            to.display()
        )));
    }
    let conn = open_existing(db, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    let target = to.to_str().ok_or_else(|| {
        StoreError::Invalid(format!("{} is not a UTF-8 path", to.display()).into())
    })?;
    // Made first, private: VACUUM INTO writes into an empty file and keeps its mode.
    create_private(to)?;
    conn.execute("VACUUM INTO ?1", [target])?;
    Ok(())
}

/// Refuses a PostgreSQL URL for SQLite's own maintenance, saying what to use instead.
pub fn sqlite_file(db: &Path, what: &str) -> Result<(), StoreError> {
    if is_postgres_url(db) {
        return Err(StoreError::Invalid(format!(
            "hookd can only {what} a SQLite file; for PostgreSQL use its own tools (pg_dump, amcheck), or `hookd copy` the database into a SQLite file"
        ).into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_folder_a_folder_and_a_file_that_is_no_database_are_named() {
        let dir = tempfile::tempdir().expect("dir");
        let missing = dir.path().join("nope").join("h.db");
        assert!(
            matches!(check_location(&missing), Err(StoreError::NoFolder(f)) if f.ends_with("nope"))
        );
        assert!(matches!(
            check_location(dir.path()),
            Err(StoreError::DbIsFolder(_))
        ));
        let text = dir.path().join("notes.db");
        std::fs::write(&text, "not a database").expect("write");
        assert!(matches!(
            check_location(&text),
            Err(StoreError::NotDatabase(_))
        ));
        let under_file = text.join("h.db");
        assert!(matches!(
            check_location(&under_file),
            Err(StoreError::NotFolder(_))
        ));
        let empty = dir.path().join("empty.db");
        std::fs::write(&empty, "").expect("write");
        assert!(
            check_location(&empty).is_ok(),
            "an empty file becomes a database"
        );
        assert!(check_location(&dir.path().join("new.db")).is_ok());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left.len(), 2, "no probe left behind: {left:?}");
    }
}
