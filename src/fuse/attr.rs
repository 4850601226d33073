//! Conversion of snapfs attributes to the kernel's.

use fuser::{FileAttr, FileType, INodeNo};

use crate::format::inode::InodeKind;
use crate::live::Attr;

pub fn file_type(kind: InodeKind) -> FileType {
    match kind {
        InodeKind::File => FileType::RegularFile,
        InodeKind::Directory => FileType::Directory,
        InodeKind::Symlink => FileType::Symlink,
        InodeKind::Fifo => FileType::NamedPipe,
        InodeKind::Socket => FileType::Socket,
        InodeKind::CharDevice => FileType::CharDevice,
        InodeKind::BlockDevice => FileType::BlockDevice,
    }
}

pub fn file_attr(attr: &Attr, block_size: u32) -> FileAttr {
    let record = &attr.record;
    FileAttr {
        ino: INodeNo(attr.ino.0),
        size: record.size,
        blocks: attr.sectors,
        atime: record.atime.to_system_time(),
        mtime: record.mtime.to_system_time(),
        ctime: record.ctime.to_system_time(),
        crtime: record.ctime.to_system_time(),
        kind: file_type(record.kind),
        perm: record.perm,
        nlink: record.nlink,
        uid: record.uid,
        gid: record.gid,
        rdev: record.rdev,
        // The preferred I/O size: one block, so that cp and friends write whole blocks.
        blksize: block_size,
        flags: 0,
    }
}
