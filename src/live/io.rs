//! open, read, write, flush, fsync, release, fallocate and statfs.

use std::sync::atomic::Ordering;

use super::LiveFs;
use super::content::{self, ContentState};
use super::error::{FsError, FsResult};
use super::handles::OpenFile;
use crate::format::inode::InodeKind;
use crate::id::InodeNo;

/// Numbers for statfs(2).
#[derive(Clone, Copy, Debug)]
pub struct FsStats {
    pub block_size: u32,
    pub blocks: u64,
    pub blocks_free: u64,
    pub blocks_available: u64,
    pub files: u64,
    pub files_free: u64,
}

impl LiveFs {
    pub fn open(&self, ino: InodeNo, writable: bool, truncate: bool) -> FsResult<u64> {
        if writable || truncate {
            self.check_writable()?;
        }
        let tree = self.read_loaded(ino)?;
        let node = tree.node(ino)?;
        let content = match (&node.content, node.record.kind) {
            (Some(content), _) => content.clone(),
            (None, InodeKind::Directory) => return Err(FsError::IsDirectory),
            // FIFOs and device nodes are opened by the kernel itself; nothing to do here.
            (None, _) => return Err(FsError::NotSupported),
        };
        node.open_handles.fetch_add(1, Ordering::AcqRel);
        drop(tree);
        if truncate {
            // Under the write gate like a write: a freeze's capture and record see the
            // truncate and its record in `since_freeze` together, never one without the other.
            let _gate = self.write_gate.read();
            let mut state = content.lock();
            if state.size != 0 {
                state.truncate(ino, &self.data_context(), 0)?;
                drop(state);
                self.mark_file_data(ino);
            }
        }
        Ok(self.handles.open_file(OpenFile {
            ino,
            content,
            writable,
        }))
    }

    pub fn read(&self, fh: u64, offset: u64, len: u32) -> FsResult<Vec<u8>> {
        let file = self.handles.file(fh)?;
        let guard = file.content.lock();
        let read = ContentState::read(guard, file.ino, &self.data_context(), offset, len);
        if let Err(FsError::Damaged(err)) = &read {
            // The caller sees EIO only: the log names the file (a path through its first link).
            let path = self.tree.write().path_of(file.ino).unwrap_or_default();
            tracing::error!(
                inode = file.ino.0,
                "reading /{} failed: {err}",
                String::from_utf8_lossy(&path)
            );
        }
        read
    }

    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> FsResult<usize> {
        self.check_writable()?;
        // Before any lock: a tiered store whose cache is full of data not yet uploaded makes
        // the writer wait for uploads (and fail with ENOSPC if none make room in time).
        if let Some(tier) = &self.tier
            && !tier.wait_for_room()
        {
            return Err(FsError::NoSpace);
        }
        let file = self.handles.file(fh)?;
        if !file.writable {
            return Err(FsError::BadHandle);
        }
        let _gate = self.write_gate.read();
        let ctx = self.data_context();
        let stored =
            content::store_whole_blocks(&self.store, &self.workers, self.block_size, offset, data)?;
        let kernel_keeps_times = self
            .kernel
            .get()
            .is_some_and(|kernel| kernel.holds_writes());
        file.content
            .lock()
            .write(file.ino, &ctx, offset, data, &stored, kernel_keeps_times)?;
        self.mark_file_data(file.ino);
        Ok(data.len())
    }

    /// Called at every close(2) of a descriptor: the file's buffered blocks go to the chunk
    /// store, so that an un-fsynced but closed file is in the next periodic commit.
    pub fn flush(&self, fh: u64) -> FsResult<()> {
        let file = self.handles.file(fh)?;
        self.seal_file(&file)
    }

    fn seal_file(&self, file: &OpenFile) -> FsResult<()> {
        let mut state = file.content.lock();
        if state.is_dirty() {
            state.seal_all(file.ino, &self.data_context())?;
            drop(state);
            self.mark_file_data(file.ino);
        }
        Ok(())
    }

    /// Makes the file's data and all metadata changed so far durable.
    pub fn fsync(&self, fh: u64) -> FsResult<()> {
        let file = self.handles.file(fh)?;
        self.seal_file(&file)?;
        self.commit_now()
    }

    /// Makes everything changed so far durable (fsyncdir, syncfs).
    pub fn sync_all(&self) -> FsResult<()> {
        self.commit_now()
    }

    pub fn release(&self, fh: u64) -> FsResult<()> {
        let file = self.handles.close_file(fh)?;
        let sealed = self.seal_file(&file);
        let tree = self.tree.read();
        let Some(node) = tree.nodes.get(&file.ino) else {
            return sealed;
        };
        let last = node.open_handles.fetch_sub(1, Ordering::AcqRel) == 1;
        if last && node.record.nlink == 0 {
            drop(tree);
            let mut tree = self.tree.write();
            let still_unused = tree.nodes.get(&file.ino).is_some_and(|n| {
                n.record.nlink == 0 && n.open_handles.load(Ordering::Acquire) == 0
            });
            if still_unused {
                self.purge(&mut tree, file.ino);
            }
        } else if last && let Some(_no_commit) = self.commits.idle() {
            // Not while a commit holds changes taken from the file and not yet written: the
            // block map loaded again from the database would be the old one.
            file.content.lock().evict();
        }
        sealed
    }

    /// fallocate(2), the modes ext4 has that change what a file reads:
    /// - `0` grows the file to `offset + len` if it is shorter (no space is reserved: blocks
    ///   are allocated when written); `KEEP_SIZE` alone changes nothing.
    /// - `PUNCH_HOLE | KEEP_SIZE` makes the range read as zeros, giving back its whole blocks
    ///   (holes in the block map; gc reclaims chunks nothing else names). `PUNCH_HOLE` without
    ///   `KEEP_SIZE` is refused (`EOPNOTSUPP`), as the kernel and ext4 do.
    /// - `ZERO_RANGE` makes the range read as zeros the same way, and grows the file to
    ///   `offset + len` unless `KEEP_SIZE` is given.
    ///
    /// Held under the write gate like a write, so a snapshot holds it whole or not at all.
    pub fn fallocate(&self, fh: u64, offset: u64, len: u64, mode: i32) -> FsResult<()> {
        self.check_writable()?;
        let file = self.handles.file(fh)?;
        if !file.writable {
            return Err(FsError::BadHandle);
        }
        if len == 0 {
            return Err(FsError::InvalidArgument);
        }
        let end = offset
            .checked_add(len)
            .filter(|end| *end <= content::MAX_FILE_SIZE)
            .ok_or(FsError::FileTooLarge)?;
        const KEEP_SIZE: i32 = libc::FALLOC_FL_KEEP_SIZE;
        const PUNCH_HOLE: i32 = libc::FALLOC_FL_PUNCH_HOLE;
        const ZERO_RANGE: i32 = libc::FALLOC_FL_ZERO_RANGE;
        let (zero, grow) = match mode {
            0 => (false, true),
            KEEP_SIZE => return Ok(()),
            m if m == PUNCH_HOLE | KEEP_SIZE => (true, false),
            ZERO_RANGE => (true, true),
            m if m == ZERO_RANGE | KEEP_SIZE => (true, false),
            _ => return Err(FsError::NotSupported),
        };
        let _gate = self.write_gate.read();
        let ctx = self.data_context();
        let mut state = file.content.lock();
        let mut changed = false;
        if zero {
            state.zero_range(file.ino, &ctx, offset, end)?;
            changed = true;
        }
        if grow && end > state.size {
            state.truncate(file.ino, &ctx, end)?;
            changed = true;
        }
        drop(state);
        if changed {
            self.mark_file_data(file.ino);
        }
        Ok(())
    }

    pub fn statfs(&self) -> FsResult<FsStats> {
        // The share can hold what the file system under the store can hold.
        let host = nix::sys::statvfs::statvfs(&self.store_dir).map_err(std::io::Error::from)?;
        let files = self.tree.read().inode_count();
        let block_size = 4096u32;
        let scale = |n: u64| n * host.fragment_size() / u64::from(block_size);
        Ok(FsStats {
            block_size,
            blocks: scale(host.blocks()),
            blocks_free: scale(host.blocks_free()),
            blocks_available: scale(host.blocks_available()),
            files: files + host.files_free(),
            files_free: host.files_free(),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::id::InodeNo;
    use crate::testing::{BLOCK_SIZE, ROOT_USER, close, lookup, new_store, open};

    const PUNCH: i32 = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    const ZERO: i32 = libc::FALLOC_FL_ZERO_RANGE;
    const ZERO_KEEP: i32 = libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE;

    /// A small deterministic generator (xorshift64*), so a failing sequence replays exactly.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn read_all(live: &super::LiveFs, fh: u64, len: usize) -> Vec<u8> {
        live.read(fh, 0, u32::try_from(len + 4096).expect("small"))
            .expect("read")
    }

    /// Random writes, punches, zero ranges (growing or not), truncates, flushes and commits
    /// against a byte-vector model: every read matches, across a remount too, and a file
    /// punched to nothing takes no blocks.
    #[test]
    fn punch_and_zero_range_match_a_model() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (store, live) = new_store(tmp.path(), "store");
        let bs = u64::from(BLOCK_SIZE);
        let (attr, mut fh) = live
            .create(InodeNo::ROOT, b"f", 0o644, ROOT_USER)
            .expect("create");
        let ino = attr.ino;
        let mut model: Vec<u8> = Vec::new();
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        let max = 24 * bs;
        for step in 0..3000u32 {
            let offset = rng.below(max);
            let long = rng.below(4) == 0;
            let len = 1 + rng.below(if long { 6 * bs } else { bs + 100 });
            let end = offset + len;
            match rng.below(9) {
                0..=2 => {
                    let byte = 1 + (step % 250) as u8;
                    let data = vec![byte; len as usize];
                    live.write(fh, offset, &data).expect("write");
                    if model.len() < end as usize {
                        model.resize(end as usize, 0);
                    }
                    model[offset as usize..end as usize].fill(byte);
                }
                3 | 4 => {
                    live.fallocate(fh, offset, len, PUNCH).expect("punch");
                    let stop = (end as usize).min(model.len());
                    if (offset as usize) < stop {
                        model[offset as usize..stop].fill(0);
                    }
                }
                5 => {
                    let grow = rng.below(2) == 0;
                    let mode = if grow { ZERO } else { ZERO_KEEP };
                    live.fallocate(fh, offset, len, mode).expect("zero range");
                    let stop = (end as usize).min(model.len());
                    if (offset as usize) < stop {
                        model[offset as usize..stop].fill(0);
                    }
                    if grow && model.len() < end as usize {
                        model.resize(end as usize, 0);
                    }
                }
                6 => {
                    let size = rng.below(max);
                    live.setattr(
                        ino,
                        super::super::SetAttr {
                            size: Some(size),
                            ..Default::default()
                        },
                    )
                    .expect("truncate");
                    model.resize(size as usize, 0);
                }
                7 => live.flush(fh).expect("flush"),
                _ => {
                    live.release(fh).expect("release");
                    live.commit_now().expect("commit");
                    fh = live.open(ino, true, false).expect("reopen");
                }
            }
            let size = lookup(&live, "f").expect("stat").record.size;
            assert_eq!(size, model.len() as u64, "size after step {step}");
            assert!(
                read_all(&live, fh, model.len()) == model,
                "content after step {step}"
            );
        }
        live.release(fh).expect("release");
        close(live);
        let live = open(&store);
        let fh = live.open(ino, true, false).expect("open");
        assert!(read_all(&live, fh, model.len()) == model, "after a remount");
        live.fallocate(fh, 0, max * 2, PUNCH)
            .expect("punch everything");
        assert!(read_all(&live, fh, model.len()).iter().all(|b| *b == 0));
        assert_eq!(lookup(&live, "f").expect("stat").sectors, 0);
        assert_eq!(
            lookup(&live, "f").expect("stat").record.size,
            model.len() as u64
        );
        live.release(fh).expect("release");
        close(live);
    }

    /// `stat` counts the blocks a punched file keeps, also after a remount, before the file
    /// is opened (the count comes from the database, not from a loaded block map).
    #[test]
    fn punched_blocks_leave_st_blocks_across_a_remount() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (store, live) = new_store(tmp.path(), "store");
        let bs = u64::from(BLOCK_SIZE);
        let data: Vec<u8> = (0..8 * bs).map(|i| (i % 251) as u8 + 1).collect();
        let ino = crate::testing::write_file(&live, "f", &data);
        assert_eq!(lookup(&live, "f").expect("stat").sectors, 8 * bs / 512);
        let fh = live.open(ino, true, false).expect("open");
        // Blocks 2..5 whole, plus half of block 1 and half of block 5.
        live.fallocate(fh, bs + bs / 2, 4 * bs, PUNCH)
            .expect("punch");
        assert_eq!(lookup(&live, "f").expect("stat").sectors, 5 * bs / 512);
        live.release(fh).expect("release");
        close(live);
        let live = open(&store);
        assert_eq!(lookup(&live, "f").expect("stat").sectors, 5 * bs / 512);
        let mut want = data.clone();
        want[(bs + bs / 2) as usize..(5 * bs + bs / 2) as usize].fill(0);
        assert!(crate::testing::read_file(&live, "f") == want);
        close(live);
    }

    /// The modes ext4 refuses are refused: a punch that would change the size, a punch
    /// combined with zero range, and unknown flags.
    #[test]
    fn unsupported_fallocate_modes_are_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        let ino = crate::testing::write_file(&live, "f", &[7; 10_000]);
        let fh = live.open(ino, true, false).expect("open");
        for mode in [
            libc::FALLOC_FL_PUNCH_HOLE,
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
            libc::FALLOC_FL_COLLAPSE_RANGE,
            libc::FALLOC_FL_INSERT_RANGE,
        ] {
            let err = live.fallocate(fh, 0, 4096, mode).expect_err("refused");
            assert!(
                matches!(err, super::FsError::NotSupported),
                "mode {mode:#x}: {err}"
            );
        }
        assert!(crate::testing::read_file(&live, "f") == [7; 10_000]);
        live.release(fh).expect("release");
        close(live);
    }
}
