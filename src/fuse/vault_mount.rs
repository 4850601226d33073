//! The FUSE adapter of `snapfs vault mount`: routes kernel requests to a [`VaultBrowser`] and
//! turns its results into replies. It holds no filesystem logic: what the mount shows and how
//! objects are fetched, cached and checked is `vault::browse`. Every change is refused with
//! `EROFS` (the mount is also read-only to the kernel, which refuses most before they come).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig,
    LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr,
    Request, TimeOrNow, WriteFlags,
};
use parking_lot::Mutex;

use super::attr::{file_attr, file_type};
use crate::format::inode::InodeKind;
use crate::format::object::Xattrs;
use crate::id::InodeNo;
use crate::live::{Attr, NAME_MAX};
use crate::vault::browse::{BrowseError, Entries, Node, VaultBrowser};

/// A backup never changes while mounted, so the kernel may cache names, attributes and pages
/// for long.
const TTL: Duration = Duration::from_secs(60);

/// One open directory's listing, from `.` and `..` on.
type Listing = Arc<Entries>;

pub struct VaultFuse {
    browser: Arc<VaultBrowser>,
    listings: Mutex<HashMap<u64, Listing>>,
    next_handle: AtomicU64,
}

/// The errno of a failure; a failed object read is logged here, naming the object and pack.
fn errno(err: BrowseError) -> Errno {
    match err {
        BrowseError::NotFound => Errno::ENOENT,
        BrowseError::NotDirectory => Errno::ENOTDIR,
        BrowseError::NotFile => Errno::EINVAL,
        err @ BrowseError::Object { .. } => {
            tracing::error!("vault read failed: {err}");
            Errno::EIO
        }
    }
}

fn attr_of(node: &Node, block_size: u32) -> fuser::FileAttr {
    let attr = Attr {
        ino: node.ino,
        record: node.record.clone(),
        // As `.snapshots/` reports it: the size in sectors (allocation is not known without
        // reading the file's block map).
        sectors: node.record.size.div_ceil(512),
    };
    file_attr(&attr, block_size)
}

impl VaultFuse {
    pub fn new(browser: Arc<VaultBrowser>) -> Self {
        VaultFuse {
            browser,
            listings: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
        }
    }

    fn attr(&self, node: &Node) -> fuser::FileAttr {
        attr_of(node, self.browser.block_size(node.ino))
    }

    fn xattrs(&self, ino: INodeNo) -> Result<Xattrs, Errno> {
        Ok(self.browser.node(InodeNo(ino.0)).map_err(errno)?.xattrs)
    }
}

impl Filesystem for VaultFuse {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // No readdirplus: every inode the kernel learns of comes from a lookup, so the lookup
        // counts `forget` gives back are exact.
        let wanted = InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_CACHE_SYMLINKS
            | InitFlags::FUSE_ASYNC_READ;
        let _ = config.add_capabilities(wanted & config.capabilities());
        let _ = config.set_max_readahead(1 << 20);
        let _ = config.set_time_granularity(Duration::from_nanos(1));
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.browser.lookup(InodeNo(parent.0), name.as_bytes()) {
            Ok(node) => reply.entry(&TTL, &self.attr(&node), Generation(0)),
            Err(err) => reply.error(errno(err)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.browser.forget(InodeNo(ino.0), nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.browser.node(InodeNo(ino.0)) {
            Ok(node) => reply.attr(&TTL, &self.attr(&node)),
            Err(err) => reply.error(errno(err)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.browser.node(InodeNo(ino.0)) {
            Ok(node) if node.record.kind == InodeKind::Symlink => {
                reply.data(&node.record.symlink_target)
            }
            Ok(_) => reply.error(Errno::EINVAL),
            Err(err) => reply.error(errno(err)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY || flags.0 & libc::O_TRUNC != 0 {
            return reply.error(Errno::EROFS);
        }
        match self.browser.node(InodeNo(ino.0)) {
            Ok(node) if node.record.kind == InodeKind::Directory => reply.error(Errno::EISDIR),
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            Err(err) => reply.error(errno(err)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.browser.read(InodeNo(ino.0), offset, size) {
            Ok(data) => reply.data(&data),
            Err(err) => reply.error(errno(err)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let (parent, entries) = match self.browser.list(InodeNo(ino.0)) {
            Ok(listed) => listed,
            Err(err) => return reply.error(errno(err)),
        };
        let mut listing = vec![
            (b".".to_vec(), InodeNo(ino.0), InodeKind::Directory),
            (b"..".to_vec(), parent, InodeKind::Directory),
        ];
        listing.extend(entries);
        let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
        self.listings.lock().insert(fh, Arc::new(listing));
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(listing) = self.listings.lock().get(&fh.0).cloned() else {
            return reply.error(Errno::EBADF);
        };
        for (n, (name, ino, kind)) in listing.iter().enumerate().skip(offset as usize) {
            let next = n as u64 + 1;
            if reply.add(
                INodeNo(ino.0),
                next,
                file_type(*kind),
                OsStr::from_bytes(name),
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.listings.lock().remove(&fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(0, 0, 0, 0, 0, 4096, NAME_MAX as u32, 4096);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let value = super::stored_xattr(name.as_bytes(), || self.xattrs(ino));
        super::reply_side_xattr(reply, value, size);
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let names = self.xattrs(ino).map(|xattrs| {
            let mut out = Vec::new();
            for (name, _) in xattrs {
                out.extend_from_slice(&name);
                out.push(0);
            }
            out
        });
        super::reply_side_xattr(reply, names, size);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        // Permissions are checked by the kernel (default_permissions).
        reply.ok();
    }

    // Every change is refused: a vault is changed by its own commands only.

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }
}
