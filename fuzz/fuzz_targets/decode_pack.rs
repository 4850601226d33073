//! Pack headers and frame headers: decoding garbage returns an error, never panics, and what
//! decodes encodes back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapfs::format::pack::{FRAME_HEADER_LEN, FrameHeader, decode_pack_header};

fuzz_target!(|data: &[u8]| {
    let _ = decode_pack_header(data);
    if let Ok(header) = FrameHeader::decode(data) {
        assert_eq!(&header.encode()[..], &data[..FRAME_HEADER_LEN]);
    }
});
