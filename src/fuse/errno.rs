//! The one place where filesystem errors become errno values. Internal failures are logged
//! here, with their detail, because the errno the caller sees cannot carry it.

use fuser::Errno;

use crate::live::FsError;

pub fn errno(err: &FsError) -> Errno {
    if err.is_no_space() {
        return Errno::ENOSPC;
    }
    match err {
        FsError::NotFound => Errno::ENOENT,
        FsError::Exists => Errno::EEXIST,
        FsError::NotDirectory => Errno::ENOTDIR,
        FsError::IsDirectory => Errno::EISDIR,
        FsError::NotEmpty => Errno::ENOTEMPTY,
        FsError::NameTooLong => Errno::ENAMETOOLONG,
        FsError::InvalidArgument => Errno::EINVAL,
        FsError::NotPermitted => Errno::EPERM,
        FsError::NoAttribute => Errno::NO_XATTR,
        FsError::Range => Errno::ERANGE,
        FsError::TooBig => Errno::E2BIG,
        FsError::FileTooLarge => Errno::EFBIG,
        FsError::TooManyLinks => Errno::EMLINK,
        FsError::NotSupported => Errno::EOPNOTSUPP,
        FsError::ReadOnly => Errno::EROFS,
        FsError::BadHandle => Errno::EBADF,
        FsError::NoSpace => Errno::ENOSPC,
        FsError::Damaged(_) | FsError::Meta(_) | FsError::Poisoned | FsError::Io(_) => {
            tracing::error!("I/O error reported to the caller: {err}");
            Errno::EIO
        }
    }
}
