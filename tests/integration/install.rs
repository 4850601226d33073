//! `snapfs install`: every file lands where the system looks for it under the prefix (the
//! helper in the sbin directory, linked to the installed binary), the unit names the installed
//! binary, and the completions and manual pages parse.

use std::path::Path;
use std::process::Command;

use crate::harness::{SNAPFS, snapfs_ok};

fn tool_exists(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

/// Runs `tool args` on `file`, which must succeed without a word on standard error.
fn parses(tool: &str, args: &[&str], file: &Path) {
    let out = Command::new(tool)
        .args(args)
        .arg(file)
        .output()
        .expect(tool);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "{tool} {args:?} {}: {stderr}",
        file.display()
    );
}

#[test]
fn install_puts_every_file_in_place_and_they_parse() {
    let dest = tempfile::tempdir().expect("tempdir");
    let d = dest.path();
    let dry = snapfs_ok(&[
        "install",
        "--dest-dir",
        d.to_str().expect("utf-8"),
        "--dry-run",
    ]);
    assert!(dry.contains("would install"), "{dry}");
    assert_eq!(
        std::fs::read_dir(d).expect("dest").count(),
        0,
        "a dry run writes nothing"
    );

    let out = snapfs_ok(&[
        "install",
        "--prefix",
        "/opt/snapfs",
        "--dest-dir",
        d.to_str().expect("utf-8"),
    ]);
    let prefix = d.join("opt/snapfs");
    let binary = prefix.join("bin/snapfs");
    assert_eq!(
        std::fs::read(&binary).expect("binary"),
        std::fs::read(SNAPFS).expect("built")
    );
    let version = Command::new(&binary)
        .arg("--version")
        .output()
        .expect("run the installed binary");
    assert!(version.status.success());

    let helper = d.join("sbin/mount.fuse.snapfs");
    assert_eq!(
        std::fs::read_link(&helper).expect("the helper is a link"),
        Path::new("/opt/snapfs/bin/snapfs"),
        "the link names the binary as installed, not as staged"
    );

    let unit =
        std::fs::read_to_string(prefix.join("lib/systemd/system/snapfs@.service")).expect("unit");
    assert!(
        unit.contains("\nExecStart=/opt/snapfs/bin/snapfs mount "),
        "{unit}"
    );
    assert!(!unit.contains("/usr/local"), "{unit}");

    let bash = prefix.join("share/bash-completion/completions/snapfs");
    parses("bash", &["-n"], &bash);
    let bash_text = std::fs::read_to_string(&bash).expect("bash completion");
    assert!(
        bash_text.contains("complete -F") && bash_text.contains("snapfs"),
        "{bash_text}"
    );
    let zsh = prefix.join("share/zsh/site-functions/_snapfs");
    assert!(
        std::fs::read_to_string(&zsh)
            .expect("zsh")
            .starts_with("#compdef snapfs")
    );
    if tool_exists("zsh") {
        parses("zsh", &["-n"], &zsh);
    }
    let fish = prefix.join("share/fish/vendor_completions.d/snapfs.fish");
    assert!(
        std::fs::read_to_string(&fish)
            .expect("fish")
            .contains("complete -c snapfs")
    );
    if tool_exists("fish") {
        parses("fish", &["--no-execute"], &fish);
    }

    let man = prefix.join("share/man/man1");
    for page in [
        "snapfs.1",
        "snapfs-mount.1",
        "snapfs-install.1",
        "snapfs-snapshot-create.1",
        "snapfs-vault-key-add.1",
    ] {
        let text = std::fs::read_to_string(man.join(page)).unwrap_or_else(|_| panic!("{page}"));
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page}: {text}"
        );
    }
    let pages = std::fs::read_dir(&man).expect("man1").count();
    assert!(pages > 40, "one page per subcommand: {pages}");
    if tool_exists("groff") {
        for page in std::fs::read_dir(&man).expect("man1") {
            let page = page.expect("entry").path();
            // -ww: every warning; -z: format, print nothing.
            parses("groff", &["-man", "-ww", "-z"], &page);
        }
    }
    assert_eq!(out.lines().count(), 6 + pages, "{out}");
}

#[test]
fn completions_and_man_print_to_standard_output() {
    for shell in ["bash", "zsh", "fish"] {
        let script = snapfs_ok(&["completions", shell]);
        assert!(
            script.contains("snapfs") && script.contains("mount"),
            "{shell}"
        );
    }
    let page = snapfs_ok(&["man"]);
    assert!(page.contains(".TH snapfs 1"), "{page}");
}
