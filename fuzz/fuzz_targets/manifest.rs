//! Manifests as read from a backup directory or a storage: whatever the bytes, parsing and
//! the checks that follow never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stowage::local::artifact::{self, Manifest};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = serde_json::from_slice::<Manifest>(data) {
        let _ = artifact::time_from_file_name(&m.stored.file);
        let _ = artifact::is_artifact_name(&m.stored.file);
        let _ = serde_json::to_vec(&m).unwrap();
        let _ = m.finished_at - m.started_at;
    }
});
