//! The space guard: new file data is refused with `ENOSPC` while the file system under the
//! store has less than a reserve left (as ZFS keeps its "slop" space). The reserve is what
//! commits, deletes, snapshot deletes and gc need to get the share out of a full disk: they
//! write metadata, and compaction copies live frames before it frees their pack. Without it,
//! the metadata database could hit the wall in the middle of a commit.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};

/// The reserve: 2% of the file system, at least 16 MiB, at most 1 GiB.
fn reserve(total: u64) -> u64 {
    (total / 50).clamp(16 << 20, 1 << 30)
}

/// Free space is asked of the kernel (statvfs) again after this many bytes were accepted.
const RECHECK_BYTES: i64 = 4 << 20;

#[derive(Default)]
pub struct SpaceGuard {
    /// Bytes that may still be written before free space is asked again.
    budget: AtomicI64,
}

impl SpaceGuard {
    /// Accepts `len` more bytes of new data, or fails with `ENOSPC`.
    pub fn check(&self, dir: &Path, len: u64) -> io::Result<()> {
        if self.budget.fetch_sub(len as i64, Ordering::Relaxed) > len as i64 {
            return Ok(());
        }
        let stats = nix::sys::statvfs::statvfs(dir).map_err(io::Error::from)?;
        let total = stats.blocks() * stats.fragment_size();
        let free = stats.blocks_available() * stats.fragment_size();
        let headroom = free.saturating_sub(reserve(total));
        if headroom < len {
            self.budget.store(0, Ordering::Relaxed);
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        self.budget
            .store(headroom.min(RECHECK_BYTES as u64) as i64, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::reserve;

    #[test]
    fn reserve_bounds() {
        assert_eq!(reserve(100 << 20), 16 << 20);
        assert_eq!(reserve(10 << 30), (10 << 30) / 50);
        assert_eq!(reserve(1 << 50), 1 << 30);
    }
}
