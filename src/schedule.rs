//! Cron schedules: parsing and the next run time.
//!
//! Schedules use classic 5-field cron (or `@daily`-style nicknames), evaluated in UTC, with
//! day-of-month and day-of-week combined by OR as cron does. Next times come from `croner`,
//! computed fresh from "now" each time they are needed, so nothing is frozen at start-up.
//! This module only computes times; the daemon loop that acts on them is in [`crate::daemon`].

use std::str::FromStr;

use chrono::{DateTime, Utc};
use croner::Cron;

/// A parsed cron schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    text: String,
    cron: Cron,
}

/// A schedule that does not parse.
#[derive(Debug, thiserror::Error)]
#[error(
    "bad cron schedule {text:?}: {reason} (expected 5 fields \"min hour day month weekday\", e.g. \"0 3 * * *\", or @hourly/@daily/@weekly/@monthly)"
)]
pub struct ScheduleError {
    text: String,
    reason: String,
}

impl Schedule {
    /// Parses a 5-field cron line or a nickname. Seconds and years fields are refused: a
    /// backup schedule finer than a minute is a mistake.
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
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
            cron,
        })
    }

    /// The schedule as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first run strictly after `after`, or `None` if the schedule never fires again.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&after, false).ok()
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
}
