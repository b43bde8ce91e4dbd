//! Bearer API keys from a file (a mounted Secret, one key a line, `name:key`
//! or a plain key), re-read when the file changes, compared in constant
//! time. A key's name is what items, logs and metrics record of the caller;
//! the key itself is never written anywhere.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use subtle::ConstantTimeEq;

/// How often the key file is checked for changes. Kubernetes updates a
/// mounted Secret by swapping a symlink, so the content is compared, not
/// only the modification time.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Clone, Debug)]
pub enum Auth {
    /// `--no-auth`: every request is accepted.
    Disabled,
    Keys(ApiKeys),
}

/// The name a caller is known by when the service runs without keys.
pub const ANONYMOUS: &str = "anonymous";

#[derive(Clone, Debug)]
pub struct ApiKeys {
    path: PathBuf,
    keys: Arc<RwLock<Vec<ApiKey>>>,
}

#[derive(Clone, PartialEq, Eq)]
struct ApiKey {
    name: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("cannot read the API keys file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the API keys file {0} holds no key: put one key a line, as `name:key` or a plain key")]
    Empty(PathBuf),
    #[error(
        "line {line} of the API keys file {path}: {problem}; write `name:key` with a name of letters, \
         digits, '.', '_' or '-' (at most 64) and a key of at least 16 characters, or a plain key"
    )]
    Malformed {
        path: PathBuf,
        line: usize,
        problem: &'static str,
    },
}

impl ApiKeys {
    /// Reads the keys; a missing or empty file is an error, so the service
    /// never starts open by accident.
    pub fn load(path: &Path) -> Result<Self, KeysError> {
        let keys = read_keys(path)?;
        Ok(Self {
            path: path.to_owned(),
            keys: Arc::new(RwLock::new(keys)),
        })
    }

    /// The name of the key `candidate` is, if it is one. Every key is
    /// compared in full, so timing tells nothing about which key nearly
    /// matched.
    pub fn accepts(&self, candidate: &str) -> Option<String> {
        use subtle::ConditionallySelectable;
        let keys = self
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut found = subtle::Choice::from(0);
        let mut index = 0u32;
        for (i, key) in keys.iter().enumerate() {
            let matches = key.secret.ct_eq(candidate.as_bytes());
            index.conditional_assign(&(i as u32), matches);
            found |= matches;
        }
        bool::from(found).then(|| keys[index as usize].name.clone())
    }

    /// Re-reads the file every [`RELOAD_INTERVAL`]; a file that cannot be
    /// read or holds no key keeps the previous keys (and is logged).
    pub fn watch(&self) -> tokio::task::JoinHandle<()> {
        let keys = self.clone();
        tokio::spawn(async move {
            let mut last_modified = modified(&keys.path);
            let mut interval = tokio::time::interval(RELOAD_INTERVAL);
            loop {
                interval.tick().await;
                let now = modified(&keys.path);
                match read_keys(&keys.path) {
                    Ok(fresh) => {
                        let mut current = keys
                            .keys
                            .write()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        if *current != fresh {
                            tracing::info!(path = %keys.path.display(), keys = fresh.len(), "API keys reloaded");
                            *current = fresh;
                        }
                    }
                    Err(err) if now != last_modified => tracing::warn!(%err, "keeping the previous API keys"),
                    Err(_) => {}
                }
                last_modified = now;
            }
        })
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Keys shorter than this after a name are taken for a typo (a plain key
/// that happens to hold a ':' is read whole).
const MIN_NAMED_KEY_LEN: usize = 16;

fn read_keys(path: &Path) -> Result<Vec<ApiKey>, KeysError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeysError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut keys: Vec<ApiKey> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let malformed = |problem| KeysError::Malformed {
            path: path.to_owned(),
            line: n + 1,
            problem,
        };
        let key = parse_key(line).map_err(malformed)?;
        if keys.iter().any(|k| k.name == key.name) {
            return Err(malformed("the name is given to another key too"));
        }
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(KeysError::Empty(path.to_owned()));
    }
    Ok(keys)
}

/// `name:key`, or a plain key named by the start of its SHA-256 (stable
/// across reorderings, and telling nothing about the key).
fn parse_key(line: &str) -> Result<ApiKey, &'static str> {
    let is_name = |name: &str| {
        (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    match line.split_once(':') {
        Some((name, secret)) if is_name(name) => {
            if secret.trim().len() < MIN_NAMED_KEY_LEN {
                return Err("the key after the name is shorter than 16 characters");
            }
            Ok(ApiKey {
                name: name.to_owned(),
                secret: secret.trim().as_bytes().to_vec(),
            })
        }
        _ => {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(line.as_bytes());
            Ok(ApiKey {
                name: format!("key-{}", hex::encode(&digest[..4])),
                secret: line.as_bytes().to_vec(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_keys_are_accepted_and_known_by_their_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(
            &path,
            "# comment\nfirst-key\n\n  second-key  \nmobile-app:0123456789abcdef0123\n",
        )
        .unwrap();
        let keys = ApiKeys::load(&path).unwrap();
        let plain = keys.accepts("first-key").expect("a plain key");
        assert!(plain.starts_with("key-") && plain.len() == 12, "{plain}");
        assert!(!plain.contains("first"));
        assert_ne!(keys.accepts("second-key"), Some(plain));
        assert_eq!(
            keys.accepts("0123456789abcdef0123").as_deref(),
            Some("mobile-app")
        );
        for wrong in [
            "first",
            "",
            "first-key2",
            "mobile-app:0123456789abcdef0123",
            "mobile-app",
        ] {
            assert_eq!(keys.accepts(wrong), None, "{wrong}");
        }
        assert!(
            !format!("{keys:?}").contains("0123456789abcdef"),
            "no key in debug output"
        );
    }

    #[test]
    fn a_malformed_line_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        for (text, line, problem) in [
            ("a:0123456789abcdef0\na:fedcba9876543210f\n", 2, "another key"),
            ("# keys\nshort:abc\n", 2, "shorter than 16"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = ApiKeys::load(&path).unwrap_err().to_string();
            assert!(
                err.contains(&format!("line {line} ")) && err.contains(problem),
                "{err}"
            );
        }
        // A name with characters no name has: a plain key holding a ':'.
        std::fs::write(&path, "not a name:0123456789abcdef0\n").unwrap();
        let keys = ApiKeys::load(&path).unwrap();
        assert!(keys.accepts("not a name:0123456789abcdef0").is_some());
    }

    #[test]
    fn an_empty_or_missing_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        assert!(matches!(ApiKeys::load(&path), Err(KeysError::Read { .. })));
        std::fs::write(&path, "\n# nothing\n").unwrap();
        assert!(matches!(ApiKeys::load(&path), Err(KeysError::Empty(_))));
    }
}
