//! snapfs: a FUSE file share whose data lives in a verified, deduplicating chunk store.
//!
//! Layers, each depending only on those above it in this list:
//! - [`format`]: every persisted byte layout, pure encode/decode.
//! - `cache`, `held_inodes`, `heap`: in-memory helpers with no knowledge of the layers (a
//!   byte-bounded LRU; the table of inodes the kernel holds, counted by lookups and given back
//!   by `forget`; freed heap memory handed back to the system after large work).
//! - [`metadata_budget`]: how `--metadata-cache` is shared between the namespace, the
//!   snapshot view and the metadata database's page cache.
//! - [`progress`]: how far a long job has got, shared between the work and whoever shows it.
//! - [`access`]: who sent a request, and what permission bits grant them.
//! - [`storage`]: file I/O primitives (memory maps), the store lock.
//! - [`chunk_store`]: blocks stored once under their blake3 hash, compressed, in pack files.
//! - [`meta`]: the metadata database (redb) and its schema.
//! - [`tree_objects`]: snapshot objects (trees) stored in the chunk store.
//! - `path_tree`: paths found by tree walks, stored as links so that deep trees cost no more.
//! - [`blob`]: where a vault's bytes live: a local directory or an S3-compatible object store,
//!   behind one small synchronous trait.
//! - [`live`]: the writable share's POSIX semantics, independent of FUSE.
//! - [`snapshot`]: the snapshot catalog (holds, soft delete) and the read-only view.
//! - [`history`]: diffs between trees and the versions of a path across snapshots.
//! - [`schedule`]: the policy, its scheduled times and retention (pure logic, with the clock).
//! - [`tier`]: cloud tiering: sealed packs and checkpoints of the metadata uploaded to a blob
//!   backend, packs evicted under a cache size and fetched back when read, and `attach`.
//! - [`store`]: a store directory as a whole (init, open; a tiered one connected to its tier).
//! - [`service`]: every request (snapshot, restore, policy, status...) with its job record,
//!   the same for the daemon and for a command on an unmounted store; the scheduler.
//! - [`vault`]: backup vaults: snapshot trees copied, incrementally and optionally encrypted,
//!   into a blob backend; backup, restore to a new store, list, verify, hold/release/delete,
//!   gc and copy between vaults, coordinated by vault locks.
//! - [`fuse`]: the adapter from kernel requests to [`live`].
//! - [`cli`]: the `snapfs` command.
//!
//! `docs/ARCHITECTURE.md` describes the design, the on-disk formats and the crash analysis.

pub mod access;
pub mod blob;
pub mod blocks;
pub(crate) mod cache;
pub mod chunk_store;
pub mod cli;
pub mod format;
pub mod fuse;
pub mod gc;
pub(crate) mod heap;
pub(crate) mod held_inodes;
pub mod history;
pub mod id;
pub mod live;
pub mod meta;
pub mod metadata_budget;
pub mod metrics;
pub(crate) mod path_tree;
pub mod phases;
pub mod progress;
pub mod schedule;
pub mod service;
pub mod snapshot;
pub mod storage;
pub mod store;
#[cfg(test)]
mod testing;
pub mod tier;
pub mod tree_objects;
pub mod vault;
pub mod verify;
