//! The FUSE adapter: routes kernel requests to the live share ([`LiveFs`]) or to the snapshot
//! side (`.snapshots`, its control file, and the read-only snapshots), and turns results into
//! replies. It holds no filesystem logic of its own; every change that would touch a snapshot
//! is refused here with `EROFS`.

mod attr;
mod errno;
mod generations;
mod requester;
mod snapshots;
mod vault_mount;
mod writeback;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::access::Requester;
use crate::format::inode::{InodeKind, Timestamp};
use crate::format::object::Xattrs;
use crate::id::InodeNo as Ino;
use crate::live::{
    Attr, Caller, FsError, LiveFs, Modification, NAME_MAX, NewInode, RenameMode, SetAttr,
    XattrFlags, XattrReply,
};
use crate::metrics::Op;
use crate::service::Service;
use crate::snapshot::view::{Area, SNAPSHOTS_DIR, SNAPSHOTS_DIR_NAME, area};
pub use attr::file_attr;
use errno::errno;
use generations::Generations;
use requester::Sender;
use snapshots::{HANDLE_BIT, SnapshotSide};
pub use vault_mount::VaultFuse;

/// Kernel caching choices, measured by `scripts/bench.sh`.
#[derive(Clone, Copy, Debug)]
pub struct CacheOptions {
    /// How long the kernel may cache names and attributes. Every change goes through this
    /// mount (the store is locked), so a long timeout is safe; a follower's share changes
    /// under it, and this is how late its kernel may see a change.
    pub ttl: Duration,
    /// Let the kernel buffer writes in its page cache and send them in large batches. A
    /// snapshot collects what it holds first (`LiveFs::collect_kernel_writes`).
    pub writeback_cache: bool,
    /// List `.snapshots` in the root directory (it is always reachable by name).
    pub snapdir_visible: bool,
    /// Serve `.snapshots/.gmt`: every snapshot under a GMT-stamped alias, for Samba.
    pub gmt_names: bool,
    /// The share changes other than through this mount (a follower's): the kernel must not
    /// keep a file's cached pages from one open to the next.
    pub changes_elsewhere: bool,
}

/// The kernel's caches of a mount: told to forget what the share changed on its own (errors
/// are of no consequence: the kernel may simply not have had the entry cached), and, with the
/// writeback cache, made to hand over the writes it holds.
pub struct KernelNotifier {
    pub notifier: fuser::Notifier,
    /// The mountpoint, when the kernel's writeback cache is on.
    pub writeback_mount: Option<PathBuf>,
}

impl crate::live::KernelCache for KernelNotifier {
    fn forget_entry(&self, parent: Ino, name: &[u8]) {
        let _ = self
            .notifier
            .inval_entry(INodeNo(parent.0), OsStr::from_bytes(name));
    }

    fn forget_attributes(&self, ino: Ino) {
        // A negative offset: the attributes only, not cached data.
        let _ = self.notifier.inval_inode(INodeNo(ino.0), -1, 0);
    }

    fn holds_writes(&self) -> bool {
        self.writeback_mount.is_some()
    }

    fn hand_over_writes(&self, files: &[(Ino, Vec<u8>)]) {
        if let Some(mount) = &self.writeback_mount {
            writeback::hand_over(mount, files);
        }
    }
}

pub struct SnapFuse {
    generations: Arc<Generations>,
    side: Arc<SnapshotSide>,
    cache: CacheOptions,
    /// The share's block size, which no replacement of its live share changes.
    block_size: u32,
}

/// Replaces the share a mount serves by a newer state of it (see `generations`): how a
/// follower moves to a new checkpoint while files stay open and the kernel keeps its inodes.
#[derive(Clone)]
pub struct ShareSwitch {
    generations: Arc<Generations>,
    side: Arc<SnapshotSide>,
}

impl ShareSwitch {
    /// Serves `live` and `service` from now on: new requests go to them; a file already open
    /// reads on in `live` if it still has the file, else in the share it was opened on until
    /// it is closed (see `generations`).
    pub fn switch_to(&self, live: Arc<LiveFs>, service: Arc<Service>) {
        self.side.switch_to(live.clone(), service);
        self.generations.replace(live);
    }

    /// Closes replaced shares whose files were all closed meanwhile.
    pub fn reap(&self) {
        self.generations.reap();
    }
}

/// Snapshot contents never change, so the kernel may cache them for long.
const SNAPSHOT_TTL: Duration = Duration::from_secs(60);

fn is_live(ino: INodeNo) -> bool {
    area(Ino(ino.0)) == Area::Live
}

/// Whether `parent/name` is the reserved `.snapshots` entry of the root.
fn is_snapshots_entry(parent: INodeNo, name: &OsStr) -> bool {
    Ino(parent.0) == Ino::ROOT && name.as_bytes() == SNAPSHOTS_DIR_NAME
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
    pub fn new(live: Arc<LiveFs>, service: Arc<Service>, cache: CacheOptions) -> Self {
        SnapFuse {
            side: Arc::new(SnapshotSide::new(live.clone(), service, cache.gmt_names)),
            block_size: live.block_size(),
            generations: Arc::new(Generations::new(live)),
            cache,
        }
    }

    /// What replaces the share this mount serves (a follower's).
    pub fn switch(&self) -> ShareSwitch {
        ShareSwitch {
            generations: self.generations.clone(),
            side: self.side.clone(),
        }
    }

    /// How `open` lets the kernel treat cached pages of a live file.
    fn open_flags(&self) -> FopenFlags {
        if self.cache.changes_elsewhere {
            FopenFlags::empty()
        } else {
            FopenFlags::FOPEN_KEEP_CACHE
        }
    }

    fn ttl_of(&self, attr: &Attr) -> Duration {
        match area(attr.ino) {
            Area::Snapshot { .. } => SNAPSHOT_TTL,
            // What the history shows depends on who asks (snapshot/history_view.rs): the kernel
            // must come back for every walk, so that each is checked for its own requester.
            Area::History => Duration::ZERO,
            _ => self.cache.ttl,
        }
    }

    /// How long the kernel may keep the name of `attr` in directory `parent`: as the inode's
    /// attributes, but not at all for a GMT alias, which names whichever snapshot owns its
    /// second now (deleting the first of two snapshots of one second hands it to the other,
    /// and deleting the last removes it): an alias kept on the kernel's side would outlive
    /// the change until the daemon's notice to forget it arrived.
    fn entry_ttl(&self, parent: INodeNo, attr: &Attr) -> Duration {
        match area(ino(parent)) {
            Area::GmtDir => Duration::ZERO,
            _ => self.ttl_of(attr),
        }
    }

    fn reply_side_entry(&self, parent: INodeNo, reply: ReplyEntry, result: Result<Attr, Errno>) {
        match result {
            Ok(attr) => reply.entry(
                &self.entry_ttl(parent, &attr),
                &file_attr(&attr, self.block_size),
                Generation(0),
            ),
            Err(err) => reply.error(err),
        }
    }

    fn reply_entry(&self, reply: ReplyEntry, result: Result<Attr, FsError>) {
        match result {
            Ok(attr) => reply.entry(
                &self.cache.ttl,
                &file_attr(&attr, self.block_size),
                Generation(0),
            ),
            Err(err) => reply.error(errno(&err)),
        }
    }

    fn reply_attr(&self, reply: ReplyAttr, result: Result<Attr, FsError>) {
        match result {
            Ok(attr) => reply.attr(&self.cache.ttl, &file_attr(&attr, self.block_size)),
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
            | InitFlags::FUSE_ASYNC_READ
            // Clearing setuid, setgid and capabilities is ours (`live/privileges.rs`): the
            // kernel then stops asking for them before every write and chown.
            | InitFlags::FUSE_HANDLE_KILLPRIV_V2;
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
        for live in self.generations.all() {
            if let Err(err) = live.shutdown() {
                tracing::error!("final commit at unmount failed: {err}");
            }
        }
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Lookup);
        if is_live(parent) && !is_snapshots_entry(parent, name) {
            self.reply_entry(reply, g.live.lookup(ino(parent), name.as_bytes()));
        } else {
            let found = self
                .side
                .lookup(ino(parent), name.as_bytes(), Sender::of(req));
            self.reply_side_entry(parent, reply, found);
        }
    }

    /// Live inodes are the share's and stay whatever the kernel holds; snapshot inodes are
    /// remembered only while the kernel holds them (`snapshot/view.rs`). `batch_forget` is
    /// fuser's default, which calls this for each inode (fuser does not export its argument
    /// type, so it cannot be overridden).
    fn forget(&self, _req: &Request, i: INodeNo, nlookup: u64) {
        if !is_live(i) {
            self.side.forget(ino(i), nlookup);
        }
    }

    fn getattr(&self, req: &Request, i: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Getattr);
        if is_live(i) {
            self.reply_attr(reply, g.live.getattr(ino(i)));
        } else {
            match self.side.getattr(ino(i), Sender::of(req)) {
                Ok(attr) => reply.attr(&self.ttl_of(&attr), &file_attr(&attr, self.block_size)),
                Err(err) => reply.error(err),
            }
        }
    }

    fn setattr(
        &self,
        req: &Request,
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
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Setattr);
        if !is_live(i) {
            // `echo create x > .control` truncates before it writes: a no-op for the control
            // file. Everything else on this side is read-only.
            let only_truncate = mode.is_none() && uid.is_none() && gid.is_none();
            if area(ino(i)) == Area::ControlFile && only_truncate {
                return self.getattr(req, i, None, reply);
            }
            return reply.error(Errno::EROFS);
        }
        // Under FUSE_HANDLE_KILLPRIV_V2 a truncate and a chown take privileges here.
        let sender = Sender::of(req);
        let chown = uid.is_some() || gid.is_some();
        for (made, what) in [
            (size.is_some(), Modification::Data),
            (chown, Modification::Owner),
        ] {
            let who = || sender.requester_with_capabilities();
            if made && let Err(err) = g.live.revoke_privileges(ino(i), what, who) {
                return reply.error(errno(&err));
            }
        }
        let change = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(time_of),
            mtime: mtime.map(time_of),
        };
        self.reply_attr(reply, g.live.setattr(ino(i), change));
    }

    fn readlink(&self, req: &Request, i: INodeNo, reply: ReplyData) {
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Readlink);
        let result = if is_live(i) {
            g.live.readlink(ino(i)).map_err(|e| errno(&e))
        } else {
            self.side.readlink(ino(i), Sender::of(req))
        };
        match result {
            Ok(target) => reply.data(&target),
            Err(err) => reply.error(err),
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
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Mknod);
        if !is_live(parent) || is_snapshots_entry(parent, name) {
            return reply.error(read_only_or_exists(parent, name));
        }
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
        let result = g.live.make(
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
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Mkdir);
        if area(ino(parent)) == Area::SnapshotsDir {
            return self.reply_side_entry(
                parent,
                reply,
                self.side.mkdir(req.uid(), name.as_bytes()),
            );
        }
        if !is_live(parent) || is_snapshots_entry(parent, name) {
            return reply.error(read_only_or_exists(parent, name));
        }
        let result = g.live.make(
            ino(parent),
            name.as_bytes(),
            NewInode::Directory,
            masked(mode, umask),
            caller(req),
        );
        self.reply_entry(reply, result);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Unlink);
        if !is_live(parent) || is_snapshots_entry(parent, name) {
            return reply.error(Errno::EROFS);
        }
        reply_empty(reply, g.live.unlink(ino(parent), name.as_bytes()));
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Rmdir);
        if area(ino(parent)) == Area::SnapshotsDir {
            return match self.side.rmdir(req.uid(), name.as_bytes()) {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(err),
            };
        }
        if !is_live(parent) || is_snapshots_entry(parent, name) {
            return reply.error(Errno::EROFS);
        }
        reply_empty(reply, g.live.rmdir(ino(parent), name.as_bytes()));
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Symlink);
        if !is_live(parent) || is_snapshots_entry(parent, link_name) {
            return reply.error(read_only_or_exists(parent, link_name));
        }
        let result = g.live.make(
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
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Rename);
        if !is_live(parent)
            || !is_live(new_parent)
            || is_snapshots_entry(parent, name)
            || is_snapshots_entry(new_parent, new_name)
        {
            return reply.error(Errno::EROFS);
        }
        let mode = if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            RenameMode::Exchange
        } else if flags.contains(RenameFlags::RENAME_NOREPLACE) {
            RenameMode::NoReplace
        } else if flags.is_empty() {
            RenameMode::Replace
        } else {
            return reply.error(Errno::EINVAL);
        };
        let result = g.live.rename(
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
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Link);
        if !is_live(i) || !is_live(new_parent) || is_snapshots_entry(new_parent, new_name) {
            return reply.error(read_only_or_exists(new_parent, new_name));
        }
        let result = g.live.link(ino(i), ino(new_parent), new_name.as_bytes());
        self.reply_entry(reply, result);
    }

    fn open(&self, req: &Request, i: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Open);
        let writable = flags.acc_mode() != OpenAccMode::O_RDONLY;
        let truncate = flags.0 & libc::O_TRUNC != 0;
        match area(ino(i)) {
            Area::Live => match g.live.open(ino(i), writable, truncate) {
                Ok(fh) => reply.opened(FileHandle(Generations::tagged(&g, fh)), self.open_flags()),
                Err(err) => reply.error(errno(&err)),
            },
            // The control file answers each read afresh, and each write is a command.
            Area::ControlFile => reply.opened(
                FileHandle(self.side.open_control()),
                FopenFlags::FOPEN_DIRECT_IO,
            ),
            _ if writable || truncate => reply.error(Errno::EROFS),
            Area::Snapshot { .. } | Area::History => {
                match self.side.open_read_only(ino(i), Sender::of(req)) {
                    Ok(()) => reply.opened(FileHandle(HANDLE_BIT), FopenFlags::FOPEN_KEEP_CACHE),
                    Err(err) => reply.error(err),
                }
            }
            Area::SnapshotsDir | Area::GmtDir => reply.error(Errno::EISDIR),
        }
    }

    fn read(
        &self,
        _req: &Request,
        i: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Read);
        let result = if is_live(i) {
            self.generations
                .for_read(fh.0, ino(i))
                .ok_or(Errno::EBADF)
                .and_then(|(opener, fh)| opener.live.read(fh, offset, size).map_err(|e| errno(&e)))
        } else {
            self.side.read(ino(i), fh.0, offset, size)
        };
        match result {
            Ok(data) => {
                g.live.metrics().read(data.len());
                reply.data(&data)
            }
            Err(err) => reply.error(err),
        }
    }

    fn write(
        &self,
        req: &Request,
        i: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Write);
        let result = match area(ino(i)) {
            Area::Live => self
                .generations
                .of_handle(fh.0)
                .ok_or(Errno::EBADF)
                .and_then(|(opener, fh)| {
                    // The kernel sets this flag when the writer lacks CAP_FSETID.
                    if write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID) {
                        let writer = || Requester {
                            cap_fsetid: false,
                            ..Sender::of(req).requester_with_capabilities()
                        };
                        let revoked =
                            opener
                                .live
                                .revoke_privileges(ino(i), Modification::Data, writer);
                        revoked.map_err(|e| errno(&e))?;
                    }
                    opener.live.write(fh, offset, data).map_err(|e| errno(&e))
                }),
            Area::ControlFile => {
                let writer = lock_owner.map(|owner| owner.0);
                self.side.write_control(Sender::of(req), writer, fh.0, data)
            }
            _ => Err(Errno::EROFS),
        };
        match result {
            Ok(n) => {
                g.live.metrics().written(n);
                reply.written(n as u32)
            }
            Err(err) => reply.error(err),
        }
    }

    fn flush(
        &self,
        req: &Request,
        i: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Flush);
        match area(ino(i)) {
            Area::Live => match self.generations.of_handle(fh.0) {
                Some((opener, fh)) => reply_empty(reply, opener.live.flush(fh)),
                None => reply.error(Errno::EBADF),
            },
            // Its writer's close ends what was written: an unterminated last request runs now.
            Area::ControlFile => match self.side.flush_control(Sender::of(req), lock_owner.0, fh.0)
            {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(err),
            },
            _ => reply.ok(),
        }
    }

    fn release(
        &self,
        _req: &Request,
        i: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Release);
        if !is_live(i) {
            self.side.release(fh.0);
            return reply.ok();
        }
        let Some((opener, own)) = self.generations.of_handle(fh.0) else {
            return reply.error(Errno::EBADF);
        };
        reply_empty(reply, opener.live.release(own));
        if matches!(opener, generations::Served::Replaced(_)) {
            drop(opener);
            self.generations.released(fh.0);
            self.generations.reap();
        }
    }

    fn fsync(&self, req: &Request, i: INodeNo, fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Fsync);
        // The daemon's own fsync collects the kernel's held writes for a snapshot, which
        // commits them itself: the kernel has written back and waited by now.
        if !is_live(i) || writeback::from_this_process(req.pid()) {
            return reply.ok();
        }
        match self.generations.of_handle(fh.0) {
            Some((opener, fh)) => reply_empty(reply, opener.live.fsync(fh)),
            None => reply.error(Errno::EBADF),
        }
    }

    fn opendir(&self, req: &Request, i: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Opendir);
        let result = if is_live(i) {
            g.live
                .opendir(ino(i))
                .map(|fh| Generations::tagged(&g, fh))
                .map_err(|e| errno(&e))
        } else {
            self.side.opendir(ino(i), Sender::of(req))
        };
        match result {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(err) => reply.error(err),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        i: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Readdir);
        match self.listing(i, fh, offset) {
            Ok(entries) => {
                for (next, name, entry_ino, kind) in entries {
                    let kind = attr::file_type(kind);
                    if reply.add(INodeNo(entry_ino.0), next, kind, OsStr::from_bytes(&name)) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(err) => reply.error(err),
        }
    }

    fn readdirplus(
        &self,
        req: &Request,
        i: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Readdir);
        match self.listing(i, fh, offset) {
            Ok(entries) => {
                // The live attributes of a reply's worth of entries at a time (a batch may hold
                // more than the reply takes: that many loads at most are spent for nothing).
                let mut live_attrs = std::collections::HashMap::new();
                for (n, (next, name, entry_ino, _)) in entries.iter().enumerate() {
                    if is_live(i) && n % READDIRPLUS_BATCH == 0 {
                        let batch: Vec<(&[u8], Ino)> = entries[n..]
                            .iter()
                            .take(READDIRPLUS_BATCH)
                            .filter(|(_, _, ino, _)| is_live(INodeNo(ino.0)))
                            .map(|(_, name, ino, _)| (name.as_slice(), *ino))
                            .collect();
                        let attrs = g.live.entry_attrs(ino(i), &batch);
                        live_attrs = batch
                            .iter()
                            .map(|(_, ino)| *ino)
                            .zip(attrs.into_iter().map(|attr| attr.map_err(|e| errno(&e))))
                            .collect();
                    }
                    let (name, next, entry_ino) = (name.clone(), *next, *entry_ino);
                    let attr = if is_live(INodeNo(entry_ino.0)) {
                        match live_attrs.get(&entry_ino) {
                            Some(attr) => attr.clone(),
                            None => g.live.getattr(entry_ino).map_err(|e| errno(&e)),
                        }
                    } else {
                        self.side
                            .entry_attr(ino(i), &name, entry_ino, Sender::of(req))
                    };
                    // An entry removed since opendir is skipped rather than failing the listing.
                    let Ok(attr) = attr else { continue };
                    let ttl = self.entry_ttl(i, &attr);
                    let attr = file_attr(&attr, self.block_size);
                    let counted = !is_live(INodeNo(entry_ino.0)) && name != b"." && name != b"..";
                    let name = OsStr::from_bytes(&name);
                    if reply.add(INodeNo(entry_ino.0), next, name, &ttl, &attr, Generation(0)) {
                        // Full: this entry is not sent, so the kernel never counts the
                        // reference its lookup took (the kernel counts every entry it is sent
                        // but `.` and `..`).
                        if counted {
                            self.side.forget(entry_ino, 1);
                        }
                        break;
                    }
                }
                reply.ok();
            }
            Err(err) => reply.error(err),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        i: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Releasedir);
        if is_live(i) {
            if let Some((opener, fh)) = self.generations.of_handle(fh.0) {
                opener.live.releasedir(fh);
                if matches!(opener, generations::Served::Replaced(_)) {
                    drop(opener);
                    self.generations.reap();
                }
            }
        } else {
            self.side.releasedir(fh.0);
        }
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
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Fsyncdir);
        reply_empty(reply, g.live.sync_all());
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Statfs);
        match g.live.statfs() {
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
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Setxattr);
        if !is_live(i) {
            return reply.error(Errno::EROFS);
        }
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
            g.live.setxattr(ino(i), name.as_bytes(), value, flags),
        );
    }

    fn getxattr(&self, req: &Request, i: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Getxattr);
        if is_live(i) {
            return reply_xattr(reply, g.live.getxattr(ino(i), name.as_bytes(), size));
        }
        let value = stored_xattr(name.as_bytes(), || {
            self.side.xattrs(ino(i), Sender::of(req))
        });
        reply_side_xattr(reply, value, size);
    }

    fn listxattr(&self, req: &Request, i: INodeNo, size: u32, reply: ReplyXattr) {
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Listxattr);
        if is_live(i) {
            return reply_xattr(reply, g.live.listxattr(ino(i), size));
        }
        let names = self.side.xattrs(ino(i), Sender::of(req)).map(|xattrs| {
            let mut out = Vec::new();
            for (name, _) in xattrs {
                out.extend_from_slice(&name);
                out.push(0);
            }
            out
        });
        reply_side_xattr(reply, names, size);
    }

    fn removexattr(&self, _req: &Request, i: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Removexattr);
        if !is_live(i) {
            return reply.error(Errno::EROFS);
        }
        reply_empty(reply, g.live.removexattr(ino(i), name.as_bytes()));
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Access);
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
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Create);
        if !is_live(parent) || is_snapshots_entry(parent, name) {
            return reply.error(read_only_or_exists(parent, name));
        }
        let perm = masked(mode, umask);
        let result = match g
            .live
            .create(ino(parent), name.as_bytes(), perm, caller(req))
        {
            // Another opener created the name since the kernel looked: without O_EXCL, open it.
            Err(FsError::Exists) if flags & libc::O_EXCL == 0 => g
                .live
                .lookup(ino(parent), name.as_bytes())
                .and_then(|attr| {
                    let writable = flags & libc::O_ACCMODE != libc::O_RDONLY;
                    let fh = g
                        .live
                        .open(attr.ino, writable, flags & libc::O_TRUNC != 0)?;
                    Ok((g.live.getattr(attr.ino)?, fh))
                }),
            other => other,
        };
        match result {
            Ok((attr, fh)) => reply.created(
                &self.cache.ttl,
                &file_attr(&attr, self.block_size),
                Generation(0),
                FileHandle(Generations::tagged(&g, fh)),
                self.open_flags(),
            ),
            Err(err) => reply.error(errno(&err)),
        }
    }

    fn fallocate(
        &self,
        req: &Request,
        i: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let g = self.generations.current();
        let _request = g.live.metrics().request(Op::Fallocate);
        if !is_live(i) {
            return reply.error(Errno::EROFS);
        }
        let Some((opener, fh)) = self.generations.of_handle(fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let sender = Sender::of(req);
        let revoked = opener
            .live
            .revoke_privileges(ino(i), Modification::Data, || {
                sender.requester_with_capabilities()
            });
        reply_empty(
            reply,
            revoked.and_then(|()| opener.live.fallocate(fh, offset, length, mode)),
        )
    }
}

/// The error for making a name where none may be made: `.snapshots` itself exists; anything
/// on the snapshot side is read-only.
fn read_only_or_exists(parent: INodeNo, name: &OsStr) -> Errno {
    if is_snapshots_entry(parent, name) {
        Errno::EEXIST
    } else {
        Errno::EROFS
    }
}

/// The value of xattr `name` among `xattrs` (a snapshot's or a backup's), answered as the live
/// share answers: a name it refuses ([`crate::live::refused_xattr`]) is not supported rather
/// than absent, before anything is read, so that tools asking for POSIX ACLs on every file stop
/// after the first (`ls -l` in a snapshot asked two xattrs a file, where it asks one live).
fn stored_xattr(
    name: &[u8],
    xattrs: impl FnOnce() -> Result<Xattrs, Errno>,
) -> Result<Vec<u8>, Errno> {
    if crate::live::refused_xattr(name) {
        return Err(Errno::EOPNOTSUPP);
    }
    xattrs()?
        .into_iter()
        .find(|(n, _)| n.as_slice() == name)
        .map(|(_, v)| v)
        .ok_or(Errno::NO_XATTR)
}

/// Replies with a stored xattr value or listing: its length when `size` is 0, `ERANGE` when
/// it does not fit in `size`.
fn reply_side_xattr(reply: ReplyXattr, value: Result<Vec<u8>, Errno>, size: u32) {
    match value {
        Ok(value) if size == 0 => reply.size(value.len() as u32),
        Ok(value) if value.len() > size as usize => reply.error(Errno::ERANGE),
        Ok(value) => reply.data(&value),
        Err(err) => reply.error(err),
    }
}

/// One entry of a directory listing: the offset of the next entry, name, inode, kind.
type ListedEntry = (u64, Vec<u8>, Ino, InodeKind);

/// How many entries of a `readdirplus` reply have their live attributes read together
/// (`LiveFs::entry_attrs`): fewer than a reply to `getdents` with glibc's 32 KiB buffer holds
/// (some 200), so that few are read for nothing.
const READDIRPLUS_BATCH: usize = 128;

impl SnapFuse {
    /// The entries of an open directory from `offset` on, whichever side it is on. The root of
    /// the live share lists `.snapshots` last when it is visible.
    fn listing(&self, i: INodeNo, fh: FileHandle, offset: u64) -> Result<Vec<ListedEntry>, Errno> {
        if !is_live(i) {
            let listing = self.side.listing(fh.0)?;
            return Ok(listing
                .iter()
                .enumerate()
                .skip(offset as usize)
                .map(|(n, (name, ino, kind))| (n as u64 + 1, name.clone(), *ino, *kind))
                .collect());
        }
        let (opener, fh) = self.generations.of_handle(fh.0).ok_or(Errno::EBADF)?;
        let mut entries: Vec<ListedEntry> = opener
            .live
            .readdir(fh, offset)
            .map_err(|e| errno(&e))?
            .into_iter()
            .map(|(next, e)| (next, e.name, e.ino, e.kind))
            .collect();
        if self.cache.snapdir_visible && ino(i) == Ino::ROOT {
            let end = opener.live.listing_len(fh).map_err(|e| errno(&e))? as u64;
            // After the last batch only: `.snapshots` comes last.
            if offset <= end && entries.last().is_none_or(|(next, ..)| *next == end) {
                entries.push((
                    end + 1,
                    SNAPSHOTS_DIR_NAME.to_vec(),
                    SNAPSHOTS_DIR,
                    InodeKind::Directory,
                ));
            }
        }
        Ok(entries)
    }
}
