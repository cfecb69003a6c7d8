//! Retention applied to the backup directory: plan which artifacts of a target go, then
//! delete them.
//!
//! Only artifacts with a valid stowage manifest take part: the manifest parses, names this
//! file and this target, and the file on disk has the size it records. Everything else in the
//! directory (an artifact whose manifest is missing or broken, a manifest whose file is gone,
//! a file stowage did not write) is listed as left alone and never deleted. Each target's
//! artifacts form one series per database, and [`crate::retention::plan`] decides per series,
//! so the newest artifact of every database is always kept. Deleting removes the artifact,
//! then its manifest, then fsyncs the directory.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::local::artifact::{self, Manifest};
use crate::local::catalog::{self, Listed};
use crate::retention::{self, Decision, Policy};

/// One artifact and the verdict on it.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The artifact file.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Keep or delete, and why.
    pub decision: Decision,
}

/// The plan for one target.
#[derive(Debug, Clone)]
pub struct TargetPlan {
    /// Target (directory) name.
    pub target: String,
    /// The policy applied.
    pub policy: Policy,
    /// Artifacts with valid manifests, oldest first.
    pub planned: Vec<Planned>,
    /// Files left alone, and why.
    pub ignored: Ignored,
}

impl TargetPlan {
    /// The artifacts to delete.
    pub fn deletions(&self) -> impl Iterator<Item = &Planned> {
        self.planned.iter().filter(|p| !p.decision.keep)
    }
}

/// Plans retention for `target`'s artifacts under `backup_dir`.
pub fn plan_target(
    backup_dir: &Path,
    target: &str,
    policy: &Policy,
    now: DateTime<Utc>,
) -> io::Result<TargetPlan> {
    let listed = catalog::list(backup_dir, &[target.to_string()])?;
    Ok(plan_listed(target, listed, policy, now))
}

/// The pure part of [`plan_target`]: decides over what is listed.
pub fn plan_listed(
    target: &str,
    listed: Vec<Listed>,
    policy: &Policy,
    now: DateTime<Utc>,
) -> TargetPlan {
    let (valid, ignored) = split_valid(listed);
    let planned = decide(valid, policy, now)
        .into_iter()
        .map(|((path, manifest), decision)| Planned {
            path,
            manifest,
            decision,
        })
        .collect();
    TargetPlan {
        target: target.to_string(),
        policy: policy.clone(),
        planned,
        ignored,
    }
}

/// Artifact files with their valid manifests.
pub type Valid = Vec<(PathBuf, Manifest)>;
/// Files left alone, each with the reason.
pub type Ignored = Vec<(PathBuf, String)>;

/// Artifacts with valid manifests, and the rest with the reason each is left alone.
pub fn split_valid(listed: Vec<Listed>) -> (Valid, Ignored) {
    let mut ok = Vec::new();
    let mut ignored = Vec::new();
    for item in listed {
        match item.valid() {
            Ok(m) => ok.push((item.path.clone(), m.clone())),
            Err(reason) => ignored.push((item.path, format!("{reason}; left alone"))),
        }
    }
    (ok, ignored)
}

/// Applies `policy` to each database's series of `items`; returns them oldest first, each
/// with its decision. Used for local and remote copies alike.
pub fn decide<T>(
    items: Vec<(T, Manifest)>,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Vec<((T, Manifest), Decision)> {
    let mut series: BTreeMap<String, Vec<(T, Manifest)>> = BTreeMap::new();
    for (x, m) in items {
        series.entry(m.database.clone()).or_default().push((x, m));
    }
    let mut out = Vec::new();
    for (_, items) in series {
        let times: Vec<DateTime<Utc>> = items.iter().map(|(_, m)| m.started_at).collect();
        let decisions = retention::plan(policy, &times, now);
        out.extend(items.into_iter().zip(decisions));
    }
    out.sort_by_key(|a| a.0.1.started_at);
    out
}

/// Deletes what `plan` says to delete; returns how many artifacts were removed. Stops at the
/// first error, which names the file.
pub fn apply(plan: &TargetPlan) -> io::Result<usize> {
    let mut removed = 0;
    let mut dir = None;
    for p in plan.deletions() {
        let manifest = artifact::manifest_path(&p.path);
        let with_path =
            |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", p.path.display()));
        fs::remove_file(&p.path).map_err(with_path)?;
        crate::fault::point("retention:artifact-deleted");
        fs::remove_file(&manifest).map_err(with_path)?;
        // The artifact's drill record goes with it (there may be none).
        let mut record = p.path.clone().into_os_string();
        record.push(artifact::DRILL_SUFFIX);
        let _ = fs::remove_file(record);
        tracing::info!(target = %plan.target, artifact = %p.path.display(), database = %p.manifest.database, "retention: deleted");
        removed += 1;
        dir = p.path.parent().map(Path::to_path_buf);
    }
    if let Some(dir) = dir {
        fs::File::open(&dir)?.sync_all()?;
    }
    Ok(removed)
}
