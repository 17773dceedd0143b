//! Endpoint credentials at rest: sealed with AES-256-GCM under a key kept in a file of its
//! own, beside the database and never in it, so a copy of the database alone reveals no
//! password, client secret or private key.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use crate::model::endpoint::Sealed;

/// The marker of this sealing format (the key and the scheme may change; old values say which).
const FORMAT: &str = "v1.";
/// Bound into every sealed value: a value is opened only as what it was sealed as.
const AAD: &[u8] = b"hookd endpoint credentials";

/// Why a key or a sealed value could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The key file cannot be read or written.
    #[error("cannot use the credentials key file {path}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The key file does not hold a key.
    #[error("the credentials key file {0} does not hold a key (base64 of 32 bytes on one line)")]
    BadKey(PathBuf),
    /// The value could not be sealed (larger than AES-GCM seals at once).
    #[error("the value cannot be sealed")]
    Seal,
    /// A sealed value is not one this key sealed (another key, or damaged).
    #[error(
        "stored credentials cannot be opened with this credentials key (another key, or damaged)"
    )]
    Open,
}

/// The key endpoint credentials are sealed with.
#[derive(Clone)]
pub struct SealingKey(Arc<LessSafeKey>);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(…)")
    }
}

impl SealingKey {
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let key = UnboundKey::new(&AES_256_GCM, bytes).ok()?;
        Some(Self(Arc::new(LessSafeKey::new(key))))
    }

    /// Reads the key from `path`; when there is no such file, makes a new key and writes it
    /// there, readable by this user alone.
    pub fn load_or_create(path: &Path) -> Result<Self, SealError> {
        let file_error = |source| SealError::KeyFile {
            path: path.to_owned(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => STANDARD
                .decode(text.trim())
                .ok()
                .and_then(|bytes| Self::from_bytes(&bytes))
                .ok_or_else(|| SealError::BadKey(path.to_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let bytes: [u8; 32] = rand::random();
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path).map_err(file_error)?;
                writeln!(file, "{}", STANDARD.encode(bytes)).map_err(file_error)?;
                file.sync_all().map_err(file_error)?;
                tracing::info!(path = %path.display(), "made a new credentials key; keep it with the database (and out of its backups' reach)");
                Self::from_bytes(&bytes).ok_or_else(|| SealError::BadKey(path.to_owned()))
            }
            Err(e) => Err(file_error(e)),
        }
    }

    /// Seals `plain`: a fresh random nonce each time.
    pub fn seal(&self, plain: &[u8]) -> Result<Sealed, SealError> {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let mut data = plain.to_vec();
        let tag = self
            .0
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(AAD),
                &mut data,
            )
            .map_err(|_| SealError::Seal)?;
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&data);
        out.extend_from_slice(tag.as_ref());
        Ok(Sealed(format!("{FORMAT}{}", URL_SAFE_NO_PAD.encode(out))))
    }

    /// Opens what [`SealingKey::seal`] sealed with this key.
    pub fn open(&self, sealed: &Sealed) -> Result<Vec<u8>, SealError> {
        let bytes = sealed
            .0
            .strip_prefix(FORMAT)
            .and_then(|b64| URL_SAFE_NO_PAD.decode(b64).ok())
            .filter(|b| b.len() >= NONCE_LEN)
            .ok_or(SealError::Open)?;
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut data = sealed.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(AAD), &mut data)
            .map_err(|_| SealError::Open)?;
        Ok(plain.to_vec())
    }

    /// Opens sealed text (a URL, a header value).
    pub fn open_text(&self, sealed: &Sealed) -> Result<String, SealError> {
        self.open(sealed)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Where the credentials key of a SQLite database lives when none is configured: beside it.
pub fn default_key_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_owned();
    name.push(".credentials-key");
    db.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_with_their_key_only_and_never_show_the_plain_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let key = SealingKey::load_or_create(&path).unwrap();
        let again = SealingKey::load_or_create(&path).unwrap();
        let sealed = key.seal(b"hunter2-password").unwrap();
        assert!(!sealed.0.contains("hunter2"));
        assert_ne!(
            key.seal(b"hunter2-password").unwrap(),
            sealed,
            "a fresh nonce each time"
        );
        assert_eq!(again.open(&sealed).unwrap(), b"hunter2-password");
        let other = SealingKey::load_or_create(&dir.path().join("other")).unwrap();
        assert!(matches!(other.open(&sealed), Err(SealError::Open)));
        let mut damaged = sealed.0.clone();
        damaged.pop();
        assert!(key.open(&Sealed(damaged)).is_err());
        assert!(key.open(&Sealed("plain".into())).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_key_file_without_a_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "not a key\n").unwrap();
        assert!(matches!(
            SealingKey::load_or_create(&path),
            Err(SealError::BadKey(_))
        ));
    }

    #[test]
    fn the_default_key_sits_beside_the_database() {
        assert_eq!(
            default_key_path(Path::new("data/hookd.db")),
            PathBuf::from("data/hookd.db.credentials-key")
        );
    }
}
