//! Remote object storage: the configured storages, what each holds, and keeping them in step
//! with the backup directory.
//!
//! - [`storage`]: one store: verified uploads (complete or absent), listing, manifests,
//!   downloads, deletion.
//! - [`config`]: `[storage.NAME]` sections, built into stores without touching them.
//! - [`error`]: why a storage operation failed, and whether a retry can help.
//! - [`copies`]: the one place that answers "which storages hold a complete copy".
//! - [`replicate`]: one pass per target: upload what is missing, remote retention,
//!   remote-only clean-up.
//! - [`hosts`]: every host's targets and artifacts in a storage (several hosts share one).
//! - [`lease`]: one run per target and scheduled time among daemons that share a storage.

pub mod config;
pub mod copies;
pub mod error;
pub mod hosts;
pub mod lease;
pub mod replicate;
pub mod storage;

/// A `file://` storage in `dir`, scoped to `host`, that never retries: for unit tests of the
/// storage protocols (the S3 behaviour is tested against a real server in `tests/`).
#[cfg(test)]
pub(crate) fn directory_storage(dir: &std::path::Path, host: &str) -> storage::Remote {
    let c = config::StorageConfig {
        url: format!("file://{}", dir.display()),
        options: Default::default(),
        default: true,
        verify_readback: true,
        max_retries: 0,
        retry_timeout: 1,
    };
    storage::Remote::new("disk", &c).unwrap().scoped(host)
}
