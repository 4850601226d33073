//! `verify` (scrub): checks that every chunk the live share and the snapshots use exists and
//! (unless quick) hashes to its name, and names every file each damaged chunk affects.
//!
//! Three passes, so that a verification costs the distinct data and not the snapshots times
//! the data (a thousand snapshots of an unchanged tree cost about what one does):
//! 1. **find**: the live share's block maps, then the snapshot trees, each object read (and so
//!    checked) once, however many snapshots share it; the file data they name is gathered
//!    into one set.
//! 2. **check** each data chunk once, in the order the chunks lie in the packs (within each
//!    batch), so that the packs are read front to back.
//! 3. **name**, only when something is damaged: which objects lead to a damaged chunk is found
//!    bottom-up, each object read once more, and each tree is then descended along those alone,
//!    so that only the paths of damaged places are ever built.
//!
//! Memory: the sets of objects walked and data found keep the walk's part of the metadata
//! budget in memory and spill past it (`storage::spill_set`); a full check reads the data in
//! batches that fit the same part. When something is damaged, the third pass keeps a flag per
//! distinct object. Nothing grows with the number of snapshots, and no path is held for a
//! place that is not damaged. The live share is walked one directory at a time, as `readdir`
//! would, so the share is never held for the length of the walk.

use std::collections::{BTreeMap, HashMap};

use crate::chunk_store::{ChunkStore, ChunkStoreError};
use crate::format::location::ChunkLocation;
use crate::format::object::{Object, ObjectId};
use crate::id::ChunkId;
use crate::live::FsError;
use crate::path_tree::{PathId, PathTree};
use crate::progress::{Progress, Unit};
use crate::snapshot::Snapshots;
use crate::storage::spill_set::SpillSet;
use crate::tree_objects::TreeObjects;

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
    /// Distinct chunks checked: objects, their parts and file data, each counted once.
    pub chunks_checked: u64,
    pub damaged: Vec<Damage>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty()
    }
}

fn live_error(err: FsError) -> ChunkStoreError {
    ChunkStoreError::Io(std::io::Error::other(err.to_string()))
}

/// Memory a chunk to read takes in a full check's batch (its location and id).
const FRAME_BYTES: u64 = 64;

/// Runs a verification, reporting the stored bytes checked (chunks, with `quick`) to
/// `progress`.
pub fn verify(
    snapshots: &Snapshots,
    options: &VerifyOptions,
    progress: &Progress,
) -> Result<VerifyReport, ChunkStoreError> {
    let live = snapshots.live();
    // The index then lists every chunk a write that returned put (the sizes come from it).
    live.commit_now().map_err(live_error)?;
    let trees: Vec<(String, ObjectId)> = match &options.snapshot {
        Some(name) => {
            let record = snapshots.get(name).ok_or_else(|| {
                ChunkStoreError::Io(std::io::Error::other(format!("no snapshot named {name:?}")))
            })?;
            vec![(name.clone(), record.root)]
        }
        None => snapshots
            .list()
            .into_iter()
            .map(|(name, record)| (name, record.root))
            .collect(),
    };
    let with_live = options.snapshot.is_none();

    let mut found = Found::new(live.store_dir(), live.metadata_budget().walk());
    progress.stage("walking trees", Unit::Items, Some(trees.len() as u64));
    if with_live {
        live.each_file_chunks(crate::id::InodeNo::ROOT, |_, chunks| {
            for chunk in chunks {
                found.data.add(&chunk.0);
            }
            Ok::<_, FsError>(())
        })
        .map_err(live_error)?;
    }
    for (_, root) in &trees {
        found.walk(snapshots.objects(), *root)?;
        progress.add(1);
    }
    let budget = live.metadata_budget().walk();
    found.check_data(&live.chunk_store(), options.quick, budget, progress)?;
    // What the walk took (a set of every chunk in use) goes back to the system.
    let damaged = std::mem::take(&mut found.damaged);
    let checked = found.checked;
    drop(found);
    crate::heap::give_back_freed();

    let mut report = VerifyReport {
        chunks_checked: checked,
        damaged: Vec::new(),
    };
    if damaged.is_empty() {
        return Ok(report);
    }
    let mut places = Places::default();
    if with_live {
        places.in_live(snapshots, &damaged)?;
    }
    places.in_trees(snapshots.objects(), &trees, &damaged);
    report.damaged = damaged
        .into_iter()
        .map(|(id, problem)| {
            let mut affected: Vec<String> = places
                .by_chunk
                .get(&id)
                .into_iter()
                .flatten()
                .map(|place| places.describe(*place))
                .collect();
            affected.sort();
            affected.dedup();
            Damage {
                chunk: id.to_hex(),
                problem,
                affected,
            }
        })
        .collect();
    Ok(report)
}

/// The first two passes: what is in use, each distinct chunk once, and what is damaged.
struct Found {
    /// Objects walked (readable or not), so that a shared subtree is walked once.
    objects: SpillSet,
    /// File data chunks to check.
    data: SpillSet,
    /// Damaged chunks and what is wrong with each.
    damaged: BTreeMap<ChunkId, String>,
    checked: u64,
}

impl Found {
    /// Sets that keep `budget` bytes in memory between them, spilling to `dir` past it.
    fn new(dir: &std::path::Path, budget: u64) -> Self {
        Found {
            objects: SpillSet::new(dir, budget / 2),
            data: SpillSet::new(dir, budget / 2),
            damaged: BTreeMap::new(),
            checked: 0,
        }
    }

    /// Walks the tree at `root`, skipping each object already walked (and so its subtree).
    /// Depth first without recursion: trees are as deep as users made the share.
    fn walk(&mut self, objects: &TreeObjects, root: ObjectId) -> Result<(), ChunkStoreError> {
        let mut pending = vec![root];
        while let Some(id) = pending.pop() {
            if !self.objects.insert(&id.0)? {
                continue;
            }
            let object = match objects.get_with_parts(&id) {
                Ok((object, parts)) => {
                    self.checked += 1 + parts.len() as u64;
                    object
                }
                Err(err) => {
                    self.unreadable(objects, id, err);
                    continue;
                }
            };
            match object {
                Object::Directory(dir) => {
                    pending.extend(dir.entries.iter().filter_map(|entry| entry.object));
                }
                Object::File(file) => pending.extend(file.segments.iter().map(|(_, id)| *id)),
                Object::Segment(segment) => {
                    for (_, chunk) in segment.blocks {
                        self.data.add(&chunk.0);
                    }
                }
                Object::Multipart(_) => {}
            }
        }
        Ok(())
    }

    /// Finds which chunk of an object that cannot be read is at fault: one of its parts if it
    /// is multipart and a part fails, else its own (missing, damaged, or not an object).
    fn unreadable(&mut self, objects: &TreeObjects, id: ObjectId, err: ChunkStoreError) {
        self.checked += 1;
        let Ok(chunks) = objects.object_chunks(&id) else {
            self.damaged.insert(id, err.to_string());
            return;
        };
        let mut a_part_failed = false;
        for part in chunks.into_iter().skip(1) {
            self.checked += 1;
            if let Err(part_err) = objects.chunks().get(&part) {
                self.damaged.insert(part, part_err.to_string());
                a_part_failed = true;
            }
        }
        if !a_part_failed {
            self.damaged.insert(id, err.to_string());
        }
    }

    /// Checks each data chunk found once (those that are also objects were checked as such).
    /// A full check reads them in the order they lie in the packs, as many at a time as the
    /// walk's memory allows; a chunk the index lacks is checked last, and reported missing.
    fn check_data(
        &mut self,
        chunks: &ChunkStore,
        quick: bool,
        budget: u64,
        progress: &Progress,
    ) -> Result<(), ChunkStoreError> {
        let index = chunks.committed_index()?;
        // Each data chunk that is not an object, with where the index has it (if it does),
        // in the order of chunk ids: both sets and the index are read front to back.
        let each_wanted = |visit: &mut dyn FnMut(
            ChunkId,
            Option<ChunkLocation>,
        ) -> Result<(), ChunkStoreError>| {
            let mut is_object = self.objects.ascending();
            let mut located = index.ascending()?;
            self.data.for_each_sorted(|id| {
                if is_object.contains(id)? {
                    return Ok(());
                }
                let id = ChunkId(*id);
                visit(id, located.find(&id)?)
            })
        };
        let (mut count, mut bytes) = (0, 0);
        let mut missing = Vec::new();
        each_wanted(&mut |id, location| {
            count += 1;
            match location {
                Some(location) => bytes += u64::from(location.frame_len),
                None => missing.push(id),
            }
            Ok(())
        })?;
        let mut check = |id: &ChunkId| {
            let result = match quick {
                true => chunks.check_present(id),
                false => chunks.get(id).map(drop),
            };
            self.checked += 1;
            if let Err(err) = result {
                self.damaged.insert(*id, err.to_string());
            }
        };
        if quick {
            // The missing are checked in this pass too: the check reports them.
            progress.stage("checking chunks", Unit::Items, Some(count));
            return each_wanted(&mut |id, _| {
                check(&id);
                progress.add(1);
                Ok(())
            });
        }
        progress.stage("reading chunks", Unit::Bytes, Some(bytes));
        let at_once = usize::try_from(budget / FRAME_BYTES)
            .unwrap_or(usize::MAX)
            .max(1);
        let mut batch: Vec<(ChunkLocation, ChunkId)> = Vec::new();
        let mut read = |batch: &mut Vec<(ChunkLocation, ChunkId)>| {
            batch.sort_unstable_by_key(|(location, _)| (location.pack, location.offset));
            for (location, id) in batch.drain(..) {
                check(&id);
                progress.add(u64::from(location.frame_len));
            }
        };
        each_wanted(&mut |id, location| {
            if let Some(location) = location {
                batch.push((location, id));
                if batch.len() == at_once {
                    read(&mut batch);
                }
            }
            Ok(())
        })?;
        read(&mut batch);
        missing.iter().for_each(check);
        Ok(())
    }
}

/// The third pass: the places each damaged chunk affects. A place is a path of the live share
/// or of a snapshot, kept as a [`PathId`] and rendered only for the report, so that deep paths
/// cost their depth once.
#[derive(Default)]
struct Places {
    by_chunk: HashMap<ChunkId, Vec<PathId>>,
    paths: PathTree,
    /// How the places under each root are named in reports: `live`, `snapshot NAME`.
    sources: HashMap<PathId, String>,
}

impl Places {
    /// The root of a new tree of places, reported as `source:/path`.
    fn source(&mut self, source: String) -> PathId {
        let root = self.paths.root();
        self.sources.insert(root, source);
        root
    }

    /// A place as a report names it: `live:/path`, `snapshot NAME:/path`.
    fn describe(&self, place: PathId) -> String {
        let Some((root, path)) = self.paths.render(place) else {
            return String::from("?");
        };
        let source = self.sources.get(&root).map_or("?", String::as_str);
        format!("{source}:{}", String::from_utf8_lossy(&path))
    }

    /// The live share's files that use a damaged chunk.
    fn in_live(
        &mut self,
        snapshots: &Snapshots,
        damaged: &BTreeMap<ChunkId, String>,
    ) -> Result<(), ChunkStoreError> {
        let root = self.source(String::from("live"));
        let mut hits: Vec<(ChunkId, PathId, Vec<u8>)> = Vec::new();
        snapshots
            .live()
            .each_named_file_chunks(&mut self.paths, root, |dir, name, _, chunks| {
                for chunk in chunks.into_iter().filter(|c| damaged.contains_key(c)) {
                    hits.push((chunk, dir, name.to_vec()));
                }
                Ok::<_, FsError>(())
            })
            .map_err(live_error)?;
        for (chunk, dir, name) in hits {
            let place = self.paths.child(dir, &name);
            self.by_chunk.entry(chunk).or_default().push(place);
        }
        Ok(())
    }

    /// The snapshots' paths that lead to a damaged chunk: first which objects do, bottom-up
    /// and each once, then each tree descended along those alone.
    fn in_trees(
        &mut self,
        objects: &TreeObjects,
        trees: &[(String, ObjectId)],
        damaged: &BTreeMap<ChunkId, String>,
    ) {
        let leads = leads_to_damage(objects, trees.iter().map(|(_, root)| *root), damaged);
        for (name, root) in trees {
            let top = self.source(format!("snapshot {name}"));
            let mut pending = vec![(*root, top)];
            while let Some((id, place)) = pending.pop() {
                if leads.get(&id) != Some(&true) {
                    continue;
                }
                let node = Node::read(objects, id);
                for chunk in node.own.into_iter().filter(|c| damaged.contains_key(c)) {
                    self.by_chunk.entry(chunk).or_default().push(place);
                }
                for (name, child) in node.children {
                    let at = match name {
                        Some(name) => self.paths.child(place, &name),
                        None => place,
                    };
                    pending.push((child, at));
                }
            }
        }
    }
}

/// An object as the naming pass sees it.
struct Node {
    /// The chunks it holds itself: its own, its parts, and a segment's data.
    own: Vec<ChunkId>,
    /// Its children: a directory's entries with their names, a file's segments without (they
    /// are at the file's place).
    children: Vec<(Option<Vec<u8>>, ObjectId)>,
}

impl Node {
    /// Reads `id`; one that cannot be read has no children, and its own chunks are those
    /// that can still be found.
    fn read(objects: &TreeObjects, id: ObjectId) -> Node {
        let Ok((object, parts)) = objects.get_with_parts(&id) else {
            return Node {
                own: objects.object_chunks(&id).unwrap_or_else(|_| vec![id]),
                children: Vec::new(),
            };
        };
        let mut own = parts;
        own.push(id);
        let children = match object {
            Object::Directory(dir) => dir
                .entries
                .into_iter()
                .filter_map(|entry| Some((Some(entry.name), entry.object?)))
                .collect(),
            Object::File(file) => file.segments.into_iter().map(|(_, s)| (None, s)).collect(),
            Object::Segment(segment) => {
                own.extend(segment.blocks.into_iter().map(|(_, chunk)| chunk));
                Vec::new()
            }
            Object::Multipart(_) => Vec::new(),
        };
        Node { own, children }
    }
}

/// For each object under `roots`, whether it or anything below it holds a damaged chunk.
/// Post-order over an explicit stack, each object read once: an object's flag is final before
/// any later visit reads it, since in a tree of hashes nothing is its own descendant.
fn leads_to_damage(
    objects: &TreeObjects,
    roots: impl Iterator<Item = ObjectId>,
    damaged: &BTreeMap<ChunkId, String>,
) -> HashMap<ObjectId, bool> {
    enum Step {
        Enter(ObjectId),
        Leave(ObjectId, Vec<ObjectId>),
    }
    let mut leads: HashMap<ObjectId, bool> = HashMap::new();
    let mut steps: Vec<Step> = roots.map(Step::Enter).collect();
    while let Some(step) = steps.pop() {
        match step {
            Step::Enter(id) => {
                if leads.contains_key(&id) {
                    continue;
                }
                let node = Node::read(objects, id);
                let own = node.own.iter().any(|chunk| damaged.contains_key(chunk));
                leads.insert(id, own);
                if !own && !node.children.is_empty() {
                    let children: Vec<ObjectId> = node.children.iter().map(|(_, c)| *c).collect();
                    let enters: Vec<Step> = children.iter().copied().map(Step::Enter).collect();
                    // Left after every child is done: they are above it on the stack.
                    steps.push(Step::Leave(id, children));
                    steps.extend(enters);
                }
            }
            Step::Leave(id, children) => {
                if children.iter().any(|child| leads.get(child) == Some(&true)) {
                    leads.insert(id, true);
                }
            }
        }
    }
    leads
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::catalog::Origin;
    use crate::id::InodeNo;
    use crate::live::LiveOptions;
    use crate::live::RenameMode;
    use crate::metadata_budget::MetadataBudget;
    use crate::testing::{
        BLOCK_SIZE, DEEP, chain, close, lookup, mkdir, new_store, noise, on_small_stack, open,
        open_with, snapshots_of, write_file, write_in,
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

    #[test]
    fn snapshots_that_share_a_tree_cost_what_they_do_not_share() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        for dir in 0..40 {
            mkdir(&live, &format!("/d{dir}"));
            for file in 0..4 {
                write_file(
                    &live,
                    &format!("/d{dir}/f{file}"),
                    &noise(1000, dir * 4 + file),
                );
            }
        }
        let snapshots = snapshots_of(&live);
        snapshots.create("s0", Origin::Manual).expect("snapshot");
        let chunks = live.chunk_store();
        let reads_of = |snapshots: &Snapshots| {
            let before = chunks.frames_read();
            assert!(run(snapshots).is_clean());
            chunks.frames_read() - before
        };
        let one = reads_of(&snapshots);
        assert!(one > 300, "every object and block of s0 is read: {one}");
        const MORE: u64 = 30;
        for n in 1..=MORE {
            write_file(&live, "/changing", &noise(100, 1000 + n));
            snapshots
                .create(&format!("s{n}"), Origin::Manual)
                .expect("snapshot");
        }
        // Each later snapshot adds a root, a file, its segment and its block: the 40 shared
        // directories are read once, not once per snapshot.
        let all = reads_of(&snapshots);
        assert!(
            all <= one + MORE * 4,
            "{all} reads for {MORE} more snapshots, {one} for one"
        );
    }

    #[test]
    fn damage_under_a_shared_subtree_is_named_in_every_tree_that_reaches_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (store, live) = new_store(tmp.path(), "store");
        mkdir(&live, "/a");
        mkdir(&live, "/a/b");
        let data = noise(4096, 7);
        write_file(&live, "/a/b/file", &data);
        write_file(&live, "/a/b/other", &noise(4096, 8));
        let snapshots = snapshots_of(&live);
        snapshots.create("first", Origin::Manual).expect("snapshot");
        // The same subtree under another name, and a second link to the file.
        let root = crate::id::InodeNo::ROOT;
        live.rename(root, b"a", root, b"c", RenameMode::default())
            .expect("rename");
        let file = lookup(&live, "/c/b/file").expect("file").ino;
        live.link(file, root, b"link").expect("link");
        snapshots
            .create("second", Origin::Manual)
            .expect("snapshot");

        drop(snapshots);
        close(live);
        damage(&store, &data[2000..2064]);
        let live = open(&store);
        let report = run(&snapshots_of(&live));
        assert_eq!(report.damaged.len(), 1, "{:?}", report.damaged);
        assert_eq!(
            report.damaged[0].affected,
            [
                "live:/c/b/file",
                "live:/link",
                "snapshot first:/a/b/file",
                "snapshot second:/c/b/file",
                "snapshot second:/link",
            ]
        );
        let quick = on_small_stack(|| {
            verify(
                &snapshots_of(&live),
                &VerifyOptions {
                    quick: true,
                    ..VerifyOptions::default()
                },
                &Progress::new(),
            )
        })
        .expect("verify --quick");
        assert!(quick.is_clean(), "a quick check does not read the data");
    }

    #[test]
    fn a_verification_past_its_memory_budget_finds_what_one_within_it_does() {
        const FILES: u64 = 2400;
        let block = BLOCK_SIZE as usize;
        let tmp = tempfile::tempdir().expect("tempdir");
        let (store, live) = new_store(tmp.path(), "store");
        mkdir(&live, "/d");
        for n in 0..FILES {
            write_file(&live, &format!("/d/f{n}"), &noise(3 * block, n));
        }
        let snapshots = snapshots_of(&live);
        snapshots.create("s1", Origin::Manual).expect("snapshot");
        for n in (0..FILES).step_by(3) {
            write_file(&live, &format!("/d/f{n}"), &noise(3 * block, FILES + n));
        }
        snapshots.create("s2", Origin::Manual).expect("snapshot");
        drop(snapshots);
        close(live);
        damage(&store, &noise(3 * block, 7)[100..164]);

        let [roomy, tight] = [MetadataBudget::DEFAULT, MetadataBudget::new(0)].map(|budget| {
            let options = LiveOptions {
                metadata: budget,
                ..LiveOptions::default()
            };
            let live = open_with(&store, options);
            let snapshots = snapshots_of(&live);
            let full = run(&snapshots);
            let quick = verify(
                &snapshots,
                &VerifyOptions {
                    quick: true,
                    ..VerifyOptions::default()
                },
                &Progress::new(),
            )
            .expect("verify --quick");
            drop(snapshots);
            close(live);
            (full, quick)
        });
        let damage_of = |report: &VerifyReport| -> Vec<(String, String, Vec<String>)> {
            let damaged = report.damaged.iter();
            damaged
                .map(|d| (d.chunk.clone(), d.problem.clone(), d.affected.clone()))
                .collect()
        };
        // More data chunks than the tight sets keep in memory: they spilled.
        let in_memory = SpillSet::new(std::path::Path::new("."), 0).capacity() as u64;
        assert!(
            roomy.0.chunks_checked > 3 * in_memory,
            "{}",
            roomy.0.chunks_checked
        );
        assert_eq!(tight.0.chunks_checked, roomy.0.chunks_checked);
        assert_eq!(damage_of(&tight.0), damage_of(&roomy.0));
        assert_eq!(
            roomy.0.damaged[0].affected,
            ["live:/d/f7", "snapshot s1:/d/f7", "snapshot s2:/d/f7"]
        );
        assert!(roomy.1.is_clean() && tight.1.is_clean());
        assert_eq!(tight.1.chunks_checked, roomy.1.chunks_checked);
    }
}
