//! `[alerts]` in config, and the channels it builds: each with the events it receives and
//! whether it serves every target or only those whose `stowage.notify` label names it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Deserializer};

use super::email;
use super::event::{Events, Kind};
use super::notify;
use super::webhook::{Webhook, WebhookChannel};
use super::{Channel, ChannelConfigError, http_client};
use crate::secret::Secret;

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
    pub email: Option<email::Email>,
    /// Notification URLs by name (`[alerts.notify.NAME]`).
    #[serde(default)]
    pub notify: BTreeMap<String, NotifyConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            stale_after: default_stale(),
            webhooks: vec![],
            email: None,
            notify: BTreeMap::new(),
        }
    }
}

fn default_stale() -> u64 {
    26 * 3600
}

/// The longest staleness window accepted (ten years, in seconds).
pub const MAX_STALE_AFTER: u64 = 10 * 365 * 24 * 3600;

/// Which targets a channel serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every target.
    #[default]
    All,
    /// Only targets whose `stowage.notify` label names the channel.
    Labelled,
}

/// One `[alerts.notify.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// The notification URL (`ntfys://…`, `gotify://…`, …): a secret.
    #[serde(default)]
    pub url: Option<Secret>,
    /// A file holding the URL (a Docker secret), instead of `url`.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// The events it receives; default every kind but `success`.
    #[serde(default, deserialize_with = "events_list")]
    pub events: Option<Events>,
    /// `all` (default) or `labelled`.
    #[serde(default)]
    pub targets: Scope,
}

/// `events = ["failure", "recovery"]` (or `["all"]`).
pub fn events_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Events>, D::Error> {
    let words: Vec<String> = Vec::deserialize(d)?;
    Events::parse(&words.join(","))
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// A channel with its routing.
#[derive(Clone)]
pub struct Route {
    /// The channel.
    pub channel: Arc<dyn Channel>,
    /// What it receives.
    pub events: Events,
    /// Whom it serves.
    pub scope: Scope,
    /// Its `[alerts.notify.NAME]`, which a label can name.
    pub name: Option<String>,
}

impl Route {
    /// The name used in logs and `alert-test`: `notify.NAME: ntfy (host)` or the channel's.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("notify.{n}: {}", self.channel.name()),
            None => self.channel.name(),
        }
    }
}

/// The configured channels, built and checked; building sends nothing.
#[derive(Clone, Default)]
pub struct Channels {
    /// Every configured channel.
    pub routes: Vec<Route>,
    /// The client HTTP channels share (also for label URLs and pings).
    pub http: Option<reqwest::Client>,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.routes.iter().map(Route::label).collect();
        write!(f, "Channels({names:?})")
    }
}

impl Channels {
    /// Builds every channel of `[alerts]`; returns every problem as (key, reason).
    pub fn from_config(c: &AlertsConfig) -> Result<Self, Vec<ChannelConfigError>> {
        let mut problems = Vec::new();
        let mut routes = Vec::new();
        let http = match http_client() {
            Ok(h) => h,
            Err(reason) => {
                return Err(vec![ChannelConfigError {
                    key: "alerts".into(),
                    reason,
                }]);
            }
        };
        let global = |channel: Arc<dyn Channel>, events: Option<Events>| Route {
            channel,
            events: events.unwrap_or_default(),
            scope: Scope::All,
            name: None,
        };
        for (i, hook) in c.webhooks.iter().enumerate() {
            match WebhookChannel::new(hook, i + 1, http.clone()) {
                Ok(ch) => routes.push(global(Arc::new(ch), hook.events)),
                Err(e) => problems.push(e),
            }
        }
        if let Some(e) = &c.email {
            match email::mailer(e) {
                Ok(m) => routes.push(global(Arc::new(m), e.events)),
                Err(e) => problems.push(e),
            }
        }
        for (name, n) in &c.notify {
            match notify_route(name, n, &http) {
                Ok(r) => routes.push(r),
                Err(e) => problems.push(e),
            }
        }
        if c.stale_after > MAX_STALE_AFTER {
            problems.push(ChannelConfigError {
                key: "alerts.stale_after".into(),
                reason: format!(
                    "{} seconds is more than {MAX_STALE_AFTER} (ten years); use 0 for never",
                    c.stale_after
                ),
            });
        }
        if problems.is_empty() {
            Ok(Self {
                routes,
                http: Some(http),
            })
        } else {
            Err(problems)
        }
    }

    /// Whether any channel is configured.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The names of `[alerts.notify.NAME]`, which `stowage.notify` labels may use.
    pub fn names(&self) -> Vec<String> {
        self.routes.iter().filter_map(|r| r.name.clone()).collect()
    }

    /// The routes that get `kind` for a target whose `stowage.notify` label names `named`.
    pub fn for_target<'a>(
        &'a self,
        kind: Kind,
        named: &'a [String],
    ) -> impl Iterator<Item = &'a Route> + 'a {
        self.routes.iter().filter(move |r| {
            let named_here = r.name.as_ref().is_some_and(|n| named.contains(n));
            r.events.contains(kind) && (r.scope == Scope::All || named_here)
        })
    }
}

/// `[alerts.notify.NAME]`, read (`url_file`) and parsed.
fn notify_route(
    name: &str,
    n: &NotifyConfig,
    http: &reqwest::Client,
) -> Result<Route, ChannelConfigError> {
    let problem = |key: &str, reason: String| ChannelConfigError {
        key: format!("alerts.notify.{name}{key}"),
        reason,
    };
    let url = match (&n.url, &n.url_file) {
        (Some(u), None) => u.clone(),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(text) => Secret::new(text.trim().to_string()),
            Err(e) => {
                return Err(problem(
                    ".url_file",
                    format!("cannot read {}: {e}", path.display()),
                ));
            }
        },
        (Some(_), Some(_)) => {
            return Err(problem("", "set url or url_file, not both".into()));
        }
        (None, None) => {
            return Err(problem(
                ".url",
                "missing: a notification URL (ntfys://, gotify://, tgram://, matrixs://, mqtt://, pover://), or url_file".into(),
            ));
        }
    };
    let parsed = notify::parse(&url, http).map_err(|r| problem(".url", r))?;
    if parsed.events.is_some() && n.events.is_some() {
        return Err(problem(
            "",
            "events are set both in the URL (?events=) and in `events`: keep one".into(),
        ));
    }
    Ok(Route {
        channel: parsed.channel,
        events: n.events.or(parsed.events).unwrap_or_default(),
        scope: n.targets,
        name: Some(name.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::Format as _;

    fn config(toml: &str) -> AlertsConfig {
        figment::Figment::from(figment::providers::Toml::string(toml))
            .extract()
            .unwrap()
    }

    fn names<'a>(routes: impl Iterator<Item = &'a Route>) -> Vec<String> {
        routes.filter_map(|r| r.name.clone()).collect()
    }

    #[test]
    fn routes_follow_events_and_scope() {
        let c = config(
            r#"
            [notify.all]
            url = "ntfy://n.lan/a"
            [notify.done]
            url = "ntfy://n.lan/b"
            events = ["success"]
            [notify.pager]
            url = "gotify://g.lan/T?events=failure,stale"
            targets = "labelled"
            "#,
        );
        let ch = Channels::from_config(&c).unwrap();
        let none: Vec<String> = vec![];
        let pager = vec!["pager".to_string()];
        assert_eq!(names(ch.for_target(Kind::Failure, &none)), ["all"]);
        assert_eq!(
            names(ch.for_target(Kind::Failure, &pager)),
            ["all", "pager"]
        );
        assert_eq!(names(ch.for_target(Kind::Recovery, &pager)), ["all"]);
        assert_eq!(names(ch.for_target(Kind::Success, &pager)), ["done"]);
        assert_eq!(ch.names(), ["all", "done", "pager"]);
    }

    #[test]
    fn mistakes_name_the_key_and_never_the_url() {
        let c = config(
            r#"
            [notify.a]
            url = "ntfy://user:S3CRET@n.lan/"
            [notify.b]
            url = "ntfy://n.lan/t?events=failure"
            events = ["stale"]
            [notify.c]
            events = ["failure"]
            "#,
        );
        let problems = Channels::from_config(&c).err().unwrap();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(text[0].starts_with("alerts.notify.a.url: "), "{text:?}");
        assert!(
            text[1].starts_with("alerts.notify.b: events are set both"),
            "{text:?}"
        );
        assert!(
            text[2].starts_with("alerts.notify.c.url: missing"),
            "{text:?}"
        );
        assert!(text.iter().all(|t| !t.contains("S3CRET")), "{text:?}");
        let bad = figment::Figment::from(figment::providers::Toml::string(
            "[notify.x]\nurl = \"ntfy://n/t\"\nevents = [\"failures\"]",
        ))
        .extract::<AlertsConfig>()
        .err()
        .unwrap();
        assert!(
            bad.to_string().contains("unknown event \"failures\""),
            "{bad}"
        );
    }
}
