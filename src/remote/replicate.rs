//! Copies a target's artifacts to its storages, and keeps the storages under retention.
//!
//! One pass, for one target, after each successful backup (and again whenever the daemon or
//! `stowage upload` retries): for each storage the target goes to, list what is already there
//! (one LIST), upload every local artifact with a valid manifest whose manifest is not there
//! yet (see [`super::storage::Remote::upload`]: complete-or-absent, verified, manifest last),
//! then apply the target's retention policy to the remote manifests. An upload that fails
//! leaves the local copy in place; the next pass finds it missing and uploads it. In
//! remote-only mode, a local artifact is removed once it is verified in every storage of the
//! target.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;

use super::copies;
use super::storage::{Remote, StorageError};
use crate::local::artifact;
use crate::local::catalog;
use crate::local::prune;
use crate::retention::Policy;

/// What one pass did.
#[derive(Debug, Default)]
pub struct Report {
    /// Artifacts uploaded and verified.
    pub uploaded: usize,
    /// Artifacts deleted remotely by retention.
    pub pruned: usize,
    /// Local copies removed (remote-only mode).
    pub local_removed: usize,
    /// What failed; the local copies of failed uploads are kept.
    pub failures: Vec<StorageError>,
    /// The same counts per storage, for metrics.
    pub by_storage: BTreeMap<String, Counts>,
}

impl Report {
    /// The counts of one storage, started at zero.
    fn counts(&mut self, storage: &str) -> &mut Counts {
        self.by_storage.entry(storage.to_string()).or_default()
    }
}

/// One storage's share of a pass.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Uploaded and verified.
    pub uploaded: usize,
    /// Uploads that failed.
    pub failed: usize,
    /// Deleted by retention.
    pub pruned: usize,
}

/// One pass for `target` (see the module doc).
pub async fn sync_target(
    backup_dir: &Path,
    target: &str,
    remotes: &[Arc<Remote>],
    policy: &Policy,
    remote_only: bool,
) -> Report {
    let mut report = Report::default();
    let dir = backup_dir.to_path_buf();
    let name = target.to_string();
    let local = match tokio::task::spawn_blocking(move || catalog::list(&dir, &[name])).await {
        Ok(Ok(listed)) => prune::split_valid(listed).0,
        Ok(Err(e)) => {
            tracing::error!(target, "cannot read the backup directory: {e}");
            return report;
        }
        Err(e) => {
            tracing::error!(target, "{e}");
            return report;
        }
    };
    // How many storages hold a verified copy of each local artifact.
    let mut copies: BTreeMap<String, usize> = BTreeMap::new();
    for remote in remotes {
        sync_storage(remote, target, &local, policy, &mut report, &mut copies).await;
    }
    if remote_only && !remotes.is_empty() {
        let verified: Vec<PathBuf> = local
            .iter()
            .filter(|(_, m)| copies.get(&m.stored.file) == Some(&remotes.len()))
            .map(|(p, _)| p.clone())
            .collect();
        report.local_removed = remove_local(target, verified);
    }
    report
}

/// One storage's part of a pass: upload what it lacks, then (if every upload worked) apply
/// retention there. Counts each verified copy in `copies`.
async fn sync_storage(
    remote: &Remote,
    target: &str,
    local: &prune::Valid,
    policy: &Policy,
    report: &mut Report,
    copies: &mut BTreeMap<String, usize>,
) {
    let present = match copies::held(remote, target).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(target, "{e}; the upload is retried on the next pass");
            report.counts(&remote.name).failed += 1;
            report.failures.push(e);
            return;
        }
    };
    crate::fault::point("upload:listed");
    let mut upload_failed = false;
    for (path, manifest) in local {
        let file = &manifest.stored.file;
        if !present.has(file) {
            let started = std::time::Instant::now();
            match remote.upload(target, path, manifest).await {
                Ok(()) => {
                    report.counts(&remote.name).uploaded += 1;
                    tracing::info!(target, storage = %remote.name, file = %file, bytes = manifest.stored.bytes, seconds = started.elapsed().as_secs_f64(), "uploaded and verified");
                    report.uploaded += 1;
                }
                Err(e) => {
                    tracing::error!(
                        target,
                        "{e}. The local copy is kept and the upload is retried on the next pass"
                    );
                    report.failures.push(e);
                    report.counts(&remote.name).failed += 1;
                    upload_failed = true;
                    continue;
                }
            }
        }
        *copies.entry(file.clone()).or_default() += 1;
    }
    if upload_failed {
        // Retention waits until the storage has taken everything it should hold.
        return;
    }
    match prune_remote(remote, target, policy).await {
        Ok(n) => {
            report.pruned += n;
            report.counts(&remote.name).pruned += n;
        }
        Err(e) => {
            tracing::error!(target, "remote retention: {e}");
            report.failures.push(e);
        }
    }
}

/// Remote-only mode: removes local copies verified in every storage; returns how many.
fn remove_local(target: &str, verified: Vec<PathBuf>) -> usize {
    let mut removed = 0;
    for path in verified {
        let manifest = artifact::manifest_path(&path);
        let result = std::fs::remove_file(&path).and_then(|()| {
            crate::fault::point("remote-only:artifact-removed");
            std::fs::remove_file(&manifest)
        });
        match result {
            Ok(()) => {
                tracing::info!(target, artifact = %path.display(), "remote-only: local copy removed after verified upload");
                removed += 1;
            }
            Err(e) => {
                tracing::error!(target, artifact = %path.display(), "remote-only: cannot remove the local copy: {e}")
            }
        }
    }
    removed
}

/// Applies `policy` to `target`'s copies in `remote`; returns how many were deleted.
async fn prune_remote(
    remote: &Remote,
    target: &str,
    policy: &Policy,
) -> Result<usize, StorageError> {
    if policy.is_empty() {
        return Ok(0);
    }
    let items = copies::verified(remote, target).await?;
    let mut deleted = 0;
    for ((file, manifest), decision) in prune::decide(items, policy, Utc::now()) {
        if !decision.keep {
            remote.delete(target, &file).await?;
            tracing::info!(target, storage = %remote.name, file, database = %manifest.database, "retention: deleted remote copy");
            deleted += 1;
        }
    }
    Ok(deleted)
}
