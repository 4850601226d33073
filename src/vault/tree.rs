//! Reading snapshot tree objects back from a vault, for the operations that walk a backup's
//! tree there (verify, gc, copy). Each walk is its own loop over an explicit stack; this
//! module only reads one object and says what it points to.

use super::{Vault, VaultError};
use crate::format::object::{Object, ObjectId};
use crate::id::ChunkId;

/// The largest reassembled tree object accepted, as the chunk store's reader does: a damaged
/// multipart list cannot make a walk gather more than this.
const MAX_OBJECT_LEN: u64 = u32::MAX as u64;

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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::blob::{BlobBackend, RemoteStore};
    use crate::format::catalog::Origin;
    use crate::testing::{close, mkdir, new_store, open, read_file, snapshots_of, write_file};
    use crate::vault::tests::{Shared, TEST_KDF};
    use crate::vault::{PACKS, Secret, backup, copy, gc, init, restore, retention, verify};

    /// A directory large enough that its object is stored in parts: verify reads it back, copy
    /// sends its parts before it, gc keeps them, restore rebuilds it.
    #[test]
    fn a_directory_stored_in_parts_is_verified_copied_and_collected() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        let snapshots = snapshots_of(&live);
        mkdir(&live, "many");
        for i in 0..6000 {
            write_file(
                &live,
                &format!("many/a-rather-long-file-name-{i:05}"),
                format!("{i}").as_bytes(),
            );
        }
        snapshots.create("s", Origin::Manual).expect("snapshot");
        let source = Shared(Arc::new(RemoteStore::in_memory()));
        init::init(&source, &Secret::None, TEST_KDF).expect("init");
        let mut vault = Vault::open_backend(Box::new(source.clone()), &Secret::None).expect("open");
        let share = live.share_id().expect("share id");
        backup::backup(
            &mut vault,
            &snapshots,
            "s",
            share,
            &crate::progress::Progress::new(),
        )
        .expect("backup");
        drop(snapshots);
        close(live);

        let (_, record) = vault.find("s").expect("find");
        let root = read_node(&vault, &record.root).expect("root");
        let Object::Directory(dir) = &root.object else {
            panic!("the root is a directory");
        };
        let many = dir.entries[0].object.expect("an object");
        let node = read_node(&vault, &many).expect("many");
        assert!(
            node.parts.len() >= 2,
            "stored in {} parts",
            node.parts.len()
        );

        let report =
            verify::verify(&mut vault, true, &crate::progress::Progress::new()).expect("verify");
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let other = Shared(Arc::new(RemoteStore::in_memory()));
        init::init(&other, &Secret::None, TEST_KDF).expect("init");
        let mut dest = Vault::open_backend(Box::new(other.clone()), &Secret::None).expect("open");
        copy::copy(
            &mut vault,
            &mut dest,
            &[],
            &crate::progress::Progress::new(),
        )
        .expect("copy");
        let report = verify::verify(&mut dest, true, &crate::progress::Progress::new())
            .expect("verify the copy");
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let gc = gc::gc(&mut dest, false).expect("gc");
        assert_eq!(gc.packs_deleted + gc.packs_rewritten, 0, "{gc:?}");
        let restored = tmp.path().join("restored");
        restore::restore(&dest, "s", &restored, &crate::progress::Progress::new())
            .expect("restore");
        let back = open(&restored);
        assert_eq!(
            read_file(&back, "many/a-rather-long-file-name-04321"),
            b"4321"
        );
        back.assert_consistent();
        close(back);

        // With no backup left, gc leaves no pack.
        retention::delete(&dest, &["s".to_owned()]).expect("delete");
        let gc = gc::gc(&mut dest, false).expect("gc");
        assert_eq!(gc.live_objects, 0);
        assert!(other.list(PACKS).expect("list").is_empty());
        assert!(other.list("index").expect("list").is_empty());
    }
}
