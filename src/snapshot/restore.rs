//! Restore by reference: an entry of a snapshot (a file, a symlink, a whole directory tree) is
//! put back into the live share as new inodes whose block maps name the snapshot's chunks.
//! Nothing is copied, so a restore costs metadata only, whatever the size of the data, and the
//! store does not grow.
//!
//! The snapshot is pinned while it is read and grafted (see `pin`), the tree is read whole before
//! the share is touched (`subtree`), and the graft is one atomic, committed change
//! (`live::graft`). Also here: the error and report types shared with rollback and clone.

use std::path::PathBuf;

use super::subtree::TreeReader;
use super::view::SNAPSHOTS_DIR_NAME;
use super::{SnapshotError, Snapshots};
use crate::chunk_store::ChunkStoreError;
use crate::format::catalog::SnapshotRecord;
use crate::history::path::escape_path;
use crate::live::{FsError, GraftPoint, split_path};
use crate::progress::Progress;
use crate::store::StoreError;

/// Why a restore, rollback or clone failed (its errno is chosen in `service::error`).
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("no snapshot named {0:?}")]
    SnapshotNotFound(String),
    #[error("{path:?} is not in snapshot {snapshot:?}")]
    NotInSnapshot { snapshot: String, path: String },
    #[error("the parent directory of {0:?} does not exist in the share")]
    NoParent(String),
    #[error("{0:?} exists in the share; restore with overwrite to replace it")]
    Exists(String),
    #[error("{0:?}: a directory on the path is not a directory")]
    NotDirectory(String),
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("no space left on device")]
    NoSpace,
    #[error("chunk store: {0}")]
    Chunks(ChunkStoreError),
    #[error("safety snapshot: {0}")]
    Snapshot(SnapshotError),
    #[error("live share: {0}")]
    Live(FsError),
    #[error("new store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot clone into {}: {reason}", path.display())]
    CloneDestination { path: PathBuf, reason: String },
}

impl RestoreError {
    /// The error of a graft at `dest`.
    pub(super) fn of_graft(err: FsError, dest: &str) -> Self {
        match err {
            err if err.is_no_space() => RestoreError::NoSpace,
            FsError::NotFound => RestoreError::NoParent(dest.to_owned()),
            FsError::NotDirectory => RestoreError::NotDirectory(dest.to_owned()),
            FsError::Exists => RestoreError::Exists(dest.to_owned()),
            other => RestoreError::Live(other),
        }
    }
}

impl From<SnapshotError> for RestoreError {
    fn from(err: SnapshotError) -> Self {
        match err {
            SnapshotError::NotFound(name) => RestoreError::SnapshotNotFound(name),
            other => RestoreError::Snapshot(other),
        }
    }
}

impl From<ChunkStoreError> for RestoreError {
    fn from(err: ChunkStoreError) -> Self {
        match err {
            ChunkStoreError::Io(io) if io.raw_os_error() == Some(libc::ENOSPC) => {
                RestoreError::NoSpace
            }
            other => RestoreError::Chunks(other),
        }
    }
}

/// What a restored tree holds: its inodes by kind (a file with several names counts once) and
/// the logical bytes of its files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TreeCounts {
    pub files: u64,
    pub dirs: u64,
    pub others: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RestoreReport {
    pub restored: TreeCounts,
    /// How much the pack files grew during the restore: 0, since a restore stores no data (only
    /// what others wrote meanwhile counts here).
    pub bytes_stored: u64,
}

/// The names of a path that must name an entry, not the root.
fn entry_names(path: &[u8]) -> Result<Vec<&[u8]>, RestoreError> {
    let invalid = |reason| RestoreError::InvalidPath {
        path: escape_path(path),
        reason,
    };
    let names = split_path(path)
        .map_err(|_| invalid("names are 1 to 255 bytes, without NUL, and not . or .."))?;
    if names.is_empty() {
        return Err(invalid(
            "a restore needs a named entry (a rollback restores the whole share)",
        ));
    }
    Ok(names)
}

/// Checks the paths of a restore before anything is read: `path` names an entry (not the
/// root), `dest` (by default `path`) names one that is not `.snapshots`. Returns the names of
/// `path`.
pub fn restore_paths<'p>(
    path: &'p [u8],
    dest: Option<&[u8]>,
) -> Result<Vec<&'p [u8]>, RestoreError> {
    let source = entry_names(path)?;
    let dest = dest.unwrap_or(path);
    if entry_names(dest)?.first() == Some(&SNAPSHOTS_DIR_NAME) {
        return Err(RestoreError::InvalidPath {
            path: escape_path(dest),
            reason: "the share's root keeps .snapshots for the snapshots",
        });
    }
    Ok(source)
}

impl Snapshots {
    /// Restores the entry at `path` of `snapshot` (and everything under it) to `dest`, by
    /// default the same path, in the live share. Paths are bytes, as names are. An existing
    /// `dest` is refused unless `overwrite`, and then replaced in the same atomic step. Durable
    /// when it returns.
    pub fn restore(
        &self,
        snapshot: &str,
        path: &[u8],
        dest: Option<&[u8]>,
        overwrite: bool,
        progress: &Progress,
    ) -> Result<RestoreReport, RestoreError> {
        restore_paths(path, dest)?;
        let pin = self.pin(snapshot)?;
        let report = self.restore_tree(&pin.record, snapshot, path, dest, overwrite, progress)?;
        drop(pin);
        Ok(report)
    }

    /// Restores the entry at `path` of the tree `record` names to `dest` (see
    /// [`Snapshots::restore`]); `source` names the tree in errors and the log. Every object
    /// from the root to the entry and under it must be in this store's chunk store and stay
    /// there until this returns: a pinned snapshot's are, and a vault restore fetches them
    /// first and holds the catalog (so no gc runs).
    pub fn restore_tree(
        &self,
        record: &SnapshotRecord,
        source: &str,
        path: &[u8],
        dest: Option<&[u8]>,
        overwrite: bool,
        progress: &Progress,
    ) -> Result<RestoreReport, RestoreError> {
        let names = restore_paths(path, dest)?;
        let dest = dest.unwrap_or(path);
        // How errors and the log show the paths.
        let (shown_path, shown_dest) = (escape_path(path), escape_path(dest));
        let live = self.live();
        let packs_before = live.chunk_store().usage().pack_bytes;
        let tree = TreeReader::new(self.objects(), live.block_size(), progress).entry(
            record,
            &names,
            source,
            &shown_path,
        )?;
        live.graft(
            tree.subtree,
            GraftPoint::Path {
                path: dest,
                overwrite,
            },
        )
        .map_err(|err| RestoreError::of_graft(err, &shown_dest))?;
        let report = RestoreReport {
            restored: tree.counts,
            bytes_stored: live
                .chunk_store()
                .usage()
                .pack_bytes
                .saturating_sub(packs_before),
        };
        tracing::info!(
            source,
            path = shown_path,
            dest = shown_dest,
            ?report,
            "restored"
        );
        Ok(report)
    }
}

#[cfg(test)]
mod tests {

    use crate::snapshot::DeleteMode;

    use super::*;
    use crate::format::catalog::Origin;
    use crate::format::inode::{InodeKind, Timestamp};
    use crate::id::InodeNo;
    use crate::live::{LiveFs, NewInode, SetAttr, XattrFlags, XattrReply};
    use crate::testing::{
        ROOT_USER, close, lookup, mkdir, new_store, open, read_file, snapshots_of, write_file,
    };

    /// Bytes that do not repeat block to block, so no block dedups against another.
    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn a_restore_brings_back_a_whole_tree_without_storing_data() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (store, live) = new_store(tmp.path(), "store");
        let snapshots = snapshots_of(&live);
        let etc = mkdir(&live, "etc");
        let content = data(3 * 4096 + 100);
        let conf = write_file(&live, "etc/app.conf", &content);
        live.link(conf, etc, b"hard").expect("link");
        live.make(
            etc,
            b"link",
            NewInode::Symlink(b"app.conf"),
            0o777,
            ROOT_USER,
        )
        .expect("symlink");
        mkdir(&live, "etc/empty");
        live.setxattr(conf, b"user.tag", b"blue", XattrFlags::Any)
            .expect("setxattr");
        let mtime = Timestamp {
            secs: 1_234_567,
            nanos: 89,
        };
        live.setattr(
            conf,
            SetAttr {
                mode: Some(0o600),
                mtime: Some(mtime),
                ..SetAttr::default()
            },
        )
        .expect("setattr");
        snapshots.create("s", Origin::Manual).expect("snapshot");
        for name in [&b"app.conf"[..], b"hard", b"link"] {
            live.unlink(etc, name).expect("unlink");
        }
        live.rmdir(etc, b"empty").expect("rmdir");
        live.rmdir(InodeNo::ROOT, b"etc").expect("rmdir");
        let packs = live.chunk_store().usage().pack_bytes;

        let report = snapshots
            .restore("s", b"etc", None, false, &crate::progress::Progress::new())
            .expect("restore");

        assert_eq!(report.bytes_stored, 0);
        assert_eq!(live.chunk_store().usage().pack_bytes, packs);
        assert_eq!(
            report.restored,
            TreeCounts {
                files: 1,
                dirs: 2,
                others: 1,
                bytes: content.len() as u64,
            }
        );
        let check = |live: &LiveFs| {
            assert_eq!(read_file(live, "etc/app.conf"), content);
            let conf = lookup(live, "etc/app.conf").expect("conf");
            assert_eq!((conf.record.perm, conf.record.nlink), (0o600, 2));
            assert_eq!(conf.record.mtime, mtime);
            assert_eq!(lookup(live, "etc/hard").expect("hard").ino, conf.ino);
            let link = lookup(live, "etc/link").expect("link");
            assert_eq!(live.readlink(link.ino).expect("readlink"), b"app.conf");
            let empty = lookup(live, "etc/empty").expect("empty");
            assert_eq!(empty.record.kind, InodeKind::Directory);
            assert!(matches!(
                live.getxattr(conf.ino, b"user.tag", 16),
                Ok(XattrReply::Data(value)) if value == b"blue"
            ));
            live.assert_consistent();
        };
        check(&live);
        drop(snapshots);
        close(live);
        check(&open(&store));
    }

    #[test]
    fn restored_data_outlives_its_snapshot_and_a_collection() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (store, live) = new_store(tmp.path(), "store");
        let snapshots = snapshots_of(&live);
        let content = data(5 * 4096);
        write_file(&live, "f", &content);
        snapshots.create("s", Origin::Manual).expect("snapshot");
        write_file(&live, "f", b"overwritten");

        snapshots
            .restore(
                "s",
                b"f",
                Some(b"restored".as_slice()),
                false,
                &crate::progress::Progress::new(),
            )
            .expect("restore");
        snapshots.create("after", Origin::Manual).expect("snapshot");
        snapshots
            .delete("s", crate::snapshot::DeleteMode::Now)
            .expect("delete");
        crate::gc::collect(&snapshots, &crate::progress::Progress::new()).expect("gc");

        assert_eq!(read_file(&live, "restored"), content);
        assert_eq!(read_file(&live, "f"), b"overwritten");
        drop(snapshots);
        close(live);
        let live = open(&store);
        assert_eq!(read_file(&live, "restored"), content);
        let snapshots = snapshots_of(&live);
        let report = crate::verify::verify(
            &snapshots,
            &Default::default(),
            &crate::progress::Progress::new(),
        )
        .expect("verify");
        assert!(report.is_clean(), "{report:?}");
    }

    #[test]
    fn an_existing_destination_is_replaced_only_with_overwrite() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        let snapshots = snapshots_of(&live);
        mkdir(&live, "d");
        write_file(&live, "d/f", b"before");
        snapshots.create("s", Origin::Manual).expect("snapshot");
        write_file(&live, "d/f", b"after");
        write_file(&live, "d/new", b"new");

        let refused = snapshots.restore("s", b"d", None, false, &crate::progress::Progress::new());
        assert!(
            matches!(&refused, Err(RestoreError::Exists(path)) if path == "d"),
            "{refused:?}"
        );
        assert_eq!(
            crate::service::restore_errno(&refused.expect_err("refused")),
            libc::EEXIST
        );
        assert_eq!(read_file(&live, "d/f"), b"after");

        snapshots
            .restore("s", b"d", None, true, &crate::progress::Progress::new())
            .expect("restore");
        assert_eq!(read_file(&live, "d/f"), b"before");
        assert!(lookup(&live, "d/new").is_err());
        live.assert_consistent();
    }

    #[test]
    fn failures_name_what_failed_and_map_to_errno() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        let snapshots = snapshots_of(&live);
        write_file(&live, "file", b"x");
        mkdir(&live, "dir");
        snapshots.create("s", Origin::Manual).expect("snapshot");
        for (snapshot, path, dest, errno) in [
            ("missing", "file", None, libc::ENOENT),
            ("s", "nothing", None, libc::ENOENT),
            ("s", "file/below", None, libc::ENOTDIR),
            ("s", "file", Some("no/parent"), libc::ENOENT),
            ("s", "file", Some("file/below"), libc::ENOTDIR),
            ("s", "file", Some("dir/.."), libc::EINVAL),
            ("s", "", Some("x"), libc::EINVAL),
            ("s", "/", Some("x"), libc::EINVAL),
            ("s", "file", Some(".snapshots"), libc::EINVAL),
            ("s", "file", None, libc::EEXIST),
        ] {
            let err = snapshots
                .restore(
                    snapshot,
                    path.as_bytes(),
                    dest.map(str::as_bytes),
                    false,
                    &crate::progress::Progress::new(),
                )
                .expect_err("refused");
            assert_eq!(
                crate::service::restore_errno(&err),
                errno,
                "{snapshot} {path} {dest:?}: {err}"
            );
        }
        assert_eq!(read_file(&live, "file"), b"x");
        live.assert_consistent();
    }

    #[test]
    fn a_pinned_snapshot_cannot_be_deleted_until_unpinned() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        let snapshots = snapshots_of(&live);
        snapshots.create("s", Origin::Manual).expect("snapshot");
        let pin = snapshots.pin("s").expect("pin");
        assert!(matches!(
            snapshots.delete("s", DeleteMode::Now),
            Err(SnapshotError::Busy(_))
        ));
        drop(pin);
        snapshots.delete("s", DeleteMode::Now).expect("delete");
        assert!(matches!(
            snapshots.pin("s"),
            Err(SnapshotError::NotFound(_))
        ));
    }

    #[test]
    fn a_deep_tree_restores_over_itself_and_survives_reopening() {
        use crate::testing::{DEEP, chain, chain_bottom, on_small_stack, read_in, write_in};
        let tmp = tempfile::tempdir().expect("tempdir");
        let (store, live) = new_store(tmp.path(), "store");
        let snapshots = snapshots_of(&live);
        let top = mkdir(&live, "top");
        let bottom = chain(&live, top, b"dir", DEEP);
        write_in(&live, bottom, b"leaf", b"deep data");
        snapshots.create("s", Origin::Manual).expect("snapshot");
        write_in(&live, bottom, b"leaf", b"changed");

        let copy = on_small_stack(|| {
            snapshots.restore(
                "s",
                b"top",
                Some(b"copy".as_slice()),
                false,
                &crate::progress::Progress::new(),
            )
        })
        .expect("restore a copy");
        assert_eq!(copy.restored.dirs, DEEP as u64 + 1);
        on_small_stack(|| {
            snapshots.restore("s", b"top", None, true, &crate::progress::Progress::new())
        })
        .expect("restore over the deep tree");
        for name in ["top", "copy"] {
            let top = lookup(&live, name).expect("restored").ino;
            let bottom = chain_bottom(&live, top, b"dir", DEEP);
            assert_eq!(read_in(&live, bottom, b"leaf"), b"deep data", "{name}");
        }
        live.assert_consistent();
        on_small_stack(|| snapshots.create("after", Origin::Manual)).expect("snapshot");
        drop(snapshots);
        close(live);
        let live = open(&store);
        let top = lookup(&live, "copy").expect("copy").ino;
        let bottom = chain_bottom(&live, top, b"dir", DEEP);
        assert_eq!(read_in(&live, bottom, b"leaf"), b"deep data");
        let snapshots = snapshots_of(&live);
        on_small_stack(|| snapshots.create("reopened", Origin::Manual))
            .expect("the first snapshot after opening encodes the whole tree");
    }
}
