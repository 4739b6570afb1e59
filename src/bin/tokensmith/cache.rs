//! `--cache FILE`: the sealed token file, and the key that seals it (`TOKENSMITH_CACHE_KEY`,
//! or one generated into `FILE.key`).

use std::io::Write;
use std::path::{Path, PathBuf};

use tokensmith::store::{FileStore, SealingKey};
use tokensmith::SecretString;

use super::exit::Exit;
use super::vars::variable;

/// The store behind `--cache path`.
pub(crate) fn store(path: &Path) -> Result<FileStore, Exit> {
    let key = match variable("TOKENSMITH_CACHE_KEY")? {
        Some(hex) => SealingKey::from_hex(&hex)?,
        None => {
            let mut key_path = path.as_os_str().to_owned();
            key_path.push(".key");
            cache_key(Path::new(&key_path), |_| ())?.0
        }
    };
    Ok(FileStore::new(path, key))
}

/// The sealing key kept in `path`: read when it exists, else generated into it.
///
/// Two first runs at once must agree on one key and never read half of one: the key is written
/// to a private temporary file and published with `link`, which (unlike `rename`) fails when
/// the name exists; the run that loses reads the winner's complete key. `before_publish` is
/// told the temporary file's name just before the link (tests use it to force interleavings).
pub(crate) fn cache_key(
    path: &Path,
    before_publish: impl FnOnce(&Path),
) -> Result<(SealingKey, SecretString), Exit> {
    if let Some(key) = read_key(path)? {
        return Ok(key);
    }
    let (key, hex) = SealingKey::generate();
    let temporary = {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(
            ".{}.{:016x}.tmp",
            std::process::id(),
            fastrand::u64(..)
        ));
        PathBuf::from(name)
    };
    let written = write_private(&temporary, hex.expose_secret().as_bytes()).and_then(|()| {
        before_publish(&temporary);
        std::fs::hard_link(&temporary, path)
    });
    let _ = std::fs::remove_file(&temporary);
    match written {
        Ok(()) => Ok((key, hex)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key(path)?
            .ok_or_else(|| Exit::usage(format!("{} vanished while read", path.display()))),
        Err(e) => Err(Exit::usage(format!("cannot write {}: {e}", path.display()))),
    }
}

/// Reads a key file, refusing one that another user owns or that others may read.
fn read_key(path: &Path) -> Result<Option<(SealingKey, SecretString)>, Exit> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Exit::usage(format!("cannot read {}: {e}", path.display()))),
    };
    // The checks look at the file that was opened, not at whatever the name points to later.
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let metadata = file
            .metadata()
            .map_err(|e| Exit::usage(format!("cannot read {}: {e}", path.display())))?;
        let owner = metadata.uid();
        let me = rustix::process::geteuid().as_raw();
        if owner != me {
            return Err(Exit::usage(format!(
                "refusing the cache key {}: it belongs to user {owner}, not to you ({me})",
                path.display()
            )));
        }
        let mode = metadata.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Exit::usage(format!(
                "refusing the cache key {}: its mode {mode:04o} lets others read it \
                 (chmod 600 it, or delete it and the cache)",
                path.display()
            )));
        }
    }
    let mut hex = String::new();
    std::io::Read::read_to_string(&mut file, &mut hex)
        .map_err(|e| Exit::usage(format!("cannot read {}: {e}", path.display())))?;
    let hex = SecretString::new(hex);
    Ok(Some((SealingKey::from_hex(&hex)?, hex)))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
