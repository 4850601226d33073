//! lookup and directory listing.

use super::error::{FsError, FsResult};
use super::namespace::check_name;
use super::{Attr, LiveFs};
use crate::format::inode::InodeKind;
use crate::id::InodeNo;

/// The most entries one `readdir` returns: more than a reply of the kernel's largest buffer
/// (1 MiB) holds of the shortest entries.
#[cfg(not(test))]
pub const READDIR_BATCH: usize = 1 << 15;
#[cfg(test)]
pub const READDIR_BATCH: usize = 4;

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

    /// Opens a directory: its listing, with `.` and `..`, is taken now. A directory not listed
    /// is read from the database with no lock held and stays unlisted: the listing is held by
    /// the open handle alone, and is freed when it is closed.
    pub fn opendir(&self, ino: InodeNo) -> FsResult<u64> {
        if let Some(listing) = self.stored_listing(ino)? {
            return Ok(self.handles.open_dir(listing));
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
        self.handles.close_dir(fh);
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
    use crate::testing::{close, new_store, write_file};

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
