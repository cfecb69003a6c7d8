//! The webhook channel: a JSON POST of the event (stowage's own schema), or a Slack or
//! Discord message.

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Deserialize;

use super::{Channel, ChannelConfigError, DeliveryError, Event, text};
use crate::secret::Secret;

/// A webhook receiver (`[[alerts.webhooks]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// Where to POST.
    pub url: Secret,
    /// `json` (the [`Event`] itself), `slack` (`{"text": …}`) or `discord` (`{"content": …}`).
    #[serde(default)]
    pub format: WebhookFormat,
    /// The events it receives; default every kind but `success`.
    #[serde(default, deserialize_with = "super::config::events_list")]
    pub events: Option<super::Events>,
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

/// A webhook, ready to deliver.
pub struct WebhookChannel {
    hook: Webhook,
    /// 1-based position in the config, for messages.
    number: usize,
    http: reqwest::Client,
}

impl WebhookChannel {
    /// Checks the URL (http or https) and keeps the shared client. The error is a reason
    /// that never shows the URL, which often holds a token.
    pub fn new(
        hook: &Webhook,
        number: usize,
        http: reqwest::Client,
    ) -> Result<Self, ChannelConfigError> {
        let invalid = |reason| ChannelConfigError {
            key: format!("alerts.webhooks[{}].url", number - 1),
            reason,
        };
        match url::Url::parse(hook.url.expose()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(Self {
                hook: hook.clone(),
                number,
                http,
            }),
            Ok(u) => Err(invalid(format!(
                "the scheme {:?} is not http or https",
                u.scheme()
            ))),
            Err(e) => Err(invalid(format!("not a URL ({e})"))),
        }
    }
}

impl Channel for WebhookChannel {
    fn name(&self) -> String {
        format!("webhook {} ({:?})", self.number, self.hook.format).to_lowercase()
    }

    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn timeout(&self) -> Duration {
        super::DELIVERY_TIMEOUT
    }

    fn deliver<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let body = match self.hook.format {
                WebhookFormat::Json => serde_json::to_value(event).expect("serializable"),
                WebhookFormat::Slack => serde_json::json!({ "text": text(event) }),
                WebhookFormat::Discord => serde_json::json!({ "content": text(event) }),
            };
            let url = self.hook.url.expose();
            super::http_outcome(self.http.post(url).json(&body).send().await)
        })
    }
}
