//! One target as the daemon's status, the API and the status page show it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::scheduler::Slot;

/// One target, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TargetView {
    /// Target name.
    pub name: String,
    /// Container name.
    pub container: String,
    /// Engine name.
    pub engine: String,
    /// What it dumps: database names, `all`, or volumes and paths.
    pub databases: String,
    /// Cron schedule.
    pub schedule: String,
    /// Its time zone.
    pub timezone: String,
    /// When it runs next.
    pub next_run: Option<DateTime<Utc>>,
    /// Whether a backup (or upload pass) runs now.
    pub running: bool,
    /// The last successful backup.
    pub last_success: Option<DateTime<Utc>>,
    /// `ok` or `failed`, for the last backup this process ran.
    pub last_result: Option<&'static str>,
    /// The last failure's reason class and message.
    pub last_error: Option<(String, String)>,
    /// Storages it goes to.
    pub storages: Vec<String>,
    /// Whether its artifacts are encrypted.
    pub encrypted: bool,
    /// Its retention policy.
    pub retention: String,
    #[serde(skip)]
    pub(super) ping_url: Option<String>,
    #[serde(skip)]
    pub(super) stale_alerted: bool,
}

impl TargetView {
    /// A target seen for the first time, with its last success if one is known.
    pub(super) fn new(name: &str, last_success: Option<DateTime<Utc>>) -> Self {
        Self {
            name: name.to_string(),
            container: String::new(),
            engine: String::new(),
            databases: String::new(),
            schedule: String::new(),
            timezone: String::new(),
            next_run: None,
            running: false,
            last_success,
            last_result: None,
            last_error: None,
            storages: vec![],
            encrypted: false,
            retention: String::new(),
            ping_url: None,
            stale_alerted: false,
        }
    }

    /// Takes what the plan and the schedule say now.
    pub(super) fn update(&mut self, slot: &Slot) {
        let t = &slot.target;
        self.container = t.container.name.clone();
        self.engine = t.engine.name().to_string();
        self.databases = t.databases_label();
        self.schedule = t.schedule.as_str().to_string();
        self.timezone = t.schedule.zone().name().to_string();
        self.next_run = slot.due;
        self.storages = t.storages.clone();
        self.encrypted = t.encrypt;
        self.retention = t.retention.to_string();
        self.ping_url = t.ping_url.clone();
    }
}
