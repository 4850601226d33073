//! A real S3 server for the tests: SeaweedFS (`weed mini`, installed by `scripts/setup.sh`),
//! started on 127.0.0.1 with ports of its own for each test, with one identity and one bucket.
//! [`S3Server`] stops it when dropped, so a failing test stops it too.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// The access key and secret of the server's only identity.
pub const ACCESS_KEY: &str = "snapfstest";
pub const SECRET_KEY: &str = "snapfstestsecret";
/// The bucket created at start.
pub const BUCKET: &str = "vault";

/// Ports a server takes: s3, master, volume, filer, iceberg, lance, admin; each also takes the
/// port 10,000 above it for gRPC.
const PORTS_PER_SERVER: u16 = 7;
/// Bases are handed out from here, in steps that leave room for every port a server takes.
static NEXT_BASE: AtomicU16 = AtomicU16::new(0);

/// A running `weed mini`, stopped (killed and reaped) on drop.
pub struct S3Server {
    child: Option<Child>,
    pub s3_port: u16,
    _dir: tempfile::TempDir,
}

fn free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
        && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()
}

/// A base port whose ports (and their gRPC twins) are all free just now.
fn pick_base() -> u16 {
    // Spread over 20000..29990 by process, so two test binaries running at once rarely meet.
    let start = 20_000 + (std::process::id() % 500) as u16 * 20;
    loop {
        let n = NEXT_BASE.fetch_add(1, Ordering::Relaxed);
        let base = 20_000 + (start - 20_000 + n * 10) % 9_900;
        if (base..base + PORTS_PER_SERVER).all(free) {
            return base;
        }
    }
}

impl S3Server {
    /// Starts a server and waits until its S3 port answers.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("s3.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"identities":[{{"name":"snapfs","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .expect("write s3 config");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("mkdir");
        for _attempt in 0..3 {
            let base = pick_base();
            let child = Self::spawn(&data, &config, base, dir.path());
            let mut server = S3Server {
                child: Some(child),
                s3_port: base,
                _dir: tempfile::tempdir().expect("tempdir"),
            };
            if server.wait_ready() {
                server._dir = dir;
                return server;
            }
            // Someone took a port meanwhile: drop (stops it) and try other ports.
        }
        panic!("weed mini did not start; is it installed (scripts/setup.sh)?");
    }

    fn spawn(data: &Path, config: &Path, base: u16, dir: &Path) -> Child {
        let log = std::fs::File::create(dir.join("weed.log")).expect("log");
        let port = |offset: u16| (base + offset).to_string();
        Command::new("weed")
            .arg("mini")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-admin.ui=false"])
            .args(["-webdav=false", "-master.telemetry=false"])
            .arg(format!("-s3.port={}", port(0)))
            .arg(format!("-master.port={}", port(1)))
            .arg(format!("-volume.port={}", port(2)))
            .arg(format!("-filer.port={}", port(3)))
            .arg(format!("-s3.port.iceberg={}", port(4)))
            .arg(format!("-s3.port.lance={}", port(5)))
            .arg(format!("-admin.port={}", port(6)))
            .arg(format!("-s3.config={}", config.display()))
            .arg(format!("-bucket={BUCKET}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("run weed (install it with scripts/setup.sh)")
    }

    /// Waits until the bucket answers an authenticated request (the bucket is made at start).
    fn wait_ready(&mut self) -> bool {
        let probe = self.probe_script();
        self.wait_for_probe(&probe)
    }

    /// Runs the Python `probe` until it succeeds (true), the server exits or 30 s pass.
    fn wait_for_probe(&mut self, probe: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && child.try_wait().ok().flatten().is_some()
            {
                return false;
            }
            let listed = Command::new("python3")
                .args(["-c", probe])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
            if listed {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// Lists the bucket and reads the first byte of every object in it that has one.
    fn read_probe_script(&self) -> String {
        format!(
            "import boto3\n\
             s3 = boto3.client('s3', endpoint_url='{}', aws_access_key_id='{ACCESS_KEY}', \
             aws_secret_access_key='{SECRET_KEY}', region_name='us-east-1')\n\
             for page in s3.get_paginator('list_objects_v2').paginate(Bucket='{BUCKET}'):\n\
             \x20   for o in page.get('Contents', []):\n\
             \x20       if o['Size'] > 0:\n\
             \x20           s3.get_object(Bucket='{BUCKET}', Key=o['Key'], Range='bytes=0-0')['Body'].read()\n",
            self.endpoint()
        )
    }

    fn probe_script(&self) -> String {
        format!(
            "import boto3; boto3.client('s3', endpoint_url='{}', aws_access_key_id='{ACCESS_KEY}', \
             aws_secret_access_key='{SECRET_KEY}', region_name='us-east-1')\
             .list_objects_v2(Bucket='{BUCKET}')",
            self.endpoint()
        )
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// The environment an S3 client needs to reach this server, as every S3 tool reads it.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
        ]
    }

    /// A vault URL in this server's bucket.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }

    /// Starts the stopped server again, on the same ports and with the same data, as after an
    /// outage.
    pub fn restart(&mut self) {
        self.stop();
        let dir = self._dir.path();
        let child = Self::spawn(&dir.join("data"), &dir.join("s3.json"), self.s3_port, dir);
        self.child = Some(child);
        assert!(self.wait_ready(), "weed mini did not come back");
        // Listing works as soon as the filer is up; reading data needs the volume servers to
        // have registered again, which can take a moment more (500s meanwhile).
        assert!(
            self.wait_for_probe(&self.read_probe_script()),
            "weed mini did not serve its objects again"
        );
    }

    /// Stops the server now (for tests of a server going away); idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `rclone serve s3` over a directory (rclone from PyPI, installed by `scripts/setup.sh`): a
/// real S3 server that, unlike SeaweedFS, accepts `If-None-Match` on PUT and ignores it, as
/// some S3-compatible servers do. Stopped (killed and reaped) on drop.
pub struct IgnoringS3Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl IgnoringS3Server {
    /// Starts a server with one bucket, [`BUCKET`], and waits until it answers.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("data").join(BUCKET)).expect("bucket");
        let port = (30_000..40_000)
            .map(|offset| offset + (std::process::id() % 500) as u16 * 17 % 9_000)
            .find(|&port| TcpListener::bind(("127.0.0.1", port)).is_ok())
            .expect("a free port");
        let child = Command::new("rclone")
            .args(["serve", "s3", "--addr"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--auth-key")
            .arg(format!("{ACCESS_KEY},{SECRET_KEY}"))
            .arg(dir.path().join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rclone (scripts/setup.sh installs it)");
        let server = IgnoringS3Server {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "rclone serve s3 did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// The environment an S3 client needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
        ]
    }

    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }
}

impl Drop for IgnoringS3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
