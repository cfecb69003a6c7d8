//! Matrix (client-server API, <https://spec.matrix.org/latest/client-server-api/>): an
//! `m.text` message `PUT` to `/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}`
//! with the access token as a Bearer token. A room alias (`#name:server`) is resolved
//! through `/_matrix/client/v3/directory/room/{alias}` first. The user must have joined
//! the room.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::Parts;
use crate::daemon::alerts::{Channel, DELIVERY_TIMEOUT, DeliveryError, Event, http_outcome, text};
use crate::secret::Secret;

/// Makes each transaction id of this process unique.
static TXN: AtomicU64 = AtomicU64::new(0);

/// A Matrix room and the token that writes to it.
pub struct Matrix {
    base: String,
    authority: String,
    room: String,
    token: Secret,
    http: reqwest::Client,
}

fn encode(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

impl Matrix {
    /// `matrix[s]://[user]:ACCESS_TOKEN@host[:port]/ROOM` (the token may also stand alone
    /// before `@`).
    pub fn new(p: &Parts, http: reqwest::Client) -> Result<Self, String> {
        p.only_query(&[])?;
        let Some(token) = p.password.clone().or_else(|| p.user.clone()) else {
            return Err(
                "matrix URLs carry an access token: matrixs://:TOKEN@host/!room:server".into(),
            );
        };
        let room = p.path.join("/");
        if !(room.starts_with('!') || room.starts_with('#')) || !room.contains(':') {
            return Err(
                "the room is a room id (!abc:server) or an alias (#name:server), after the host"
                    .into(),
            );
        }
        Ok(Self {
            base: p.base("matrix"),
            authority: p.authority(),
            room,
            token: Secret::new(token),
            http,
        })
    }

    /// The room id: the URL's, or its alias resolved.
    async fn room_id(&self) -> Result<String, DeliveryError> {
        if self.room.starts_with('!') {
            return Ok(self.room.clone());
        }
        let url = format!(
            "{}/_matrix/client/v3/directory/room/{}",
            self.base,
            encode(&self.room)
        );
        let response = self
            .http
            .get(url)
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(|e| DeliveryError::Request(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(DeliveryError::Status(response.status().as_u16()));
        }
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| DeliveryError::Request(e.without_url().to_string()))?;
        body["room_id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| DeliveryError::Message("the alias did not resolve to a room id".into()))
    }
}

impl Channel for Matrix {
    fn name(&self) -> String {
        format!("matrix ({})", self.authority)
    }

    fn kind(&self) -> &'static str {
        "matrix"
    }

    fn timeout(&self) -> Duration {
        DELIVERY_TIMEOUT
    }

    fn deliver<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let room = self.room_id().await?;
            let txn = format!(
                "stowage-{}-{}-{}",
                std::process::id(),
                chrono::Utc::now().timestamp_micros(),
                TXN.fetch_add(1, Ordering::Relaxed)
            );
            let url = format!(
                "{}/_matrix/client/v3/rooms/{}/send/m.room.message/{txn}",
                self.base,
                encode(&room)
            );
            let body = serde_json::json!({ "msgtype": "m.text", "body": text(event) });
            let req = self
                .http
                .put(url)
                .bearer_auth(self.token.expose())
                .json(&body);
            http_outcome(req.send().await)
        })
    }
}
