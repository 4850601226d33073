//! The changes between two trees, found by comparing object ids.
//!
//! Both trees are walked together from the root (or from one path), the sorted entry lists of
//! each pair of directories merged like two sorted files. An entry whose object id and record
//! are the same on both sides is an identical subtree and is skipped without being read, so the
//! work is one directory decode, and one merge of its entries, per changed directory on each
//! side (plus the directories on the way to `path`): it grows with the change, not with the
//! share. No file data is read: files are compared by object id.
//!
//! Users choose how deep a tree is, so the walk does not recurse: it keeps its own stack of the
//! directories being merged, and one path buffer that it extends and cuts back as it moves, so
//! its memory follows the depth and its time the entries compared, never their depth squared.
//!
//! What is reported:
//! - an added or removed path once: an added or removed directory is one change, not one per
//!   entry below it (and likewise a path whose kind changed, [`Change::TypeChanged`]);
//! - a path of the same kind on both sides as [`Change::Modified`] when its content, mode, owner,
//!   extended attributes or (files and symlinks) mtime differ. A directory is reported for its
//!   own attributes only; changes of its entries appear as changes of the entries themselves;
//! - hard links are compared by path like any other entry.
//!
//! Changes come out in tree order: sorted by path component by component, a directory just
//! before what is below it (`/a`, `/a/x`, `/a-b`). Paths are rendered by
//! [`escape_path`](super::path::escape_path).

use std::cmp::Ordering;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::HistoryError;
use super::path::{canonical, components, escape_path};
use super::tree::{DirCache, Tree, resolve};
use crate::format::inode::InodeKind;
use crate::format::object::{DirEntryObject, DirectoryObject};
use crate::tree_objects::TreeObjects;

/// One change between the old and the new tree, at one path (share-relative, starting with
/// `/`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// The path exists only in the new tree.
    Added { path: String, after: Stat },
    /// The path exists only in the old tree.
    Removed { path: String, before: Stat },
    /// The same kind on both sides; `what` lists what differs and is never empty.
    Modified {
        path: String,
        before: Stat,
        after: Stat,
        what: Vec<Difference>,
    },
    /// The path names another kind of inode (a file became a directory, ...).
    TypeChanged {
        path: String,
        before: Stat,
        after: Stat,
    },
}

impl Change {
    pub fn path(&self) -> &str {
        match self {
            Change::Added { path, .. }
            | Change::Removed { path, .. }
            | Change::Modified { path, .. }
            | Change::TypeChanged { path, .. } => path,
        }
    }
}

/// What a path is on one side of a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    pub kind: InodeKind,
    pub size: u64,
}

impl Stat {
    fn of(entry: &DirEntryObject) -> Stat {
        Stat {
            kind: entry.record.kind,
            size: entry.record.size,
        }
    }
}

/// One aspect of a path that differs between two entries of the same kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Difference {
    /// A file's data (its object id), a symlink's target, a device's number; for a directory,
    /// its entries (anything below it).
    Content,
    /// The permission bits.
    Mode,
    /// The owning user or group.
    Owner,
    Xattrs,
    /// The modification time; compared for files and symlinks only (a directory's follows its
    /// entries, which are reported themselves).
    Mtime,
}

/// What differs between two entries of the same kind, in the order of [`Difference`]. The one
/// definition of "changed" for diff and log: log starts a new version exactly where this is not
/// empty.
pub(crate) fn differences(old: &DirEntryObject, new: &DirEntryObject) -> Vec<Difference> {
    let (a, b) = (&old.record, &new.record);
    let content = match a.kind {
        InodeKind::File | InodeKind::Directory => old.object != new.object,
        InodeKind::Symlink => a.symlink_target != b.symlink_target,
        InodeKind::CharDevice | InodeKind::BlockDevice => a.rdev != b.rdev,
        InodeKind::Fifo | InodeKind::Socket => false,
    };
    let mtime = matches!(a.kind, InodeKind::File | InodeKind::Symlink) && a.mtime != b.mtime;
    [
        (Difference::Content, content),
        (Difference::Mode, a.perm != b.perm),
        (Difference::Owner, (a.uid, a.gid) != (b.uid, b.gid)),
        (Difference::Xattrs, old.xattrs != new.xattrs),
        (Difference::Mtime, mtime),
    ]
    .into_iter()
    .filter_map(|(difference, differs)| differs.then_some(difference))
    .collect()
}

/// The changes from `old` to `new`, under `path` only if given (share-relative,
/// `/`-separated; it may exist on one side only, or on neither, which gives no changes).
pub fn diff(
    objects: &TreeObjects,
    old: &Tree,
    new: &Tree,
    path: Option<&[u8]>,
) -> Result<Vec<Change>, HistoryError> {
    diff_with(objects, &DirCache::default(), old, new, path)
}

/// [`diff`] with a given cache (whose decode count the tests read).
fn diff_with(
    objects: &TreeObjects,
    cache: &DirCache,
    old: &Tree,
    new: &Tree,
    path: Option<&[u8]>,
) -> Result<Vec<Change>, HistoryError> {
    let names = components(path.unwrap_or(b"/"))?;
    let mut walk = Walk {
        objects,
        cache,
        changes: Vec::new(),
        path: canonical(&names),
        merges: Vec::new(),
    };
    let old_entry = resolve(objects, cache, old, &names)?;
    let new_entry = resolve(objects, cache, new, &names)?;
    walk.compare(old_entry.as_ref(), new_entry.as_ref())?;
    walk.run()?;
    Ok(walk.changes)
}

/// The state of a diff: the changes found so far, and the directories being merged.
///
/// The walk is depth first without recursion, since users choose how deep a tree is: `merges`
/// holds one [`Merge`] per directory between the top and the entry being compared, and `path`
/// is that entry's path, grown and cut back in place as the walk moves, so that the work is
/// linear in the entries compared whatever their depth.
struct Walk<'a> {
    objects: &'a TreeObjects,
    cache: &'a DirCache,
    changes: Vec<Change>,
    /// The canonical path of the entry being compared (of the last one, between entries).
    path: Vec<u8>,
    merges: Vec<Merge>,
}

/// Two versions of a directory whose entries are being compared, in name order.
struct Merge {
    old: Arc<DirectoryObject>,
    new: Arc<DirectoryObject>,
    /// The next entry of each side not yet compared.
    next_old: usize,
    next_new: usize,
    /// The length of the directory's own path in [`Walk::path`].
    path_len: usize,
}

impl Merge {
    /// The next name on either side: its index on each side (on one side at least).
    fn next(&mut self) -> Option<(Option<usize>, Option<usize>)> {
        let old = self.old.entries.get(self.next_old);
        let new = self.new.entries.get(self.next_new);
        let order = match (old, new) {
            (None, None) => return None,
            (Some(o), Some(n)) => o.name.cmp(&n.name),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
        };
        let old = (order != Ordering::Greater).then_some(self.next_old);
        let new = (order != Ordering::Less).then_some(self.next_new);
        self.next_old += usize::from(old.is_some());
        self.next_new += usize::from(new.is_some());
        Some((old, new))
    }
}

impl Walk<'_> {
    /// Compares the entries of every directory [`Walk::compare`] opened, depth first, in name
    /// order: the changes come out in tree order.
    fn run(&mut self) -> Result<(), HistoryError> {
        while let Some(merge) = self.merges.last_mut() {
            let Some((old_at, new_at)) = merge.next() else {
                self.merges.pop();
                continue;
            };
            let (old_dir, new_dir, path_len) =
                (merge.old.clone(), merge.new.clone(), merge.path_len);
            let old = old_at.and_then(|at| old_dir.entries.get(at));
            let new = new_at.and_then(|at| new_dir.entries.get(at));
            if let (Some(o), Some(n)) = (old, new)
                && o.object == n.object
                && o.record == n.record
                && o.xattrs == n.xattrs
            {
                // The same subtree: nothing below can differ.
                continue;
            }
            let Some(name) = old.or(new).map(|entry| entry.name.as_slice()) else {
                continue;
            };
            self.path.truncate(path_len);
            if self.path != b"/" {
                self.path.push(b'/');
            }
            self.path.extend_from_slice(name);
            self.compare(old, new)?;
        }
        Ok(())
    }

    /// Reports the changes at [`Walk::path`] itself, given its entry on each side, and opens a
    /// merge of its entries if it is a directory whose entries differ.
    fn compare(
        &mut self,
        old: Option<&DirEntryObject>,
        new: Option<&DirEntryObject>,
    ) -> Result<(), HistoryError> {
        // Rendered only for a change: the path may be long, and most entries compared are not.
        let path = || escape_path(&self.path);
        let (old, new) = match (old, new) {
            (None, None) => return Ok(()),
            (Some(old), None) => {
                self.changes.push(Change::Removed {
                    path: path(),
                    before: Stat::of(old),
                });
                return Ok(());
            }
            (None, Some(new)) => {
                self.changes.push(Change::Added {
                    path: path(),
                    after: Stat::of(new),
                });
                return Ok(());
            }
            (Some(old), Some(new)) => (old, new),
        };
        if old.record.kind != new.record.kind {
            self.changes.push(Change::TypeChanged {
                path: path(),
                before: Stat::of(old),
                after: Stat::of(new),
            });
            return Ok(());
        }
        let mut what = differences(old, new);
        let is_directory = old.record.kind == InodeKind::Directory;
        let entries_differ = is_directory && what.contains(&Difference::Content);
        if is_directory {
            what.retain(|difference| *difference != Difference::Content);
        }
        if !what.is_empty() {
            self.changes.push(Change::Modified {
                path: path(),
                before: Stat::of(old),
                after: Stat::of(new),
                what,
            });
        }
        if entries_differ {
            self.merges.push(Merge {
                old: self.cache.children(self.objects, old)?,
                new: self.cache.children(self.objects, new)?,
                next_old: 0,
                next_new: 0,
                path_len: self.path.len(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::fixture::Fixture;

    const DIRECTORY: Stat = Stat {
        kind: InodeKind::Directory,
        size: 0,
    };

    fn file(size: u64) -> Stat {
        Stat {
            kind: InodeKind::File,
            size,
        }
    }

    fn modified(path: &str, size: (u64, u64), what: &[Difference]) -> Change {
        Change::Modified {
            path: path.into(),
            before: file(size.0),
            after: file(size.1),
            what: what.to_vec(),
        }
    }

    #[test]
    fn reports_every_kind_of_change() {
        let f = Fixture::new();
        f.mkdir("/docs");
        f.write("/docs/report.txt", b"v1");
        f.write("/docs/mode", b"m");
        f.write("/docs/owner", b"o");
        f.write("/docs/tagged", b"t");
        f.write("/docs/touched", b"t");
        f.write("/gone", b"bye");
        f.mkdir("/olddir");
        f.write("/olddir/inner", b"i");
        f.write("/becomes-dir", b"f");
        f.symlink("/link", "target-a");
        f.mkdir("/private");
        let old = Tree::of_snapshot(&f.snapshot("old"));
        f.write("/docs/report.txt", b"version 2");
        f.chmod("/docs/mode", 0o600);
        f.chown("/docs/owner", 7, 8);
        f.setxattr("/docs/tagged", "user.tag", b"blue");
        f.set_mtime("/docs/touched", 12345);
        f.unlink("/gone");
        f.unlink("/olddir/inner");
        f.rmdir("/olddir");
        f.mkdir("/newdir");
        f.write("/newdir/a", b"a");
        f.write("/newdir/b", b"b");
        f.unlink("/becomes-dir");
        f.mkdir("/becomes-dir");
        f.write("/becomes-dir/below", b"not reported");
        f.unlink("/link");
        f.symlink("/link", "target-b");
        f.chmod("/private", 0o700);
        let new = Tree::of_snapshot(&f.snapshot("new"));

        let changes = diff(f.objects(), &old, &new, None).unwrap();
        let paths: Vec<&str> = changes.iter().map(Change::path).collect();
        assert_eq!(
            paths,
            [
                "/becomes-dir",
                "/docs/mode",
                "/docs/owner",
                "/docs/report.txt",
                "/docs/tagged",
                "/docs/touched",
                "/gone",
                "/link",
                "/newdir",
                "/olddir",
                "/private",
            ]
        );
        let at = |path: &str| changes.iter().find(|c| c.path() == path).unwrap();
        assert_eq!(
            *at("/becomes-dir"),
            Change::TypeChanged {
                path: "/becomes-dir".into(),
                before: file(1),
                after: DIRECTORY
            }
        );
        assert_eq!(
            *at("/docs/report.txt"),
            modified(
                "/docs/report.txt",
                (2, 9),
                &[Difference::Content, Difference::Mtime]
            )
        );
        assert_eq!(
            *at("/docs/mode"),
            modified("/docs/mode", (1, 1), &[Difference::Mode])
        );
        assert_eq!(
            *at("/docs/owner"),
            modified("/docs/owner", (1, 1), &[Difference::Owner])
        );
        assert_eq!(
            *at("/docs/tagged"),
            modified("/docs/tagged", (1, 1), &[Difference::Xattrs])
        );
        assert_eq!(
            *at("/docs/touched"),
            modified("/docs/touched", (1, 1), &[Difference::Mtime])
        );
        assert_eq!(
            *at("/gone"),
            Change::Removed {
                path: "/gone".into(),
                before: file(3)
            }
        );
        let Change::Modified { what, before, .. } = at("/link") else {
            panic!("{:?}", at("/link"));
        };
        assert_eq!(before.kind, InodeKind::Symlink);
        assert!(what.contains(&Difference::Content), "{what:?}");
        assert_eq!(
            *at("/newdir"),
            Change::Added {
                path: "/newdir".into(),
                after: DIRECTORY
            }
        );
        assert_eq!(
            *at("/olddir"),
            Change::Removed {
                path: "/olddir".into(),
                before: DIRECTORY
            }
        );
        let Change::Modified { what, .. } = at("/private") else {
            panic!("{:?}", at("/private"));
        };
        assert_eq!(
            *what,
            [Difference::Mode],
            "a directory reports its own attributes only"
        );
        assert!(
            diff(f.objects(), &old, &old, None).unwrap().is_empty(),
            "a tree equals itself"
        );
    }

    #[test]
    fn a_path_limits_the_diff_and_may_exist_on_one_side() {
        let f = Fixture::new();
        f.mkdir("/a");
        f.write("/a/x", b"1");
        f.write("/b", b"1");
        let old = Tree::of_snapshot(&f.snapshot("old"));
        f.write("/a/x", b"22");
        f.write("/b", b"22");
        f.mkdir("/c");
        f.write("/c/y", b"y");
        let new = Tree::of_snapshot(&f.snapshot("new"));
        let under = |path: &str| {
            diff(f.objects(), &old, &new, Some(path.as_bytes()))
                .unwrap()
                .iter()
                .map(|c| c.path().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(under("a"), ["/a/x"]);
        assert_eq!(under("/a/x"), ["/a/x"]);
        assert_eq!(under("/c/y"), ["/c/y"], "only in the new tree");
        assert_eq!(under("/c"), ["/c"]);
        assert!(under("/nowhere").is_empty());
        assert_eq!(under("/"), ["/a/x", "/b", "/c"]);
        let reversed = diff(f.objects(), &new, &old, Some(b"/c/y")).unwrap();
        assert!(matches!(&reversed[..], [Change::Removed { .. }]));
        assert!(matches!(
            diff(f.objects(), &old, &new, Some(b"/a/..")),
            Err(HistoryError::InvalidPath { .. })
        ));
    }

    #[test]
    fn changes_are_in_tree_order() {
        let f = Fixture::new();
        let old = Tree::of_snapshot(&f.snapshot("empty"));
        f.mkdir("/a");
        f.mkdir("/a-b");
        f.write("/a-b/z", b"");
        f.write("/A", b"");
        let new = Tree::of_snapshot(&f.snapshot("new"));
        let paths: Vec<String> = diff(f.objects(), &old, &new, None)
            .unwrap()
            .iter()
            .map(|c| c.path().to_owned())
            .collect();
        assert_eq!(paths, ["/A", "/a", "/a-b"]);
        f.write("/a/x", b"");
        f.write("/a-b/z", b"zz");
        let newer = Tree::of_snapshot(&f.snapshot("newer"));
        let paths: Vec<String> = diff(f.objects(), &new, &newer, None)
            .unwrap()
            .iter()
            .map(|c| c.path().to_owned())
            .collect();
        assert_eq!(paths, ["/a/x", "/a-b/z"], "component by component");
    }

    #[test]
    fn the_live_share_is_a_tree_too() {
        let f = Fixture::new();
        f.write("/f", b"1");
        let snap = Tree::of_snapshot(&f.snapshot("s"));
        assert!(
            diff(
                f.objects(),
                &snap,
                &Tree::of_live(&f.live, f.objects()).unwrap(),
                None
            )
            .unwrap()
            .is_empty()
        );
        f.write("/f", b"22");
        let live = Tree::of_live(&f.live, f.objects()).unwrap();
        let changes = diff(f.objects(), &snap, &live, None).unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].path(), "/f");
        assert_eq!(f.snapshots.list().len(), 1, "no snapshot was recorded");
    }

    #[test]
    fn unchanged_subtrees_are_never_decoded() {
        const FANOUT: usize = 8;
        let f = Fixture::new();
        for a in 0..FANOUT {
            f.mkdir(&format!("/d{a}"));
            for b in 0..FANOUT {
                f.mkdir(&format!("/d{a}/e{b}"));
                for c in 0..FANOUT {
                    f.write(&format!("/d{a}/e{b}/f{c}"), &[c as u8]);
                }
            }
        }
        let old = Tree::of_snapshot(&f.snapshot("old"));
        f.write("/d3/e5/f7", b"changed");
        let new = Tree::of_snapshot(&f.snapshot("new"));
        let cache = DirCache::default();
        let changes = diff_with(f.objects(), &cache, &old, &new, None).unwrap();
        assert_eq!(changes.len(), 1);
        // One directory per level on each side: root, d3, d3/e5.
        assert_eq!(
            cache.decoded(),
            2 * 3,
            "of {} directories",
            1 + FANOUT + FANOUT * FANOUT
        );
        let cache = DirCache::default();
        assert!(
            diff_with(f.objects(), &cache, &new, &new, None)
                .unwrap()
                .is_empty()
        );
        assert_eq!(cache.decoded(), 0, "an identical tree is not read at all");
        let cache = DirCache::default();
        assert!(
            diff_with(f.objects(), &cache, &old, &new, Some(b"/d0"))
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            cache.decoded(),
            2,
            "under an unchanged path: each root only"
        );
        f.write("/d0/e1/f2", b"changed too");
        let newer = Tree::of_snapshot(&f.snapshot("newer"));
        let cache = DirCache::default();
        let changes = diff_with(f.objects(), &cache, &old, &newer, None).unwrap();
        assert_eq!(changes.len(), 2);
        assert_eq!(
            cache.decoded(),
            2 * 5,
            "the work follows the changed directories: root, d0, d0/e1, d3, d3/e5"
        );
    }

    #[test]
    fn changes_serialise_with_escaped_paths() {
        let f = Fixture::new();
        let old = Tree::of_snapshot(&f.snapshot("old"));
        f.write("/caf\u{e9}", b"utf-8");
        let caller = crate::live::Caller { uid: 0, gid: 0 };
        let root = crate::id::InodeNo::ROOT;
        f.live.create(root, b"raw\xff", 0o644, caller).unwrap();
        let new = Tree::of_snapshot(&f.snapshot("new"));
        let changes = diff(f.objects(), &old, &new, None).unwrap();
        let paths: Vec<&str> = changes.iter().map(Change::path).collect();
        assert_eq!(paths, ["/caf\u{e9}", "/raw\\xff"]);
        let json = serde_json::to_string(&changes[1]).unwrap();
        assert_eq!(
            json,
            r#"{"change":"added","path":"/raw\\xff","after":{"kind":"file","size":0}}"#
        );
        let modified = modified("/m", (1, 2), &[Difference::Content, Difference::Mtime]);
        let json = serde_json::to_string(&modified).unwrap();
        assert!(json.contains(r#""what":["content","mtime"]"#), "{json}");
        for change in changes.into_iter().chain([modified]) {
            let json = serde_json::to_string(&change).unwrap();
            assert_eq!(serde_json::from_str::<Change>(&json).unwrap(), change);
        }
    }

    #[test]
    fn a_deep_chain_diffs_without_recursion() {
        use crate::testing::{DEEP, chain, on_small_stack, write_in};
        let f = Fixture::new();
        let empty = Tree::of_snapshot(&f.snapshot("empty"));
        let bottom = chain(&f.live, crate::id::InodeNo::ROOT, b"dir", DEEP);
        write_in(&f.live, bottom, b"leaf", b"v1");
        let old = Tree::of_snapshot(&f.snapshot("old"));
        write_in(&f.live, bottom, b"leaf", b"v22");
        write_in(&f.live, bottom, b"new", b"");
        let new = Tree::of_snapshot(&f.snapshot("new"));
        let deep = "/dir".repeat(DEEP);

        let changes = on_small_stack(|| diff(f.objects(), &old, &new, None)).expect("diff");
        let paths: Vec<&str> = changes.iter().map(Change::path).collect();
        assert_eq!(paths, [format!("{deep}/leaf"), format!("{deep}/new")]);
        let added = on_small_stack(|| diff(f.objects(), &empty, &new, None)).expect("diff");
        let paths: Vec<&str> = added.iter().map(Change::path).collect();
        assert_eq!(paths, ["/dir"], "an added tree is one change, however deep");
        let under = on_small_stack(|| diff(f.objects(), &old, &new, Some(deep.as_bytes())))
            .expect("diff under a deep path");
        assert_eq!(under.len(), 2);
    }
}
