//! The daemon's start and end: what the loop reports to (metrics, status, alert channels, the
//! HTTP server), the storages' health check and drill leftovers at start-up; draining running
//! tasks at shutdown.

use std::sync::Arc;
use std::time::Duration;

use super::alerts::Notifier;
use super::drills::Drills;
use super::metrics::Metrics;
use super::status::Status;
use super::{DaemonError, Settings, Tasks, http};
use crate::job::Context;

/// Checks that every storage answers (one LIST each), logs the result and sets
/// `stowage_storage_up`. A storage that does not answer is not fatal: its uploads fail,
/// are counted and retried.
async fn check_storages(job: &Context, metrics: &Metrics) {
    for remote in job.storages.all() {
        let up = match remote.health().await {
            Ok(()) => {
                tracing::info!(storage = %remote.name, "storage answers");
                true
            }
            Err(e) => {
                tracing::error!(storage = %remote.name, temporary = crate::error::Temporary::is_temporary(&e), "{}; uploads to it fail until this is fixed", crate::error_text::one_line(&e));
                false
            }
        };
        metrics
            .storage_up
            .with_label_values(&[&remote.name])
            .set(f64::from(u8::from(up)));
    }
}

/// What [`start`] starts.
pub(super) struct Started {
    pub(super) status: Arc<Status>,
    pub(super) triggers: tokio::sync::mpsc::Receiver<String>,
    pub(super) notifier: Notifier,
    pub(super) drills: Arc<Drills>,
    pub(super) drill_triggers: tokio::sync::mpsc::Receiver<String>,
}

/// Starts what the loop reports to: metrics, status, alert channels, the HTTP server (a
/// port that cannot be bound is fatal), and the storages' health check; removes drill
/// containers a killed stowage left behind.
pub(super) async fn start(job: &Context, settings: &Settings) -> Result<Started, DaemonError> {
    let metrics = Metrics::new();
    for remote in job.storages.all() {
        metrics.add_storage(&remote.name);
    }
    let (status, triggers) = Status::new(metrics.clone(), job.instance.clone());
    let status = Arc::new(status);
    let (drills, drill_triggers) = Drills::new(
        metrics.clone(),
        job.backup.backup_dir.clone(),
        job.instance.clone(),
    );
    let drills = Arc::new(drills);
    if let Err(e) =
        crate::drill::container::remove_leftovers(&job.docker, job.instance.as_deref()).await
    {
        tracing::warn!("could not look for drill containers left behind: {e}");
    }
    let notifier = Notifier::new(settings.channels.clone(), metrics.clone());
    let listen = &settings.http.listen;
    if !listen.is_empty() {
        let sources = crate::daemon::page::data::Sources::new(
            status.clone(),
            drills.clone(),
            job.backup.backup_dir.clone(),
            job.storages.clone(),
        );
        http::serve(&settings.http, sources)
            .await
            .map_err(|source| DaemonError::Listen {
                addr: listen.clone(),
                source,
            })?;
    }
    check_storages(job, &metrics).await;
    Ok(Started {
        status,
        triggers,
        notifier,
        drills,
        drill_triggers,
    })
}

/// Gives running tasks `grace` to finish, then aborts the rest (an aborted backup's temp file
/// is removed as its task drops).
pub(super) async fn drain(tasks: &mut Tasks, grace: Duration) {
    if tasks.is_empty() {
        return;
    }
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
