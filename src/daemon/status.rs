//! What the daemon knows about its targets right now, shared with the HTTP server: targets
//! with their last results, readiness, and the metrics. It also turns results into alert
//! events (failure, recovery, stale), so that the rules for when to alert live in one place.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::alerts::{Event, Kind};
use super::metrics::Metrics;
use super::scheduler::Slot;
pub use super::view::TargetView;
use crate::discover::DiscoveryError;
use crate::error::Temporary;
use crate::job::TargetRun;
use crate::remote::replicate::Report;

/// The reason class of a failed upload pass.
pub const UPLOAD: &str = "upload";

/// A failed run, as the status and the alerts see it.
#[derive(Debug, Clone)]
struct Failed {
    /// The reason class (a metric label value).
    reason: String,
    /// The whole error, on one line.
    message: String,
    /// Whether a retry may help.
    temporary: bool,
}

/// An upload pass's failure, if it had any: the first error, and how many there were.
fn upload_failure(report: &Report) -> Option<Failed> {
    let first = report.failures.first()?;
    let mut message = crate::error_text::one_line(first);
    if report.failures.len() > 1 {
        message.push_str(&format!(" (and {} more)", report.failures.len() - 1));
    }
    message.push_str(". The local copies are kept; the upload is retried on the next pass");
    Some(Failed {
        reason: UPLOAD.into(),
        message,
        temporary: report.failures.iter().all(Temporary::is_temporary),
    })
}

/// Why the daemon is not ready (for `/readyz`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct NotReady(String);

/// A manual trigger that could not be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerError {
    /// No such target.
    Unknown,
    /// It is running already.
    Running,
    /// The daemon is shutting down.
    Closed,
}

/// The shared state.
#[derive(Debug)]
pub struct Status {
    inner: Mutex<Inner>,
    /// The process's metrics.
    pub metrics: Metrics,
    trigger: mpsc::Sender<String>,
    instance: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    targets: BTreeMap<String, TargetView>,
    /// `None` before the first look; then the engine's problem, if it had one.
    docker: Option<Option<String>>,
}

impl Status {
    /// New state; manual triggers arrive on the returned receiver.
    pub fn new(metrics: Metrics, instance: Option<String>) -> (Self, mpsc::Receiver<String>) {
        let (trigger, rx) = mpsc::channel(64);
        let status = Self {
            inner: Mutex::new(Inner::default()),
            metrics,
            trigger,
            instance,
        };
        (status, rx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Mirrors the scheduler's targets. `last_backup(name)` seeds the last success of a
    /// target seen for the first time (from its newest artifact).
    pub fn set_targets(
        &self,
        slots: &BTreeMap<String, Slot>,
        last_backup: impl Fn(&str) -> Option<DateTime<Utc>>,
    ) {
        let mut inner = self.lock();
        inner.targets.retain(|name, _| {
            let keep = slots.contains_key(name);
            if !keep {
                self.metrics.remove_target(name);
            }
            keep
        });
        for (name, slot) in slots {
            let view = inner.targets.entry(name.clone()).or_insert_with(|| {
                let last_success = last_backup(name);
                if let Some(at) = last_success {
                    self.metrics
                        .last_success
                        .with_label_values(&[name])
                        .set(at.timestamp() as f64);
                }
                TargetView::new(name, last_success)
            });
            view.update(slot);
            match slot.due {
                Some(at) => self
                    .metrics
                    .next_run
                    .with_label_values(&[name])
                    .set(at.timestamp() as f64),
                None => {
                    let _ = self.metrics.next_run.remove_label_values(&[name]);
                }
            }
        }
        self.metrics.targets.set(inner.targets.len() as i64);
    }

    /// A backup or upload pass of `name` started; returns its ping URL, if any. The running
    /// gauge counts runs, not views: a target removed while it runs still ends its run.
    pub fn started(&self, name: &str) -> Option<String> {
        self.metrics.running.inc();
        let mut inner = self.lock();
        let view = inner.targets.get_mut(name)?;
        view.running = true;
        view.ping_url.clone()
    }

    /// An upload pass ended. A failed upload (or a storage that cannot be listed) fails the
    /// target like a failed backup: last result, last error, failure metric, alert. The first
    /// clean pass after that is a recovery.
    pub fn pass_finished(&self, name: &str, report: &Report, now: DateTime<Utc>) -> Vec<Event> {
        self.metrics.running.dec();
        self.metrics.record_replication(report);
        let failure = upload_failure(report);
        let mut inner = self.lock();
        let Some(view) = inner.targets.get_mut(name) else {
            return vec![];
        };
        view.running = false;
        let upload_was_failing = view
            .last_error
            .as_ref()
            .is_some_and(|(reason, _)| reason == UPLOAD);
        match failure {
            Some(f) => self.fail(view, f, now),
            None if upload_was_failing => self.succeed(view, None, now, "uploads work again"),
            None => vec![],
        }
    }

    /// A backup ended (`None`: it timed out). Records metrics and returns the alerts due.
    pub fn finished(&self, name: &str, run: Option<&TargetRun>, now: DateTime<Utc>) -> Vec<Event> {
        self.metrics.running.dec();
        let failure = self.record(name, run);
        let mut inner = self.lock();
        let Some(view) = inner.targets.get_mut(name) else {
            return vec![];
        };
        view.running = false;
        // The dumps succeeded even when an upload then failed: that is a backup made.
        let backed_up = run.is_some_and(TargetRun::all_ok).then_some(now);
        match failure {
            Some(f) => {
                if let Some(at) = backed_up {
                    self.backed_up(view, at);
                }
                self.fail(view, f, now)
            }
            None => {
                let mut events = self.succeed(view, backed_up, now, "the backup succeeded again");
                if let Some(at) = backed_up {
                    events.push(Event::success(
                        &view.name,
                        &view.container,
                        &view.engine,
                        at,
                        self.instance.clone(),
                    ));
                }
                events
            }
        }
    }

    /// Another daemon backed `name` up (coordination): staleness counts from `at`.
    pub fn covered(&self, name: &str, at: DateTime<Utc>) {
        let mut inner = self.lock();
        if let Some(view) = inner.targets.get_mut(name) {
            self.backed_up(view, at);
        }
    }

    /// Records a successful backup's time.
    fn backed_up(&self, view: &mut TargetView, at: DateTime<Utc>) {
        self.metrics
            .last_success
            .with_label_values(&[&view.name])
            .set(at.timestamp() as f64);
        view.last_success = Some(at);
        view.stale_alerted = false;
    }

    /// A failure: result, error, metric, and the alert.
    fn fail(&self, view: &mut TargetView, f: Failed, now: DateTime<Utc>) -> Vec<Event> {
        let m = &self.metrics;
        m.last_result.with_label_values(&[&view.name]).set(0.0);
        m.failures.with_label_values(&[&view.name, &f.reason]).inc();
        view.last_result = Some("failed");
        view.last_error = Some((f.reason.clone(), f.message.clone()));
        vec![self.event(
            view,
            Kind::Failure,
            Some(f.reason),
            Some(f.temporary),
            f.message,
            now,
        )]
    }

    /// A success (with the backup's time, for a backup): a recovery after a failure.
    fn succeed(
        &self,
        view: &mut TargetView,
        backed_up: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        recovery: &str,
    ) -> Vec<Event> {
        let recovered = view.last_result == Some("failed");
        self.metrics
            .last_result
            .with_label_values(&[&view.name])
            .set(1.0);
        let previous = view.last_success;
        if let Some(at) = backed_up {
            self.backed_up(view, at);
        }
        view.last_result = Some("ok");
        view.last_error = None;
        if !recovered {
            return vec![];
        }
        let mut event = self.event(view, Kind::Recovery, None, None, recovery.into(), now);
        event.last_success = previous;
        vec![event]
    }

    /// An event about `view`'s target.
    fn event(
        &self,
        view: &TargetView,
        kind: Kind,
        reason: Option<String>,
        temporary: Option<bool>,
        message: String,
        now: DateTime<Utc>,
    ) -> Event {
        Event {
            event: kind,
            target: view.name.clone(),
            container: view.container.clone(),
            engine: view.engine.clone(),
            time: now,
            reason,
            temporary,
            message,
            last_success: view.last_success,
            instance: self.instance.clone(),
            stowage_version: env!("CARGO_PKG_VERSION"),
        }
    }

    /// Records a run's metrics; returns its first failure: a backup's, else an upload's.
    fn record(&self, name: &str, run: Option<&TargetRun>) -> Option<Failed> {
        let m = &self.metrics;
        let mut failure: Option<Failed> = None;
        match run {
            None => {
                failure = Some(Failed {
                    reason: "timeout".into(),
                    message: "the backup timed out and was aborted".into(),
                    temporary: true,
                })
            }
            Some(run) => {
                for r in &run.backups {
                    match r {
                        Ok(o) => {
                            let secs = (o.manifest.finished_at - o.manifest.started_at)
                                .num_milliseconds() as f64
                                / 1000.0;
                            m.duration.with_label_values(&[name]).observe(secs);
                            m.raw_bytes
                                .with_label_values(&[name])
                                .set(o.manifest.raw.bytes as f64);
                            m.stored_bytes
                                .with_label_values(&[name])
                                .set(o.manifest.stored.bytes as f64);
                        }
                        Err(e) => {
                            failure.get_or_insert(Failed {
                                reason: e.reason_class().to_string(),
                                message: crate::error_text::one_line(e),
                                temporary: e.is_temporary(),
                            });
                        }
                    }
                }
                if let Some(rep) = &run.replication {
                    m.record_replication(rep);
                    if failure.is_none() {
                        failure = upload_failure(rep);
                    }
                }
                if let Some(local) = &run.local_retention {
                    match local {
                        Ok(n) => m
                            .retention_deleted
                            .with_label_values(&["local"])
                            .inc_by(*n as u64),
                        Err(_) => m.retention_errors.with_label_values(&["local"]).inc(),
                    }
                }
            }
        }
        failure
    }

    /// Targets with no success for `window` (since their last success, or since `since`
    /// when there never was one); each is reported once until it succeeds again.
    pub fn stale(
        &self,
        now: DateTime<Utc>,
        window: chrono::Duration,
        since: DateTime<Utc>,
    ) -> Vec<Event> {
        let mut inner = self.lock();
        let mut out = Vec::new();
        for view in inner.targets.values_mut() {
            let reference = view.last_success.unwrap_or(since);
            if view.stale_alerted || now - reference < window {
                continue;
            }
            view.stale_alerted = true;
            out.push(Event {
                event: Kind::Stale,
                target: view.name.clone(),
                container: view.container.clone(),
                engine: view.engine.clone(),
                time: now,
                reason: None,
                temporary: None,
                message: format!(
                    "no successful backup for more than {} hours",
                    window.num_hours()
                ),
                last_success: view.last_success,
                instance: self.instance.clone(),
                stowage_version: env!("CARGO_PKG_VERSION"),
            });
        }
        out
    }

    /// Whether the Docker engine answered at the last look (`Err`: why not).
    pub fn set_docker(&self, result: Result<(), &DiscoveryError>) {
        self.metrics.docker_up.set(i64::from(result.is_ok()));
        let problem = result.err().map(|e| crate::error_text::one_line(e));
        self.lock().docker = Some(problem);
    }

    /// Ready: Docker answered at the last look.
    pub fn ready(&self) -> Result<(), NotReady> {
        match &self.lock().docker {
            Some(None) => Ok(()),
            Some(Some(problem)) => Err(NotReady(problem.clone())),
            None => Err(NotReady(
                "starting: the Docker engine has not been reached yet".into(),
            )),
        }
    }

    /// The targets, for the API.
    pub fn targets(&self) -> Vec<TargetView> {
        self.lock().targets.values().cloned().collect()
    }

    /// Asks the daemon to back `name` up now.
    pub fn trigger(&self, name: &str) -> Result<(), TriggerError> {
        let running = self.lock().targets.get(name).map(|v| v.running);
        queue(&self.trigger, name, running)
    }
}

/// Queues a manual run of `name` on `tx`: `running` is whether a run of it is under way, `None`
/// for an unknown target.
pub(super) fn queue(
    tx: &mpsc::Sender<String>,
    name: &str,
    running: Option<bool>,
) -> Result<(), TriggerError> {
    match running {
        None => Err(TriggerError::Unknown),
        Some(true) => Err(TriggerError::Running),
        Some(false) => tx
            .try_send(name.to_string())
            .map_err(|_| TriggerError::Closed),
    }
}
