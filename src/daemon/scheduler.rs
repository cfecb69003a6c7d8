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
        let mut due = Vec::new();
        let names: Vec<String> = self.slots.keys().cloned().collect();
        for name in names {
            let slot = &self.slots[&name];
            if slot.due.is_none_or(|d| d > now) || running.contains(&name) {
                continue;
            }
            let target = slot.target.clone();
            // A catch-up run or a retry leaves the next scheduled time as it was.
            let (scheduled, is_scheduled_run) = match slot.scheduled {
                Some(s) if s > now => (Some(s), false),
                _ => (target.next_run(now), true),
            };
            let next_due = self.due_for(&name, scheduled);
            let slot = self.slots.get_mut(&name).expect("present");
            slot.scheduled = scheduled;
            slot.due = next_due;
            if is_scheduled_run {
                slot.retries = 0;
            }
            due.push(target);
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
mod tests {
    use super::*;
    use crate::discover::{ContainerInfo, Env};
    use crate::engine::Registry;
    use crate::plan::{self, Defaults, Entry};
    use crate::remote::config::Storages;
    use crate::retention::Policy;
    use crate::schedule::Schedule;
    use chrono::TimeZone;

    fn at(mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, mo, d, h, mi, 0).unwrap()
    }

    /// Targets as the planner makes them, from (name, stowage.schedule) pairs, in `zone`.
    fn targets(zone: &str, specs: &[(&str, &str)]) -> Vec<Arc<Target>> {
        let containers: Vec<ContainerInfo> = specs
            .iter()
            .map(|(name, schedule)| ContainerInfo {
                id: format!("{name}-id"),
                name: name.to_string(),
                image: "postgres:16".into(),
                state: "running".into(),
                labels: [
                    ("stowage.enable".to_string(), "true".to_string()),
                    ("stowage.schedule".to_string(), schedule.to_string()),
                ]
                .into_iter()
                .collect(),
                env: Env::from_list(&[]),
            })
            .collect();
        let zone = crate::schedule::zone(Some(zone)).unwrap();
        plan::plan(
            &containers,
            &Defaults {
                registry: &Registry::builtin().unwrap(),
                schedule: &Schedule::parse_in("0 3 * * *", zone).unwrap(),
                drill: None,
                encryption: false,
                retention: &Policy::default(),
                storages: &Storages::default(),
            },
        )
        .into_iter()
        .map(|e| match e {
            Entry::Target(t) => Arc::from(t),
            Entry::Skipped(s) => panic!("{}", s.reason),
        })
        .collect()
    }

    fn names(v: &[Arc<Target>]) -> Vec<&str> {
        v.iter().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn runs_at_scheduled_times_in_the_zone_through_dst() {
        let mut s = Scheduler::new(0, MissedRuns::Skip);
        let none = HashSet::new();
        let t = targets("Europe/Berlin", &[("db", "30 2 * * *")]);
        let start = at(3, 27, 12, 0);
        s.update(t, start, |_| None);
        // Walk a clock minute by minute through the spring-forward weekend.
        let mut runs = Vec::new();
        let mut now = start;
        while now < at(3, 31, 0, 0) {
            if !s.take_due(now, &none).is_empty() {
                runs.push(now);
            }
            now += Duration::minutes(1);
        }
        // 02:30 CET = 01:30 UTC; on the 29th 02:30 does not exist: 03:00 CEST = 01:00 UTC;
        // afterwards 02:30 CEST = 00:30 UTC.
        assert_eq!(runs, [at(3, 28, 1, 30), at(3, 29, 1, 0), at(3, 30, 0, 30)]);
    }

    #[test]
    fn one_run_per_target_at_a_time_and_no_pile_up() {
        let mut s = Scheduler::new(0, MissedRuns::Skip);
        s.update(
            targets("UTC", &[("a", "*/10 * * * *"), ("b", "*/10 * * * *")]),
            at(1, 1, 0, 0),
            |_| None,
        );
        let mut running = HashSet::new();
        let due = s.take_due(at(1, 1, 0, 10), &running);
        assert_eq!(names(&due), ["a", "b"]);
        running.insert("a".to_string());
        // a's 00:20 run is due while a still runs (a 25-minute backup): it waits.
        assert_eq!(names(&s.take_due(at(1, 1, 0, 20), &running)), ["b"]);
        assert_eq!(
            names(&s.take_due(at(1, 1, 0, 25), &running)),
            Vec::<&str>::new()
        );
        running.clear();
        // Free again at 00:35: a's waiting run starts once (b's 00:30 run is due too), then a
        // is back on its schedule.
        assert_eq!(names(&s.take_due(at(1, 1, 0, 35), &running)), ["a", "b"]);
        assert_eq!(s.slots()["a"].due, Some(at(1, 1, 0, 40)));
    }

    #[test]
    fn a_temporary_failure_is_retried_once_before_the_next_scheduled_run() {
        let mut s = Scheduler::new(0, MissedRuns::Skip);
        s.update(
            targets("UTC", &[("db", "0 3 * * *")]),
            at(1, 1, 0, 0),
            |_| None,
        );
        let none = HashSet::new();
        assert_eq!(names(&s.take_due(at(1, 1, 3, 0), &none)), ["db"]);
        // The 03:00 run failed for a temporary reason: again at 03:05, once.
        assert!(s.retry("db", at(1, 1, 3, 5)));
        assert!(
            !s.retry("db", at(1, 1, 3, 6)),
            "one retry per scheduled run"
        );
        assert!(s.take_due(at(1, 1, 3, 4), &none).is_empty());
        assert_eq!(names(&s.take_due(at(1, 1, 3, 5), &none)), ["db"]);
        // The retry failed too: no more retries; the schedule is unchanged.
        assert!(!s.retry("db", at(1, 1, 3, 10)));
        assert_eq!(s.slots()["db"].due, Some(at(1, 2, 3, 0)));
        // The next scheduled run may be retried again.
        assert_eq!(names(&s.take_due(at(1, 2, 3, 0), &none)), ["db"]);
        assert!(s.retry("db", at(1, 2, 3, 5)));
        // A retry later than the next scheduled run is pointless.
        let mut s = Scheduler::new(0, MissedRuns::Skip);
        s.update(
            targets("UTC", &[("m", "* * * * *")]),
            at(1, 1, 0, 0),
            |_| None,
        );
        assert_eq!(names(&s.take_due(at(1, 1, 0, 1), &none)), ["m"]);
        assert!(!s.retry("m", at(1, 1, 0, 6)));
        assert!(!s.retry("gone", at(1, 1, 0, 1)));
    }

    #[test]
    fn jitter_spreads_and_stays_within_bounds() {
        let mut s = Scheduler::new(600, MissedRuns::Skip);
        let specs: Vec<(String, &str)> = (0..20).map(|i| (format!("db{i}"), "0 3 * * *")).collect();
        let specs: Vec<(&str, &str)> = specs.iter().map(|(n, c)| (n.as_str(), *c)).collect();
        s.update(targets("UTC", &specs), at(1, 1, 0, 0), |_| None);
        let dues: Vec<DateTime<Utc>> = s.slots().values().map(|x| x.due.unwrap()).collect();
        assert!(
            dues.iter()
                .all(|d| *d >= at(1, 1, 3, 0) && *d < at(1, 1, 3, 10)),
            "{dues:?}"
        );
        let distinct: HashSet<_> = dues.iter().collect();
        assert!(distinct.len() > 10, "spread out: {dues:?}");
        // The same target and time get the same jitter after a restart.
        let mut again = Scheduler::new(600, MissedRuns::Skip);
        again.update(targets("UTC", &specs), at(1, 1, 1, 0), |_| None);
        assert_eq!(again.slots()["db7"].due, s.slots()["db7"].due);
        // After a run, the next one comes from the schedule, not from the jittered time.
        let none = HashSet::new();
        let ran = s.take_due(at(1, 1, 3, 10), &none);
        assert_eq!(ran.len(), 20);
        assert!(
            s.slots()
                .values()
                .all(|x| x.scheduled == Some(at(1, 2, 3, 0)))
        );
    }

    #[test]
    fn missed_runs_policy() {
        let t = || targets("UTC", &[("db", "0 3 * * *")]);
        // stowage was down from before 03:00 until 09:00; the last backup is yesterday's.
        let restart = at(5, 10, 9, 0);
        let yesterday = |_: &str| Some(at(5, 9, 3, 0));
        let mut skip = Scheduler::new(0, MissedRuns::Skip);
        assert_eq!(
            skip.update(t(), restart, yesterday),
            [Change::Added("db".into(), Some(at(5, 11, 3, 0)))]
        );
        let mut once = Scheduler::new(0, MissedRuns::RunOnce);
        assert_eq!(
            once.update(t(), restart, yesterday),
            [Change::CatchUp("db".into())]
        );
        assert_eq!(names(&once.take_due(restart, &HashSet::new())), ["db"]);
        assert_eq!(
            once.slots()["db"].due,
            Some(at(5, 11, 3, 0)),
            "once, then on schedule"
        );
        // Today's backup exists: nothing was missed.
        let mut fine = Scheduler::new(0, MissedRuns::RunOnce);
        let today = |_: &str| Some(at(5, 10, 3, 1));
        assert!(matches!(
            fine.update(t(), restart, today)[0],
            Change::Added(..)
        ));
    }

    #[test]
    fn plan_updates_add_reschedule_and_remove() {
        let mut s = Scheduler::new(0, MissedRuns::Skip);
        let now = at(1, 1, 0, 0);
        s.update(
            targets("UTC", &[("a", "0 3 * * *"), ("b", "0 4 * * *")]),
            now,
            |_| None,
        );
        let changes = s.update(
            targets("UTC", &[("a", "0 5 * * *"), ("c", "0 6 * * *")]),
            now,
            |_| None,
        );
        assert_eq!(
            changes,
            [
                Change::Rescheduled("a".into(), Some(at(1, 1, 5, 0))),
                Change::Added("c".into(), Some(at(1, 1, 6, 0))),
                Change::Removed("b".into()),
            ]
        );
        assert_eq!(s.next_wake(), Some(at(1, 1, 5, 0)));
    }
}
