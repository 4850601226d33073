//! Windows' Previous Versions through a real Samba: a share mounted with `--gmt-names`, served
//! by `smbd` (installed by `scripts/setup.sh`) with `vfs_shadow_copy2` set up as the README
//! says, and asked by `smbclient` as an SMB client asks: the versions of a file (`allinfo`)
//! and an old version's bytes through its `@GMT-` path. [`Smbd`] stops the server when
//! dropped, and [`Mounted`] unmounts, so a failing test leaves neither behind.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{DirEntryExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::harness::{Mounted, wait_for};

/// The share section of `smb.conf`, as the README gives it (`{name}`, `{path}`: the share's
/// name and directory, the mountpoint or a directory below it).
const SHARE_SECTION: &str = "\
[{name}]
    path = {path}
    read only = no
    guest ok = yes
    vfs objects = shadow_copy2
    shadow:snapdir = .snapshots/.gmt
    shadow:format = @GMT-%Y.%m.%d-%H.%M.%S
    shadow:localtime = no
    shadow:sort = desc
    shadow:snapdirseverywhere = no
";

/// A running `smbd` on 127.0.0.1 with a configuration, state and logs of its own in a temporary
/// directory, serving to guests the mountpoint as `share` and its directory `projects` as
/// `projects` (a share below the mountpoint: `shadow:snapdir` is relative to the mountpoint).
/// Stopped when dropped: its whole process group, since it forks helpers and one process per
/// client.
struct Smbd {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

/// A port nobody listens on just now (the kernel picks it).
fn free_port() -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind");
    listener.local_addr().expect("address").port()
}

/// `smbd` is in /usr/sbin, which a test's PATH may lack.
fn sbin(program: &str) -> PathBuf {
    let sbin = Path::new("/usr/sbin").join(program);
    if sbin.exists() {
        sbin
    } else {
        PathBuf::from(program)
    }
}

impl Smbd {
    /// Starts a server sharing `path` and waits until it accepts connections.
    fn start(path: &Path) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let log_path = dir.path().join("smbd.log");
        for _attempt in 0..3 {
            // Another process may take the port between here and smbd's bind: then try another.
            let port = free_port();
            let config = Self::configure(dir.path(), port, path);
            let log = fs::File::create(&log_path).expect("log");
            let mut child = Command::new(sbin("smbd"))
                .arg("--foreground")
                .arg("--no-process-group")
                .arg("--debug-stdout")
                .arg("--debuglevel=1")
                .arg(format!("--configfile={}", config.display()))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                // A group of its own, which `stop` ends whole.
                .process_group(0)
                .spawn()
                .expect("spawning smbd; is samba installed (scripts/setup.sh)?");
            if wait_ready(&mut child, port) {
                return Smbd {
                    child: Some(child),
                    port,
                    dir,
                };
            }
            stop_group(child);
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            eprintln!("smbd did not come up on port {port}; trying another: {log}");
        }
        panic!("smbd did not start");
    }

    /// Writes `smb.conf`: everything smbd keeps under `dir`, listening on 127.0.0.1:`port`
    /// only, guests mapped to `nobody`.
    fn configure(dir: &Path, port: u16, path: &Path) -> PathBuf {
        let d = dir.display();
        for sub in ["private", "lock", "state", "cache", "pid", "ncalrpc"] {
            fs::create_dir_all(dir.join(sub)).expect("mkdir");
        }
        let global = format!(
            "[global]
    server role = standalone server
    smb ports = {port}
    interfaces = 127.0.0.1
    bind interfaces only = yes
    private dir = {d}/private
    lock directory = {d}/lock
    state directory = {d}/state
    cache directory = {d}/cache
    pid directory = {d}/pid
    ncalrpc dir = {d}/ncalrpc
    passdb backend = tdbsam:{d}/private/passdb.tdb
    map to guest = Bad User
    guest account = nobody
    load printers = no
    printcap name = /dev/null
    disable spoolss = yes
"
        );
        let section = |name: &str, path: &Path| {
            SHARE_SECTION
                .replace("{name}", name)
                .replace("{path}", &path.display().to_string())
        };
        let share = section("share", path);
        let projects = section("projects", &path.join("projects"));
        let config = dir.join("smb.conf");
        fs::write(&config, format!("{global}\n{share}\n{projects}")).expect("write smb.conf");
        config
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("smbd.log")).unwrap_or_default()
    }

    /// Runs `smbclient //127.0.0.1/share` as a guest with the commands `commands`.
    fn client(&self, commands: &str) -> Output {
        self.client_of("share", commands)
    }

    /// Runs `smbclient //127.0.0.1/SHARE` as a guest with the commands `commands`.
    fn client_of(&self, share: &str, commands: &str) -> Output {
        Command::new("smbclient")
            .arg(format!("//127.0.0.1/{share}"))
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--no-pass")
            .arg(format!(
                "--configfile={}",
                self.dir.path().join("smb.conf").display()
            ))
            .arg("--command")
            .arg(commands)
            .output()
            .expect("running smbclient")
    }

    /// [`Self::client`], which must succeed; its standard output.
    fn client_ok(&self, commands: &str) -> String {
        self.client_of_ok("share", commands)
    }

    /// [`Self::client_of`], which must succeed; its standard output.
    fn client_of_ok(&self, share: &str, commands: &str) -> String {
        let out = self.client_of(share, commands);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "smbclient {commands:?}: {stdout}{}\nsmbd: {}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        stdout
    }
}

impl Drop for Smbd {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            stop_group(child);
        }
    }
}

/// Waits until smbd accepts connections on `port`; false if it exits or takes too long.
fn wait_ready(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Stops smbd's whole process group (it forks helpers and one server per client): politely,
/// then for good, and reaps smbd.
fn stop_group(mut child: Child) {
    let group = Pid::from_raw(child.id() as i32);
    let _ = killpg(group, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !matches!(child.try_wait(), Ok(Some(_))) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = killpg(group, Signal::SIGKILL);
    let _ = child.wait();
}

/// The `@GMT-` name of an RFC 3339 UTC time as the control file shows it
/// (`2026-11-21T03:00:00Z` → `@GMT-2026.11.21-03.00.00`).
fn gmt_of(rfc3339: &str) -> String {
    let (date, time) = rfc3339
        .trim_end_matches('Z')
        .split_once('T')
        .expect("an RFC 3339 time");
    format!("@GMT-{}-{}", date.replace('-', "."), time.replace(':', "."))
}

/// Waits until the clock has left the second of `rfc3339`, so that the next snapshot is
/// taken in a later one (snapshot times are whole seconds).
fn wait_past(rfc3339: &str) {
    let then: jiff::Timestamp = rfc3339.parse().expect("an RFC 3339 time");
    while jiff::Timestamp::now().as_second() <= then.as_second() {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The creation time of snapshot `name`, as the control file lists it.
fn created(m: &Mounted, name: &str) -> String {
    let status = fs::read_to_string(m.path(".snapshots/.control")).expect("control file");
    status
        .lines()
        .find_map(|line| {
            let mut fields = line.split('\t');
            (fields.next() == Some(name)).then(|| fields.next().expect("time").to_owned())
        })
        .unwrap_or_else(|| panic!("no snapshot {name}: {status}"))
}

/// The names in `.snapshots/.gmt`, sorted.
fn aliases(m: &Mounted) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(m.path(".snapshots/.gmt"))
        .expect("list .gmt")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    names.sort();
    names
}

/// The `@GMT-` versions `smbclient allinfo` shows of `file` in the share named `share`.
fn versions_in(smbd: &Smbd, share: &str, file: &str) -> Vec<String> {
    let mut found: Vec<String> = smbd
        .client_of_ok(share, &format!("allinfo {file}"))
        .lines()
        .filter(|line| line.starts_with("@GMT-"))
        .map(|line| line.trim().to_owned())
        .collect();
    found.sort();
    found
}

/// The `@GMT-` versions `smbclient allinfo` shows of `file` in the mountpoint's share.
fn versions(smbd: &Smbd, file: &str) -> Vec<String> {
    versions_in(smbd, "share", file)
}

/// An admin's setup end to end: a share mounted with `--gmt-names` and served by smbd with
/// `shadow_copy2` as the README says. Windows (here smbclient) sees one previous version per
/// snapshot, reads a version's old bytes through its `@GMT-` path, and stops seeing a version
/// once its snapshot is deleted, with no remount and no smbd restart. On the share itself, the
/// aliases' listings, lookups and attributes agree, and their inode numbers are neither the
/// live file's nor the snapshot's own.
#[test]
fn samba_shows_each_snapshot_as_a_previous_version_and_reads_its_bytes() {
    let m = Mounted::new_with(&[], &["--gmt-names", "--allow-other"]);
    // smbd serves guests as `nobody`, who must be able to walk down to the share.
    fs::set_permissions(m.dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let doc = m.path("report.txt");
    fs::write(&doc, b"first draft\n").expect("write");
    fs::create_dir(m.path("projects")).expect("mkdir");
    fs::write(m.path("projects/plan.txt"), b"plan A\n").expect("write");
    fs::create_dir(m.path(".snapshots/monday")).expect("snapshot 1");
    let monday = created(&m, "monday");
    let first = gmt_of(&monday);
    wait_past(&monday);
    fs::write(&doc, b"second draft, longer\n").expect("write");
    fs::write(m.path("projects/plan.txt"), b"plan B\n").expect("write");
    fs::create_dir(m.path(".snapshots/tuesday")).expect("snapshot 2");
    let tuesday = created(&m, "tuesday");
    let second = gmt_of(&tuesday);
    assert!(first < second, "{first} {second}");
    fs::write(&doc, b"final\n").expect("write");

    // The share itself: one alias per snapshot; readdir, lookup and stat agree.
    assert_eq!(aliases(&m), [first.clone(), second.clone()]);
    let live_ino = fs::metadata(&doc).expect("stat").ino();
    let own_ino = fs::metadata(m.path(".snapshots/monday/report.txt"))
        .expect("stat")
        .ino();
    for entry in fs::read_dir(m.path(".snapshots/.gmt")).expect("list") {
        let entry = entry.expect("entry");
        let meta = fs::metadata(entry.path()).expect("stat alias");
        assert!(meta.is_dir());
        assert_eq!(entry.ino(), meta.ino(), "readdir and lookup agree");
    }
    let alias_file = m.path(&format!(".snapshots/.gmt/{first}/report.txt"));
    let alias_ino = fs::metadata(&alias_file).expect("stat").ino();
    assert!(alias_ino != live_ino && alias_ino != own_ino);
    let listed = fs::read_dir(m.path(&format!(".snapshots/.gmt/{first}")))
        .expect("list alias")
        .map(|e| e.expect("entry"))
        .find(|e| e.file_name() == "report.txt")
        .expect("listed");
    assert_eq!(listed.ino(), alias_ino, "readdir and lookup agree");
    assert_eq!(fs::read(&alias_file).expect("read"), b"first draft\n");
    // `.gmt` is hidden: a plain listing of `.snapshots` shows the snapshots only.
    let ls = Command::new("ls")
        .arg(m.path(".snapshots"))
        .output()
        .expect("ls");
    assert_eq!(String::from_utf8_lossy(&ls.stdout), "monday\ntuesday\n");

    // Through Samba.
    let smbd = Smbd::start(&m.mnt);
    assert_eq!(
        versions(&smbd, "report.txt"),
        [first.clone(), second.clone()]
    );
    let out = smbd.dir.path().join("old-version");
    smbd.client_ok(&format!(
        "get \"{first}\\report.txt\" \"{}\"",
        out.display()
    ));
    assert_eq!(fs::read(&out).expect("got"), b"first draft\n");
    smbd.client_ok(&format!(
        "get \"{second}\\report.txt\" \"{}\"",
        out.display()
    ));
    assert_eq!(fs::read(&out).expect("got"), b"second draft, longer\n");
    smbd.client_ok(&format!("get report.txt \"{}\"", out.display()));
    assert_eq!(fs::read(&out).expect("got"), b"final\n");
    // A share of a directory below the mountpoint finds the same versions.
    assert_eq!(
        versions_in(&smbd, "projects", "plan.txt"),
        [first.clone(), second.clone()]
    );
    smbd.client_of_ok(
        "projects",
        &format!("get \"{first}\\plan.txt\" \"{}\"", out.display()),
    );
    assert_eq!(fs::read(&out).expect("got"), b"plan A\n");

    // Deleting a snapshot takes its version away, on the share and through Samba.
    fs::remove_dir(m.path(".snapshots/monday")).expect("delete snapshot 1");
    assert_eq!(aliases(&m), std::slice::from_ref(&second));
    // The kernel is told to drop its cached entry of the alias right after the delete
    // returns (asynchronously, as for a snapshot's own name).
    wait_for("the deleted snapshot's alias to go", 10, || {
        !m.path(&format!(".snapshots/.gmt/{first}")).exists()
    });
    assert_eq!(versions(&smbd, "report.txt"), std::slice::from_ref(&second));
    let gone = smbd.client(&format!(
        "get \"{first}\\report.txt\" \"{}\"",
        out.display()
    ));
    let said = String::from_utf8_lossy(&gone.stdout);
    assert!(said.contains("NT_STATUS_OBJECT_"), "{said}");
    // And a new one appears at once.
    wait_past(&tuesday);
    fs::create_dir(m.path(".snapshots/wednesday")).expect("snapshot 3");
    let third = gmt_of(&created(&m, "wednesday"));
    assert_eq!(versions(&smbd, "report.txt"), [second, third]);
}

/// Two snapshots taken in one second (the daemon's clock held still): one alias, naming the
/// first; deleting it hands the alias to the second at once, though the kernel had the alias
/// cached.
#[test]
fn two_snapshots_of_one_second_share_one_alias_owned_by_the_first() {
    // 2026-11-21T03:00:00Z.
    let m = Mounted::new_with(&[], &["--gmt-names", "--test-clock", "1795230000"]);
    fs::write(m.path("f"), b"one").expect("write");
    fs::create_dir(m.path(".snapshots/a")).expect("snapshot a");
    fs::write(m.path("f"), b"two").expect("write");
    fs::create_dir(m.path(".snapshots/b")).expect("snapshot b");
    let alias = m.path(".snapshots/.gmt/@GMT-2026.11.21-03.00.00");
    assert_eq!(aliases(&m), ["@GMT-2026.11.21-03.00.00"]);
    assert_eq!(fs::read(alias.join("f")).expect("read"), b"one");
    let a_ino = fs::metadata(&alias).expect("stat").ino();
    fs::remove_dir(m.path(".snapshots/a")).expect("delete a");
    assert_eq!(aliases(&m), ["@GMT-2026.11.21-03.00.00"]);
    assert_eq!(fs::read(alias.join("f")).expect("read"), b"two");
    assert_ne!(fs::metadata(&alias).expect("stat").ino(), a_ino);
    fs::remove_dir(m.path(".snapshots/b")).expect("delete b");
    assert!(aliases(&m).is_empty());
    assert!(!alias.exists());
    // Aliases are read-only, like everything in `.snapshots`.
    let refused = fs::create_dir(m.path(".snapshots/.gmt/@GMT-2026.11.21-03.00.01"));
    assert_eq!(
        refused.expect_err("read-only").raw_os_error(),
        Some(libc::EROFS)
    );
}

/// Without `--gmt-names` there is no `.snapshots/.gmt`.
#[test]
fn without_gmt_names_there_are_no_aliases() {
    let m = Mounted::new();
    fs::create_dir(m.path(".snapshots/s1")).expect("snapshot");
    assert!(!m.path(".snapshots/.gmt").exists());
    let listed: Vec<String> = fs::read_dir(m.path(".snapshots"))
        .expect("list")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    assert!(!listed.iter().any(|name| name == ".gmt"), "{listed:?}");
}
