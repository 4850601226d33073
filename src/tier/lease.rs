//! The share's single-writer lease, kept in the object store itself.
//!
//! Leases are numbered (generations). Taking one is creating `leases/G.json` with a create-only
//! put, where `G` is one more than the newest generation listed: of two hosts racing for the
//! same generation, the server lets exactly one create it. The holder rewrites `leases/G.alive`
//! every quarter of its timeout; a lease whose `.alive` (or, before the first renewal, whose
//! record) is older than the holder's stated timeout is free, and so is one released by a clean
//! unmount. Ages are measured by the server's clock alone (the reader rewrites `leases/clock`
//! and compares modification times in one listing), so hosts whose clocks disagree still agree.
//!
//! Fencing does not depend on the old holder noticing anything: checkpoints are named by the
//! lease generation of their writer and readers take the newest by (lease, sequence), so once
//! a newer lease exists, nothing the old holder publishes is ever chosen. The old holder finds
//! out at its next renewal or checkpoint, stops publishing, and refuses to mount again.
//!
//! All of this relies on create-only puts being enforced, which some S3-compatible servers
//! accept and ignore: [`check_server`] asks the server, and a share on such a server is written
//! only when the admin has said it has a single host (`--single-host`).

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::TierError;
use super::layout::{self, LeaseObject};
use crate::blob::{BlobBackend, BlobError, BlobMeta, probe};

/// How long a lease lasts without renewal, unless the share's settings say otherwise.
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;

/// Who took a lease (the content of `leases/G.json`), for the messages of whoever finds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    /// The store's writer epoch, in hex: tells two stores on one host apart.
    pub store: String,
    /// When it was taken, by the holder's clock (unix seconds).
    pub taken: i64,
    /// Without a renewal for this long, the lease is free.
    pub timeout_secs: u64,
}

impl Holder {
    /// This process, for the store whose writer epoch is `epoch`.
    pub fn this_process(epoch: u64, timeout_secs: u64) -> Self {
        Holder {
            host: hostname(),
            pid: std::process::id(),
            store: format!("{epoch:016x}"),
            taken: super::unix_now(),
            timeout_secs,
        }
    }
}

/// This host's name, as leases (the writer's and followers') name who holds them.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "unknown host".into())
}

/// The content of `leases/G.alive`.
#[derive(Serialize, Deserialize)]
struct Alive {
    /// By the holder's clock, for people reading the bucket; ages use the server's clock.
    renewed: i64,
    /// Given up by a clean unmount: free for anyone at once.
    released: bool,
}

/// The newest lease of a share, as found in the object store.
#[derive(Clone, Debug)]
pub struct Lease {
    pub generation: u64,
    pub holder: Holder,
    /// Since its last renewal, by the server's clock.
    pub age: Duration,
    pub released: bool,
}

impl Lease {
    /// Whether its holder may still be writing.
    pub fn is_held(&self) -> bool {
        !self.released && self.age < Duration::from_secs(self.holder.timeout_secs)
    }

    fn describe(&self) -> String {
        format!(
            "host {} (pid {}, store {}, lease {} taken at {})",
            self.holder.host,
            self.holder.pid,
            self.holder.store,
            self.generation,
            crate::schedule::calendar::format_rfc3339(self.holder.taken)
        )
    }
}

fn malformed(key: &str, err: impl std::fmt::Display) -> TierError {
    TierError::Invalid(format!("{key} in the object store is damaged: {err}"))
}

/// The newest lease generation a listing of `leases/` holds a record of.
fn newest_record(listing: &[BlobMeta]) -> Option<u64> {
    listing
        .iter()
        .filter_map(|meta| match layout::parse_lease_key(meta.key.as_str()) {
            Some(LeaseObject::Record(generation)) => Some(generation),
            _ => None,
        })
        .max()
}

fn newest_generation(backend: &dyn BlobBackend) -> Result<Option<u64>, TierError> {
    Ok(newest_record(&backend.list(layout::LEASES)?))
}

/// The share's newest lease, with its age by the server's clock; `None` if none was ever taken.
pub fn newest(backend: &dyn BlobBackend) -> Result<Option<Lease>, TierError> {
    let clock = layout::lease_clock_key();
    backend.put(&clock, b"")?;
    let listing = backend.list(layout::LEASES)?;
    let modified = |wanted: &str| {
        listing
            .iter()
            .find(|meta| meta.key.as_str() == wanted)
            .map(|meta| meta.modified)
    };
    let now = modified(clock.as_str()).unwrap_or_else(SystemTime::now);
    let Some(generation) = newest_record(&listing) else {
        return Ok(None);
    };
    let record = layout::lease_key(generation);
    let holder: Holder = serde_json::from_slice(&backend.get(&record)?)
        .map_err(|err| malformed(record.as_str(), err))?;
    let alive = layout::lease_alive_key(generation);
    let (renewed, released) = match modified(alive.as_str()) {
        Some(at) => match backend.get(&alive) {
            Ok(bytes) => {
                let state: Alive =
                    serde_json::from_slice(&bytes).map_err(|err| malformed(alive.as_str(), err))?;
                (at, state.released)
            }
            // Replaced between the listing and now: renewed just now.
            Err(BlobError::NotFound(_)) => (now, false),
            Err(err) => return Err(err.into()),
        },
        None => (modified(record.as_str()).unwrap_or(now), false),
    };
    Ok(Some(Lease {
        generation,
        holder,
        age: now.duration_since(renewed).unwrap_or_default(),
        released,
    }))
}

fn write_alive(
    backend: &dyn BlobBackend,
    generation: u64,
    released: bool,
) -> Result<(), TierError> {
    let alive = Alive {
        renewed: super::unix_now(),
        released,
    };
    backend.put(
        &layout::lease_alive_key(generation),
        &serde_json::to_vec(&alive).expect("a plain struct serialises"),
    )?;
    Ok(())
}

/// Refuses to write a share whose server does not enforce create-only puts, unless the admin
/// said that one host alone writes it.
pub fn check_server(backend: &dyn BlobBackend, single_host: bool) -> Result<(), TierError> {
    if single_host || probe::enforces_create_only(backend)? {
        return Ok(());
    }
    Err(TierError::Invalid(format!(
        "{} does not enforce conditional writes (a create-only put of an existing object was \
         accepted), so a lease there cannot keep a second writer out, and two hosts writing \
         the share would corrupt it. Use a server that enforces If-None-Match, or give \
         --single-host if you make sure that only this host ever writes the share",
        backend.describe()
    )))
}

/// Takes the share's writer lease for a store that does not hold it (`snapfs attach`, or the
/// first mount of a store made before leases): refused while another host holds it, unless
/// `force`. Returns the new generation.
pub fn take(backend: &dyn BlobBackend, holder: &Holder, force: bool) -> Result<u64, TierError> {
    let newest = newest(backend)?;
    if let Some(lease) = &newest
        && lease.is_held()
        && !force
    {
        return Err(TierError::LeaseHeld(format!(
            "{} is written by {}, renewed {} s ago; a second writer would fork the share. \
             Unmount it there (a clean unmount frees the lease), wait until its lease expires \
             ({} s without renewal), or take it over with --force: that host is then fenced, \
             and nothing it writes afterwards reaches the share",
            backend.describe(),
            lease.describe(),
            lease.age.as_secs(),
            lease.holder.timeout_secs
        )));
    }
    let generation = newest.as_ref().map_or(1, |lease| lease.generation + 1);
    match backend.put_if_absent(
        &layout::lease_key(generation),
        &serde_json::to_vec_pretty(holder).expect("a plain struct serialises"),
    ) {
        Ok(()) => {}
        Err(BlobError::AlreadyExists(_)) => {
            return Err(TierError::LeaseHeld(format!(
                "another host took the lease of {} at the same moment; try again to see who",
                backend.describe()
            )));
        }
        Err(err) => return Err(err.into()),
    }
    write_alive(backend, generation, false)?;
    // The generation before stays for the messages of a fenced writer; older ones go (those
    // listed: the ones before them went at earlier takes).
    if let Some(lease) = newest {
        for meta in backend.list(layout::LEASES)? {
            let older = match layout::parse_lease_key(meta.key.as_str()) {
                Some(LeaseObject::Record(old) | LeaseObject::Alive(old)) => old < lease.generation,
                None => false,
            };
            if older {
                backend.delete(&meta.key)?;
            }
        }
    }
    Ok(generation)
}

/// Renews lease `generation`, unless a newer one was taken: then this store is fenced, and
/// the error says by whom.
pub fn renew(backend: &dyn BlobBackend, generation: u64) -> Result<(), TierError> {
    match newest_generation(backend)? {
        Some(newest) if newest > generation => {
            let by = match newest_lease_description(backend) {
                Ok(description) => description,
                Err(err) => format!("lease {newest} ({err})"),
            };
            Err(TierError::Fenced(format!(
                "the share in {} was taken over by {by}: this store no longer publishes to \
                 it; what it wrote after its last checkpoint is not part of the share. Attach \
                 a new store to go on with the share (`snapfs attach`)",
                backend.describe()
            )))
        }
        _ => write_alive(backend, generation, false),
    }
}

fn newest_lease_description(backend: &dyn BlobBackend) -> Result<String, TierError> {
    Ok(newest(backend)?.map_or_else(|| "another host".into(), |lease| lease.describe()))
}

/// Gives lease `generation` up (a clean unmount), if it is still the newest: another host may
/// then take it at once, and this store, mounted again, takes it back if nobody did.
pub fn release(backend: &dyn BlobBackend, generation: u64) -> Result<(), TierError> {
    if newest_generation(backend)? == Some(generation) {
        write_alive(backend, generation, true)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::RemoteStore;
    use crate::blob::probe::tests::IgnoresCondition;

    fn holder(name: &str, timeout_secs: u64) -> Holder {
        Holder {
            host: name.into(),
            pid: 1,
            store: "0".repeat(16),
            taken: 0,
            timeout_secs,
        }
    }

    #[test]
    fn a_held_lease_refuses_a_second_writer_until_forced_and_then_fences_the_first() {
        let share = RemoteStore::in_memory();
        assert!(newest(&share).expect("read").is_none());
        let first = take(&share, &holder("a", 60), false).expect("first");
        assert_eq!(first, 1);
        renew(&share, first).expect("renewed");
        let lease = newest(&share).expect("read").expect("a lease");
        assert!(lease.is_held());
        assert_eq!(lease.holder.host, "a");

        let refused = take(&share, &holder("b", 60), false).expect_err("held");
        assert!(matches!(refused, TierError::LeaseHeld(_)), "{refused}");
        assert!(refused.to_string().contains("host a"), "{refused}");

        let second = take(&share, &holder("b", 60), true).expect("forced");
        assert_eq!(second, 2);
        let fenced = renew(&share, first).expect_err("fenced");
        assert!(matches!(fenced, TierError::Fenced(_)), "{fenced}");
        assert!(fenced.to_string().contains("host b"), "{fenced}");
        renew(&share, second).expect("the new holder renews");
    }

    #[test]
    fn a_released_or_expired_lease_is_free() {
        let share = RemoteStore::in_memory();
        let first = take(&share, &holder("a", 60), false).expect("first");
        release(&share, first).expect("release");
        assert!(!newest(&share).expect("read").expect("lease").is_held());
        let second = take(&share, &holder("b", 0), false).expect("free after release");
        // A timeout of zero: expired as soon as it was taken.
        assert!(!newest(&share).expect("read").expect("lease").is_held());
        let third = take(&share, &holder("c", 60), false).expect("free after expiry");
        assert_eq!((second, third), (2, 3));
        // Releasing a lease that is no longer the newest changes nothing.
        release(&share, second).expect("release");
        assert!(newest(&share).expect("read").expect("lease").is_held());
        // Generations before the previous one are cleaned up.
        let records = share.list(layout::LEASES).expect("list");
        assert!(
            records
                .iter()
                .all(|m| !m.key.as_str().contains("0000000000000001")),
            "{records:?}"
        );
    }

    #[test]
    fn a_server_that_ignores_conditional_writes_needs_single_host() {
        check_server(&RemoteStore::in_memory(), false).expect("enforcing server");
        let ignoring = IgnoresCondition(RemoteStore::in_memory());
        let refused = check_server(&ignoring, false).expect_err("refused");
        assert!(refused.to_string().contains("--single-host"), "{refused}");
        check_server(&ignoring, true).expect("the admin vouches for one host");
    }
}
