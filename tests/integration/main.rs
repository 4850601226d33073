//! Integration tests: every test mounts a real snapfs in a temporary directory and works on it
//! through the kernel, as users and tools do.

mod accounting;
mod background_jobs;
mod bad_input;
mod blob_s3;
mod chunk_store;
mod concurrency;
mod conformance;
mod crash;
mod crash_ordering;
mod crash_points;
mod deep_tree;
mod durability;
mod full_disk;
mod harness;
mod history;
mod history_cli;
mod hostile;
mod lifecycle;
mod permissions;
mod posix_ops;
mod privilege;
mod restore;
mod s3_server;
mod shutdown;
mod snapshot_cli;
mod snapshots;
mod stress;
mod vault;
mod vault_mount;
mod vault_ops;
mod vault_resilience;
mod vault_restore_into_share;
mod verify;
mod writeback;
