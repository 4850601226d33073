//! The one error type of the live filesystem. The FUSE adapter maps it to an errno in one place
//! (`fuse::errno`), so every operation here speaks in meanings, not numbers.

use crate::chunk_store::ChunkStoreError;
use crate::meta::MetaError;

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("file exists")]
    Exists,
    #[error("not a directory")]
    NotDirectory,
    #[error("is a directory")]
    IsDirectory,
    #[error("directory not empty")]
    NotEmpty,
    #[error("name too long")]
    NameTooLong,
    #[error("invalid argument")]
    InvalidArgument,
    #[error("operation not permitted")]
    NotPermitted,
    #[error("no such attribute")]
    NoAttribute,
    #[error("buffer too small")]
    Range,
    #[error("attribute too large")]
    TooBig,
    #[error("file too large")]
    FileTooLarge,
    #[error("too many links")]
    TooManyLinks,
    #[error("operation not supported")]
    NotSupported,
    #[error("read-only file system")]
    ReadOnly,
    #[error("bad file handle")]
    BadHandle,
    #[error("no space left on device")]
    NoSpace,
    #[error("data is damaged: {0}")]
    Damaged(#[from] ChunkStoreError),
    #[error("metadata error: {0}")]
    Meta(#[from] MetaError),
    #[error("the store failed to commit and refuses further changes")]
    Poisoned,
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl FsError {
    /// Whether the cause is a full disk (however deep it was reported).
    pub fn is_no_space(&self) -> bool {
        let io = match self {
            FsError::NoSpace => return true,
            FsError::Io(io) | FsError::Damaged(ChunkStoreError::Io(io)) => io,
            _ => return false,
        };
        io.raw_os_error() == Some(libc::ENOSPC)
    }
}

pub type FsResult<T> = Result<T, FsError>;
