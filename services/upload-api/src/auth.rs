//! Bearer API keys from a file (a mounted Secret, one key a line), re-read
//! when the file changes, compared in constant time.

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

#[derive(Clone, Debug)]
pub struct ApiKeys {
    path: PathBuf,
    keys: Arc<RwLock<Vec<Vec<u8>>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("cannot read the API keys file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the API keys file {0} holds no key: put one key a line")]
    Empty(PathBuf),
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

    /// Whether `candidate` is one of the keys. Every key is compared in
    /// full, so timing tells nothing about which key nearly matched.
    pub fn accepts(&self, candidate: &str) -> bool {
        let keys = self
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.iter()
            .fold(subtle::Choice::from(0), |found, key| {
                found | key.ct_eq(candidate.as_bytes())
            })
            .into()
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

fn read_keys(path: &Path) -> Result<Vec<Vec<u8>>, KeysError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeysError::Read {
        path: path.to_owned(),
        source,
    })?;
    let keys: Vec<Vec<u8>> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.as_bytes().to_vec())
        .collect();
    if keys.is_empty() {
        return Err(KeysError::Empty(path.to_owned()));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_keys_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(&path, "# comment\nfirst-key\n\n  second-key  \n").unwrap();
        let keys = ApiKeys::load(&path).unwrap();
        assert!(keys.accepts("first-key"));
        assert!(keys.accepts("second-key"));
        assert!(!keys.accepts("first"));
        assert!(!keys.accepts(""));
        assert!(!keys.accepts("first-key2"));
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
