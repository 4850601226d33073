//! lookup and directory listing.

use super::error::FsResult;
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
    pub fn lookup(&self, parent: InodeNo, name: &[u8]) -> FsResult<Attr> {
        let tree = self.read_listed(parent)?;
        let ino = tree.lookup(parent, name)?;
        Ok(self.attr_of(ino, tree.node(ino)?))
    }

    /// Opens a directory: its listing, with `.` and `..`, is taken now.
    pub fn opendir(&self, ino: InodeNo) -> FsResult<u64> {
        let tree = self.read_listed(ino)?;
        let node = tree.node(ino)?;
        let entries = tree.dir(ino)?;
        let mut listing = Vec::with_capacity(entries.len() + 2);
        listing.push(DirEntry {
            name: b".".to_vec(),
            ino,
            kind: InodeKind::Directory,
        });
        listing.push(DirEntry {
            name: b"..".to_vec(),
            ino: node.parent,
            kind: InodeKind::Directory,
        });
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
