//! Conformance suites run against a real mount: pjdfstest (POSIX semantics of names, modes,
//! owners and times) and fsx (random I/O with every read checked against a model of the file).
//! Their configurations are committed under tests/pjdfstest and tests/fsx.
//!
//! Both tools are installed by `scripts/setup.sh` (`cargo install --locked pjdfstest fsx`). A
//! missing tool fails these tests rather than skipping them: a suite that silently does not run
//! proves nothing.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::Mounted;

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// The fsx run: enough operations to reach the rare interleavings of seal, truncate, punch and
/// reopen, with a fixed seed so that a failure replays exactly. `scripts/fsx-long.sh` sets
/// `SNAPFS_FSX_OPS` and `SNAPFS_FSX_SEED` for longer runs with other seeds.
const FSX_OPERATIONS: u64 = 100_000;
const FSX_SEED: u64 = 42;

/// `name` from the environment as a number, else `default`.
fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {value:?}")),
        Err(_) => default,
    }
}

/// Finds `name` in PATH or in ~/.cargo/bin (where `cargo install` puts it even when that is
/// not in PATH, as under sudo).
fn tool(name: &str) -> PathBuf {
    let path_dirs = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    path_dirs
        .into_iter()
        .chain(cargo_home.map(|home| home.join("bin")))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed (looked in PATH and ~/.cargo/bin): run scripts/setup.sh"
            )
        })
}

/// Runs `command` to completion, killing it after `limit` so that a hung file system fails the
/// test instead of hanging it (the mount is then torn down by `Mounted`'s drop).
fn run_with_limit(command: &mut Command, limit: Duration) -> Output {
    let out_dir = tempfile::tempdir().expect("tempdir for output");
    let stdout_path = out_dir.path().join("stdout");
    let stderr_path = out_dir.path().join("stderr");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("spawning the tool");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the tool") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{command:?} did not finish in {limit:?}; its output:\n{}",
                fs::read_to_string(&stdout_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: fs::read(&stdout_path).unwrap_or_default(),
        stderr: fs::read(&stderr_path).unwrap_or_default(),
    }
}

/// The last `n` lines of `text`: enough to show a failure without flooding the test output.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// pjdfstest switches to the users of its config's `dummy_auth`: Debian's nobody:nogroup, and
/// tests:tests, which is created here if missing.
fn ensure_user_tests() {
    use nix::unistd::{Group, User};
    if User::from_name("tests").expect("user database").is_some() {
        return;
    }
    let mut useradd = Command::new("useradd");
    useradd.args(["--no-create-home", "--shell", "/usr/sbin/nologin"]);
    if Group::from_name("tests").expect("group database").is_some() {
        useradd.args(["--gid", "tests"]);
    } else {
        useradd.arg("--user-group");
    }
    let out = useradd.arg("tests").output().expect("running useradd");
    // Another process may have created it meanwhile: what matters is that it exists now.
    assert!(
        User::from_name("tests").expect("user database").is_some(),
        "cannot create the user `tests` for pjdfstest: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The excluded test names, from tests/pjdfstest/excluded.txt (`NAME REASON` lines).
fn pjdfstest_exclusions() -> BTreeSet<String> {
    let path = Path::new(MANIFEST_DIR).join("tests/pjdfstest/excluded.txt");
    let text = fs::read_to_string(&path).expect("reading tests/pjdfstest/excluded.txt");
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (name, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            assert!(
                !reason.trim().is_empty(),
                "excluded.txt: `{name}` needs a reason"
            );
            name.to_string()
        })
        .collect()
}

/// One result line of pjdfstest: `NAME   ok`, `NAME   FAILED` or `NAME   skipped`, followed
/// (for a failure) by tab-indented lines saying why.
struct CaseResult {
    name: String,
    status: String,
    detail: Vec<String>,
}

fn parse_pjdfstest(stdout: &str) -> Vec<CaseResult> {
    let mut results: Vec<CaseResult> = Vec::new();
    for line in stdout.lines() {
        if line.starts_with(char::is_whitespace) {
            if let Some(last) = results.last_mut() {
                last.detail.push(line.trim().to_string());
            }
            continue;
        }
        let mut words = line.split_whitespace();
        if let (Some(name), Some(status)) = (words.next(), words.next_back())
            && name.contains("::")
        {
            results.push(CaseResult {
                name: name.to_string(),
                status: status.to_string(),
                detail: Vec::new(),
            });
        }
    }
    results
}

#[test]
fn pjdfstest_passes() {
    let pjdfstest = tool("pjdfstest");
    assert!(
        nix::unistd::geteuid().is_root(),
        "pjdfstest must run as root (it switches users and makes device nodes)"
    );
    ensure_user_tests();
    let excluded = pjdfstest_exclusions();
    let m = Mounted::new_with(&[], &["--allow-other"]);
    // The users pjdfstest switches to must be able to reach the mountpoint.
    fs::set_permissions(m.dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    // The cross-device (EXDEV) tests need a directory on another file system.
    let secondary = tempfile::Builder::new()
        .prefix("snapfs-pjdfstest-")
        .tempdir_in(Path::new("/dev/shm"))
        .or_else(|_| tempfile::tempdir())
        .expect("secondary directory");
    let config = Path::new(MANIFEST_DIR).join("tests/pjdfstest/pjdfstest.toml");
    let started = Instant::now();
    let out = run_with_limit(
        Command::new(&pjdfstest)
            .current_dir(&m.mnt)
            .arg("-c")
            .arg(&config)
            .arg("-p")
            .arg(&m.mnt)
            .arg("-s")
            .arg(secondary.path())
            .env("NO_COLOR", "1")
            .env_remove("CLICOLOR_FORCE")
            .env("RUST_BACKTRACE", "0")
            .env("RUST_LIB_BACKTRACE", "0"),
        Duration::from_secs(600),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results = parse_pjdfstest(&stdout);
    let summary = stdout
        .lines()
        .find(|line| line.starts_with("Summary:"))
        .unwrap_or_else(|| {
            panic!(
                "pjdfstest did not finish ({}):\n{}\n{}\ndaemon log:\n{}",
                out.status,
                tail(&stdout, 40),
                String::from_utf8_lossy(&out.stderr),
                tail(&m.log(), 40)
            )
        });
    eprintln!("pjdfstest in {:.1?}: {summary}", started.elapsed());

    let failures: Vec<&CaseResult> = results
        .iter()
        .filter(|case| case.status == "FAILED" && !excluded.contains(&case.name))
        .collect();
    let report: Vec<String> = failures
        .iter()
        .map(|case| format!("{}\n\t{}", case.name, case.detail.join("\n\t")))
        .collect();
    assert!(
        failures.is_empty(),
        "{} pjdfstest failures (not in tests/pjdfstest/excluded.txt):\n{}\n{summary}\ndaemon log:\n{}",
        failures.len(),
        report.join("\n"),
        tail(&m.log(), 40)
    );
    let ran: BTreeSet<&str> = results.iter().map(|case| case.name.as_str()).collect();
    let stale: Vec<&String> = excluded
        .iter()
        .filter(|name| !ran.contains(name.as_str()))
        .collect();
    assert!(
        stale.is_empty(),
        "tests/pjdfstest/excluded.txt names tests the suite does not have: {stale:?}"
    );
    assert!(
        results.iter().any(|case| case.status == "ok"),
        "pjdfstest passed nothing:\n{}",
        tail(&stdout, 40)
    );
}

#[test]
fn fsx_100k_operations_without_miscompare() {
    let fsx = tool("fsx");
    // 8 KiB blocks: fsx's 1 MiB file then spans 128 blocks (see tests/fsx/fsx.toml).
    let m = Mounted::new_with(&["--block-size", "8192"], &[]);
    let operations = env_number("SNAPFS_FSX_OPS", FSX_OPERATIONS);
    let seed = env_number("SNAPFS_FSX_SEED", FSX_SEED);
    // Kept after the test: on a miscompare fsx saves the expected file and its operation log.
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fsx-{seed}"));
    let _ = fs::remove_dir_all(&artifacts);
    fs::create_dir_all(&artifacts).expect("artifact directory");
    let config = Path::new(MANIFEST_DIR).join("tests/fsx/fsx.toml");
    let started = Instant::now();
    let out = run_with_limit(
        Command::new(&fsx)
            .current_dir(&m.mnt)
            .arg("-N")
            .arg(operations.to_string())
            .arg("-S")
            .arg(seed.to_string())
            .arg("-P")
            .arg(&artifacts)
            .arg("-f")
            .arg(&config)
            .arg(m.path("fsx.data"))
            .env("RUST_BACKTRACE", "0"),
        // 100,000 operations take about a minute on ext4, a few through FUSE on a busy machine.
        Duration::from_secs(1200 * operations.div_ceil(FSX_OPERATIONS)),
    );
    eprintln!("fsx: {operations} operations in {:.1?}", started.elapsed());
    assert!(
        out.status.success(),
        "fsx failed ({}), seed {seed}; artifacts in {}:\n{}\n{}\ndaemon log:\n{}",
        out.status,
        artifacts.display(),
        tail(&String::from_utf8_lossy(&out.stdout), 20),
        tail(&String::from_utf8_lossy(&out.stderr), 60),
        tail(&m.log(), 40)
    );
}
