//! A token store in one file: readable only by its owner, replaced atomically on each write,
//! every token set sealed under the application's key.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::{SealingKey, StoreFuture, StoreKey, StoredTokens, TokenStore};
use crate::error::Error;

/// A file holding sealed token sets, keyed by [`StoreKey`].
///
/// The file is created with mode 0600 and every write replaces it by renaming a complete new
/// file over it, so a reader never sees half a file. Writers in one process are serialised;
/// writers in several processes may race (the last rename wins, and the loser's session just
/// logs in again later), which is why fleets share a Redis store instead.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    key: SealingKey,
    writing: Mutex<()>,
}

#[derive(Serialize, Deserialize, Default)]
struct Contents {
    version: u32,
    entries: BTreeMap<String, String>,
}

impl FileStore {
    /// A store in `path` (created on first write), sealed with `key`.
    pub fn new(path: impl Into<PathBuf>, key: SealingKey) -> Self {
        Self {
            path: path.into(),
            key,
            writing: Mutex::new(()),
        }
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::configuration(
            None,
            format!("token store {}: {what}: {e}", self.path.display()),
        )
    }

    fn read(&self) -> Result<Contents, Error> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| self.error("unreadable", e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Contents::default()),
            Err(e) => Err(self.error("cannot read", e)),
        }
    }

    fn write(&self, contents: &Contents) -> Result<(), Error> {
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."));
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "tokens".into());
        let temp = dir.join(format!(".{name}.{:016x}.tmp", fastrand::u64(..)));
        let bytes = serde_json::to_vec(contents).map_err(|e| self.error("cannot encode", e))?;
        let result = (|| {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&temp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&temp, &self.path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result.map_err(|e| self.error("cannot write", e))
    }

    fn update(&self, f: impl FnOnce(&mut Contents) -> Result<(), Error>) -> Result<(), Error> {
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let mut contents = self.read()?;
        contents.version = 1;
        f(&mut contents)?;
        self.write(&contents)
    }
}

impl TokenStore for FileStore {
    fn load<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<StoredTokens>> {
        Box::pin(async move {
            let contents = self.read()?;
            let Some(sealed) = contents.entries.get(key.as_str()) else {
                return Ok(None);
            };
            let Some(plain) = self.key.open(key.as_str(), sealed) else {
                return Err(self.error("entry does not open", "wrong key or tampered"));
            };
            serde_json::from_slice(&plain)
                .map(Some)
                .map_err(|_| self.error("entry unreadable", "not a token set"))
        })
    }

    fn save<'a>(&'a self, key: &'a StoreKey, tokens: &'a StoredTokens) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let plain = zeroize::Zeroizing::new(
                serde_json::to_vec(tokens).map_err(|e| self.error("cannot encode", e))?,
            );
            let sealed = self.key.seal(key.as_str(), &plain)?;
            self.update(|contents| {
                contents.entries.insert(key.as_str().to_owned(), sealed);
                Ok(())
            })
        })
    }

    fn remove<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.update(|contents| {
                contents.entries.remove(key.as_str());
                Ok(())
            })
        })
    }
}
