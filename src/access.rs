//! Who asks, and what the POSIX permission bits of an inode grant them.
//!
//! The kernel checks permissions on the inodes it walks through (the mount uses
//! `default_permissions`), so snapfs checks them itself only where what a path shows is not what
//! the kernel walked: a version under `.snapshots/.history` is reachable only by someone who
//! could search every directory above that path in its snapshot, whose records the kernel never
//! sees. And the daemon acts outside the share only for root or for the user it runs as (see
//! `service/privilege.rs`).
//!
//! Invariant: a [`Requester`] never has more rights than the process it stands for; when its
//! supplementary groups cannot be read it has none (fewer rights, never more).

use crate::format::inode::InodeRecord;

/// The identity of whoever sent a request: the kernel's caller through FUSE, or the process
/// that has the store open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requester {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

/// Search (execute) permission for the owner, the group and others.
const SEARCH: [u16; 3] = [0o100, 0o010, 0o001];

impl Requester {
    pub const ROOT: Requester = Requester {
        uid: 0,
        gid: 0,
        groups: Vec::new(),
    };

    /// This process, with its effective ids: the `snapfs` command acting on a store it opened
    /// itself, where the OS checks every file it touches.
    pub fn this_process() -> Requester {
        Requester {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            groups: nix::unistd::getgroups()
                .map(|groups| groups.into_iter().map(|g| g.as_raw()).collect())
                .unwrap_or_default(),
        }
    }

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }

    /// Whether this requester may search (enter) the directory `record`, as the kernel decides:
    /// root always may; otherwise the owner's bits apply to the owner, the group's to members of
    /// the group, the others' to everyone else (only one class applies, as in POSIX).
    pub fn may_search(&self, record: &InodeRecord) -> bool {
        if self.is_root() {
            return true;
        }
        let class = if self.uid == record.uid {
            SEARCH[0]
        } else if self.in_group(record.gid) {
            SEARCH[1]
        } else {
            SEARCH[2]
        };
        record.perm & class != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(perm: u16, uid: u32, gid: u32) -> InodeRecord {
        InodeRecord::new_directory(perm, uid, gid)
    }

    fn user(uid: u32, gid: u32, groups: &[u32]) -> Requester {
        Requester {
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn search_permission_follows_the_one_class_that_applies() {
        let private = dir(0o700, 1000, 1000);
        assert!(user(1000, 1000, &[]).may_search(&private));
        assert!(!user(1001, 1000, &[]).may_search(&private));
        assert!(!user(65534, 65534, &[]).may_search(&private));
        assert!(Requester::ROOT.may_search(&dir(0o000, 1000, 1000)));

        let group = dir(0o710, 1000, 50);
        assert!(user(1001, 50, &[]).may_search(&group), "primary group");
        assert!(user(1001, 7, &[3, 50]).may_search(&group), "supplementary");
        assert!(!user(1001, 7, &[3]).may_search(&group));

        let others_only = dir(0o001, 1000, 50);
        assert!(user(1001, 7, &[]).may_search(&others_only));
        assert!(
            !user(1000, 7, &[]).may_search(&others_only),
            "the owner class applies to the owner, even when others may"
        );
        assert!(!user(1001, 50, &[]).may_search(&others_only));
    }
}
