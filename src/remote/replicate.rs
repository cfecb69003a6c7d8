//! Copies a target's artifacts to its storages, and keeps the storages under retention.
//!
//! One pass, for one target, after each successful backup (and again whenever the daemon or
//! `stowage upload` retries): for each storage the target goes to, list what is already there
//! (one LIST), upload every local artifact with a valid manifest whose manifest is not there
//! yet (see [`crate::storage::Remote::upload`]: complete-or-absent, verified, manifest last),
//! then apply the target's retention policy to the remote manifests. An upload that fails
//! leaves the local copy in place; the next pass finds it missing and uploads it. In
//! remote-only mode, a local artifact is removed once it is verified in every storage of the
//! target.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;

use crate::artifact::{self, MANIFEST_SUFFIX, Manifest};
use crate::catalog;
use crate::prune;
use crate::retention::Policy;
use crate::storage::{Remote, StorageError};

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
    // Which storages hold a verified copy of each local artifact.
    let mut copies: BTreeMap<String, usize> = BTreeMap::new();
    for remote in remotes {
        let present = match remote.list(target).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(target, "{e}; the upload is retried on the next pass");
                report.failures.push(e);
                continue;
            }
        };
        let mut upload_failed = false;
        for (path, manifest) in &local {
            let file = &manifest.stored.file;
            if !present.contains_key(&format!("{file}{MANIFEST_SUFFIX}")) {
                let started = std::time::Instant::now();
                match remote.upload(target, path, manifest).await {
                    Ok(()) => {
                        report
                            .by_storage
                            .entry(remote.name.clone())
                            .or_default()
                            .uploaded += 1;
                        tracing::info!(target, storage = %remote.name, file = %file, bytes = manifest.stored.bytes, seconds = started.elapsed().as_secs_f64(), "uploaded and verified");
                        report.uploaded += 1;
                    }
                    Err(e) => {
                        tracing::error!(
                            target,
                            "{e}. The local copy is kept and the upload is retried on the next pass"
                        );
                        report.failures.push(e);
                        report
                            .by_storage
                            .entry(remote.name.clone())
                            .or_default()
                            .failed += 1;
                        upload_failed = true;
                        continue;
                    }
                }
            }
            *copies.entry(file.clone()).or_default() += 1;
        }
        if upload_failed {
            // Retention waits until the storage has taken everything it should hold.
            continue;
        }
        match prune_remote(remote, target, policy).await {
            Ok(n) => {
                report.pruned += n;
                report
                    .by_storage
                    .entry(remote.name.clone())
                    .or_default()
                    .pruned += n;
            }
            Err(e) => {
                tracing::error!(target, "remote retention: {e}");
                report.failures.push(e);
            }
        }
    }
    if remote_only && !remotes.is_empty() {
        let verified: Vec<PathBuf> = local
            .iter()
            .filter(|(_, m)| copies.get(&m.stored.file) == Some(&remotes.len()))
            .map(|(p, _)| p.clone())
            .collect();
        for path in verified {
            let manifest = artifact::manifest_path(&path);
            match std::fs::remove_file(&path).and_then(|()| std::fs::remove_file(&manifest)) {
                Ok(()) => {
                    tracing::info!(target, artifact = %path.display(), "remote-only: local copy removed after verified upload");
                    report.local_removed += 1;
                }
                Err(e) => {
                    tracing::error!(target, artifact = %path.display(), "remote-only: cannot remove the local copy: {e}")
                }
            }
        }
    }
    report
}

/// The remote copies of `target` that have valid manifests: the manifest reads, names its
/// artifact and target, and the artifact object has the recorded size.
pub async fn remote_artifacts(
    remote: &Remote,
    target: &str,
) -> Result<Vec<(String, Manifest)>, StorageError> {
    let objects = remote.list(target).await?;
    let mut out = Vec::new();
    for name in objects.keys() {
        let Some(file) = name.strip_suffix(MANIFEST_SUFFIX) else {
            continue;
        };
        let manifest = match remote.manifest(target, file).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(target, "{e}; left alone");
                continue;
            }
        };
        let size_ok = objects
            .get(file)
            .is_some_and(|o| o.size == manifest.stored.bytes);
        if manifest.stored.file == file && manifest.target == target && size_ok {
            out.push((file.to_string(), manifest));
        } else {
            tracing::warn!(target, storage = %remote.name, file, "remote manifest does not match its artifact; left alone");
        }
    }
    Ok(out)
}

/// When the newest complete copy of `target` in any of `remotes` was started: the newest
/// artifact whose manifest is there too (the manifest goes up last, so it marks a complete
/// upload), dated by its file name. One LIST per storage and no reads; a storage that cannot
/// be listed is logged and left out.
pub async fn newest_remote(remotes: &[Arc<Remote>], target: &str) -> Option<chrono::DateTime<Utc>> {
    let mut newest = None;
    for remote in remotes {
        let objects = match remote.list(target).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(target, "{e}; its copies there are not counted");
                continue;
            }
        };
        let complete = objects.keys().filter_map(|name| {
            let file = name.strip_suffix(MANIFEST_SUFFIX)?;
            objects.contains_key(file).then_some(file)
        });
        newest = newest.max(complete.filter_map(artifact::time_from_file_name).max());
    }
    newest
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
    let items = remote_artifacts(remote, target).await?;
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
