//! Cron schedules: parsing and the next run time, in a time zone.
//!
//! Schedules use classic 5-field cron (or `@daily`-style nicknames), evaluated in the
//! configured IANA time zone (config `timezone`, else `TZ`, else UTC), with day-of-month and
//! day-of-week combined by OR as cron does. Next times come from `croner`, computed fresh from
//! "now" in the zone each time they are needed, so a DST change never shifts a schedule.
//! Across DST, croner follows Vixie cron: a fixed time that falls into the spring-forward gap
//! runs right after the gap, the same day; one in the fall-back overlap runs once, at its first
//! occurrence. This module only computes times; [`crate::daemon::scheduler`] decides what is due.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
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
        let cron = Cron::from_str(trimmed).map_err(|e| err(e.to_string()))?;
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
        self.cron
            .find_next_occurrence(&after.with_timezone(&self.zone), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The last run at or before `at`, if any.
    pub fn prev_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        representable(at)?;
        self.cron
            .find_previous_occurrence(&at.with_timezone(&self.zone), true)
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

    #[test]
    fn the_ends_of_time_have_no_runs_and_no_panic() {
        let berlin = zone(Some("Europe/Berlin")).unwrap();
        let s = Schedule::parse_in("30 2 * * *", berlin).unwrap();
        assert_eq!(s.next_after(DateTime::<Utc>::MAX_UTC), None);
        assert_eq!(s.prev_at_or_before(DateTime::<Utc>::MIN_UTC), None);
    }
}
