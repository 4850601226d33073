//! The FUSE adapter: turns kernel requests into calls on [`LiveFs`] and results into replies.
//! It holds no filesystem logic of its own.

mod attr;
mod errno;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::format::inode::{InodeKind, Timestamp};
use crate::id::InodeNo as Ino;
use crate::live::{
    Attr, Caller, FsError, LiveFs, NAME_MAX, NewInode, RenameMode, SetAttr, XattrFlags, XattrReply,
};
pub use attr::file_attr;
use errno::errno;

/// Kernel caching choices, measured by `scripts/bench.sh`.
#[derive(Clone, Copy, Debug)]
pub struct CacheOptions {
    /// How long the kernel may cache names and attributes. Every change goes through this
    /// mount (the store is locked), so a long timeout is safe.
    pub ttl: Duration,
    /// Let the kernel buffer writes in its page cache and send them in large batches.
    pub writeback_cache: bool,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            ttl: Duration::from_secs(1),
            writeback_cache: true,
        }
    }
}

pub struct SnapFuse {
    live: Arc<LiveFs>,
    cache: CacheOptions,
}

fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
    }
}

fn time_of(time: TimeOrNow) -> Timestamp {
    match time {
        TimeOrNow::SpecificTime(t) => Timestamp::from_system_time(t),
        TimeOrNow::Now => Timestamp::now(),
    }
}

impl SnapFuse {
    pub fn new(live: Arc<LiveFs>, cache: CacheOptions) -> Self {
        SnapFuse { live, cache }
    }

    fn reply_entry(&self, reply: ReplyEntry, result: Result<Attr, FsError>) {
        match result {
            Ok(attr) => reply.entry(
                &self.cache.ttl,
                &file_attr(&attr, self.live.block_size()),
                Generation(0),
            ),
            Err(err) => reply.error(errno(&err)),
        }
    }

    fn reply_attr(&self, reply: ReplyAttr, result: Result<Attr, FsError>) {
        match result {
            Ok(attr) => reply.attr(&self.cache.ttl, &file_attr(&attr, self.live.block_size())),
            Err(err) => reply.error(errno(&err)),
        }
    }
}

fn reply_empty(reply: ReplyEmpty, result: Result<(), FsError>) {
    match result {
        Ok(()) => reply.ok(),
        Err(err) => reply.error(errno(&err)),
    }
}

fn reply_xattr(reply: ReplyXattr, result: Result<XattrReply, FsError>) {
    match result {
        Ok(XattrReply::Size(size)) => reply.size(size),
        Ok(XattrReply::Data(data)) => reply.data(&data),
        Err(err) => reply.error(errno(&err)),
    }
}

fn ino(ino: INodeNo) -> Ino {
    Ino(ino.0)
}

/// The umask-applied permission bits of a create-type request.
fn masked(mode: u32, umask: u32) -> u32 {
    mode & !umask & 0o7777
}

impl Filesystem for SnapFuse {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let mut wanted = InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_CACHE_SYMLINKS
            | InitFlags::FUSE_BIG_WRITES
            | InitFlags::FUSE_ASYNC_READ;
        if self.cache.writeback_cache {
            wanted |= InitFlags::FUSE_WRITEBACK_CACHE;
        }
        let _ = config.add_capabilities(wanted & config.capabilities());
        // Requests of up to 1 MiB: eight blocks per round trip for large sequential I/O.
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_readahead(1 << 20);
        let _ = config.set_max_background(64);
        let _ = config.set_time_granularity(Duration::from_nanos(1));
        Ok(())
    }

    fn destroy(&mut self) {
        if let Err(err) = self.live.shutdown() {
            tracing::error!("final commit at unmount failed: {err}");
        }
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.reply_entry(reply, self.live.lookup(ino(parent), name.as_bytes()));
    }

    fn getattr(&self, _req: &Request, i: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.reply_attr(reply, self.live.getattr(ino(i)));
    }

    fn setattr(
        &self,
        _req: &Request,
        i: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let change = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(time_of),
            mtime: mtime.map(time_of),
        };
        self.reply_attr(reply, self.live.setattr(ino(i), change));
    }

    fn readlink(&self, _req: &Request, i: INodeNo, reply: ReplyData) {
        match self.live.readlink(ino(i)) {
            Ok(target) => reply.data(&target),
            Err(err) => reply.error(errno(&err)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let new = match mode & libc::S_IFMT {
            libc::S_IFREG | 0 => NewInode::File,
            libc::S_IFIFO => NewInode::Special {
                kind: InodeKind::Fifo,
                rdev: 0,
            },
            libc::S_IFSOCK => NewInode::Special {
                kind: InodeKind::Socket,
                rdev: 0,
            },
            libc::S_IFCHR => NewInode::Special {
                kind: InodeKind::CharDevice,
                rdev,
            },
            libc::S_IFBLK => NewInode::Special {
                kind: InodeKind::BlockDevice,
                rdev,
            },
            _ => return reply.error(Errno::EINVAL),
        };
        let result = self.live.make(
            ino(parent),
            name.as_bytes(),
            new,
            masked(mode, umask),
            caller(req),
        );
        self.reply_entry(reply, result);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let result = self.live.make(
            ino(parent),
            name.as_bytes(),
            NewInode::Directory,
            masked(mode, umask),
            caller(req),
        );
        self.reply_entry(reply, result);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.live.unlink(ino(parent), name.as_bytes()));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.live.rmdir(ino(parent), name.as_bytes()));
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let result = self.live.make(
            ino(parent),
            link_name.as_bytes(),
            NewInode::Symlink(target.as_os_str().as_bytes()),
            0o777,
            caller(req),
        );
        self.reply_entry(reply, result);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        new_parent: INodeNo,
        new_name: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mode = if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            RenameMode::Exchange
        } else if flags.contains(RenameFlags::RENAME_NOREPLACE) {
            RenameMode::NoReplace
        } else if flags.is_empty() {
            RenameMode::Replace
        } else {
            return reply.error(Errno::EINVAL);
        };
        let result = self.live.rename(
            ino(parent),
            name.as_bytes(),
            ino(new_parent),
            new_name.as_bytes(),
            mode,
        );
        reply_empty(reply, result);
    }

    fn link(
        &self,
        _req: &Request,
        i: INodeNo,
        new_parent: INodeNo,
        new_name: &OsStr,
        reply: ReplyEntry,
    ) {
        let result = self.live.link(ino(i), ino(new_parent), new_name.as_bytes());
        self.reply_entry(reply, result);
    }

    fn open(&self, _req: &Request, i: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let writable = flags.acc_mode() != OpenAccMode::O_RDONLY;
        let truncate = flags.0 & libc::O_TRUNC != 0;
        match self.live.open(ino(i), writable, truncate) {
            // Every change reaches the store through this mount and the kernel's own cache, so
            // cached pages of a file are always current: keep them across opens.
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE),
            Err(err) => reply.error(errno(&err)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.live.read(fh.0, offset, size) {
            Ok(data) => reply.data(&data),
            Err(err) => reply.error(errno(&err)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.live.write(fh.0, offset, data) {
            Ok(n) => reply.written(n as u32),
            Err(err) => reply.error(errno(&err)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, self.live.flush(fh.0));
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, self.live.release(fh.0));
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, self.live.fsync(fh.0));
    }

    fn opendir(&self, _req: &Request, i: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.live.opendir(ino(i)) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(err) => reply.error(errno(&err)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match self.live.readdir(fh.0, offset) {
            Ok(entries) => {
                for (next, entry) in entries {
                    let kind = attr::file_type(entry.kind);
                    if reply.add(
                        INodeNo(entry.ino.0),
                        next,
                        kind,
                        OsStr::from_bytes(&entry.name),
                    ) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(err) => reply.error(errno(&err)),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        match self.live.readdir(fh.0, offset) {
            Ok(entries) => {
                for (next, entry) in entries {
                    // An entry removed since opendir is skipped rather than failing the listing.
                    let Ok(attr) = self.live.getattr(entry.ino) else {
                        continue;
                    };
                    let attr = file_attr(&attr, self.live.block_size());
                    let name = OsStr::from_bytes(&entry.name);
                    if reply.add(
                        INodeNo(entry.ino.0),
                        next,
                        name,
                        &self.cache.ttl,
                        &attr,
                        Generation(0),
                    ) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(err) => reply.error(errno(&err)),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.live.releasedir(fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, self.live.sync_all());
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.live.statfs() {
            Ok(s) => reply.statfs(
                s.blocks,
                s.blocks_free,
                s.blocks_available,
                s.files,
                s.files_free,
                s.block_size,
                NAME_MAX as u32,
                s.block_size,
            ),
            Err(err) => reply.error(errno(&err)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        i: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        position: u32,
        reply: ReplyEmpty,
    ) {
        if position != 0 {
            return reply.error(Errno::EINVAL);
        }
        let flags = match flags {
            0 => XattrFlags::Any,
            libc::XATTR_CREATE => XattrFlags::Create,
            libc::XATTR_REPLACE => XattrFlags::Replace,
            _ => return reply.error(Errno::EINVAL),
        };
        reply_empty(
            reply,
            self.live.setxattr(ino(i), name.as_bytes(), value, flags),
        );
    }

    fn getxattr(&self, _req: &Request, i: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        reply_xattr(reply, self.live.getxattr(ino(i), name.as_bytes(), size));
    }

    fn listxattr(&self, _req: &Request, i: INodeNo, size: u32, reply: ReplyXattr) {
        reply_xattr(reply, self.live.listxattr(ino(i), size));
    }

    fn removexattr(&self, _req: &Request, i: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.live.removexattr(ino(i), name.as_bytes()));
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // Permissions are checked by the kernel (default_permissions).
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let perm = masked(mode, umask);
        let result = match self
            .live
            .create(ino(parent), name.as_bytes(), perm, caller(req))
        {
            // Another opener created the name since the kernel looked: without O_EXCL, open it.
            Err(FsError::Exists) if flags & libc::O_EXCL == 0 => self
                .live
                .lookup(ino(parent), name.as_bytes())
                .and_then(|attr| {
                    let writable = flags & libc::O_ACCMODE != libc::O_RDONLY;
                    let fh = self
                        .live
                        .open(attr.ino, writable, flags & libc::O_TRUNC != 0)?;
                    Ok((self.live.getattr(attr.ino)?, fh))
                }),
            other => other,
        };
        match result {
            Ok((attr, fh)) => reply.created(
                &self.cache.ttl,
                &file_attr(&attr, self.live.block_size()),
                Generation(0),
                FileHandle(fh),
                FopenFlags::FOPEN_KEEP_CACHE,
            ),
            Err(err) => reply.error(errno(&err)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, self.live.fallocate(fh.0, offset, length, mode));
    }
}
