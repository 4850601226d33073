//! Reading snapshot trees by path, shared by diff, log and the history view: a tree's root,
//! resolving a path in it, and directory objects decoded through a small cache.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::HistoryError;
use crate::format::catalog::SnapshotRecord;
use crate::format::inode::{InodeKind, InodeRecord};
use crate::format::object::{DirEntryObject, DirectoryObject, Object, ObjectId};
use crate::id::InodeNo;
use crate::live::LiveFs;
use crate::tree_objects::TreeObjects;

/// Directory entries kept decoded by one cache. Bounded by entries rather than objects because
/// one directory may hold a million names while most hold a few.
const CACHED_ENTRIES: usize = 1 << 16;

/// The root of a tree of snapshot objects: its directory object and the root's attributes
/// (which no directory entry holds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    pub root: ObjectId,
    pub record: InodeRecord,
}

impl Tree {
    /// The tree of a snapshot. Its root carries the owner and permissions the catalog recorded.
    pub fn of_snapshot(record: &SnapshotRecord) -> Tree {
        Tree {
            root: record.root,
            record: record.root_record(),
        }
    }

    /// The live share as it is now, frozen without recording a snapshot. The freeze is
    /// incremental (cheap when little changed since the last one); the objects it writes stay
    /// while the inodes remember them (gc marks frozen objects), then are garbage for gc
    /// unless a snapshot names them.
    pub fn of_live(live: &LiveFs, objects: &TreeObjects) -> Result<Tree, HistoryError> {
        let frozen = live.freeze(objects)?;
        Ok(Tree {
            root: frozen.root,
            record: frozen.root_record,
        })
    }

    /// The root as a directory entry, so that the root and every other path are handled alike.
    /// Its name is empty; its link id is the root's inode number, as snapshot inodes expect.
    pub(crate) fn root_entry(&self) -> DirEntryObject {
        DirEntryObject {
            name: Vec::new(),
            link_id: InodeNo::ROOT.0,
            record: self.record.clone(),
            object: Some(self.root),
            xattrs: Vec::new(),
        }
    }
}

/// Directory objects by id, decoded once. Objects are immutable, so any entry may be dropped at
/// any time; when the bound is reached the cache simply starts again.
#[derive(Default)]
pub(crate) struct DirCache {
    cached: Mutex<Cached>,
    /// Directory objects read from the store (cache misses), for tests of what an operation
    /// costs.
    decoded: AtomicU64,
}

#[derive(Default)]
struct Cached {
    directories: HashMap<ObjectId, Arc<DirectoryObject>>,
    entries: usize,
}

impl DirCache {
    /// The directory an entry names.
    pub fn children(
        &self,
        objects: &TreeObjects,
        entry: &DirEntryObject,
    ) -> Result<Arc<DirectoryObject>, HistoryError> {
        let id = entry.object.ok_or(HistoryError::MissingObject)?;
        if let Some(directory) = self.cached.lock().directories.get(&id) {
            return Ok(directory.clone());
        }
        self.decoded.fetch_add(1, Ordering::Relaxed);
        let Object::Directory(directory) = objects.get(&id)? else {
            return Err(HistoryError::NotADirectory(id));
        };
        let directory = Arc::new(directory);
        let mut cached = self.cached.lock();
        if cached.entries + directory.entries.len() > CACHED_ENTRIES {
            *cached = Cached::default();
        }
        let Cached {
            directories,
            entries,
        } = &mut *cached;
        // Another thread may have decoded it meanwhile: count its entries once.
        if let Entry::Vacant(slot) = directories.entry(id) {
            *entries += directory.entries.len();
            slot.insert(directory.clone());
        }
        Ok(directory)
    }

    #[cfg(test)]
    pub fn decoded(&self) -> u64 {
        self.decoded.load(Ordering::Relaxed)
    }
}

/// The entry at `names` (root first) in `tree`, or `None` if the path does not exist there
/// (including when a component is not a directory). One lookup per component; only directories
/// on the path are decoded.
pub(crate) fn resolve(
    objects: &TreeObjects,
    cache: &DirCache,
    tree: &Tree,
    names: &[&[u8]],
) -> Result<Option<DirEntryObject>, HistoryError> {
    resolve_where(objects, cache, tree, names, &|_| true)
}

/// [`resolve`] for a walker who may enter only the directories `may_search` accepts: `None`
/// also when the root or a directory above the entry refuses (the entry itself need not).
pub(crate) fn resolve_where(
    objects: &TreeObjects,
    cache: &DirCache,
    tree: &Tree,
    names: &[&[u8]],
    may_search: &dyn Fn(&InodeRecord) -> bool,
) -> Result<Option<DirEntryObject>, HistoryError> {
    let root = tree.root_entry();
    // The directory holding the entry found so far and its index there (`None`: the root).
    let mut found: Option<(Arc<DirectoryObject>, usize)> = None;
    for name in names {
        let entry = found
            .as_ref()
            .map_or(&root, |(directory, at)| &directory.entries[*at]);
        if entry.record.kind != InodeKind::Directory || !may_search(&entry.record) {
            return Ok(None);
        }
        let directory = cache.children(objects, entry)?;
        match directory
            .entries
            .binary_search_by(|e| e.name.as_slice().cmp(name))
        {
            Ok(at) => found = Some((directory, at)),
            Err(_) => return Ok(None),
        }
    }
    Ok(Some(found.map_or(root, |(directory, at)| {
        directory.entries[at].clone()
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::fixture::Fixture;

    #[test]
    fn resolves_paths_and_reports_absence() {
        let f = Fixture::new();
        f.mkdir("/docs");
        f.write("/docs/report.txt", b"v1");
        f.write("/file", b"x");
        let tree = Tree::of_snapshot(&f.snapshot("s"));
        let cache = DirCache::default();
        let find = |names: &[&[u8]]| resolve(f.objects(), &cache, &tree, names).unwrap();
        let root = find(&[]).expect("the root");
        assert_eq!(root.record.kind, InodeKind::Directory);
        assert_eq!(root.object, Some(tree.root));
        let report = find(&[b"docs", b"report.txt"]).expect("the report");
        assert_eq!(
            (report.record.kind, report.record.size),
            (InodeKind::File, 2)
        );
        assert!(find(&[b"docs", b"missing"]).is_none());
        assert!(
            find(&[b"file", b"below"]).is_none(),
            "a file has no entries"
        );
        let before = cache.decoded();
        find(&[b"docs", b"report.txt"]);
        assert_eq!(cache.decoded(), before, "directories come from the cache");
    }
}
