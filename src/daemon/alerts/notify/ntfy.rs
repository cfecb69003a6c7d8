//! ntfy (<https://docs.ntfy.sh/publish/>): a JSON publish to the server's root URL,
//! `{"topic", "title", "message", "priority", "tags"}`; a user and password as Basic auth, a
//! token alone (`tk_…@host`) as a Bearer token.

use std::time::Duration;

use futures_util::future::BoxFuture;

use super::Parts;
use crate::daemon::alerts::{Channel, DELIVERY_TIMEOUT, DeliveryError, Event, http_outcome, text};
use crate::secret::Secret;

/// How ntfy authenticates the publisher.
enum Auth {
    None,
    Basic(String, Secret),
    Bearer(Secret),
}

/// An ntfy topic.
pub struct Ntfy {
    base: String,
    authority: String,
    topic: Secret,
    auth: Auth,
    http: reqwest::Client,
}

impl Ntfy {
    /// `ntfy[s]://[user:password@|token@]host[:port]/topic`.
    pub fn new(p: &Parts, http: reqwest::Client) -> Result<Self, String> {
        p.only_query(&[])?;
        let [topic] = &p.path[..] else {
            return Err("ntfy URLs name one topic: ntfys://host/topic".into());
        };
        let auth = match (&p.user, &p.password) {
            (Some(u), Some(pw)) => Auth::Basic(u.clone(), Secret::new(pw.clone())),
            (Some(token), None) | (None, Some(token)) => Auth::Bearer(Secret::new(token.clone())),
            (None, None) => Auth::None,
        };
        Ok(Self {
            base: p.base("ntfy"),
            authority: p.authority(),
            topic: Secret::new(topic.clone()),
            auth,
            http,
        })
    }
}

impl Channel for Ntfy {
    fn name(&self) -> String {
        format!("ntfy ({})", self.authority)
    }

    fn kind(&self) -> &'static str {
        "ntfy"
    }

    fn timeout(&self) -> Duration {
        DELIVERY_TIMEOUT
    }

    fn deliver<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let bad = event.event.is_bad();
            let body = serde_json::json!({
                "topic": self.topic.expose(),
                "title": event.summary(),
                "message": text(event),
                "priority": if bad { 4 } else { 3 },
                "tags": [if bad { "warning" } else { "floppy_disk" }, event.event.name()],
            });
            let mut req = self.http.post(format!("{}/", self.base)).json(&body);
            req = match &self.auth {
                Auth::None => req,
                Auth::Basic(u, p) => req.basic_auth(u, Some(p.expose())),
                Auth::Bearer(t) => req.bearer_auth(t.expose()),
            };
            http_outcome(req.send().await)
        })
    }
}
