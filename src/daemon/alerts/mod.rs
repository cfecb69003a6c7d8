//! Telling people: alert channels and per-target ping URLs (healthchecks.io style).
//!
//! Events ([`event::Kind`]): a target's backup **failed** (each failure), it **recovered**
//! (the first success after a failure), it **succeeded** (every success; routed nowhere
//! unless a channel asks), it went **stale** (no success within `alerts.stale_after`; once,
//! until the next success), a restore drill failed or passed again, a backup shrank
//! suspiciously, and `stowage alert-test`'s **test**. Ping URLs get `/start` when a backup
//! begins, the bare URL on success and `/fail` on failure.
//!
//! Channels: webhooks (JSON, Slack, Discord) and email from `[alerts]`, and notification
//! URLs ([`notify`]: ntfy, Gotify, Telegram, Matrix, MQTT, Pushover) from `[alerts.notify.NAME]`
//! and the `stowage.notify` label. Each has the [`event::Events`] it receives ([`config`]
//! routes them). Every delivery runs in its own task with its channel's timeout
//! ([`notifier`]): a slow or broken receiver is logged and counted
//! (`stowage_alert_delivery_failures_total`) and never delays a backup or another channel.
//!
//! A channel is one file: a type that implements [`Channel`] (deliver one event, a name for
//! messages, a metric label, a timeout), built by [`config`] or [`notify::parse`].

pub mod config;
pub mod email;
pub mod event;
pub mod notifier;
pub mod notify;
pub mod webhook;

use std::time::Duration;

use futures_util::future::BoxFuture;

pub use config::{AlertsConfig, Channels, MAX_STALE_AFTER};
pub use event::{Event, Events, Kind, text};
pub use notifier::Notifier;

/// How long one delivery may take.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(20);

/// The metric labels of every channel kind (`stowage_alert_delivery_failures_total`).
pub const CHANNEL_KINDS: [&str; 9] = [
    "webhook", "email", "ping", "ntfy", "gotify", "telegram", "matrix", "mqtt", "pushover",
];

/// The HTTP client every HTTP channel and ping shares.
pub fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(DELIVERY_TIMEOUT)
        .user_agent(concat!("stowage/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("http client: {e}"))
}

/// The outcome of an HTTP delivery: a success status, or an error whose text never holds
/// the URL (which may hold a token: Telegram's is in the path).
pub fn http_outcome(sent: Result<reqwest::Response, reqwest::Error>) -> Result<(), DeliveryError> {
    match sent {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(DeliveryError::Status(r.status().as_u16())),
        Err(e) if e.is_timeout() => Err(DeliveryError::Timeout(DELIVERY_TIMEOUT)),
        Err(e) => Err(DeliveryError::Request(crate::error_text::one_line(
            &e.without_url(),
        ))),
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
