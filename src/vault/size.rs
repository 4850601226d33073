//! How many bytes of file data a backup holds (its record's `size`, as `vault list` shows it):
//! the sizes of its files, each hard link once.
//!
//! Walking the whole tree to add them up reads every directory of the share, which is what an
//! incremental backup must not cost. So a backup of a share that has one in the vault already
//! starts from that backup's size and adds what differs between the two trees: pairs of
//! subtrees with the same id are skipped unread, exactly as the walk that sends the backup
//! skips what the vault holds. A hard link met among what differs ends the diff: counting each
//! linked inode once needs the whole tree, so then the whole tree is walked.

use std::cmp::Ordering;
use std::collections::HashSet;

use super::{Vault, VaultError, tree};
use crate::format::inode::InodeKind;
use crate::format::object::{DirEntryObject, DirectoryObject, Object, ObjectId};
use crate::tree_objects::TreeObjects;

/// An earlier backup of the same share: its tree and its size.
#[derive(Clone, Copy, Debug)]
pub struct Base {
    pub root: ObjectId,
    pub size: u64,
}

/// The size of the tree `root` (in the share's chunk store), from `base` when there is one.
pub fn tree_size(
    vault: &Vault,
    objects: &TreeObjects,
    root: ObjectId,
    base: Option<Base>,
) -> Result<u64, VaultError> {
    if let Some(base) = base {
        match size_from(vault, objects, root, base) {
            Ok(Some(size)) => return Ok(size),
            Ok(None) => {}
            // The whole walk reports what is wrong with the new tree; a base that cannot be
            // read only costs that walk.
            Err(err) => tracing::warn!("size of the backup from the previous one: {err}"),
        }
    }
    whole_tree_size(objects, root)
}

/// The sizes of every file in the tree, each hard link once. Reads the directory objects only.
fn whole_tree_size(objects: &TreeObjects, root: ObjectId) -> Result<u64, VaultError> {
    let mut size = 0u64;
    let mut links = HashSet::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        for entry in directory(objects.get(&id)?, &id)?.entries {
            match entry.record.kind {
                InodeKind::Directory => stack.extend(entry.object),
                InodeKind::File if links.insert(entry.link_id) => {
                    size = size.saturating_add(entry.record.size);
                }
                _ => {}
            }
        }
    }
    Ok(size)
}

/// One step of the diff.
enum Step {
    /// A directory of the base and the directory at the same path in the new tree.
    Pair(ObjectId, ObjectId),
    /// A directory only the new tree has: all of it counts.
    Added(ObjectId),
    /// A directory only the base has: none of it counts any more.
    Removed(ObjectId),
}

/// A hard link was met: the diff cannot say how often its inode counts.
struct HardLink;

/// Adds up the sizes of files that differ between the base and the new tree. `None` when a
/// hard link (or an impossible total) makes the diff unfit: the caller walks the whole tree.
fn size_from(
    vault: &Vault,
    objects: &TreeObjects,
    root: ObjectId,
    base: Base,
) -> Result<Option<u64>, VaultError> {
    // The base's objects are usually still in the share (its snapshot is recent); if that
    // snapshot was deleted and collected since, the vault holds them all.
    let base_directory = |id: &ObjectId| -> Result<DirectoryObject, VaultError> {
        match objects.get(id) {
            Ok(object) => directory(object, id),
            Err(_) => directory(tree::read_node(vault, id)?.object, id),
        }
    };
    let new_directory = |id: &ObjectId| directory(objects.get(id)?, id);
    let mut delta: i128 = 0;
    let mut stack = vec![Step::Pair(base.root, root)];
    while let Some(step) = stack.pop() {
        let counted = match step {
            Step::Pair(old, new) if old == new => Ok(()),
            Step::Pair(old, new) => pair(
                base_directory(&old)?.entries,
                new_directory(&new)?.entries,
                &mut delta,
                &mut stack,
            ),
            Step::Added(id) => new_directory(&id)?
                .entries
                .iter()
                .try_for_each(|entry| count(entry, 1, &mut delta, &mut stack)),
            Step::Removed(id) => base_directory(&id)?
                .entries
                .iter()
                .try_for_each(|entry| count(entry, -1, &mut delta, &mut stack)),
        };
        if counted.is_err() {
            return Ok(None);
        }
    }
    Ok(u64::try_from(i128::from(base.size) + delta).ok())
}

/// Compares the entries of two directories at the same path (both sorted by name, as they
/// are stored): an entry whose object is unchanged is skipped; two directories are compared
/// in turn; anything else is removed from one side and added from the other.
fn pair(
    old: Vec<DirEntryObject>,
    new: Vec<DirEntryObject>,
    delta: &mut i128,
    stack: &mut Vec<Step>,
) -> Result<(), HardLink> {
    let mut old = old.into_iter().peekable();
    let mut new = new.into_iter().peekable();
    loop {
        let order = match (old.peek(), new.peek()) {
            (None, None) => return Ok(()),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(o), Some(n)) => o.name.cmp(&n.name),
        };
        match order {
            Ordering::Less => count(&old.next().expect("peeked"), -1, delta, stack)?,
            Ordering::Greater => count(&new.next().expect("peeked"), 1, delta, stack)?,
            Ordering::Equal => {
                let (o, n) = (old.next().expect("peeked"), new.next().expect("peeked"));
                let same_kind = o.record.kind == n.record.kind;
                match (o.object, n.object) {
                    (Some(a), Some(b)) if same_kind && a == b => {}
                    (Some(a), Some(b)) if same_kind && n.record.kind == InodeKind::Directory => {
                        stack.push(Step::Pair(a, b));
                    }
                    _ => {
                        count(&o, -1, delta, stack)?;
                        count(&n, 1, delta, stack)?;
                    }
                }
            }
        }
    }
}

/// Counts one entry found on one side only (`sign` 1 for the new tree, -1 for the base): a
/// file's size, or a directory's whole subtree (pushed to be listed).
fn count(
    entry: &DirEntryObject,
    sign: i128,
    delta: &mut i128,
    stack: &mut Vec<Step>,
) -> Result<(), HardLink> {
    match entry.record.kind {
        InodeKind::File if entry.record.nlink > 1 => return Err(HardLink),
        InodeKind::File => *delta += sign * i128::from(entry.record.size),
        InodeKind::Directory => stack.extend(entry.object.map(|id| match sign {
            1 => Step::Added(id),
            _ => Step::Removed(id),
        })),
        _ => {}
    }
    Ok(())
}

fn directory(object: Object, id: &ObjectId) -> Result<DirectoryObject, VaultError> {
    match object {
        Object::Directory(dir) => Ok(dir),
        _ => Err(VaultError::Damaged(format!("object {id}: not a directory"))),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::blob::RemoteStore;
    use crate::format::catalog::Origin;
    use crate::snapshot::{DeleteMode, Snapshots};
    use crate::testing::{close, lookup, mkdir, new_store, snapshots_of, write_file};
    use crate::vault::tests::{Shared, TEST_KDF};
    use crate::vault::{Secret, backup, init};

    fn root(snapshots: &Snapshots, name: &str) -> ObjectId {
        snapshots.get(name).expect("snapshot").root
    }

    /// A new share, its snapshots and their objects, and an empty vault in memory.
    fn share_and_vault(
        tmp: &std::path::Path,
    ) -> (Arc<crate::live::LiveFs>, Snapshots, Arc<TreeObjects>, Vault) {
        let (_store, live) = new_store(tmp, "store");
        let snapshots = snapshots_of(&live);
        let objects = snapshots.objects().clone();
        let source = Shared(Arc::new(RemoteStore::in_memory()));
        init::init(&source, &Secret::None, TEST_KDF).expect("init");
        let vault = Vault::open_backend(Box::new(source), &Secret::None).expect("open");
        (live, snapshots, objects, vault)
    }

    /// The diff gives what the whole walk gives, change after change, and reads neither
    /// unchanged subtrees nor (for a hard link) guesses.
    #[test]
    fn the_size_from_the_previous_backup_is_the_size_of_the_whole_tree() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (live, snapshots, objects, vault) = share_and_vault(tmp.path());
        for d in 0..5 {
            mkdir(&live, &format!("d{d}"));
            mkdir(&live, &format!("d{d}/sub"));
            for f in 0..5 {
                let data = vec![d as u8; 1000 * (f + 1)];
                write_file(&live, &format!("d{d}/sub/f{f}"), &data);
            }
        }
        type Change = Box<dyn Fn(&crate::live::LiveFs)>;
        let at = |live: &crate::live::LiveFs, path: &str| lookup(live, path).expect(path).ino;
        let changes: Vec<(&str, bool, Change)> = vec![
            (
                "a file grows",
                true,
                Box::new(|live| {
                    write_file(live, "d1/sub/f2", &[7; 50_000]);
                }),
            ),
            (
                "a tree is added",
                true,
                Box::new(|live| {
                    mkdir(live, "new");
                    mkdir(live, "new/deeper");
                    write_file(live, "new/deeper/a", &[1; 12_345]);
                    write_file(live, "new/b", &[2; 777]);
                }),
            ),
            (
                "a tree is removed",
                true,
                Box::new(move |live| {
                    let sub = at(live, "d2/sub");
                    for f in 0..5 {
                        live.unlink(sub, format!("f{f}").as_bytes())
                            .expect("unlink");
                    }
                    live.rmdir(at(live, "d2"), b"sub").expect("rmdir");
                }),
            ),
            (
                "a file becomes a directory",
                true,
                Box::new(move |live| {
                    live.unlink(at(live, "d3/sub"), b"f0").expect("unlink");
                    mkdir(live, "d3/sub/f0");
                    write_file(live, "d3/sub/f0/inside", &[3; 4096]);
                }),
            ),
            (
                "a hard link is added",
                false,
                Box::new(move |live| {
                    live.link(at(live, "d4/sub/f4"), at(live, "d0"), b"again")
                        .expect("link");
                }),
            ),
            (
                "a hard link is removed",
                false,
                Box::new(move |live| {
                    live.unlink(at(live, "d0"), b"again").expect("unlink");
                }),
            ),
            (
                "after the links, a file shrinks",
                true,
                Box::new(|live| {
                    write_file(live, "d4/sub/f1", b"short");
                }),
            ),
        ];
        snapshots.create("s0", Origin::Manual).expect("snapshot");
        let share = live.share_id().expect("share id");
        let mut vault = vault;
        backup::backup(
            &mut vault,
            &snapshots,
            "s0",
            share,
            &crate::progress::Progress::new(),
        )
        .expect("backup");
        let mut previous = "s0".to_owned();
        for (n, (what, by_diff, change)) in changes.iter().enumerate() {
            change(&live);
            let name = format!("s{}", n + 1);
            snapshots.create(&name, Origin::Manual).expect("snapshot");
            let base = Base {
                root: root(&snapshots, &previous),
                size: whole_tree_size(&objects, root(&snapshots, &previous)).expect("size"),
            };
            let whole = whole_tree_size(&objects, root(&snapshots, &name)).expect("size");
            let diffed = size_from(&vault, &objects, root(&snapshots, &name), base).expect("diff");
            match by_diff {
                true => assert_eq!(diffed, Some(whole), "{what}"),
                false => assert_eq!(diffed, None, "{what}: a hard link ends the diff"),
            }
            let report = backup::backup(
                &mut vault,
                &snapshots,
                &name,
                share,
                &crate::progress::Progress::new(),
            )
            .expect("backup");
            assert_eq!(report.size, whole, "{what}: the backup's size");
            previous = name;
        }
        drop(snapshots);
        close(live);
    }

    /// A base whose snapshot is gone from the share (deleted and collected) is read from the
    /// vault.
    #[test]
    fn a_base_no_longer_in_the_share_is_read_from_the_vault() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (live, snapshots, objects, mut vault) = share_and_vault(tmp.path());
        mkdir(&live, "d");
        write_file(&live, "d/f", &[1; 10_000]);
        write_file(&live, "top", &[2; 3_000]);
        snapshots.create("old", Origin::Manual).expect("snapshot");
        let share = live.share_id().expect("share id");
        let old = backup::backup(
            &mut vault,
            &snapshots,
            "old",
            share,
            &crate::progress::Progress::new(),
        )
        .expect("backup");
        let old_root = root(&snapshots, "old");
        write_file(&live, "d/f", &[3; 20_000]);
        write_file(&live, "d/g", &[4; 5_000]);
        snapshots.create("new", Origin::Manual).expect("snapshot");
        snapshots.delete("old", DeleteMode::Now).expect("delete");
        crate::gc::collect(&snapshots, &crate::progress::Progress::new()).expect("gc");
        assert!(
            objects.get(&old_root).is_err(),
            "the old tree left the share"
        );

        let new_root = root(&snapshots, "new");
        let base = Base {
            root: old_root,
            size: old.size,
        };
        assert_eq!(
            size_from(&vault, &objects, new_root, base).expect("diff"),
            Some(whole_tree_size(&objects, new_root).expect("size"))
        );
        assert_eq!(old.size, 13_000);
        drop(snapshots);
        close(live);
    }
}
