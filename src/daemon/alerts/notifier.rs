//! Sending: every event goes to the routes that take it, each delivery in its own task with
//! its channel's timeout, so a channel that hangs or refuses delays nothing else; failures
//! are logged (never with a URL) and counted by channel kind.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures_util::future::join_all;

use super::config::{Channels, Route, Scope};
use super::event::{Event, Kind};
use super::{DeliveryError, deliver, http_client, notify};
use crate::daemon::metrics::Metrics;
use crate::plan::Target;

/// What a target's `stowage.notify` label adds: names of `[alerts.notify.NAME]` and its own
/// URLs' channels.
#[derive(Default)]
struct Labelled {
    names: Vec<String>,
    urls: Vec<Route>,
    /// What is wrong with the label (logged when it first shows, not at every discovery).
    problems: Vec<String>,
}

/// Sends alerts and pings in the background.
#[derive(Clone)]
pub struct Notifier {
    channels: Channels,
    http: reqwest::Client,
    metrics: Metrics,
    targets: Arc<RwLock<HashMap<String, Labelled>>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Notifier({:?})", self.channels)
    }
}

impl Notifier {
    /// A notifier over checked channels.
    pub fn new(channels: Channels, metrics: Metrics) -> Self {
        let http = channels
            .http
            .clone()
            .unwrap_or_else(|| http_client().expect("checked when the channels were built"));
        Self {
            channels,
            http,
            metrics,
            targets: Arc::default(),
        }
    }

    /// Takes the targets' `stowage.notify` labels (after each discovery). An entry that
    /// cannot be used is logged and left out: a notification mistake never stops a backup
    /// (`stowage plan` shows it too).
    pub fn set_targets<'a>(&self, targets: impl IntoIterator<Item = &'a Target>) {
        let mut map = HashMap::new();
        let mut current = self.targets.write().unwrap_or_else(|e| e.into_inner());
        for t in targets {
            let (mut labelled, problems) = self.labelled(t);
            let known = current.get(&t.name).map_or(&[][..], |l| &l.problems[..]);
            for p in problems.iter().filter(|p| !known.contains(p)) {
                tracing::warn!(target = %t.name, "label stowage.notify: {p}");
            }
            labelled.problems = problems;
            map.insert(t.name.clone(), labelled);
        }
        *current = map;
    }

    /// The label's names and URL channels, and what is wrong with it.
    fn labelled(&self, t: &Target) -> (Labelled, Vec<String>) {
        let mut out = Labelled::default();
        let mut problems = Vec::new();
        let known = self.channels.names();
        for item in &t.notify {
            match label_item(item, &known, &self.http) {
                Ok(Item::Name(n)) => out.names.push(n),
                Ok(Item::Url(route)) => out.urls.push(*route),
                Err(p) => problems.push(p),
            }
        }
        (out, problems)
    }

    /// What is wrong with `target`'s `stowage.notify` label (for `stowage plan`).
    pub fn label_problems(&self, target: &Target) -> Vec<String> {
        self.labelled(target).1
    }

    /// The routes that take `event`: a test event goes to every configured channel.
    fn routes(&self, event: &Event) -> Vec<Route> {
        let targets = self.targets.read().unwrap_or_else(|e| e.into_inner());
        let labelled = targets.get(&event.target);
        let names = labelled.map_or(&[][..], |l| &l.names[..]);
        let mut out: Vec<Route> = if event.event == Kind::Test {
            self.channels.routes.clone()
        } else {
            self.channels
                .for_target(event.event, names)
                .cloned()
                .collect()
        };
        let urls = labelled.into_iter().flat_map(|l| &l.urls);
        out.extend(
            urls.filter(|r| event.event == Kind::Test || r.events.contains(event.event))
                .cloned(),
        );
        out
    }

    /// Sends `event` to the channels that take it, each in its own task. A failed delivery
    /// is logged and counted.
    pub fn send(&self, event: Event) {
        let routes = self.routes(&event);
        if routes.is_empty() {
            return;
        }
        tracing::info!(target = %event.target, event = event.event.name(), channels = routes.len(), "sending alert");
        for route in routes {
            let (metrics, event) = (self.metrics.clone(), event.clone());
            tokio::spawn(async move {
                if let Err(why) = deliver(route.channel.as_ref(), &event).await {
                    metrics
                        .alert_failures
                        .with_label_values(&[route.channel.kind()])
                        .inc();
                    tracing::warn!(target = %event.target, channel = %route.label(), "alert delivery failed: {}", crate::error_text::one_line(&why));
                }
            });
        }
    }

    /// Sends `event` to the channels that take it now, all at once, and returns each
    /// channel's name and result (for commands that end right after, and `alert-test`).
    pub async fn deliver_all(&self, event: &Event) -> Vec<(String, Result<(), DeliveryError>)> {
        let routes = self.routes(event);
        let sends = routes.iter().map(|r| deliver(r.channel.as_ref(), event));
        let results = join_all(sends).await;
        routes.iter().map(Route::label).zip(results).collect()
    }

    /// Sends `event` (a test) to every configured channel and every channel a target's label
    /// adds, all at once (for `stowage alert-test`).
    pub async fn test_all(&self, event: &Event) -> Vec<(String, Result<(), DeliveryError>)> {
        let mut routes: Vec<(String, Route)> = self
            .channels
            .routes
            .iter()
            .map(|r| (r.label(), r.clone()))
            .collect();
        {
            let targets = self.targets.read().unwrap_or_else(|e| e.into_inner());
            let mut names: Vec<&String> = targets.keys().collect();
            names.sort();
            for name in names {
                for r in &targets[name].urls {
                    routes.push((format!("{name}: {}", r.label()), r.clone()));
                }
            }
        }
        let sends = routes
            .iter()
            .map(|(_, r)| deliver(r.channel.as_ref(), event));
        let results = join_all(sends).await;
        routes.into_iter().map(|(n, _)| n).zip(results).collect()
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
                // The ping URL is the check's secret: never in the log.
                Err(e) => Some(crate::error_text::one_line(&e.without_url())),
            };
            if let Some(why) = failure {
                metrics.alert_failures.with_label_values(&["ping"]).inc();
                tracing::warn!(target = %target, "ping {suffix:?} failed: {why}");
            }
        });
    }
}

/// One entry of a `stowage.notify` label.
pub enum Item {
    /// The name of an `[alerts.notify.NAME]`.
    Name(String),
    /// A URL of its own.
    Url(Box<Route>),
}

/// Reads one `stowage.notify` entry: a configured name, or a URL (its channel serves only
/// this target).
pub fn label_item(
    item: &crate::secret::Secret,
    known: &[String],
    http: &reqwest::Client,
) -> Result<Item, String> {
    let text = item.expose();
    if !text.contains("://") {
        if known.iter().any(|k| k == text) {
            return Ok(Item::Name(text.to_string()));
        }
        return Err(format!(
            "{text:?} is neither a URL nor a configured [alerts.notify.NAME] (configured: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ));
    }
    let parsed = notify::parse(item, http).map_err(|e| format!("{}: {e}", notify::redact(text)))?;
    Ok(Item::Url(Box::new(Route {
        channel: parsed.channel,
        events: parsed.events.unwrap_or_default(),
        scope: Scope::Labelled,
        name: None,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn client() -> reqwest::Client {
        reqwest::Client::new()
    }

    #[test]
    fn label_items_are_names_or_urls() {
        let known = vec!["phone".to_string()];
        assert!(matches!(
            label_item(&Secret::new("phone"), &known, &client()),
            Ok(Item::Name(n)) if n == "phone"
        ));
        assert!(matches!(
            label_item(&Secret::new("gotify://g.lan/Tok"), &known, &client()),
            Ok(Item::Url(_))
        ));
        let err = label_item(&Secret::new("pager"), &known, &client())
            .err()
            .unwrap();
        assert!(err.contains("phone"), "{err}");
        let err = label_item(&Secret::new("gotify://g.lan"), &known, &client())
            .err()
            .unwrap();
        assert!(err.starts_with("gotify://g.lan/…"), "{err}");
    }
}
