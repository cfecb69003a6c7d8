//! Telegram bots (<https://core.telegram.org/bots/api#sendmessage>):
//! `POST {api}/bot<TOKEN>/sendMessage` with `{"chat_id", "text"}` to each chat. `?api=`
//! points at a local Bot API server instead of `https://api.telegram.org`.

use std::time::Duration;

use futures_util::future::BoxFuture;

use super::Parts;
use crate::daemon::alerts::{Channel, DELIVERY_TIMEOUT, DeliveryError, Event, http_outcome, text};
use crate::secret::Secret;

/// Telegram's own Bot API server.
const API: &str = "https://api.telegram.org";

/// A bot and the chats it writes to.
pub struct Telegram {
    api: String,
    token: Secret,
    chats: Vec<String>,
    http: reqwest::Client,
}

impl Telegram {
    /// `tgram://BOT_TOKEN/CHAT_ID[/CHAT_ID…][?api=URL]`.
    pub fn new(p: &Parts, http: reqwest::Client) -> Result<Self, String> {
        p.only_query(&["api"])?;
        // The token (`123456:ABC…`) was read as host and maybe port.
        let token = p.authority();
        if !token.contains(':') {
            return Err(
                "the bot token (from @BotFather) looks like 123456:ABC-DEF…: tgram://TOKEN/CHAT_ID"
                    .into(),
            );
        }
        if p.path.is_empty() {
            return Err("no chat: tgram://TOKEN/CHAT_ID (a number, or @channelname)".into());
        }
        let api = p.api(API)?;
        Ok(Self {
            api,
            token: Secret::new(token),
            chats: p.path.clone(),
            http,
        })
    }
}

impl Channel for Telegram {
    fn name(&self) -> String {
        format!("telegram ({} chat(s))", self.chats.len())
    }

    fn kind(&self) -> &'static str {
        "telegram"
    }

    fn timeout(&self) -> Duration {
        DELIVERY_TIMEOUT
    }

    fn deliver<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let url = format!("{}/bot{}/sendMessage", self.api, self.token.expose());
            let message = super::clip(&text(event), 4096);
            for chat in &self.chats {
                let body = serde_json::json!({ "chat_id": chat, "text": message });
                http_outcome(self.http.post(&url).json(&body).send().await)?;
            }
            Ok(())
        })
    }
}
