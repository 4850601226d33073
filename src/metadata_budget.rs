//! How `--metadata-cache`, the memory the daemon's metadata may take, is shared out. Four
//! things grow with what is used rather than with the share, and each is bounded by its part:
//! - the share's inodes loaded from the database (`live::evict`): half;
//! - the snapshot inodes the kernel holds (`snapshot::view`): a quarter;
//! - the metadata database's page cache (redb's: pages read, and a write transaction's dirty
//!   pages, which it writes out early past the cache): an eighth;
//! - the ids a walk over every tree has seen (gc's marking, verify; `storage::spill_set`), for
//!   as long as the walk runs, past which they go to a scratch file: an eighth.
//!
//! The database cache gets a small part because it mostly doubles the kernel's page cache: at
//! 1,000,000 files, `find` over the share took 11.2, 12.3 and 12.3 s with a cache of 16, 32 and
//! 64 MiB, and untarring 10,000 files the same time within noise.

/// The memory budget of metadata, in bytes (`--metadata-cache`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetadataBudget(u64);

impl MetadataBudget {
    /// The default of `--metadata-cache`.
    pub const DEFAULT: MetadataBudget = MetadataBudget(128 << 20);

    pub fn new(bytes: u64) -> Self {
        MetadataBudget(bytes)
    }

    /// For the share's inodes in memory.
    pub fn namespace(self) -> u64 {
        self.0 / 2
    }

    /// For the snapshot inodes the kernel holds.
    pub fn snapshot_view(self) -> u64 {
        self.0 / 4
    }

    /// For the metadata database's page cache.
    pub fn database_cache(self) -> usize {
        usize::try_from(self.0 / 8).unwrap_or(usize::MAX)
    }

    /// For the ids a walk over every tree keeps in memory.
    pub fn walk(self) -> u64 {
        self.0 / 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parts_never_exceed_the_whole() {
        for bytes in [0, 1, 3, 64 << 10, 128 << 20, u64::MAX] {
            let budget = MetadataBudget::new(bytes);
            let parts = u128::from(budget.namespace())
                + u128::from(budget.snapshot_view())
                + budget.database_cache() as u128
                + u128::from(budget.walk());
            assert!(parts <= u128::from(bytes), "{bytes}");
        }
    }
}
