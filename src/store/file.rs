//! A token store in one file: readable only by its owner, replaced atomically on each write,
//! every token set sealed under the application's key, shared by the processes of one machine
//! through OS file locks.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{
    seal::Kept, Lease, SealingKey, Stamp, StoreFuture, StoreKey, StoredRefusal, StoredTokens,
    TokenStore,
};
use crate::clock::{Clock, SystemClock};
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
/// A write waits for the writers' lock at most [`Self::lock_wait`] (default
/// [`FileStore::DEFAULT_LOCK_WAIT`]), then fails: a holder that never lets go (a process
/// stopped with Ctrl-Z) makes the store fail, which a session bypasses, instead of hanging
/// every renewal. On Unix, a lock file is opened without following a symbolic link, and one
/// that is a link, not a regular file, or owned by another user is refused (an error): in a
/// directory others can write to, their planted files can neither hang the store nor be
/// written through. The store file itself must be a regular file.
///
/// File I/O runs on Tokio's blocking threads, never on the async workers.
#[derive(Clone, Debug)]
pub struct FileStore {
    inner: Arc<Inner>,
}

#[derive(Debug, Clone)]
struct Inner {
    path: PathBuf,
    key: SealingKey,
    lock_wait: Duration,
    /// What counts the time since a set was saved (the machine's wall clock by default).
    clock: Arc<dyn Clock>,
}

#[derive(Serialize, Deserialize, Default)]
struct Contents {
    version: u32,
    entries: BTreeMap<String, String>,
    /// Login refusals, sealed and named as the token sets are.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    refusals: BTreeMap<String, String>,
}

impl FileStore {
    /// How long a write waits for another writer's lock by default: a read-modify-write
    /// holds it for milliseconds; this much is a holder that will not let go.
    pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(2);

    /// A store in `path` (created on first write), sealed with `key`.
    pub fn new(path: impl Into<PathBuf>, key: SealingKey) -> Self {
        Self {
            inner: Arc::new(Inner {
                path: path.into(),
                key,
                lock_wait: Self::DEFAULT_LOCK_WAIT,
                clock: Arc::new(SystemClock),
            }),
        }
    }

    /// How long a write waits for the writers' lock another process (or store) holds before
    /// it fails (default [`Self::DEFAULT_LOCK_WAIT`]). Applies to this store and its clones
    /// made after the call.
    pub fn lock_wait(self, wait: Duration) -> Self {
        let mut inner = (*self.inner).clone();
        inner.lock_wait = wait;
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The clock on which the store counts how long ago a token set (or a refusal) was saved:
    /// by default the machine's wall clock, which every process of the machine shares, so that
    /// the sessions' own clocks never shift a set's lifetime. A test that drives its sessions
    /// with a [`ManualClock`](crate::clock::ManualClock) gives the store the same clock.
    /// Applies to this store and its clones made after the call.
    pub fn clock(self, clock: impl Clock) -> Self {
        let mut inner = (*self.inner).clone();
        inner.clock = Arc::new(clock);
        Self {
            inner: Arc::new(inner),
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

    /// A file beside the store, created (mode 0600) if missing, to lock: never through a
    /// symbolic link, and only a regular file of this user's (on Unix).
    fn lock_file(&self, suffix: &str) -> Result<File, Error> {
        let path = self.dir().join(format!(".{}.{suffix}", self.name()));
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // O_NOFOLLOW: a link in the last component fails the open (ELOOP), dangling or not,
            // so nothing is created or opened through it.
            let nofollow = rustix::fs::OFlags::NOFOLLOW.bits();
            options
                .mode(0o600)
                .custom_flags(i32::try_from(nofollow).unwrap_or(0));
        }
        let file = options
            .open(&path)
            .map_err(|e| self.error("cannot open its lock file", e))?;
        // What was opened, not what the path names now.
        let metadata = file
            .metadata()
            .map_err(|e| self.error("cannot open its lock file", e))?;
        if !metadata.is_file() {
            let why = format!("{} is not a regular file", path.display());
            return Err(self.error("cannot open its lock file", why));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            if metadata.uid() != rustix::process::geteuid().as_raw() {
                let why = format!("{} is owned by another user", path.display());
                return Err(self.error("cannot open its lock file", why));
            }
        }
        Ok(file)
    }

    /// Takes the exclusive lock on `file`, waiting at most [`Self::lock_wait`] for a holder to
    /// let go.
    fn lock(&self, file: &File) -> Result<(), Error> {
        let deadline = Instant::now() + self.lock_wait;
        let mut pause = Duration::from_millis(1);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(()),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(self.error("cannot lock", e)),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let why = format!("another writer held the lock for {:?}", self.lock_wait);
                return Err(self.error("cannot lock", why));
            }
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    fn read(&self) -> Result<Contents, Error> {
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        {
            // A FIFO planted where the file should be would block the open for good.
            use std::os::unix::fs::OpenOptionsExt;
            let nonblock = rustix::fs::OFlags::NONBLOCK.bits();
            options.custom_flags(i32::try_from(nonblock).unwrap_or(0));
        }
        let mut file = match options.open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Contents::default()),
            Err(e) => return Err(self.error("cannot read", e)),
        };
        match file.metadata() {
            Ok(metadata) if metadata.is_file() => {}
            Ok(_) => return Err(self.error("cannot read", "not a regular file")),
            Err(e) => return Err(self.error("cannot read", e)),
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes)
            .map_err(|e| self.error("cannot read", e))?;
        serde_json::from_slice(&bytes).map_err(|e| self.error("unreadable", e))
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
        self.lock(&lock)?;
        let mut contents = self.read()?;
        if contents.version < 2 {
            // Version 1 named entries by service, base URL and account in the clear; those
            // entries are no longer looked up, and the names should not stay on disk.
            contents.entries.clear();
            contents.refusals.clear();
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
        Box::pin(self.load_kept(key, entries))
    }

    fn save<'a>(&'a self, key: &'a StoreKey, tokens: &'a StoredTokens) -> StoreFuture<'a, ()> {
        Box::pin(self.save_kept(key, tokens, entries))
    }

    fn remove<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, ()> {
        Box::pin(self.remove_kept(key, entries))
    }

    fn load_refusal<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<StoredRefusal>> {
        Box::pin(self.load_kept(key, refusals))
    }

    fn save_refusal<'a>(
        &'a self,
        key: &'a StoreKey,
        refusal: &'a StoredRefusal,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.save_kept(key, refusal, refusals))
    }

    fn remove_refusal<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, ()> {
        Box::pin(self.remove_kept(key, refusals))
    }
}

/// Where the file keeps the token sets.
fn entries(contents: &mut Contents) -> &mut BTreeMap<String, String> {
    &mut contents.entries
}

/// Where the file keeps the login refusals.
fn refusals(contents: &mut Contents) -> &mut BTreeMap<String, String> {
    &mut contents.refusals
}

/// Which of the file's tables a token set or a refusal lives in.
type Table = fn(&mut Contents) -> &mut BTreeMap<String, String>;

impl FileStore {
    /// `key`'s token set or refusal, from `table`, its age measured from its stamp.
    async fn load_kept<T: Kept>(&self, key: &StoreKey, table: Table) -> Result<Option<T>, Error> {
        let key = key.clone();
        self.blocking(move |inner| {
            let mut contents = inner.read()?;
            let Some(sealed) = table(&mut contents).get(&inner.key.name(&key)) else {
                return Ok(None);
            };
            let Some(plain) = inner.key.open(&T::context(&key), sealed) else {
                let what = format!("{} does not open", T::NAME);
                return Err(inner.error(&what, "wrong key or tampered"));
            };
            let mut kept: T = serde_json::from_slice(&plain)
                .map_err(|_| inner.error(&format!("{} unreadable", T::NAME), T::NOT))?;
            let (stamp, age) = kept.stamp_and_age();
            *age = stamp.and_then(|s| s.wall_age(&*inner.clock));
            Ok(Some(kept))
        })
        .await
    }

    /// Saves `kept` in `table`, stamped with the wall clock's time.
    async fn save_kept<T: Kept>(
        &self,
        key: &StoreKey,
        kept: &T,
        table: Table,
    ) -> Result<(), Error> {
        let mut kept = kept.clone();
        *kept.stamp_and_age().0 = Some(Stamp::Wall(super::to_ms(self.inner.clock.system_now())));
        let plain = zeroize::Zeroizing::new(
            serde_json::to_vec(&kept).map_err(|e| self.inner.error("cannot encode", e))?,
        );
        let sealed = self.inner.key.seal(&T::context(key), &plain)?;
        let name = self.inner.key.name(key);
        self.blocking(move |inner| {
            inner.update(|contents| {
                table(contents).insert(name, sealed);
            })
        })
        .await
    }

    /// Removes `key`'s token set or refusal from `table`.
    async fn remove_kept(&self, key: &StoreKey, table: Table) -> Result<(), Error> {
        let name = self.inner.key.name(key);
        self.blocking(move |inner| {
            inner.update(|contents| {
                table(contents).remove(&name);
            })
        })
        .await
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
        StoredTokens::access_only(access, 4_000_000_000_000)
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
        // A directory where the file should be: opening it works (on Unix), reading it would
        // fail (not as "not found"); it is not a regular file.
        let dir = temp_dir("unreadable");
        let path = dir.join("tokens.json");
        std::fs::create_dir(&path).unwrap();
        let cause = std::fs::read(&path).unwrap_err();
        assert_ne!(cause.kind(), std::io::ErrorKind::NotFound);
        let store = FileStore::new(&path, SealingKey::from_bytes([7; 32]));
        let account = StoreKey::new(Service::Fib, "https://fib.test", "a");
        let error = store.load(&account).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Configuration);
        #[cfg(unix)]
        assert_not_a_regular_file(&error, &path);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Asserts that `error` refuses the store at `path` for not being a regular file.
    #[cfg(unix)]
    fn assert_not_a_regular_file(error: &Error, path: &Path) {
        let expected = format!(
            "token store {}: cannot read: not a regular file",
            path.display()
        );
        assert_eq!(error.message(), Some(expected.as_str()));
    }

    /// A FIFO at `path`, readable and writable by its owner only.
    #[cfg(unix)]
    fn make_fifo(path: &Path) {
        let fifo = rustix::fs::FileType::Fifo;
        let mode = rustix::fs::Mode::from_raw_mode(0o600);
        rustix::fs::mknodat(rustix::fs::CWD, path, fifo, mode, 0).unwrap();
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_fifo_planted_where_the_file_should_be_fails_at_once_instead_of_hanging() {
        let dir = temp_dir("fifo");
        let path = dir.join("tokens.json");
        make_fifo(&path);
        let store = FileStore::new(&path, SealingKey::from_bytes([7; 32]));
        let account = StoreKey::new(Service::Fib, "https://fib.test", "a");
        // The bound is a deadlock guard: without O_NONBLOCK the open waits for a writer.
        let load = tokio::time::timeout(std::time::Duration::from_secs(10), store.load(&account));
        let error = load.await.expect("the read did not hang").unwrap_err();
        assert_not_a_regular_file(&error, &path);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The writers' lock file of the store at `path`, locked by this test as another writer
    /// (another open file description: a lock of its own, as another process's would be).
    fn held_writers_lock(path: &Path) -> File {
        let lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path.parent().unwrap().join(".tokens.json.lock"))
            .unwrap();
        lock.lock().unwrap();
        lock
    }

    #[tokio::test]
    async fn a_write_waits_for_a_held_lock_at_most_its_bound_then_fails() {
        let dir = temp_dir("held-lock");
        let path = dir.join("tokens.json");
        let account = StoreKey::new(Service::Fib, "https://fib.test", "a");
        let store = FileStore::new(&path, SealingKey::from_bytes([7; 32]))
            .lock_wait(std::time::Duration::from_millis(50));
        // Another writer holds the lock and never lets go (stopped with Ctrl-Z, say).
        let held = held_writers_lock(&path);
        let started = std::time::Instant::now();
        let error = store.save(&account, &tokens("access-a")).await.unwrap_err();
        assert!(started.elapsed() >= std::time::Duration::from_millis(50));
        assert_eq!(error.kind(), ErrorKind::Configuration);
        assert_eq!(
            error.message(),
            Some(
                format!(
                    "token store {}: cannot lock: another writer held the lock for 50ms",
                    path.display()
                )
                .as_str()
            )
        );
        let error = store.remove(&account).await.unwrap_err();
        assert!(error.to_string().contains("cannot lock"), "{error}");
        assert!(
            store.load(&account).await.unwrap().is_none(),
            "nothing written"
        );
        drop(held);
        store.save(&account, &tokens("access-a")).await.unwrap();
        let stored = store.load(&account).await.unwrap().unwrap();
        assert_eq!(stored.access.expose_secret(), "access-a");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_lock_file_planted_as_a_symlink_is_refused_and_not_followed() {
        let dir = temp_dir("symlink");
        let path = dir.join("tokens.json");
        let account = StoreKey::new(Service::Fib, "https://fib.test", "a");
        let key = SealingKey::from_bytes([7; 32]);
        let tag = key.file_tag(&account);
        let store = FileStore::new(&path, key);
        // Another user's planted links: the writers' lock and the account's lease, pointing
        // at files the store must not open (nor create: the second target does not exist).
        let target = dir.join("victim");
        std::fs::write(&target, b"victim's").unwrap();
        std::os::unix::fs::symlink(&target, dir.join(".tokens.json.lock")).unwrap();
        let missing = dir.join("created-through-the-link");
        std::os::unix::fs::symlink(&missing, dir.join(format!(".tokens.json.{tag}.lease")))
            .unwrap();

        let error = store.save(&account, &tokens("access-a")).await.unwrap_err();
        assert!(
            error.to_string().contains("cannot open its lock file"),
            "{error}"
        );
        let error = store.lease(&account).await.unwrap_err();
        assert!(
            error.to_string().contains("cannot open its lock file"),
            "{error}"
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"victim's");
        // Nor a lock file that is not a regular file (a FIFO, which opens without blocking
        // for reading and writing).
        let lease = dir.join(format!(".tokens.json.{tag}.lease"));
        std::fs::remove_file(&lease).unwrap();
        make_fifo(&lease);
        let error = store.lease(&account).await.unwrap_err();
        assert_eq!(
            error.message(),
            Some(
                format!(
                    "token store {}: cannot open its lock file: {} is not a regular file",
                    path.display(),
                    lease.display()
                )
                .as_str()
            )
        );
        assert!(!missing.exists(), "a file was created through the link");
        assert!(!path.exists(), "nothing written");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_lock_file_another_user_owns_is_refused() {
        if !rustix::process::geteuid().is_root() {
            // Only root can give a file to another user; CI and this project's machines run
            // the tests as root.
            eprintln!("not root: cannot make a file another user's; skipped");
            return;
        }
        let dir = temp_dir("foreign-owner");
        let path = dir.join("tokens.json");
        let account = StoreKey::new(Service::Fib, "https://fib.test", "a");
        let store = FileStore::new(&path, SealingKey::from_bytes([7; 32]));
        let lock = dir.join(".tokens.json.lock");
        std::fs::write(&lock, b"").unwrap();
        // nobody (65534) pre-created it.
        std::os::unix::fs::chown(&lock, Some(65534), Some(65534)).unwrap();
        let error = store.save(&account, &tokens("access-a")).await.unwrap_err();
        assert_eq!(
            error.message(),
            Some(
                format!(
                    "token store {}: cannot open its lock file: {} is owned by another user",
                    path.display(),
                    lock.display()
                )
                .as_str()
            )
        );
        assert!(!path.exists(), "nothing written");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
