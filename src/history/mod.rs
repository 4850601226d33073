//! History: what changed between two trees, and the versions of one path across snapshots.
//!
//! Both work on the Merkle trees of snapshot objects (`format::object`): an object id names a
//! whole subtree, so equal ids mean equal subtrees and are skipped without being read. The cost
//! of a [`diff`] therefore follows the change, not the size of the share, and a [`log`] costs one
//! directory lookup per path component per snapshot, most of them answered by a cache because
//! unchanged directories keep their ids from one snapshot to the next. Neither reads file data.
//!
//! - [`tree`]: a tree's root ([`Tree`]), path resolution, directories decoded through a cache;
//! - [`diff`](mod@diff): the changes between two trees, optionally under one path;
//! - [`log`](mod@log): the distinct versions of one path, in snapshot order;
//! - [`path`]: share-relative paths and their lossless rendering in reports.
//!
//! `snapshot::history_view` serves the same history as `.snapshots/.history/PATH/`.

pub mod diff;
mod error;
pub mod log;
pub mod path;
pub mod tree;

#[cfg(test)]
pub(crate) mod fixture;

pub use diff::{Change, Difference, Stat, diff};
pub use error::HistoryError;
pub use log::{Version, log};
pub use tree::Tree;
