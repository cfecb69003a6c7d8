//! The scheduler driven by a simulated clock.

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
            mounts: Vec::new(),
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
