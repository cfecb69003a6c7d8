//! `[drill]` in config: when drills run, how many at once, their time and memory limits, and
//! the shrink threshold.

use serde::Deserialize;

use chrono_tz::Tz as Zone;

use crate::schedule::Schedule;

/// `[drill]` in config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillConfig {
    /// When `stowage run` drills a target without a `stowage.drill` label; `off` turns
    /// scheduled drills off.
    #[serde(default = "default_schedule")]
    pub schedule: String,
    /// Drills at once (they also take a `daemon.max_concurrent` slot each).
    #[serde(default = "default_concurrent")]
    pub max_concurrent: usize,
    /// Seconds a drill may take, from container start to its last check.
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    /// The drill container's memory limit: bytes, or with k, m, g (binary units); 0: none.
    #[serde(default = "default_memory")]
    pub memory: String,
    /// A backup smaller than the previous one by more than this fraction (in bytes, or in a
    /// table's rows) is a `suspicious_shrink` warning; 0 turns the check off.
    #[serde(default = "default_shrink")]
    pub shrink_alert: f64,
}

impl Default for DrillConfig {
    fn default() -> Self {
        Self {
            schedule: default_schedule(),
            max_concurrent: default_concurrent(),
            timeout: default_timeout(),
            memory: default_memory(),
            shrink_alert: default_shrink(),
        }
    }
}

fn default_schedule() -> String {
    "0 5 * * 0".into()
}
fn default_concurrent() -> usize {
    1
}
fn default_timeout() -> u64 {
    3600
}
fn default_memory() -> String {
    "1g".into()
}
fn default_shrink() -> f64 {
    0.5
}

/// The longest `drill.timeout`: a year, in seconds.
pub const MAX_TIMEOUT: u64 = 366 * 86400;

/// The most drills at once.
pub const MAX_CONCURRENT: usize = 64;

impl DrillConfig {
    /// The default drill schedule in `zone`; `None` when drills are off.
    pub fn schedule_in(&self, zone: Zone) -> Result<Option<Schedule>, String> {
        if self.schedule.trim() == "off" {
            return Ok(None);
        }
        Schedule::parse_in(&self.schedule, zone)
            .map(Some)
            .map_err(|e| e.to_string())
    }

    /// The memory limit in bytes.
    pub fn memory_bytes(&self) -> Result<i64, String> {
        parse_memory(&self.memory)
    }

    /// Problems of the plain values, as (key, reason).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !(1..=MAX_CONCURRENT).contains(&self.max_concurrent) {
            out.push((
                "drill.max_concurrent",
                format!("{} is outside 1..={MAX_CONCURRENT}", self.max_concurrent),
            ));
        }
        if !(10..=MAX_TIMEOUT).contains(&self.timeout) {
            out.push((
                "drill.timeout",
                format!("{} s is outside 10 s ..= 1 year", self.timeout),
            ));
        }
        if let Err(e) = self.memory_bytes() {
            out.push(("drill.memory", e));
        }
        if !(0.0..1.0).contains(&self.shrink_alert) {
            out.push((
                "drill.shrink_alert",
                format!(
                    "{} is outside 0 ..< 1 (a fraction: 0.5 warns when a backup is less than half the previous one; 0 turns it off)",
                    self.shrink_alert
                ),
            ));
        }
        out
    }
}

/// `512m`, `1g`, `1GiB`, `2048` (bytes); `0` for no limit.
fn parse_memory(text: &str) -> Result<i64, String> {
    let t = text.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix("ib")
        .or_else(|| t.strip_suffix('b'))
        .unwrap_or(&t);
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        _ => {
            return Err(format!(
                "{text:?}: use bytes or a number with k, m or g (\"1g\")"
            ));
        }
    };
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("{text:?}: use bytes or a number with k, m or g (\"1g\")"))?;
    let bytes = n
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))?;
    if bytes != 0 && bytes < 64 << 20 {
        return Err(format!(
            "{text:?} is under 64 MiB: no database server starts in that"
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("1g"), Ok(1 << 30));
        assert_eq!(parse_memory("512MiB"), Ok(512 << 20));
        assert_eq!(parse_memory("0"), Ok(0));
        assert!(parse_memory("1x").is_err());
        assert!(parse_memory("1k").is_err(), "too small");
        assert!(parse_memory("99999999999g").is_err());
    }
}
