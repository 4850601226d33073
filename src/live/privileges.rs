//! Taking a file's privileges away when it changes: its setuid and setgid bits and its file
//! capabilities (`security.capability`), as Linux's VFS does on write, truncate, fallocate and
//! chown.
//!
//! The mount negotiates `FUSE_HANDLE_KILLPRIV_V2`, which leaves this to the file system. In
//! exchange the kernel no longer asks for `security.capability` before every write of every
//! file, nor for a file's attributes before every chown: two of the thirteen requests that
//! creating a small file cost (`tar -x`). The kernel still tells who may keep the bits on a
//! write (`FUSE_WRITE_KILL_SUIDGID`, set when the writer lacks `CAP_FSETID`); on a truncate it
//! says so in a flag fuser does not pass on, so the caller's capabilities are read from `/proc`
//! instead, and only when the file has a bit to lose.
//!
//! Invariant: a file whose data or owner changes through the mount keeps no privilege that
//! ext4 would have taken, whoever changes it; a file with none pays one read-locked look.

use super::LiveFs;
use super::error::FsResult;
use crate::access::Requester;
use crate::format::inode::InodeKind;
use crate::id::InodeNo;

/// The extended attribute that holds a file's capabilities.
const CAPABILITIES: &[u8] = b"security.capability";
const SETID: u16 = 0o6000;

/// What a change to a file modified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Modification {
    /// Its data (write, truncate, fallocate): takes setuid and setgid unless the changer holds
    /// `CAP_FSETID`, and capabilities always. Regular files only.
    Data,
    /// Its owner or group: takes setuid, setgid as the kernel's rules say, and capabilities,
    /// from anything but a directory.
    Owner,
}

impl LiveFs {
    /// Takes from `ino` what `change` by `who` takes, before the change is made (the kernel
    /// holds the file locked across the request, so nothing changes its mode in between).
    /// `who` is asked only when the file has something to lose, since that reads `/proc`.
    /// The kernel is told to forget the file's attributes when its mode changed: a write's
    /// reply carries none, and it would show the old mode until its cache time ends.
    pub fn revoke_privileges(
        &self,
        ino: InodeNo,
        change: Modification,
        who: impl FnOnce() -> Requester,
    ) -> FsResult<()> {
        let applies = |kind: InodeKind| match change {
            Modification::Data => kind == InodeKind::File,
            Modification::Owner => kind != InodeKind::Directory,
        };
        {
            let tree = self.read_loaded(ino)?;
            let node = tree.node(ino)?;
            let privileged =
                node.record.perm & SETID != 0 || node.xattrs.contains_key(CAPABILITIES);
            if !(privileged && applies(node.record.kind)) {
                return Ok(());
            }
        }
        self.check_writable()?;
        let who = who();
        let mut tree = self.write_loaded(ino)?;
        let node = tree.node_mut(ino)?;
        let cleared = match change {
            Modification::Data => who.setid_cleared_by_data_change(&node.record),
            Modification::Owner => who.setid_cleared_by_chown(&node.record),
        };
        let had_capabilities = node.xattrs.remove(CAPABILITIES).is_some();
        if cleared == 0 && !had_capabilities {
            return Ok(());
        }
        node.record.perm &= !cleared;
        self.touch_ctime(node, ino);
        drop(tree);
        if cleared != 0
            && let Some(kernel) = self.kernel.get()
        {
            kernel.forget_attributes(ino);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::{SetAttr, XattrFlags};
    use crate::testing::{new_store, write_file};

    fn nobody() -> Requester {
        Requester {
            uid: 65534,
            gid: 65534,
            groups: Vec::new(),
            cap_fsetid: false,
        }
    }

    fn chmod(live: &LiveFs, ino: InodeNo, mode: u32) {
        let change = SetAttr {
            mode: Some(mode),
            ..SetAttr::default()
        };
        live.setattr(ino, change).expect("chmod");
    }

    fn perm(live: &LiveFs, ino: InodeNo) -> u16 {
        live.getattr(ino).expect("getattr").record.perm
    }

    #[test]
    fn a_write_by_another_user_takes_setid_bits_and_capabilities() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        let ino = write_file(&live, "f", b"x");
        chmod(&live, ino, 0o6777);
        live.setxattr(ino, CAPABILITIES, b"caps", XattrFlags::Any)
            .expect("setxattr");
        live.revoke_privileges(ino, Modification::Data, || Requester::ROOT)
            .expect("revoke");
        assert_eq!(perm(&live, ino), 0o6777, "root keeps the bits");
        assert!(
            live.getxattr(ino, CAPABILITIES, 0).is_err(),
            "but not the capabilities"
        );

        live.revoke_privileges(ino, Modification::Data, nobody)
            .expect("revoke");
        assert_eq!(perm(&live, ino), 0o0777);
    }

    #[test]
    fn a_file_without_privileges_never_asks_who_changes_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        let ino = write_file(&live, "f", b"x");
        chmod(&live, ino, 0o755);
        live.revoke_privileges(ino, Modification::Owner, || panic!("asked"))
            .expect("revoke");
        chmod(&live, InodeNo::ROOT, 0o2775);
        live.revoke_privileges(InodeNo::ROOT, Modification::Owner, || panic!("asked"))
            .expect("a directory keeps its setgid");
        assert_eq!(perm(&live, InodeNo::ROOT), 0o2775);
    }

    #[test]
    fn chown_takes_setuid_even_from_root() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (_store, live) = new_store(tmp.path(), "store");
        let ino = write_file(&live, "f", b"x");
        chmod(&live, ino, 0o6755);
        live.revoke_privileges(ino, Modification::Owner, || Requester::ROOT)
            .expect("revoke");
        assert_eq!(perm(&live, ino), 0o0755);
    }
}
