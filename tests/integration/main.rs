//! Integration tests: every test mounts a real snapfs in a temporary directory and works on it
//! through the kernel, as users and tools do.

mod bad_input;
mod chunk_store;
mod concurrency;
mod conformance;
mod crash;
mod crash_ordering;
mod deep_tree;
mod durability;
mod full_disk;
mod harness;
mod history;
mod history_cli;
mod lifecycle;
mod permissions;
mod posix_ops;
mod privilege;
mod restore;
mod snapshot_cli;
mod snapshots;
mod stress;
mod verify;
