//! Who sent a kernel request: FUSE gives the caller's uid, gid and pid with every request; its
//! supplementary groups are read from `/proc/PID/status` (as libfuse's `fuse_getgroups` does),
//! and only when a check needs them, since that costs a file read.

use fuser::Request;

use crate::access::Requester;

/// The sender of one kernel request.
#[derive(Clone, Copy, Debug)]
pub struct Sender {
    pub uid: u32,
    gid: u32,
    pid: u32,
}

impl Sender {
    pub fn of(req: &Request) -> Sender {
        Sender {
            uid: req.uid(),
            gid: req.gid(),
            pid: req.pid(),
        }
    }

    /// The sender with its supplementary groups, for permission checks. A process that is
    /// gone, or whose status cannot be read or understood, has none: fewer rights, never more.
    /// Root needs none, and is taken to hold `CAP_FSETID` without a look.
    pub fn requester(&self) -> Requester {
        if self.uid == 0 {
            return self.with_status(None, true);
        }
        self.with_status(self.status().as_deref(), false)
    }

    /// The sender with its supplementary groups and whether it holds `CAP_FSETID`, read from
    /// its status whoever it is: for deciding what a change takes from a setuid or setgid file,
    /// where root without that capability loses the bits too. Unreadable: neither.
    pub fn requester_with_capabilities(&self) -> Requester {
        self.with_status(self.status().as_deref(), false)
    }

    fn status(&self) -> Option<String> {
        if self.pid == 0 {
            return None;
        }
        std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()
    }

    fn with_status(&self, status: Option<&str>, cap_fsetid: bool) -> Requester {
        Requester {
            uid: self.uid,
            gid: self.gid,
            groups: status.map(groups_of).unwrap_or_default(),
            cap_fsetid: cap_fsetid || status.is_some_and(holds_cap_fsetid),
        }
    }
}

/// Whether the effective capabilities in the text of `/proc/PID/status` (its `CapEff:` line, a
/// hexadecimal mask) include `CAP_FSETID`; not if the line is missing or unreadable.
fn holds_cap_fsetid(status: &str) -> bool {
    const CAP_FSETID: u32 = 4;
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << CAP_FSETID) != 0)
}

/// The supplementary groups in the text of `/proc/PID/status` (its `Groups:` line of decimal
/// ids); none if the line is missing or holds anything but ids.
fn groups_of(status: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Groups:"))
        .and_then(|ids| {
            ids.split_whitespace()
                .map(|id| id.parse().ok())
                .collect::<Option<Vec<u32>>>()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_groups_line() {
        let status = "Name:\tsh\nUid:\t1000\t1000\t1000\t1000\nGroups:\t4 24 1000 \nVmRSS:\t1 kB\n";
        assert_eq!(groups_of(status), [4, 24, 1000]);
        assert!(groups_of("Name:\tsh\nGroups:\t\n").is_empty());
        assert!(groups_of("Name:\tsh\n").is_empty());
        assert!(
            groups_of("Groups:\t4 x 5\n").is_empty(),
            "garbage gives none"
        );
    }

    #[test]
    fn reads_cap_fsetid_from_the_effective_set() {
        assert!(holds_cap_fsetid("Name:\tsh\nCapEff:\t000001ffffffffff\n"));
        assert!(holds_cap_fsetid("CapEff:\t0000000000000010\n"));
        assert!(!holds_cap_fsetid(
            "CapPrm:\t0000000000000010\nCapEff:\t0000000000000000\n"
        ));
        assert!(!holds_cap_fsetid("CapEff:\tzz\n"), "garbage gives none");
        assert!(!holds_cap_fsetid("Name:\tsh\n"));
    }

    #[test]
    fn reads_this_process() {
        let me = Sender {
            uid: 1,
            gid: 1,
            pid: std::process::id(),
        };
        let mut ours: Vec<u32> = nix::unistd::getgroups()
            .expect("getgroups")
            .into_iter()
            .map(|g| g.as_raw())
            .collect();
        ours.sort_unstable();
        let mut read = me.requester().groups;
        read.sort_unstable();
        assert_eq!(read, ours);
        let gone = Sender {
            pid: u32::MAX,
            ..me
        };
        assert!(gone.requester().groups.is_empty());
        // The suite runs as root, with every capability.
        assert!(me.requester_with_capabilities().cap_fsetid);
        assert!(!gone.requester_with_capabilities().cap_fsetid);
    }
}
