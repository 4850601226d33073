//! The versions of one path across snapshots.
//!
//! The path is resolved in every snapshot, in creation order: one directory lookup per path
//! component per snapshot, through a cache of decoded directories keyed by object id, so the
//! components that did not change between snapshots are not read again. Consecutive snapshots
//! in which the path is the same (nothing [`differences`] reports) form one version. A snapshot
//! without the path ends a version; if the path comes back later, that is a new version. Only
//! snapshots are consulted, so a path deleted from the live share still has its history, and no
//! file data is read.

use serde::{Deserialize, Serialize};

use super::HistoryError;
use super::diff::differences;
use super::path::components;
use super::tree::{DirCache, Tree, resolve_where};
use crate::format::catalog::SnapshotRecord;
use crate::format::inode::{InodeKind, InodeRecord};
use crate::format::object::DirEntryObject;
use crate::object_store::ObjectStore;

/// One distinct version of a path: what a run of consecutive snapshots holds there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// The first snapshot of the run; `.snapshots/.history` lists the version under this name.
    pub snapshot: String,
    /// When `snapshot` was created, in seconds since the Unix epoch.
    pub time: i64,
    pub kind: InodeKind,
    pub size: u64,
    /// What identifies the content: the hex id of a file's or directory's object, the blake3
    /// hash (hex) of a symlink's target; `None` for other kinds.
    pub hash: Option<String>,
    /// The permission bits.
    pub mode: u16,
    /// The modification time, in seconds since the Unix epoch.
    pub mtime: i64,
    /// The last snapshot of the run.
    pub last_snapshot: String,
}

/// The distinct versions of `path` (share-relative, `/`-separated) in `snapshots`, oldest
/// first. The snapshots may come in any order: they are taken in the order they were created.
pub fn log(
    objects: &ObjectStore,
    snapshots: &[(String, SnapshotRecord)],
    path: &[u8],
) -> Result<Vec<Version>, HistoryError> {
    let names = components(path)?;
    let runs = runs(objects, &DirCache::default(), snapshots, &names)?;
    Ok(runs.into_iter().map(|run| run.version).collect())
}

/// A version with what the history view needs to show it.
pub(crate) struct Run {
    pub version: Version,
    /// The first snapshot holding the version.
    pub first: SnapshotRecord,
    /// The number of the last snapshot holding it.
    pub last: u64,
    /// The path's entry in `first` (the root's, for the root).
    pub entry: DirEntryObject,
}

impl Run {
    fn new(name: &str, record: &SnapshotRecord, entry: DirEntryObject) -> Run {
        let hash = match entry.record.kind {
            InodeKind::File | InodeKind::Directory => entry.object.map(|id| id.to_hex()),
            InodeKind::Symlink => Some(
                blake3::hash(&entry.record.symlink_target)
                    .to_hex()
                    .to_string(),
            ),
            _ => None,
        };
        Run {
            version: Version {
                snapshot: name.to_owned(),
                time: record.created.secs,
                kind: entry.record.kind,
                size: entry.record.size,
                hash,
                mode: entry.record.perm,
                mtime: entry.record.mtime.secs,
                last_snapshot: name.to_owned(),
            },
            first: record.clone(),
            last: record.number,
            entry,
        }
    }
}

/// The versions of the path `names` (root first) in `snapshots`, through `cache`.
pub(crate) fn runs(
    objects: &ObjectStore,
    cache: &DirCache,
    snapshots: &[(String, SnapshotRecord)],
    names: &[&[u8]],
) -> Result<Vec<Run>, HistoryError> {
    runs_where(objects, cache, snapshots, names, &|_| true)
}

/// [`runs`] as seen by a walker who may enter only the directories `may_search` accepts: a
/// snapshot in which a directory above the path refuses counts as one without the path.
pub(crate) fn runs_where(
    objects: &ObjectStore,
    cache: &DirCache,
    snapshots: &[(String, SnapshotRecord)],
    names: &[&[u8]],
    may_search: &dyn Fn(&InodeRecord) -> bool,
) -> Result<Vec<Run>, HistoryError> {
    let mut ordered: Vec<&(String, SnapshotRecord)> = snapshots.iter().collect();
    ordered.sort_by_key(|(_, record)| record.number);
    let mut runs: Vec<Run> = Vec::new();
    // Whether the previous snapshot held the path, so that the last run may go on.
    let mut continues = false;
    for (name, record) in ordered {
        let tree = Tree::of_snapshot(record);
        let Some(entry) = resolve_where(objects, cache, &tree, names, may_search)? else {
            continues = false;
            continue;
        };
        match runs.last_mut() {
            Some(run)
                if continues
                    && run.entry.record.kind == entry.record.kind
                    && differences(&run.entry, &entry).is_empty() =>
            {
                run.last = record.number;
                run.version.last_snapshot.clone_from(name);
            }
            _ => runs.push(Run::new(name, record, entry)),
        }
        continues = true;
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::fixture::Fixture;

    fn names_of(versions: &[Version]) -> Vec<(&str, &str)> {
        versions
            .iter()
            .map(|v| (v.snapshot.as_str(), v.last_snapshot.as_str()))
            .collect()
    }

    #[test]
    fn collapses_unchanged_snapshots_and_splits_at_absence() {
        let f = Fixture::new();
        f.mkdir("/docs");
        f.write("/docs/report.txt", b"v1");
        let s1 = f.snapshot("s1");
        f.write("/other", b"something else changed");
        f.snapshot("s2");
        f.write("/docs/report.txt", b"version 2");
        f.snapshot("s3");
        f.chmod("/docs/report.txt", 0o600);
        f.snapshot("s4");
        f.unlink("/docs/report.txt");
        f.snapshot("s5");
        f.write("/docs/report.txt", b"version 2");
        f.chmod("/docs/report.txt", 0o600);
        f.snapshot("s6");
        f.snapshot("s7");
        f.unlink("/docs/report.txt");
        let path = b"/docs/report.txt";
        let versions = log(f.objects(), &f.snapshots.list(), path).unwrap();
        assert_eq!(
            names_of(&versions),
            [("s1", "s2"), ("s3", "s3"), ("s4", "s4"), ("s6", "s7")]
        );
        let first = &versions[0];
        assert_eq!(
            (first.kind, first.size, first.mode),
            (InodeKind::File, 2, 0o644)
        );
        assert_eq!(first.time, s1.created.secs);
        assert_eq!(versions[1].size, 9);
        assert_ne!(versions[0].hash, versions[1].hash);
        assert_eq!(versions[1].hash, versions[2].hash, "only the mode changed");
        assert_eq!(
            versions[2].hash, versions[3].hash,
            "recreated with the same data: still a new version after the gap"
        );
        assert_eq!(
            log(f.objects(), &f.snapshots.list(), b"docs/report.txt").unwrap(),
            versions
        );
    }

    #[test]
    fn snapshots_are_taken_in_creation_order() {
        let f = Fixture::new();
        f.write("/f", b"1");
        f.snapshot("zz-first");
        f.write("/f", b"22");
        f.snapshot("aa-second");
        let mut snapshots = f.snapshots.list();
        assert_eq!(snapshots[0].0, "aa-second", "the catalog lists by name");
        snapshots.reverse();
        let versions = log(f.objects(), &snapshots, b"/f").unwrap();
        assert_eq!(
            names_of(&versions),
            [("zz-first", "zz-first"), ("aa-second", "aa-second")]
        );
    }

    #[test]
    fn directories_symlinks_and_the_root() {
        let f = Fixture::new();
        f.mkdir("/d");
        f.symlink("/l", "target-a");
        f.snapshot("s1");
        f.write("/d/new", b"x");
        f.snapshot("s2");
        f.unlink("/l");
        f.symlink("/l", "target-b");
        f.snapshot("s3");
        let list = f.snapshots.list();
        let dir = log(f.objects(), &list, b"/d").unwrap();
        assert_eq!(
            names_of(&dir),
            [("s1", "s1"), ("s2", "s3")],
            "entries are content"
        );
        assert_eq!(dir[0].kind, InodeKind::Directory);
        let link = log(f.objects(), &list, b"/l").unwrap();
        assert_eq!(names_of(&link), [("s1", "s2"), ("s3", "s3")]);
        assert_eq!(
            link[0].hash.as_deref(),
            Some(blake3::hash(b"target-a").to_hex().as_str())
        );
        let root = log(f.objects(), &list, b"/").unwrap();
        assert_eq!(root.len(), 3);
        assert!(log(f.objects(), &list, b"/missing").unwrap().is_empty());
    }

    #[test]
    fn unchanged_components_are_read_once() {
        let f = Fixture::new();
        f.mkdir("/a");
        f.mkdir("/a/b");
        f.mkdir("/a/b/c");
        f.write("/a/b/c/file", b"x");
        const SNAPSHOTS: u64 = 6;
        for n in 0..SNAPSHOTS {
            // Elsewhere changes, so every snapshot has a new root.
            f.write("/elsewhere", &n.to_le_bytes());
            f.snapshot(&format!("s{n}"));
        }
        let cache = DirCache::default();
        let names: [&[u8]; 4] = [b"a", b"b", b"c", b"file"];
        let runs = runs(f.objects(), &cache, &f.snapshots.list(), &names).unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(
            cache.decoded(),
            SNAPSHOTS + 3,
            "each root, then a, b and c once"
        );
    }
}
