//! The control-file request parser: any bytes give requests or a refusal, never a panic; every
//! request parsed survives its JSON form (what the `snapfs` command sends) unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapfs::service::request::{parse, to_line};

fuzz_target!(|data: &[u8]| {
    if let Ok(requests) = parse(data) {
        for request in requests {
            let line = to_line(&request);
            assert_eq!(parse(line.as_bytes()), Ok(vec![request]));
        }
    }
});
