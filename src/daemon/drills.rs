//! The daemon's restore drills: which targets are drilled when (a second [`Scheduler`] fed
//! with each target's drill schedule), what the last drill of each found (for the API,
//! seeded from the drill records at start), drill metrics and the drill alert events, and
//! drills asked for through the API.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::mpsc;

use super::alerts::Event;
use super::metrics::Metrics;
use super::scheduler::{Scheduler, Slot};
use super::status::TriggerError;
use crate::drill::Drilled;
use crate::drill::record::{self, Outcome, Record};
use crate::plan::Target;

/// One target's drills, as the API shows them.
#[derive(Debug, Clone, Serialize)]
pub struct DrillView {
    /// Target name.
    pub target: String,
    /// Its drill schedule (cron).
    pub schedule: String,
    /// When it is drilled next.
    pub next_drill: Option<DateTime<Utc>>,
    /// Whether a drill runs now.
    pub running: bool,
    /// The last drill of each database (newest first), from this process or the records.
    pub last: Vec<Record>,
}

/// The daemon's drill state, shared with the HTTP server.
#[derive(Debug)]
pub struct Drills {
    views: Mutex<BTreeMap<String, DrillView>>,
    metrics: Metrics,
    backup_dir: PathBuf,
    trigger: mpsc::Sender<String>,
    instance: Option<String>,
}

impl Drills {
    /// New state; drills asked for through the API arrive on the returned receiver.
    pub fn new(
        metrics: Metrics,
        backup_dir: PathBuf,
        instance: Option<String>,
    ) -> (Self, mpsc::Receiver<String>) {
        let (trigger, rx) = mpsc::channel(64);
        let drills = Self {
            views: Mutex::new(BTreeMap::new()),
            metrics,
            backup_dir,
            trigger,
            instance,
        };
        (drills, rx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, DrillView>> {
        self.views.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The targets to drill, each with its drill schedule in place of its backup schedule
    /// (targets whose drills are off are left out), for the drill scheduler.
    pub fn targets(backup_slots: &BTreeMap<String, Slot>) -> Vec<Arc<Target>> {
        backup_slots
            .values()
            .filter_map(|s| {
                let schedule = s.target.drill.clone()?;
                Some(Arc::new(Target {
                    schedule,
                    ..(*s.target).clone()
                }))
            })
            .collect()
    }

    /// Mirrors the targets (every one can be drilled on request) and the drill scheduler's
    /// times; a target seen for the first time gets its last drills from the records (and the
    /// last-success metric from them).
    pub fn set_targets(&self, targets: &BTreeMap<String, Slot>, scheduler: &Scheduler) {
        let mut views = self.lock();
        views.retain(|name, _| targets.contains_key(name));
        for name in targets.keys() {
            let view = views.entry(name.clone()).or_insert_with(|| {
                self.metrics.drill_failures.with_label_values(&[name]);
                let last = latest_per_database(record::all(&self.backup_dir, name));
                if let Some(newest) = last.iter().find(|r| r.outcome != Outcome::Skipped) {
                    let passed = newest.outcome == Outcome::Passed;
                    self.metrics
                        .drill_last_result
                        .with_label_values(&[name])
                        .set(f64::from(u8::from(passed)));
                }
                if let Some(at) = last
                    .iter()
                    .filter(|r| r.outcome == Outcome::Passed)
                    .map(Record::ended_timestamp)
                    .reduce(f64::max)
                {
                    self.metrics
                        .drill_last_success
                        .with_label_values(&[name])
                        .set(at);
                }
                DrillView {
                    target: name.clone(),
                    schedule: String::new(),
                    next_drill: None,
                    running: false,
                    last,
                }
            });
            let slot = scheduler.slots().get(name);
            view.schedule = slot.map_or("off".into(), |s| s.target.schedule.as_str().to_string());
            view.next_drill = slot.and_then(|s| s.due);
        }
    }

    /// A drill of `name` started.
    pub fn started(&self, name: &str) {
        if let Some(v) = self.lock().get_mut(name) {
            v.running = true;
        }
    }

    /// A drill of `target` ended: metrics, the view, and the alert events due (a failure, or
    /// a pass after a failure).
    pub fn finished(&self, target: &Target, drilled: &[Drilled]) -> Vec<Event> {
        let name = &target.name;
        let m = &self.metrics;
        let mut events = Vec::new();
        for d in drilled {
            let r = &d.record;
            match r.outcome {
                Outcome::Passed => {
                    m.drill_last_success
                        .with_label_values(&[name])
                        .set(r.ended_timestamp());
                    m.drill_last_result.with_label_values(&[name]).set(1.0);
                }
                Outcome::Failed => {
                    m.drill_failures.with_label_values(&[name]).inc();
                    m.drill_last_result.with_label_values(&[name]).set(0.0);
                }
                Outcome::Skipped => continue,
            }
            m.drill_duration
                .with_label_values(&[name])
                .set(r.duration_seconds);
            events.extend(Event::drill(
                d,
                &target.container.name,
                self.instance.clone(),
            ));
        }
        if let Some(v) = self.lock().get_mut(name) {
            v.running = false;
            let mut last: Vec<Record> = drilled.iter().map(|d| d.record.clone()).collect();
            last.append(&mut v.last);
            v.last = latest_per_database(last);
        }
        events
    }

    /// Every drilled target, for the API.
    pub fn views(&self) -> Vec<DrillView> {
        self.lock().values().cloned().collect()
    }

    /// Asks the daemon to drill `name` now.
    pub fn trigger(&self, name: &str) -> Result<(), TriggerError> {
        let running = self.lock().get(name).map(|v| v.running);
        super::status::queue(&self.trigger, name, running)
    }
}

/// The newest record of each database, newest first; skipped drills count only when nothing
/// else is known.
fn latest_per_database(mut records: Vec<Record>) -> Vec<Record> {
    records.sort_by(|a, b| {
        (a.outcome == Outcome::Skipped)
            .cmp(&(b.outcome == Outcome::Skipped))
            .then(b.started_at.cmp(&a.started_at))
    });
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<Record> = records
        .into_iter()
        .filter(|r| seen.insert(r.database.clone()))
        .collect();
    out.sort_by_key(|r| std::cmp::Reverse(r.started_at));
    out
}
