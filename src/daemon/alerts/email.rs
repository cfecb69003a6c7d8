//! The email channel: SMTP through lettre, with STARTTLS (required), implicit TLS or (for
//! a local relay) none, an optional login, and extra CA roots for a private relay.

use std::time::Duration;

use futures_util::future::BoxFuture;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;

use super::{Channel, ChannelConfigError, DELIVERY_TIMEOUT, DeliveryError, Event, text};
use crate::secret::Secret;

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
    /// The events it receives; default every kind but `success`.
    #[serde(default, deserialize_with = "super::config::events_list")]
    pub events: Option<super::Events>,
}

/// The SMTP transport, sender and recipients: the email channel, ready to deliver.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// `host:port (security)`, for messages.
    server: String,
    from: Mailbox,
    to: Vec<Mailbox>,
}

/// Builds the mailer; a bad address, server name or CA file is a configuration error (the
/// reason names the key).
pub fn mailer(e: &Email) -> Result<Mailer, ChannelConfigError> {
    build(e).map_err(|reason| ChannelConfigError {
        key: "alerts.email".into(),
        reason,
    })
}

fn build(e: &Email) -> Result<Mailer, String> {
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

impl Channel for Mailer {
    fn name(&self) -> String {
        format!(
            "email to {} recipient(s) via {}",
            self.to.len(),
            self.server
        )
    }

    fn kind(&self) -> &'static str {
        "email"
    }

    fn timeout(&self) -> Duration {
        DELIVERY_TIMEOUT
    }

    fn deliver<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let mut message = Message::builder()
                .from(self.from.clone())
                .subject(event.summary());
            for t in &self.to {
                message = message.to(t.clone());
            }
            let message = message
                .body(text(event))
                .map_err(|e| DeliveryError::Message(e.to_string()))?;
            // lettre's own timeout does not cover every read: a server that stops answering
            // mid-dialogue would hold the task forever, so the caller's timeout bounds it.
            self.transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(DeliveryError::Mail)
        })
    }
}
