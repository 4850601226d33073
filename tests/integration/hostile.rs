//! Hostile but fair input: requests cut anywhere across writes, requests files larger than a
//! write, bad and overlong lines, reserved snapshot names, names that are not UTF-8 or hold a
//! newline, output into a closed pipe, holds that end in the past, and more extended
//! attributes than a listing can return. Each is refused with a clear reason or works whole;
//! none crashes, hangs or half-happens.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::harness::{Mounted, SNAPFS, c_path, snapfs_err, snapfs_ok, xattr_set};

fn control_path(m: &Mounted) -> std::path::PathBuf {
    m.path(".snapshots/.control")
}

/// The control file opened for writing, as `>` opens it.
fn open_control(m: &Mounted) -> fs::File {
    fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(control_path(m))
        .expect("open the control file")
}

/// The first line of the control file: `last: ok: ...` or `last: error: ...`.
fn last_outcome(m: &Mounted) -> String {
    let status = fs::read_to_string(control_path(m)).expect("read the control file");
    status.lines().next().unwrap_or_default().to_owned()
}

fn snapshot_names(m: &Mounted) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(m.path(".snapshots"))
        .expect("list .snapshots")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .collect();
    names.sort();
    names
}

/// `snapfs ARGS`, with arguments that need not be UTF-8.
fn snapfs_os(args: &[&OsStr]) -> std::process::Output {
    Command::new(SNAPFS)
        .args(args)
        .output()
        .expect("running snapfs")
}

#[test]
fn a_request_cut_across_writes_runs_once_whole() {
    let m = Mounted::new();
    let mut control = open_control(&m);
    for piece in ["cre", "ate x", "\n"] {
        let written = control.write(piece.as_bytes()).expect(piece);
        assert_eq!(written, piece.len(), "{piece:?} is taken whole");
    }
    assert_eq!(snapshot_names(&m), ["x"]);
    // A process started meanwhile inherits the descriptor and closes its copy (at exec and at
    // exit): that is not the writer closing the file, and does not cut the line.
    control.write_all(b"create sp").expect("half a line");
    let child = Command::new("true").status().expect("true");
    assert!(child.success());
    control.write_all(b"lit\n").expect("the other half");
    assert_eq!(snapshot_names(&m), ["split", "x"]);
    // A last line without a newline runs when its writer closes the file, as a shell runs a
    // script's last line.
    control.write_all(b"create y").expect("unterminated line");
    assert_eq!(
        snapshot_names(&m),
        ["split", "x"],
        "not before the line is complete"
    );
    drop(control);
    assert_eq!(snapshot_names(&m), ["split", "x", "y"]);
    assert!(
        last_outcome(&m).starts_with("last: ok:"),
        "{}",
        last_outcome(&m)
    );
}

#[test]
fn a_requests_file_larger_than_a_write_runs_every_line() {
    let m = Mounted::new();
    // 200 lines of ~740 bytes: 148 KiB, more than `cat` writes at once (128 KiB), so the
    // kernel delivers a line in two pieces. Blanks around a request are ignored.
    let mut script = String::new();
    for i in 0..200 {
        script.push_str(&format!("{:>360}create s{i:03}{:360}\n", "", ""));
    }
    assert!(script.len() > 128 << 10);
    let file = m.dir.path().join("many-requests.txt");
    fs::write(&file, &script).unwrap();
    let cat = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cat '{}' > '{}'",
            file.display(),
            control_path(&m).display()
        ))
        .output()
        .expect("sh");
    assert!(
        cat.status.success(),
        "cat failed: {}; {}",
        String::from_utf8_lossy(&cat.stderr),
        last_outcome(&m)
    );
    let expected: Vec<String> = (0..200).map(|i| format!("s{i:03}")).collect();
    assert_eq!(snapshot_names(&m), expected);

    // The same requests in 7-byte writes: every line runs once, in order.
    let mut control = open_control(&m);
    let script: String = (0..20).map(|i| format!("delete s{i:03}\n")).collect();
    for piece in script.as_bytes().chunks(7) {
        control.write_all(piece).expect("a piece of a line");
    }
    drop(control);
    assert_eq!(snapshot_names(&m), expected[20..]);
}

#[test]
fn a_bad_line_is_named_by_number_and_stops_the_lines_after_it() {
    let m = Mounted::new();
    let err = fs::write(
        control_path(&m),
        "create first\n\nexplode now\ncreate never\n",
    )
    .expect_err("line 3 is no request");
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    let outcome = last_outcome(&m);
    assert!(outcome.starts_with("last: error: line 3:"), "{outcome}");
    assert!(outcome.contains("explode"), "{outcome}");
    assert_eq!(
        snapshot_names(&m),
        ["first"],
        "the lines before ran, not after"
    );

    // A failure, not only a syntax error, is named the same way.
    let err = fs::write(control_path(&m), "create second\ncreate first\n")
        .expect_err("line 2 names an existing snapshot");
    assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
    let outcome = last_outcome(&m);
    assert!(outcome.starts_with("last: error: line 2:"), "{outcome}");
    assert_eq!(snapshot_names(&m), ["first", "second"]);
}

#[test]
fn a_line_longer_than_the_limit_is_refused_and_one_below_it_runs() {
    let m = Mounted::new();
    // Just under 1 MiB, in 64 KiB writes: a (padded) request.
    let mut line = format!("create padded{}", " ".repeat((1 << 20) - 100));
    line.push('\n');
    let mut control = open_control(&m);
    for piece in line.as_bytes().chunks(64 << 10) {
        control.write_all(piece).expect("a piece of a long line");
    }
    drop(control);
    assert_eq!(snapshot_names(&m), ["padded"]);

    // Over 1 MiB without a newline: refused once it passes the limit, with the reason.
    let mut control = open_control(&m);
    let junk = vec![b'x'; 64 << 10];
    let mut refused = None;
    for _ in 0..20 {
        if let Err(err) = control.write_all(&junk) {
            refused = Some(err);
            break;
        }
    }
    let refused = refused.expect("a line over 1 MiB is refused");
    assert_eq!(refused.raw_os_error(), Some(libc::EINVAL));
    let outcome = last_outcome(&m);
    assert!(outcome.contains("longer than"), "{outcome}");
    drop(control);
    assert_eq!(snapshot_names(&m), ["padded"]);
}

#[test]
fn reserved_snapshot_names_are_refused_everywhere() {
    let m = Mounted::new();
    let mnt = m.mnt.to_str().unwrap().to_owned();
    // `live` is the live share for `diff`; a leading `-` reads as an option.
    for name in ["live", "-x", "--help"] {
        let json = format!("{{\"command\":\"create\",\"name\":{name:?}}}\n");
        let err = fs::write(control_path(&m), json).expect_err(name);
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{name}");
        let outcome = last_outcome(&m);
        assert!(outcome.contains("reserved"), "{name}: {outcome}");
        let err = fs::create_dir(m.path(&format!(".snapshots/{name}"))).expect_err(name);
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "mkdir {name}");
    }
    let err = fs::write(control_path(&m), "create live\n").expect_err("live");
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    let err = snapfs_err(&["snapshot", "create", "live", "--mount", &mnt]);
    assert!(err.contains("reserved"), "{err}");
    // The names of the directory itself were refused already.
    for name in [".history", ".control"] {
        let err = fs::write(control_path(&m), format!("create {name}\n")).expect_err(name);
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{name}");
        let err = fs::create_dir(m.path(&format!(".snapshots/{name}"))).expect_err(name);
        assert_eq!(err.raw_os_error(), Some(libc::EEXIST), "mkdir {name}");
    }
    assert!(snapshot_names(&m).is_empty());
    // So `diff X live` always means the share. (Snapshots are never renamed.)
    snapfs_ok(&["snapshot", "create", "s", "--mount", &mnt]);
    let err = fs::rename(m.path(".snapshots/s"), m.path(".snapshots/live")).expect_err("rename");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    fs::write(m.path("new"), "x").unwrap();
    assert_eq!(
        snapfs_ok(&["diff", "s", "live", "--mount", &mnt]).trim(),
        "+  /new"
    );
    assert_eq!(snapfs_ok(&["diff", "live", "live", "--mount", &mnt]), "");
}

/// Runs `snapfs ARGS` with its standard output a pipe nobody reads any more.
fn into_a_closed_pipe(args: &[&str]) -> std::process::Output {
    let (read, write) = nix::unistd::pipe().expect("pipe");
    drop(read);
    Command::new(SNAPFS)
        .args(args)
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .expect("running snapfs")
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let m = Mounted::new();
    let mnt = m.mnt.to_str().unwrap().to_owned();
    fs::write(m.path("f"), "x").unwrap();
    snapfs_ok(&["snapshot", "create", "s", "--mount", &mnt]);
    fs::write(m.path("f"), "y").unwrap();
    for args in [
        &["status", "--mount", &mnt][..],
        &["snapshot", "list", "--mount", &mnt],
        &["policy", "show", "--mount", &mnt],
        &["diff", "s", "live", "--mount", &mnt],
        &["log", "f", "--mount", &mnt],
        &["status", "--mount", &mnt, "--json"],
    ] {
        let out = into_a_closed_pipe(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
        // As `ls | head` ends: killed by SIGPIPE, which shells do not report.
        assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{args:?}");
    }
}

#[test]
fn paths_are_bytes_end_to_end() {
    let m = Mounted::new();
    let mnt = m.mnt.to_str().unwrap().to_owned();
    let latin1 = OsStr::from_bytes(b"caf\xe9");
    let newline = OsStr::from_bytes(b"two\nlines");
    fs::write(m.path("").join(latin1), "v1").unwrap();
    snapfs_ok(&["snapshot", "create", "s1", "--mount", &mnt]);
    fs::write(m.path("").join(latin1), "v2").unwrap();
    fs::write(m.path("").join(newline), "n").unwrap();
    snapfs_ok(&["snapshot", "create", "s2", "--mount", &mnt]);

    // diff shows a newline in a name escaped, like bytes that are not UTF-8: one line each.
    let diff = snapfs_ok(&["diff", "s1", "s2", "--mount", &mnt]);
    assert_eq!(
        diff.lines().collect::<Vec<_>>(),
        ["M  /caf\\xe9  (content, mtime)", "+  /two\\x0alines"],
        "{diff}"
    );

    // log takes the name as bytes, mounted and through the control file in both forms.
    let mount = OsString::from(&mnt);
    let log = snapfs_os(&["log".as_ref(), latin1, "--mount".as_ref(), &mount]);
    assert!(
        log.status.success(),
        "{}",
        String::from_utf8_lossy(&log.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&log.stdout).lines().count(), 3);
    fs::write(control_path(&m), b"log 'caf\xe9'\n").expect("words with raw bytes");
    assert!(last_outcome(&m).contains("\"s1\""), "{}", last_outcome(&m));
    fs::write(
        control_path(&m),
        "{\"command\":\"log\",\"path\":[99,97,102,233]}\n",
    )
    .expect("a path as an array of bytes");
    assert!(last_outcome(&m).contains("\"s2\""), "{}", last_outcome(&m));

    // restore takes both paths as bytes.
    let to = OsStr::from_bytes(b"old-caf\xe9");
    let restore = snapfs_os(&[
        "restore".as_ref(),
        "s1".as_ref(),
        latin1,
        "--to".as_ref(),
        to,
        "--mount".as_ref(),
        &mount,
    ]);
    assert!(
        restore.status.success(),
        "{}",
        String::from_utf8_lossy(&restore.stderr)
    );
    assert_eq!(fs::read(m.path("").join(to)).unwrap(), b"v1");

    // The same on the unmounted store.
    let mut m = m;
    m.unmount();
    let store = m.store.clone().into_os_string();
    let log = snapfs_os(&["log".as_ref(), newline, "--store".as_ref(), &store]);
    assert!(
        log.status.success(),
        "{}",
        String::from_utf8_lossy(&log.stderr)
    );
    let text = String::from_utf8_lossy(&log.stdout).into_owned();
    assert!(text.lines().nth(1).unwrap().starts_with("s2 "), "{text}");
}

#[test]
fn log_of_a_path_no_snapshot_holds_fails() {
    let mut m = Mounted::new();
    let mnt = m.mnt.to_str().unwrap().to_owned();
    fs::write(m.path("f"), "x").unwrap();
    snapfs_ok(&["snapshot", "create", "s", "--mount", &mnt]);
    let err = snapfs_err(&["log", "never", "--mount", &mnt]);
    assert!(err.contains("no such path in any snapshot"), "{err}");
    let err = snapfs_err(&["log", "never", "--mount", &mnt, "--json"]);
    assert!(err.contains("no such path in any snapshot"), "{err}");
    let err = fs::write(control_path(&m), "log never\n").expect_err("never existed");
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    m.unmount();
    let store = m.store.to_str().unwrap().to_owned();
    let err = snapfs_err(&["log", "never", "--store", &store]);
    assert!(err.contains("no such path in any snapshot"), "{err}");
    snapfs_ok(&["log", "f", "--store", &store]);
}

#[test]
fn a_hold_must_end_in_the_future() {
    let m = Mounted::new();
    let mnt = m.mnt.to_str().unwrap().to_owned();
    snapfs_ok(&["snapshot", "create", "s", "--mount", &mnt]);
    for until in ["1970-01-01", "0d", "0h"] {
        let err = snapfs_err(&["snapshot", "hold", "s", "--until", until, "--mount", &mnt]);
        assert!(err.contains("not in the future"), "{until}: {err}");
        let line = format!("hold s --until {until}\n");
        let err = fs::write(control_path(&m), line).expect_err(until);
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{until}");
    }
    // Nothing was held: the snapshot can go.
    snapfs_ok(&["snapshot", "hold", "s", "--until", "1d", "--mount", &mnt]);
    snapfs_ok(&["snapshot", "release", "s", "--mount", &mnt]);
    snapfs_ok(&["snapshot", "delete", "s", "--mount", &mnt]);
}

/// The names `listxattr` gives for `path`, or its errno.
fn list_xattrs(path: &Path) -> Result<Vec<Vec<u8>>, i32> {
    let c_path = c_path(path);
    // SAFETY: a valid C string; size 0 asks for the length only.
    let len = unsafe { libc::listxattr(c_path.as_ptr(), std::ptr::null_mut(), 0) };
    if len < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    let mut buf = vec![0u8; len as usize];
    // SAFETY: a valid C string and a writable buffer of the given length.
    let len = unsafe { libc::listxattr(c_path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    buf.truncate(len as usize);
    Ok(buf
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

/// `setxattr`, returning its errno on failure.
fn try_set_xattr(path: &Path, name: &str, value: &[u8]) -> Result<(), i32> {
    let c_name = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid C strings and a buffer of the given length.
    let rc = unsafe {
        libc::setxattr(
            c_path(path).as_ptr(),
            c_name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

#[test]
fn every_extended_attribute_set_can_be_listed() {
    let m = Mounted::new();
    let f = m.path("f");
    fs::write(&f, "x").unwrap();
    assert_eq!(list_xattrs(&f), Ok(Vec::new()));
    // Names of 255 bytes: 256 each in a listing, whose limit is 64 KiB.
    let name = |i: usize| format!("user.{i:05}{}", "n".repeat(245));
    let mut set = Vec::new();
    let mut refused = None;
    for i in 0..400 {
        match try_set_xattr(&f, &name(i), b"v") {
            Ok(()) => set.push(name(i).into_bytes()),
            Err(errno) => {
                refused = Some(errno);
                break;
            }
        }
    }
    assert_eq!(
        refused,
        Some(libc::ENOSPC),
        "after {} attributes",
        set.len()
    );
    assert_eq!(set.len(), 256, "a listing of 64 KiB holds 256 such names");
    assert_eq!(list_xattrs(&f), Ok(set.clone()));
    // Changing the value of a name already there still works at the limit.
    xattr_set(&f, &name(0), b"changed");
    // Removing one makes room for one.
    let c_name = std::ffi::CString::new(name(1)).unwrap();
    // SAFETY: valid C strings.
    assert_eq!(
        unsafe { libc::removexattr(c_path(&f).as_ptr(), c_name.as_ptr()) },
        0
    );
    assert_eq!(try_set_xattr(&f, &name(1), b"back"), Ok(()));
    assert_eq!(try_set_xattr(&f, "user.one-more", b"v"), Err(libc::ENOSPC));

    // A snapshot of it lists them all too.
    fs::write(control_path(&m), "create s\n").unwrap();
    assert_eq!(list_xattrs(&m.path(".snapshots/s/f")), Ok(set));
}

#[test]
fn clone_takes_a_store_path_that_is_not_utf8() {
    let m = Mounted::new();
    let mnt = OsString::from(m.mnt.as_os_str());
    fs::write(m.path("f"), "x").unwrap();
    fs::write(control_path(&m), "create s\n").unwrap();
    let target = m
        .dir
        .path()
        .join(OsString::from_vec(b"clone-\xff".to_vec()));
    let out = snapfs_os(&[
        "clone".as_ref(),
        "s".as_ref(),
        target.as_os_str(),
        "--mount".as_ref(),
        &mnt,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(target.join("snapfs-store.json").exists());
}
