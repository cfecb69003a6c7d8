//! Pushover (<https://pushover.net/api>): `POST /1/messages.json`, form fields `token`,
//! `user`, `title`, `message`, `priority` and optionally `device`. `?api=` replaces
//! `https://api.pushover.net` (for a proxy or a test receiver).

use std::time::Duration;

use futures_util::future::BoxFuture;

use super::Parts;
use crate::daemon::alerts::{Channel, DELIVERY_TIMEOUT, DeliveryError, Event, http_outcome, text};
use crate::secret::Secret;

/// Pushover's API.
const API: &str = "https://api.pushover.net";

/// A Pushover application and the user (or group) it notifies.
pub struct Pushover {
    api: String,
    user: Secret,
    token: Secret,
    device: Option<String>,
    http: reqwest::Client,
}

impl Pushover {
    /// `pover://USER_KEY@APP_TOKEN[/DEVICE][?api=URL]`.
    pub fn new(p: &Parts, http: reqwest::Client) -> Result<Self, String> {
        p.only_query(&["api"])?;
        let Some(user) = &p.user else {
            return Err("pover URLs name the user key and the application token: pover://USER_KEY@APP_TOKEN".into());
        };
        if p.path.len() > 1 {
            return Err(
                "pover URLs name at most one device: pover://USER_KEY@APP_TOKEN/DEVICE".into(),
            );
        }
        let api = p.api(API)?;
        Ok(Self {
            api,
            user: Secret::new(user.clone()),
            token: Secret::new(p.authority()),
            device: p.path.first().cloned(),
            http,
        })
    }
}

impl Channel for Pushover {
    fn name(&self) -> String {
        "pushover".into()
    }

    fn kind(&self) -> &'static str {
        "pushover"
    }

    fn timeout(&self) -> Duration {
        DELIVERY_TIMEOUT
    }

    fn deliver<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let priority = if event.event.is_bad() { "1" } else { "0" };
            let (title, message) = (
                super::clip(&event.summary(), 250),
                super::clip(&text(event), 1024),
            );
            let mut form = vec![
                ("token", self.token.expose()),
                ("user", self.user.expose()),
                ("title", title.as_str()),
                ("message", message.as_str()),
                ("priority", priority),
            ];
            if let Some(d) = &self.device {
                form.push(("device", d.as_str()));
            }
            let url = format!("{}/1/messages.json", self.api);
            http_outcome(self.http.post(url).form(&form).send().await)
        })
    }
}
