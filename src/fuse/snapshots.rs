//! The `.snapshots` side of the mount: the directory of snapshots, the control file, the
//! read-only contents of every snapshot, their history by path (`.snapshots/.history`), and,
//! with `--gmt-names`, every snapshot under a GMT-stamped alias for Samba (`.snapshots/.gmt`,
//! see `snapshot::gmt`).
//! Everything here either reads or acts on the snapshot catalog; any other change is refused
//! with `EROFS` by the router in `fuse/mod.rs`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use fuser::Errno;
use parking_lot::Mutex;

use super::requester::Sender;
use crate::access::Requester;
use crate::format::catalog::{Origin, SnapshotRecord};
use crate::format::inode::{InodeKind, InodeRecord};
use crate::format::object::Xattrs;
use crate::history::HistoryError;
use crate::id::InodeNo;
use crate::live::{Attr, LiveFs};
use crate::schedule::calendar::format_rfc3339;
use crate::service::control::ControlStream;
use crate::service::{Service, ServiceError};
use crate::snapshot::Snapshots;
use crate::snapshot::gmt;
use crate::snapshot::history_view::{HistoryInode, HistoryView};
use crate::snapshot::view::{
    Area, CONTROL_FILE, CONTROL_FILE_NAME, GMT_DIR, GMT_DIR_NAME, HISTORY_DIR, HISTORY_DIR_NAME,
    SNAPSHOTS_DIR, SnapInode, SnapshotView, ViewError, area,
};

/// File handles of this side have the top bit set, so they never meet the live share's.
pub const HANDLE_BIT: u64 = 1 << 63;

pub type Listing = Vec<(Vec<u8>, InodeNo, InodeKind)>;

pub struct SnapshotSide {
    /// The live share and its service: replaced together by a follower as checkpoints arrive
    /// (see [`SnapshotSide::switch_to`]).
    live: ArcSwap<LiveFs>,
    service: ArcSwap<Service>,
    view: Arc<SnapshotView>,
    history: HistoryView,
    /// Whether `.snapshots/.gmt` exists (`--gmt-names`).
    gmt_names: bool,
    /// The outcome of the last command anyone gave.
    last_outcome: Mutex<String>,
    /// Every open control-file handle: its unfinished line, and the outcome of the last
    /// command given through it, so that a script reads back its own result even while others
    /// use the file.
    control_handles: Mutex<HashMap<u64, ControlHandle>>,
    /// Serialises commands, so that an outcome is copied to its handle before the next one.
    /// Taken before `control_handles`.
    commanding: Mutex<()>,
    listings: Mutex<HashMap<u64, Arc<Listing>>>,
    next_handle: AtomicU64,
}

/// One open control file.
#[derive(Default)]
struct ControlHandle {
    stream: ControlStream,
    /// Who gave the last write, as the kernel names a writer: the lock owner, which identifies
    /// the writing process's table of open files. `None` if the kernel did not say.
    writer: Option<u64>,
    /// The outcome of the last command given through it (`ok: ...` or `error: ...`).
    outcome: Option<String>,
    /// The status its reader is reading: taken by a read from offset 0 and kept for the
    /// reads after it, so that a reader sees one status whatever number of reads it takes.
    shown: Option<Status>,
}

fn view_errno(err: ViewError) -> Errno {
    match err {
        ViewError::NotFound => Errno::ENOENT,
        ViewError::NotDirectory => Errno::ENOTDIR,
        ViewError::Damaged(err) => {
            tracing::error!("snapshot read failed: {err}");
            Errno::EIO
        }
        ViewError::History(HistoryError::InvalidPath { .. }) => Errno::ENOENT,
        ViewError::History(err) => {
            tracing::error!("snapshot history failed: {err}");
            Errno::EIO
        }
    }
}

/// What reading the control file returns: the outcome of the last request, then one line per
/// snapshot: `NAME<TAB>created (RFC 3339, UTC)<TAB>manual|automatic<TAB>root object id`.
/// Rendered only as far as the reads go: the command line reads the outcome line alone, and
/// a status of a thousand snapshots need not be written out for it.
struct Status {
    snapshots: Vec<(String, SnapshotRecord)>,
    /// The text so far: the outcome, the count, and the first `lines` snapshots.
    text: Vec<u8>,
    lines: usize,
}

impl Status {
    fn new(last_outcome: &str, snapshots: Vec<(String, SnapshotRecord)>) -> Self {
        let text = format!("last: {last_outcome}\nsnapshots: {}\n", snapshots.len());
        Status {
            snapshots,
            text: text.into_bytes(),
            lines: 0,
        }
    }

    /// The bytes at `offset`, at most `len` of them.
    fn read(&mut self, offset: u64, len: u32) -> Vec<u8> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(len as usize);
        while self.text.len() < end
            && let Some((name, record)) = self.snapshots.get(self.lines)
        {
            // Writing into a Vec cannot fail.
            let _ = writeln!(
                self.text,
                "{name}\t{}\t{}\t{}",
                format_rfc3339(record.created.secs),
                match record.origin {
                    Origin::Manual => "manual",
                    Origin::Automatic => "automatic",
                },
                record.root
            );
            self.lines += 1;
        }
        let start = start.min(self.text.len());
        self.text[start..end.min(self.text.len())].to_vec()
    }
}

impl SnapshotSide {
    pub fn new(live: Arc<LiveFs>, service: Arc<Service>, gmt_names: bool) -> Self {
        SnapshotSide {
            live: ArcSwap::new(live),
            history: HistoryView::new(service.snapshots().clone()),
            gmt_names,
            view: service.view().clone(),
            service: ArcSwap::new(service),
            last_outcome: Mutex::new("none".into()),
            control_handles: Mutex::new(HashMap::new()),
            commanding: Mutex::new(()),
            listings: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
        }
    }

    /// Serves a newer state of the share from now on. The views keep the inodes the kernel
    /// holds: what a snapshot inode stands for (its record and objects) is the same in every
    /// state of the share that still has the snapshot, and reads as `ENOENT` in one that lost
    /// it.
    pub fn switch_to(&self, live: Arc<LiveFs>, service: Arc<Service>) {
        let snapshots = service.snapshots().clone();
        self.view.switch_to(snapshots.clone());
        self.history.switch_to(snapshots);
        self.live.store(live);
        self.service.store(service);
    }

    fn snapshots(&self) -> Arc<Snapshots> {
        self.view.snapshots()
    }

    fn synthetic(&self, ino: InodeNo, kind: InodeKind, perm: u16, nlink: u32) -> Attr {
        let (uid, gid) = self.live.load().owner();
        let created = self
            .snapshots()
            .list()
            .iter()
            .map(|(_, r)| r.created)
            .max()
            .unwrap_or_default();
        Attr {
            ino,
            record: InodeRecord {
                kind,
                perm,
                uid,
                gid,
                nlink,
                rdev: 0,
                size: 0,
                atime: created,
                mtime: created,
                ctime: created,
                symlink_target: Vec::new(),
            },
            sectors: 0,
        }
    }

    fn snap_attr(inode: &SnapInode) -> Attr {
        Attr {
            ino: inode.ino,
            record: inode.record.clone(),
            sectors: inode.record.size.div_ceil(512),
        }
    }

    /// The attributes of what a history inode shows: a history directory is synthetic, like
    /// `.snapshots`.
    fn history_attr(&self, found: Result<HistoryInode, ViewError>) -> Result<Attr, Errno> {
        match found.map_err(view_errno)? {
            HistoryInode::Dir(ino) => Ok(self.synthetic(ino, InodeKind::Directory, 0o755, 2)),
            HistoryInode::Snapshot(inode) => Ok(Self::snap_attr(&inode)),
        }
    }

    /// The snapshot inode `ino` is or shows, if `from` may reach it; `None` for a history
    /// directory.
    fn snap_inode(&self, ino: InodeNo, from: Sender) -> Result<Option<SnapInode>, Errno> {
        if area(ino) == Area::History {
            let who = from.requester();
            return match self.history.inode(ino, &who).map_err(view_errno)? {
                HistoryInode::Dir(_) => Ok(None),
                HistoryInode::Snapshot(inode) => Ok(Some(inode)),
            };
        }
        self.view.inode(ino).map(Some).map_err(view_errno)
    }

    pub fn getattr(&self, ino: InodeNo, from: Sender) -> Result<Attr, Errno> {
        match area(ino) {
            Area::SnapshotsDir => {
                // `.`, `..`, `.history`, `.gmt` if shown, and every snapshot.
                let count = self.snapshots().list().len() as u32 + u32::from(self.gmt_names);
                Ok(self.synthetic(SNAPSHOTS_DIR, InodeKind::Directory, 0o755, 3 + count))
            }
            Area::GmtDir if self.gmt_names => {
                let count = gmt::aliases(&self.snapshots().list()).len() as u32;
                Ok(self.synthetic(GMT_DIR, InodeKind::Directory, 0o555, 2 + count))
            }
            Area::GmtDir => Err(Errno::ENOENT),
            Area::History => self.history_attr(self.history.inode(ino, &from.requester())),
            Area::ControlFile => Ok(self.synthetic(CONTROL_FILE, InodeKind::File, 0o600, 1)),
            Area::Snapshot { .. } => self
                .view
                .inode(ino)
                .map(|i| Self::snap_attr(&i))
                .map_err(view_errno),
            Area::Live => Err(Errno::ENOENT),
        }
    }

    pub fn lookup(&self, parent: InodeNo, name: &[u8], from: Sender) -> Result<Attr, Errno> {
        match area(parent) {
            Area::SnapshotsDir if name == CONTROL_FILE_NAME => self.getattr(CONTROL_FILE, from),
            Area::SnapshotsDir if name == HISTORY_DIR_NAME => self.getattr(HISTORY_DIR, from),
            Area::SnapshotsDir if name == GMT_DIR_NAME => self.getattr(GMT_DIR, from),
            Area::SnapshotsDir => {
                let name = std::str::from_utf8(name).map_err(|_| Errno::ENOENT)?;
                let record = self.snapshots().get(name).ok_or(Errno::ENOENT)?;
                Ok(Self::snap_attr(&self.view.root_inode(&record)))
            }
            Area::Snapshot { .. } => self
                .view
                .lookup(parent, name)
                .map(|i| Self::snap_attr(&i))
                .map_err(view_errno),
            Area::History => {
                let who = from.requester();
                self.history_attr(self.history.lookup(&self.view, parent, name, &who))
            }
            Area::GmtDir if self.gmt_names => {
                let secs = gmt::parse_alias(name).ok_or(Errno::ENOENT)?;
                let snapshots = self.snapshots().list();
                let (_, record) = gmt::owner_of(&snapshots, secs).ok_or(Errno::ENOENT)?;
                Ok(Self::snap_attr(&self.view.alias_root_inode(record)))
            }
            Area::GmtDir => Err(Errno::ENOENT),
            Area::ControlFile => Err(Errno::ENOTDIR),
            Area::Live => self.getattr(SNAPSHOTS_DIR, from),
        }
    }

    pub fn readlink(&self, ino: InodeNo, from: Sender) -> Result<Vec<u8>, Errno> {
        match self.snap_inode(ino, from)? {
            Some(inode) if inode.record.kind == InodeKind::Symlink => {
                Ok(inode.record.symlink_target)
            }
            _ => Err(Errno::EINVAL),
        }
    }

    pub fn opendir(&self, ino: InodeNo, from: Sender) -> Result<u64, Errno> {
        let (parent, entries) = match area(ino) {
            Area::SnapshotsDir => {
                let mut entries: Listing = vec![
                    (CONTROL_FILE_NAME.to_vec(), CONTROL_FILE, InodeKind::File),
                    (HISTORY_DIR_NAME.to_vec(), HISTORY_DIR, InodeKind::Directory),
                ];
                if self.gmt_names {
                    entries.push((GMT_DIR_NAME.to_vec(), GMT_DIR, InodeKind::Directory));
                }
                for (name, record) in self.snapshots().list() {
                    let root = self.view.root_inode(&record);
                    entries.push((name.into_bytes(), root.ino, InodeKind::Directory));
                }
                (InodeNo::ROOT, entries)
            }
            Area::GmtDir if self.gmt_names => {
                let snapshots = self.snapshots().list();
                let entries = gmt::aliases(&snapshots)
                    .into_iter()
                    .map(|(alias, (_, record))| {
                        let root = self.view.alias_root_inode(record);
                        (alias.into_bytes(), root.ino, InodeKind::Directory)
                    })
                    .collect();
                (SNAPSHOTS_DIR, entries)
            }
            Area::Snapshot { .. } => {
                let parent = self.view.inode(ino).map_err(view_errno)?.parent;
                (parent, self.view.list(ino).map_err(view_errno)?)
            }
            Area::History => self
                .history
                .list(&self.view, ino, &from.requester())
                .map_err(view_errno)?,
            _ => return Err(Errno::ENOTDIR),
        };
        let mut listing = vec![
            (b".".to_vec(), ino, InodeKind::Directory),
            (b"..".to_vec(), parent, InodeKind::Directory),
        ];
        listing.extend(entries);
        let fh = HANDLE_BIT | self.next_handle.fetch_add(1, Ordering::Relaxed);
        self.listings.lock().insert(fh, Arc::new(listing));
        Ok(fh)
    }

    /// The kernel gives back `count` references to `ino`: what a snapshot inode stood for is
    /// forgotten with the last. History inodes are kept while mounted (see `history_view`).
    pub fn forget(&self, ino: InodeNo, count: u64) {
        self.view.forget(ino, count);
    }

    pub fn listing(&self, fh: u64) -> Result<Arc<Listing>, Errno> {
        self.listings.lock().get(&fh).cloned().ok_or(Errno::EBADF)
    }

    pub fn releasedir(&self, fh: u64) {
        self.listings.lock().remove(&fh);
    }

    /// The attributes of a listed entry, for readdirplus.
    pub fn entry_attr(
        &self,
        dir: InodeNo,
        name: &[u8],
        ino: InodeNo,
        from: Sender,
    ) -> Result<Attr, Errno> {
        if name == b"." || name == b".." {
            return self
                .getattr(ino, from)
                .or_else(|_| self.live.load().getattr(ino).map_err(|_| Errno::ENOENT));
        }
        self.lookup(dir, name, from)
    }

    /// Opens a snapshot file or a version for reading: a version only if `from` may reach it.
    pub fn open_read_only(&self, ino: InodeNo, from: Sender) -> Result<(), Errno> {
        self.snap_inode(ino, from).map(|_| ())
    }

    /// Opens the control file: each handle keeps its own unfinished line and remembers the
    /// outcome of its own commands.
    pub fn open_control(&self) -> u64 {
        let fh = HANDLE_BIT | self.next_handle.fetch_add(1, Ordering::Relaxed);
        self.control_handles
            .lock()
            .insert(fh, ControlHandle::default());
        fh
    }

    /// The last close of a handle: what it still holds is dropped. An unterminated last line
    /// normally ran when its writer closed the file ([`Self::flush_control`]); one that is
    /// still here was left by a writer that never closed it itself (its descriptor was passed
    /// on), and is reported as everyone's last outcome rather than run unseen.
    pub fn release(&self, fh: u64) {
        if let Some(handle) = self.control_handles.lock().remove(&fh)
            && handle.stream.has_pending()
        {
            let message = "a request without a final newline was dropped: its writer never \
                           closed the control file itself";
            tracing::warn!("{message}");
            *self.last_outcome.lock() = format!("error: {message}");
        }
    }

    pub fn read(&self, ino: InodeNo, fh: u64, offset: u64, len: u32) -> Result<Vec<u8>, Errno> {
        match area(ino) {
            Area::ControlFile => {
                let mut handles = self.control_handles.lock();
                if offset > 0
                    && let Some(status) = handles.get_mut(&fh).and_then(|h| h.shown.as_mut())
                {
                    return Ok(status.read(offset, len));
                }
                let outcome = handles.get(&fh).and_then(|handle| handle.outcome.clone());
                drop(handles);
                let outcome = outcome.unwrap_or_else(|| self.last_outcome.lock().clone());
                let mut status = Status::new(&outcome, self.snapshots().list());
                let bytes = status.read(offset, len);
                if let Some(handle) = self.control_handles.lock().get_mut(&fh) {
                    handle.shown = Some(status);
                }
                Ok(bytes)
            }
            Area::Snapshot { number } => self
                .view
                .read(ino, offset, len, self.live.load().block_size())
                .map_err(|err| {
                    if let ViewError::Damaged(_) = err {
                        // The caller sees EIO only: the log says which snapshot's file it was.
                        let name = self.snapshots().by_number(number).map(|(name, _)| name);
                        tracing::error!(
                            inode = ino.0,
                            "reading a file of snapshot {} failed",
                            name.unwrap_or_default()
                        );
                    }
                    view_errno(err)
                }),
            Area::History => self
                .history
                .read(&self.view, ino, offset, len, self.live.load().block_size())
                .map_err(view_errno),
            _ => Err(Errno::EISDIR),
        }
    }

    /// Takes a write to the control file from `writer` (its lock owner, if the kernel gave
    /// one): runs, in order, every request whose line it ends, stopping at the first that fails
    /// (see [`ControlStream`]). Only the share's owner and root may.
    pub fn write_control(
        &self,
        from: Sender,
        writer: Option<u64>,
        fh: u64,
        data: &[u8],
    ) -> Result<usize, Errno> {
        self.check_owner(from.uid)?;
        if let Some(handle) = self.control_handles.lock().get_mut(&fh) {
            handle.writer = writer;
        }
        let who = from.requester();
        self.feed_control(fh, &who, |stream, run| stream.write(data, run))?;
        Ok(data.len())
    }

    /// A close of a control-file handle by `closer` (its lock owner): if that is who wrote the
    /// unterminated last line waiting there, the line runs now and its failure is what `close`
    /// returns. A close by anyone else is not the writer being done: every process that forks
    /// while the file is open closes its copy at `exec` or exit, which must not cut a line
    /// still being written.
    pub fn flush_control(&self, from: Sender, closer: u64, fh: u64) -> Result<(), Errno> {
        let writer_done = self.control_handles.lock().get(&fh).is_some_and(|handle| {
            handle.stream.has_pending() && handle.writer.is_none_or(|writer| writer == closer)
        });
        if !writer_done {
            return Ok(());
        }
        self.check_owner(from.uid)?;
        self.feed_control(fh, &from.requester(), ControlStream::finish)
    }

    /// Runs `feed` on the stream of handle `fh`, one command at a time, for `who` (what each
    /// may ask is the service's privilege rule), and records the outcome of what it ran for the
    /// handle and as everyone's last outcome.
    fn feed_control(
        &self,
        fh: u64,
        who: &Requester,
        feed: impl FnOnce(
            &mut ControlStream,
            &mut dyn FnMut(crate::service::Request) -> Result<(), ServiceError>,
        ) -> Result<(), ServiceError>,
    ) -> Result<(), Errno> {
        let _one_at_a_time = self.commanding.lock();
        // Out of the table while commands run, so that reads of other handles never wait on a
        // long command.
        let mut stream = match self.control_handles.lock().get_mut(&fh) {
            Some(handle) => std::mem::take(&mut handle.stream),
            None => return Err(Errno::EBADF),
        };
        let mut outcome = None;
        let result = feed(&mut stream, &mut |request| {
            let reply = self.service.load().submit(request, who)?;
            let ok = format!("ok: {reply}");
            *self.last_outcome.lock() = ok.clone();
            outcome = Some(ok);
            Ok(())
        });
        let result = result.map_err(|err| {
            outcome = Some(format!("error: {}", err.message));
            self.failed(err)
        });
        if let Some(handle) = self.control_handles.lock().get_mut(&fh) {
            handle.stream = stream;
            if outcome.is_some() {
                handle.outcome = outcome;
                handle.shown = None;
            }
        }
        result
    }

    /// Records a failure as the outcome; returns the errno for the writer.
    fn failed(&self, err: ServiceError) -> Errno {
        tracing::warn!("control request refused: {}", err.message);
        *self.last_outcome.lock() = format!("error: {}", err.message);
        Errno::from_i32(err.errno)
    }

    fn check_owner(&self, uid: u32) -> Result<(), Errno> {
        if uid == 0 || uid == self.live.load().owner().0 {
            Ok(())
        } else {
            Err(Errno::EACCES)
        }
    }

    /// `mkdir .snapshots/NAME`: take a snapshot.
    pub fn mkdir(&self, uid: u32, name: &[u8]) -> Result<Attr, Errno> {
        self.check_owner(uid)?;
        let _one_at_a_time = self.commanding.lock();
        let name = std::str::from_utf8(name).map_err(|_| Errno::EINVAL)?;
        match self.service.load().create(name, Origin::Manual, false) {
            Ok(created) => {
                *self.last_outcome.lock() = format!("ok: created {name} ({})", created.root);
                let record = self.snapshots().get(name).ok_or(Errno::ENOENT)?;
                Ok(Self::snap_attr(&self.view.root_inode(&record)))
            }
            Err(err) => Err(self.failed(err)),
        }
    }

    /// `rmdir .snapshots/NAME`: delete a snapshot. `.history` is part of the mount, not a
    /// snapshot: read-only, like everything on this side.
    pub fn rmdir(&self, uid: u32, name: &[u8]) -> Result<(), Errno> {
        if name == HISTORY_DIR_NAME || name == CONTROL_FILE_NAME || name == GMT_DIR_NAME {
            return Err(Errno::EROFS);
        }
        self.check_owner(uid)?;
        let _one_at_a_time = self.commanding.lock();
        let name = std::str::from_utf8(name).map_err(|_| Errno::ENOENT)?;
        match self.service.load().delete(name, "delete", false) {
            Ok(_) => {
                *self.last_outcome.lock() = format!("ok: deleted {name}");
                Ok(())
            }
            Err(err) => Err(self.failed(err)),
        }
    }

    pub fn xattrs(&self, ino: InodeNo, from: Sender) -> Result<Xattrs, Errno> {
        match area(ino) {
            Area::Snapshot { .. } | Area::History => Ok(self
                .snap_inode(ino, from)?
                .map(|i| i.xattrs)
                .unwrap_or_default()),
            _ => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::catalog::Hold;
    use crate::format::inode::Timestamp;

    /// Read in pieces of any size, from any offset, the status is the same text.
    #[test]
    fn a_status_read_in_pieces_is_the_status_read_whole() {
        let snapshots: Vec<(String, SnapshotRecord)> = (0..40u8)
            .map(|n| {
                let record = SnapshotRecord {
                    number: u64::from(n),
                    root: crate::id::ChunkId([n; 32]),
                    created: Timestamp {
                        secs: 1_700_000_000 + i64::from(n),
                        nanos: 0,
                    },
                    origin: if n % 2 == 0 {
                        Origin::Manual
                    } else {
                        Origin::Automatic
                    },
                    root_perm: 0o755,
                    root_uid: 0,
                    root_gid: 0,
                    hold: Hold::None,
                    deleted: None,
                };
                (format!("s{n}"), record)
            })
            .collect();
        let whole = Status::new("ok: done", snapshots.clone()).read(0, 1 << 20);
        assert!(whole.starts_with(b"last: ok: done\nsnapshots: 40\ns0\t2023-11-14T22:13:20Z"));
        assert_eq!(whole.iter().filter(|b| **b == b'\n').count(), 42);
        for piece in [1u32, 7, 100, 4096] {
            let mut status = Status::new("ok: done", snapshots.clone());
            let mut read = Vec::new();
            loop {
                let bytes = status.read(read.len() as u64, piece);
                if bytes.is_empty() {
                    break;
                }
                read.extend(bytes);
            }
            assert_eq!(read, whole, "in pieces of {piece}");
        }
        let mut status = Status::new("ok: done", snapshots);
        assert_eq!(
            status.read(200, 50),
            whole[200..250].to_vec(),
            "from the middle"
        );
        assert!(status.read(1 << 30, 10).is_empty(), "past the end");
    }
}
