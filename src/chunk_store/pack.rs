//! Pack files on disk: creating, appending frames, and reading them back through a memory map.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::format::pack::{self as format, FrameHeader, PACK_HEADER_LEN};
use crate::id::PackId;
use crate::storage::durable;
use crate::storage::mmap::MappedFile;

pub const PACK_DIR: &str = "packs";
/// How far past a chunk being read the kernel is asked to read the pack ahead, at most.
const READ_AHEAD: u64 = 2 << 20;
/// ... and at most this many times the frame's length: a read of a large block prefetches the
/// next ones, a read of a small object (a directory of a snapshot tree) a few pages only. The
/// hint costs a walk over the page cache of the whole window, even when it is all cached, which
/// would dominate a walk over a tree of small objects (some 30 µs for each object).
const READ_AHEAD_FRAMES: u64 = 16;
/// A pack is closed once it would grow past this size: large enough that a store of a few TiB
/// has a few thousand packs, small enough that compacting one is a short job.
pub const PACK_CAPACITY: u64 = 256 << 20;

pub fn pack_path(dir: &Path, id: PackId) -> PathBuf {
    dir.join(format!("{id}.pack"))
}

pub fn parse_pack_name(path: &Path) -> Option<PackId> {
    let name = path.file_name()?.to_str()?;
    let number = name.strip_suffix(".pack")?;
    if number.len() != 8 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    number.parse().ok().map(PackId)
}

/// One pack file, mapped for reading.
pub struct PackFile {
    pub id: PackId,
    file: File,
    map: MappedFile,
    /// End of the space handed out so far (for a sealed pack: its committed length).
    reserved: AtomicU64,
    /// Whether this mount appends to the pack.
    active: bool,
    /// The bytes read since the last release, `read_start..read_end` (empty when none): what
    /// may be mapped in.
    read_start: AtomicU64,
    read_end: AtomicU64,
    /// Frames reserved but not yet written and published.
    in_flight: AtomicU32,
    /// Frames were written since the last sync.
    unsynced: AtomicBool,
    /// Taken shared by every read of a frame, exclusively while the pack's cached bytes change
    /// under it (evicted, or filled from the object store): a reader never sees a frame half
    /// written or vanishing between its check and its use.
    pub(super) residence: RwLock<()>,
    /// Held while frames of this pack are fetched from the object store, so that readers
    /// missing the same frames fetch them once.
    pub(super) filling: parking_lot::Mutex<()>,
    /// Where the last prefetch of this pack stopped (0: none going on or to continue): a
    /// reader coming near it starts the next one, so a sequential reader keeps a few windows
    /// ahead of it on their way.
    pub(super) prefetched_to: AtomicU64,
    /// When the pack was last read from, in the chunk store's read ticks (least recently used
    /// packs are evicted first).
    pub(super) last_used: AtomicU64,
}

impl PackFile {
    /// Opens a pack written by an earlier mount, cutting it back to `committed_len`.
    pub fn open_sealed(path: &Path, id: PackId, committed_len: u64) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let actual = file.metadata()?.len();
        if actual > committed_len {
            tracing::info!(pack = %id, from = actual, to = committed_len, "cutting uncommitted frames off a pack");
            file.set_len(committed_len)?;
            file.sync_all()?;
        } else if actual < committed_len {
            tracing::error!(pack = %id, actual, committed_len, "pack is shorter than committed; chunks past its end will read as EIO");
        }
        let mut header = [0u8; PACK_HEADER_LEN];
        if let Err(err) = file
            .read_exact_at(&mut header, 0)
            .map_err(|e| e.to_string())
            .and_then(|()| format::decode_pack_header(&header).map_err(|e| e.to_string()))
        {
            // All zeros: a pack of a tiered store whose bytes are in the object store only.
            if header != [0u8; PACK_HEADER_LEN] {
                tracing::error!(pack = %id, "pack header is damaged: {err}");
            }
        }
        let len = actual.min(committed_len);
        let map = MappedFile::map(&file, len)?;
        Ok(PackFile {
            id,
            file,
            map,
            reserved: AtomicU64::new(len),
            active: false,
            read_start: AtomicU64::new(u64::MAX),
            read_end: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            unsynced: AtomicBool::new(false),
            residence: RwLock::new(()),
            filling: parking_lot::Mutex::new(()),
            prefetched_to: AtomicU64::new(0),
            last_used: AtomicU64::new(0),
        })
    }

    /// Creates the file of a pack whose bytes are all in the object store (a store attached
    /// from a checkpoint): `len` bytes long, every one of them a hole until read.
    pub fn create_uncached(dir: &Path, id: PackId, len: u64) -> io::Result<()> {
        let path = pack_path(dir, id);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn create(path: &Path, id: PackId) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        file.write_all_at(&format::encode_pack_header(), 0)?;
        // The pack's name must be durable before any commit can name a chunk inside it.
        file.sync_all()?;
        durable::sync_parent(path)?;
        // Mapped at full capacity: only ranges already written are ever read (see storage::mmap).
        let map = MappedFile::map(&file, PACK_CAPACITY)?;
        Ok(PackFile {
            id,
            file,
            map,
            reserved: AtomicU64::new(PACK_HEADER_LEN as u64),
            active: true,
            read_start: AtomicU64::new(u64::MAX),
            read_end: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            unsynced: AtomicBool::new(false),
            residence: RwLock::new(()),
            filling: parking_lot::Mutex::new(()),
            prefetched_to: AtomicU64::new(0),
            last_used: AtomicU64::new(0),
        })
    }

    /// Writes a frame into space reserved with [`PackWriter::reserve`]; call
    /// [`PackFile::frame_done`] once its location is published (or the write failed).
    pub fn write_frame(&self, offset: u64, header: &FrameHeader, payload: &[u8]) -> io::Result<()> {
        // One write for header and payload: the common raw case would otherwise cost a copy.
        let header_bytes = header.encode();
        self.file.write_all_at(&header_bytes, offset)?;
        self.file
            .write_all_at(payload, offset + header_bytes.len() as u64)?;
        // Set after the write and before the location is published: a commit that stages the
        // location syncs after staging, so it sees the flag (or an earlier sync covered it).
        self.unsynced.store(true, Ordering::Release);
        Ok(())
    }

    /// The bytes of a frame, or `None` if they lie outside the pack.
    pub fn frame(&self, offset: u64, len: u32) -> Option<&[u8]> {
        let written = self.reserved.load(Ordering::Acquire);
        let end = offset.checked_add(u64::from(len))?;
        if end > written {
            return None;
        }
        self.read_start.fetch_min(offset, Ordering::Relaxed);
        self.read_end.fetch_max(end, Ordering::Relaxed);
        let prefetch = (written - end)
            .min(READ_AHEAD)
            .min(u64::from(len) * READ_AHEAD_FRAMES) as usize;
        self.map.get_prefetched(offset, len as usize, prefetch)
    }

    /// Asks the kernel to start reading the written bytes in `offset..end`.
    pub fn will_need(&self, offset: u64, end: u64) {
        let end = end.min(self.reserved.load(Ordering::Acquire));
        if offset < end {
            self.map.will_need(offset, end - offset);
        }
    }

    /// Drops this pack's mapped pages read since the last call. (A read racing with this may
    /// leave its pages mapped until a later call's range covers them: a matter of memory,
    /// never of the bytes read.)
    pub fn release_pages(&self) {
        let start = self.read_start.swap(u64::MAX, Ordering::Relaxed);
        let end = self.read_end.swap(0, Ordering::Relaxed);
        if start < end {
            self.map.release_pages(start, end);
        }
    }

    pub fn frame_done(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    pub fn has_frames_in_flight(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) != 0
    }

    /// Makes the frames written so far durable; a pack nothing was written to since its last
    /// sync is skipped. (Commits run one at a time, so a sync that cleared the flag has
    /// finished before the next commit looks at it.)
    pub fn sync(&self) -> io::Result<()> {
        if self.unsynced.swap(false, Ordering::AcqRel)
            && let Err(err) = self.file.sync_data()
        {
            self.unsynced.store(true, Ordering::Release);
            return Err(err);
        }
        Ok(())
    }

    pub fn written_len(&self) -> u64 {
        self.reserved.load(Ordering::Acquire)
    }

    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Bytes of the local disk the pack takes (less than its length once evicted).
    pub fn allocated_bytes(&self) -> io::Result<u64> {
        use std::os::unix::fs::MetadataExt;
        Ok(self.file.metadata()?.blocks() * 512)
    }

    /// The first `len` bytes of the pack, read from the file (what an upload sends).
    pub fn read_prefix(&self, len: u64) -> io::Result<Vec<u8>> {
        let len = usize::try_from(len).map_err(|_| io::Error::other("pack too large"))?;
        let mut out = vec![0u8; len];
        self.file.read_exact_at(&mut out, 0)?;
        Ok(out)
    }

    /// Gives the local disk space of the pack back (its bytes stay in the object store): the
    /// whole file becomes a hole, which reads as zeros, so no frame in it passes the presence
    /// check until it is filled again. The caller holds `residence` exclusively.
    pub(super) fn punch_out(&self) -> io::Result<()> {
        use nix::fcntl::{FallocateFlags, fallocate};
        let len = self.file.metadata()?.len();
        if len == 0 {
            return Ok(());
        }
        fallocate(
            &self.file,
            FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE,
            0,
            i64::try_from(len).map_err(|_| io::Error::other("pack too large"))?,
        )
        .map_err(io::Error::from)
    }

    /// Writes whole frames fetched from the object store back where they belong. The caller
    /// holds `residence` exclusively. Not synced: a crash loses them from the cache only.
    pub(super) fn fill(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all_at(bytes, offset)
    }
}

/// Hands out space in the active pack, starting a new pack when it is full. Only the
/// reservation is done under the caller's lock; the frame itself is written afterwards.
pub struct PackWriter {
    dir: PathBuf,
    /// Size past which a pack is closed ([`PACK_CAPACITY`], less for a tiered store, whose
    /// sealed packs are what it uploads).
    capacity: u64,
    next_id: PackId,
    current: Option<Arc<PackFile>>,
    /// Every pack this mount has written to; each commit syncs them.
    written: Vec<Arc<PackFile>>,
}

impl PackWriter {
    pub fn new(dir: PathBuf, next_id: PackId) -> Self {
        PackWriter {
            dir,
            capacity: PACK_CAPACITY,
            next_id,
            current: None,
            written: Vec::new(),
        }
    }

    /// Reserves `len` bytes; returns the pack, the offset, and the pack if it was just created.
    pub fn reserve(&mut self, len: u64) -> io::Result<(Arc<PackFile>, u64, Option<Arc<PackFile>>)> {
        let mut created = None;
        let fits = self
            .current
            .as_ref()
            .is_some_and(|pack| pack.written_len() + len <= self.capacity);
        if !fits {
            let id = self.next_id;
            let pack = Arc::new(PackFile::create(&pack_path(&self.dir, id), id)?);
            self.next_id = PackId(id.0 + 1);
            self.current = Some(pack.clone());
            self.written.push(pack.clone());
            created = Some(pack);
        }
        let pack = self
            .current
            .clone()
            .expect("a current pack was just ensured");
        let offset = pack.reserved.fetch_add(len, Ordering::AcqRel);
        pack.in_flight.fetch_add(1, Ordering::AcqRel);
        Ok((pack, offset, created))
    }

    pub fn packs_written(&self) -> Vec<Arc<PackFile>> {
        self.written.clone()
    }

    /// Ends appending to the current pack: the next frame starts a new one.
    pub fn seal_current(&mut self) {
        self.current = None;
    }

    pub fn is_current(&self, id: PackId) -> bool {
        self.current.as_ref().is_some_and(|pack| pack.id == id)
    }

    pub fn set_capacity(&mut self, bytes: u64) {
        self.capacity = bytes.clamp(1 << 20, PACK_CAPACITY);
    }

    /// Numbers the next pack above `id` (so that no number ever given out is used again).
    pub fn skip_past(&mut self, id: PackId) {
        if self.next_id.0 <= id.0 {
            self.next_id = PackId(id.0 + 1);
        }
    }

    pub fn forget(&mut self, id: PackId) {
        self.written.retain(|pack| pack.id != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_names_round_trip() {
        let dir = Path::new("/x");
        assert_eq!(
            parse_pack_name(&pack_path(dir, PackId(42))),
            Some(PackId(42))
        );
        assert_eq!(parse_pack_name(Path::new("/x/42.pack")), None);
        assert_eq!(parse_pack_name(Path::new("/x/0000004a.pack")), None);
    }
}
