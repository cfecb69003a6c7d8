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

use crate::alerts::Notifier;
use crate::backup::{self, Options};
use crate::config::Config;
use crate::discovery;
use crate::engine::Registry;
use crate::http;
use crate::metrics::Metrics;
use crate::plan::{self, Entry, Target};
use crate::scheduler::{Change, Scheduler};
use crate::status::Status;

/// What every spawned run needs.
#[derive(Clone)]
struct Ctx {
    docker: Docker,
    opts: Options,
    permits: Arc<Semaphore>,
    timeout: Option<Duration>,
    status: Arc<Status>,
    notifier: Notifier,
}

impl Ctx {
    /// Waits for one of the `daemon.max_concurrent` slots.
    async fn permit(&self) -> tokio::sync::OwnedSemaphorePermit {
        self.permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// Starts a backup of `target` as a task; its results go to the status, the metrics, the
    /// alerts and the ping URL.
    fn spawn_backup(&self, tasks: &mut JoinSet<()>, target: Arc<Target>) -> tokio::task::Id {
        let ctx = self.clone();
        tasks
            .spawn(async move {
                let _permit = ctx.permit().await;
                let ping = ctx.status.started(&target.name);
                if let Some(url) = &ping {
                    ctx.notifier.ping(&target.name, url, "/start");
                }
                let run = backup::backup_target(&ctx.docker, &target, &ctx.opts);
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
                let ok = run
                    .as_ref()
                    .is_some_and(|r| r.backups.iter().all(Result::is_ok));
                if let Some(url) = &ping {
                    ctx.notifier.ping(&target.name, url, if ok { "" } else { "/fail" });
                }
                for event in ctx.status.finished(&target.name, run.as_ref(), Utc::now()) {
                    ctx.notifier.send(event);
                }
            })
            .id()
    }

    /// Starts an upload pass of `target` as a task.
    fn spawn_upload(&self, tasks: &mut JoinSet<()>, target: Arc<Target>) -> tokio::task::Id {
        let ctx = self.clone();
        tasks
            .spawn(async move {
                let _permit = ctx.permit().await;
                ctx.status.started(&target.name);
                let report = backup::replicate_target(&target, &ctx.opts).await;
                ctx.status.metrics.record_replication(&report);
                ctx.status.pass_finished(&target.name);
            })
            .id()
    }
}

/// Runs until `shutdown` completes, then drains as described in the module doc. Errors are
/// start-up problems (the HTTP port, alert settings).
pub async fn run(
    docker: Docker,
    config: Config,
    registry: Registry,
    opts: Options,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    let default_schedule = config.default_schedule().map_err(|e| e.to_string())?;
    let metrics = Metrics::new();
    for remote in opts.storages.all() {
        metrics.add_storage(&remote.name);
    }
    let (status, mut triggers) = Status::new(metrics.clone(), config.instance.clone());
    let status = Arc::new(status);
    let notifier = Notifier::new(&config.alerts, metrics)
        .map_err(|e| format!("invalid configuration: {e}"))?;
    if !config.http.listen.is_empty() {
        http::serve(
            &config.http.listen,
            config.http.token.clone(),
            status.clone(),
            opts.backup_dir.clone(),
        )
        .await
        .map_err(|e| format!("cannot listen on {} (http.listen): {e}", config.http.listen))?;
    }
    let ctx = Ctx {
        docker: docker.clone(),
        opts: opts.clone(),
        permits: Arc::new(Semaphore::new(config.daemon.max_concurrent)),
        timeout: (config.daemon.backup_timeout > 0)
            .then(|| Duration::from_secs(config.daemon.backup_timeout)),
        status: status.clone(),
        notifier: notifier.clone(),
    };
    let started_at = Utc::now();
    let stale_after = (config.alerts.stale_after > 0)
        .then(|| chrono::Duration::seconds(config.alerts.stale_after as i64));
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
    let (event_tx, mut events) = tokio::sync::mpsc::channel::<()>(1);
    tokio::spawn(watch_events(docker.clone(), event_tx));
    let mut failed_discoveries = 0u32;
    tokio::pin!(shutdown);
    tracing::info!(backup_dir = %opts.backup_dir.display(), zone = %default_schedule.zone(), "stowage daemon started");

    loop {
        if tokio::time::Instant::now() >= next_discovery {
            next_discovery = tokio::time::Instant::now() + discovery_every;
            match discovery::labelled_containers(&docker, config.instance.as_deref()).await {
                Ok(containers) => {
                    if failed_discoveries > 0 {
                        tracing::info!("the Docker engine answers again; resuming");
                    }
                    failed_discoveries = 0;
                    status.set_docker(Ok(()));
                    let defaults = plan::Defaults {
                        registry: &registry,
                        schedule: &default_schedule,
                        encryption: opts.encryption.is_some(),
                        retention: &config.retention,
                        storages: &opts.storages,
                    };
                    let entries = plan::plan(&containers, &defaults);
                    let targets = log_skips(&mut last_skips, entries);
                    let last = last_backups(&scheduler, &targets, &opts).await;
                    let newest = |name: &str| last.get(name).copied();
                    let changes = scheduler.update(targets, Utc::now(), newest);
                    log_changes(&scheduler, &changes);
                    status.set_targets(scheduler.slots(), newest);
                }
                Err(e) => {
                    // Back off 1, 2, 4 … seconds, up to the discovery interval.
                    failed_discoveries = failed_discoveries.saturating_add(1);
                    let backoff =
                        Duration::from_secs(1 << failed_discoveries.min(10)).min(discovery_every);
                    next_discovery = tokio::time::Instant::now() + backoff;
                    status.set_docker(Err(e.to_string()));
                    tracing::error!(
                        "{e}; not ready. Keeping the previous targets (their backups fail while the engine is away) and trying again in {}s",
                        backoff.as_secs()
                    );
                }
            }
        }
        let busy: HashSet<String> = running.values().cloned().collect();
        let due = scheduler.take_due(Utc::now(), &busy);
        if !due.is_empty() {
            status.set_targets(scheduler.slots(), |_| None);
        }
        for target in due {
            let name = target.name.clone();
            running.insert(ctx.spawn_backup(&mut tasks, target), name);
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
        let next_due = scheduler
            .next_wake()
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
                        tracing::info!(target = %name, "backup requested through the API");
                        running.insert(ctx.spawn_backup(&mut tasks, target), name);
                    }
                    None => tracing::warn!(target = %name, "requested backup not started: the target is running or gone"),
                }
            }
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
    Ok(())
}

/// How long after a container event the daemon re-plans.
const EVENT_DEBOUNCE: Duration = Duration::from_secs(2);

/// Follows the engine's container events and signals each start, stop or removal. Polling
/// discovery remains the safety net: if the event stream breaks, it is reopened with backoff.
async fn watch_events(docker: Docker, tx: tokio::sync::mpsc::Sender<()>) {
    use bollard::query_parameters::EventsOptions;
    use futures_util::StreamExt;
    let mut backoff = Duration::from_secs(1);
    loop {
        let filters = std::collections::HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            (
                "event".to_string(),
                ["start", "die", "destroy", "rename"]
                    .map(String::from)
                    .to_vec(),
            ),
        ]);
        let mut stream = docker.events(Some(EventsOptions {
            filters: Some(filters),
            ..Default::default()
        }));
        while let Some(item) = stream.next().await {
            match item {
                Ok(_) => {
                    backoff = Duration::from_secs(1);
                    // A full channel already means "re-plan soon".
                    let _ = tx.try_send(());
                }
                Err(e) => {
                    tracing::debug!("the Docker event stream broke: {e}");
                    break;
                }
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
}

/// When the last backup of each target new to the scheduler was started, for the missed-run
/// policy and staleness: its newest local artifact, else (for a target with storages, as in
/// remote-only mode) its newest complete remote copy. Targets already scheduled are not looked
/// up again, so the storages are listed once per target, in practice at start-up.
async fn last_backups(
    scheduler: &Scheduler,
    targets: &[Arc<Target>],
    opts: &Options,
) -> HashMap<String, DateTime<Utc>> {
    let mut out = HashMap::new();
    for t in targets {
        if scheduler.slots().contains_key(&t.name) {
            continue;
        }
        let mut last = crate::catalog::newest(&opts.backup_dir, &t.name);
        if last.is_none() && !t.storages.is_empty() {
            let remotes: Vec<_> = t
                .storages
                .iter()
                .filter_map(|s| opts.storages.get(s).cloned())
                .collect();
            last = crate::replicate::newest_remote(&remotes, &t.name).await;
            if let Some(at) = last {
                tracing::debug!(target = %t.name, newest = %at, "the newest copy is in storage");
            }
        }
        if let Some(at) = last {
            out.insert(t.name.clone(), at);
        }
    }
    out
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
