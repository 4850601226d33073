//! The Prometheus endpoint of a mounted share (`snapfs mount --metrics ADDR`): `GET /metrics`
//! answers in the OpenMetrics text format, which Prometheus scrapes natively.
//!
//! Each scrape renders the share's counters (`crate::metrics`: requests, latencies, bytes,
//! commits, snapshots, jobs) and reads what is a state rather than a count: snapshots by state,
//! the bytes each snapshot alone holds, space by kind, data not yet stored, the snapshot view's
//! memory, and each scheduled vault's last backup and its age. All of it is what `status` and
//! `snapshot list` read, kept up to date incrementally, so a scrape costs O(snapshots + vaults)
//! and never walks the share. The endpoint serves one request at a time on its own thread; a
//! scrape that fails (the store can no longer commit) answers 500 with the reason.

use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::{Service, ServiceError};

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SnapshotLabel {
    snapshot: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VaultLabel {
    vault: String,
}

/// A gauge set to `value` (bytes and counts fit an i64 for any share there is).
fn gauge(value: u64) -> Gauge {
    let gauge = Gauge::default();
    gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
    gauge
}

/// Sets the gauge of `label` in `family`.
fn set<L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug>(
    family: &Family<L, Gauge>,
    label: L,
    value: u64,
) {
    family
        .get_or_create(&label)
        .set(i64::try_from(value).unwrap_or(i64::MAX));
}

impl Service {
    /// Everything the endpoint serves, in the OpenMetrics text format.
    pub fn metrics_text(&self) -> Result<String, ServiceError> {
        let live = self.snapshots.live();
        let mut registry = Registry::with_prefix("snapfs");
        live.metrics().register(&mut registry);

        let snapshots = Family::<KindLabel, Gauge>::default();
        set(
            &snapshots,
            KindLabel { kind: "active" },
            self.snapshots.list().len() as u64,
        );
        set(
            &snapshots,
            KindLabel { kind: "deleted" },
            self.snapshots.list_deleted().len() as u64,
        );
        registry.register("snapshots", "Snapshots, active and soft-deleted", snapshots);

        let usage = self.usage(false)?;
        let unique = Family::<SnapshotLabel, Gauge>::default();
        for (name, bytes) in &usage.unique_bytes {
            let label = SnapshotLabel {
                snapshot: name.clone(),
            };
            set(&unique, label, *bytes);
        }
        registry.register_with_unit(
            "snapshot_unique",
            "Stored bytes only this snapshot holds: what deleting it would free",
            Unit::Bytes,
            unique,
        );
        let space = Family::<KindLabel, Gauge>::default();
        for (kind, bytes) in [
            ("stored", usage.stored_bytes),
            ("live", usage.live_bytes),
            ("snapshots", usage.snapshot_bytes),
            ("deleted_snapshots", usage.deleted_snapshot_bytes),
            ("reclaimable", usage.reclaimable_bytes),
        ] {
            set(&space, KindLabel { kind }, bytes);
        }
        registry.register_with_unit(
            "space",
            "Stored (compressed) bytes: every chunk, those the live share uses, those only \
             snapshots use, those only soft-deleted snapshots hold, those nothing uses",
            Unit::Bytes,
            space,
        );
        registry.register_with_unit(
            "dirty",
            "File data written but not yet stored in the chunk store",
            Unit::Bytes,
            gauge(live.dirty_bytes()),
        );
        let view = self.view.usage();
        registry.register_with_unit(
            "snapshot_view_cache",
            "Decoded snapshot objects the snapshot view keeps in memory",
            Unit::Bytes,
            gauge(view.cached_object_bytes),
        );
        registry.register(
            "snapshot_view_inodes",
            "Inodes inside snapshots the snapshot view remembers",
            gauge(view.inodes as u64),
        );

        let now = self.now();
        let last_success = Family::<VaultLabel, Gauge>::default();
        let age = Family::<VaultLabel, Gauge>::default();
        let last_failure = Family::<VaultLabel, Gauge>::default();
        for vault in self.vault_statuses() {
            let label = VaultLabel {
                vault: vault.vault.clone(),
            };
            if let Some(success) = &vault.last_success {
                set(&last_success, label.clone(), success.secs.max(0) as u64);
                set(
                    &age,
                    label.clone(),
                    now.saturating_sub(success.secs).max(0) as u64,
                );
            }
            if let Some(failure) = &vault.last_failure {
                set(&last_failure, label, failure.secs.max(0) as u64);
            }
        }
        registry.register(
            "backup_last_success_timestamp_seconds",
            "When the last successful backup into each scheduled vault ended (unix seconds)",
            last_success,
        );
        registry.register_with_unit(
            "backup_last_success_age",
            "Seconds since the last successful backup into each scheduled vault",
            Unit::Seconds,
            age,
        );
        registry.register(
            "backup_last_failure_timestamp_seconds",
            "When the last backup into each scheduled vault failed, if it failed since its last \
             success (unix seconds)",
            last_failure,
        );

        if let Some(tier) = live.tier() {
            register_tier(&mut registry, &tier.status(), now);
        }

        let mut text = String::new();
        encode(&mut text, &registry).map_err(|err| ServiceError::io(std::io::Error::other(err)))?;
        Ok(text)
    }
}

/// A tiered store's cache and upload lag: how much would be lost with the local disk.
fn register_tier(registry: &mut Registry, status: &crate::tier::TierStatus, now: i64) {
    let bytes = [
        (
            "tier_cache_used",
            "Local disk the packs take",
            status.cache_used,
        ),
        (
            "tier_cache_size",
            "Local disk the packs may take once uploaded",
            status.cache_size,
        ),
        (
            "tier_pending_upload",
            "Data not yet in the object store",
            status.pending_upload_bytes,
        ),
        (
            "tier_fetched",
            "Data read from the object store into the cache since the mount",
            status.fetched_bytes,
        ),
    ];
    for (name, help, value) in bytes {
        registry.register_with_unit(name, help, Unit::Bytes, gauge(value));
    }
    let lag = status
        .oldest_pending_change
        .map_or(0, |since| now.saturating_sub(since).max(0) as u64);
    registry.register_with_unit(
        "tier_upload_lag",
        "Age of the oldest change not yet in a checkpoint in the object store (0: none)",
        Unit::Seconds,
        gauge(lag),
    );
    if let Some(last) = &status.last_checkpoint {
        registry.register(
            "tier_last_checkpoint_timestamp_seconds",
            "When the newest checkpoint was published (unix seconds)",
            gauge(last.time.max(0) as u64),
        );
    }
    registry.register(
        "tier_object_store_up",
        "1 while the object store answers, 0 after a failure until it does again",
        gauge(u64::from(status.last_error.is_none())),
    );
    registry.register(
        "tier_writer_lease_held",
        "1 while this store holds the share's writer lease, 0 before it took it or once \
         another host took the share over",
        gauge(u64::from(status.lease.is_some() && status.fenced.is_none())),
    );
}

/// The HTTP listener of `--metrics`; [`MetricsEndpoint::stop`] ends it.
pub struct MetricsEndpoint {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsEndpoint {
    /// Listens on `addr` (`127.0.0.1:9477`) and serves the metrics of `service` while it is
    /// open. The service is held weakly: the endpoint never keeps the share open.
    pub fn start(addr: &str, service: Weak<Service>) -> std::io::Result<Self> {
        let server = Arc::new(
            tiny_http::Server::http(addr)
                .map_err(|err| std::io::Error::other(format!("cannot listen on {addr}: {err}")))?,
        );
        tracing::info!("metrics at http://{addr}/metrics");
        let serving = server.clone();
        let thread = std::thread::Builder::new()
            .name("snapfs-metrics".into())
            .spawn(move || {
                for request in serving.incoming_requests() {
                    let response = match (request.method(), request.url()) {
                        (tiny_http::Method::Get, "/metrics") => match service.upgrade() {
                            Some(service) => match service.metrics_text() {
                                Ok(text) => tiny_http::Response::from_string(text).with_header(
                                    tiny_http::Header::from_bytes("Content-Type", CONTENT_TYPE)
                                        .expect("a valid header"),
                                ),
                                Err(err) => tiny_http::Response::from_string(format!("{err}\n"))
                                    .with_status_code(500),
                            },
                            None => tiny_http::Response::from_string("unmounting\n")
                                .with_status_code(503),
                        },
                        _ => tiny_http::Response::from_string("try GET /metrics\n")
                            .with_status_code(404),
                    };
                    let _ = request.respond(response);
                }
            })?;
        Ok(MetricsEndpoint {
            server,
            thread: Some(thread),
        })
    }

    /// The address it listens on (the port chosen, when asked for port 0).
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.server.server_addr().to_ip()
    }

    /// Stops listening and waits for the request being served, if any.
    pub fn stop(mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
