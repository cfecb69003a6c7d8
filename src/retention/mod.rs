//! Which artifacts to keep: restic's `forget` policy, as a pure function.
//!
//! The rules and their meaning follow restic's `ApplyPolicy` (facts, re-implemented here):
//! artifacts are taken newest first; `keep-within` keeps every artifact newer than the
//! newest one (not now) minus the span; each `keep-<period>` rule keeps the newest artifact of
//! each of the last N periods that *have* artifacts, and, while it still has count left,
//! also the oldest artifact, so history reaches back as far as possible; `keep-last` keeps the
//! N newest. An artifact is kept if any rule keeps it, and the reasons are all the rules that
//! did. An empty policy keeps everything. Periods are calendar periods in UTC; weeks are ISO
//! weeks (Monday to Sunday).
//!
//! Two rules are stowage's own, on top: the newest artifact is always kept, whatever the
//! policy, and only artifacts with a valid manifest are ever planned ([`crate::local::prune`] leaves
//! every other file alone).

use std::fmt;

use chrono::{DateTime, Datelike, Duration, Months, Timelike, Utc};
use serde::Deserialize;

/// A retention policy. Zero (or absent) means the rule is off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Keep the N newest.
    #[serde(default)]
    pub keep_last: u32,
    /// Keep everything newer than the newest artifact minus this span (`30d`, `1y6m`, `12h`).
    #[serde(default)]
    pub keep_within: Option<Span>,
    /// Keep the newest of each of the last N hours that have artifacts.
    #[serde(default)]
    pub keep_hourly: u32,
    /// … days.
    #[serde(default)]
    pub keep_daily: u32,
    /// … ISO weeks.
    #[serde(default)]
    pub keep_weekly: u32,
    /// … months.
    #[serde(default)]
    pub keep_monthly: u32,
    /// … years.
    #[serde(default)]
    pub keep_yearly: u32,
}

/// A retention label or span that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(String);

impl crate::error::Temporary for PolicyError {
    fn is_temporary(&self) -> bool {
        false
    }
}

/// The longest span accepted, in days (a thousand years): longer ones cannot be measured
/// back from any date a backup has.
pub const MAX_SPAN_DAYS: u64 = 1000 * 366;

/// A calendar span: years, months, days, hours (`1y6m`, `30d`, `2w` = 14 days, `36h`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    years: u32,
    months: u32,
    days: u32,
    hours: u32,
}

impl Span {
    /// Parses `1y6m2w3d12h` (any subset, in any order, each unit once at most).
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let bad = || {
            PolicyError(format!(
                "{:?} is not a span like 30d, 12h, 2w, 6m or 1y6m",
                shorten(text)
            ))
        };
        let mut span = Span::default();
        let mut number = String::new();
        let mut seen = String::new();
        for c in text.trim().chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let n: u32 = number.parse().map_err(|_| bad())?;
            number.clear();
            if seen.contains(c) {
                return Err(bad());
            }
            seen.push(c);
            match c {
                'y' => span.years = n,
                'm' => span.months = n,
                'w' => span.days += n.checked_mul(7).ok_or_else(bad)?,
                'd' => span.days += n,
                'h' => span.hours = n,
                _ => return Err(bad()),
            }
        }
        if !number.is_empty() || span == Span::default() {
            return Err(bad());
        }
        if span.approx_days() > MAX_SPAN_DAYS {
            return Err(PolicyError(format!(
                "{:?} is longer than a thousand years",
                shorten(text)
            )));
        }
        Ok(span)
    }

    /// The span's length in days, rounded up, without overflow.
    fn approx_days(&self) -> u64 {
        u64::from(self.years) * 366
            + u64::from(self.months) * 31
            + u64::from(self.days)
            + u64::from(self.hours).div_ceil(24)
    }

    /// `t` minus this span, on the calendar (months and years as restic's `AddDate`).
    /// Saturates at the earliest representable time instead of overflowing.
    fn before(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let months = self.years.saturating_mul(12).saturating_add(self.months);
        t.checked_sub_months(Months::new(months))
            .and_then(|t| t.checked_sub_signed(Duration::days(i64::from(self.days))))
            .and_then(|t| t.checked_sub_signed(Duration::hours(i64::from(self.hours))))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, unit) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Span::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Policy {
    /// Whether no rule is set: everything is kept.
    pub fn is_empty(&self) -> bool {
        self == &Policy::default()
    }

    /// Parses the `stowage.retention` label: `all` (keep everything), or comma-separated
    /// `last=N`, `within=SPAN`, `hourly=N`, `daily=N`, `weekly=N`, `monthly=N`, `yearly=N`.
    pub fn parse_label(text: &str) -> Result<Self, PolicyError> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("all") {
            return Ok(Policy::default());
        }
        let mut p = Policy::default();
        for part in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| PolicyError(format!("{:?} is not key=value", shorten(part))))?;
            let key = key
                .trim()
                .trim_start_matches("keep-")
                .trim_start_matches("keep_");
            let count = || {
                value.trim().parse::<u32>().map_err(|_| {
                    PolicyError(format!(
                        "{}={}: expected a count",
                        shorten(key),
                        shorten(value)
                    ))
                })
            };
            match key {
                "last" => p.keep_last = count()?,
                "within" => p.keep_within = Some(Span::parse(value)?),
                "hourly" => p.keep_hourly = count()?,
                "daily" => p.keep_daily = count()?,
                "weekly" => p.keep_weekly = count()?,
                "monthly" => p.keep_monthly = count()?,
                "yearly" => p.keep_yearly = count()?,
                other => {
                    return Err(PolicyError(format!(
                        "unknown rule {:?}; use last, within, hourly, daily, weekly, monthly, yearly, or all",
                        shorten(other)
                    )));
                }
            }
        }
        if p.is_empty() {
            return Err(PolicyError(
                "no rule given; write e.g. daily=7,weekly=4 (or all to keep everything)".into(),
            ));
        }
        Ok(p)
    }
}

/// A user's text, cut for messages.
fn shorten(text: &str) -> String {
    crate::error_text::shorten(text, 40)
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("keep everything");
        }
        let mut parts = Vec::new();
        if self.keep_last > 0 {
            parts.push(format!("last={}", self.keep_last));
        }
        if let Some(w) = &self.keep_within {
            parts.push(format!("within={w}"));
        }
        for (n, name) in [
            (self.keep_hourly, "hourly"),
            (self.keep_daily, "daily"),
            (self.keep_weekly, "weekly"),
            (self.keep_monthly, "monthly"),
            (self.keep_yearly, "yearly"),
        ] {
            if n > 0 {
                parts.push(format!("{name}={n}"));
            }
        }
        f.write_str(&parts.join(","))
    }
}

/// The verdict on one artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Keep it?
    pub keep: bool,
    /// Why it is kept (empty when it is deleted).
    pub reasons: Vec<String>,
}

/// Decides for each time in `times` (one series: one target's one database), in the same
/// order. `now` bounds "newest": an artifact stamped in the future does not shift the
/// `keep-within` window.
// Long: follows restic's ApplyPolicy rule for rule, so the two can be read side by side.
pub fn plan(policy: &Policy, times: &[DateTime<Utc>], now: DateTime<Utc>) -> Vec<Decision> {
    let mut order: Vec<usize> = (0..times.len()).collect();
    // Newest first; ties keep their input order.
    order.sort_by(|a, b| times[*b].cmp(&times[*a]));
    let mut out = vec![
        Decision {
            keep: false,
            reasons: vec![],
        };
        times.len()
    ];
    if policy.is_empty() {
        for d in &mut out {
            d.keep = true;
            d.reasons.push("policy keeps everything".into());
        }
        return out;
    }
    let latest = times
        .iter()
        .copied()
        .filter(|t| *t <= now)
        .max()
        .or_else(|| times.iter().copied().max());
    type Bucket = fn(DateTime<Utc>, usize) -> i64;
    let mut buckets: [(u32, Bucket, Option<i64>, &str); 6] = [
        (policy.keep_last, |_, nr| nr as i64, None, "last"),
        (policy.keep_hourly, hour_key, None, "hourly"),
        (policy.keep_daily, |t, _| day_key(t), None, "daily"),
        (
            policy.keep_weekly,
            |t, _| {
                let w = t.iso_week();
                i64::from(w.year()) * 100 + i64::from(w.week())
            },
            None,
            "weekly",
        ),
        (
            policy.keep_monthly,
            |t, _| i64::from(t.year()) * 100 + i64::from(t.month()),
            None,
            "monthly",
        ),
        (
            policy.keep_yearly,
            |t, _| i64::from(t.year()),
            None,
            "yearly",
        ),
    ];
    let oldest = order.len().saturating_sub(1);
    for (nr, &i) in order.iter().enumerate() {
        let t = times[i];
        let d = &mut out[i];
        if nr == 0 {
            d.keep = true;
            d.reasons.push("newest".into());
        }
        if let (Some(w), Some(latest)) = (&policy.keep_within, latest)
            && t > w.before(latest)
        {
            d.keep = true;
            d.reasons.push(format!("within {w}"));
        }
        for (count, key, last, name) in buckets.iter_mut() {
            if *count == 0 {
                continue;
            }
            let k = key(t, nr);
            let new_period = Some(k) != *last;
            // While a rule has count left, the oldest artifact is kept too (restic does so
            // to keep the history as long as possible).
            if new_period || nr == oldest {
                *last = Some(k);
                *count -= 1;
                d.keep = true;
                d.reasons.push(if new_period {
                    (*name).to_string()
                } else {
                    format!("{name} (oldest)")
                });
            }
        }
    }
    out
}

fn hour_key(t: DateTime<Utc>, _: usize) -> i64 {
    day_key(t) * 100 + i64::from(t.hour())
}

fn day_key(t: DateTime<Utc>) -> i64 {
    i64::from(t.year()) * 10000 + i64::from(t.month()) * 100 + i64::from(t.day())
}

#[cfg(test)]
mod tests;
