//! `snapfs-passthrough`: a minimal FUSE passthrough filesystem, used as a benchmark baseline.
//!
//! It mirrors `SOURCE_DIR` at `MOUNTPOINT` and does nothing else, so a benchmark
//! (`scripts/bench.sh`) can tell how much of snapfs's cost is FUSE's own (context switches,
//! request copies, the kernel's caching rules) and how much is snapfs's. It is built on the same
//! `fuser` as snapfs; threads, writeback caching and cache TTL are options, to match snapfs's.
//!
//! ```text
//! snapfs-passthrough SOURCE_DIR MOUNTPOINT [--threads N] [--writeback] [--ttl-ms N]
//! ```
//!
//! It runs in the foreground until unmounted (`umount MOUNTPOINT` or `fusermount3 -u`).
//!
//! A FUSE inode number is the backing inode's own (the source root's and 1 swap places), so
//! `st_ino` and `d_ino` agree and hard links share an inode. Each inode the kernel knows maps to
//! its path relative to an fd of `SOURCE_DIR`, in a map behind a `parking_lot::RwLock`. A file
//! handle is the backing fd itself, read and written with `pread`/`pwrite`.
//!
//! Limitations: `SOURCE_DIR` must be one filesystem (a lookup into a nested mount fails with
//! `EXDEV`); no xattrs, locks or ACLs; an unlinked file stays reachable only through handles
//! that were open on it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, KernelConfig, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use parking_lot::{Mutex, RwLock};

/// Largest write the kernel may send in one request.
const MAX_WRITE: u32 = 1 << 20;

type Res<T> = Result<T, Errno>;

/// The errno of the syscall that just failed.
fn last_errno() -> Errno {
    Errno::from(io::Error::last_os_error())
}

/// Turns a libc `-1 and errno` return into a `Result`.
fn check(ret: libc::c_int) -> Res<libc::c_int> {
    if ret < 0 { Err(last_errno()) } else { Ok(ret) }
}

fn check_size(ret: libc::ssize_t) -> Res<usize> {
    if ret < 0 {
        Err(last_errno())
    } else {
        Ok(ret as usize)
    }
}

fn file_type(mode: libc::mode_t) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

fn system_time(sec: i64, nsec: i64) -> SystemTime {
    let nsec = Duration::from_nanos(nsec.clamp(0, 999_999_999) as u64);
    let t = if sec >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(sec as u64))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(sec.unsigned_abs()))
    };
    t.and_then(|t| t.checked_add(nsec)).unwrap_or(UNIX_EPOCH)
}

fn timespec(t: Option<TimeOrNow>) -> libc::timespec {
    let (tv_sec, tv_nsec) = match t {
        None => (0, libc::UTIME_OMIT),
        Some(TimeOrNow::Now) => (0, libc::UTIME_NOW),
        Some(TimeOrNow::SpecificTime(t)) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => (d.as_secs() as i64, i64::from(d.subsec_nanos())),
            Err(e) => {
                let d = e.duration();
                let (sec, nsec) = (-(d.as_secs() as i64), i64::from(d.subsec_nanos()));
                if nsec == 0 {
                    (sec, 0)
                } else {
                    (sec - 1, 1_000_000_000 - nsec)
                }
            }
        },
    };
    libc::timespec { tv_sec, tv_nsec }
}

/// `pread` until `buf` is full or end of file; returns the bytes read.
fn pread_full(fd: RawFd, buf: &mut [u8], offset: u64) -> Res<usize> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        let pos = (offset + done as u64) as libc::off_t;
        // SAFETY: `rest` is a valid, writable buffer of `rest.len()` bytes.
        let n = check_size(unsafe { libc::pread(fd, rest.as_mut_ptr().cast(), rest.len(), pos) })?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(done)
}

/// `pwrite` all of `data`.
fn pwrite_all(fd: RawFd, data: &[u8], offset: u64) -> Res<usize> {
    let mut done = 0;
    while done < data.len() {
        let rest = &data[done..];
        let pos = (offset + done as u64) as libc::off_t;
        // SAFETY: `rest` is a valid buffer of `rest.len()` bytes.
        let n = check_size(unsafe { libc::pwrite(fd, rest.as_ptr().cast(), rest.len(), pos) })?;
        if n == 0 {
            return Err(Errno::EIO);
        }
        done += n;
    }
    Ok(done)
}

fn fstat(fd: RawFd) -> Res<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is a valid out-pointer; on success the kernel has filled it in.
    check(unsafe { libc::fstat(fd, st.as_mut_ptr()) })?;
    Ok(unsafe { st.assume_init() })
}

fn fstatat(dirfd: RawFd, path: &CStr) -> Res<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `path` is NUL-terminated and `st` a valid out-pointer.
    check(unsafe {
        libc::fstatat(
            dirfd,
            path.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(unsafe { st.assume_init() })
}

/// `path` with its leading `from` replaced by `to`, if `path` is `from` or lies under it.
fn rebase(path: &CStr, from: &CStr, to: &CStr) -> Option<Arc<CStr>> {
    let rest = path.to_bytes().strip_prefix(from.to_bytes())?;
    if rest.is_empty() {
        return Some(Arc::from(to));
    }
    if rest[0] != b'/' {
        return None;
    }
    let mut joined = to.to_bytes().to_vec();
    joined.extend_from_slice(rest);
    CString::new(joined).ok().map(Arc::from)
}

/// An inode the kernel knows about.
struct Node {
    /// Path relative to the source directory fd; `.` for the root.
    path: Arc<CStr>,
    /// Lookups the kernel has not yet forgotten.
    nlookup: u64,
}

struct DirEntry {
    ino: u64,
    kind: FileType,
    name: OsString,
}

/// An open directory: its fd, and the entries read at the last `readdir` from offset 0.
struct DirHandle {
    fd: OwnedFd,
    entries: Mutex<Vec<DirEntry>>,
}

struct Passthrough {
    /// The source directory; every path is resolved relative to it.
    root: OwnedFd,
    /// The backing inode number of the source directory, shown as FUSE inode 1.
    root_ino: u64,
    root_dev: u64,
    nodes: RwLock<HashMap<u64, Node>>,
    /// Open directories by handle, which is their fd.
    dirs: RwLock<HashMap<u64, Arc<DirHandle>>>,
    ttl: Duration,
    writeback: bool,
    /// Our group: a new node with another group got it from a set-group-ID directory.
    egid: u32,
}

impl Passthrough {
    fn new(source: &Path, ttl: Duration, writeback: bool) -> anyhow::Result<Self> {
        let c = CString::new(source.as_os_str().as_bytes()).context("source path has a NUL")?;
        // SAFETY: `c` is NUL-terminated.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("opening {}", source.display()));
        }
        // SAFETY: `fd` was just opened and is owned by nobody else.
        let root = unsafe { OwnedFd::from_raw_fd(fd) };
        let st = fstat(root.as_raw_fd())
            .map_err(|e| io::Error::from_raw_os_error(e.code()))
            .context("stat of the source directory")?;
        let nodes = HashMap::from([(
            INodeNo::ROOT.0,
            Node {
                path: Arc::from(c"."),
                nlookup: 1,
            },
        )]);
        Ok(Self {
            root,
            root_ino: st.st_ino,
            root_dev: st.st_dev,
            nodes: RwLock::new(nodes),
            dirs: RwLock::new(HashMap::new()),
            ttl,
            writeback,
            // SAFETY: getegid cannot fail.
            egid: unsafe { libc::getegid() },
        })
    }

    fn rootfd(&self) -> RawFd {
        self.root.as_raw_fd()
    }

    /// FUSE inode number of a backing inode number: the source root and 1 trade places.
    fn fuse_ino(&self, real: u64) -> u64 {
        if real == self.root_ino {
            INodeNo::ROOT.0
        } else if real == INodeNo::ROOT.0 {
            self.root_ino
        } else {
            real
        }
    }

    fn attr(&self, st: &libc::stat) -> FileAttr {
        let mtime = system_time(st.st_mtime, st.st_mtime_nsec);
        FileAttr {
            ino: INodeNo(self.fuse_ino(st.st_ino)),
            size: st.st_size as u64,
            blocks: st.st_blocks as u64,
            atime: system_time(st.st_atime, st.st_atime_nsec),
            mtime,
            ctime: system_time(st.st_ctime, st.st_ctime_nsec),
            crtime: mtime,
            kind: file_type(st.st_mode),
            perm: (st.st_mode & 0o7777) as u16,
            nlink: st.st_nlink as u32,
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev as u32,
            blksize: st.st_blksize as u32,
            flags: 0,
        }
    }

    fn path(&self, ino: INodeNo) -> Res<Arc<CStr>> {
        self.nodes
            .read()
            .get(&ino.0)
            .map(|n| Arc::clone(&n.path))
            .ok_or(Errno::from_i32(libc::ESTALE))
    }

    fn child_path(&self, parent: INodeNo, name: &OsStr) -> Res<CString> {
        let parent = self.path(parent)?;
        let parent = parent.to_bytes();
        let mut p = Vec::with_capacity(parent.len() + 1 + name.len());
        if parent != b"." {
            p.extend_from_slice(parent);
            p.push(b'/');
        }
        p.extend_from_slice(name.as_bytes());
        CString::new(p).map_err(|_| Errno::EINVAL)
    }

    /// Counts one kernel lookup of the inode `st` at `path`, and returns its attributes.
    fn remember(&self, path: CString, st: &libc::stat) -> Res<FileAttr> {
        if st.st_dev != self.root_dev {
            return Err(Errno::EXDEV);
        }
        let attr = self.attr(st);
        match self.nodes.write().entry(attr.ino.0) {
            Entry::Occupied(mut e) => {
                let node = e.get_mut();
                node.nlookup += 1;
                if attr.ino != INodeNo::ROOT && *node.path != *path {
                    // A hard link, or a name the inode was renamed to behind our back.
                    node.path = Arc::from(path);
                }
            }
            Entry::Vacant(e) => {
                e.insert(Node {
                    path: Arc::from(path),
                    nlookup: 1,
                });
            }
        }
        Ok(attr)
    }

    /// Finishes creating `path` (open as `fd`, if given): gives it the caller's uid and gid,
    /// then counts the kernel's lookup. The caller removes `path` if this fails.
    fn finish_create(&self, req: &Request, path: CString, fd: Option<RawFd>) -> Res<FileAttr> {
        let stat = || match fd {
            Some(fd) => fstat(fd),
            None => fstatat(self.rootfd(), &path),
        };
        let mut st = stat()?;
        // Keep a group inherited from a set-group-ID parent directory.
        let gid = if st.st_gid == self.egid {
            req.gid()
        } else {
            st.st_gid
        };
        if st.st_uid != req.uid() || st.st_gid != gid {
            // SAFETY: plain syscalls on a valid fd / NUL-terminated path.
            check(unsafe {
                match fd {
                    Some(fd) => libc::fchown(fd, req.uid(), gid),
                    None => libc::fchownat(
                        self.rootfd(),
                        path.as_ptr(),
                        req.uid(),
                        gid,
                        libc::AT_SYMLINK_NOFOLLOW,
                    ),
                }
            })?;
            st = stat()?;
        }
        self.remember(path, &st)
    }

    /// Removes a node whose creation could not be finished.
    fn undo_create(&self, path: &CStr, dir: bool) {
        let flags = if dir { libc::AT_REMOVEDIR } else { 0 };
        // SAFETY: NUL-terminated path; the result is deliberately ignored (best effort).
        unsafe { libc::unlinkat(self.rootfd(), path.as_ptr(), flags) };
    }

    /// Backing `open` flags for FUSE open flags.
    fn open_flags(&self, flags: i32) -> i32 {
        // O_DIRECT would need aligned buffers; the kernel already honours it on the FUSE side.
        let mut f = flags & !(libc::O_NOCTTY | libc::O_DIRECT);
        if self.writeback {
            // With the writeback cache the kernel reads pages of write-only files and handles
            // O_APPEND itself.
            if f & libc::O_ACCMODE == libc::O_WRONLY {
                f = (f & !libc::O_ACCMODE) | libc::O_RDWR;
            }
            f &= !libc::O_APPEND;
        }
        f | libc::O_CLOEXEC
    }

    fn do_lookup(&self, parent: INodeNo, name: &OsStr) -> Res<FileAttr> {
        let path = self.child_path(parent, name)?;
        let st = fstatat(self.rootfd(), &path)?;
        self.remember(path, &st)
    }

    fn do_getattr(&self, ino: INodeNo, fh: Option<FileHandle>) -> Res<FileAttr> {
        let st = match fh {
            Some(fh) => fstat(fh.0 as RawFd)?,
            None => fstatat(self.rootfd(), &self.path(ino)?)?,
        };
        let attr = self.attr(&st);
        if attr.ino != ino {
            // The name now holds another file: ours was unlinked or replaced.
            return Err(Errno::ENOENT);
        }
        Ok(attr)
    }

    #[allow(clippy::too_many_arguments)]
    fn do_setattr(
        &self,
        ino: INodeNo,
        fh: Option<FileHandle>,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
    ) -> Res<FileAttr> {
        let fd = fh.map(|fh| fh.0 as RawFd);
        let path = self.path(ino)?;
        let dirfd = self.rootfd();
        let p = path.as_ptr();
        // SAFETY (all blocks below): plain syscalls on valid fds and NUL-terminated paths.
        if let Some(mode) = mode {
            let mode = mode & 0o7777;
            check(unsafe {
                match fd {
                    Some(fd) => libc::fchmod(fd, mode),
                    None => libc::fchmodat(dirfd, p, mode, 0),
                }
            })?;
        }
        if uid.is_some() || gid.is_some() {
            let (uid, gid) = (uid.unwrap_or(u32::MAX), gid.unwrap_or(u32::MAX));
            check(unsafe {
                match fd {
                    Some(fd) => libc::fchown(fd, uid, gid),
                    None => libc::fchownat(dirfd, p, uid, gid, libc::AT_SYMLINK_NOFOLLOW),
                }
            })?;
        }
        if let Some(size) = size {
            let size = libc::off_t::try_from(size).map_err(|_| Errno::EFBIG)?;
            match fd {
                Some(fd) => {
                    check(unsafe { libc::ftruncate(fd, size) })?;
                }
                None => {
                    let fd = check(unsafe {
                        libc::openat(
                            dirfd,
                            p,
                            libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                        )
                    })?;
                    // SAFETY: `fd` was just opened and is owned by nobody else.
                    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                    check(unsafe { libc::ftruncate(fd.as_raw_fd(), size) })?;
                }
            }
        }
        if atime.is_some() || mtime.is_some() {
            let times = [timespec(atime), timespec(mtime)];
            check(unsafe {
                match fd {
                    Some(fd) => libc::futimens(fd, times.as_ptr()),
                    None => libc::utimensat(dirfd, p, times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW),
                }
            })?;
        }
        let st = match fd {
            Some(fd) => fstat(fd)?,
            None => fstatat(dirfd, &path)?,
        };
        Ok(self.attr(&st))
    }

    fn do_rename(
        &self,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> Res<()> {
        let old = self.child_path(parent, name)?;
        let new = self.child_path(newparent, newname)?;
        let dirfd = self.rootfd();
        // SAFETY: NUL-terminated paths.
        check(unsafe { libc::renameat2(dirfd, old.as_ptr(), dirfd, new.as_ptr(), flags.bits()) })?;
        let exchange = flags.contains(RenameFlags::RENAME_EXCHANGE);
        let moved = fstatat(dirfd, &new).ok();
        let mut nodes = self.nodes.write();
        match moved {
            // A single non-directory moved: only its own path changes.
            Some(st) if !exchange && file_type(st.st_mode) != FileType::Directory => {
                if let Some(node) = nodes.get_mut(&self.fuse_ino(st.st_ino))
                    && *node.path == *old
                {
                    node.path = Arc::from(new);
                }
            }
            // A directory (or an exchange): every path below it changes too.
            _ => {
                for node in nodes.values_mut() {
                    let rebased = rebase(&node.path, &old, &new).or_else(|| {
                        if exchange {
                            rebase(&node.path, &new, &old)
                        } else {
                            None
                        }
                    });
                    if let Some(p) = rebased {
                        node.path = p;
                    }
                }
            }
        }
        Ok(())
    }

    fn do_open(&self, ino: INodeNo, flags: OpenFlags) -> Res<FileHandle> {
        let path = self.path(ino)?;
        let flags = self.open_flags(flags.0) & !(libc::O_CREAT | libc::O_EXCL);
        // SAFETY: NUL-terminated path.
        let fd = check(unsafe { libc::openat(self.rootfd(), path.as_ptr(), flags) })?;
        Ok(FileHandle(fd as u64))
    }

    fn do_create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        flags: i32,
    ) -> Res<(FileAttr, FileHandle)> {
        let path = self.child_path(parent, name)?;
        let flags = self.open_flags(flags) | libc::O_CREAT;
        // SAFETY: NUL-terminated path.
        let fd = check(unsafe { libc::openat(self.rootfd(), path.as_ptr(), flags, mode) })?;
        match self.finish_create(req, path.clone(), Some(fd)) {
            Ok(attr) => Ok((attr, FileHandle(fd as u64))),
            Err(e) => {
                // SAFETY: `fd` is ours and not handed out.
                unsafe { libc::close(fd) };
                self.undo_create(&path, false);
                Err(e)
            }
        }
    }

    /// Runs `make` to create the node at `parent/name`, then finishes its creation.
    fn make_node(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        dir: bool,
        make: impl FnOnce(&CStr) -> libc::c_int,
    ) -> Res<FileAttr> {
        let path = self.child_path(parent, name)?;
        check(make(&path))?;
        self.finish_create(req, path.clone(), None)
            .inspect_err(|_| {
                self.undo_create(&path, dir);
            })
    }

    fn do_readdir(&self, fh: FileHandle, offset: u64, reply: &mut ReplyDirectory) -> Res<()> {
        let dir = self.dirs.read().get(&fh.0).cloned().ok_or(Errno::EBADF)?;
        let mut entries = dir.entries.lock();
        if offset == 0 {
            *entries = self.read_entries(dir.fd.as_raw_fd())?;
        }
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, e) in entries.iter().enumerate().skip(start) {
            if reply.add(INodeNo(e.ino), (i + 1) as u64, e.kind, &e.name) {
                break;
            }
        }
        Ok(())
    }

    /// All entries of the directory open as `fd`, from its start.
    fn read_entries(&self, fd: RawFd) -> Res<Vec<DirEntry>> {
        // SAFETY: `dup` of a valid fd; `fdopendir` takes ownership of the copy on success.
        let copy = check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) })?;
        let dp = unsafe { libc::fdopendir(copy) };
        if dp.is_null() {
            let e = last_errno();
            unsafe { libc::close(copy) };
            return Err(e);
        }
        // The copy shares its offset with `fd`, which an earlier listing left at the end.
        unsafe { libc::rewinddir(dp) };
        let mut out = Vec::new();
        let result = loop {
            // SAFETY: errno is thread-local; `dp` is a valid stream until `closedir` below.
            unsafe { *libc::__errno_location() = 0 };
            let ent = unsafe { libc::readdir64(dp) };
            if ent.is_null() {
                let err = io::Error::last_os_error();
                break match err.raw_os_error() {
                    Some(0) | None => Ok(()),
                    Some(_) => Err(Errno::from(err)),
                };
            }
            // SAFETY: a non-null entry stays valid until the next `readdir64` call.
            let ent = unsafe { &*ent };
            let name = unsafe { CStr::from_ptr(ent.d_name.as_ptr()) };
            let kind = match ent.d_type {
                libc::DT_DIR => FileType::Directory,
                libc::DT_REG => FileType::RegularFile,
                libc::DT_LNK => FileType::Symlink,
                libc::DT_FIFO => FileType::NamedPipe,
                libc::DT_SOCK => FileType::Socket,
                libc::DT_CHR => FileType::CharDevice,
                libc::DT_BLK => FileType::BlockDevice,
                // DT_UNKNOWN: this filesystem wants a stat; skip entries that vanished since.
                _ => match fstatat(fd, name) {
                    Ok(st) => file_type(st.st_mode),
                    Err(_) => continue,
                },
            };
            out.push(DirEntry {
                ino: self.fuse_ino(ent.d_ino),
                kind,
                name: OsStr::from_bytes(name.to_bytes()).to_owned(),
            });
        };
        // SAFETY: closes the stream and the fd copy it owns.
        unsafe { libc::closedir(dp) };
        result.map(|()| out)
    }
}

impl Filesystem for Passthrough {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        if config
            .add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS)
            .is_err()
        {
            log::warn!("kernel lacks FUSE_PARALLEL_DIROPS");
        }
        if self.writeback
            && config
                .add_capabilities(InitFlags::FUSE_WRITEBACK_CACHE)
                .is_err()
        {
            return Err(io::Error::other(
                "the kernel does not support FUSE_WRITEBACK_CACHE",
            ));
        }
        if let Err(nearest) = config.set_max_write(MAX_WRITE) {
            config
                .set_max_write(nearest)
                .map_err(|_| io::Error::other("cannot set max_write"))?;
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.do_lookup(parent, name) {
            Ok(attr) => reply.entry(&self.ttl, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        if ino == INodeNo::ROOT {
            return;
        }
        let mut nodes = self.nodes.write();
        if let Some(node) = nodes.get_mut(&ino.0) {
            node.nlookup = node.nlookup.saturating_sub(nlookup);
            if node.nlookup == 0 {
                nodes.remove(&ino.0);
            }
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.do_getattr(ino, fh) {
            Ok(attr) => reply.attr(&self.ttl, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let res = self.do_setattr(ino, fh, mode, uid, gid, size, atime, mtime);
        match res {
            Ok(attr) => reply.attr(&self.ttl, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let res = self.path(ino).and_then(|path| {
            let mut buf = vec![0u8; libc::PATH_MAX as usize];
            // SAFETY: NUL-terminated path and a writable buffer of `buf.len()` bytes.
            let n = check_size(unsafe {
                libc::readlinkat(
                    self.rootfd(),
                    path.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            })?;
            buf.truncate(n);
            Ok(buf)
        });
        match res {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let dirfd = self.rootfd();
        let res = self.make_node(req, parent, name, false, |p| {
            // SAFETY: NUL-terminated path.
            unsafe { libc::mknodat(dirfd, p.as_ptr(), mode, libc::dev_t::from(rdev)) }
        });
        match res {
            Ok(attr) => reply.entry(&self.ttl, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let dirfd = self.rootfd();
        let res = self.make_node(req, parent, name, true, |p| {
            // SAFETY: NUL-terminated path.
            unsafe { libc::mkdirat(dirfd, p.as_ptr(), mode) }
        });
        match res {
            Ok(attr) => reply.entry(&self.ttl, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let res = self.child_path(parent, name).and_then(|p| {
            // SAFETY: NUL-terminated path.
            check(unsafe { libc::unlinkat(self.rootfd(), p.as_ptr(), 0) })
        });
        match res {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let res = self.child_path(parent, name).and_then(|p| {
            // SAFETY: NUL-terminated path.
            check(unsafe { libc::unlinkat(self.rootfd(), p.as_ptr(), libc::AT_REMOVEDIR) })
        });
        match res {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let dirfd = self.rootfd();
        let res = CString::new(target.as_os_str().as_bytes())
            .map_err(|_| Errno::EINVAL)
            .and_then(|target| {
                self.make_node(req, parent, link_name, false, |p| {
                    // SAFETY: NUL-terminated paths.
                    unsafe { libc::symlinkat(target.as_ptr(), dirfd, p.as_ptr()) }
                })
            });
        match res {
            Ok(attr) => reply.entry(&self.ttl, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let res = self.do_rename(parent, name, newparent, newname, flags);
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let res = (|| {
            let old = self.path(ino)?;
            let new = self.child_path(newparent, newname)?;
            let dirfd = self.rootfd();
            // SAFETY: NUL-terminated paths.
            check(unsafe { libc::linkat(dirfd, old.as_ptr(), dirfd, new.as_ptr(), 0) })?;
            let st = fstatat(dirfd, &new)?;
            self.remember(new, &st)
        })();
        match res {
            Ok(attr) => reply.entry(&self.ttl, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.do_open(ino, flags) {
            Ok(fh) => reply.opened(fh, FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let res = self.do_create(req, parent, name, mode, flags);
        match res {
            Ok((attr, fh)) => {
                reply.created(&self.ttl, &attr, Generation(0), fh, FopenFlags::empty())
            }
            Err(e) => reply.error(e),
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
        thread_local! {
            static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        BUF.with_borrow_mut(|buf| {
            let size = size as usize;
            if buf.len() < size {
                buf.resize(size, 0);
            }
            let res = pread_full(fh.0 as RawFd, &mut buf[..size], offset);
            match res {
                Ok(n) => reply.data(&buf[..n]),
                Err(e) => reply.error(e),
            }
        });
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
        let res = pwrite_all(fh.0 as RawFd, data, offset);
        match res {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(e),
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
        // Like libfuse's passthrough: closing a duplicate reports any deferred write error
        // (as close(2) on the backing file would) without closing the handle itself.
        // SAFETY: `fh` is an fd we opened; the duplicate is closed at once.
        let res = check(unsafe { libc::dup(fh.0 as RawFd) })
            .and_then(|copy| check(unsafe { libc::close(copy) }));
        match res {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
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
        // SAFETY: the kernel releases each handle exactly once, so nothing uses the fd after.
        let res = check(unsafe { libc::close(fh.0 as RawFd) });
        match res {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let fd = fh.0 as RawFd;
        // SAFETY: `fh` is an fd we opened.
        let res = check(unsafe {
            if datasync {
                libc::fdatasync(fd)
            } else {
                libc::fsync(fd)
            }
        });
        match res {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let res = self.path(ino).and_then(|path| {
            let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
            // SAFETY: NUL-terminated path; the new fd is owned by the handle.
            let fd = check(unsafe { libc::openat(self.rootfd(), path.as_ptr(), flags) })?;
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            // Like a file's, a directory's handle is its fd (unique while the handle is open).
            let fh = fd.as_raw_fd() as u64;
            let handle = DirHandle {
                fd,
                entries: Mutex::new(Vec::new()),
            };
            self.dirs.write().insert(fh, Arc::new(handle));
            Ok(FileHandle(fh))
        });
        match res {
            Ok(fh) => reply.opened(fh, FopenFlags::empty()),
            Err(e) => reply.error(e),
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
        match self.do_readdir(fh, offset, &mut reply) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
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
        self.dirs.write().remove(&fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let mut st = MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: valid fd and out-pointer; read only on success.
        let res = check(unsafe { libc::fstatvfs(self.rootfd(), st.as_mut_ptr()) })
            .map(|_| unsafe { st.assume_init() });
        match res {
            Ok(st) => reply.statfs(
                st.f_blocks,
                st.f_bfree,
                st.f_bavail,
                st.f_files,
                st.f_ffree,
                st.f_bsize as u32,
                st.f_namemax as u32,
                st.f_frsize as u32,
            ),
            Err(e) => reply.error(e),
        }
    }
}

/// A minimal FUSE passthrough of SOURCE_DIR at MOUNTPOINT: the benchmark baseline for snapfs.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Directory whose contents are shown.
    source: PathBuf,
    /// Where to mount them.
    mountpoint: PathBuf,
    /// FUSE worker threads, each with its own cloned /dev/fuse fd.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Ask the kernel for its writeback cache (FUSE_WRITEBACK_CACHE).
    #[arg(long)]
    writeback: bool,
    /// How long the kernel may cache entries and attributes, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    ttl_ms: u64,
}

/// Lets the process keep as many files open as its hard limit allows.
fn raise_nofile_limit() {
    let mut lim = MaybeUninit::<libc::rlimit>::uninit();
    // SAFETY: valid out-pointer, read only on success.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, lim.as_mut_ptr()) } == 0 {
        let mut lim = unsafe { lim.assume_init() };
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            // SAFETY: valid pointer; failure only leaves the old limit.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
                log::warn!("cannot raise RLIMIT_NOFILE: {}", io::Error::last_os_error());
            }
        }
    }
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("snapfs-passthrough: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    if args.threads == 0 {
        bail!("--threads must be at least 1");
    }
    // Modes from the kernel already have the caller's umask applied; don't apply ours as well.
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0) };
    raise_nofile_limit();
    let fs = Passthrough::new(
        &args.source,
        Duration::from_millis(args.ttl_ms),
        args.writeback,
    )?;
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("snapfs-passthrough".into()),
        MountOption::Subtype("snapfs-passthrough".into()),
        MountOption::DefaultPermissions,
    ];
    config.n_threads = Some(args.threads);
    config.clone_fd = true;
    fuser::mount(fs, &args.mountpoint, &config)
        .with_context(|| format!("serving {}", args.mountpoint.display()))
}
