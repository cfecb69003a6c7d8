//! Which artifacts a drill restores: per database of the target, the newest complete one,
//! whether its copy is local or (remote-only mode, a lost backup directory) in a storage.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::local::artifact::Manifest;
use crate::local::catalog;
use crate::remote::config::Storages;
use crate::remote::copies;
use crate::remote::storage::Remote;

/// Where the chosen copy is.
#[derive(Debug, Clone)]
pub enum Location {
    /// In the backup directory.
    Local(PathBuf),
    /// Only in a storage: downloaded for the drill.
    Remote(Arc<Remote>),
}

/// One artifact to drill.
#[derive(Debug, Clone)]
pub struct Picked {
    /// Its manifest.
    pub manifest: Manifest,
    /// Where it is.
    pub location: Location,
}

impl Picked {
    /// `local` or the storage's name.
    pub fn source(&self) -> String {
        match &self.location {
            Location::Local(_) => "local".into(),
            Location::Remote(r) => r.name.clone(),
        }
    }
}

/// The newest complete artifact of each database of `target`: local copies, and the copies in
/// `storage_names` (a local copy wins over a remote one of the same artifact). Storages that
/// cannot be listed are logged and left out.
pub async fn newest(
    backup_dir: &Path,
    storages: &Storages,
    target: &str,
    storage_names: &[String],
) -> Vec<Picked> {
    let mut best: BTreeMap<String, Picked> = BTreeMap::new();
    let mut offer = |p: Picked| {
        let newer = best
            .get(&p.manifest.database)
            .is_none_or(|b| p.manifest.started_at > b.manifest.started_at);
        if newer {
            best.insert(p.manifest.database.clone(), p);
        }
    };
    let dir = backup_dir.to_path_buf();
    let name = target.to_string();
    let listed = tokio::task::spawn_blocking(move || catalog::list(&dir, &[name]))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    for l in listed {
        if let (true, Ok(m)) = (l.file_exists, l.valid()) {
            offer(Picked {
                manifest: m.clone(),
                location: Location::Local(l.path.clone()),
            });
        }
    }
    for name in storage_names {
        let Some(remote) = storages.get(name) else {
            continue;
        };
        match copies::verified(remote, target).await {
            Ok(found) => {
                for (_, manifest) in found {
                    offer(Picked {
                        manifest,
                        location: Location::Remote(remote.clone()),
                    });
                }
            }
            Err(e) => tracing::error!(
                target,
                "{}; its copies are not drilled",
                crate::error_text::one_line(&e)
            ),
        }
    }
    best.into_values().collect()
}
