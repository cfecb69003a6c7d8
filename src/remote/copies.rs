//! Which storages hold a complete copy of which artifact: the one place that answers it.
//!
//! A copy is complete when the artifact object and its manifest are both there. The manifest
//! is uploaded last, after the artifact was verified, and deleted last, after the artifact, so
//! a manifest alone (a deletion cut short) or an artifact alone (an upload cut short) is not a
//! copy: `list` does not show it, the missed-run policy does not count it, and the next upload
//! pass uploads the artifact again. One LIST answers it for one target in one storage.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::error::Cause;
use super::storage::{Remote, RemoteObject, StorageError};
use crate::local::artifact::{self, MANIFEST_SUFFIX, Manifest};

/// What one storage holds of one target (from one LIST).
#[derive(Debug, Clone, Default)]
pub struct Held {
    objects: BTreeMap<String, RemoteObject>,
}

impl Held {
    /// The artifact files with a complete copy.
    pub fn complete(&self) -> impl Iterator<Item = &str> {
        self.objects.keys().filter_map(|name| {
            let file = artifact::manifest_of(name)?;
            self.objects.contains_key(file).then_some(file)
        })
    }

    /// Whether `file` has a complete copy.
    pub fn has(&self, file: &str) -> bool {
        self.objects.contains_key(file)
            && self
                .objects
                .contains_key(&format!("{file}{MANIFEST_SUFFIX}"))
    }

    /// Whether any object (the artifact or its manifest) is under `file`'s name, so that a
    /// new artifact must not take it.
    pub fn taken(&self, file: &str) -> bool {
        self.objects.contains_key(file)
            || self
                .objects
                .contains_key(&format!("{file}{MANIFEST_SUFFIX}"))
    }

    /// The size of the artifact object, if it is there.
    pub fn size(&self, file: &str) -> Option<u64> {
        self.objects.get(file).map(|o| o.size)
    }
}

/// What a storage holds under a local artifact's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Copy {
    /// Nothing, or only a manifest whose artifact a deletion removed: upload.
    Absent,
    /// An artifact object of the right size without its manifest (an upload cut short):
    /// upload, which verifies it instead of sending it again.
    Partial,
    /// A complete copy of this very artifact (its manifest records the same start and
    /// sha256).
    Same,
    /// Another artifact under the same name, and why it is another: never overwrite it.
    Other(String),
}

/// Whether `held` (one LIST of `remote`) holds `local`'s artifact under its name. Reads the
/// remote manifest when both objects are there, and keeps it in `read` for retention, which
/// reads the same manifests. Names clash when two backups of a target start in the same
/// second and the older name was freed in between (local retention, remote-only mode), or
/// when the clock was set back.
pub async fn compare(
    remote: &Remote,
    target: &str,
    held: &Held,
    local: &Manifest,
    read: &mut BTreeMap<String, Manifest>,
) -> Result<Copy, StorageError> {
    let file = &local.stored.file;
    let size = held.size(file);
    if !held.has(file) {
        return Ok(match size {
            None => Copy::Absent,
            Some(s) if s == local.stored.bytes => Copy::Partial,
            Some(s) => Copy::Other(format!(
                "an object of {s} bytes without a manifest (this artifact has {})",
                local.stored.bytes
            )),
        });
    }
    if !read.contains_key(file) {
        match remote.manifest(target, file).await {
            Ok(m) => read.insert(file.clone(), m),
            Err(e) if matches!(e.cause, Cause::Manifest(_)) => {
                return Ok(Copy::Other(format!("its manifest does not read: {e}")));
            }
            Err(e) if matches!(e.cause, Cause::Store(object_store::Error::NotFound { .. })) => {
                return Ok(Copy::Absent);
            }
            Err(e) => return Err(e),
        };
    }
    let theirs = &read[file];
    if theirs.stored.sha256 == local.stored.sha256
        && theirs.started_at == local.started_at
        && size == Some(local.stored.bytes)
    {
        Ok(Copy::Same)
    } else {
        Ok(Copy::Other(format!(
            "another backup, started {} (this one started {})",
            theirs.started_at.to_rfc3339(),
            local.started_at.to_rfc3339()
        )))
    }
}

/// What `remote` holds of `target`.
pub async fn held(remote: &Remote, target: &str) -> Result<Held, StorageError> {
    Ok(Held {
        objects: remote.list(target).await?,
    })
}

/// The complete copies of `target` in `remote` whose manifests read, name their artifact and
/// target, and match the artifact object's size. Copies that fail this are logged and left
/// alone (retention never deletes them).
pub async fn verified(
    remote: &Remote,
    target: &str,
) -> Result<Vec<(String, Manifest)>, StorageError> {
    verified_reading(remote, target, &BTreeMap::new()).await
}

/// [`verified`], reading only the manifests not already in `read` (a manifest never changes
/// under its name: stowage writes it once, after its artifact).
pub async fn verified_reading(
    remote: &Remote,
    target: &str,
    read: &BTreeMap<String, Manifest>,
) -> Result<Vec<(String, Manifest)>, StorageError> {
    let held = held(remote, target).await?;
    let mut out = Vec::new();
    for file in held.complete() {
        let fetched = match read.get(file) {
            Some(m) => Ok(m.clone()),
            None => remote.manifest(target, file).await,
        };
        let manifest = match fetched {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(target, "{e}; left alone");
                continue;
            }
        };
        let size_ok = held.size(file) == Some(manifest.stored.bytes);
        if manifest.stored.file == file && manifest.target == target && size_ok {
            out.push((file.to_string(), manifest));
        } else {
            tracing::warn!(target, storage = %remote.name, file, "remote manifest does not match its artifact; left alone");
        }
    }
    Ok(out)
}

/// When the newest complete copy of `target` in any of `remotes` was started, dated by its
/// file name (no reads). A storage that cannot be listed is logged and left out.
pub async fn newest(remotes: &[Arc<Remote>], target: &str) -> Option<DateTime<Utc>> {
    let mut newest = None;
    for remote in remotes {
        match held(remote, target).await {
            Ok(h) => {
                newest = newest.max(h.complete().filter_map(artifact::time_from_file_name).max())
            }
            Err(e) => tracing::error!(target, "{e}; its copies there are not counted"),
        }
    }
    newest
}

/// (target, file) → the storages holding a complete copy, for `targets` (every target a
/// storage has, when empty). Storages that cannot be listed are returned as errors.
pub async fn by_file(
    remotes: &[Arc<Remote>],
    targets: &[String],
) -> (BTreeMap<(String, String), Vec<String>>, Vec<StorageError>) {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut errors = Vec::new();
    for r in remotes {
        let names = if targets.is_empty() {
            match r.targets().await {
                Ok(n) => n,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            }
        } else {
            targets.to_vec()
        };
        for t in names {
            match held(r, &t).await {
                Ok(h) => {
                    for file in h.complete() {
                        out.entry((t.clone(), file.to_string()))
                            .or_default()
                            .push(r.name.clone());
                    }
                }
                Err(e) => errors.push(e),
            }
        }
    }
    (out, errors)
}
