//! Telling people: alert channels (webhooks as JSON, Slack or Discord; email over SMTP)
//! and per-target ping URLs (healthchecks.io style).
//!
//! Three events are sent: a target's backup **failed** (each failure), it **recovered** (the
//! first success after a failure), and it went **stale** (no success within
//! `alerts.stale_after`; once, until the next success). Ping URLs get `/start` when a backup
//! begins, the bare URL on success and `/fail` on failure. Every delivery runs in its own
//! task with its channel's timeout: a slow or broken receiver is logged and counted
//! (`stowage_alert_delivery_failures_total`) and never delays or fails a backup.
//!
//! A channel is one file: a type that implements [`Channel`] (deliver one event, a name for
//! messages, a metric label, a timeout) and an arm in [`Channels::from_config`].

pub mod email;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::metrics::Metrics;
use webhook::{Webhook, WebhookChannel};

/// How long one delivery may take.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(20);

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A backup failed.
    Failure,
    /// A backup succeeded after a failure.
    Recovery,
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

/// One alert. Serialized as is for the generic webhook (README documents the schema).
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// `failure`, `recovery` or `stale`.
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

/// Why a delivery failed. The text never holds a channel's URL or password.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The receiver answered with an error status.
    #[error("HTTP {0}")]
    Status(u16),
    /// The request could not be made (connection, TLS, timeout), URL removed.
    #[error("{0}")]
    Request(String),
    /// The mail server refused or the connection failed.
    #[error("{0}")]
    Mail(#[source] lettre::transport::smtp::Error),
    /// The message could not be built.
    #[error("{0}")]
    Message(String),
    /// No answer within the channel's timeout.
    #[error("no answer within {} s", .0.as_secs())]
    Timeout(Duration),
}

impl crate::error::Temporary for DeliveryError {
    fn is_temporary(&self) -> bool {
        match self {
            Self::Status(code) => *code >= 500 || *code == 429,
            Self::Request(_) | Self::Timeout(_) => true,
            Self::Mail(e) => e.is_transient() || e.is_timeout(),
            Self::Message(_) => false,
        }
    }
}

/// A channel whose configuration cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ChannelConfigError {
    /// The config key, dotted (`alerts.email`, `alerts.webhooks[0].url`).
    pub key: String,
    /// What is wrong; never the URL or a password.
    pub reason: String,
}

/// Something that delivers alert events somewhere.
pub trait Channel: Send + Sync {
    /// A name for messages (`webhook 1 (slack)`, `email to 2 recipient(s) via …`); never a
    /// secret.
    fn name(&self) -> String;
    /// The metric label (`webhook`, `email`): a small fixed set.
    fn kind(&self) -> &'static str;
    /// How long one delivery may take; the caller enforces it.
    fn timeout(&self) -> Duration;
    /// Delivers one event.
    fn deliver<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), DeliveryError>>;
}

/// Delivers `event` through `channel` within its timeout.
pub async fn deliver(channel: &dyn Channel, event: &Event) -> Result<(), DeliveryError> {
    let limit = channel.timeout();
    match tokio::time::timeout(limit, channel.deliver(event)).await {
        Ok(result) => result,
        Err(_) => Err(DeliveryError::Timeout(limit)),
    }
}

/// `[alerts]` in config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Seconds without a successful backup after which a target is stale (0: never).
    #[serde(default = "default_stale")]
    pub stale_after: u64,
    /// Webhook receivers.
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
    /// Email, if configured.
    #[serde(default)]
    pub email: Option<email::Email>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            stale_after: default_stale(),
            webhooks: vec![],
            email: None,
        }
    }
}

fn default_stale() -> u64 {
    26 * 3600
}

/// The configured channels, built and checked; building sends nothing.
#[derive(Clone, Default)]
pub struct Channels {
    channels: Vec<Arc<dyn Channel>>,
    http: Option<reqwest::Client>,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.channels.iter().map(|c| c.name()).collect();
        write!(f, "Channels({names:?})")
    }
}

/// The HTTP client every HTTP channel and ping shares.
fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(DELIVERY_TIMEOUT)
        .user_agent(concat!("stowage/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("http client: {e}"))
}

impl Channels {
    /// Builds every channel of `[alerts]`; returns every problem as (key, reason).
    pub fn from_config(c: &AlertsConfig) -> Result<Self, Vec<ChannelConfigError>> {
        let mut problems = Vec::new();
        let mut channels: Vec<Arc<dyn Channel>> = Vec::new();
        let http = match http_client() {
            Ok(h) => Some(h),
            Err(reason) => {
                problems.push(ChannelConfigError {
                    key: "alerts".into(),
                    reason,
                });
                None
            }
        };
        if let Some(http) = &http {
            for (i, hook) in c.webhooks.iter().enumerate() {
                match WebhookChannel::new(hook, i + 1, http.clone()) {
                    Ok(ch) => channels.push(Arc::new(ch)),
                    Err(e) => problems.push(e),
                }
            }
        }
        if let Some(e) = &c.email {
            match email::mailer(e) {
                Ok(m) => channels.push(Arc::new(m)),
                Err(e) => problems.push(e),
            }
        }
        if c.stale_after > MAX_STALE_AFTER {
            problems.push(ChannelConfigError {
                key: "alerts.stale_after".into(),
                reason: format!(
                    "{} seconds is more than {MAX_STALE_AFTER} (ten years); use 0 for never",
                    c.stale_after
                ),
            });
        }
        if problems.is_empty() {
            Ok(Self { channels, http })
        } else {
            Err(problems)
        }
    }

    /// Whether any channel is configured.
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }
}

/// The longest staleness window accepted (ten years, in seconds).
pub const MAX_STALE_AFTER: u64 = 10 * 365 * 24 * 3600;

/// Sends alerts and pings in the background.
#[derive(Clone)]
pub struct Notifier {
    channels: Channels,
    http: reqwest::Client,
    metrics: Metrics,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Notifier({:?})", self.channels)
    }
}

impl Notifier {
    /// A notifier over checked channels.
    pub fn new(channels: Channels, metrics: Metrics) -> Self {
        let http = channels
            .http
            .clone()
            .unwrap_or_else(|| http_client().expect("checked when the channels were built"));
        Self {
            channels,
            http,
            metrics,
        }
    }

    /// Sends `event` to every channel, each in its own task. A failed delivery is logged and
    /// counted.
    pub fn send(&self, event: Event) {
        tracing::info!(target = %event.target, event = ?event.event, "sending alert");
        for channel in &self.channels.channels {
            let (channel, metrics, event) = (channel.clone(), self.metrics.clone(), event.clone());
            tokio::spawn(async move {
                if let Err(why) = deliver(channel.as_ref(), &event).await {
                    metrics
                        .alert_failures
                        .with_label_values(&[channel.kind()])
                        .inc();
                    tracing::warn!(target = %event.target, channel = %channel.name(), "alert delivery failed: {}", crate::error_text::one_line(&why));
                }
            });
        }
    }

    /// Sends `event` to every channel now, one after the other, and returns each channel's
    /// name and result (for `stowage alert-test`).
    pub async fn deliver_all(&self, event: &Event) -> Vec<(String, Result<(), DeliveryError>)> {
        let mut out = Vec::new();
        for channel in &self.channels.channels {
            out.push((channel.name(), deliver(channel.as_ref(), event).await));
        }
        out
    }

    /// Pings `url` + `suffix` (`/start`, `` or `/fail`), in the background.
    pub fn ping(&self, target: &str, url: &str, suffix: &'static str) {
        let (http, metrics) = (self.http.clone(), self.metrics.clone());
        let full = format!("{}{suffix}", url.trim_end_matches('/'));
        let target = target.to_string();
        tokio::spawn(async move {
            let failure = match http.get(&full).send().await {
                Ok(r) if r.status().is_success() => None,
                Ok(r) => Some(format!("HTTP {}", r.status())),
                Err(e) => Some(e.to_string()),
            };
            if let Some(why) = failure {
                metrics.alert_failures.with_label_values(&["ping"]).inc();
                tracing::warn!(target = %target, "ping {suffix:?} failed: {why}");
            }
        });
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
