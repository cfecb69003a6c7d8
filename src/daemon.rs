//! `stowage run`: the long-running loop.
//!
//! Every `daemon.discovery_interval` seconds it re-discovers labelled containers and re-plans,
//! so containers that appear, disappear or change labels are followed without a restart.
//! Each target's next run is computed from its schedule; due targets start as tasks, at most
//! `daemon.max_concurrent` at once and never two for one target. Runs missed while stowage was
//! not running are not made up: after a start, each target first runs at its next scheduled
//! time. On shutdown it stops starting backups, gives running ones
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
use crate::schedule::Schedule;

struct Scheduled {
    target: Arc<Target>,
    next: Option<DateTime<Utc>>,
}

/// Runs until `shutdown` completes, then drains as described in the module doc.
pub async fn run(
    docker: Docker,
    config: Config,
    registry: Registry,
    opts: Options,
    shutdown: impl Future<Output = ()>,
) {
    let default_schedule = Schedule::parse(&config.schedule).expect("validated with the config");
    let permits = Arc::new(Semaphore::new(config.daemon.max_concurrent));
    let mut targets: BTreeMap<String, Scheduled> = BTreeMap::new();
    // Running backups by task, so a task that panics still frees its target.
    let mut running: HashMap<tokio::task::Id, String> = HashMap::new();
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut last_skips: BTreeMap<String, String> = BTreeMap::new();
    let discovery_every = Duration::from_secs(config.daemon.discovery_interval);
    let mut next_discovery = tokio::time::Instant::now();
    let upload_every = Duration::from_secs(config.daemon.upload_retry_interval.max(1));
    // The first pass waits for one discovery interval, so that start-up backups go first.
    let mut next_upload = tokio::time::Instant::now() + discovery_every;
    tokio::pin!(shutdown);
    tracing::info!(backup_dir = %opts.backup_dir.display(), "stowage daemon started");

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
                    refresh(&mut targets, &mut last_skips, entries, Utc::now());
                }
                Err(e) => tracing::error!(
                    "{e}; keeping the previous targets and trying again in {}s",
                    discovery_every.as_secs()
                ),
            }
        }
        let now = Utc::now();
        for (name, s) in targets.iter_mut() {
            let Some(due) = s.next else { continue };
            if due > now || running.values().any(|r| r == name) {
                continue;
            }
            s.next = s.target.next_run(now);
            let (docker, target, opts, permits) = (
                docker.clone(),
                s.target.clone(),
                opts.clone(),
                permits.clone(),
            );
            let task = tasks.spawn(async move {
                let _permit = permits
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                backup::backup_target(&docker, &target, &opts).await;
            });
            running.insert(task.id(), name.clone());
        }
        if tokio::time::Instant::now() >= next_upload {
            next_upload = tokio::time::Instant::now() + upload_every;
            for (name, s) in &targets {
                if s.target.storages.is_empty() || running.values().any(|r| r == name) {
                    continue;
                }
                let (target, opts, permits) = (s.target.clone(), opts.clone(), permits.clone());
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
        let next_due = targets
            .values()
            .filter_map(|s| s.next)
            .min()
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

/// Applies a new plan: adds, updates and removes targets, logging what changed.
fn refresh(
    targets: &mut BTreeMap<String, Scheduled>,
    last_skips: &mut BTreeMap<String, String>,
    entries: Vec<Entry>,
    now: DateTime<Utc>,
) {
    let mut seen = HashSet::new();
    let mut skips = BTreeMap::new();
    for entry in entries {
        match entry {
            Entry::Target(t) => {
                seen.insert(t.name.clone());
                let t: Arc<Target> = Arc::from(t);
                match targets.get_mut(&t.name) {
                    Some(s) => {
                        let changed = s.target.schedule.as_str() != t.schedule.as_str();
                        if changed {
                            s.next = t.next_run(now);
                            tracing::info!(target = %t.name, schedule = t.schedule.as_str(), "schedule changed");
                        }
                        s.target = t;
                    }
                    None => {
                        let next = t.next_run(now);
                        tracing::info!(
                            target = %t.name, container = %t.container.name, engine = t.engine.name(),
                            schedule = t.schedule.as_str(), next_run = ?next, "target added"
                        );
                        for w in &t.warnings {
                            tracing::warn!(target = %t.name, "{w}");
                        }
                        targets.insert(t.name.clone(), Scheduled { target: t, next });
                    }
                }
            }
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
    targets.retain(|name, _| {
        let keep = seen.contains(name);
        if !keep {
            tracing::info!(target = %name, "target removed");
        }
        keep
    });
    *last_skips = skips;
}
