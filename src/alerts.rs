//! Telling people: webhooks (generic JSON, Slack, Discord), email over SMTP, and per-target
//! ping URLs (healthchecks.io style).
//!
//! Three events are sent: a target's backup **failed** (each failure), it **recovered** (the
//! first success after a failure), and it went **stale** (no success within
//! `alerts.stale_after`; once, until the next success). Ping URLs get `/start` when a backup
//! begins, the bare URL on success and `/fail` on failure. Every delivery runs in its own
//! task with a timeout: a slow or broken receiver is logged and counted
//! (`stowage_alert_delivery_failures_total`) and never delays or fails a backup.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;
use crate::secret::Secret;

/// How long one delivery may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(20);

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A backup failed.
    Failure,
    /// A backup succeeded after a failure.
    Recovery,
    /// No success within the staleness window.
    Stale,
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
        }
    }
}

/// A webhook receiver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// Where to POST.
    pub url: Secret,
    /// `json` (the [`Event`] itself), `slack` (`{"text": …}`) or `discord` (`{"content": …}`).
    #[serde(default)]
    pub format: WebhookFormat,
}

/// The body a webhook gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The event as JSON.
    #[default]
    Json,
    /// A Slack incoming-webhook message.
    Slack,
    /// A Discord webhook message.
    Discord,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (required).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption (a local relay only).
    None,
}

/// Email settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Email {
    /// SMTP server.
    pub host: String,
    /// Port; default by security: 587, 465 or 25.
    #[serde(default)]
    pub port: Option<u16>,
    /// `starttls`, `tls` or `none`.
    #[serde(default)]
    pub security: Security,
    /// Login, if the server needs one.
    #[serde(default)]
    pub username: Option<String>,
    /// Its password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Sender address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
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
    pub email: Option<Email>,
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

/// The SMTP transport, sender and recipients.
type Mailer = (AsyncSmtpTransport<Tokio1Executor>, Mailbox, Vec<Mailbox>);

/// Sends alerts and pings in the background.
#[derive(Clone)]
pub struct Notifier {
    webhooks: Arc<Vec<Webhook>>,
    mailer: Option<Arc<Mailer>>,
    http: reqwest::Client,
    metrics: Metrics,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Notifier({} webhooks, email: {})",
            self.webhooks.len(),
            self.mailer.is_some()
        )
    }
}

impl Notifier {
    /// Builds the senders; a bad address or server name is a configuration error.
    pub fn new(c: &AlertsConfig, metrics: Metrics) -> Result<Self, String> {
        let mailer = match &c.email {
            None => None,
            Some(e) => {
                let builder = match e.security {
                    Security::Starttls => {
                        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&e.host)
                    }
                    Security::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&e.host),
                    Security::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                        &e.host,
                    )),
                }
                .map_err(|err| format!("alerts.email.host {:?}: {err}", e.host))?;
                let port = e.port.unwrap_or(match e.security {
                    Security::Starttls => 587,
                    Security::Tls => 465,
                    Security::None => 25,
                });
                let mut builder = builder.port(port).timeout(Some(DELIVERY_TIMEOUT));
                if let Some(user) = &e.username {
                    let pw = e
                        .password
                        .as_ref()
                        .map(|p| p.expose().to_string())
                        .unwrap_or_default();
                    builder = builder.credentials(Credentials::new(user.clone(), pw));
                }
                let from: Mailbox = e
                    .from
                    .parse()
                    .map_err(|err| format!("alerts.email.from {:?}: {err}", e.from))?;
                let to =
                    e.to.iter()
                        .map(|t| {
                            t.parse()
                                .map_err(|err| format!("alerts.email.to {t:?}: {err}"))
                        })
                        .collect::<Result<Vec<Mailbox>, _>>()?;
                if to.is_empty() {
                    return Err("alerts.email.to is empty".into());
                }
                Some(Arc::new((builder.build(), from, to)))
            }
        };
        let http = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            .user_agent(concat!("stowage/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        Ok(Self {
            webhooks: Arc::new(c.webhooks.clone()),
            mailer,
            http,
            metrics,
        })
    }

    /// Sends `event` to every webhook and to email, in the background.
    pub fn send(&self, event: Event) {
        tracing::info!(target = %event.target, event = ?event.event, "sending alert");
        for hook in self.webhooks.iter().cloned() {
            let (http, metrics, event) = (self.http.clone(), self.metrics.clone(), event.clone());
            tokio::spawn(async move {
                let body = match hook.format {
                    WebhookFormat::Json => serde_json::to_value(&event).expect("serializable"),
                    WebhookFormat::Slack => serde_json::json!({ "text": text(&event) }),
                    WebhookFormat::Discord => serde_json::json!({ "content": text(&event) }),
                };
                let result = http.post(hook.url.expose()).json(&body).send().await;
                let failure = match result {
                    Ok(r) if r.status().is_success() => None,
                    Ok(r) => Some(format!("HTTP {}", r.status())),
                    Err(e) => Some(redact_url(&e.to_string(), hook.url.expose())),
                };
                if let Some(why) = failure {
                    metrics.alert_failures.with_label_values(&["webhook"]).inc();
                    tracing::warn!(target = %event.target, "webhook delivery failed: {why}");
                }
            });
        }
        if let Some(mailer) = self.mailer.clone() {
            let (metrics, event) = (self.metrics.clone(), event.clone());
            tokio::spawn(async move {
                let (transport, from, to) = &*mailer;
                let mut message = Message::builder()
                    .from(from.clone())
                    .subject(event.summary());
                for t in to {
                    message = message.to(t.clone());
                }
                let sent = match message.body(text(&event)) {
                    Ok(m) => transport
                        .send(m)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                if let Err(why) = sent {
                    metrics.alert_failures.with_label_values(&["email"]).inc();
                    tracing::warn!(target = %event.target, "email delivery failed: {why}");
                }
            });
        }
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
    out.push_str(&format!(
        "last success: {}\n\n{}\n",
        e.last_success
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "never (since stowage started watching)".into()),
        e.message
    ));
    out
}

/// Webhook URLs often hold a token: never print one.
fn redact_url(text: &str, url: &str) -> String {
    text.replace(url, "<webhook url>")
}
