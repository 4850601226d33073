//! Reading snapshot tree objects back from a vault, for the operations that walk a backup's
//! tree there (verify, gc, copy). Each walk is its own loop over an explicit stack; this
//! module only reads one object and says what it points to.

use super::{Vault, VaultError};
use crate::format::object::{Object, ObjectId};
use crate::id::ChunkId;

/// A tree object's encoding may be split into parts of at most this many: the chunk store
/// splits at half a chunk, and an object is bounded (1 MiB chunks, 2^24 entries of well under
/// 64 KiB each would be far larger; this bounds what a damaged vault can make us allocate).
const MAX_OBJECT_LEN: u64 = 1 << 32;

/// One tree object as the vault holds it.
pub(super) struct Node {
    /// The bytes stored under the object's id (for a multipart object, its list of parts).
    pub bytes: Vec<u8>,
    /// A multipart object's parts, with their bytes.
    pub parts: Vec<(ChunkId, Vec<u8>)>,
    /// The decoded object (a multipart object reassembled).
    pub object: Object,
}

/// What a tree object points to.
pub(super) enum Child<'a> {
    /// A directory entry's file or directory object, with the entry's name.
    Tree(ObjectId, &'a [u8]),
    /// A file's segment object.
    Segment(ObjectId),
    /// A chunk of file data.
    Data(ChunkId),
}

fn damaged(id: &ObjectId, reason: impl std::fmt::Display) -> VaultError {
    VaultError::Damaged(format!("tree object {id}: {reason}"))
}

/// Reads and decodes the tree object `id` (each part checked against its id on the way).
pub(super) fn read_node(vault: &Vault, id: &ObjectId) -> Result<Node, VaultError> {
    let bytes = vault.read_object(id)?;
    let object = Object::decode(&bytes).map_err(|err| damaged(id, err))?;
    let Object::Multipart(multipart) = object else {
        return Ok(Node {
            bytes,
            parts: Vec::new(),
            object,
        });
    };
    if multipart.total_len > MAX_OBJECT_LEN {
        return Err(damaged(id, "multipart object too large"));
    }
    let mut whole = Vec::new();
    let mut parts = Vec::with_capacity(multipart.parts.len());
    for part in &multipart.parts {
        let data = vault.read_object(part)?;
        whole.extend_from_slice(&data);
        if whole.len() as u64 > multipart.total_len {
            return Err(damaged(id, "multipart length mismatch"));
        }
        parts.push((*part, data));
    }
    if whole.len() as u64 != multipart.total_len {
        return Err(damaged(id, "multipart length mismatch"));
    }
    match Object::decode(&whole).map_err(|err| damaged(id, err))? {
        Object::Multipart(_) => Err(damaged(id, "nested multipart object")),
        object => Ok(Node {
            bytes,
            parts,
            object,
        }),
    }
}

/// Everything `object` points to, in its order.
pub(super) fn children(object: &Object) -> Vec<Child<'_>> {
    match object {
        Object::Directory(dir) => dir
            .entries
            .iter()
            .filter_map(|entry| entry.object.map(|id| Child::Tree(id, &entry.name[..])))
            .collect(),
        Object::File(file) => file
            .segments
            .iter()
            .map(|(_, segment)| Child::Segment(*segment))
            .collect(),
        Object::Segment(segment) => segment
            .blocks
            .iter()
            .map(|(_, chunk)| Child::Data(*chunk))
            .collect(),
        Object::Multipart(_) => Vec::new(),
    }
}
