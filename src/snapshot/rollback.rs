//! Rollback: the whole live share becomes a snapshot's tree again, in one atomic step, after a
//! safety snapshot of its current state (so a rollback can itself be undone by rolling back to
//! that). The share stays mounted and usable throughout; files open at the time stay readable
//! until closed, as after any unlink.

use super::restore::{RestoreError, TreeCounts};
use super::subtree::TreeReader;
use super::{SnapshotError, Snapshots};
use crate::format::catalog::Origin;
use crate::live::GraftPoint;
use crate::progress::Progress;

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RollbackReport {
    /// The snapshot of the share as it was before.
    pub safety_snapshot: String,
    pub restored: TreeCounts,
    /// How much the pack files grew while the share was replaced (the safety snapshot not
    /// included): 0, as with a restore.
    pub bytes_stored: u64,
}

impl Snapshots {
    /// Takes the snapshot `safety_name` of the share, then replaces every entry of the share's
    /// root by the entries of `snapshot`, and the root's permissions and owner by the
    /// snapshot's. Durable when it returns.
    pub fn rollback(
        &self,
        snapshot: &str,
        safety_name: &str,
        progress: &Progress,
    ) -> Result<RollbackReport, RestoreError> {
        // Checked first, so that a mistyped name leaves no safety snapshot behind.
        if self.get(snapshot).is_none() {
            return Err(SnapshotError::NotFound(snapshot.to_owned()).into());
        }
        self.create(safety_name, Origin::Manual)?;
        let pin = self.pin(snapshot)?;
        let live = self.live();
        let packs_before = live.chunk_store().usage().pack_bytes;
        let tree =
            TreeReader::new(self.objects(), live.block_size(), progress).root(&pin.record)?;
        live.graft(tree.subtree, GraftPoint::Root)
            .map_err(|err| RestoreError::of_graft(err, "/"))?;
        drop(pin);
        let report = RollbackReport {
            safety_snapshot: safety_name.to_owned(),
            restored: tree.counts,
            bytes_stored: live
                .chunk_store()
                .usage()
                .pack_bytes
                .saturating_sub(packs_before),
        };
        tracing::info!(snapshot, ?report, "rolled back");
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::InodeNo;
    use crate::live::{LiveFs, SetAttr};
    use crate::testing::{
        close, lookup, mkdir, new_store, open, read_file, snapshots_of, write_file,
    };

    #[test]
    fn a_rollback_replaces_the_share_after_a_safety_snapshot() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (store, live) = new_store(tmp.path(), "store");
        let snapshots = snapshots_of(&live);
        mkdir(&live, "d");
        write_file(&live, "d/f", b"version 1");
        write_file(&live, "top", b"top");
        live.setattr(
            InodeNo::ROOT,
            SetAttr {
                mode: Some(0o750),
                ..SetAttr::default()
            },
        )
        .expect("chmod");
        snapshots.create("good", Origin::Manual).expect("snapshot");
        write_file(&live, "d/f", b"version 2");
        live.unlink(InodeNo::ROOT, b"top").expect("unlink");
        write_file(&live, "junk", b"junk");
        live.setattr(
            InodeNo::ROOT,
            SetAttr {
                mode: Some(0o777),
                uid: Some(42),
                ..SetAttr::default()
            },
        )
        .expect("chmod");

        let report = snapshots
            .rollback("good", "before-rollback", &crate::progress::Progress::new())
            .expect("rollback");

        assert_eq!(report.safety_snapshot, "before-rollback");
        assert_eq!((report.restored.files, report.restored.dirs), (2, 1));
        assert_eq!(report.bytes_stored, 0);
        let check = |live: &LiveFs| {
            assert_eq!(read_file(live, "d/f"), b"version 1");
            assert_eq!(read_file(live, "top"), b"top");
            assert!(lookup(live, "junk").is_err());
            let root = live.getattr(InodeNo::ROOT).expect("root");
            assert_eq!((root.record.perm, root.record.uid), (0o750, 0));
            live.assert_consistent();
        };
        check(&live);
        // The safety snapshot holds the state before: rolling back to it undoes the rollback.
        snapshots
            .rollback("before-rollback", "undo", &crate::progress::Progress::new())
            .expect("undo");
        assert_eq!(read_file(&live, "d/f"), b"version 2");
        assert_eq!(read_file(&live, "junk"), b"junk");
        assert_eq!(live.getattr(InodeNo::ROOT).expect("root").record.uid, 42);
        snapshots
            .rollback("good", "again", &crate::progress::Progress::new())
            .expect("rollback");
        drop(snapshots);
        close(live);
        check(&open(&store));
    }

    #[test]
    fn a_rollback_to_a_missing_snapshot_takes_no_safety_snapshot() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        let snapshots = snapshots_of(&live);
        let err = snapshots
            .rollback("missing", "safety", &crate::progress::Progress::new())
            .expect_err("refused");
        assert_eq!(crate::service::restore_errno(&err), libc::ENOENT);
        assert!(snapshots.list().is_empty());
        snapshots.create("s", Origin::Manual).expect("snapshot");
        let err = snapshots
            .rollback("s", "s", &crate::progress::Progress::new())
            .expect_err("refused");
        assert_eq!(crate::service::restore_errno(&err), libc::EEXIST, "{err}");
    }

    #[test]
    fn a_deep_tree_rolls_back_and_forth() {
        use crate::testing::{DEEP, chain, chain_bottom, on_small_stack, read_in, write_in};
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        let snapshots = snapshots_of(&live);
        let bottom = chain(&live, InodeNo::ROOT, b"dir", DEEP);
        write_in(&live, bottom, b"leaf", b"old");
        snapshots.create("s", Origin::Manual).expect("snapshot");
        write_in(&live, bottom, b"leaf", b"new");

        let report =
            on_small_stack(|| snapshots.rollback("s", "safety", &crate::progress::Progress::new()))
                .expect("rollback");
        assert_eq!(report.restored.dirs, DEEP as u64);
        let leaf = || {
            read_in(
                &live,
                chain_bottom(&live, InodeNo::ROOT, b"dir", DEEP),
                b"leaf",
            )
        };
        assert_eq!(leaf(), b"old");
        on_small_stack(|| {
            snapshots.rollback("safety", "safety-2", &crate::progress::Progress::new())
        })
        .expect("rollback again");
        assert_eq!(leaf(), b"new");
        live.assert_consistent();
    }
}
