//! `verify` (scrub): checks that every chunk the live share and the snapshots use exists and
//! (unless quick) hashes to its name, and names every file each damaged chunk affects.

use std::collections::{BTreeMap, HashMap};

use crate::chunk_store::ChunkStoreError;
use crate::format::object::{Object, ObjectId};
use crate::id::ChunkId;
use crate::path_tree::{PathId, PathTree};
use crate::progress::{Progress, Unit};
use crate::snapshot::Snapshots;

/// What to check.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Only this snapshot (the live share is then skipped).
    pub snapshot: Option<String>,
    /// Check that chunks are indexed and inside an existing pack, without reading them.
    pub quick: bool,
}

/// One damaged chunk and where it is used.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Damage {
    pub chunk: String,
    pub problem: String,
    /// `live:/path` or `snapshot NAME:/path`, sorted.
    pub affected: Vec<String>,
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct VerifyReport {
    pub chunks_checked: u64,
    pub damaged: Vec<Damage>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty()
    }
}

/// Every chunk in use, with the places that use it. A place is a path of the live share or of
/// a snapshot, kept as a [`PathId`]: rendered only for a damaged chunk, so that the walks cost
/// the size of the trees, not the sum of the lengths of their paths (quadratic in their depth).
#[derive(Default)]
struct Uses {
    by_chunk: HashMap<ChunkId, Vec<PathId>>,
    paths: PathTree,
    /// How the places under each root are named in reports: `live`, `snapshot NAME`.
    sources: HashMap<PathId, String>,
}

impl Uses {
    /// The root of a new tree of places, reported as `source:/path`.
    fn source(&mut self, source: String) -> PathId {
        let root = self.paths.root();
        self.sources.insert(root, source);
        root
    }

    fn add(&mut self, chunk: ChunkId, place: PathId) {
        self.by_chunk.entry(chunk).or_default().push(place);
    }

    /// A place as a report names it: `live:/path`, `snapshot NAME:/path`.
    fn describe(&self, place: PathId) -> String {
        let Some((root, path)) = self.paths.render(place) else {
            return String::from("?");
        };
        let source = self.sources.get(&root).map_or("?", String::as_str);
        format!("{source}:{}", String::from_utf8_lossy(&path))
    }
}

/// Walks a snapshot tree, noting for each chunk the paths that use it. A directory or file
/// object that cannot be read is itself a damaged chunk affecting its path. Depth first without
/// recursion: snapshot trees are as deep as users made the share.
fn walk_snapshot(snapshots: &Snapshots, name: &str, root: ObjectId, uses: &mut Uses) {
    let objects = snapshots.objects();
    let top = uses.source(format!("snapshot {name}"));
    let mut pending = vec![(root, top)];
    while let Some((id, place)) = pending.pop() {
        uses.add(id, place);
        if let Ok(parts) = objects.object_chunks(&id) {
            for part in parts.into_iter().skip(1) {
                uses.add(part, place);
            }
        }
        let Ok(object) = objects.get(&id) else {
            continue;
        };
        match object {
            Object::Directory(dir) => {
                for entry in dir.entries {
                    if let Some(child) = entry.object {
                        pending.push((child, uses.paths.child(place, &entry.name)));
                    }
                }
            }
            Object::File(file) => {
                for (_, segment_id) in file.segments {
                    uses.add(segment_id, place);
                    let Ok(Object::Segment(segment)) = objects.get(&segment_id) else {
                        continue;
                    };
                    for (_, chunk) in segment.blocks {
                        uses.add(chunk, place);
                    }
                }
            }
            Object::Segment(_) | Object::Multipart(_) => {}
        }
    }
}

/// Runs a verification, reporting the stored bytes checked (chunks, with `quick`) to
/// `progress`.
pub fn verify(
    snapshots: &Snapshots,
    options: &VerifyOptions,
    progress: &Progress,
) -> Result<VerifyReport, ChunkStoreError> {
    let live = snapshots.live();
    // The index then lists every chunk a write that returned put (the sizes come from it).
    live.commit_now()
        .map_err(|err| ChunkStoreError::Io(std::io::Error::other(err.to_string())))?;
    let chunks = live.chunk_store();
    let mut uses = Uses::default();
    match &options.snapshot {
        Some(name) => {
            let record = snapshots.get(name).ok_or_else(|| {
                ChunkStoreError::Io(std::io::Error::other(format!("no snapshot named {name:?}")))
            })?;
            walk_snapshot(snapshots, name, record.root, &mut uses);
        }
        None => {
            let root = uses.source(String::from("live"));
            let files = live
                .file_paths(&mut uses.paths, root)
                .map_err(|err| ChunkStoreError::Io(std::io::Error::other(err.to_string())))?;
            for (ino, paths) in files {
                let file_chunks = match live.file_chunks(ino) {
                    Ok(file_chunks) => file_chunks,
                    Err(err) => {
                        tracing::error!(%ino, "cannot read a block map: {err}");
                        continue;
                    }
                };
                for chunk in file_chunks {
                    uses.by_chunk
                        .entry(chunk)
                        .or_default()
                        .extend_from_slice(&paths);
                }
            }
            for (name, record) in snapshots.list() {
                walk_snapshot(snapshots, &name, record.root, &mut uses);
            }
        }
    }
    let by_chunk = std::mem::take(&mut uses.by_chunk);
    // A full check reads every frame: its progress is in stored bytes, from the index (a
    // chunk missing from it counts nothing, and is reported damaged below).
    let frame_len: HashMap<ChunkId, u64> = if options.quick {
        progress.stage("checking chunks", Unit::Items, Some(by_chunk.len() as u64));
        HashMap::new()
    } else {
        let sizes: HashMap<ChunkId, u64> = chunks
            .committed_chunks()?
            .into_iter()
            .filter(|(id, _)| by_chunk.contains_key(id))
            .map(|(id, location)| (id, u64::from(location.frame_len)))
            .collect();
        progress.stage("reading chunks", Unit::Bytes, Some(sizes.values().sum()));
        sizes
    };
    let mut report = VerifyReport::default();
    let mut damaged: BTreeMap<String, Damage> = BTreeMap::new();
    for (id, places) in by_chunk {
        let problem = if options.quick {
            chunks.check_present(&id).err().map(|err| err.to_string())
        } else {
            chunks.get(&id).err().map(|err| err.to_string())
        };
        if let Some(problem) = problem {
            let mut affected: Vec<String> =
                places.iter().map(|place| uses.describe(*place)).collect();
            affected.sort();
            affected.dedup();
            damaged.insert(
                id.to_hex(),
                Damage {
                    chunk: id.to_hex(),
                    problem,
                    affected,
                },
            );
        }
        report.chunks_checked += 1;
        progress.add(match options.quick {
            true => 1,
            false => frame_len.get(&id).copied().unwrap_or(0),
        });
    }
    report.damaged = damaged.into_values().collect();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::catalog::Origin;
    use crate::id::InodeNo;
    use crate::testing::{
        DEEP, chain, close, new_store, noise, on_small_stack, open, snapshots_of, write_in,
    };

    /// Flips a byte of the stored frame holding `needle`.
    fn damage(store: &std::path::Path, needle: &[u8]) {
        let packs = std::fs::read_dir(store.join(crate::chunk_store::PACK_DIR)).expect("packs");
        for pack in packs {
            let path = pack.expect("pack").path();
            let mut bytes = std::fs::read(&path).expect("read pack");
            if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
                bytes[at] ^= 1;
                std::fs::write(&path, &bytes).expect("write pack");
                return;
            }
        }
        panic!("the data is in no pack");
    }

    fn run(snapshots: &Snapshots) -> VerifyReport {
        on_small_stack(|| verify(snapshots, &VerifyOptions::default(), &Progress::new()))
            .expect("verify")
    }

    #[test]
    fn a_deep_tree_verifies_and_damage_names_its_deep_paths() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (store, live) = new_store(tmp.path(), "store");
        let bottom = chain(&live, InodeNo::ROOT, b"dir", DEEP);
        let data = noise(4096, 1);
        write_in(&live, bottom, b"leaf", &data);
        let snapshots = snapshots_of(&live);
        snapshots.create("s", Origin::Manual).expect("snapshot");

        let clean = run(&snapshots);
        assert!(clean.is_clean(), "{:?}", clean.damaged);
        assert!(
            clean.chunks_checked > DEEP as u64,
            "every directory object is a chunk checked"
        );

        drop(snapshots);
        close(live);
        damage(&store, &data[1000..1064]);
        let live = open(&store);
        let report = run(&snapshots_of(&live));
        let deep = "/dir".repeat(DEEP);
        assert_eq!(report.damaged.len(), 1, "only the leaf's block");
        assert_eq!(
            report.damaged[0].affected,
            [
                format!("live:{deep}/leaf"),
                format!("snapshot s:{deep}/leaf")
            ]
        );
    }
}
