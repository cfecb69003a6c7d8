//! Cron schedules: parsing and the next run time, in a time zone.
//!
//! Schedules use classic 5-field cron (or `@daily`-style nicknames), evaluated in the
//! configured IANA time zone (config `timezone`, else `TZ`, else UTC), with day-of-month and
//! day-of-week combined by OR as cron does. Next times come from `croner`, computed fresh from
//! "now" in the zone each time they are needed, so a DST change never shifts a schedule.
//! Across DST, croner follows Vixie cron: a fixed time that falls into the spring-forward gap
//! runs right after the gap, the same day; one in the fall-back overlap runs once, at its first
//! occurrence. A line that would never run (no date matches it, or a list with an empty item,
//! which croner would skip) is refused when parsed. This module only computes times;
//! [`crate::daemon::scheduler`] decides what is due.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// A parsed cron schedule in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    text: String,
    /// Shared: a parsed pattern holds a bitfield per possible value (about 5 KB with the
    /// years), and every target without its own schedule clones the default one.
    cron: Arc<Cron>,
    zone: Tz,
}

/// The time zone named by `name`, or by `TZ` when `name` is `None`, else UTC. `TZ` values
/// like `:Europe/Berlin` (leading colon) are accepted.
pub fn zone(name: Option<&str>) -> Result<Tz, ZoneError> {
    let from_env = std::env::var("TZ").ok();
    let text = match name.or(from_env.as_deref()) {
        None => return Ok(Tz::UTC),
        Some(t) => t.trim().trim_start_matches(':'),
    };
    if text.is_empty() {
        return Ok(Tz::UTC);
    }
    text.parse::<Tz>()
        .map_err(|_| ZoneError(text.chars().take(60).collect()))
}

/// A time zone name that is not in the IANA database.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown time zone {0:?}: use an IANA name such as Europe/Berlin or UTC")]
pub struct ZoneError(String);

/// `Some` when `t` is far enough from the ends of chrono's range that its wall-clock time in
/// any zone (offsets stay within a day) can be represented; times near the ends have no
/// schedule (the fuzzer found `MAX_UTC` in Europe/Berlin panicking inside chrono).
fn representable(t: DateTime<Utc>) -> Option<()> {
    let margin = chrono::Duration::days(2);
    (t.checked_add_signed(margin).is_some() && t.checked_sub_signed(margin).is_some()).then_some(())
}

/// The five fields of a cron line, as errors name them.
const FIELDS: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];

/// 4500-01-01T00:00:00Z: where the never-runs check starts searching (see `parse_in`).
const NEVER_PROBE_FROM: i64 = 79_839_129_600;

/// A schedule that does not parse.
#[derive(Debug, thiserror::Error)]
#[error(
    "bad cron schedule {:?}: {} (expected 5 fields \"min hour day month weekday\", e.g. \"0 3 * * *\", or @hourly/@daily/@weekly/@monthly)",
    crate::error_text::shorten(.text, crate::error_text::SHOWN),
    crate::error_text::shorten(.reason, 200)
)]
pub struct ScheduleError {
    text: String,
    reason: String,
}

impl Schedule {
    /// Parses a 5-field cron line or a nickname, in UTC.
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        Self::parse_in(text, Tz::UTC)
    }

    /// Parses a 5-field cron line or a nickname, evaluated in `zone`. Seconds and years
    /// fields are refused: a backup schedule finer than a minute is a mistake.
    pub fn parse_in(text: &str, zone: Tz) -> Result<Self, ScheduleError> {
        let trimmed = text.trim();
        let err = |reason: String| ScheduleError {
            text: text.to_string(),
            reason,
        };
        if !trimmed.starts_with('@') && trimmed.split_whitespace().count() != 5 {
            return Err(err(format!(
                "{} fields",
                trimmed.split_whitespace().count()
            )));
        }
        if !trimmed.starts_with('@') {
            // croner skips empty list items, so a stray comma ("0 , * * *") would leave a
            // field with no values at all: a schedule that never runs.
            for (field, name) in trimmed.split_whitespace().zip(FIELDS) {
                if field.split(',').any(|item| item.trim().is_empty()) {
                    return Err(err(format!(
                        "the {name} field {field:?} has an empty item in its list"
                    )));
                }
            }
        }
        let cron = Cron::from_str(trimmed).map_err(|e| err(e.to_string()))?;
        // A pattern that no date matches (30 February, 31 April) would never run, silently.
        // The Gregorian calendar repeats every 400 years, weekdays included, so a pattern that
        // matches at all matches in the 500 years from 4500 to croner's last year, 5000.
        // Measured in a release build: 0.1 ms for a pattern that matches, 10-40 ms for one
        // that does not (a labelled container with such a schedule pays that at each replan).
        let probe = DateTime::<Utc>::from_timestamp(NEVER_PROBE_FROM, 0)
            .expect("a fixed, representable time")
            .with_timezone(&zone);
        if cron.find_next_occurrence(&probe, true).is_err() {
            return Err(err(
                "no date matches it, so it would never run (a day of the month that the \
                 month does not have, such as 30 February?)"
                    .to_string(),
            ));
        }
        Ok(Self {
            text: trimmed.to_string(),
            cron: Arc::new(cron),
            zone,
        })
    }

    /// The zone the schedule is evaluated in.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The schedule as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first run strictly after `after`, or `None` if the schedule never fires again.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        representable(after)?;
        // From the whole second: croner keeps the nanoseconds of its start in what it returns.
        self.cron
            .find_next_occurrence(&after.trunc_subsecs(0).with_timezone(&self.zone), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The last run at or before `at`, if any.
    pub fn prev_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        representable(at)?;
        self.cron
            .find_previous_occurrence(&at.trunc_subsecs(0).with_timezone(&self.zone), true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn next_times() {
        let s = Schedule::parse("0 3 * * *").unwrap();
        assert_eq!(
            s.next_after(at(2026, 11, 22, 2, 59)),
            Some(at(2026, 11, 22, 3, 0))
        );
        assert_eq!(
            s.next_after(at(2026, 11, 22, 3, 0)),
            Some(at(2026, 11, 23, 3, 0))
        );
        let d = Schedule::parse("@daily").unwrap();
        assert_eq!(
            d.next_after(at(2026, 11, 22, 12, 0)),
            Some(at(2026, 11, 23, 0, 0))
        );
        let q = Schedule::parse("*/15 * * * *").unwrap();
        assert_eq!(
            q.next_after(at(2026, 11, 22, 12, 1)),
            Some(at(2026, 11, 22, 12, 15))
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_like_cron() {
        // 2026-11-22 is a Sunday. "1st of the month OR Mondays": next is Monday the 23rd.
        let s = Schedule::parse("0 0 1 * MON").unwrap();
        assert_eq!(
            s.next_after(at(2026, 11, 22, 0, 0)),
            Some(at(2026, 11, 23, 0, 0))
        );
    }

    /// Europe/Berlin: 2026-03-29 02:00 CET jumps to 03:00 CEST; 2026-10-25 03:00 CEST falls back
    /// to 02:00 CET.
    #[test]
    fn time_zones_and_dst() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let daily = Schedule::parse_in("30 2 * * *", berlin).unwrap();
        // Winter: 02:30 CET is 01:30 UTC.
        assert_eq!(
            daily.next_after(at(2026, 1, 10, 0, 0)),
            Some(at(2026, 1, 10, 1, 30))
        );
        // Spring forward: 02:30 does not exist; it runs right after the gap, 03:00 CEST.
        assert_eq!(
            daily.next_after(at(2026, 3, 28, 12, 0)),
            Some(at(2026, 3, 29, 1, 0))
        );
        // Then 02:30 CEST, 00:30 UTC, on the following days: never shifted by an hour.
        assert_eq!(
            daily.next_after(at(2026, 3, 29, 12, 0)),
            Some(at(2026, 3, 30, 0, 30))
        );
        // Fall back: 02:30 happens twice (CEST, then CET); it runs once, the first time.
        let first = daily.next_after(at(2026, 10, 24, 12, 0)).unwrap();
        assert_eq!(first, at(2026, 10, 25, 0, 30));
        assert_eq!(daily.next_after(first), Some(at(2026, 10, 26, 1, 30)));
        // A wildcard hour keeps its pace through the gap.
        let hourly = Schedule::parse_in("0 * * * *", berlin).unwrap();
        assert_eq!(
            hourly.next_after(at(2026, 3, 29, 0, 30)),
            Some(at(2026, 3, 29, 1, 0))
        );
        assert_eq!(
            daily.prev_at_or_before(at(2026, 1, 10, 1, 30)),
            Some(at(2026, 1, 10, 1, 30))
        );
        assert_eq!(
            daily.prev_at_or_before(at(2026, 1, 10, 1, 29)),
            Some(at(2026, 1, 9, 1, 30))
        );
    }

    #[test]
    fn zones_by_name_or_tz() {
        assert_eq!(zone(Some("Europe/Berlin")).unwrap().name(), "Europe/Berlin");
        assert_eq!(
            zone(Some(":America/New_York")).unwrap().name(),
            "America/New_York"
        );
        assert!(
            zone(Some("Mars/Olympus"))
                .unwrap_err()
                .to_string()
                .contains("IANA")
        );
    }

    #[test]
    fn rejects_bad_lines() {
        for bad in [
            "",
            "61 * * * *",
            "* * * *",
            "0 0 3 * * *",
            "@sometimes",
            "a b c d e",
        ] {
            let e = Schedule::parse(bad).unwrap_err().to_string();
            assert!(e.contains("bad cron schedule"), "{bad}: {e}");
        }
    }

    /// Lines croner accepts but that would never run: refused when parsed, with the reason,
    /// instead of a target that is silently never backed up.
    #[test]
    fn refuses_lines_that_would_never_run() {
        for (bad, why) in [
            ("0 , 1 * 0", "the hour field \",\" has an empty item"),
            (
                "0,,30 3 * * *",
                "the minute field \"0,,30\" has an empty item",
            ),
            ("0 3 * 2, *", "the month field \"2,\" has an empty item"),
            ("0 0 30 2 *", "would never run"),
            ("0 0 31 4,6,9,11 *", "would never run"),
        ] {
            let e = Schedule::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        // In a zone too.
        let berlin = zone(Some("Europe/Berlin")).unwrap();
        assert!(Schedule::parse_in("0 0 31 2 *", berlin).is_err());
        // Rare is not never: 29 February comes every four years, and with a weekday cron
        // ORs the two (every Monday of February).
        let leap = Schedule::parse("0 0 29 2 *").unwrap();
        assert_eq!(
            leap.next_after(at(2026, 12, 7, 0, 0)),
            Some(at(2028, 2, 29, 0, 0))
        );
        let or = Schedule::parse("0 0 31 2 MON").unwrap();
        assert_eq!(
            or.next_after(at(2026, 12, 7, 0, 0)),
            Some(at(2027, 2, 1, 0, 0))
        );
    }

    /// croner keeps the start's nanoseconds in its result; runs are on whole seconds.
    #[test]
    fn runs_are_on_whole_seconds() {
        let s = Schedule::parse("0 3 * * *").unwrap();
        let now = at(2026, 12, 7, 1, 17) + chrono::Duration::nanoseconds(939_275_381);
        assert_eq!(s.next_after(now), Some(at(2026, 12, 7, 3, 0)));
        assert_eq!(s.prev_at_or_before(now), Some(at(2026, 12, 6, 3, 0)));
        // At or before: the run at exactly 03:00 is found from 03:00 and a fraction.
        let just_after = at(2026, 12, 7, 3, 0) + chrono::Duration::milliseconds(500);
        assert_eq!(s.prev_at_or_before(just_after), Some(at(2026, 12, 7, 3, 0)));
        assert_eq!(s.next_after(just_after), Some(at(2026, 12, 8, 3, 0)));
    }

    #[test]
    fn the_ends_of_time_have_no_runs_and_no_panic() {
        let berlin = zone(Some("Europe/Berlin")).unwrap();
        let s = Schedule::parse_in("30 2 * * *", berlin).unwrap();
        assert_eq!(s.next_after(DateTime::<Utc>::MAX_UTC), None);
        assert_eq!(s.prev_at_or_before(DateTime::<Utc>::MIN_UTC), None);
    }
}
