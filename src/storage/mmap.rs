//! Read-only memory maps of pack files. This is the only module with `unsafe` code.
//!
//! Invariant the callers keep: a mapped range is only read after the bytes in it were written
//! to the file (the chunk index publishes a location only after its frame was written), and
//! pack files are never truncated or rewritten while mapped. Every access is bounds-checked
//! against the length the caller vouches for, so a pack that is shorter than the index claims
//! gives an error, not a fault.

use std::fs::File;
use std::io;

use memmap2::{Mmap, MmapOptions};

/// A read-only, shared mapping of the first `len` bytes of a file, which may reach past the
/// file's current end (for a pack still being appended to).
pub struct MappedFile {
    map: Mmap,
}

impl MappedFile {
    pub fn map(file: &File, len: u64) -> io::Result<Self> {
        let len = usize::try_from(len).map_err(|_| io::Error::other("mapping too large"))?;
        // SAFETY: the mapping is read-only and shared; snapfs never truncates or rewrites a pack
        // while it is mapped, and readers only touch ranges already written (module invariant),
        // so the memory behind every slice handed out stays valid and unchanged.
        let map = unsafe { MmapOptions::new().len(len.max(1)).map(file)? };
        Ok(MappedFile { map })
    }

    /// The bytes at `offset..offset + len`, or `None` if the range leaves the mapping.
    pub fn get(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let start = usize::try_from(offset).ok()?;
        self.map.get(start..start.checked_add(len)?)
    }

    /// Drops the pages of a range from this process's page tables once it has been read, so that
    /// streaming through a large store does not grow the daemon's resident set. The data stays in
    /// the kernel's page cache.
    pub fn release(&self, offset: u64, len: usize) {
        let page = 4096usize;
        let Ok(start) = usize::try_from(offset) else {
            return;
        };
        // Only whole pages inside the range are dropped, so a neighbour being read is untouched
        // in the common case; a neighbour page that is dropped is simply faulted in again.
        let first = start.div_ceil(page) * page;
        let end = (start + len) / page * page;
        if end > first {
            // SAFETY: MADV_DONTNEED on a read-only shared file mapping only discards this
            // process's page-table entries; later reads fault the same bytes back in from the
            // page cache, so no slice handed out ever observes different data.
            let _ = unsafe {
                self.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    first,
                    end - first,
                )
            };
        }
    }
}
