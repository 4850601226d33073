//! Paths found by a tree walk, each kept as its last name and a link to its directory's path.
//!
//! A path costs its last name, not its length, so recording every path of a tree costs the size
//! of the tree however deep it is: full paths would cost the sum of their lengths, quadratic in
//! the depth of a chain of directories (a 20,000-level chain has paths of 80 KB). A path is
//! rendered only when a report needs it, in time linear in its length.

/// A path recorded in a [`PathTree`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct PathId(usize);

/// One recorded path: its directory (none for a root) and its last name.
struct PathNode {
    parent: Option<PathId>,
    name: Box<[u8]>,
}

/// Paths under any number of roots (say, the live share and each snapshot). Invariant: a node's
/// parent was recorded before it, so following parents always ends at a root.
#[derive(Default)]
pub(crate) struct PathTree {
    nodes: Vec<PathNode>,
}

impl PathTree {
    fn push(&mut self, parent: Option<PathId>, name: &[u8]) -> PathId {
        self.nodes.push(PathNode {
            parent,
            name: name.into(),
        });
        PathId(self.nodes.len() - 1)
    }

    /// A new root: the path `/` of a tree of its own.
    pub fn root(&mut self) -> PathId {
        self.push(None, b"")
    }

    /// The path of the entry `name` in the directory at `parent`.
    pub fn child(&mut self, parent: PathId, name: &[u8]) -> PathId {
        self.push(Some(parent), name)
    }

    /// The root `path` is under, and `path` from that root: `/` for the root itself, `/a/b`
    /// below it. `None` for an id this tree did not give out.
    pub fn render(&self, path: PathId) -> Option<(PathId, Vec<u8>)> {
        let mut names = Vec::new();
        let mut at = path;
        loop {
            let node = self.nodes.get(at.0)?;
            match node.parent {
                Some(parent) => {
                    names.push(&node.name[..]);
                    at = parent;
                }
                None => break,
            }
        }
        if names.is_empty() {
            return Some((at, b"/".to_vec()));
        }
        let mut out = Vec::with_capacity(names.iter().map(|name| name.len() + 1).sum());
        for name in names.iter().rev() {
            out.push(b'/');
            out.extend_from_slice(name);
        }
        Some((at, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_from_their_root() {
        let mut tree = PathTree::default();
        let live = tree.root();
        let snapshot = tree.root();
        let a = tree.child(live, b"a");
        let b = tree.child(a, b"b\xff");
        let c = tree.child(snapshot, b"c");
        assert_eq!(tree.render(live), Some((live, b"/".to_vec())));
        assert_eq!(tree.render(a), Some((live, b"/a".to_vec())));
        assert_eq!(tree.render(b), Some((live, b"/a/b\xff".to_vec())));
        assert_eq!(tree.render(c), Some((snapshot, b"/c".to_vec())));
        assert_eq!(tree.render(PathId(99)), None);
    }

    #[test]
    fn a_deep_path_costs_its_name() {
        const DEPTH: usize = 20_000;
        let mut tree = PathTree::default();
        let root = tree.root();
        let deepest = (0..DEPTH).fold(root, |dir, _| tree.child(dir, b"dir"));
        let stored: usize = tree.nodes.iter().map(|node| node.name.len()).sum();
        assert_eq!(stored, 3 * DEPTH, "one name per level, not one path");
        let (_, path) = tree.render(deepest).expect("recorded");
        assert_eq!(path, "/dir".repeat(DEPTH).into_bytes());
    }
}
