//! Why a request failed, and the errno the writer of the control file sees for it: every error
//! of the lifecycle layers is mapped to an errno here and nowhere else.

use crate::gc::GcError;
use crate::history::HistoryError;
use crate::live::FsError;
use crate::snapshot::{RestoreError, SnapshotError};
use crate::store::StoreError;

/// A refused or failed request: `message` is what the user reads, `errno` what a control-file
/// write returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    pub errno: i32,
    pub message: String,
}

impl ServiceError {
    pub fn invalid(message: impl Into<String>) -> Self {
        ServiceError {
            errno: libc::EINVAL,
            message: message.into(),
        }
    }

    pub fn io(message: impl std::fmt::Display) -> Self {
        ServiceError {
            errno: libc::EIO,
            message: message.to_string(),
        }
    }
}

fn fs_errno(err: &FsError) -> i32 {
    if err.is_no_space() {
        libc::ENOSPC
    } else {
        libc::EIO
    }
}

impl From<SnapshotError> for ServiceError {
    fn from(err: SnapshotError) -> Self {
        ServiceError {
            errno: snapshot_errno(&err),
            message: err.to_string(),
        }
    }
}

fn snapshot_errno(err: &SnapshotError) -> i32 {
    match err {
        SnapshotError::InvalidName { .. } => libc::EINVAL,
        SnapshotError::Exists(_) => libc::EEXIST,
        SnapshotError::NotFound(_) | SnapshotError::NotDeleted(_) => libc::ENOENT,
        SnapshotError::Held { .. } => libc::EPERM,
        SnapshotError::Busy(_) => libc::EBUSY,
        SnapshotError::NumbersExhausted => libc::ENOSPC,
        SnapshotError::Freeze(err) => fs_errno(err),
        SnapshotError::Catalog(_) | SnapshotError::Accounting(_) => libc::EIO,
    }
}

impl From<GcError> for ServiceError {
    fn from(err: GcError) -> Self {
        let errno = match &err {
            GcError::Live(err) => fs_errno(err),
            _ => libc::EIO,
        };
        ServiceError {
            errno,
            message: err.to_string(),
        }
    }
}

impl From<FsError> for ServiceError {
    fn from(err: FsError) -> Self {
        ServiceError {
            errno: fs_errno(&err),
            message: err.to_string(),
        }
    }
}

impl From<HistoryError> for ServiceError {
    fn from(err: HistoryError) -> Self {
        let errno = match &err {
            HistoryError::InvalidPath { .. } => libc::EINVAL,
            HistoryError::Freeze(err) => fs_errno(err),
            _ => libc::EIO,
        };
        ServiceError {
            errno,
            message: err.to_string(),
        }
    }
}

/// The errno of a failed restore, rollback or clone.
pub fn restore_errno(err: &RestoreError) -> i32 {
    match err {
        RestoreError::SnapshotNotFound(_)
        | RestoreError::NotInSnapshot { .. }
        | RestoreError::NoParent(_) => libc::ENOENT,
        RestoreError::Exists(_)
        | RestoreError::Store(StoreError::AlreadyAStore(_) | StoreError::NotEmpty(_)) => {
            libc::EEXIST
        }
        RestoreError::NotDirectory(_) => libc::ENOTDIR,
        RestoreError::InvalidPath { .. } | RestoreError::CloneDestination { .. } => libc::EINVAL,
        RestoreError::NoSpace => libc::ENOSPC,
        RestoreError::Snapshot(inner) => snapshot_errno(inner),
        RestoreError::Chunks(_) | RestoreError::Live(_) | RestoreError::Store(_) => libc::EIO,
    }
}

impl From<RestoreError> for ServiceError {
    fn from(err: RestoreError) -> Self {
        ServiceError {
            errno: restore_errno(&err),
            message: err.to_string(),
        }
    }
}

/// The errno of a vault failure, for the control file and the command's exit.
pub fn vault_errno(err: &crate::vault::VaultError) -> i32 {
    use crate::blob::BlobError;
    use crate::vault::VaultError;
    match err {
        VaultError::NotAVault(_) | VaultError::NoBackup(_) | VaultError::Missing(_) => libc::ENOENT,
        VaultError::AlreadyAVault(_) | VaultError::NameTaken(_) => libc::EEXIST,
        VaultError::NeedKey(_) | VaultError::Ambiguous(_) => libc::EINVAL,
        VaultError::Crypto {
            source: crate::vault::crypto::CryptoError::WrongKey,
            ..
        } => libc::EACCES,
        VaultError::Blob(BlobError::Unreachable { .. }) => libc::EHOSTUNREACH,
        VaultError::Held(_) | VaultError::RetentionLocked { .. } => libc::EPERM,
        VaultError::Snapshot(err) => snapshot_errno(err),
        VaultError::Restore(err) => restore_errno(err),
        _ => libc::EIO,
    }
}

impl From<crate::vault::VaultError> for ServiceError {
    fn from(err: crate::vault::VaultError) -> Self {
        let errno = vault_errno(&err);
        tracing::warn!("vault: {err}");
        ServiceError {
            errno,
            message: err.to_string(),
        }
    }
}
