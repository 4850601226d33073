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

    /// The sender with its supplementary groups. A process that is gone, or whose status cannot
    /// be read or understood, has none: fewer rights, never more. (Root needs none.)
    pub fn requester(&self) -> Requester {
        let groups = if self.uid == 0 || self.pid == 0 {
            Vec::new()
        } else {
            std::fs::read_to_string(format!("/proc/{}/status", self.pid))
                .map(|status| groups_of(&status))
                .unwrap_or_default()
        };
        Requester {
            uid: self.uid,
            gid: self.gid,
            groups,
        }
    }
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
    }
}
