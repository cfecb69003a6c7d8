//! Gotify (<https://gotify.net/docs/pushmsg>): `POST /message` with the application token
//! in the `X-Gotify-Key` header and `{"title", "message", "priority"}`.

use std::time::Duration;

use futures_util::future::BoxFuture;

use super::Parts;
use crate::daemon::alerts::{Channel, DELIVERY_TIMEOUT, DeliveryError, Event, http_outcome, text};
use crate::secret::Secret;

/// A Gotify application.
pub struct Gotify {
    /// `http(s)://host[:port][/path]/message`.
    endpoint: String,
    authority: String,
    token: Secret,
    http: reqwest::Client,
}

impl Gotify {
    /// `gotify[s]://host[:port][/path]/APP_TOKEN`.
    pub fn new(p: &Parts, http: reqwest::Client) -> Result<Self, String> {
        p.only_query(&[])?;
        let Some((token, prefix)) = p.path.split_last() else {
            return Err("gotify URLs end with the application token: gotifys://host/TOKEN".into());
        };
        let mut endpoint = p.base("gotify");
        for segment in prefix {
            endpoint.push('/');
            endpoint.push_str(segment);
        }
        endpoint.push_str("/message");
        Ok(Self {
            endpoint,
            authority: p.authority(),
            token: Secret::new(token.clone()),
            http,
        })
    }
}

impl Channel for Gotify {
    fn name(&self) -> String {
        format!("gotify ({})", self.authority)
    }

    fn kind(&self) -> &'static str {
        "gotify"
    }

    fn timeout(&self) -> Duration {
        DELIVERY_TIMEOUT
    }

    fn deliver<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let body = serde_json::json!({
                "title": event.summary(),
                "message": text(event),
                "priority": if event.event.is_bad() { 8 } else { 4 },
            });
            let req = self
                .http
                .post(&self.endpoint)
                .header("X-Gotify-Key", self.token.expose())
                .json(&body);
            http_outcome(req.send().await)
        })
    }
}
