//! Where a SQLite database lives, checked before hookd makes any file beside it (the lock
//! file, the credentials key, the WAL): a folder that is missing or not writable, or a file
//! that is not a database, is named as such instead of surfacing as the first side file that
//! could not be made.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

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
