//! `stowage run`: the long-running loop.
//!
//! Every `daemon.discovery_interval` seconds it re-discovers labelled containers and re-plans,
//! so containers that appear, disappear or change labels are followed without a restart.
//! [`crate::daemon::scheduler`] decides what is due (schedules in the configured zone, jitter, the
//! missed-run policy); due targets start as tasks, at most `daemon.max_concurrent` at once and
//! never two for one target. A backup that runs longer than `daemon.backup_timeout` is aborted
//! like one at shutdown. On shutdown it stops starting backups, gives running ones
//! `daemon.shutdown_grace` seconds, then aborts the rest; an aborted backup's temp file is
//! removed as its task is dropped, so no partial artifact is ever left under a final name.
//!
//! Every `daemon.upload_retry_interval` seconds (and once after start-up) each target with
//! storages gets an upload pass ([`crate::remote::replicate`]), which uploads what an earlier pass
//! failed to and applies remote retention. It counts as a run of the target: never at the
//! same time as its backup.

pub mod alerts;
mod coordination;
pub mod drills;
mod events;
pub mod http;
mod lifecycle;
pub mod metrics;
pub mod page;
mod replan;
pub mod scheduler;
mod settings;
pub mod status;
mod view;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinSet;

use crate::job::{self, Context};
use crate::plan::Target;
use alerts::Notifier;
use drills::Drills;
use events::{EVENT_DEBOUNCE, watch_events};
use lifecycle::{Started, drain, start};
use replan::Rediscovery;
use scheduler::Scheduler;
pub use settings::{DaemonConfig, MAX_CONCURRENT, MAX_SECONDS, Settings};
use status::Status;

/// A start-up problem that keeps the daemon from running.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The HTTP port cannot be bound.
    #[error("cannot listen on {addr} (http.listen)")]
    Listen {
        /// The configured address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl crate::error::Temporary for DaemonError {
    fn is_temporary(&self) -> bool {
        false
    }
}

/// The running backups and upload passes; each yields whether a retry may help.
type Tasks = JoinSet<bool>;

/// What every spawned run needs.
#[derive(Clone)]
struct Ctx {
    job: Arc<Context>,
    timeout: Option<Duration>,
    status: Arc<Status>,
    notifier: Notifier,
    drill: crate::drill::Context,
    drills: Arc<Drills>,
    /// Turns true at shutdown: running drills stop and remove their containers.
    stop: crate::drill::Stop,
    /// Leases before scheduled runs, when `coordination.storage` is set.
    coordination: Option<Arc<coordination::Coordination>>,
}

impl Ctx {
    /// Starts a backup of `target` as a task; its results go to the status, the metrics, the
    /// alerts and the ping URL. The task yields whether a retry may help: the run failed, and
    /// only for temporary reasons (a timeout is not retried: it would likely time out again).
    /// With coordination, a scheduled run (`scheduled` set) first claims its lease.
    fn spawn_backup(
        &self,
        tasks: &mut Tasks,
        target: Arc<Target>,
        scheduled: Option<chrono::DateTime<Utc>>,
    ) -> tokio::task::Id {
        let ctx = self.clone();
        tasks
            .spawn(async move {
                let ticket = match (&ctx.coordination, scheduled) {
                    (Some(c), Some(at)) => match c.claim(&target, at, &ctx.status).await {
                        Some(t) => Some(t),
                        None => return false,
                    },
                    _ => None,
                };
                let _permit = ctx.job.permit().await;
                let ping = ctx.status.started(&target.name);
                if let Some(url) = &ping {
                    ctx.notifier.ping(&target.name, url, "/start");
                }
                let run = job::run_target(&ctx.job, &target);
                let run = match ctx.timeout {
                    Some(limit) => match tokio::time::timeout(limit, run).await {
                        Ok(r) => Some(r),
                        Err(_) => {
                            tracing::error!(target = %target.name, seconds = limit.as_secs(), "backup timed out and was aborted; it leaves no artifact. Raise daemon.backup_timeout if this database needs longer");
                            None
                        }
                    },
                    None => Some(run.await),
                };
                let ok = run.as_ref().is_some_and(job::TargetRun::all_ok);
                if let (Some(c), Some(t)) = (&ctx.coordination, ticket) {
                    c.finish(&target.name, t, ok).await;
                }
                if let Some(url) = &ping {
                    ctx.notifier.ping(&target.name, url, if ok { "" } else { "/fail" });
                }
                for event in ctx.status.finished(&target.name, run.as_ref(), Utc::now()) {
                    ctx.notifier.send(event);
                }
                if let Some(longest) = run.iter().flat_map(|r| &r.downtime).map(|d| d.down).max() {
                    ctx.status.metrics.stopped_seconds.with_label_values(&[&target.name]).set(longest.as_secs_f64());
                }
                for shrink in run.iter().flat_map(|r| &r.shrinks) {
                    ctx.status.metrics.shrinks.with_label_values(&[&target.name]).inc();
                    ctx.notifier.send(alerts::Event::shrink(&target, shrink, ctx.job.instance.clone()));
                }
                run.is_some_and(|r| {
                    !r.all_ok()
                        && r.backups.iter().filter_map(|b| b.as_ref().err()).all(|e| {
                            crate::error::Temporary::is_temporary(e)
                        })
                })
            })
            .id()
    }

    /// Starts a restore drill of `target` as a task; it takes a `daemon.max_concurrent` slot
    /// and a `drill.max_concurrent` one. Never retried before its next scheduled time.
    fn spawn_drill(&self, tasks: &mut Tasks, target: Arc<Target>) -> tokio::task::Id {
        let ctx = self.clone();
        tasks
            .spawn(async move {
                let _permit = ctx.job.permit().await;
                ctx.drills.started(&target.name);
                let drilled =
                    crate::drill::drill_target(&ctx.drill, &target, ctx.stop.clone()).await;
                for event in ctx.drills.finished(&target, &drilled) {
                    ctx.notifier.send(event);
                }
                false
            })
            .id()
    }

    /// Starts an upload pass of `target` as a task.
    fn spawn_upload(&self, tasks: &mut Tasks, target: Arc<Target>) -> tokio::task::Id {
        let ctx = self.clone();
        tasks
            .spawn(async move {
                let _permit = ctx.job.permit().await;
                ctx.status.started(&target.name);
                let report = job::upload(&ctx.job, &target).await;
                for event in ctx.status.pass_finished(&target.name, &report, Utc::now()) {
                    ctx.notifier.send(event);
                }
                false
            })
            .id()
    }
}

/// Runs until `shutdown` completes, then drains as described in the module doc. Errors are
/// start-up problems (the HTTP port, alert settings).
// Long: the event loop's state (tasks, running targets, timers) lives in its locals; each step
// it takes is a function (start, Rediscovery::pass, Ctx::spawn_*, drain).
pub async fn run(
    job: Arc<Context>,
    drill: crate::drill::Context,
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let config = &settings.daemon;
    let Started {
        status,
        mut triggers,
        notifier,
        drills,
        mut drill_triggers,
    } = start(&job, &settings).await?;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let coordination =
        coordination::Coordination::new(&job, &settings.coordination, config.backup_timeout)
            .map(Arc::new);
    // A run never outlives its lease: with no backup_timeout, the lease's length bounds it.
    let lease = settings.coordination.lease_for(config.backup_timeout);
    let timeout = match (config.backup_timeout, &coordination) {
        (0, Some(_)) => Some(lease * 9 / 10),
        (0, None) => None,
        (t, _) => Some(Duration::from_secs(t)),
    };
    let ctx = Ctx {
        job: job.clone(),
        timeout,
        coordination,
        status: status.clone(),
        notifier: notifier.clone(),
        drill,
        drills: drills.clone(),
        stop,
    };
    let mut drill_scheduler = Scheduler::new(config.jitter, scheduler::MissedRuns::Skip);
    let started_at = Utc::now();
    let stale_after = (settings.alerts.stale_after > 0)
        .then(|| chrono::Duration::seconds(settings.alerts.stale_after as i64));
    let mut scheduler = Scheduler::new(config.jitter, config.missed_runs);
    // Running backups by task, so a task that panics still frees its target.
    let mut running: HashMap<tokio::task::Id, String> = HashMap::new();
    let mut tasks: Tasks = JoinSet::new();
    let retry_after = (config.retry_after > 0)
        .then(|| chrono::Duration::seconds(config.retry_after.min(MAX_SECONDS) as i64));
    let discovery_every = Duration::from_secs(config.discovery_interval);
    let mut rediscovery = Rediscovery {
        every: discovery_every,
        last_skips: BTreeMap::new(),
        failures: 0,
    };
    let mut next_discovery = tokio::time::Instant::now();
    let upload_every = Duration::from_secs(config.upload_retry_interval.max(1));
    // The first pass waits for one discovery interval, so that start-up backups go first.
    let mut next_upload = tokio::time::Instant::now() + discovery_every;
    let (event_tx, mut events) = tokio::sync::mpsc::channel::<()>(1);
    tokio::spawn(watch_events(job.docker.clone(), event_tx));
    tokio::pin!(shutdown);
    tracing::info!(backup_dir = %job.backup.backup_dir.display(), zone = %job.schedule.zone(), "stowage daemon started");

    loop {
        if tokio::time::Instant::now() >= next_discovery {
            let wait = rediscovery
                .pass(&job, &mut scheduler, &status, &notifier)
                .await;
            next_discovery = tokio::time::Instant::now() + wait;
            drill_scheduler.update(Drills::targets(scheduler.slots()), Utc::now(), |_| None);
            drills.set_targets(scheduler.slots(), &drill_scheduler);
        }
        if let Ok(free) = crate::local::space::free_bytes(&job.backup.backup_dir) {
            status
                .metrics
                .free_bytes
                .set(i64::try_from(free).unwrap_or(i64::MAX));
        }
        let busy: HashSet<String> = running.values().cloned().collect();
        let due = scheduler.take_due_for(Utc::now(), &busy);
        if !due.is_empty() {
            status.set_targets(scheduler.slots(), |_| None);
        }
        for d in due {
            let name = d.target.name.clone();
            running.insert(ctx.spawn_backup(&mut tasks, d.target, d.scheduled), name);
        }
        // Drills are tracked as `drill:NAME`: a drill and a backup of one target may overlap
        // (a drill reads a committed artifact), two drills of one target may not.
        let drilling: HashSet<String> = running
            .values()
            .filter_map(|r| r.strip_prefix(DRILL_PREFIX).map(str::to_string))
            .collect();
        let due_drills = drill_scheduler.take_due(Utc::now(), &drilling);
        if !due_drills.is_empty() {
            drills.set_targets(scheduler.slots(), &drill_scheduler);
        }
        for target in due_drills {
            let key = format!("{DRILL_PREFIX}{}", target.name);
            running.insert(ctx.spawn_drill(&mut tasks, target), key);
        }
        if tokio::time::Instant::now() >= next_upload {
            next_upload = tokio::time::Instant::now() + upload_every;
            for (name, slot) in scheduler.slots() {
                if slot.target.storages.is_empty() || running.values().any(|r| r == name) {
                    continue;
                }
                running.insert(
                    ctx.spawn_upload(&mut tasks, slot.target.clone()),
                    name.clone(),
                );
            }
        }
        if let Some(window) = stale_after {
            for event in status.stale(Utc::now(), window, started_at) {
                tracing::warn!(target = %event.target, "{}", event.message);
                notifier.send(event);
            }
        }
        let next_due = [scheduler.next_wake(), drill_scheduler.next_wake()]
            .into_iter()
            .flatten()
            .min()
            .map(|t| (t - Utc::now()).to_std().unwrap_or_default());
        let until_discovery = next_discovery
            .min(next_upload)
            .saturating_duration_since(tokio::time::Instant::now());
        // Wake at least every minute, for the staleness check.
        let wait = next_due
            .map_or(until_discovery, |d| d.min(until_discovery))
            .min(Duration::from_secs(60));
        tokio::select! {
            _ = &mut shutdown => break,
            Some(()) = events.recv() => {
                // A container started, stopped or went away: re-plan soon (debounced, so a
                // compose project starting ten containers causes one re-plan).
                let soon = tokio::time::Instant::now() + EVENT_DEBOUNCE;
                next_discovery = next_discovery.min(soon);
            }
            Some(name) = triggers.recv() => {
                let busy: HashSet<String> = running.values().cloned().collect();
                match scheduler.run_now(&name, &busy) {
                    Some(target) => {
                        tracing::info!(target = %name, "backup requested (API or status page)");
                        running.insert(ctx.spawn_backup(&mut tasks, target, None), name);
                    }
                    None => tracing::warn!(target = %name, "requested backup not started: the target is running or gone"),
                }
            }
            Some(name) = drill_triggers.recv() => {
                let key = format!("{DRILL_PREFIX}{name}");
                match scheduler.slots().get(&name) {
                    Some(slot) if !running.values().any(|r| *r == key) => {
                        tracing::info!(target = %name, "drill requested through the API");
                        running.insert(ctx.spawn_drill(&mut tasks, slot.target.clone()), key);
                    }
                    _ => tracing::warn!(target = %name, "requested drill not started: a drill of the target is running, or it is gone"),
                }
            }
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let (id, retry) = match done {
                    Ok((id, retry)) => (id, retry),
                    Err(e) => {
                        tracing::error!(target = ?running.get(&e.id()), "backup task failed: {e}");
                        (e.id(), false)
                    }
                };
                if let (Some(name), true, Some(after)) = (running.remove(&id), retry, retry_after) {
                    let at = Utc::now() + after;
                    if scheduler.retry(&name, at) {
                        tracing::info!(target = %name, retry_at = %at.to_rfc3339(), "the failure looks temporary: trying once more");
                        status.set_targets(scheduler.slots(), |_| None);
                    }
                }
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }

    // Drills stop at once and remove their containers; backups get the grace period.
    let _ = stop_tx.send(true);
    drain(&mut tasks, Duration::from_secs(config.shutdown_grace)).await;
    tracing::info!("stowage daemon stopped");
    Ok(())
}

/// The key of a running drill in the loop's map of running tasks.
const DRILL_PREFIX: &str = "drill:";
