//! lookup and directory listing.

use super::error::{FsError, FsResult};
use super::namespace::check_name;
use super::{Attr, LiveFs, load};
use crate::format::inode::InodeKind;
use crate::id::InodeNo;

/// The most entries one `readdir` returns: more than a reply of the kernel's largest buffer
/// (1 MiB) holds of the shortest entries.
#[cfg(not(test))]
pub const READDIR_BATCH: usize = 1 << 15;
#[cfg(test)]
pub const READDIR_BATCH: usize = 4;

/// Fewest entries of a listing for the heap to be trimmed after it is freed (see
/// `DataWorkers::free_and_trim`).
const TRIM_AFTER: usize = 1 << 16;

/// One entry of a directory listing.
#[derive(Clone, Debug)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub ino: InodeNo,
    pub kind: InodeKind,
}

impl LiveFs {
    /// The inode `name` names in `parent`. In a directory not listed, the entry is read from the
    /// database and only the inode it names is loaded: looking up one name in a directory of a
    /// million does not bring the million into memory.
    pub fn lookup(&self, parent: InodeNo, name: &[u8]) -> FsResult<Attr> {
        check_name(name)?;
        {
            let tree = self.read_loaded(parent)?;
            tree.touch(parent);
            let child = if tree.is_listed(parent)? {
                Some(tree.lookup(parent, name)?)
            } else {
                let child = self.stored_entry(parent, name)?;
                tree.nodes.contains_key(&child).then_some(child)
            };
            if let Some(child) = child
                && !tree.over_budget()
            {
                return Ok(self.attr_of(child, tree.node(child)?));
            }
        }
        let mut tree = self.tree.write();
        tree.load(parent)?;
        let child = if tree.is_listed(parent)? {
            tree.lookup(parent, name)?
        } else {
            let child = self.stored_entry(parent, name)?;
            tree.load(child)?;
            child
        };
        self.evict_if_needed(&mut tree, child);
        let tree = parking_lot::RwLockWriteGuard::downgrade(tree);
        Ok(self.attr_of(child, tree.node(child)?))
    }

    /// The entry `name` of `dir`, a directory not listed, as the database holds it: what the
    /// share holds, since a directory's entries change only once it is listed and it leaves
    /// the listed state only once they are committed. Called with the namespace locked, so
    /// that it stays unlisted meanwhile.
    fn stored_entry(&self, dir: InodeNo, name: &[u8]) -> FsResult<InodeNo> {
        let reader = self.meta.read_namespace()?;
        reader.entry(dir, name)?.ok_or(FsError::NotFound)
    }

    /// The attributes of entries of `dir` (name and inode, as its listing gave them) that a
    /// `readdirplus` reply hands to the kernel, in their order. In a directory not listed, the
    /// entries not in memory are read together, with one transaction and no lock held, and
    /// loaded under one write lock: loaded one by one by number, each with a transaction and
    /// the write lock of its own, a cold `find` over 300,000 files took 1.5 times as long.
    pub fn entry_attrs(&self, dir: InodeNo, entries: &[(&[u8], InodeNo)]) -> Vec<FsResult<Attr>> {
        if let Err(err) = self.load_unlisted_entries(dir, entries) {
            tracing::debug!(%dir, "entries not read together: {err}");
        }
        entries
            .iter()
            .map(|(_, ino)| {
                {
                    let tree = self.tree.read();
                    if let Some(node) = tree.nodes.get(ino) {
                        return Ok(self.attr_of(*ino, node));
                    }
                }
                self.getattr(*ino)
            })
            .collect()
    }

    /// The loading of [`LiveFs::entry_attrs`]: what the database holds for the entries of
    /// `dir` not in memory, put in memory if `dir` is still unlisted and no commit changed the
    /// database meanwhile (as a listing read before the lock is). An entry the database no
    /// longer has is left to be loaded by number.
    fn load_unlisted_entries(&self, dir: InodeNo, entries: &[(&[u8], InodeNo)]) -> FsResult<()> {
        let commits = self.changing_commits();
        let missing: Vec<(&[u8], InodeNo)> = {
            let tree = self.tree.read();
            if tree
                .nodes
                .get(&dir)
                .is_none_or(|node| node.entries.is_some())
            {
                return Ok(());
            }
            entries
                .iter()
                .filter(|(name, ino)| {
                    *name != b"." && *name != b".." && !tree.nodes.contains_key(ino)
                })
                .copied()
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let reader = self.meta.read_namespace()?;
        let mut stored = Vec::with_capacity(missing.len());
        for (name, ino) in missing {
            if reader.entry(dir, name)? == Some(ino)
                && let Some(inode) = load::StoredInode::read(&reader, ino)?
            {
                stored.push((ino, inode));
            }
        }
        let mut tree = self.tree.write();
        let unlisted = tree
            .nodes
            .get(&dir)
            .is_some_and(|node| node.entries.is_none());
        if unlisted && commits == self.changing_commits() {
            // Room first: what is loaded now is what the reply needs.
            self.evict_if_needed(&mut tree, dir);
            tree.load_entries(&reader, dir, stored)?;
        }
        Ok(())
    }

    /// Opens a directory: its listing, with `.` and `..`, is taken now. A directory not listed
    /// is read from the database with no lock held and stays unlisted: the listing is held by
    /// the open handle alone, and is freed when it is closed.
    pub fn opendir(&self, ino: InodeNo) -> FsResult<u64> {
        // A commit while the database is read makes the read unusable, and a listing of a
        // huge directory takes longer than the time between commits of a busy share: read
        // again a few times before listing the directory.
        for _ in 0..3 {
            if let Some(listing) = self.stored_listing(ino)? {
                return Ok(self.handles.open_dir(listing));
            }
        }
        let tree = self.read_listed(ino)?;
        let entries = tree.dir(ino)?;
        let mut listing = dots(ino, tree.node(ino)?.parent, entries.len());
        for (name, child) in entries {
            if let Some(child_node) = tree.nodes.get(child) {
                listing.push(DirEntry {
                    name: name.clone(),
                    ino: *child,
                    kind: child_node.record.kind,
                });
            }
        }
        drop(tree);
        Ok(self.handles.open_dir(listing))
    }

    /// The listing of `dir` read from the database if it is not listed, and stays so, with no
    /// commit changing the database, while it is read (as [`LiveFs::lookup`] has it, the
    /// database then holds its entries); `None` otherwise.
    fn stored_listing(&self, dir: InodeNo) -> FsResult<Option<Vec<DirEntry>>> {
        let commits = self.changing_commits();
        let parent = {
            let tree = self.read_loaded(dir)?;
            if tree.is_listed(dir)? {
                return Ok(None);
            }
            tree.touch(dir);
            tree.node(dir)?.parent
        };
        let reader = self.meta.read_namespace()?;
        let entries = reader.entries(dir)?;
        let mut listing = dots(dir, parent, entries.len());
        for (name, child) in entries {
            match reader.inode(child)? {
                Some(record) => listing.push(DirEntry {
                    name,
                    ino: child,
                    kind: record.kind,
                }),
                None => {
                    tracing::error!(%dir, %child, "directory entry names a missing inode; skipped")
                }
            }
        }
        let tree = self.tree.read();
        let unlisted = tree
            .nodes
            .get(&dir)
            .is_some_and(|node| node.entries.is_none());
        Ok((unlisted && commits == self.changing_commits()).then_some(listing))
    }

    /// Up to [`READDIR_BATCH`] entries of an open directory from position `offset` on, each
    /// with the offset of the next. A reply holds what the kernel's buffer takes, and the
    /// kernel asks again from where it stopped: copying every entry to the end at each call,
    /// as this did, made listing a directory cost its size squared over the buffer's.
    pub fn readdir(&self, fh: u64, offset: u64) -> FsResult<Vec<(u64, DirEntry)>> {
        let listing = self.handles.dir(fh)?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        Ok(listing
            .iter()
            .enumerate()
            .skip(start)
            .take(READDIR_BATCH)
            .map(|(i, entry)| (i as u64 + 1, entry.clone()))
            .collect())
    }

    /// How many entries an open directory's listing has, `.` and `..` included.
    pub fn listing_len(&self, fh: u64) -> FsResult<usize> {
        Ok(self.handles.dir(fh)?.len())
    }

    pub fn releasedir(&self, fh: u64) {
        if let Some(listing) = self.handles.close_dir(fh)
            && listing.len() >= TRIM_AFTER
        {
            self.workers.free_and_trim(listing);
        }
    }
}

/// The start of a listing of `dir`: `.` and `..`, with room for `entries` more.
fn dots(dir: InodeNo, parent: InodeNo, entries: usize) -> Vec<DirEntry> {
    let mut listing = Vec::with_capacity(entries + 2);
    listing.push(DirEntry {
        name: b".".to_vec(),
        ino: dir,
        kind: InodeKind::Directory,
    });
    listing.push(DirEntry {
        name: b"..".to_vec(),
        ino: parent,
        kind: InodeKind::Directory,
    });
    listing
}

#[cfg(test)]
mod tests {
    use crate::id::InodeNo;
    use crate::live::FsError;
    use crate::testing::{close, lookup, mkdir, new_store, open, write_file};

    /// The attributes a `readdirplus` reply gives of a directory not listed are read together
    /// and are those a lookup gives; the directory stays unlisted. An entry removed since the
    /// listing was taken is not found.
    #[test]
    fn attributes_of_entries_not_in_memory_are_read_together() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (path, live) = new_store(tmp.path(), "store");
        mkdir(&live, "d");
        mkdir(&live, "d/sub");
        for n in 0..10 {
            write_file(&live, &format!("d/f{n}"), &vec![b'x'; n]);
        }
        close(live);
        let live = open(&path);
        let d = lookup(&live, "d").expect("d").ino;
        let fh = live.opendir(d).expect("opendir");
        let listing = live.handles.dir(fh).expect("listing");
        live.releasedir(fh);
        let entries: Vec<(&[u8], InodeNo)> = listing
            .iter()
            .map(|entry| (&entry.name[..], entry.ino))
            .collect();
        assert_eq!(live.tree.read().nodes.len(), 2, "the root and d");
        let attrs = live.entry_attrs(d, &entries);
        assert_eq!(live.tree.read().nodes.len(), 2 + 11, "and what d names");
        assert!(!live.tree.read().is_listed(d).expect("dir"));
        for ((name, ino), attr) in entries.iter().zip(&attrs) {
            let attr = attr.as_ref().expect("attributes");
            assert_eq!(attr.ino, *ino);
            if *name != b"." && *name != b".." {
                assert_eq!(attr.record, live.lookup(d, name).expect("lookup").record);
            }
        }
        live.unlink(d, b"f3").expect("unlink");
        live.commit_now().expect("commit");
        let attrs = live.entry_attrs(d, &entries);
        for ((name, _), attr) in entries.iter().zip(&attrs) {
            assert_eq!(
                *name == b"f3",
                matches!(attr, Err(FsError::NotFound)),
                "{name:?}"
            );
        }
        close(live);
    }

    /// A listing longer than a batch is read batch by batch, each call going on from the
    /// offset the last entry it returned gives: every entry once, in order.
    #[test]
    fn a_listing_is_read_in_batches_from_each_offset() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        for n in 0..10 {
            write_file(&live, &format!("f{n}"), b"x");
        }
        let fh = live.opendir(InodeNo::ROOT).expect("opendir");
        let mut names = Vec::new();
        let mut offset = 0;
        loop {
            let batch = live.readdir(fh, offset).expect("readdir");
            assert!(batch.len() <= super::READDIR_BATCH);
            let Some((next, _)) = batch.last() else { break };
            offset = *next;
            names.extend(batch.into_iter().map(|(_, entry)| entry.name));
        }
        assert_eq!(live.listing_len(fh).expect("len"), 12);
        live.releasedir(fh);
        let mut expected: Vec<Vec<u8>> = vec![b".".to_vec(), b"..".to_vec()];
        let mut files: Vec<Vec<u8>> = (0..10).map(|n| format!("f{n}").into_bytes()).collect();
        files.sort();
        expected.extend(files);
        assert_eq!(names, expected);
        close(live);
    }
}
