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
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
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
    /// Sent by `stowage alert-test` to check the configuration.
    Test,
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
            Kind::Test => "stowage: test alert".to_string(),
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
            message: "This is a test alert sent by `stowage alert-test`. If you read it, alerts reach you.".into(),
            last_success: None,
            instance,
            stowage_version: env!("CARGO_PKG_VERSION"),
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
    /// PEM file of extra CA certificates to trust for the server (for a relay with a private
    /// CA or a self-signed certificate); the system's roots are trusted as well.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
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
struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// `host:port (security)`, for messages.
    server: String,
    from: Mailbox,
    to: Vec<Mailbox>,
}

/// Builds the mailer; a bad address, server name or CA file is a configuration error.
fn mailer(e: &Email) -> Result<Mailer, String> {
    type Transport = AsyncSmtpTransport<Tokio1Executor>;
    let tls = |wrap: fn(TlsParameters) -> Tls| -> Result<Tls, String> {
        let mut params = TlsParameters::builder(e.host.clone());
        if let Some(path) = &e.ca_file {
            let pem = std::fs::read(path)
                .map_err(|err| format!("alerts.email.ca_file {}: {err}", path.display()))?;
            let cert = Certificate::from_pem(&pem).map_err(|err| {
                format!(
                    "alerts.email.ca_file {}: not PEM certificates: {err}",
                    path.display()
                )
            })?;
            params = params.add_root_certificate(cert);
        }
        let params = params
            .build_rustls()
            .map_err(|err| format!("alerts.email: TLS setup for {:?}: {err}", e.host))?;
        Ok(wrap(params))
    };
    let (security, default_port, tls) = match e.security {
        Security::Starttls => ("STARTTLS", 587, tls(Tls::Required)?),
        Security::Tls => ("TLS", 465, tls(Tls::Wrapper)?),
        Security::None => ("no encryption", 25, Tls::None),
    };
    let port = e.port.unwrap_or(default_port);
    let mut builder = Transport::builder_dangerous(&e.host)
        .port(port)
        .tls(tls)
        .timeout(Some(DELIVERY_TIMEOUT));
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
    Ok(Mailer {
        transport: builder.build(),
        server: format!("{}:{port} ({security})", e.host),
        from,
        to,
    })
}

/// POSTs `event` to one webhook in its format.
async fn post_webhook(http: &reqwest::Client, hook: &Webhook, event: &Event) -> Result<(), String> {
    let body = match hook.format {
        WebhookFormat::Json => serde_json::to_value(event).expect("serializable"),
        WebhookFormat::Slack => serde_json::json!({ "text": text(event) }),
        WebhookFormat::Discord => serde_json::json!({ "content": text(event) }),
    };
    match http.post(hook.url.expose()).json(&body).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("HTTP {}", r.status())),
        Err(e) => Err(redact_url(&e.to_string(), hook.url.expose())),
    }
}

/// Mails `event` to the recipients.
async fn send_mail(mailer: &Mailer, event: &Event) -> Result<(), String> {
    let mut message = Message::builder()
        .from(mailer.from.clone())
        .subject(event.summary());
    for t in &mailer.to {
        message = message.to(t.clone());
    }
    let message = message.body(text(event)).map_err(|e| e.to_string())?;
    // lettre's own timeout does not cover every read: a server that stops answering
    // mid-dialogue would hold the task forever.
    match tokio::time::timeout(DELIVERY_TIMEOUT, mailer.transport.send(message)).await {
        Ok(Ok(_)) => Ok(()),
        // lettre keeps the TLS failure or the server's reply in the error's source.
        Ok(Err(e)) => Err(crate::error_text::one_line(&e)),
        Err(_) => Err(format!("no answer within {} s", DELIVERY_TIMEOUT.as_secs())),
    }
}

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
        let mailer = c.email.as_ref().map(mailer).transpose()?.map(Arc::new);
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

    /// Sends `event` to every webhook and to email, in the background. A failed delivery is
    /// logged and counted.
    pub fn send(&self, event: Event) {
        tracing::info!(target = %event.target, event = ?event.event, "sending alert");
        for hook in self.webhooks.iter() {
            let (http, metrics, event) = (self.http.clone(), self.metrics.clone(), event.clone());
            let hook = hook.clone();
            tokio::spawn(async move {
                if let Err(why) = post_webhook(&http, &hook, &event).await {
                    metrics.alert_failures.with_label_values(&["webhook"]).inc();
                    tracing::warn!(target = %event.target, "webhook delivery failed: {why}");
                }
            });
        }
        if let Some(mailer) = self.mailer.clone() {
            let (metrics, event) = (self.metrics.clone(), event.clone());
            tokio::spawn(async move {
                if let Err(why) = send_mail(&mailer, &event).await {
                    metrics.alert_failures.with_label_values(&["email"]).inc();
                    tracing::warn!(target = %event.target, server = %mailer.server, "email delivery failed: {why}");
                }
            });
        }
    }

    /// Sends `event` to every webhook and to email now, one after the other, and returns each
    /// channel's result (for `stowage alert-test`).
    pub async fn deliver_all(&self, event: &Event) -> Vec<(String, Result<(), String>)> {
        let mut out = Vec::new();
        for (i, hook) in self.webhooks.iter().enumerate() {
            let name = format!("webhook {} ({:?})", i + 1, hook.format).to_lowercase();
            out.push((name, post_webhook(&self.http, hook, event).await));
        }
        if let Some(mailer) = &self.mailer {
            let name = format!(
                "email to {} recipient(s) via {}",
                mailer.to.len(),
                mailer.server
            );
            out.push((name, send_mail(mailer, event).await));
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
