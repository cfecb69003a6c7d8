//! What an alert says: the event kinds, the event a channel delivers (also the generic
//! webhook's JSON schema), the set of kinds a channel is routed, and the plain-text message
//! chat and mail channels send.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A backup failed.
    Failure,
    /// A backup succeeded after a failure.
    Recovery,
    /// A backup succeeded (every success; a recovery also sends [`Kind::Recovery`]). Not
    /// routed to any channel unless its `events` name it.
    Success,
    /// No success within the staleness window.
    Stale,
    /// Sent by `stowage alert-test` to check the configuration.
    Test,
    /// A restore drill failed: the newest artifact did not restore, or its data did not match.
    DrillFailed,
    /// A restore drill passed after a failed one.
    DrillRecovered,
    /// A new backup is much smaller than the previous one (a warning: it may be intended).
    SuspiciousShrink,
}

impl Kind {
    /// Every kind, in the order of [`Kind::name`]'s documentation.
    pub const ALL: [Kind; 8] = [
        Kind::Failure,
        Kind::Recovery,
        Kind::Success,
        Kind::Stale,
        Kind::DrillFailed,
        Kind::DrillRecovered,
        Kind::SuspiciousShrink,
        Kind::Test,
    ];

    /// The name in config, URLs and the webhook's JSON (`failure`, `drill_failed`, …).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Failure => "failure",
            Kind::Recovery => "recovery",
            Kind::Success => "success",
            Kind::Stale => "stale",
            Kind::DrillFailed => "drill_failed",
            Kind::DrillRecovered => "drill_recovered",
            Kind::SuspiciousShrink => "suspicious_shrink",
            Kind::Test => "test",
        }
    }

    /// Whether it reports something wrong (chat channels show it as urgent).
    pub fn is_bad(self) -> bool {
        matches!(self, Kind::Failure | Kind::DrillFailed)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// The kinds of event one channel receives: config `events = [...]`, or `?events=a,b` in a
/// notification URL. By default every kind but `success`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Events(u16);

impl Default for Events {
    fn default() -> Self {
        Self::of(Kind::ALL.iter().copied().filter(|k| *k != Kind::Success))
    }
}

impl Events {
    /// Exactly these kinds.
    pub fn of(kinds: impl IntoIterator<Item = Kind>) -> Self {
        Self(kinds.into_iter().fold(0, |bits, k| bits | k.bit()))
    }

    /// A comma-separated list of kind names (`failure,recovery`), or `all`.
    pub fn parse(list: &str) -> Result<Self, String> {
        if list.trim() == "all" {
            return Ok(Self::of(Kind::ALL));
        }
        let mut kinds = Vec::new();
        for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match Kind::ALL.iter().find(|k| k.name() == word) {
                Some(k) => kinds.push(*k),
                None => {
                    return Err(format!(
                        "unknown event {word:?}; known: all, {}",
                        Self::known()
                    ));
                }
            }
        }
        if kinds.is_empty() {
            return Err(format!("no events named; known: all, {}", Self::known()));
        }
        Ok(Self::of(kinds))
    }

    /// Whether `kind` is among them.
    pub fn contains(self, kind: Kind) -> bool {
        self.0 & kind.bit() != 0
    }

    fn known() -> String {
        Kind::ALL.map(Kind::name).join(", ")
    }
}

/// One alert. Serialized as is for the generic webhook (README documents the schema).
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// What happened ([`Kind::name`]).
    pub event: Kind,
    /// Target name.
    pub target: String,
    /// Container name.
    pub container: String,
    /// Engine name.
    pub engine: String,
    /// When it happened.
    pub time: DateTime<Utc>,
    /// For failures: the reason class (`dump_failed`, `timeout`, …).
    pub reason: Option<String>,
    /// A sentence for humans: the error, or what recovered or went stale.
    pub message: String,
    /// For failures: whether the cause looks temporary (the next run may succeed by itself)
    /// or must be fixed first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temporary: Option<bool>,
    /// The last successful backup, if any is known.
    pub last_success: Option<DateTime<Utc>>,
    /// The stowage instance (config `instance`), if set.
    pub instance: Option<String>,
    /// stowage's version.
    pub stowage_version: &'static str,
}

impl Event {
    /// One line for chat and mail subjects.
    pub fn summary(&self) -> String {
        match self.event {
            Kind::Failure => format!("stowage: backup of {} FAILED", self.target),
            Kind::Recovery => format!("stowage: backup of {} recovered", self.target),
            Kind::Success => format!("stowage: backup of {} succeeded", self.target),
            Kind::Stale => format!("stowage: no successful backup of {} recently", self.target),
            Kind::Test => "stowage: test alert".to_string(),
            Kind::DrillFailed => format!("stowage: restore drill of {} FAILED", self.target),
            Kind::DrillRecovered => {
                format!("stowage: restore drill of {} passes again", self.target)
            }
            Kind::SuspiciousShrink => {
                format!("stowage: backup of {} shrank suspiciously", self.target)
            }
        }
    }

    /// The event of a drill that failed, or that passed after a failure; `None` otherwise.
    pub fn drill(
        drilled: &crate::drill::Drilled,
        container: &str,
        instance: Option<String>,
    ) -> Option<Self> {
        use crate::drill::record::Outcome;
        let r = &drilled.record;
        let (event, message) = match r.outcome {
            Outcome::Failed => (
                Kind::DrillFailed,
                format!(
                    "The restore drill of {} (database {}) failed: {}",
                    r.artifact,
                    r.database,
                    r.error.as_deref().unwrap_or("")
                ),
            ),
            Outcome::Passed if drilled.was_failing => (
                Kind::DrillRecovered,
                format!(
                    "The restore drill of {} (database {}) passed: it restores and its data matches",
                    r.artifact, r.database
                ),
            ),
            _ => return None,
        };
        Some(Self {
            event,
            target: r.target.clone(),
            container: container.to_string(),
            engine: r.engine.clone(),
            time: r.started_at,
            reason: r.reason.clone(),
            message,
            temporary: None,
            last_success: None,
            instance,
            stowage_version: env!("CARGO_PKG_VERSION"),
        })
    }

    /// The warning that a new backup is much smaller than the previous one.
    pub fn shrink(
        target: &crate::plan::Target,
        shrink: &crate::local::shrink::Shrink,
        instance: Option<String>,
    ) -> Self {
        Self {
            event: Kind::SuspiciousShrink,
            target: target.name.clone(),
            container: target.container.name.clone(),
            engine: target.engine.name().to_string(),
            time: Utc::now(),
            reason: Some("suspicious_shrink".into()),
            message: format!(
                "The new backup {} of database {}: {}",
                shrink.artifact, shrink.database, shrink.message
            ),
            temporary: None,
            last_success: None,
            instance,
            stowage_version: env!("CARGO_PKG_VERSION"),
        }
    }

    /// A successful backup of `target` (sent only to channels whose `events` name `success`).
    pub fn success(
        target: &str,
        container: &str,
        engine: &str,
        at: DateTime<Utc>,
        instance: Option<String>,
    ) -> Self {
        Self {
            event: Kind::Success,
            target: target.into(),
            container: container.into(),
            engine: engine.into(),
            time: at,
            reason: None,
            message: format!("The backup of {target} succeeded."),
            temporary: None,
            last_success: Some(at),
            instance,
            stowage_version: env!("CARGO_PKG_VERSION"),
        }
    }

    /// The event `stowage alert-test` sends.
    pub fn test(instance: Option<String>) -> Self {
        Self {
            event: Kind::Test,
            target: "(test)".into(),
            container: "(test)".into(),
            engine: "(test)".into(),
            time: Utc::now(),
            reason: None,
            temporary: None,
            message: "This is a test alert sent by `stowage alert-test`. If you read it, alerts reach you.".into(),
            last_success: None,
            instance,
            stowage_version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// The plain-text message for chat and mail.
pub fn text(e: &Event) -> String {
    let mut out = e.summary();
    out.push_str(&format!(
        "\n\ncontainer: {}\nengine: {}\ntime: {}\n",
        e.container,
        e.engine,
        e.time.to_rfc3339()
    ));
    if let Some(r) = &e.reason {
        out.push_str(&format!("reason: {r}\n"));
    }
    if let Some(t) = e.temporary {
        out.push_str(&format!("retry: {}\n", crate::error::retry_advice(t)));
    }
    out.push_str(&format!(
        "last success: {}\n\n{}\n",
        e.last_success
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "never (since stowage started watching)".into()),
        e.message
    ));
    out
}
