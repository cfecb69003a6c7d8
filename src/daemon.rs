//! `stowage run`: the long-running loop.
//!
//! Every `daemon.discovery_interval` seconds it re-discovers labelled containers and re-plans,
//! so containers that appear, disappear or change labels are followed without a restart.
//! [`crate::scheduler`] decides what is due (schedules in the configured zone, jitter, the
//! missed-run policy); due targets start as tasks, at most `daemon.max_concurrent` at once and
//! never two for one target. A backup that runs longer than `daemon.backup_timeout` is aborted
//! like one at shutdown. On shutdown it stops starting backups, gives running ones
//! `daemon.shutdown_grace` seconds, then aborts the rest; an aborted backup's temp file is
//! removed as its task is dropped, so no partial artifact is ever left under a final name.
//!
//! Every `daemon.upload_retry_interval` seconds (and once after start-up) each target with
//! storages gets an upload pass ([`crate::replicate`]), which uploads what an earlier pass
//! failed to and applies remote retention. It counts as a run of the target: never at the
//! same time as its backup.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::backup::{self, Options};
use crate::config::Config;
use crate::discovery;
use crate::engine::Registry;
use crate::plan::{self, Entry, Target};
use crate::scheduler::{Change, Scheduler};

/// Runs until `shutdown` completes, then drains as described in the module doc.
pub async fn run(
    docker: Docker,
    config: Config,
    registry: Registry,
    opts: Options,
    shutdown: impl Future<Output = ()>,
) {
    let default_schedule = config
        .default_schedule()
        .expect("validated with the config");
    let permits = Arc::new(Semaphore::new(config.daemon.max_concurrent));
    let mut scheduler = Scheduler::new(config.daemon.jitter, config.daemon.missed_runs);
    // Running backups by task, so a task that panics still frees its target.
    let mut running: HashMap<tokio::task::Id, String> = HashMap::new();
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut last_skips: BTreeMap<String, String> = BTreeMap::new();
    let discovery_every = Duration::from_secs(config.daemon.discovery_interval);
    let mut next_discovery = tokio::time::Instant::now();
    let upload_every = Duration::from_secs(config.daemon.upload_retry_interval.max(1));
    // The first pass waits for one discovery interval, so that start-up backups go first.
    let mut next_upload = tokio::time::Instant::now() + discovery_every;
    let timeout = (config.daemon.backup_timeout > 0)
        .then(|| Duration::from_secs(config.daemon.backup_timeout));
    tokio::pin!(shutdown);
    tracing::info!(backup_dir = %opts.backup_dir.display(), zone = %default_schedule.zone(), "stowage daemon started");

    loop {
        if tokio::time::Instant::now() >= next_discovery {
            next_discovery = tokio::time::Instant::now() + discovery_every;
            match discovery::labelled_containers(&docker, config.instance.as_deref()).await {
                Ok(containers) => {
                    let defaults = plan::Defaults {
                        registry: &registry,
                        schedule: &default_schedule,
                        encryption: opts.encryption.is_some(),
                        retention: &config.retention,
                        storages: &opts.storages,
                    };
                    let entries = plan::plan(&containers, &defaults);
                    let targets = log_skips(&mut last_skips, entries);
                    let dir = opts.backup_dir.clone();
                    let changes = scheduler.update(targets, Utc::now(), |name| {
                        crate::catalog::newest(&dir, name)
                    });
                    log_changes(&scheduler, &changes);
                }
                Err(e) => tracing::error!(
                    "{e}; keeping the previous targets and trying again in {}s",
                    discovery_every.as_secs()
                ),
            }
        }
        let busy: HashSet<String> = running.values().cloned().collect();
        for target in scheduler.take_due(Utc::now(), &busy) {
            let (docker, opts, permits) = (docker.clone(), opts.clone(), permits.clone());
            let name = target.name.clone();
            let task = tasks.spawn(async move {
                let _permit = permits
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                let run = backup::backup_target(&docker, &target, &opts);
                match timeout {
                    Some(limit) => {
                        if tokio::time::timeout(limit, run).await.is_err() {
                            tracing::error!(target = %target.name, seconds = limit.as_secs(), "backup timed out and was aborted; it leaves no artifact. Raise daemon.backup_timeout if this database needs longer");
                        }
                    }
                    None => {
                        run.await;
                    }
                }
            });
            running.insert(task.id(), name);
        }
        if tokio::time::Instant::now() >= next_upload {
            next_upload = tokio::time::Instant::now() + upload_every;
            for (name, slot) in scheduler.slots() {
                if slot.target.storages.is_empty() || running.values().any(|r| r == name) {
                    continue;
                }
                let (target, opts, permits) = (slot.target.clone(), opts.clone(), permits.clone());
                let task = tasks.spawn(async move {
                    let _permit = permits
                        .acquire_owned()
                        .await
                        .expect("the semaphore is never closed");
                    backup::replicate_target(&target, &opts).await;
                });
                running.insert(task.id(), name.clone());
            }
        }
        let next_due = scheduler
            .next_wake()
            .map(|t| (t - Utc::now()).to_std().unwrap_or_default());
        let until_discovery = next_discovery
            .min(next_upload)
            .saturating_duration_since(tokio::time::Instant::now());
        let wait = next_due.map_or(until_discovery, |d| d.min(until_discovery));
        tokio::select! {
            _ = &mut shutdown => break,
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => {
                        tracing::error!(target = ?running.get(&e.id()), "backup task failed: {e}");
                        e.id()
                    }
                };
                running.remove(&id);
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }

    let grace = Duration::from_secs(config.daemon.shutdown_grace);
    if !tasks.is_empty() {
        tracing::info!(
            running = tasks.len(),
            grace_seconds = grace.as_secs(),
            "shutting down: waiting for running backups"
        );
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(
                aborted = tasks.len(),
                "grace period over: aborting running backups; they leave no artifact"
            );
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    }
    tracing::info!("stowage daemon stopped");
}

/// Logs skipped containers when their reason changes; returns the targets.
fn log_skips(last_skips: &mut BTreeMap<String, String>, entries: Vec<Entry>) -> Vec<Arc<Target>> {
    let mut skips = BTreeMap::new();
    let mut targets = Vec::new();
    for entry in entries {
        match entry {
            Entry::Target(t) => targets.push(Arc::from(t)),
            Entry::Skipped(s) => {
                if last_skips.get(&s.container) != Some(&s.reason) {
                    if s.is_error {
                        tracing::warn!(container = %s.container, "not backed up: {}", s.reason);
                    } else {
                        tracing::info!(container = %s.container, "not backed up: {}", s.reason);
                    }
                }
                skips.insert(s.container, s.reason);
            }
        }
    }
    *last_skips = skips;
    targets
}

/// Logs what a re-plan changed in the schedule.
fn log_changes(scheduler: &Scheduler, changes: &[Change]) {
    let when = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339());
    for change in changes {
        match change {
            Change::Added(name, _) | Change::CatchUp(name) => {
                let Some(slot) = scheduler.slots().get(name) else {
                    continue;
                };
                let t = &slot.target;
                tracing::info!(
                    target = %name, container = %t.container.name, engine = t.engine.name(),
                    schedule = t.schedule.as_str(), next_run = ?when(slot.due),
                    catch_up = matches!(change, Change::CatchUp(_)), "target added"
                );
                for w in &t.warnings {
                    tracing::warn!(target = %name, "{w}");
                }
            }
            Change::Rescheduled(name, due) => {
                tracing::info!(target = %name, next_run = ?when(*due), "schedule changed");
            }
            Change::Removed(name) => tracing::info!(target = %name, "target removed"),
        }
    }
}
