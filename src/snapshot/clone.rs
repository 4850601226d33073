//! Clone: a new, independent store whose live share starts as a snapshot of this one. The chunks
//! the snapshot's files use are copied (each read verified, stored in the new store, where
//! duplicates are stored once), then the snapshot's tree is grafted at the new store's root.
//! The clone shares nothing with its source afterwards: deleting the snapshot, collecting
//! garbage or damage in the source cannot reach it.
//!
//! A clone that fails leaves nothing behind: the store directory is removed if the clone created
//! it, or emptied again if it was an empty directory before. A destination inside the source
//! store is refused before anything is done, for every caller (see [`check_destination`]).

use std::io;
use std::path::{Component, Path, PathBuf};

use super::Pin;
use super::Snapshots;
use super::restore::{RestoreError, TreeCounts};
use super::subtree::TreeReader;
use crate::chunk_store::ChunkStore;
use crate::format::catalog::SnapshotRecord;
use crate::id::ChunkId;
use crate::live::{GraftPoint, LiveFs, LiveOptions};
use crate::progress::{Progress, Unit};
use crate::store::{Store, StoreError};
use crate::tree_objects::TreeObjects;

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CloneReport {
    pub cloned: TreeCounts,
    /// Distinct chunks copied into the new store.
    pub chunks_copied: u64,
    /// Their bytes, uncompressed.
    pub chunk_bytes: u64,
}

/// Creates a store at `new_store` (which must not exist, or be an empty directory) with this
/// store's block size, whose live share is the snapshot `name`; the new store is closed again
/// when this returns.
pub fn clone_snapshot(
    snapshots: &Snapshots,
    name: &str,
    new_store: &Path,
    progress: &Progress,
) -> Result<CloneReport, RestoreError> {
    check_destination(snapshots.live().store_dir(), new_store)?;
    let pin = snapshots.pin(name)?;
    let block_size = snapshots.live().block_size();
    let (uid, gid) = (pin.record.root_uid, pin.record.root_gid);
    new_store_with(new_store, block_size, uid, gid, |live| {
        fill(snapshots, &pin, live, progress)
    })
}

/// Creates a store at `new_store` (which must not exist, or be an empty directory), serves its
/// live share to `fill`, and closes it. If anything fails, what was created is removed again:
/// the directory if it was created here, else what was put in it. Shared by clone and by a
/// restore from a vault.
pub(crate) fn new_store_with<T, E>(
    new_store: &Path,
    block_size: u32,
    root_uid: u32,
    root_gid: u32,
    fill: impl FnOnce(&LiveFs) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<StoreError> + From<RestoreError>,
{
    let created = match std::fs::symlink_metadata(new_store) {
        Ok(_) => false,
        Err(err) if err.kind() == io::ErrorKind::NotFound => true,
        Err(source) => {
            return Err(StoreError::Io {
                path: new_store.to_owned(),
                source,
            }
            .into());
        }
    };
    let result = match Store::init(new_store, block_size, root_uid, root_gid) {
        // Refused before anything was written: what is there is not ours to remove.
        Err(err @ (StoreError::NotEmpty(_) | StoreError::AlreadyAStore(_))) => {
            return Err(err.into());
        }
        Err(err) => Err(err.into()),
        Ok(_) => serve_and_fill(new_store, fill),
    };
    if result.is_err() {
        remove_partial_store(new_store, created);
    }
    result
}

/// Refuses a destination that is not absolute, or that is inside the source store (`STORE`,
/// `STORE/inner`, `STORE/packs/x`, or a symlink leading there): a store inside a store would mix
/// its files with the source's, which its next mount would find among its own. Symlinks and
/// `..` in the part of the path that exists are resolved; a `..` after it is refused.
fn check_destination(store_dir: &Path, new_store: &Path) -> Result<(), RestoreError> {
    let refuse = |reason: String| RestoreError::CloneDestination {
        path: new_store.to_owned(),
        reason,
    };
    if !new_store.is_absolute() {
        return Err(refuse("the path must be absolute".into()));
    }
    let io_error = |err: io::Error| refuse(format!("cannot resolve the path: {err}"));
    let store = std::fs::canonicalize(store_dir).map_err(io_error)?;
    let destination = resolved(new_store).map_err(io_error)?;
    if destination.starts_with(&store) {
        return Err(refuse(format!(
            "it is inside the source store {}",
            store.display()
        )));
    }
    Ok(())
}

/// `path` (absolute) with its longest existing ancestor resolved by the OS and the rest appended,
/// which must be plain names: a `..` or `.` below a directory that does not exist is refused
/// (`InvalidInput`), since what it means depends on what is created later.
fn resolved(path: &Path) -> io::Result<PathBuf> {
    for existing in path.ancestors() {
        match std::fs::canonicalize(existing) {
            Ok(resolved) => {
                let rest = path.strip_prefix(existing).map_err(io::Error::other)?;
                if rest
                    .components()
                    .any(|part| !matches!(part, Component::Normal(_)))
                {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "'..' or '.' after a directory that does not exist",
                    ));
                }
                return Ok(resolved.join(rest));
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        "no part of the path exists",
    ))
}

fn serve_and_fill<T, E>(
    new_store: &Path,
    fill: impl FnOnce(&LiveFs) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<StoreError> + From<RestoreError>,
{
    let live = LiveFs::serve(Store::open(new_store)?, LiveOptions::default())
        .map_err(RestoreError::Live)?;
    let filled = fill(&live);
    // Closed whatever happened, so that the store is unlocked before a failed one is removed.
    let closed = live.shutdown().map_err(RestoreError::Live);
    let filled = filled?;
    closed?;
    Ok(filled)
}

/// Grafts the tree `record` names at the root of `live`, a new and empty store whose own chunk
/// store already holds every object and chunk of that tree (checked as it is read). The tree
/// keeps its objects: they are in this store, so its next snapshot need not encode them again.
pub(crate) fn graft_stored_tree(
    live: &LiveFs,
    record: &SnapshotRecord,
    progress: &Progress,
) -> Result<TreeCounts, RestoreError> {
    let objects = TreeObjects::new(live.chunk_store());
    let tree = TreeReader::new(&objects, live.block_size(), progress).root(record)?;
    live.graft(tree.subtree, GraftPoint::Root)
        .map_err(|err| RestoreError::of_graft(err, "/"))?;
    Ok(tree.counts)
}

/// Copies the snapshot's data into the new, empty store and grafts its tree there.
fn fill(
    snapshots: &Snapshots,
    pin: &Pin<'_>,
    live: &LiveFs,
    progress: &Progress,
) -> Result<CloneReport, RestoreError> {
    let source = snapshots.live();
    let mut tree =
        TreeReader::new(snapshots.objects(), source.block_size(), progress).root(&pin.record)?;
    let (chunks_copied, chunk_bytes) = copy_chunks(
        &source.chunk_store(),
        &live.chunk_store(),
        &tree.subtree.chunks(),
        progress,
    )?;
    // The snapshot's objects are not in the new store: its next snapshot encodes anew.
    tree.subtree.forget_objects();
    live.graft(tree.subtree, GraftPoint::Root)
        .map_err(|err| RestoreError::of_graft(err, "/"))?;
    let report = CloneReport {
        cloned: tree.counts,
        chunks_copied,
        chunk_bytes,
    };
    tracing::info!(snapshot = pin.name, store = %live.store_dir().display(), ?report, "cloned");
    Ok(report)
}

/// Copies `chunks` from `source` into `target`, each read verified; returns how many and their
/// bytes.
fn copy_chunks(
    source: &ChunkStore,
    target: &ChunkStore,
    chunks: &[ChunkId],
    progress: &Progress,
) -> Result<(u64, u64), RestoreError> {
    progress.stage("copying chunks", Unit::Items, Some(chunks.len() as u64));
    let mut bytes = 0;
    for id in chunks {
        let data = source.get(id)?;
        target.put(&data)?;
        bytes += data.len() as u64;
        progress.add(1);
    }
    Ok((chunks.len() as u64, bytes))
}

/// Undoes a failed clone: removes the store directory if the clone created it, or else removes
/// what the clone put in it (it was empty before).
fn remove_partial_store(dir: &Path, created: bool) {
    let removed = if created {
        std::fs::remove_dir_all(dir)
    } else {
        std::fs::read_dir(dir).and_then(|entries| {
            entries.into_iter().try_for_each(|entry| {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    std::fs::remove_dir_all(entry.path())
                } else {
                    std::fs::remove_file(entry.path())
                }
            })
        })
    };
    if let Err(err) = removed
        && err.kind() != io::ErrorKind::NotFound
    {
        tracing::error!(store = %dir.display(), "cannot remove a failed clone: {err}");
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;
    use crate::format::catalog::Origin;
    use crate::id::InodeNo;
    use crate::live::SetAttr;
    use crate::testing::{
        close, lookup, mkdir, new_store, open, read_file, snapshots_of, write_file,
    };

    /// Three blocks that differ from each other.
    fn data() -> Vec<u8> {
        (0..3 * 4096).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn a_clone_starts_as_the_snapshot_and_shares_nothing_with_its_source() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        let snapshots = snapshots_of(&live);
        mkdir(&live, "d");
        write_file(&live, "d/a", &data());
        write_file(&live, "d/same", &data());
        live.setattr(
            InodeNo::ROOT,
            SetAttr {
                mode: Some(0o700),
                ..SetAttr::default()
            },
        )
        .expect("chmod");
        snapshots.create("s", Origin::Manual).expect("snapshot");
        write_file(&live, "later", b"not in the snapshot");
        let clone = tmp.path().join("clone");

        let report = clone_snapshot(&snapshots, "s", &clone, &Progress::new()).expect("clone");

        assert_eq!((report.cloned.files, report.cloned.dirs), (2, 1));
        assert_eq!(report.chunks_copied, 3, "equal blocks are copied once");
        assert_eq!(report.chunk_bytes, data().len() as u64);
        snapshots
            .delete("s", crate::snapshot::DeleteMode::Now)
            .expect("delete");
        write_file(&live, "d/a", b"changed");
        crate::gc::collect(&snapshots, &crate::progress::Progress::new()).expect("gc");
        let cloned = open(&clone);
        assert_eq!(read_file(&cloned, "d/a"), data());
        assert_eq!(read_file(&cloned, "d/same"), data());
        assert!(lookup(&cloned, "later").is_err());
        assert_eq!(
            cloned.getattr(InodeNo::ROOT).expect("root").record.perm,
            0o700
        );
        cloned.assert_consistent();
        let clone_snapshots = snapshots_of(&cloned);
        clone_snapshots
            .create("first", Origin::Manual)
            .expect("the clone takes its own snapshots");
        let verified = crate::verify::verify(
            &clone_snapshots,
            &Default::default(),
            &crate::progress::Progress::new(),
        )
        .expect("verify");
        assert!(verified.is_clean(), "{verified:?}");
        drop(clone_snapshots);
        close(cloned);
    }

    #[test]
    fn a_clone_refuses_a_destination_inside_the_source_store() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (store, live) = new_store(tmp.path(), "store");
        let snapshots = snapshots_of(&live);
        write_file(&live, "f", &data());
        snapshots.create("s", Origin::Manual).expect("snapshot");
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&store, &link).expect("symlink");
        let packs = store.join(crate::chunk_store::PACK_DIR);
        for inside in [
            store.clone(),
            store.join("inner"),
            store.join("inner/deeper"),
            packs.join("x"),
            link.join("inner"),
            tmp.path().join("elsewhere/../store/inner"),
            packs.join("../inner"),
        ] {
            let err =
                clone_snapshot(&snapshots, "s", &inside, &Progress::new()).expect_err("refused");
            assert_eq!(crate::service::restore_errno(&err), libc::EINVAL, "{err}");
            assert!(
                !inside.exists() || inside == store,
                "{}: nothing made",
                inside.display()
            );
        }
        let listed = |dir: &Path| {
            let mut names: Vec<_> = std::fs::read_dir(dir)
                .expect("list")
                .map(|e| e.expect("entry").file_name())
                .collect();
            names.sort();
            names
        };
        assert!(!listed(&store).iter().any(|n| n == "inner"));
        assert!(!listed(&packs).iter().any(|n| n == "x"));
        let err = clone_snapshot(&snapshots, "s", Path::new("relative"), &Progress::new())
            .expect_err("refused");
        assert_eq!(crate::service::restore_errno(&err), libc::EINVAL, "{err}");
        clone_snapshot(
            &snapshots,
            "s",
            &tmp.path().join("beside"),
            &Progress::new(),
        )
        .expect("beside is fine");
    }

    #[test]
    fn a_clone_refuses_a_used_destination_and_leaves_nothing_when_it_fails() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (store, live) = new_store(tmp.path(), "store");
        let snapshots = snapshots_of(&live);
        write_file(&live, "f", &data());
        snapshots.create("s", Origin::Manual).expect("snapshot");
        let occupied = tmp.path().join("occupied");
        std::fs::create_dir(&occupied).expect("mkdir");
        std::fs::write(occupied.join("mine"), "mine").expect("write");
        let err =
            clone_snapshot(&snapshots, "s", &occupied, &Progress::new()).expect_err("refused");
        assert_eq!(crate::service::restore_errno(&err), libc::EEXIST, "{err}");
        assert!(occupied.join("mine").exists());
        let fresh = tmp.path().join("fresh");
        let err =
            clone_snapshot(&snapshots, "missing", &fresh, &Progress::new()).expect_err("refused");
        assert_eq!(crate::service::restore_errno(&err), libc::ENOENT, "{err}");
        assert!(!fresh.exists());

        // Damage the file's first block (the first frame of the first pack), so copying fails.
        drop(snapshots);
        close(live);
        let pack = std::fs::read_dir(store.join(crate::chunk_store::PACK_DIR))
            .expect("packs")
            .map(|entry| entry.expect("entry").path())
            .min()
            .expect("a pack");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&pack)
            .expect("open pack");
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, 70).expect("read");
        file.write_all_at(&[byte[0] ^ 0xff], 70).expect("write");
        drop(file);
        let live = open(&store);
        let snapshots = snapshots_of(&live);
        let err = clone_snapshot(&snapshots, "s", &fresh, &Progress::new()).expect_err("damaged");
        assert_eq!(crate::service::restore_errno(&err), libc::EIO, "{err}");
        assert!(
            !fresh.exists(),
            "a clone that created its directory removes it"
        );
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).expect("mkdir");
        clone_snapshot(&snapshots, "s", &empty, &Progress::new()).expect_err("damaged");
        assert_eq!(std::fs::read_dir(&empty).expect("empty").count(), 0);
    }

    #[test]
    fn a_deep_tree_clones() {
        use crate::testing::{DEEP, chain, chain_bottom, on_small_stack, read_in, write_in};
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        let snapshots = snapshots_of(&live);
        let bottom = chain(&live, InodeNo::ROOT, b"dir", DEEP);
        write_in(&live, bottom, b"leaf", &data());
        snapshots.create("s", Origin::Manual).expect("snapshot");
        let clone = tmp.path().join("clone");

        let report = on_small_stack(|| clone_snapshot(&snapshots, "s", &clone, &Progress::new()))
            .expect("clone");

        assert_eq!((report.cloned.files, report.cloned.dirs), (1, DEEP as u64));
        let cloned = open(&clone);
        let bottom = chain_bottom(&cloned, InodeNo::ROOT, b"dir", DEEP);
        assert_eq!(read_in(&cloned, bottom, b"leaf"), data());
        on_small_stack(|| snapshots_of(&cloned).create("first", Origin::Manual))
            .expect("the clone's first snapshot encodes the whole tree");
    }
}
