//! Snapshot objects (segments, files, directories, multipart): garbage is an error, bounded in
//! the memory it allocates; what decodes encodes back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapfs::format::object::Object;

fuzz_target!(|data: &[u8]| {
    if let Ok(object) = Object::decode(data) {
        let encoded = match &object {
            Object::Segment(o) => o.encode(),
            Object::File(o) => o.encode(),
            Object::Directory(o) => o.encode(),
            Object::Multipart(o) => o.encode(),
        };
        assert_eq!(Object::decode(&encoded).as_ref(), Ok(&object));
    }
});
