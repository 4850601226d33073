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
    /// Holds `CAP_FSETID`: its changes to a file's data keep the file's setuid and setgid bits.
    pub cap_fsetid: bool,
}

/// Search (execute) permission for the owner, the group and others.
const SEARCH: [u16; 3] = [0o100, 0o010, 0o001];
const SETUID: u16 = 0o4000;
const SETGID: u16 = 0o2000;
const GROUP_EXECUTE: u16 = 0o010;

impl Requester {
    pub const ROOT: Requester = Requester {
        uid: 0,
        gid: 0,
        groups: Vec::new(),
        cap_fsetid: true,
    };

    /// This process, with its effective ids: the `snapfs` command acting on a store it opened
    /// itself, where the OS checks every file it touches.
    pub fn this_process() -> Requester {
        let uid = nix::unistd::geteuid().as_raw();
        Requester {
            uid,
            cap_fsetid: uid == 0,
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

    /// Whether a change by this requester takes setgid from `record` (Linux's
    /// `setattr_should_drop_sgid`). On a file that is not group-executable the bit marks
    /// mandatory locking, not a privilege, and members of the file's group keep it.
    fn drops_setgid(&self, record: &InodeRecord) -> bool {
        record.perm & SETGID != 0
            && (record.perm & GROUP_EXECUTE != 0 || !(self.in_group(record.gid) || self.cap_fsetid))
    }

    /// The setuid and setgid bits that a change to a regular file's data (write, truncate,
    /// fallocate) by this requester clears from its mode: none for a holder of `CAP_FSETID`
    /// (Linux's `setattr_should_drop_suidgid`).
    pub fn setid_cleared_by_data_change(&self, record: &InodeRecord) -> u16 {
        if self.cap_fsetid {
            return 0;
        }
        self.setid_cleared_by_chown(record)
    }

    /// The setuid and setgid bits that a change of a file's owner or group by this requester
    /// clears: setuid always, even for root (Linux's `chown_common`).
    pub fn setid_cleared_by_chown(&self, record: &InodeRecord) -> u16 {
        let setgid = if self.drops_setgid(record) { SETGID } else { 0 };
        (record.perm & SETUID) | setgid
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
            cap_fsetid: false,
        }
    }

    fn file(perm: u16, gid: u32) -> InodeRecord {
        let mut record = InodeRecord::new_directory(perm, 1000, gid);
        record.kind = crate::format::inode::InodeKind::File;
        record
    }

    #[test]
    fn a_data_change_clears_setid_bits_unless_the_changer_holds_cap_fsetid() {
        let owner = user(1000, 1000, &[]);
        assert_eq!(
            owner.setid_cleared_by_data_change(&file(0o4755, 50)),
            0o4000
        );
        assert_eq!(
            owner.setid_cleared_by_data_change(&file(0o6775, 50)),
            0o6000
        );
        assert_eq!(
            owner.setid_cleared_by_data_change(&file(0o2664, 50)),
            0o2000,
            "not in the group: setgid goes even without group execute"
        );
        let member = user(1000, 7, &[50]);
        assert_eq!(
            member.setid_cleared_by_data_change(&file(0o2664, 50)),
            0,
            "a member keeps the locking mark"
        );
        assert_eq!(
            member.setid_cleared_by_data_change(&file(0o2674, 50)),
            0o2000
        );
        assert_eq!(owner.setid_cleared_by_data_change(&file(0o0755, 50)), 0);
        assert_eq!(
            Requester::ROOT.setid_cleared_by_data_change(&file(0o6775, 50)),
            0
        );
    }

    #[test]
    fn chown_clears_setuid_even_for_root() {
        assert_eq!(
            Requester::ROOT.setid_cleared_by_chown(&file(0o6755, 50)),
            0o6000
        );
        assert_eq!(
            Requester::ROOT.setid_cleared_by_chown(&file(0o6745, 50)),
            0o4000,
            "root keeps the locking mark"
        );
        assert_eq!(
            user(1000, 1000, &[]).setid_cleared_by_chown(&file(0o2644, 50)),
            0o2000
        );
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
