//! When the daemon runs each target: due times, jitter, the missed-run policy and "never two
//! runs of one target at once", as plain data driven by an explicit clock.
//!
//! Nothing here reads the clock or sleeps: every method takes `now`, so tests drive the
//! scheduler through days, DST changes and restarts in microseconds, and the daemon passes
//! `Utc::now()`. For each target the scheduler keeps the next *scheduled* time (from its cron
//! schedule, in the configured zone) and the *due* time, which adds the jitter. Jitter is a
//! fixed fraction of `jitter` per target and scheduled time (a hash of both), so targets on the
//! same schedule spread out, and the same run is not moved by a restart. After a run the next
//! time is computed from the schedule again, so jitter never accumulates.
//!
//! Missed runs (a scheduled time that passed while stowage was down, detected from the newest
//! artifact's time when a target is first seen): `skip` waits for the next scheduled time;
//! `run-once` runs it now, once, however many were missed.
//!
//! A run that failed for a temporary reason (see [`crate::error::Temporary`]) may be retried
//! once before the next scheduled time ([`Scheduler::retry`]); the next scheduled run is not
//! moved by it.

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use crate::plan::Target;

/// Retries of a failed run before its next scheduled time.
pub const MAX_RETRIES: u32 = 1;

/// What happens to runs missed while stowage was not running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MissedRuns {
    /// Wait for the next scheduled time.
    #[default]
    Skip,
    /// Run once right away if the last scheduled time has no backup after it.
    RunOnce,
}

/// One target's place in the schedule.
#[derive(Debug, Clone)]
pub struct Slot {
    /// The target as last planned.
    pub target: Arc<Target>,
    /// The scheduled time of the next run (cron), if any.
    pub scheduled: Option<DateTime<Utc>>,
    /// When it is actually started: `scheduled` plus jitter, now for a missed run, or a
    /// retry's time.
    pub due: Option<DateTime<Utc>>,
    /// Retries made since the last scheduled run.
    retries: u32,
    /// The scheduled time the last run was for (a retry is for the same one).
    last_for: Option<DateTime<Utc>>,
}

/// A run to start now, and the scheduled time it is for (`None`: no scheduled time applies).
#[derive(Debug, Clone)]
pub struct Due {
    /// The target.
    pub target: Arc<Target>,
    /// The cron time this run stands for: the time that came due, the last one passed for a
    /// catch-up run, the failed run's for a retry. Leases are taken per this time.
    pub scheduled: Option<DateTime<Utc>>,
}

/// The daemon's schedule.
#[derive(Debug)]
pub struct Scheduler {
    slots: BTreeMap<String, Slot>,
    jitter: Duration,
    missed: MissedRuns,
}

/// What [`Scheduler::update`] changed, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new target, with its first due time.
    Added(String, Option<DateTime<Utc>>),
    /// A new target whose last scheduled run was missed: it runs now.
    CatchUp(String),
    /// A target whose schedule changed.
    Rescheduled(String, Option<DateTime<Utc>>),
    /// A target that is gone.
    Removed(String),
}

impl Scheduler {
    /// An empty schedule. `jitter_secs` is the largest delay added to a scheduled time.
    pub fn new(jitter_secs: u64, missed: MissedRuns) -> Self {
        Self {
            slots: BTreeMap::new(),
            jitter: Duration::seconds(jitter_secs.min(i64::MAX as u64) as i64),
            missed,
        }
    }

    fn due_for(&self, name: &str, scheduled: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        let at = scheduled?;
        let range = self.jitter.num_seconds();
        if range <= 0 {
            return Some(at);
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (name, at.timestamp()).hash(&mut h);
        Some(at + Duration::seconds((h.finish() % range as u64) as i64))
    }

    /// Applies a new plan. `last_backup(name)` is the time of the target's newest artifact,
    /// for the missed-run policy.
    pub fn update(
        &mut self,
        targets: Vec<Arc<Target>>,
        now: DateTime<Utc>,
        last_backup: impl Fn(&str) -> Option<DateTime<Utc>>,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut seen = HashSet::new();
        for t in targets {
            seen.insert(t.name.clone());
            if let Some(slot) = self.slots.get_mut(&t.name) {
                let rescheduled = slot.target.schedule.as_str() != t.schedule.as_str()
                    || slot.target.schedule.zone() != t.schedule.zone();
                slot.target = t.clone();
                if rescheduled {
                    let scheduled = t.next_run(now);
                    let due = self.due_for(&t.name, scheduled);
                    let slot = self.slots.get_mut(&t.name).expect("present");
                    slot.scheduled = scheduled;
                    slot.due = due;
                    changes.push(Change::Rescheduled(t.name.clone(), due));
                }
                continue;
            }
            let scheduled = t.next_run(now);
            let missed = self.missed == MissedRuns::RunOnce
                && t.schedule
                    .prev_at_or_before(now)
                    .is_some_and(|prev| last_backup(&t.name).is_none_or(|last| last < prev));
            let due = if missed {
                changes.push(Change::CatchUp(t.name.clone()));
                Some(now)
            } else {
                let due = self.due_for(&t.name, scheduled);
                changes.push(Change::Added(t.name.clone(), due));
                due
            };
            self.slots.insert(
                t.name.clone(),
                Slot {
                    target: t,
                    scheduled,
                    due,
                    retries: 0,
                    last_for: None,
                },
            );
        }
        self.slots.retain(|name, _| {
            let keep = seen.contains(name);
            if !keep {
                changes.push(Change::Removed(name.clone()));
            }
            keep
        });
        changes
    }

    /// The targets due at `now` and not in `running`; each one's next run is scheduled from
    /// its cron schedule. A due target that is still running waits, and runs when it is free:
    /// one target never runs twice at once, and a long run does not pile up missed runs.
    pub fn take_due(&mut self, now: DateTime<Utc>, running: &HashSet<String>) -> Vec<Arc<Target>> {
        self.take_due_for(now, running)
            .into_iter()
            .map(|d| d.target)
            .collect()
    }

    /// As [`Scheduler::take_due`], with the scheduled time each run is for.
    pub fn take_due_for(&mut self, now: DateTime<Utc>, running: &HashSet<String>) -> Vec<Due> {
        let mut due = Vec::new();
        let names: Vec<String> = self.slots.keys().cloned().collect();
        for name in names {
            let slot = &self.slots[&name];
            if slot.due.is_none_or(|d| d > now) || running.contains(&name) {
                continue;
            }
            let target = slot.target.clone();
            let run_for = match slot.scheduled {
                Some(s) if s <= now => Some(s),
                _ if slot.retries > 0 => slot.last_for,
                _ => target.schedule.prev_at_or_before(now),
            };
            // A catch-up run or a retry leaves the next scheduled time as it was.
            let (scheduled, is_scheduled_run) = match slot.scheduled {
                Some(s) if s > now => (Some(s), false),
                _ => (target.next_run(now), true),
            };
            let next_due = self.due_for(&name, scheduled);
            let slot = self.slots.get_mut(&name).expect("present");
            slot.scheduled = scheduled;
            slot.due = next_due;
            slot.last_for = run_for;
            if is_scheduled_run {
                slot.retries = 0;
            }
            due.push(Due {
                target,
                scheduled: run_for,
            });
        }
        due
    }

    /// The target `name`, to run now (a manual trigger), unless it is unknown or in
    /// `running`. Its scheduled runs are not changed.
    pub fn run_now(&self, name: &str, running: &HashSet<String>) -> Option<Arc<Target>> {
        if running.contains(name) {
            return None;
        }
        self.slots.get(name).map(|s| s.target.clone())
    }

    /// Runs `name` again at `at` after a temporary failure, once per scheduled run, unless its
    /// next run comes sooner anyway. Returns whether a retry was scheduled.
    pub fn retry(&mut self, name: &str, at: DateTime<Utc>) -> bool {
        let Some(slot) = self.slots.get_mut(name) else {
            return false;
        };
        if slot.retries >= MAX_RETRIES || slot.due.is_some_and(|d| d <= at) {
            return false;
        }
        slot.retries += 1;
        slot.due = Some(at);
        true
    }

    /// The earliest due time of any target.
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        self.slots.values().filter_map(|s| s.due).min()
    }

    /// Every target's slot, by name.
    pub fn slots(&self) -> &BTreeMap<String, Slot> {
        &self.slots
    }
}

#[cfg(test)]
mod tests;
