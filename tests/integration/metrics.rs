//! `snapfs mount --metrics ADDR`: the endpoint is scraped over real HTTP while the share is used,
//! and what it serves is parsed by Prometheus's own parser (the `prometheus_client` Python
//! package's OpenMetrics parser), so a malformed exposition fails the test. The figures must
//! follow what was done: requests and bytes counted, a commit and a snapshot timed, the
//! snapshot's unique bytes, the jobs. An address already in use fails the mount, leaving
//! nothing mounted.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;

use crate::harness::{Mounted, snapfs};

/// A port nobody listens on just now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// `GET path` over HTTP/1.0: the status line and the body.
pub(crate) fn get(port: u16, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("headers end");
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

/// Parses `text` with Prometheus's OpenMetrics parser and prints `name{labels} value` per
/// sample, sorted, for the test to look up (the parser fails on anything malformed).
pub(crate) fn parse(text: &str) -> Vec<String> {
    let script = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        print(f"{s.name}{{{labels}}} {s.value}")
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed the parser");
    let out = child.wait_with_output().expect("parser");
    assert!(
        out.status.success(),
        "the exposition does not parse: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The value of the sample `name{labels}` (labels sorted, as `parse` prints them).
pub(crate) fn value(samples: &[String], sample: &str) -> f64 {
    samples
        .iter()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {sample} in:\n{}", samples.join("\n")))
}

#[test]
fn metrics_are_served_in_a_format_prometheus_parses_and_follow_the_share() {
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let m = Mounted::new_with(&[], &["--metrics", &address]);
    let mnt = m.mnt.to_str().expect("utf-8").to_owned();

    let (status, body) = get(port, "/metrics");
    assert!(status.contains("200"), "{status}: {body}");
    let before = parse(&body);
    assert_eq!(value(&before, "snapfs_snapshots{kind=\"active\"}"), 0.0);

    let data = vec![7u8; 3 << 20];
    std::fs::write(m.path("file"), &data).expect("write");
    std::fs::File::open(m.path("file"))
        .expect("open")
        .sync_all()
        .expect("fsync");
    assert_eq!(
        std::fs::read(m.path("file")).expect("read").len(),
        data.len()
    );
    let out = snapfs(&["snapshot", "create", "first", "--mount", &mnt]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (status, body) = get(port, "/metrics");
    assert!(status.contains("200"), "{status}: {body}");
    let after = parse(&body);
    assert!(value(&after, "snapfs_requests_total{op=\"write\"}") >= 1.0);
    assert!(value(&after, "snapfs_requests_total{op=\"lookup\"}") >= 1.0);
    assert!(
        value(
            &after,
            "snapfs_request_duration_seconds_count{op=\"write\"}"
        ) >= 1.0
    );
    assert!(value(&after, "snapfs_written_bytes_total{}") >= data.len() as f64);
    assert!(value(&after, "snapfs_commit_duration_seconds_count{}") >= 1.0);
    assert_eq!(
        value(&after, "snapfs_snapshot_duration_seconds_count{}"),
        1.0
    );
    assert_eq!(value(&after, "snapfs_snapshots{kind=\"active\"}"), 1.0);
    assert_eq!(
        value(&after, "snapfs_jobs_total{kind=\"create\",outcome=\"ok\"}"),
        1.0
    );
    // The file's 3 MiB of one byte compress to almost nothing, but are stored somewhere.
    assert!(value(&after, "snapfs_space_bytes{kind=\"stored\"}") > 0.0);
    assert!(value(&after, "snapfs_snapshot_unique_bytes{snapshot=\"first\"}") >= 0.0);
    assert_eq!(value(&after, "snapfs_dirty_bytes{}"), 0.0);

    let (status, _) = get(port, "/nothing-here");
    assert!(status.contains("404"), "{status}");

    // A second mount asking for the same address is refused, and mounts nothing.
    let other = tempfile::tempdir().expect("tempdir");
    let store = other.path().join("store");
    let mountpoint = other.path().join("mnt");
    std::fs::create_dir(&mountpoint).expect("mountpoint");
    assert!(
        snapfs(&["init", store.to_str().expect("utf-8")])
            .status
            .success()
    );
    let out = snapfs(&[
        "mount",
        store.to_str().expect("utf-8"),
        mountpoint.to_str().expect("utf-8"),
        "--metrics",
        &address,
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {address}")),
        "{stderr}"
    );
    assert!(!crate::harness::is_mounted(&mountpoint));
}

/// Taking privileges away is the share's (FUSE_HANDLE_KILLPRIV_V2), so the kernel does not ask
/// for a file's capabilities before each write, nor for its attributes before each chown: 50 of
/// each cost a few requests, not 50 (`tar -x` pays both for every file it creates).
#[test]
fn writes_and_chowns_send_no_privilege_lookups() {
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let m = Mounted::new_with(&[], &["--metrics", &address]);
    let path = m.path("file");
    let mut file = std::fs::File::create(&path).expect("create");
    let count = |op: &str| {
        let (_, body) = get(port, "/metrics");
        value(
            &parse(&body),
            &format!("snapfs_requests_total{{op=\"{op}\"}}"),
        )
    };
    let (getxattr, getattr) = (count("getxattr"), count("getattr"));
    for _ in 0..50 {
        file.write_all(b"x").expect("write");
    }
    for i in 0..50 {
        std::os::unix::fs::fchown(&file, Some(i % 2), None).expect("fchown");
    }
    drop(file);
    let getxattr = count("getxattr") - getxattr;
    let getattr = count("getattr") - getattr;
    // Each chown still asks once for capabilities (the VFS's own check), the writes at most once.
    assert!(getxattr <= 55.0, "{getxattr} GETXATTR requests");
    assert!(getattr <= 5.0, "{getattr} GETATTR requests");
}
