//! A token store in one file: readable only by its owner, replaced atomically on each write,
//! every token set sealed under the application's key, shared by the processes of one machine
//! through OS file locks.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Lease, SealingKey, StoreFuture, StoreKey, StoredTokens, TokenStore};
use crate::error::Error;

/// A file holding sealed token sets, keyed by [`StoreKey`].
///
/// The file is created with mode 0600 and every write replaces it by renaming a complete new
/// file over it, so a reader never sees half a file. Writers — in this process or in others —
/// take an exclusive OS lock on a lock file beside it (`.NAME.lock`) for the whole
/// read-modify-write, so no write undoes another's (a logout stays a logout). The renewal
/// lease is an OS lock too, on one lock file per account (`.NAME.HASH.lease`, named by a keyed
/// hash): the processes sharing the file renew each token set once per expiry, and a lease
/// whose holder exits, even by a crash, is free again at once. The lock files stay (empty) in
/// the directory: removing one while another process waits on it would break the lock.
///
/// File I/O runs on Tokio's blocking threads, never on the async workers.
#[derive(Clone, Debug)]
pub struct FileStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    key: SealingKey,
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
            inner: Arc::new(Inner {
                path: path.into(),
                key,
            }),
        }
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| self.inner.error("interrupted", e))?
    }
}

impl Inner {
    fn error(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::configuration(
            None,
            format!("token store {}: {what}: {e}", self.path.display()),
        )
    }

    fn dir(&self) -> &Path {
        self.path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."))
    }

    fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "tokens".into())
    }

    /// A file beside the store, created (mode 0600) if missing, to lock.
    fn lock_file(&self, suffix: &str) -> Result<File, Error> {
        let path = self.dir().join(format!(".{}.{suffix}", self.name()));
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options
            .open(&path)
            .map_err(|e| self.error("cannot open its lock file", e))
    }

    fn read(&self) -> Result<Contents, Error> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| self.error("unreadable", e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Contents::default()),
            Err(e) => Err(self.error("cannot read", e)),
        }
    }

    fn write(&self, contents: &Contents) -> Result<(), Error> {
        let temp = self
            .dir()
            .join(format!(".{}.{:016x}.tmp", self.name(), fastrand::u64(..)));
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

    /// Read, change, write, under the writers' lock (held until `lock` is closed).
    fn update(&self, f: impl FnOnce(&mut Contents)) -> Result<(), Error> {
        let lock = self.lock_file("lock")?;
        lock.lock().map_err(|e| self.error("cannot lock", e))?;
        let mut contents = self.read()?;
        if contents.version < 2 {
            // Version 1 named entries by service, base URL and account in the clear; those
            // entries are no longer looked up, and the names should not stay on disk.
            contents.entries.clear();
        }
        contents.version = 2;
        f(&mut contents);
        self.write(&contents)
    }
}

impl TokenStore for FileStore {
    fn lease<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<Lease>> {
        let suffix = format!("{}.lease", self.inner.key.file_tag(key));
        Box::pin(self.blocking(move |inner| {
            let file = inner.lock_file(&suffix)?;
            match file.try_lock() {
                // The lock lasts as long as the file stays open: the lease keeps it.
                Ok(()) => Ok(Some(Lease::holding("file", file))),
                Err(std::fs::TryLockError::WouldBlock) => Ok(None),
                Err(std::fs::TryLockError::Error(e)) => Err(inner.error("cannot lock", e)),
            }
        }))
    }

    fn load<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<StoredTokens>> {
        let key = key.clone();
        Box::pin(self.blocking(move |inner| {
            let contents = inner.read()?;
            let Some(sealed) = contents.entries.get(&inner.key.name(&key)) else {
                return Ok(None);
            };
            let Some(plain) = inner.key.open(key.as_str(), sealed) else {
                return Err(inner.error("entry does not open", "wrong key or tampered"));
            };
            serde_json::from_slice(&plain)
                .map(Some)
                .map_err(|_| inner.error("entry unreadable", "not a token set"))
        }))
    }

    fn save<'a>(&'a self, key: &'a StoreKey, tokens: &'a StoredTokens) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let plain = zeroize::Zeroizing::new(
                serde_json::to_vec(tokens).map_err(|e| self.inner.error("cannot encode", e))?,
            );
            let sealed = self.inner.key.seal(key.as_str(), &plain)?;
            let name = self.inner.key.name(key);
            self.blocking(move |inner| {
                inner.update(|contents| {
                    contents.entries.insert(name, sealed);
                })
            })
            .await
        })
    }

    fn remove<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, ()> {
        let name = self.inner.key.name(key);
        Box::pin(self.blocking(move |inner| {
            inner.update(|contents| {
                contents.entries.remove(&name);
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorKind, Service};

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "tokensmith-file-unit-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn tokens(access: &str) -> StoredTokens {
        StoredTokens {
            access: access.into(),
            refresh: None,
            id_token: None,
            cookie: None,
            bearer: None,
            expires_at_ms: 4_000_000_000_000,
            renew_after_ms: None,
            expires_at_most_ms: None,
            refresh_expires_at_ms: None,
            refresh_uses: 0,
            stepped_up: false,
        }
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn a_store_s_lock_files_lie_beside_it_named_after_it() {
        let dir = temp_dir("beside");
        let path = dir.join("tokens.json");
        let key = SealingKey::from_bytes([7; 32]);
        let tag = key.file_tag(&StoreKey::new(Service::Fib, "https://fib.test", "a"));
        let store = FileStore::new(&path, key);
        let account = StoreKey::new(Service::Fib, "https://fib.test", "a");
        store.save(&account, &tokens("access-a")).await.unwrap();
        let lease = store.lease(&account).await.unwrap().expect("a free lease");
        let mut expected = vec![
            ".tokens.json.lock".to_string(),
            format!(".tokens.json.{tag}.lease"),
            "tokens.json".to_string(),
        ];
        expected.sort();
        assert_eq!(listing(&dir), expected);
        drop(lease);
        let stored = store.load(&account).await.unwrap().unwrap();
        assert_eq!(stored.access.expose_secret(), "access-a");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn two_store_files_in_one_directory_lease_the_same_account_apart() {
        let dir = temp_dir("apart");
        let account = StoreKey::new(Service::Fib, "https://fib.test", "a");
        let one = FileStore::new(dir.join("one.json"), SealingKey::from_bytes([7; 32]));
        let two = FileStore::new(dir.join("two.json"), SealingKey::from_bytes([7; 32]));
        let held = one.lease(&account).await.unwrap().expect("one's lease");
        assert!(one.lease(&account).await.unwrap().is_none(), "held in one");
        let other = two.lease(&account).await.unwrap();
        assert!(other.is_some(), "two's lease is another lock");
        drop((held, other));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_store_path_that_cannot_be_read_is_an_error_not_an_empty_store() {
        // A directory where the file should be: opening it works, reading it fails (not as
        // "not found").
        let dir = temp_dir("unreadable");
        let path = dir.join("tokens.json");
        std::fs::create_dir(&path).unwrap();
        let cause = std::fs::read(&path).unwrap_err();
        assert_ne!(cause.kind(), std::io::ErrorKind::NotFound);
        let store = FileStore::new(&path, SealingKey::from_bytes([7; 32]));
        let account = StoreKey::new(Service::Fib, "https://fib.test", "a");
        let error = store.load(&account).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Configuration);
        assert_eq!(
            error.message(),
            Some(format!("token store {}: cannot read: {cause}", path.display()).as_str())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
