//! Snapshot objects in the chunk store: stored like file data, under the hash of their
//! encoding. An object whose encoding is large (a directory of more than about 1,300 entries)
//! is split into parts behind a multipart object, so callers never see the chunk limit.
//!
//! Parts are cut where the content says (FastCDC), not at fixed offsets: a name added to a
//! directory of 200,000 changes the part it falls in, the first part (which holds the count)
//! and the multipart list, and every other part is the same chunk as in the last snapshot. A
//! snapshot of a big directory with a few names changed therefore stores a few parts, not the
//! whole directory again (and a vault backup sends those alone). Where the cuts fall is not
//! part of the format: readers concatenate whatever parts a multipart object lists.

use std::sync::Arc;

use fastcdc::v2020::FastCDC;

use crate::chunk_store::{ChunkStore, ChunkStoreError};
use crate::format::object::{Multipart, Object, ObjectId};
use crate::format::pack::MAX_CHUNK_LEN;
use crate::id::ChunkId;

/// Encodings up to this long are stored whole, as one chunk.
const WHOLE_UP_TO: usize = 128 << 10;
/// Content-defined parts: about `PART_AVG` long, from `PART_MIN` to `PART_MAX`. Small enough
/// that a change in a big directory stores little, large enough that reading one back takes
/// few chunks (a directory of 200,000 files is a few hundred parts).
const PART_MIN: usize = 32 << 10;
const PART_AVG: usize = 64 << 10;
const PART_MAX: usize = 256 << 10;
/// Fixed parts, for an encoding whose content-defined parts would not fit in one multipart
/// object (over about 1 GiB): a little under the chunk limit, as before content-defined cuts.
const FIXED_PART_LEN: usize = (MAX_CHUNK_LEN as usize) / 2;
/// The most parts a multipart object's encoding (14 bytes and 32 a part) holds in one chunk.
const MAX_PARTS: usize = (MAX_CHUNK_LEN as usize - 14) / 32;

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
        if encoded.len() <= WHOLE_UP_TO {
            return self.chunks.put(encoded);
        }
        let parts = split(encoded)
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

/// The parts of an encoding longer than [`WHOLE_UP_TO`], in order.
fn split(encoded: &[u8]) -> Box<dyn Iterator<Item = &[u8]> + '_> {
    // Every content-defined part but the last is at least PART_MIN long.
    if encoded.len() / PART_MIN >= MAX_PARTS {
        return Box::new(encoded.chunks(FIXED_PART_LEN));
    }
    let cuts = FastCDC::new(encoded, PART_MIN, PART_AVG, PART_MAX);
    Box::new(cuts.map(|cut| &encoded[cut.offset..cut.offset + cut.length]))
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::format::inode::{InodeRecord, Timestamp};
    use crate::format::object::{DirEntryObject, DirectoryObject};
    use crate::testing;
    use proptest::prelude::*;

    fn objects() -> (tempfile::TempDir, TreeObjects) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, live) = testing::new_store(dir.path(), "store");
        (dir, TreeObjects::new(live.chunk_store()))
    }

    fn parts(objects: &TreeObjects, id: &ObjectId) -> Vec<ChunkId> {
        objects.object_chunks(id).expect("object chunks")[1..].to_vec()
    }

    /// A directory of `(name, inode number)`, sorted by name.
    fn directory(names: impl Iterator<Item = (String, u64)>) -> DirectoryObject {
        let mut names: Vec<(String, u64)> = names.collect();
        names.sort();
        DirectoryObject {
            entries: names
                .into_iter()
                .map(|(name, link_id)| DirEntryObject {
                    name: name.into_bytes(),
                    link_id,
                    record: InodeRecord {
                        atime: Timestamp { secs: 1, nanos: 0 },
                        mtime: Timestamp { secs: 1, nanos: 0 },
                        ctime: Timestamp { secs: 1, nanos: 0 },
                        ..InodeRecord::new_directory(0o755, 0, 0)
                    },
                    object: None,
                    xattrs: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_small_object_is_one_chunk() {
        let (_dir, objects) = objects();
        let encoded = directory((0..10).map(|n| (format!("f{n}"), n))).encode();
        let id = objects.put(&encoded).expect("put");
        assert_eq!(id, ChunkId::of(&encoded));
        assert!(parts(&objects, &id).is_empty());
    }

    #[test]
    fn a_big_directory_reads_back_whole() {
        let (_dir, objects) = objects();
        let dir = directory((0..20_000).map(|n| (format!("file-{n:08}"), n)));
        let id = objects.put(&dir.encode()).expect("put");
        assert!(parts(&objects, &id).len() > 4, "a big directory is split");
        assert_eq!(objects.get(&id).expect("get"), Object::Directory(dir));
    }

    /// What a snapshot of a big directory with one name more stores: the parts it does not
    /// share with the last one. Cut at fixed offsets, every part after the new name moved.
    #[test]
    fn a_name_added_to_a_big_directory_changes_a_few_parts() {
        let (_dir, objects) = objects();
        let names = |extra: Option<&str>| {
            let names = (0..50_000).map(|n| (format!("file-{n:08}"), n));
            directory(names.chain(extra.map(|name| (name.to_owned(), 50_000))))
        };
        let before = objects.put(&names(None).encode()).expect("put");
        let after = objects
            .put(&names(Some("file-00025000a")).encode())
            .expect("put");
        let old: HashSet<ChunkId> = parts(&objects, &before).into_iter().collect();
        let new = parts(&objects, &after);
        let added: Vec<&ChunkId> = new.iter().filter(|id| !old.contains(id)).collect();
        assert!(new.len() > 20, "{} parts", new.len());
        assert!(
            added.len() <= 3,
            "{} of {} parts are new",
            added.len(),
            new.len()
        );
    }

    /// Stores written before content-defined cuts hold big objects cut every 512 KiB.
    #[test]
    fn a_big_directory_cut_at_fixed_offsets_reads_back() {
        let (_dir, objects) = objects();
        let dir = directory((0..20_000).map(|n| (format!("file-{n:08}"), n)));
        let encoded = dir.encode();
        let parts = encoded
            .chunks(FIXED_PART_LEN)
            .map(|part| objects.chunks().put(part).expect("put"))
            .collect();
        let multipart = Multipart {
            total_len: encoded.len() as u64,
            parts,
        };
        let id = objects.chunks().put(&multipart.encode()).expect("put");
        assert_eq!(objects.get(&id).expect("get"), Object::Directory(dir));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn content_defined_parts_cover_the_encoding_in_order(
            len in WHOLE_UP_TO + 1..4 * PART_MAX,
            seed: u64,
        ) {
            let encoded = testing::noise(len, seed);
            let parts: Vec<&[u8]> = split(&encoded).collect();
            prop_assert!(parts.iter().all(|p| !p.is_empty() && p.len() <= PART_MAX));
            prop_assert_eq!(parts.concat(), encoded);
        }
    }
}
