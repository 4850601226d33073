//! The fixed records: chunk locations (the index), inode records, snapshot catalog entries,
//! the store's identity file, the snapshot policy and space history samples. Garbage is an
//! error; what decodes round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapfs::format::catalog::SnapshotRecord;
use snapfs::format::inode::InodeRecord;
use snapfs::format::location::ChunkLocation;
use snapfs::format::space_sample::SpaceSample;
use snapfs::format::store_config::StoreConfig;
use snapfs::schedule::policy::Policy;

fuzz_target!(|data: &[u8]| {
    if let Ok(location) = ChunkLocation::decode(data) {
        assert_eq!(&location.encode()[..], data);
    }
    if let Ok(record) = InodeRecord::decode(data) {
        assert_eq!(record.encode(), data);
    }
    if let Ok(record) = SnapshotRecord::decode(data) {
        assert_eq!(SnapshotRecord::decode(&record.encode()), Ok(record));
    }
    let _ = StoreConfig::decode(data);
    if let Ok(sample) = SpaceSample::decode(data) {
        assert_eq!(sample.encode(), data);
    }
    if let Ok(policy) = Policy::decode(data) {
        assert_eq!(Policy::decode(&policy.encode()), Ok(policy));
    }
});
