//! Re-discovery and re-planning: list the labelled containers, plan them, and bring the
//! scheduler and the status up to date; while the engine is away, back off 1, 2, 4 … seconds.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::scheduler::{Change, Scheduler};
use super::status::Status;
use crate::job::Context;
use crate::plan::{Entry, Target};

/// Re-discovery: the last skip reasons (to log only changes) and the failures in a row (for
/// the backoff while the engine is away).
pub(super) struct Rediscovery {
    pub(super) every: Duration,
    pub(super) last_skips: BTreeMap<String, String>,
    pub(super) failures: u32,
}

impl Rediscovery {
    /// Lists and plans, updates the schedule and the status; returns how long to wait
    /// before the next look (the interval, or 1, 2, 4 … seconds while the engine is away).
    pub(super) async fn pass(
        &mut self,
        job: &Context,
        scheduler: &mut Scheduler,
        status: &Status,
        notifier: &super::alerts::Notifier,
    ) -> Duration {
        match job.discover_and_plan().await {
            Ok(entries) => {
                if self.failures > 0 {
                    tracing::info!("the Docker engine answers again; resuming");
                }
                self.failures = 0;
                status.set_docker(Ok(()));
                let targets = log_skips(&mut self.last_skips, entries);
                let last = last_backups(scheduler, &targets, job).await;
                let newest = |name: &str| last.get(name).copied();
                let changes = scheduler.update(targets, Utc::now(), newest);
                log_changes(scheduler, &changes);
                status.set_targets(scheduler.slots(), newest);
                notifier.set_targets(scheduler.slots().values().map(|s| &*s.target));
                self.every
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                let backoff = Duration::from_secs(1 << self.failures.min(10)).min(self.every);
                status.set_docker(Err(&e));
                tracing::error!(
                    temporary = crate::error::Temporary::is_temporary(&e),
                    "{e}; not ready. Keeping the previous targets (their backups fail while the engine is away) and trying again in {}s",
                    backoff.as_secs()
                );
                backoff
            }
        }
    }
}

/// When the last backup of each target new to the scheduler was started, for the missed-run
/// policy and staleness: its newest local artifact, else (for a target with storages, as in
/// remote-only mode) its newest complete remote copy. Targets already scheduled are not looked
/// up again, so the storages are listed once per target, in practice at start-up.
async fn last_backups(
    scheduler: &Scheduler,
    targets: &[Arc<Target>],
    job: &Context,
) -> HashMap<String, DateTime<Utc>> {
    let mut out = HashMap::new();
    for t in targets {
        if scheduler.slots().contains_key(&t.name) {
            continue;
        }
        let mut last = crate::local::catalog::newest(&job.backup.backup_dir, &t.name);
        if last.is_none() && !t.storages.is_empty() {
            let remotes: Vec<_> = t
                .storages
                .iter()
                .filter_map(|s| job.storages.get(s).cloned())
                .collect();
            last = crate::remote::copies::newest(&remotes, &t.name).await;
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
