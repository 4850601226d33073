//! `verify` (scrub): checks that every chunk the live share and the snapshots use exists and
//! (unless quick) hashes to its name, and names every file each damaged chunk affects.

use std::collections::{BTreeMap, HashMap};

use crate::chunk_store::ChunkStoreError;
use crate::format::object::{Object, ObjectId};
use crate::id::ChunkId;
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

/// Every chunk in use, with the places that use it.
type Uses = HashMap<ChunkId, Vec<String>>;

/// Walks a snapshot tree, noting for each chunk the paths that use it. A directory or file
/// object that cannot be read is itself a damaged chunk affecting its path.
fn walk_snapshot(snapshots: &Snapshots, name: &str, root: ObjectId, uses: &mut Uses) {
    let objects = snapshots.objects();
    let mut pending = vec![(root, String::from("/"))];
    while let Some((id, path)) = pending.pop() {
        let place = format!("snapshot {name}:{path}");
        uses.entry(id).or_default().push(place.clone());
        if let Ok(parts) = objects.object_chunks(&id) {
            for part in parts.into_iter().skip(1) {
                uses.entry(part).or_default().push(place.clone());
            }
        }
        let Ok(object) = objects.get(&id) else {
            continue;
        };
        match object {
            Object::Directory(dir) => {
                for entry in dir.entries {
                    if let Some(child) = entry.object {
                        let name = String::from_utf8_lossy(&entry.name);
                        let child_path = if path == "/" {
                            format!("/{name}")
                        } else {
                            format!("{path}/{name}")
                        };
                        pending.push((child, child_path));
                    }
                }
            }
            Object::File(file) => {
                for (_, segment_id) in file.segments {
                    uses.entry(segment_id).or_default().push(place.clone());
                    let Ok(Object::Segment(segment)) = objects.get(&segment_id) else {
                        continue;
                    };
                    for (_, chunk) in segment.blocks {
                        uses.entry(chunk).or_default().push(place.clone());
                    }
                }
            }
            Object::Segment(_) | Object::Multipart(_) => {}
        }
    }
}

/// Runs a verification. `progress` is called with the number of chunks checked so far.
pub fn verify(
    snapshots: &Snapshots,
    options: &VerifyOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<VerifyReport, ChunkStoreError> {
    let live = snapshots.live();
    let chunks = live.chunk_store();
    let mut uses: Uses = HashMap::new();
    match &options.snapshot {
        Some(name) => {
            let record = snapshots.get(name).ok_or_else(|| {
                ChunkStoreError::Io(std::io::Error::other(format!("no snapshot named {name:?}")))
            })?;
            walk_snapshot(snapshots, name, record.root, &mut uses);
        }
        None => {
            for (ino, paths) in live.file_paths() {
                let file_chunks = match live.file_chunks(ino) {
                    Ok(file_chunks) => file_chunks,
                    Err(err) => {
                        tracing::error!(%ino, "cannot read a block map: {err}");
                        continue;
                    }
                };
                for chunk in file_chunks {
                    let entry = uses.entry(chunk).or_default();
                    entry.extend(paths.iter().map(|p| format!("live:{p}")));
                }
            }
            for (name, record) in snapshots.list() {
                walk_snapshot(snapshots, &name, record.root, &mut uses);
            }
        }
    }
    let total = uses.len() as u64;
    let mut report = VerifyReport::default();
    let mut damaged: BTreeMap<String, Damage> = BTreeMap::new();
    for (checked, (id, places)) in uses.into_iter().enumerate() {
        let problem = if options.quick {
            chunks.check_present(&id).err().map(|err| err.to_string())
        } else {
            chunks.get(&id).err().map(|err| err.to_string())
        };
        if let Some(problem) = problem {
            let mut affected = places;
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
        if checked % 256 == 0 {
            progress(checked as u64, total);
        }
    }
    progress(total, total);
    report.damaged = damaged.into_values().collect();
    Ok(report)
}
