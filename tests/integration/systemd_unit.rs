//! The shipped `snapfs@.service`, run the way systemd runs it (systemd is not PID 1 here): its
//! ExecStart with the instance's specifiers and environment expanded, `NOTIFY_SOCKET` pointing
//! at a datagram socket the test reads. `READY=1` must arrive only once the share serves;
//! SIGTERM (what `systemctl stop` sends) must bring `STOPPING=1`, a clean unmount and exit 0.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::{SNAPFS, is_mounted, snapfs_ok};

const UNIT: &str = include_str!("../../scripts/systemd/snapfs@.service");

/// The unit's value for `key` in its `[Service]` section.
fn unit_value(key: &str) -> String {
    UNIT.lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("the unit has no {key}="))
        .to_owned()
}

/// ExecStart as systemd runs it for the instance of `mnt`, with `env` its EnvironmentFile:
/// `%f` is the unescaped instance (the mountpoint), `${VAR}` one word, `$VAR` split on white
/// space, and the binary the one under test.
fn exec_start(mnt: &Path, env: &[(&str, &str)]) -> Vec<String> {
    let mut words = Vec::new();
    for word in unit_value("ExecStart").split_whitespace() {
        if word == "/usr/local/bin/snapfs" {
            words.push(SNAPFS.to_owned());
        } else if word == "%f" {
            words.push(mnt.to_str().expect("utf-8").to_owned());
        } else if let Some(name) = word.strip_prefix("${").and_then(|w| w.strip_suffix('}')) {
            words.push(lookup(env, name).to_owned());
        } else if let Some(name) = word.strip_prefix('$') {
            words.extend(lookup(env, name).split_whitespace().map(str::to_owned));
        } else {
            assert!(
                !word.contains(['%', '$']),
                "the test does not know how systemd expands {word:?}"
            );
            words.push(word.to_owned());
        }
    }
    words
}

fn lookup<'a>(env: &[(&str, &'a str)], name: &str) -> &'a str {
    env.iter()
        .find(|(key, _)| *key == name)
        .map(|(_, value)| *value)
        .unwrap_or_else(|| panic!("the unit uses ${name}, which the instance file lacks"))
}

/// The daemon as systemd's main process; killed and its mount detached if the test fails.
struct Unit {
    child: Option<Child>,
    mnt: std::path::PathBuf,
}

impl Drop for Unit {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            if is_mounted(&self.mnt) {
                let _ = nix::mount::umount2(&self.mnt, nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}

/// The next notification that holds `field`, skipping others (STATUS=...).
fn receive(socket: &UnixDatagram, field: &str) -> String {
    let mut buf = [0u8; 4096];
    loop {
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|err| panic!("no {field} from the daemon: {err}"));
        let message = String::from_utf8_lossy(&buf[..n]).into_owned();
        if message.lines().any(|line| line == field) {
            return message;
        }
    }
}

#[test]
fn the_unit_notifies_readiness_once_serving_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir_in("/var/tmp").expect("tempdir");
    let store = dir.path().join("store");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mountpoint");
    snapfs_ok(&["init", store.to_str().expect("utf-8")]);
    assert_eq!(unit_value("Type"), "notify");
    assert_eq!(unit_value("KillSignal"), "SIGTERM");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let words = exec_start(
        &mnt,
        &[
            ("STORE", store.to_str().expect("utf-8")),
            ("OPTIONS", "--threads 3 --snapdir visible"),
        ],
    );
    let log = std::fs::File::create(dir.path().join("daemon.log")).expect("log");
    let mut unit = Unit {
        child: Some(
            Command::new(&words[0])
                .args(&words[1..])
                .env("NOTIFY_SOCKET", &socket_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("starting ExecStart"),
        ),
        mnt: mnt.clone(),
    };
    let ready = receive(&socket, "READY=1");
    // Everything ordered after the unit starts now: the share must serve already.
    assert!(is_mounted(&mnt), "mounted at READY=1");
    std::fs::write(mnt.join("f"), b"ready").expect("write at READY=1");
    assert!(mnt.join(".snapshots").is_dir(), "the OPTIONS were applied");
    assert!(ready.contains("STATUS=serving"), "{ready}");

    let child = unit.child.as_mut().expect("running");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    receive(&socket, "STOPPING=1");
    let status = child.wait().expect("wait");
    unit.child = None;
    let logged = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();
    assert!(status.success(), "exit 0 after SIGTERM: {status}: {logged}");
    assert!(!is_mounted(&mnt), "unmounted after SIGTERM");
    assert!(logged.contains("unmounted; store closed"), "{logged}");
}

/// systemd's own checker, where it is installed, finds nothing to say about the unit.
#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze is not installed: skipped");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = dir.path().join("snapfs@.service");
    std::fs::write(&unit, UNIT.replace("/usr/local/bin/snapfs", SNAPFS)).expect("unit");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.path().join("snapfs@mnt-share.service"))
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .output()
        .expect("systemd-analyze");
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}
