//! The long-lived threads the data path hashes and compresses on.
//!
//! A write request that carries several whole blocks has each block hashed, compressed and
//! stored on these threads, so one large request uses every core; but no OS thread is ever
//! started per request (spawning and joining threads per 1 MiB write costs tens of
//! microseconds, and under many concurrent writers it would start many more threads than
//! cores). The pool is rayon's: its workers borrow the request's bytes for the duration of a
//! call (as `std::thread::scope` did), which a hand-written pool could only do with `unsafe`
//! lifetime erasure or by copying every byte once more.
//!
//! Invariants: the pool has as many threads as the machine has cores, started once per
//! mounted share and stopped when the share is dropped; a call returns only when every item
//! is done, with the results in the order of the items.

use rayon::prelude::*;

pub(crate) struct DataWorkers {
    pool: rayon::ThreadPool,
}

impl DataWorkers {
    /// Starts one worker per core.
    pub(crate) fn start() -> std::io::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("snapfs-data-{i}"))
            .build()
            .map_err(std::io::Error::other)?;
        Ok(DataWorkers { pool })
    }

    /// Frees `value` on a worker: whoever took it out of a structure under a lock does not
    /// hold the lock for the free (eviction drops thousands of inodes at a time).
    pub(crate) fn free_later<T: Send + 'static>(&self, value: T) {
        self.pool.spawn(move || drop(value));
    }

    /// [`Self::free_later`], for a large free (an eviction round, the listing of a huge
    /// directory), then gives the heap back to the system (`heap::give_back_freed`).
    pub(crate) fn free_and_trim<T: Send + 'static>(&self, value: T) {
        self.pool.spawn(move || {
            drop(value);
            crate::heap::give_back_freed();
        });
    }

    /// `f` of every item, spread over the workers (on the calling thread when there is only
    /// one item or one worker: handing a single block over would only add latency).
    pub(crate) fn map<T: Sync, R: Send>(
        &self,
        items: &[T],
        f: impl Fn(&T) -> R + Sync + Send,
    ) -> Vec<R> {
        if items.len() <= 1 || self.pool.current_num_threads() <= 1 {
            return items.iter().map(f).collect();
        }
        self.pool
            .install(|| items.par_iter().with_max_len(1).map(f).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::DataWorkers;

    #[test]
    fn results_keep_the_order_of_the_items_and_run_on_the_pool() {
        let workers = DataWorkers::start().expect("pool");
        let items: Vec<u64> = (0..100).collect();
        let out = workers.map(&items, |n| {
            let name = std::thread::current().name().map(str::to_owned);
            (n * 2, name)
        });
        assert!(out.iter().map(|(n, _)| *n).eq((0..100).map(|n| n * 2)));
        if workers.pool.current_num_threads() > 1 {
            assert!(
                out.iter().all(|(_, name)| name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("snapfs-data-"))),
                "every item ran on a pool thread: {out:?}"
            );
        }
        // Threads of a pool keep their ids; a thread started per call would bring new ones.
        // (Counting the process's threads would not do: other tests start and end theirs.)
        let mut ids = std::collections::HashSet::new();
        for _ in 0..50 {
            ids.extend(workers.map(&items, |_| std::thread::current().id()));
        }
        assert!(
            ids.len() <= workers.pool.current_num_threads().max(1),
            "no thread is started per call: {} threads ran the items",
            ids.len()
        );
    }
}
