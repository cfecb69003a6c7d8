//! What `stowage run` is told: `[daemon]` with its bounds, and the daemon's other settings.

use serde::Deserialize;

use super::alerts::{AlertsConfig, Channels};
use super::http::HttpConfig;
use super::scheduler::MissedRuns;

/// `[daemon]` in config: how `stowage run` behaves.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Seconds between two looks for labelled containers.
    pub discovery_interval: u64,
    /// Backups allowed to run at once.
    pub max_concurrent: usize,
    /// Seconds running backups get to finish after SIGTERM.
    pub shutdown_grace: u64,
    /// Seconds between passes that retry failed uploads (and apply remote retention).
    #[serde(default = "default_upload_retry")]
    pub upload_retry_interval: u64,
    /// Up to this many seconds are added to each scheduled time, fixed per target and time.
    #[serde(default)]
    pub jitter: u64,
    /// Seconds a backup may take before it is aborted (0: no limit).
    #[serde(default = "default_backup_timeout")]
    pub backup_timeout: u64,
    /// Seconds after which a run that failed for a temporary reason (a dropped connection, a
    /// restarting container) is tried once more, unless its next scheduled run comes first
    /// (0: never).
    #[serde(default = "default_retry_after")]
    pub retry_after: u64,
    /// Runs missed while stowage was down: `skip` or `run-once`.
    #[serde(default)]
    pub missed_runs: MissedRuns,
}

fn default_backup_timeout() -> u64 {
    6 * 3600
}

fn default_retry_after() -> u64 {
    300
}

fn default_upload_retry() -> u64 {
    900
}

/// The most backups at once (each holds a Docker stream and a writer thread).
pub const MAX_CONCURRENT: usize = 256;
/// The longest interval or timeout, in seconds (a year).
pub const MAX_SECONDS: u64 = 366 * 24 * 3600;

impl DaemonConfig {
    /// The problems with these settings, as (key, reason).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !(1..=MAX_CONCURRENT).contains(&self.max_concurrent) {
            out.push((
                "daemon.max_concurrent",
                format!("{} is outside 1..={MAX_CONCURRENT}", self.max_concurrent),
            ));
        }
        let seconds = [
            ("daemon.discovery_interval", self.discovery_interval, 1),
            ("daemon.shutdown_grace", self.shutdown_grace, 0),
            (
                "daemon.upload_retry_interval",
                self.upload_retry_interval,
                0,
            ),
            ("daemon.jitter", self.jitter, 0),
            ("daemon.backup_timeout", self.backup_timeout, 0),
            ("daemon.retry_after", self.retry_after, 0),
        ];
        for (key, value, min) in seconds {
            if !(min..=MAX_SECONDS).contains(&value) {
                out.push((
                    key,
                    format!("{value} seconds is outside {min}..={MAX_SECONDS} (a year)"),
                ));
            }
        }
        out
    }
}

/// What the daemon needs beyond the job context.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `[daemon]`.
    pub daemon: DaemonConfig,
    /// `[http]`.
    pub http: HttpConfig,
    /// `[alerts]`, as configured.
    pub alerts: AlertsConfig,
    /// The alert channels, built and checked.
    pub channels: Channels,
    /// `[coordination]`.
    pub coordination: crate::remote::lease::CoordinationConfig,
}
