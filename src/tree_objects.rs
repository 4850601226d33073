//! Snapshot objects in the chunk store: stored like file data, under the hash of their
//! encoding. An object whose encoding is larger than a chunk may be is split into parts behind
//! a multipart object, so callers never see the limit.

use std::sync::Arc;

use crate::chunk_store::{ChunkStore, ChunkStoreError};
use crate::format::object::{Multipart, Object, ObjectId};
use crate::format::pack::MAX_CHUNK_LEN;
use crate::id::ChunkId;

/// Parts of a multipart object: a little under the chunk limit.
const PART_LEN: usize = (MAX_CHUNK_LEN as usize) / 2;

/// The snapshot objects of one store, kept in its chunk store. Named so it cannot be confused
/// with the `object_store` crate (the blob layer's S3 client). Invariant: an object is stored
/// under the blake3 hash of its (whole) encoding, so an id names exactly one tree.
pub struct TreeObjects {
    chunks: Arc<ChunkStore>,
}

impl TreeObjects {
    pub fn new(chunks: Arc<ChunkStore>) -> Self {
        TreeObjects { chunks }
    }

    pub fn chunks(&self) -> &Arc<ChunkStore> {
        &self.chunks
    }

    pub fn put(&self, encoded: &[u8]) -> Result<ObjectId, ChunkStoreError> {
        if encoded.len() <= PART_LEN {
            return self.chunks.put(encoded);
        }
        let parts = encoded
            .chunks(PART_LEN)
            .map(|part| self.chunks.put(part))
            .collect::<Result<Vec<ChunkId>, _>>()?;
        let multipart = Multipart {
            total_len: encoded.len() as u64,
            parts,
        };
        self.chunks.put(&multipart.encode())
    }

    /// Loads and decodes an object; a multipart object is reassembled first.
    pub fn get(&self, id: &ObjectId) -> Result<Object, ChunkStoreError> {
        Ok(self.get_with_parts(id)?.0)
    }

    /// Loads and decodes an object, with the parts it was reassembled from (none unless it is
    /// multipart).
    pub fn get_with_parts(&self, id: &ObjectId) -> Result<(Object, Vec<ChunkId>), ChunkStoreError> {
        let bytes = self.chunks.get(id)?;
        let corrupt = |reason: String| ChunkStoreError::Corrupt { id: *id, reason };
        match Object::decode(&bytes).map_err(|e| corrupt(format!("snapshot object: {e}")))? {
            Object::Multipart(multipart) => {
                if multipart.total_len > u64::from(u32::MAX) {
                    return Err(corrupt("multipart object too large".into()));
                }
                let mut whole = Vec::with_capacity(multipart.total_len as usize);
                for part in &multipart.parts {
                    whole.extend_from_slice(&self.chunks.get(part)?);
                }
                if whole.len() as u64 != multipart.total_len {
                    return Err(corrupt("multipart length mismatch".into()));
                }
                match Object::decode(&whole)
                    .map_err(|e| corrupt(format!("snapshot object: {e}")))?
                {
                    Object::Multipart(_) => Err(corrupt("nested multipart object".into())),
                    object => Ok((object, multipart.parts)),
                }
            }
            object => Ok((object, Vec::new())),
        }
    }

    /// The chunks an object occupies (itself, and its parts if it is multipart).
    pub fn object_chunks(&self, id: &ObjectId) -> Result<Vec<ChunkId>, ChunkStoreError> {
        let bytes = self.chunks.get(id)?;
        let mut out = vec![*id];
        if let Ok(Object::Multipart(multipart)) = Object::decode(&bytes) {
            out.extend(multipart.parts);
        }
        Ok(out)
    }
}

/// Calls `visit` on every chunk a snapshot tree uses: its objects (and their parts) and the
/// file data they name. `visit` returns false for a chunk seen before; its subtree is then
/// skipped, which makes a walk over many snapshots cost about what they do not share. A loop
/// over an explicit stack: trees are as deep as users make them.
pub fn walk_tree(
    objects: &TreeObjects,
    root: ObjectId,
    visit: &mut dyn FnMut(ChunkId) -> bool,
) -> Result<(), ChunkStoreError> {
    try_walk_tree(objects, root, &mut |id, _| Ok(visit(id)))
}

/// [`walk_tree`] with a visit that may fail (one that keeps what it saw on disk), and is told
/// whether its answer matters: `visit(id, true)` for an object, whose subtree is skipped if
/// it returns false, `visit(id, false)` for a part of an object or file data, which have no
/// subtree. The walk stops at the first error.
pub fn try_walk_tree<E: From<ChunkStoreError>>(
    objects: &TreeObjects,
    root: ObjectId,
    visit: &mut dyn FnMut(ChunkId, bool) -> Result<bool, E>,
) -> Result<(), E> {
    let mut pending = vec![root];
    while let Some(id) = pending.pop() {
        if !visit(id, true)? {
            continue;
        }
        let (object, parts) = objects.get_with_parts(&id)?;
        for part in parts {
            visit(part, false)?;
        }
        match object {
            Object::Directory(dir) => pending.extend(dir.entries.iter().filter_map(|e| e.object)),
            Object::File(file) => pending.extend(file.segments.iter().map(|(_, id)| *id)),
            Object::Segment(segment) => {
                for (_, chunk) in segment.blocks {
                    visit(chunk, false)?;
                }
            }
            Object::Multipart(_) => {}
        }
    }
    Ok(())
}
