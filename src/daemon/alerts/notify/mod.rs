//! Notification URLs in the Apprise/shoutrrr style: one string names the service, where it
//! lives and its credentials. Each service is one file behind [`super::Channel`].
//!
//! | URL | Service |
//! |---|---|
//! | `ntfy://[user:password@\|token@]host[:port]/topic` (`ntfys://`: HTTPS) | ntfy |
//! | `gotify://host[:port][/path]/APP_TOKEN` (`gotifys://`) | Gotify |
//! | `tgram://BOT_TOKEN/CHAT_ID[/CHAT_ID…]` | Telegram bot |
//! | `matrix://[user]:ACCESS_TOKEN@host[:port]/ROOM` (`matrixs://`; ROOM `!id:server` or `#alias:server`) | Matrix |
//! | `mqtt://[user:password@]host[:port]/topic/levels` (`mqtts://`) | MQTT 3.1.1 |
//! | `pover://USER_KEY@APP_TOKEN[/DEVICE]` | Pushover |
//!
//! Every URL takes `?events=failure,recovery,…` (which events it receives). A URL holds
//! secrets: it is kept in a [`Secret`] and only [`redact`]ed forms are ever shown.

mod gotify;
mod matrix;
mod mqtt;
mod ntfy;
mod pushover;
mod telegram;

use std::sync::Arc;

use percent_encoding::percent_decode_str;

use super::Channel;
use super::event::Events;
use crate::secret::Secret;

/// The schemes [`parse`] knows.
pub const SCHEMES: &str =
    "ntfy, ntfys, gotify, gotifys, tgram, matrix, matrixs, mqtt, mqtts, pover";

/// A parsed notification URL: its channel and, if the URL says, its events.
pub struct Parsed {
    /// Ready to deliver.
    pub channel: Arc<dyn Channel>,
    /// `?events=` of the URL.
    pub events: Option<Events>,
}

/// A URL taken apart. Userinfo and path segments are percent-decoded.
#[derive(Debug, Default)]
pub struct Parts {
    /// The scheme, lowercase.
    pub scheme: String,
    /// Before `:` in the userinfo.
    pub user: Option<String>,
    /// After `:` in the userinfo.
    pub password: Option<String>,
    /// The host (for `tgram://` and `pover://` the token, which may hold a `:`).
    pub host: String,
    /// The port, when given.
    pub port: Option<u16>,
    /// Non-empty path segments.
    pub path: Vec<String>,
    /// Query pairs other than `events`.
    pub query: Vec<(String, String)>,
}

impl Parts {
    /// Whether the scheme ends in `s` (HTTPS or TLS), given the plain one.
    pub fn tls(&self, plain: &str) -> bool {
        self.scheme != plain
    }

    /// `host[:port]`, for messages and base URLs.
    pub fn authority(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }

    /// A query value.
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Refuses query keys other than `known` (a typo must not pass silently).
    pub fn only_query(&self, known: &[&str]) -> Result<(), String> {
        match self
            .query
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()))
        {
            Some((k, _)) if known.is_empty() => Err(format!(
                "unknown query parameter {k:?}; this service takes only events"
            )),
            Some((k, _)) => Err(format!(
                "unknown query parameter {k:?}; known: events, {}",
                known.join(", ")
            )),
            None => Ok(()),
        }
    }

    /// `?api=` (an http or https base URL) or the service's own `default`.
    pub fn api(&self, default: &str) -> Result<String, String> {
        let api = self.query("api").unwrap_or(default).trim_end_matches('/');
        if api.starts_with("http://") || api.starts_with("https://") {
            Ok(api.to_string())
        } else {
            Err("?api= must be an http:// or https:// URL".into())
        }
    }

    /// `http(s)://authority` for a service whose plain scheme is `plain`.
    pub fn base(&self, plain: &str) -> String {
        let scheme = if self.tls(plain) { "https" } else { "http" };
        format!("{scheme}://{}", self.authority())
    }
}

/// `text` cut to at most `max` characters (a service's message limit), marked when cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Takes `url` apart (never showing it in an error).
pub fn split(url: &str) -> Result<(Parts, Option<Events>), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("not a notification URL (scheme://…); known schemes: {SCHEMES}"))?;
    let (body, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut parts = Parts {
        scheme: scheme.to_ascii_lowercase(),
        ..Parts::default()
    };
    let mut events = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if k == "events" {
            events = Some(Events::parse(&v).map_err(|e| format!("?events=: {e}"))?);
        } else {
            parts.query.push((k.into_owned(), v.into_owned()));
        }
    }
    let (authority, path) = body.split_once('/').unwrap_or((body, ""));
    let hostport = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            parts.user = Some(decode(user)).filter(|u| !u.is_empty());
            parts.password = password.map(decode).filter(|p| !p.is_empty());
            hostport
        }
        None => authority,
    };
    parts.host = match hostport.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            parts.port = Some(
                port.parse()
                    .map_err(|_| format!("port {port} is out of range"))?,
            );
            host.to_string()
        }
        _ => hostport.to_string(),
    };
    parts.path = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect();
    Ok((parts, events))
}

/// Builds the channel `url` names. The error never holds the URL.
pub fn parse(url: &Secret, http: &reqwest::Client) -> Result<Parsed, String> {
    let (parts, events) = split(url.expose().trim())?;
    if parts.host.is_empty() {
        return Err(format!("{}:// URL without a host", parts.scheme));
    }
    let channel: Arc<dyn Channel> = match parts.scheme.as_str() {
        "ntfy" | "ntfys" => Arc::new(ntfy::Ntfy::new(&parts, http.clone())?),
        "gotify" | "gotifys" => Arc::new(gotify::Gotify::new(&parts, http.clone())?),
        "tgram" => Arc::new(telegram::Telegram::new(&parts, http.clone())?),
        "matrix" | "matrixs" => Arc::new(matrix::Matrix::new(&parts, http.clone())?),
        "mqtt" | "mqtts" => Arc::new(mqtt::Mqtt::new(&parts)?),
        "pover" => Arc::new(pushover::Pushover::new(&parts, http.clone())?),
        other => {
            return Err(format!(
                "unknown scheme {other:?}; known: {SCHEMES} (webhooks and email go in [alerts.webhooks] and [alerts.email])"
            ));
        }
    };
    Ok(Parsed { channel, events })
}

/// What `url` may show: its scheme and host, never credentials, tokens, topics or rooms.
pub fn redact(url: &str) -> String {
    match split(url) {
        Ok((p, _)) if matches!(p.scheme.as_str(), "tgram" | "pover") => format!("{}://…", p.scheme),
        Ok((p, _)) => format!("{}://{}/…", p.scheme, p.authority()),
        Err(_) => "(not a URL)".into(),
    }
}

#[cfg(test)]
mod tests;
