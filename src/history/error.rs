//! The one error type of diff and log.

use crate::chunk_store::ChunkStoreError;
use crate::format::object::ObjectId;
use crate::live::FsError;

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("cannot freeze the live share: {0}")]
    Freeze(#[from] FsError),
    #[error("snapshot data: {0}")]
    Damaged(#[from] ChunkStoreError),
    /// A directory entry without the id of its directory object: a damaged tree.
    #[error("a directory entry has no directory object")]
    MissingObject,
    /// A directory entry whose object is some other kind of object: a damaged tree.
    #[error("object {0} is named as a directory but is not one")]
    NotADirectory(ObjectId),
}
