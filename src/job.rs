//! One target's run, the same for `stowage backup` and the daemon: each database
//! ([`crate::backup`]), then local retention, then the upload pass ([`crate::remote`]).
//!
//! [`Context`] holds what every run needs (the Docker connection, backup options, storages,
//! the defaults targets are planned with) and the one concurrency limit
//! (`daemon.max_concurrent`) that the CLI and the daemon share: a caller takes a
//! [`Context::permit`] before [`run_target`] or [`upload`]. [`select`] picks targets by name
//! for the commands that take names. Sequencing lives here and only here: `backup` never
//! prunes or uploads, `remote` never starts a backup.

use std::sync::Arc;

use bollard::Docker;
use chrono::Utc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::backup::{self, BackupError, Outcome, Session, hooks, stop};
use crate::discover::{self, DiscoveryError};
use crate::engine::Registry;
use crate::local::prune;
use crate::local::shrink::{self, Shrink};
use crate::plan::{self, Defaults, Entry, Target};
use crate::remote::config::Storages;
use crate::remote::replicate;
use crate::retention::Policy;
use crate::schedule::Schedule;

/// What every run needs, shared by all of them.
#[derive(Debug, Clone)]
pub struct Context {
    /// The engine.
    pub docker: Docker,
    /// Backup directory, compression, encryption, helper image.
    pub backup: backup::Options,
    /// The configured storages.
    pub storages: Arc<Storages>,
    /// Remove local copies once verified in every storage of their target.
    pub remote_only: bool,
    /// The engines.
    pub registry: Arc<Registry>,
    /// Config `schedule`, in the configured zone.
    pub schedule: Schedule,
    /// Config `retention`.
    pub retention: Policy,
    /// Config `instance`: only containers labelled for it are targets.
    pub instance: Option<String>,
    /// Config `drill.schedule` (`None`: off).
    pub drill_schedule: Option<Schedule>,
    /// Config `drill.shrink_alert`: the drop that makes a backup suspicious (0: off).
    pub shrink_alert: f64,
    /// This host's name in the storages' key layout (config `host`, else the engine's name).
    pub host: String,
    permits: Arc<Semaphore>,
}

impl Context {
    /// A context whose runs are limited to `max_concurrent` at once.
    #[allow(clippy::too_many_arguments)] // each is one configured part; a builder adds nothing
    pub fn new(
        docker: Docker,
        backup: backup::Options,
        storages: Arc<Storages>,
        remote_only: bool,
        registry: Arc<Registry>,
        schedule: Schedule,
        retention: Policy,
        instance: Option<String>,
        max_concurrent: usize,
    ) -> Self {
        Self {
            docker,
            backup,
            storages,
            remote_only,
            registry,
            schedule,
            retention,
            instance,
            drill_schedule: None,
            shrink_alert: 0.0,
            host: String::new(),
            permits: Arc::new(Semaphore::new(max_concurrent)),
        }
    }

    /// Waits for one of the `daemon.max_concurrent` slots.
    pub async fn permit(&self) -> OwnedSemaphorePermit {
        self.permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// What targets get unless their labels say otherwise.
    pub fn defaults(&self) -> Defaults<'_> {
        Defaults {
            registry: &self.registry,
            schedule: &self.schedule,
            drill: self.drill_schedule.as_ref(),
            encryption: self.backup.encryption.is_some(),
            retention: &self.retention,
            storages: &self.storages,
        }
    }

    /// The labelled containers, planned.
    pub async fn discover_and_plan(&self) -> Result<Vec<Entry>, DiscoveryError> {
        let containers =
            discover::labelled_containers(&self.docker, self.instance.as_deref()).await?;
        Ok(plan::plan(&containers, &self.defaults()))
    }
}

/// What a target's run did: one result per database, and what followed a success.
#[derive(Debug)]
pub struct TargetRun {
    /// One per database.
    pub backups: Vec<Result<Outcome, BackupError>>,
    /// The upload pass, when the target has storages and a backup succeeded.
    pub replication: Option<replicate::Report>,
    /// Local retention after a success: artifacts deleted, or why it failed.
    pub local_retention: Option<Result<usize, std::io::Error>>,
    /// New backups much smaller than the previous ones (see [`crate::local::shrink`]).
    pub shrinks: Vec<Shrink>,
    /// How long each container stopped for the backup was down (`stowage.stop`).
    pub downtime: Vec<stop::Downtime>,
}

impl TargetRun {
    /// Whether every database was backed up.
    pub fn all_ok(&self) -> bool {
        self.backups.iter().all(Result::is_ok)
    }
}

/// Runs one target: every database it selects (one artifact each; one failing does not
/// stop the others), then, after any success, local retention and the upload pass. Every
/// outcome is logged here, with its timings or its whole error. The caller holds a permit.
pub async fn run_target(ctx: &Context, target: &Target) -> TargetRun {
    let mut downtime = Vec::new();
    let backups = match Session::open(&ctx.docker, target, &ctx.backup).await {
        Ok(session) => {
            // The post hook runs whenever the pre hook was tried: it may have to undo it.
            let post = hooks::PostHook::owed(&ctx.docker, target);
            let mut results = Vec::new();
            match hooks::before(&ctx.docker, target).await {
                Ok(()) => {
                    let (r, down) = dump_all(ctx, target, &session).await;
                    results = r;
                    downtime = down;
                }
                Err(e) => results.push(Err(backup::pre_hook_failed(target, e))),
            }
            post.run(results.iter().all(Result::is_ok)).await;
            session.close().await;
            results
        }
        Err(e) => vec![Err(e)],
    };
    for result in &backups {
        match result {
            Ok(o) => tracing::info!(
                target = %target.name,
                database = %o.manifest.database,
                artifact = %o.artifact.display(),
                raw_bytes = o.manifest.raw.bytes,
                stored_bytes = o.manifest.stored.bytes,
                seconds = (o.manifest.finished_at - o.manifest.started_at).num_milliseconds() as f64 / 1000.0,
                "backup complete"
            ),
            Err(e) => tracing::error!(
                target = %target.name, database = %e.database, step = %e.step,
                reason = e.reason_class(),
                temporary = crate::error::Temporary::is_temporary(e),
                "{}", crate::error_text::one_line(e)
            ),
        }
    }
    let shrinks = shrinks(ctx, target, &backups).await;
    let mut run = TargetRun {
        backups,
        replication: None,
        local_retention: None,
        shrinks,
        downtime,
    };
    if run.backups.iter().any(Result::is_ok) {
        run.local_retention = apply_retention(ctx, target).await;
        if !target.storages.is_empty() {
            run.replication = Some(upload(ctx, target).await);
        }
    }
    run
}

/// Every dump of the target, with its containers stopped around them when the target says
/// so (they are started again whatever happens; see [`crate::backup::stop`]).
async fn dump_all(
    ctx: &Context,
    target: &Target,
    session: &Session<'_>,
) -> (Vec<Result<Outcome, BackupError>>, Vec<stop::Downtime>) {
    let stopped = match &target.stop {
        Some(_) => match stop::stop(&ctx.docker, &ctx.backup.backup_dir, target).await {
            Ok(s) => Some(s),
            Err(e) => return (vec![Err(backup::stop_failed(target, e))], Vec::new()),
        },
        None => None,
    };
    let mut results = Vec::new();
    for dump in backup::dumps(target) {
        results.push(session.dump(&dump).await);
    }
    let downtime = match stopped {
        Some(s) => s.start().await,
        None => Vec::new(),
    };
    (results, downtime)
}

/// Compares each new backup with the previous one of its database; logs what shrank.
async fn shrinks(
    ctx: &Context,
    target: &Target,
    backups: &[Result<Outcome, BackupError>],
) -> Vec<Shrink> {
    let mut out = Vec::new();
    for o in backups.iter().flatten() {
        let (dir, manifest, limit) = (
            ctx.backup.backup_dir.clone(),
            o.manifest.clone(),
            ctx.shrink_alert,
        );
        match tokio::task::spawn_blocking(move || {
            shrink::check_and_remember(&dir, &manifest, limit)
        })
        .await
        {
            Ok(Ok(Some(s))) => {
                tracing::warn!(target = %target.name, database = %s.database, artifact = %s.artifact, "suspicious shrink: {}", s.message);
                out.push(s);
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                tracing::warn!(target = %target.name, "could not compare the backup with the previous one: {e}")
            }
            Err(e) => {
                tracing::warn!(target = %target.name, "could not compare the backup with the previous one: {e}")
            }
        }
    }
    out
}

/// The upload pass of one target: uploads what its storages lack, applies retention there,
/// and in remote-only mode removes verified local copies (see [`crate::remote::replicate`]).
pub async fn upload(ctx: &Context, target: &Target) -> replicate::Report {
    let remotes: Vec<_> = target
        .storages
        .iter()
        .filter_map(|n| ctx.storages.get(n).cloned())
        .collect();
    let report = replicate::sync_target(
        &ctx.backup.backup_dir,
        &target.name,
        &remotes,
        &target.retention,
        ctx.remote_only,
    )
    .await;
    if report.failures.is_empty() {
        tracing::info!(target = %target.name, uploaded = report.uploaded, remote_deleted = report.pruned, local_removed = report.local_removed, "storages up to date");
    }
    report
}

/// Applies the target's retention policy after a successful backup. A failure is logged: the
/// backup itself succeeded, and the next one tries again.
async fn apply_retention(ctx: &Context, target: &Target) -> Option<Result<usize, std::io::Error>> {
    if target.retention.is_empty() {
        return None;
    }
    let dir = ctx.backup.backup_dir.clone();
    let name = target.name.clone();
    let policy = target.retention.clone();
    let result = tokio::task::spawn_blocking(move || {
        let plan = prune::plan_target(&dir, &name, &policy, Utc::now())?;
        prune::apply(&plan).map(|n| (n, plan.planned.len() - n))
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r);
    Some(match result {
        Ok((deleted, kept)) => {
            tracing::info!(target = %target.name, policy = %target.retention, deleted, kept, "retention applied");
            Ok(deleted)
        }
        Err(e) => {
            tracing::error!(target = %target.name, "retention could not be applied: {e}. Check the backup directory's permissions; the next backup tries again");
            Err(e)
        }
    })
}

/// The targets a command was asked for, by name.
#[derive(Debug, Default)]
pub struct Selection<'a> {
    /// Targets to run.
    pub targets: Vec<&'a Target>,
    /// Labelled containers that match but are skipped, with whether that is an error (a
    /// label mistake, or a container named explicitly).
    pub skipped: Vec<(&'a plan::Skip, bool)>,
    /// Names that match nothing.
    pub unknown: Vec<String>,
}

/// Picks the entries `wanted` names (all when empty). A name matches a target's name, its
/// container's name, or a container ID prefix of at least 4 characters.
pub fn select<'a>(entries: &'a [Entry], wanted: &[String]) -> Selection<'a> {
    let matches_target = |t: &Target, w: &str| {
        t.name == w || t.container.name == w || (w.len() >= 4 && t.container.id.starts_with(w))
    };
    let mut out = Selection::default();
    for entry in entries {
        match entry {
            Entry::Target(t)
                if wanted.is_empty() || wanted.iter().any(|w| matches_target(t, w)) =>
            {
                out.targets.push(t)
            }
            Entry::Skipped(skip) if wanted.is_empty() || wanted.contains(&skip.container) => {
                out.skipped
                    .push((skip, skip.is_error || !wanted.is_empty()));
            }
            _ => {}
        }
    }
    out.unknown = wanted
        .iter()
        .filter(|w| {
            !entries.iter().any(|e| match e {
                Entry::Target(t) => matches_target(t, w),
                Entry::Skipped(s) => &s.container == *w,
            })
        })
        .cloned()
        .collect();
    out
}

/// Runs `targets` concurrently within the context's limit; returns each run in order.
pub async fn run_all(ctx: &Context, targets: &[&Target]) -> Vec<TargetRun> {
    let runs = targets.iter().map(|t| async move {
        let _permit = ctx.permit().await;
        run_target(ctx, t).await
    });
    futures_util::future::join_all(runs).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::{ContainerInfo, Env};

    fn entries() -> Vec<Entry> {
        let container = |name: &str, labels: &[(&str, &str)]| ContainerInfo {
            id: format!("{name}0123456789"),
            name: name.into(),
            image: "postgres:16".into(),
            state: "running".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            env: Env::from_list(&[]),
            mounts: Vec::new(),
        };
        let on = ("stowage.enable", "true");
        let registry = Registry::builtin().unwrap();
        plan::plan(
            &[
                container("a", &[on]),
                container("b", &[on, ("stowage.name", "bee")]),
                container("c", &[("stowage.enable", "false")]),
                container("d", &[on, ("stowage.schedule", "bad")]),
            ],
            &Defaults {
                registry: &registry,
                schedule: &Schedule::parse("0 3 * * *").unwrap(),
                drill: None,
                encryption: false,
                retention: &Policy::default(),
                storages: &Storages::default(),
            },
        )
    }

    #[test]
    fn selects_by_target_container_or_id_prefix() {
        let entries = entries();
        let all = select(&entries, &[]);
        let names: Vec<&str> = all.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a", "bee"]);
        // Without names, a disabled container is not an error; a bad label is.
        let errors: Vec<bool> = all.skipped.iter().map(|(_, e)| *e).collect();
        assert_eq!(errors, [false, true]);
        let some = select(
            &entries,
            &["b".into(), "a012".into(), "c".into(), "zz".into()],
        );
        let names: Vec<&str> = some.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a", "bee"]);
        assert_eq!(some.skipped.len(), 1);
        assert!(
            some.skipped[0].1,
            "a skipped container asked for by name is an error"
        );
        assert_eq!(some.unknown, ["zz"]);
        assert!(
            select(&entries, &["a0".into()]).targets.is_empty(),
            "too short a prefix"
        );
    }
}
