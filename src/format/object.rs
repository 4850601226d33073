//! Snapshot objects: the immutable, content-addressed nodes of a snapshot's Merkle tree. Each is
//! stored in the chunk store like file data, under the blake3 hash of its encoding, so equal
//! subtrees are stored once and a tree's root id names the whole tree.
//!
//! ```text
//! object    := kind: u8 | version: u8 = 1 | body
//! segment   (kind 'S'): count: u32 | (index_in_segment: u16 | chunk_id: [u8; 32])*
//! file      (kind 'F'): size: u64 | count: u32 | (segment_no: u64 | segment_id: [u8; 32])*
//! directory (kind 'D'): count: u32 | entry*
//! entry     := name_len: u16 | name | link_id: u64 | inode record (format::inode, length-
//!              prefixed: u32) | object_id: [u8; 32] (file or directory; zeros otherwise)
//!              | xattr_count: u32 | (name_len: u16 | name | value_len: u32 | value)*
//! multipart (kind 'M'): total_len: u64 | count: u32 | part_id: [u8; 32]*
//! ```
//! A file's block map is split into segments of [`SEGMENT_BLOCKS`] blocks, so that changing a
//! little of a large file writes one small segment anew, not the whole map. Holes are absent
//! entries. An encoding longer than a chunk may be is stored as parts behind a multipart object.
//! Entries of a directory are sorted by name and unique; `link_id` is the live inode number, so
//! hard links inside one snapshot share it.

use super::DecodeError;
use super::cursor::Cursor;
use super::inode::InodeRecord;
use crate::id::ChunkId;

/// Blocks per segment of a file's block map.
pub const SEGMENT_BLOCKS: u64 = 1024;
const VERSION: u8 = 1;
const KIND_SEGMENT: u8 = b'S';
const KIND_FILE: u8 = b'F';
const KIND_DIRECTORY: u8 = b'D';
const KIND_MULTIPART: u8 = b'M';
/// Bound on counts read from disk, so a corrupt count cannot make a decoder allocate without
/// limit before it notices the input is too short.
const MAX_ENTRIES: u32 = 1 << 24;

/// Extended attributes as stored in an entry: (name, value), sorted by name.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// The id of a snapshot object (the chunk id of its encoding).
pub type ObjectId = ChunkId;

/// One segment of a file's block map: block index within the segment → chunk.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Segment {
    pub blocks: Vec<(u16, ChunkId)>,
}

/// A file's content: its size and the segments of its block map.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct FileObject {
    pub size: u64,
    pub segments: Vec<(u64, ObjectId)>,
}

/// One name in a directory object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntryObject {
    pub name: Vec<u8>,
    pub link_id: u64,
    pub record: InodeRecord,
    /// The file or directory object; `None` for other kinds.
    pub object: Option<ObjectId>,
    pub xattrs: Xattrs,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DirectoryObject {
    pub entries: Vec<DirEntryObject>,
}

/// A list of parts whose concatenation is one object's encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Multipart {
    pub total_len: u64,
    pub parts: Vec<ChunkId>,
}

/// Any object, as decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Object {
    Segment(Segment),
    File(FileObject),
    Directory(DirectoryObject),
    Multipart(Multipart),
}

fn header(out: &mut Vec<u8>, kind: u8) {
    out.push(kind);
    out.push(VERSION);
}

fn id_or_zero(id: Option<ObjectId>) -> [u8; 32] {
    id.map_or([0; 32], |id| id.0)
}

impl Segment {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(6 + self.blocks.len() * 34);
        header(&mut out, KIND_SEGMENT);
        out.extend_from_slice(&(self.blocks.len() as u32).to_le_bytes());
        for (index, id) in &self.blocks {
            out.extend_from_slice(&index.to_le_bytes());
            out.extend_from_slice(&id.0);
        }
        out
    }
}

impl FileObject {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(14 + self.segments.len() * 40);
        header(&mut out, KIND_FILE);
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&(self.segments.len() as u32).to_le_bytes());
        for (number, id) in &self.segments {
            out.extend_from_slice(&number.to_le_bytes());
            out.extend_from_slice(&id.0);
        }
        out
    }
}

impl DirectoryObject {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        header(&mut out, KIND_DIRECTORY);
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for entry in &self.entries {
            out.extend_from_slice(&(entry.name.len() as u16).to_le_bytes());
            out.extend_from_slice(&entry.name);
            out.extend_from_slice(&entry.link_id.to_le_bytes());
            let record = entry.record.encode();
            out.extend_from_slice(&(record.len() as u32).to_le_bytes());
            out.extend_from_slice(&record);
            out.extend_from_slice(&id_or_zero(entry.object));
            out.extend_from_slice(&(entry.xattrs.len() as u32).to_le_bytes());
            for (name, value) in &entry.xattrs {
                out.extend_from_slice(&(name.len() as u16).to_le_bytes());
                out.extend_from_slice(name);
                out.extend_from_slice(&(value.len() as u32).to_le_bytes());
                out.extend_from_slice(value);
            }
        }
        out
    }
}

impl Multipart {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(14 + self.parts.len() * 32);
        header(&mut out, KIND_MULTIPART);
        out.extend_from_slice(&self.total_len.to_le_bytes());
        out.extend_from_slice(&(self.parts.len() as u32).to_le_bytes());
        for id in &self.parts {
            out.extend_from_slice(&id.0);
        }
        out
    }
}

fn count(cursor: &mut Cursor<'_>) -> Result<usize, DecodeError> {
    let count = cursor.u32()?;
    if count > MAX_ENTRIES {
        return Err(DecodeError::InvalidField {
            field: "count",
            value: count.into(),
        });
    }
    Ok(count as usize)
}

fn optional_id(bytes: [u8; 32]) -> Option<ObjectId> {
    (bytes != [0; 32]).then_some(ChunkId(bytes))
}

impl Object {
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut cursor = Cursor::new(bytes);
        let kind = cursor.u8()?;
        let version = cursor.u8()?;
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion(version.into()));
        }
        let object = match kind {
            KIND_SEGMENT => {
                let n = count(&mut cursor)?;
                let mut blocks = Vec::with_capacity(n.min(SEGMENT_BLOCKS as usize));
                let mut previous = None;
                for _ in 0..n {
                    let index = cursor.u16()?;
                    if u64::from(index) >= SEGMENT_BLOCKS || previous.is_some_and(|p| p >= index) {
                        return Err(DecodeError::InvalidField {
                            field: "segment index",
                            value: index.into(),
                        });
                    }
                    previous = Some(index);
                    blocks.push((index, ChunkId(cursor.array()?)));
                }
                Object::Segment(Segment { blocks })
            }
            KIND_FILE => {
                let size = cursor.u64()?;
                let n = count(&mut cursor)?;
                let mut segments = Vec::with_capacity(n.min(4096));
                let mut previous = None;
                for _ in 0..n {
                    let number = cursor.u64()?;
                    if previous.is_some_and(|p| p >= number) {
                        return Err(DecodeError::InvalidField {
                            field: "segment number",
                            value: number,
                        });
                    }
                    previous = Some(number);
                    segments.push((number, ChunkId(cursor.array()?)));
                }
                Object::File(FileObject { size, segments })
            }
            KIND_DIRECTORY => {
                let n = count(&mut cursor)?;
                let mut entries: Vec<DirEntryObject> = Vec::with_capacity(n.min(4096));
                for _ in 0..n {
                    let name_len = cursor.u16()? as usize;
                    let name = cursor.take(name_len)?.to_vec();
                    if name.is_empty()
                        || name.contains(&b'/')
                        || name.contains(&0)
                        || entries.last().is_some_and(|last| last.name >= name)
                    {
                        return Err(DecodeError::InvalidField {
                            field: "entry name",
                            value: name_len as u64,
                        });
                    }
                    let link_id = cursor.u64()?;
                    let record_len = cursor.u32()? as usize;
                    let record = InodeRecord::decode(cursor.take(record_len)?)?;
                    let object = optional_id(cursor.array()?);
                    let n_xattrs = count(&mut cursor)?;
                    let mut xattrs = Vec::with_capacity(n_xattrs.min(64));
                    for _ in 0..n_xattrs {
                        let name_len = cursor.u16()? as usize;
                        let name = cursor.take(name_len)?.to_vec();
                        let value_len = cursor.u32()? as usize;
                        xattrs.push((name, cursor.take(value_len)?.to_vec()));
                    }
                    entries.push(DirEntryObject {
                        name,
                        link_id,
                        record,
                        object,
                        xattrs,
                    });
                }
                Object::Directory(DirectoryObject { entries })
            }
            KIND_MULTIPART => {
                let total_len = cursor.u64()?;
                let n = count(&mut cursor)?;
                let mut parts = Vec::with_capacity(n.min(4096));
                for _ in 0..n {
                    parts.push(ChunkId(cursor.array()?));
                }
                Object::Multipart(Multipart { total_len, parts })
            }
            other => {
                return Err(DecodeError::InvalidField {
                    field: "object kind",
                    value: other.into(),
                });
            }
        };
        cursor.finish()?;
        Ok(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::inode::{InodeKind, Timestamp};
    use proptest::prelude::*;

    fn record(kind: InodeKind, size: u64) -> InodeRecord {
        InodeRecord {
            kind,
            perm: 0o644,
            uid: 1,
            gid: 2,
            nlink: 1,
            rdev: 0,
            size,
            atime: Timestamp { secs: 1, nanos: 2 },
            mtime: Timestamp { secs: 3, nanos: 4 },
            ctime: Timestamp { secs: 5, nanos: 6 },
            symlink_target: Vec::new(),
        }
    }

    fn id(n: u8) -> ChunkId {
        ChunkId([n; 32])
    }

    #[test]
    fn golden_segment_bytes() {
        let segment = Segment {
            blocks: vec![(3, id(9))],
        };
        let bytes = segment.encode();
        assert_eq!(&bytes[..8], b"S\x01\x01\0\0\0\x03\0");
        assert_eq!(&bytes[8..], &[9; 32]);
    }

    proptest! {
        #[test]
        fn directories_round_trip(names in proptest::collection::btree_set("[a-z]{1,12}", 0..20), size: u64) {
            let entries = names
                .into_iter()
                .enumerate()
                .map(|(i, name)| DirEntryObject {
                    name: name.into_bytes(),
                    link_id: i as u64 + 2,
                    record: record(InodeKind::File, size),
                    object: (i % 2 == 0).then(|| id(i as u8 + 1)),
                    xattrs: vec![(b"user.k".to_vec(), vec![i as u8; i])],
                })
                .collect();
            let dir = DirectoryObject { entries };
            prop_assert_eq!(Object::decode(&dir.encode()), Ok(Object::Directory(dir)));
        }

        #[test]
        fn files_and_segments_round_trip(size: u64, numbers in proptest::collection::btree_set(any::<u64>(), 0..20), indexes in proptest::collection::btree_set(0..1024u16, 0..40)) {
            let file = FileObject { size, segments: numbers.into_iter().map(|n| (n, id(n as u8))).collect() };
            prop_assert_eq!(Object::decode(&file.encode()), Ok(Object::File(file)));
            let segment = Segment { blocks: indexes.into_iter().map(|i| (i, id(i as u8))).collect() };
            prop_assert_eq!(Object::decode(&segment.encode()), Ok(Object::Segment(segment)));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Object::decode(&bytes);
        }

        #[test]
        fn truncated_objects_are_errors(cut in 1..30usize) {
            let dir = DirectoryObject { entries: vec![DirEntryObject {
                name: b"a".to_vec(), link_id: 7, record: record(InodeKind::Directory, 0),
                object: Some(id(1)), xattrs: vec![] }] };
            let bytes = dir.encode();
            prop_assert!(Object::decode(&bytes[..bytes.len() - cut.min(bytes.len())]).is_err());
        }
    }
}
