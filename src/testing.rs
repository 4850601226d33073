//! Helpers for unit tests: real stores in temporary directories, and file operations by path
//! through the live share's own methods.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::format::store_config::MIN_BLOCK_SIZE;
use crate::id::InodeNo;
use crate::live::{Attr, Caller, FsResult, LiveFs, LiveOptions, NewInode, split_path};
use crate::store::Store;

/// The owner of everything the helpers make.
pub const ROOT_USER: Caller = Caller { uid: 0, gid: 0 };

/// The smallest block size, so that small test files span several blocks.
pub const BLOCK_SIZE: u32 = MIN_BLOCK_SIZE;

/// Creates a store at `dir/name` and serves it; returns its path and the share.
pub fn new_store(dir: &Path, name: &str) -> (PathBuf, Arc<LiveFs>) {
    let path = dir.join(name);
    Store::init(&path, BLOCK_SIZE, 0, 0).expect("init");
    let live = open(&path);
    (path, live)
}

pub fn open(store: &Path) -> Arc<LiveFs> {
    open_with(store, LiveOptions::default())
}

pub fn open_with(store: &Path, options: LiveOptions) -> Arc<LiveFs> {
    LiveFs::serve(Store::open(store).expect("open"), options).expect("serve")
}

/// The snapshots of a share, on the system clock.
pub fn snapshots_of(live: &Arc<LiveFs>) -> crate::snapshot::Snapshots {
    crate::snapshot::Snapshots::open(live.clone(), Arc::new(crate::schedule::SystemClock))
        .expect("snapshots")
}

/// Commits, stops and drops the share, which unlocks its store.
pub fn close(live: Arc<LiveFs>) {
    live.shutdown().expect("shutdown");
    assert_eq!(Arc::strong_count(&live), 1, "nothing else holds the share");
}

/// The directory holding `path`, and the last name.
fn parent_of<'p>(live: &LiveFs, path: &'p str) -> (InodeNo, &'p [u8]) {
    let names = split_path(path).expect("valid path");
    let (name, parents) = names.split_last().expect("not the root");
    let mut dir = InodeNo::ROOT;
    for parent in parents {
        dir = live.lookup(dir, parent).expect("parent exists").ino;
    }
    (dir, name)
}

pub fn lookup(live: &LiveFs, path: &str) -> FsResult<Attr> {
    let mut attr = live.getattr(InodeNo::ROOT)?;
    for name in split_path(path)? {
        attr = live.lookup(attr.ino, name)?;
    }
    Ok(attr)
}

pub fn mkdir(live: &LiveFs, path: &str) -> InodeNo {
    let (dir, name) = parent_of(live, path);
    live.make(dir, name, NewInode::Directory, 0o755, ROOT_USER)
        .expect("mkdir")
        .ino
}

/// Creates `path` (or truncates it) with `data`, and closes it.
pub fn write_file(live: &LiveFs, path: &str, data: &[u8]) -> InodeNo {
    let (dir, name) = parent_of(live, path);
    write_in(live, dir, name, data)
}

pub fn read_file(live: &LiveFs, path: &str) -> Vec<u8> {
    let (dir, name) = parent_of(live, path);
    read_in(live, dir, name)
}

/// Depth of the deep-tree regression tests: any user can make a chain this deep, and code that
/// recursed once per level would need megabytes of stack for it.
pub const DEEP: usize = 20_000;

/// Makes a chain of `depth` directories, each named `name`, below the directory `top`, and
/// returns the deepest. Works by inode, so it costs one lookup per level, not one per level per
/// path component.
pub fn chain(live: &LiveFs, top: InodeNo, name: &[u8], depth: usize) -> InodeNo {
    (0..depth).fold(top, |dir, _| {
        live.make(dir, name, NewInode::Directory, 0o755, ROOT_USER)
            .expect("mkdir in a chain")
            .ino
    })
}

/// The deepest directory of a chain made by [`chain`]: one lookup per level.
pub fn chain_bottom(live: &LiveFs, top: InodeNo, name: &[u8], depth: usize) -> InodeNo {
    (0..depth).fold(top, |dir, level| {
        live.lookup(dir, name)
            .unwrap_or_else(|err| panic!("level {level} of a chain: {err}"))
            .ino
    })
}

/// The whole content of the file `name` in the directory `dir`.
pub fn read_in(live: &LiveFs, dir: InodeNo, name: &[u8]) -> Vec<u8> {
    let attr = live.lookup(dir, name).expect("file exists");
    let fh = live.open(attr.ino, false, false).expect("open");
    let size = u32::try_from(attr.record.size).expect("a small file");
    let data = live.read(fh, 0, size).expect("read");
    live.release(fh).expect("release");
    data
}

/// Creates `name` in the directory `dir` (or truncates it) with `data`, and closes it.
pub fn write_in(live: &LiveFs, dir: InodeNo, name: &[u8], data: &[u8]) -> InodeNo {
    let (ino, fh) = match live.lookup(dir, name) {
        Ok(attr) => (attr.ino, live.open(attr.ino, true, true).expect("open")),
        Err(_) => {
            let (attr, fh) = live.create(dir, name, 0o644, ROOT_USER).expect("create");
            (attr.ino, fh)
        }
    };
    live.write(fh, 0, data).expect("write");
    live.release(fh).expect("release");
    ino
}

/// Stack of the thread [`on_small_stack`] runs on: a walk that recursed once per level of a
/// [`DEEP`] tree overflows it with frames of 26 bytes or more, so a test fails (the binary
/// aborts) instead of passing because a frame happened to be small.
const SMALL_STACK: usize = 512 << 10;

/// Runs `f` on a thread with a small stack (see [`SMALL_STACK`]) and returns its result.
pub fn on_small_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("small-stack".into())
            .stack_size(SMALL_STACK)
            .spawn_scoped(scope, f)
            .expect("spawning a test thread")
            .join()
            .expect("the test thread panicked")
    })
}

/// Reproducible incompressible bytes (xorshift), distinct for each seed: stored raw, so they
/// can be found in a pack, and never deduplicated by accident.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// What a snapshot tree holds in the directory at `path` (names from its root): each entry
/// by name, with the content of a file (`None` for anything else).
pub fn tree_dir(
    live: &LiveFs,
    objects: &crate::tree_objects::TreeObjects,
    root: crate::format::object::ObjectId,
    path: &[&str],
) -> std::collections::BTreeMap<String, Option<Vec<u8>>> {
    let mut dir = root;
    for name in path {
        let Ok(crate::format::object::Object::Directory(directory)) = objects.get(&dir) else {
            panic!("a directory above {name}");
        };
        let entry = directory
            .entries
            .iter()
            .find(|e| e.name == name.as_bytes())
            .unwrap_or_else(|| panic!("{name} in the snapshot"));
        dir = entry.object.expect("a directory object");
    }
    let Ok(crate::format::object::Object::Directory(directory)) = objects.get(&dir) else {
        panic!("a directory at {path:?}");
    };
    let bs = u64::from(live.block_size());
    let store = live.chunk_store();
    let mut out = std::collections::BTreeMap::new();
    for entry in directory.entries {
        let content = (entry.record.kind == crate::format::inode::InodeKind::File).then(|| {
            let Ok(crate::format::object::Object::File(file)) =
                objects.get(&entry.object.expect("a file object"))
            else {
                panic!("a file object");
            };
            let mut bytes = vec![0u8; file.size as usize];
            for (number, segment) in file.segments {
                let Ok(crate::format::object::Object::Segment(segment)) = objects.get(&segment)
                else {
                    panic!("a segment");
                };
                for (index, chunk) in segment.blocks {
                    let at = ((number * crate::format::object::SEGMENT_BLOCKS + u64::from(index))
                        * bs) as usize;
                    let data = store.get(&chunk).expect("a chunk of the snapshot");
                    let end = (at + data.len()).min(bytes.len());
                    bytes[at..end].copy_from_slice(&data[..end - at]);
                }
            }
            bytes
        });
        out.insert(String::from_utf8(entry.name).expect("utf-8"), content);
    }
    out
}
