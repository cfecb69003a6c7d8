//! Several hosts in one storage: which hosts have objects there, and a host's newest
//! artifacts per database (what a disaster recovery restores).
//!
//! Each host writes under `<url path>/<host>/` only ([`Remote::scoped`]); these are the
//! reads across hosts, for `stowage list --all-hosts` and `stowage restore --from-host`.

use std::collections::BTreeMap;

use super::copies;
use super::storage::{Remote, StorageError};
use crate::local::artifact::Manifest;

impl Remote {
    /// The target names that have objects under this host's prefix.
    pub async fn targets(&self) -> Result<Vec<String>, StorageError> {
        children(self, self.prefix(), "listing").await
    }
}

/// The hosts that have objects in the storage.
pub async fn hosts(remote: &Remote) -> Result<Vec<String>, StorageError> {
    children(remote, remote.base(), "listing hosts").await
}

/// The names one level below `prefix` (one delimited LIST), hidden ones (`.leases`) left out.
async fn children(
    remote: &Remote,
    prefix: &object_store::path::Path,
    what: &'static str,
) -> Result<Vec<String>, StorageError> {
    let listed = remote
        .store()
        .await?
        .list_with_delimiter(Some(prefix))
        .await
        .map_err(|e| remote.error(what, prefix, e))?;
    Ok(listed
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename().map(String::from))
        .filter(|name| !name.starts_with('.'))
        .collect())
}

/// The newest verified copy of each database of `target` in `remote` (scoped to a host):
/// database → (file, manifest).
pub async fn newest_per_database(
    remote: &Remote,
    target: &str,
) -> Result<BTreeMap<String, (String, Manifest)>, StorageError> {
    let mut newest: BTreeMap<String, (String, Manifest)> = BTreeMap::new();
    for (file, manifest) in copies::verified(remote, target).await? {
        let newer = newest
            .get(&manifest.database)
            .is_none_or(|(_, m)| m.started_at < manifest.started_at);
        if newer {
            newest.insert(manifest.database.clone(), (file, manifest));
        }
    }
    Ok(newest)
}
