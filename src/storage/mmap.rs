//! Read-only memory maps of pack files. The only `unsafe` code of the storage layers (the
//! others are the forks of `cli::daemon` and `fuse::writeback`).
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

const PAGE: usize = 4096;

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
    ///
    /// The kernel is asked to read the range and the `prefetch` bytes after it: data written
    /// together lies together in a pack, so a sequential reader of a file finds its next chunks
    /// already on the way, as a plain file's readahead would have them.
    pub fn get_prefetched(&self, offset: u64, len: usize, prefetch: usize) -> Option<&[u8]> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(len)?;
        let bytes = self.map.get(start..end)?;
        let page_start = start / PAGE * PAGE;
        let hint_end = end.saturating_add(prefetch).min(self.map.len());
        // Only a hint: failure just means the pages are faulted in one by one.
        let _ = self
            .map
            .advise_range(memmap2::Advice::WillNeed, page_start, hint_end - page_start);
        Some(bytes)
    }

    /// Asks the kernel to start reading `offset..offset + len` (clipped to the mapping), without
    /// waiting for it.
    pub fn will_need(&self, offset: u64, len: u64) {
        let Ok(start) = usize::try_from(offset) else {
            return;
        };
        let end = usize::try_from(offset.saturating_add(len))
            .unwrap_or(usize::MAX)
            .min(self.map.len());
        let page_start = start / PAGE * PAGE;
        if page_start < end {
            // Only a hint, as in `get_prefetched`.
            let _ = self
                .map
                .advise_range(memmap2::Advice::WillNeed, page_start, end - page_start);
        }
    }

    /// Drops the pages of bytes `offset..end` from this process's page tables (the data stays
    /// in the kernel's page cache), so that streaming through a large store does not grow the
    /// daemon's resident set. The chunk store calls it in batches: it costs a TLB shootdown,
    /// and a walk of the page tables over the range (hence a range, not the whole mapping).
    pub fn release_pages(&self, offset: u64, end: u64) {
        let start = usize::try_from(offset).unwrap_or(usize::MAX) / PAGE * PAGE;
        let end = usize::try_from(end)
            .unwrap_or(usize::MAX)
            .min(self.map.len());
        if start >= end {
            return;
        }
        // SAFETY: MADV_DONTNEED on a read-only shared file mapping only discards this
        // process's page-table entries; later reads fault the same bytes back in from the
        // page cache, so no slice handed out ever observes different data.
        let _ = unsafe {
            self.map
                .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
        };
    }
}
