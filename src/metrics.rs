//! What a mounted share counts for monitoring (`snapfs mount --metrics ADDR`): kernel requests
//! by kind with their latency, bytes read and written, commit and snapshot durations, and jobs
//! by outcome. Counted where the work happens, by handles made once at mount: a request costs
//! an atomic add and a histogram observation (one short lock per kind of request, never one
//! for the whole share). `service::metrics` renders these together with what it reads at
//! scrape time (snapshots, space, backups).
//!
//! Counters start at zero with each mount, as Prometheus expects of a process's counters.

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// A kind of kernel request, as the metrics label it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Lookup,
    Getattr,
    Setattr,
    Readlink,
    Mknod,
    Mkdir,
    Unlink,
    Rmdir,
    Symlink,
    Rename,
    Link,
    Open,
    Read,
    Write,
    Flush,
    Release,
    Fsync,
    Opendir,
    Readdir,
    Releasedir,
    Fsyncdir,
    Statfs,
    Setxattr,
    Getxattr,
    Listxattr,
    Removexattr,
    Access,
    Create,
    Fallocate,
}

impl Op {
    const ALL: [Op; 29] = [
        Op::Lookup,
        Op::Getattr,
        Op::Setattr,
        Op::Readlink,
        Op::Mknod,
        Op::Mkdir,
        Op::Unlink,
        Op::Rmdir,
        Op::Symlink,
        Op::Rename,
        Op::Link,
        Op::Open,
        Op::Read,
        Op::Write,
        Op::Flush,
        Op::Release,
        Op::Fsync,
        Op::Opendir,
        Op::Readdir,
        Op::Releasedir,
        Op::Fsyncdir,
        Op::Statfs,
        Op::Setxattr,
        Op::Getxattr,
        Op::Listxattr,
        Op::Removexattr,
        Op::Access,
        Op::Create,
        Op::Fallocate,
    ];

    /// The label value: the request's name as FUSE and `strace` users know it.
    pub fn name(self) -> &'static str {
        match self {
            Op::Lookup => "lookup",
            Op::Getattr => "getattr",
            Op::Setattr => "setattr",
            Op::Readlink => "readlink",
            Op::Mknod => "mknod",
            Op::Mkdir => "mkdir",
            Op::Unlink => "unlink",
            Op::Rmdir => "rmdir",
            Op::Symlink => "symlink",
            Op::Rename => "rename",
            Op::Link => "link",
            Op::Open => "open",
            Op::Read => "read",
            Op::Write => "write",
            Op::Flush => "flush",
            Op::Release => "release",
            Op::Fsync => "fsync",
            Op::Opendir => "opendir",
            Op::Readdir => "readdir",
            Op::Releasedir => "releasedir",
            Op::Fsyncdir => "fsyncdir",
            Op::Statfs => "statfs",
            Op::Setxattr => "setxattr",
            Op::Getxattr => "getxattr",
            Op::Listxattr => "listxattr",
            Op::Removexattr => "removexattr",
            Op::Access => "access",
            Op::Create => "create",
            Op::Fallocate => "fallocate",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabel {
    kind: String,
    outcome: &'static str,
}

/// Request latencies from 10 µs to about 10 s; commits and snapshots from 1 ms to about 16 min.
fn request_buckets() -> Histogram {
    Histogram::new(exponential_buckets(1e-5, 4.0, 11))
}

fn long_buckets() -> Histogram {
    Histogram::new(exponential_buckets(1e-3, 4.0, 11))
}

/// The share's counters. The families are what gets registered; `per_op` holds a handle into
/// them for each kind of request, so that counting needs no lookup by label.
pub struct ShareMetrics {
    requests: Family<OpLabel, Counter>,
    latency: Family<OpLabel, Histogram, fn() -> Histogram>,
    per_op: Vec<(Counter, Histogram)>,
    read_bytes: Counter,
    written_bytes: Counter,
    commit_seconds: Histogram,
    snapshot_seconds: Histogram,
    jobs: JobCounts,
}

/// Jobs ended, by kind and outcome: a handle the job log keeps (a clone shares the counts).
#[derive(Clone, Default)]
pub struct JobCounts(Family<JobLabel, Counter>);

impl JobCounts {
    /// A job of `kind` (`create`, `gc`, `backup`, ...) ended.
    pub fn done(&self, kind: &str, ok: bool) {
        self.0
            .get_or_create(&JobLabel {
                kind: kind.to_owned(),
                outcome: if ok { "ok" } else { "failed" },
            })
            .inc();
    }
}

impl Default for ShareMetrics {
    fn default() -> Self {
        let requests = Family::<OpLabel, Counter>::default();
        let latency = Family::<OpLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            request_buckets as fn() -> Histogram,
        );
        let per_op = Op::ALL
            .iter()
            .map(|op| {
                let label = OpLabel { op: op.name() };
                (
                    requests.get_or_create(&label).clone(),
                    latency.get_or_create(&label).clone(),
                )
            })
            .collect();
        ShareMetrics {
            requests,
            latency,
            per_op,
            read_bytes: Counter::default(),
            written_bytes: Counter::default(),
            commit_seconds: long_buckets(),
            snapshot_seconds: long_buckets(),
            jobs: JobCounts::default(),
        }
    }
}

/// Counts one request when dropped, with the time since it was made.
pub struct RequestTimer<'a> {
    counted: &'a (Counter, Histogram),
    started: Instant,
}

impl Drop for RequestTimer<'_> {
    fn drop(&mut self) {
        self.counted.0.inc();
        self.counted.1.observe(self.started.elapsed().as_secs_f64());
    }
}

impl ShareMetrics {
    /// Starts timing a request of kind `op`; it is counted when the timer is dropped (after
    /// the reply).
    pub fn request(&self, op: Op) -> RequestTimer<'_> {
        RequestTimer {
            // `per_op` is built from `Op::ALL`, which lists the kinds in declaration order.
            counted: &self.per_op[op as usize],
            started: Instant::now(),
        }
    }

    pub fn read(&self, bytes: usize) {
        self.read_bytes.inc_by(bytes as u64);
    }

    pub fn written(&self, bytes: usize) {
        self.written_bytes.inc_by(bytes as u64);
    }

    /// A commit that took `started.elapsed()`.
    pub fn commit_done(&self, started: Instant) {
        self.commit_seconds.observe(started.elapsed().as_secs_f64());
    }

    /// A snapshot that took `started.elapsed()`.
    pub fn snapshot_done(&self, started: Instant) {
        self.snapshot_seconds
            .observe(started.elapsed().as_secs_f64());
    }

    /// The job counts, for the job log.
    pub fn jobs(&self) -> JobCounts {
        self.jobs.clone()
    }

    /// Registers every counter of the share in `registry` (which then shares them).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "requests",
            "Kernel requests served, by kind",
            self.requests.clone(),
        );
        registry.register_with_unit(
            "request_duration",
            "Time from a kernel request to its reply, by kind",
            Unit::Seconds,
            self.latency.clone(),
        );
        registry.register_with_unit(
            "read",
            "File data read from the share (live and snapshots)",
            Unit::Bytes,
            self.read_bytes.clone(),
        );
        registry.register_with_unit(
            "written",
            "File data written to the share",
            Unit::Bytes,
            self.written_bytes.clone(),
        );
        registry.register_with_unit(
            "commit_duration",
            "Time a commit of the share's changes took (to durable)",
            Unit::Seconds,
            self.commit_seconds.clone(),
        );
        registry.register_with_unit(
            "snapshot_duration",
            "Time taking a snapshot took",
            Unit::Seconds,
            self.snapshot_seconds.clone(),
        );
        registry.register(
            "jobs",
            "Jobs ended, by kind and outcome",
            self.jobs.0.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    #[test]
    fn requests_are_counted_by_kind_with_their_latency() {
        let metrics = ShareMetrics::default();
        for _ in 0..3 {
            let _timer = metrics.request(Op::Write);
        }
        drop(metrics.request(Op::Lookup));
        metrics.written(4096);
        metrics.jobs().done("gc", false);
        let mut registry = Registry::with_prefix("snapfs");
        metrics.register(&mut registry);
        let mut text = String::new();
        encode(&mut text, &registry).expect("encode");
        assert!(
            text.contains("snapfs_requests_total{op=\"write\"} 3"),
            "{text}"
        );
        assert!(text.contains("snapfs_requests_total{op=\"lookup\"} 1"));
        assert!(text.contains("snapfs_request_duration_seconds_count{op=\"write\"} 3"));
        assert!(text.contains("snapfs_written_bytes_total 4096"));
        assert!(text.contains("snapfs_jobs_total{kind=\"gc\",outcome=\"failed\"} 1"));
    }
}
