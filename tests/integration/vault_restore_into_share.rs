//! `snapfs vault restore VAULT BACKUP --path PATH --mount M [--to DEST] [--overwrite]`, on a
//! local vault and on a real S3 server (SeaweedFS): a deleted subtree and a single file come
//! back into a running share exactly as `snapfs restore` brings them back from the snapshot
//! the backup was made of (bytes, modes, owners, times, xattrs, symlinks, hard links, holes);
//! `--to` puts them elsewhere; bad input (no such path, no such backup, an existing
//! destination, a wrong key) is refused with a clear error and changes nothing.

use std::fs;

use crate::harness::{control_wait, noise, snapfs_ok};
use crate::s3_server::S3Server;
use crate::vault::{ok_env, snapfs_env, tree_state};
use crate::vault_mount::two_backups;

/// Runs `snapfs`, expecting it to fail; returns its standard error.
fn err_env(args: &[&str], env: &[(&str, String)]) -> String {
    let out = snapfs_env(args, env);
    assert!(
        !out.status.success(),
        "snapfs {args:?} should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn restore_into_share(vault: &str, env: &[(&str, String)], wrong_key: Option<&[(&str, String)]>) {
    let m = two_backups(vault, env);
    let mnt = m.mnt.to_str().expect("utf-8").to_owned();
    fn restore<'a>(vault: &'a str, mnt: &'a str, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = vec!["vault", "restore", vault];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--mount", mnt]);
        all
    }

    // A deleted subtree comes back where it was, as the snapshot restore brings it back.
    fs::remove_dir_all(m.path("docs")).expect("rm -r docs");
    let out = ok_env(&restore(vault, &mnt, &["first", "--path", "docs"]), env);
    assert!(
        out.contains("restored docs from backup first to docs"),
        "{out}"
    );
    snapfs_ok(&[
        "restore",
        "first",
        "docs",
        "--to",
        "docs-snap",
        "--mount",
        &mnt,
    ]);
    let from_vault = tree_state(&m.path("docs"));
    assert_eq!(from_vault.len(), 4, "{from_vault:?}");
    assert_eq!(from_vault, tree_state(&m.path("docs-snap")));
    assert_eq!(
        fs::read(m.path("docs/deep/er/big.bin")).expect("read"),
        noise(3 << 20, 7)
    );
    assert_eq!(
        fs::read(m.path("docs/report.txt")).expect("read"),
        b"quarterly numbers\n"
    );

    // A single file, elsewhere (--to): the sparse one keeps its holes.
    for dir in ["from-vault", "from-snapshot"] {
        fs::create_dir(m.path(dir)).expect("mkdir");
    }
    ok_env(
        &restore(
            vault,
            &mnt,
            &[
                "first",
                "--path",
                "sparse.img",
                "--to",
                "from-vault/sparse.img",
            ],
        ),
        env,
    );
    snapfs_ok(&[
        "restore",
        "first",
        "sparse.img",
        "--to",
        "from-snapshot/sparse.img",
        "--mount",
        &mnt,
    ]);
    let single = tree_state(&m.path("from-vault"));
    assert_eq!(single, tree_state(&m.path("from-snapshot")));
    // A file of the second backup only, to a new name.
    ok_env(
        &restore(
            vault,
            &mnt,
            &["second", "--path", "only-second.bin", "--to", "again.bin"],
        ),
        env,
    );
    assert_eq!(
        fs::read(m.path("again.bin")).expect("read"),
        noise(1 << 20, 42)
    );

    // Bad input changes nothing.
    let before = tree_state(&m.mnt);
    let err = err_env(&restore(vault, &mnt, &["first", "--path", "docs"]), env);
    assert!(err.contains("\"docs\" exists in the share"), "{err}");
    let err = err_env(
        &restore(vault, &mnt, &["first", "--path", "docs/nothing-here"]),
        env,
    );
    assert!(err.contains("is not in snapshot \"first\""), "{err}");
    let err = err_env(&restore(vault, &mnt, &["third", "--path", "docs"]), env);
    assert!(err.contains("no backup named third"), "{err}");
    let err = err_env(
        &restore(
            vault,
            &mnt,
            &["first", "--path", "docs", "--to", "no/parent"],
        ),
        env,
    );
    assert!(err.contains("does not exist in the share"), "{err}");
    let err = err_env(
        &restore(
            vault,
            &mnt,
            &["first", "--path", "docs", "--to", ".snapshots/x"],
        ),
        env,
    );
    assert!(err.contains("keeps .snapshots"), "{err}");
    if let Some(wrong) = wrong_key {
        let err = err_env(
            &restore(vault, &mnt, &["first", "--path", "docs", "--to", "d2"]),
            wrong,
        );
        assert!(err.contains("wrong passphrase"), "{err}");
    }
    assert_eq!(
        before,
        tree_state(&m.mnt),
        "a refused restore changes nothing"
    );

    // --overwrite replaces what is there, as `snapfs restore --overwrite` does.
    fs::write(m.path("docs/report.txt"), b"scribbled over\n").expect("write");
    ok_env(
        &restore(
            vault,
            &mnt,
            &["first", "--path", "docs/report.txt", "--overwrite"],
        ),
        env,
    );
    assert_eq!(
        fs::read(m.path("docs/report.txt")).expect("read"),
        b"quarterly numbers\n"
    );

    // The share is still whole: every chunk its files use is there and checks.
    let report = control_wait(&m, "verify").expect("verify");
    assert_eq!(report["damaged"], serde_json::json!([]), "{report}");
}

#[test]
fn vault_restore_puts_a_subtree_and_a_file_back_into_a_running_share_from_a_local_vault() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vault = dir.path().join("vault");
    let vault = vault.to_str().expect("utf-8");
    snapfs_ok(&["vault", "init", vault]);
    restore_into_share(vault, &[], None);
}

#[test]
fn vault_restore_puts_a_subtree_and_a_file_back_into_a_running_share_from_s3() {
    let server = S3Server::start();
    let mut env = server.env();
    env.push(("SNAPFS_PASSPHRASE", "restore me".into()));
    let vault = server.url("restored");
    ok_env(&["vault", "init", &vault], &env);
    let mut wrong = server.env();
    wrong.push(("SNAPFS_PASSPHRASE", "not it".into()));
    restore_into_share(&vault, &env, Some(&wrong));
}
