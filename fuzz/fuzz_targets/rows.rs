//! Any bytes through the dump row counters (every format): no input panics, and the counts do
//! not depend on how the stream is cut into chunks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stowage::pipeline::rows::{RowCounter, RowFormat};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, data)) = data.split_first() else {
        return;
    };
    let size = usize::from(cut % 31) + 1;
    for format in [
        RowFormat::Copy,
        RowFormat::Insert,
        RowFormat::InsertBackslash,
        RowFormat::MongoArchive,
    ] {
        let mut whole = RowCounter::new(format);
        whole.feed(data);
        let mut chunked = RowCounter::new(format);
        for chunk in data.chunks(size) {
            chunked.feed(chunk);
        }
        assert_eq!(
            whole.finish(),
            chunked.finish(),
            "{format:?}, chunks of {size}"
        );
    }
});
