//! Stopping a daemon: SIGTERM ends it even while files are open on the share (as `systemctl
//! stop` needs), keeping every write that had returned.

use std::fs;
use std::io::Write;
use std::process::Command;

use crate::harness::{Mounted, noise};

#[test]
fn sigterm_ends_a_busy_mount_and_keeps_what_was_written() {
    let mut m = Mounted::new();
    let data = noise(3 << 20, 11);
    let mut open = fs::File::create(m.path("open-file")).expect("create");
    open.write_all(&data).expect("write");
    // A directory handle keeps the mount busy too, as a shell's working directory would.
    let dir = fs::File::open(m.path("")).expect("open the root");
    let pid = m.daemon_pid().to_string();
    m.unmount_with(Command::new("kill").args(["-TERM", &pid]));
    drop((open, dir));
    assert!(m.log().contains("detaching the mount"), "{}", m.log());
    m.mount();
    assert!(
        fs::read(m.path("open-file")).expect("read") == data,
        "the data of a file still open at SIGTERM was kept"
    );
}
