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

use super::copies::{self, Copy};
use super::storage::{Remote, StorageError};
use crate::local::artifact::{self, Manifest};
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
    let mut local = match tokio::task::spawn_blocking(move || catalog::list(&dir, &[name])).await {
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
    let mut views = Vec::new();
    for remote in remotes {
        match copies::held(remote, target).await {
            Ok(held) => views.push(View {
                remote,
                held,
                read: BTreeMap::new(),
                failed: false,
            }),
            Err(e) => {
                tracing::error!(target, "{e}; the upload is retried on the next pass");
                report.counts(&remote.name).failed += 1;
                report.failures.push(e);
            }
        }
    }
    crate::fault::point("upload:listed");
    let states = compare_all(target, &mut local, &mut views, &mut report).await;
    // How many storages hold a verified copy of each local artifact.
    let mut copies: BTreeMap<String, usize> = BTreeMap::new();
    for (v, view) in views.iter_mut().enumerate() {
        let states = states.iter().map(|s| s[v].as_ref());
        upload_missing(target, &local, states, view, &mut report, &mut copies).await;
        if !view.failed {
            // Retention waits until the storage has taken everything it should hold.
            prune_storage(view, target, policy, &mut report).await;
        }
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

/// One listed storage during a pass.
struct View<'a> {
    remote: &'a Remote,
    /// Its LIST, from the start of the pass.
    held: copies::Held,
    /// The manifests read so far (by the name check), for retention.
    read: BTreeMap<String, Manifest>,
    /// Whether something failed there this pass (retention then waits).
    failed: bool,
}

/// What each view holds under each local artifact's name (`[artifact][view]`; `None` where
/// the storage could not tell). A local artifact whose name a storage gives to another
/// artifact is first renamed, to a name no listed storage and no local file holds, so no
/// upload ever overwrites another backup.
async fn compare_all(
    target: &str,
    local: &mut prune::Valid,
    views: &mut [View<'_>],
    report: &mut Report,
) -> Vec<Vec<Option<Copy>>> {
    let mut states = Vec::with_capacity(local.len());
    for (path, manifest) in local.iter_mut() {
        let mut row = Vec::with_capacity(views.len());
        let mut clash = None;
        for view in views.iter_mut() {
            match copies::compare(view.remote, target, &view.held, manifest, &mut view.read).await {
                Ok(Copy::Other(why)) => {
                    clash.get_or_insert((view.remote.name.clone(), why));
                    row.push(Some(Copy::Absent));
                }
                Ok(c) => row.push(Some(c)),
                Err(e) => {
                    tracing::error!(target, "{e}; the upload is retried on the next pass");
                    report.counts(&view.remote.name).failed += 1;
                    report.failures.push(e);
                    view.failed = true;
                    row.push(None);
                }
            }
        }
        if let Some((storage, why)) = clash {
            let taken = |n: &str| views.iter().any(|v| v.held.taken(n));
            match artifact::rename(path, manifest, taken) {
                Ok((new_path, renamed)) => {
                    tracing::warn!(target, storage = %storage, old = %manifest.stored.file, new = %renamed.stored.file, "the storage holds a different artifact under this name ({why}); the local artifact is renamed and uploaded under the new name, nothing is overwritten");
                    *path = new_path;
                    *manifest = renamed;
                    // The new name is free in every listed storage.
                    row = row.into_iter().map(|s| s.map(|_| Copy::Absent)).collect();
                }
                Err(e) => {
                    tracing::error!(target, storage = %storage, file = %manifest.stored.file, "the storage holds a different artifact under this name ({why}), and renaming the local one failed: {e}; it is not uploaded until it can be renamed");
                    row = row
                        .into_iter()
                        .map(|s| s.filter(|c| *c == Copy::Same))
                        .collect();
                    for view in views.iter_mut() {
                        view.failed = true;
                    }
                }
            }
        }
        states.push(row);
    }
    states
}

/// Uploads to one storage the local artifacts it lacks, and counts the copies it holds.
async fn upload_missing<'s>(
    target: &str,
    local: &prune::Valid,
    states: impl Iterator<Item = Option<&'s Copy>>,
    view: &mut View<'_>,
    report: &mut Report,
    copies: &mut BTreeMap<String, usize>,
) {
    let remote = view.remote;
    for ((path, manifest), state) in local.iter().zip(states) {
        let file = &manifest.stored.file;
        match state {
            None | Some(Copy::Other(_)) => continue,
            Some(Copy::Same) => {}
            Some(Copy::Absent | Copy::Partial) => {
                let started = std::time::Instant::now();
                if let Err(e) = remote.upload(target, path, manifest).await {
                    tracing::error!(
                        target,
                        "{e}. The local copy is kept and the upload is retried on the next pass"
                    );
                    report.failures.push(e);
                    report.counts(&remote.name).failed += 1;
                    view.failed = true;
                    continue;
                }
                report.counts(&remote.name).uploaded += 1;
                tracing::info!(target, storage = %remote.name, file = %file, bytes = manifest.stored.bytes, seconds = started.elapsed().as_secs_f64(), "uploaded and verified");
                report.uploaded += 1;
            }
        }
        *copies.entry(file.clone()).or_default() += 1;
    }
}

/// Applies retention in one storage, counting what it deleted or why it failed.
async fn prune_storage(view: &View<'_>, target: &str, policy: &Policy, report: &mut Report) {
    match prune_remote(view.remote, target, policy, &view.read).await {
        Ok(n) => {
            report.pruned += n;
            report.counts(&view.remote.name).pruned += n;
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
    read: &BTreeMap<String, Manifest>,
) -> Result<usize, StorageError> {
    if policy.is_empty() {
        return Ok(0);
    }
    let items = copies::verified_reading(remote, target, read).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::catalog::test_manifest;

    /// Commits `bytes` as artifact `name` of target `db`, started at `at`.
    fn commit(dir: &Path, name: &str, bytes: &[u8], at: chrono::DateTime<Utc>) {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let mut m = test_manifest(name, bytes);
        m.started_at = at;
        artifact::write_manifest(&path, &m).unwrap();
    }

    #[tokio::test]
    async fn a_new_artifact_under_a_name_the_storage_gives_another_is_renamed_not_counted() {
        let root = std::env::temp_dir().join(format!("stowage-replicate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (backups, store) = (root.join("local"), root.join("store"));
        std::fs::create_dir_all(&store).unwrap();
        let remotes = [Arc::new(crate::remote::directory_storage(&store, "h1"))];
        let dir = backups.join("db");
        let name = "20260101T000000Z_db_app.sql.zst";
        let t0 = Utc::now();
        commit(&dir, name, b"first backup", t0);
        let all = Policy::default();
        let r = sync_target(&backups, "db", &remotes, &all, false).await;
        assert_eq!((r.uploaded, r.failures.len()), (1, 0), "{:?}", r.failures);
        // Local retention frees the name, and a second backup started in the same second
        // takes it: the storage still holds the first under that name.
        std::fs::remove_file(dir.join(name)).unwrap();
        std::fs::remove_file(artifact::manifest_path(&dir.join(name))).unwrap();
        commit(
            &dir,
            name,
            b"second backup",
            t0 + chrono::Duration::milliseconds(5),
        );
        let r = sync_target(&backups, "db", &remotes, &all, true).await;
        assert_eq!((r.uploaded, r.failures.len()), (1, 0), "{:?}", r.failures);
        // Remote-only mode removed the local copy only because the new name is verified.
        assert_eq!(r.local_removed, 1);
        let renamed = "20260101T000000Z_db_app-2.sql.zst";
        let remote_dir = store.join("h1/db");
        assert_eq!(
            std::fs::read(remote_dir.join(name)).unwrap(),
            b"first backup"
        );
        assert_eq!(
            std::fs::read(remote_dir.join(renamed)).unwrap(),
            b"second backup"
        );
        // Retention in the storage keeps the newer backup, under its new name.
        let last = Policy::parse_label("last=1").unwrap();
        let r = sync_target(&backups, "db", &remotes, &last, true).await;
        assert_eq!((r.pruned, r.failures.len()), (1, 0), "{:?}", r.failures);
        let held = copies::verified(&remotes[0], "db").await.unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].0, renamed);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
