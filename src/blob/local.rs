//! A vault in a local directory (another disk, a NAS mount). Each object is one file at its
//! key's path. A write goes to a temporary file in `tmp/`, is fsynced, then renamed (or, for
//! create-only, hard-linked, which fails atomically if the name exists) into place, and the
//! directory is fsynced: after `put` returns, the object survives a power loss, and a crash
//! before leaves only a stray file in `tmp/`, which is never listed.

use std::fs::{self, File};
use std::io::{self, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{BlobBackend, BlobError, BlobKey, BlobMeta, ObjectAddress};

/// Temporary files live here, under the vault's root, so a rename never crosses file systems.
const TMP_DIR: &str = "tmp";

/// A directory holding one file per object.
pub struct LocalDir {
    root: PathBuf,
    next_tmp: AtomicU64,
}

fn io_error(key: &str, err: io::Error) -> BlobError {
    match err.kind() {
        io::ErrorKind::NotFound => BlobError::NotFound(key.to_owned()),
        io::ErrorKind::AlreadyExists => BlobError::AlreadyExists(key.to_owned()),
        _ => BlobError::Other {
            key: key.to_owned(),
            message: err.to_string(),
        },
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl LocalDir {
    /// Opens (creating if needed) the directory `root`.
    pub fn open(root: &Path) -> Result<Self, BlobError> {
        let at = root.display().to_string();
        fs::create_dir_all(root.join(TMP_DIR)).map_err(|err| io_error(&at, err))?;
        let root = std::path::absolute(root).map_err(|err| io_error(&at, err))?;
        Ok(LocalDir {
            root,
            next_tmp: AtomicU64::new(0),
        })
    }

    fn path(&self, key: &BlobKey) -> PathBuf {
        self.root.join(key.as_str())
    }

    /// A name for a new temporary file.
    fn temp_path(&self) -> PathBuf {
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        self.root
            .join(TMP_DIR)
            .join(format!("{}.{n}.tmp", std::process::id()))
    }

    /// Writes `data` to a new, fsynced temporary file and returns its path.
    fn write_temp(&self, data: &[u8]) -> io::Result<PathBuf> {
        let tmp = self.temp_path();
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        Ok(tmp)
    }

    /// Makes the directory of `path` exist, durably.
    fn make_parent(&self, path: &Path) -> io::Result<()> {
        let parent = path.parent().unwrap_or(&self.root);
        if !parent.is_dir() {
            fs::create_dir_all(parent)?;
            // Every directory created on the way needs its entry made durable.
            let mut dir = parent;
            while dir != self.root {
                let Some(up) = dir.parent() else { break };
                sync_dir(up)?;
                dir = up;
            }
        }
        Ok(())
    }

    fn store(&self, key: &BlobKey, data: &[u8], create_only: bool) -> io::Result<()> {
        let target = self.path(key);
        self.make_parent(&target)?;
        let tmp = self.write_temp(data)?;
        self.place(tmp, &target, create_only)
    }

    /// Moves the fsynced temporary file `tmp` to `target` (see the module documentation).
    fn place(&self, tmp: PathBuf, target: &Path, create_only: bool) -> io::Result<()> {
        let placed = if create_only {
            fs::hard_link(&tmp, target).and_then(|()| fs::remove_file(&tmp))
        } else {
            fs::rename(&tmp, target)
        };
        if let Err(err) = placed {
            let _ = fs::remove_file(&tmp);
            return Err(err);
        }
        sync_dir(target.parent().unwrap_or(&self.root))
    }
}

impl BlobBackend for LocalDir {
    fn put(&self, key: &BlobKey, data: &[u8]) -> Result<(), BlobError> {
        self.store(key, data, false)
            .map_err(|err| io_error(key.as_str(), err))
    }

    fn put_if_absent(&self, key: &BlobKey, data: &[u8]) -> Result<(), BlobError> {
        self.store(key, data, true)
            .map_err(|err| io_error(key.as_str(), err))
    }

    fn enforces_create_only(&self) -> bool {
        true
    }

    fn get(&self, key: &BlobKey) -> Result<Vec<u8>, BlobError> {
        fs::read(self.path(key)).map_err(|err| io_error(key.as_str(), err))
    }

    fn get_range(&self, key: &BlobKey, range: Range<u64>) -> Result<Vec<u8>, BlobError> {
        let read = || -> io::Result<Vec<u8>> {
            let len = usize::try_from(range.end.saturating_sub(range.start))
                .map_err(|_| io::Error::other("range too large"))?;
            let mut out = vec![0; len];
            File::open(self.path(key))?
                .read_exact_at(&mut out, range.start)
                .map_err(|err| match err.kind() {
                    io::ErrorKind::UnexpectedEof => io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("range {range:?} past the end of the object"),
                    ),
                    _ => err,
                })?;
            Ok(out)
        };
        read().map_err(|err| io_error(key.as_str(), err))
    }

    fn head(&self, key: &BlobKey) -> Result<Option<u64>, BlobError> {
        match fs::metadata(self.path(key)) {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Ok(None),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io_error(key.as_str(), err)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, BlobError> {
        let start = if prefix.is_empty() {
            self.root.clone()
        } else {
            self.root.join(prefix)
        };
        let mut out = Vec::new();
        // Depth first without recursion; keys have bounded depth, but a directory tree on disk
        // need not.
        let mut pending = vec![start];
        while let Some(dir) = pending.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(io_error(prefix, err)),
            };
            for entry in entries {
                let entry = entry.map_err(|err| io_error(prefix, err))?;
                let path = entry.path();
                let kind = entry.file_type().map_err(|err| io_error(prefix, err))?;
                if kind.is_dir() {
                    if dir != self.root || entry.file_name() != TMP_DIR {
                        pending.push(path);
                    }
                    continue;
                }
                let Some(key) = path
                    .strip_prefix(&self.root)
                    .ok()
                    .and_then(|rel| rel.to_str())
                    .and_then(BlobKey::new)
                else {
                    continue; // not a file this backend wrote
                };
                let meta = entry.metadata().map_err(|err| io_error(prefix, err))?;
                let modified = meta.modified().map_err(|err| io_error(prefix, err))?;
                out.push(BlobMeta {
                    key,
                    size: meta.len(),
                    modified,
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        match fs::remove_file(self.path(key)) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(io_error(key.as_str(), err)),
        }
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn address(&self, key: &BlobKey) -> Option<ObjectAddress> {
        Some(ObjectAddress::File(self.path(key)))
    }

    /// A copy by `copy_file_range(2)` (what `std::fs::copy` uses): the kernel copies, a file
    /// system that can shares the blocks, and NFS 4.2 copies on the server.
    fn reaches(&self, source: &ObjectAddress) -> bool {
        matches!(source, ObjectAddress::File(_))
    }

    fn copy_in(&self, source: &ObjectAddress, key: &BlobKey) -> Result<bool, BlobError> {
        let ObjectAddress::File(source) = source else {
            return Ok(false);
        };
        let copy = || -> io::Result<()> {
            let target = self.path(key);
            self.make_parent(&target)?;
            let tmp = self.temp_path();
            let copied = fs::copy(source, &tmp).and_then(|_| File::open(&tmp)?.sync_all());
            if let Err(err) = copied {
                let _ = fs::remove_file(&tmp);
                return Err(err);
            }
            self.place(tmp, &target, false)
        };
        copy().map_err(|err| io_error(key.as_str(), err))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_directory_behaves_as_a_blob_backend() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let backend = LocalDir::open(&tmp.path().join("vault")).expect("open");
        super::super::conformance::check(&backend);
        assert_eq!(
            fs::read_dir(tmp.path().join("vault").join(TMP_DIR))
                .expect("tmp")
                .count(),
            0,
            "no temporary file is left behind"
        );
    }

    #[test]
    fn stray_temporary_files_are_not_listed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let backend = LocalDir::open(tmp.path()).expect("open");
        fs::write(tmp.path().join(TMP_DIR).join("1.0.tmp"), b"half").expect("write");
        assert!(backend.list("").expect("list").is_empty());
    }
}
