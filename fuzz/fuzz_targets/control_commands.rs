//! The control-file command parser: any bytes give commands or an EINVAL, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapfs::snapshot::control::parse;

fuzz_target!(|data: &[u8]| {
    if let Err(err) = parse(data) {
        assert_eq!(err.errno, libc::EINVAL);
    }
});
