//! The history of a path through a real mount: `.snapshots/.history/PATH/@versions/` lists each
//! version of `PATH` once, named by the first snapshot holding it and dated by that snapshot, and
//! the versions work with `ls`, `cat`, `diff` and `cp` like any read-only file or directory. A
//! name of the share and a snapshot name never meet in one directory.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use crate::harness::Mounted;

fn control(m: &Mounted, command: &str) {
    fs::write(m.path(".snapshots/.control"), format!("{command}\n")).expect(command);
}

/// `ls` of a directory, one name a line.
fn ls(dir: &Path) -> Vec<String> {
    let out = Command::new("ls").arg("-1").arg(dir).output().expect("ls");
    assert!(out.status.success(), "ls {}: {out:?}", dir.display());
    String::from_utf8(out.stdout)
        .expect("utf-8 names")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn cat(path: &Path) -> String {
    let out = Command::new("cat").arg(path).output().expect("cat");
    assert!(out.status.success(), "cat {}: {out:?}", path.display());
    String::from_utf8(out.stdout).expect("utf-8")
}

/// `/docs/report.txt` across five snapshots: v1 in s1 and s2 (nothing changed in between), v2 in
/// s3, deleted in s4, recreated as v3 in s5; then deleted from the live share.
fn report_history() -> Mounted {
    let m = Mounted::new();
    fs::create_dir(m.path("docs")).unwrap();
    fs::write(m.path("docs/report.txt"), "v1\n").unwrap();
    control(&m, "create s1");
    control(&m, "create s2");
    fs::write(m.path("docs/report.txt"), "v2\n").unwrap();
    control(&m, "create s3");
    fs::remove_file(m.path("docs/report.txt")).unwrap();
    control(&m, "create s4");
    fs::write(m.path("docs/report.txt"), "v3\n").unwrap();
    control(&m, "create s5");
    fs::remove_file(m.path("docs/report.txt")).unwrap();
    m
}

#[test]
fn each_version_is_listed_once_under_its_first_snapshot_with_its_time() {
    let m = report_history();
    assert_eq!(
        ls(&m.path(".snapshots/.history/docs/report.txt")),
        ["@versions"]
    );
    let history = m.path(".snapshots/.history/docs/report.txt/@versions");
    assert_eq!(
        ls(&history),
        ["s1", "s3", "s5"],
        "deleted from the live share, still listed"
    );
    for (name, content) in [("s1", "v1\n"), ("s3", "v2\n"), ("s5", "v3\n")] {
        let version = fs::metadata(history.join(name)).unwrap();
        let snapshot = fs::metadata(m.path(&format!(".snapshots/{name}"))).unwrap();
        assert!(version.is_file());
        assert_eq!(
            (version.mtime(), version.mtime_nsec()),
            (snapshot.mtime(), snapshot.mtime_nsec()),
            "{name}: the snapshot's time"
        );
        assert_eq!(version.len(), content.len() as u64);
        assert_eq!(cat(&history.join(name)), content);
        assert_eq!(
            fs::metadata(history.join(name)).unwrap().ino(),
            version.ino(),
            "{name}: a stable inode"
        );
    }
    assert_eq!(
        cat(&history.join("s2")),
        "v1\n",
        "any snapshot holding a version names it"
    );
    assert!(!history.join("s4").exists(), "s4 does not hold the file");
    let listed: Vec<String> = fs::read_dir(m.path(".snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        listed.contains(&".history".to_owned()) && listed.contains(&".control".to_owned()),
        "{listed:?}"
    );
    assert_eq!(
        ls(&m.path(".snapshots/.history/@versions")),
        ["s1", "s3", "s4", "s5"],
        "the root's versions: s2 changed nothing"
    );
}

#[test]
fn versions_work_with_diff_and_cp() {
    let m = report_history();
    let history = m.path(".snapshots/.history/docs/report.txt/@versions");
    let diff = Command::new("diff")
        .arg(history.join("s1"))
        .arg(history.join("s3"))
        .output()
        .unwrap();
    assert_eq!(diff.status.code(), Some(1), "the versions differ");
    let diff = String::from_utf8_lossy(&diff.stdout);
    assert!(diff.contains("< v1") && diff.contains("> v2"), "{diff}");
    let cp = Command::new("cp")
        .arg("--preserve=timestamps")
        .arg(history.join("s3"))
        .arg(m.path("docs/restored.txt"))
        .status()
        .unwrap();
    assert!(cp.success());
    assert_eq!(
        fs::read_to_string(m.path("docs/restored.txt")).unwrap(),
        "v2\n"
    );
    assert_eq!(
        fs::metadata(m.path("docs/restored.txt")).unwrap().mtime(),
        fs::metadata(m.path(".snapshots/s3")).unwrap().mtime(),
        "cp -p keeps the version's time"
    );
}

#[test]
fn a_directory_version_lists_the_snapshot_directory() {
    let m = report_history();
    let docs = m.path(".snapshots/.history/docs/@versions");
    assert_eq!(ls(&docs), ["s1", "s3", "s4", "s5"]);
    assert!(fs::metadata(docs.join("s3")).unwrap().is_dir());
    assert_eq!(ls(&docs.join("s3")), ["report.txt"]);
    assert!(
        ls(&docs.join("s4")).is_empty(),
        "the file was deleted in s4"
    );
    assert_eq!(cat(&docs.join("s3/report.txt")), "v2\n");
    assert_eq!(
        fs::metadata(docs.join("s3/report.txt")).unwrap().ino(),
        fs::metadata(m.path(".snapshots/s3/docs/report.txt"))
            .unwrap()
            .ino(),
        "below a version are the snapshot's own inodes"
    );
    let copy = m.dir.path().join("copy");
    let cp = Command::new("cp")
        .arg("-r")
        .arg(docs.join("s5"))
        .arg(&copy)
        .status()
        .unwrap();
    assert!(cp.success());
    assert_eq!(fs::read_to_string(copy.join("report.txt")).unwrap(), "v3\n");
}

#[test]
fn everything_under_history_is_read_only() {
    let m = report_history();
    let history = m.path(".snapshots/.history/docs/report.txt/@versions");
    let version = history.join("s1");
    let in_dir_version = m.path(".snapshots/.history/docs/@versions/s3/report.txt");
    let erofs = |result: std::io::Result<()>, what: &str| {
        let err = result.expect_err(what);
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{what}: {err}");
    };
    erofs(fs::write(&version, "x"), "write a version");
    erofs(fs::write(&in_dir_version, "x"), "write below a version");
    erofs(
        fs::write(history.join("new"), "x"),
        "create in a history directory",
    );
    erofs(
        fs::create_dir(m.path(".snapshots/.history/new")),
        "mkdir in .history",
    );
    erofs(fs::remove_file(&version), "unlink a version");
    erofs(
        fs::remove_dir(m.path(".snapshots/.history/docs")),
        "rmdir a history directory",
    );
    erofs(
        fs::remove_dir(m.path(".snapshots/.history/docs/@versions")),
        "rmdir a versions directory",
    );
    erofs(
        fs::remove_dir(m.path(".snapshots/.history")),
        "rmdir .history itself",
    );
    erofs(
        fs::create_dir(m.path(".snapshots/.history/docs/@versions/s9")),
        "mkdir in a versions directory",
    );
    erofs(fs::rename(&version, history.join("s9")), "rename a version");
    erofs(
        fs::set_permissions(&version, fs::Permissions::from_mode(0o777)),
        "chmod a version",
    );
    erofs(
        std::os::unix::fs::symlink("t", history.join("l")),
        "symlink in a history directory",
    );
    assert_eq!(cat(&version), "v1\n", "reading still works");
    assert_eq!(ls(&m.path(".snapshots/.history/@versions")).len(), 4);
}

#[test]
fn a_file_named_like_a_snapshot_has_its_own_history() {
    let m = Mounted::new();
    fs::write(m.path("s1"), "a file named s1\n").unwrap();
    fs::write(m.path("@versions"), "a file named @versions\n").unwrap();
    control(&m, "create s1");
    fs::write(m.path("s1"), "changed\n").unwrap();
    control(&m, "create s2");
    let history = m.path(".snapshots/.history");
    assert_eq!(
        ls(&history.join("s1/@versions")),
        ["s1", "s2"],
        "the file's versions"
    );
    assert_eq!(cat(&history.join("s1/@versions/s1")), "a file named s1\n");
    assert_eq!(cat(&history.join("s1/@versions/s2")), "changed\n");
    assert!(
        fs::metadata(history.join("@versions/s1")).unwrap().is_dir(),
        "the root as in snapshot s1"
    );
    assert_eq!(
        cat(&history.join("@@versions/@versions/s1")),
        "a file named @versions\n",
        "a name like the versions directory is looked up with one more @"
    );
}
