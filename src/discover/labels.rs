//! The `stowage.*` labels of one container, parsed and checked, and Baktainer's labels
//! mapped onto them.
//!
//! This module knows the label vocabulary and the rules for label values that will be used
//! as names (no path traversal, nothing a dump tool would read as an option or a connection
//! string). It does not know engines: engine variables (`stowage.user`, `stowage.password`,
//! …) are passed through for [`crate::plan`] to check against the engine's spec.

use std::collections::BTreeMap;

use crate::error_text::{SHOWN, shorten};

/// The prefix of every label stowage reads.
pub const PREFIX: &str = "stowage.";

/// Baktainer's labels and the `stowage.*` key each one stands for. A `stowage.*` label wins
/// when both are present. `baktainer.db.all=true` stands for `stowage.database=all`, and
/// `baktainer.compress` is accepted but has no effect (stowage always compresses).
pub const BAKTAINER: [(&str, &str); 6] = [
    ("baktainer.backup", "enable"),
    ("baktainer.db.engine", "engine"),
    ("baktainer.db.name", "database"),
    ("baktainer.db.user", "user"),
    ("baktainer.db.password", "password"),
    ("baktainer.name", "name"),
];

/// The Baktainer label that enables a container, as `stowage.enable` does.
pub const BAKTAINER_ENABLE: &str = "baktainer.backup";

/// Labels with a fixed meaning; any other `stowage.<key>` is an engine variable.
pub const CORE_KEYS: [&str; 20] = [
    "enable",
    "engine",
    "name",
    "schedule",
    "database",
    "instance",
    "encrypt",
    "retention",
    "storage",
    "ping_url",
    "drill",
    "pre",
    "post",
    "hook_timeout",
    "volumes",
    "paths",
    "stop",
    "stop_group",
    "format",
    "notify",
];

/// The parsed labels of one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    /// `stowage.enable`: whether the container is backed up.
    pub enable: bool,
    /// `stowage.engine`: engine name, overriding detection.
    pub engine: Option<String>,
    /// `stowage.name`: target name, default the container name.
    pub name: Option<String>,
    /// `stowage.schedule`: cron line, default the config's `schedule`.
    pub schedule: Option<String>,
    /// `stowage.database`: `all`, one name or a comma-separated list.
    pub database: Option<String>,
    /// `stowage.encrypt`: encrypt this target's artifacts (default: when keys are configured).
    pub encrypt: Option<bool>,
    /// `stowage.retention`: this target's retention policy, replacing the default.
    pub retention: Option<String>,
    /// `stowage.storage`: the storages this target goes to (`none`, or names).
    pub storage: Option<String>,
    /// `stowage.ping_url`: a healthchecks-style URL pinged on start, success and failure.
    pub ping_url: Option<String>,
    /// `stowage.drill`: `false` (no restore drills), `true`, or a cron line for them.
    pub drill: Option<String>,
    /// `stowage.pre`: argv exec'd in the container before the backup (a JSON array).
    pub pre: Option<Vec<String>>,
    /// `stowage.post`: argv exec'd in the container after the backup, whatever its outcome.
    pub post: Option<Vec<String>>,
    /// `stowage.hook_timeout`: seconds each hook may run.
    pub hook_timeout: Option<u64>,
    /// `stowage.volumes`: `all`, or volume names and mount destinations (comma-separated).
    pub volumes: Option<String>,
    /// `stowage.paths`: paths inside the container (comma-separated).
    pub paths: Option<String>,
    /// `stowage.stop`: stop the container (and its stop group) while its files are archived.
    pub stop: bool,
    /// `stowage.stop_group`: containers with the same value are stopped together.
    pub stop_group: Option<String>,
    /// `stowage.format`: one of the engine's other dump formats (engine `<engine>-<format>`).
    pub format: Option<String>,
    /// `stowage.notify`: names of `[alerts.notify.NAME]` and notification URLs (which hold
    /// tokens: kept as secrets), separated by spaces (names also by commas).
    pub notify: Vec<crate::secret::Secret>,
    /// Every other `stowage.<key>` label: engine variables such as `user`, `password`,
    /// `password_file`. Keys without the prefix.
    pub vars: BTreeMap<String, LabelValue>,
    /// Remarks for the user (e.g. a Baktainer label that has no effect).
    pub notes: Vec<String>,
}

/// An engine variable's value and the label it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelValue {
    /// The value (may be a secret: never printed by the planner).
    pub value: String,
    /// The label it came from, e.g. `stowage.user` or `baktainer.db.user`.
    pub label: String,
}

/// A label whose value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("label {}={:?}: {reason}", shorten(.label, SHOWN), shorten(.value, SHOWN))]
pub struct LabelError {
    /// The full label key.
    pub label: String,
    /// The offending value (never a secret: secret labels are not validated here).
    pub value: String,
    /// What is wrong and what would be accepted.
    pub reason: String,
}

impl Labels {
    /// Parses the `stowage.*` labels, and the Baktainer labels that no `stowage.*` label
    /// overrides, out of all of a container's labels.
    // Long: one match arm per label key, so the whole vocabulary is in one place.
    pub fn parse(all: &BTreeMap<String, String>) -> Result<Self, LabelError> {
        let mut out = Labels::default();
        // (label as written, stowage key, value)
        let mut entries: Vec<(String, String, String)> = all
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.clone(),
                    k.strip_prefix(PREFIX)?.to_string(),
                    v.trim().to_string(),
                ))
            })
            .collect();
        let given = |short: &str, entries: &[(String, String, String)]| {
            entries.iter().any(|(_, s, _)| s == short)
        };
        let baktainer_all = all
            .get("baktainer.db.all")
            .map(|v| parse_bool("baktainer.db.all", v.trim()))
            .transpose()?
            .unwrap_or(false);
        for (label, short) in BAKTAINER {
            let Some(value) = all.get(label) else {
                continue;
            };
            if given(short, &entries) {
                continue;
            }
            let mut value = value.trim().to_string();
            match short {
                "database" if baktainer_all => continue,
                // Baktainer names are free text; make them file-safe rather than refuse them.
                "name" => value = file_safe(&value),
                _ => {}
            }
            entries.push((label.to_string(), short.to_string(), value));
        }
        if baktainer_all && !given("database", &entries) {
            entries.push(("baktainer.db.all".into(), "database".into(), "all".into()));
        }
        if all
            .get("baktainer.compress")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"))
        {
            out.notes.push(
                "baktainer.compress=false has no effect: stowage always compresses with zstd"
                    .into(),
            );
        }
        for (label, short, value) in entries {
            let key = label.as_str();
            match short.as_str() {
                "enable" => out.enable = parse_bool(key, &value)?,
                "encrypt" => out.encrypt = Some(parse_bool(key, &value)?),
                "retention" => out.retention = Some(value),
                "storage" => out.storage = Some(value),
                "ping_url" => {
                    if !(value.starts_with("https://") || value.starts_with("http://")) {
                        return Err(LabelError {
                            label: label.clone(),
                            value,
                            reason: "expected an http:// or https:// URL".into(),
                        });
                    }
                    out.ping_url = Some(value)
                }
                "engine" => out.engine = Some(value.to_ascii_lowercase()),
                "name" => {
                    check_name(key, &value)?;
                    out.name = Some(value)
                }
                "schedule" => out.schedule = Some(value),
                "drill" => out.drill = Some(value),
                "pre" => out.pre = Some(parse_argv(key, &value)?),
                "post" => out.post = Some(parse_argv(key, &value)?),
                "hook_timeout" => {
                    out.hook_timeout = Some(value.parse().ok().filter(|s| *s > 0).ok_or_else(
                        || LabelError {
                            label: label.clone(),
                            value: value.clone(),
                            reason: "expected a number of seconds, e.g. 300".into(),
                        },
                    )?)
                }
                "instance" => {}
                "volumes" => out.volumes = Some(value),
                "paths" => out.paths = Some(value),
                "stop" => out.stop = parse_bool(key, &value)?,
                "format" => out.format = Some(value.to_ascii_lowercase()),
                "notify" => out.notify = notify_items(&value),
                "stop_group" => {
                    check_name(key, &value)?;
                    out.stop_group = Some(value)
                }
                "database" => {
                    for db in value.split(',') {
                        check_argument(key, db.trim())?;
                    }
                    out.database = Some(value)
                }
                other => {
                    out.vars
                        .insert(other.to_string(), LabelValue { value, label });
                }
            }
        }
        Ok(out)
    }
}

/// A hook's argv: a JSON array of strings, the program first. Never a shell string.
fn parse_argv(label: &str, value: &str) -> Result<Vec<String>, LabelError> {
    let fail = |reason: String| LabelError {
        label: label.into(),
        value: value.into(),
        reason,
    };
    let argv: Vec<String> = serde_json::from_str(value).map_err(|e| {
        fail(format!(
            "expected a JSON array of strings, the program first, e.g. [\"redis-cli\", \"BGSAVE\"] (no shell string): {e}"
        ))
    })?;
    match argv.first() {
        None => Err(fail("the array is empty: name the program to run".into())),
        Some(p) if p.trim().is_empty() => Err(fail("the program name is empty".into())),
        Some(_) => Ok(argv),
    }
}

fn parse_bool(label: &str, value: &str) -> Result<bool, LabelError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Ok(true),
        "false" | "no" | "0" | "off" => Ok(false),
        _ => Err(LabelError {
            label: label.into(),
            value: value.into(),
            reason: "expected true or false".into(),
        }),
    }
}

/// Checks a target name: it becomes a directory and part of file names.
pub fn check_name(label: &str, value: &str) -> Result<(), LabelError> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && !value.starts_with('.')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(LabelError {
            label: label.into(),
            value: value.into(),
            reason: "use 1-128 characters of A-Z a-z 0-9 . _ - , not starting with a dot".into(),
        })
    }
}

/// Checks a value that will be placed inside a dump tool's argument (a database or user
/// name): it must not read as an option, a `key=value` connection string or a URI, and must
/// hold no control characters.
pub fn check_argument(label: &str, value: &str) -> Result<(), LabelError> {
    let reason = if value.is_empty() {
        "is empty"
    } else if value.len() > 255 {
        "is longer than 255 characters"
    } else if value.starts_with('-') {
        "starts with '-', which a dump tool would read as an option"
    } else if value.contains('=') || value.contains("://") {
        "contains '=' or '://', which a dump tool would read as a connection string"
    } else if value.chars().any(char::is_control) {
        "contains a control character"
    } else {
        return Ok(());
    };
    Err(LabelError {
        label: label.into(),
        value: value.into(),
        reason: reason.into(),
    })
}

/// Turns a name from any source into something safe as one path component: characters
/// outside `A-Za-z0-9._-` become `_`, a leading dot becomes `_`, and it is cut to 128.
pub fn file_safe(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(128)
        .collect();
    if s.is_empty() || s.starts_with('.') {
        s.insert(0, '_');
    }
    s
}

/// The entries of `stowage.notify`: URLs separated by whitespace; between them, names
/// separated by whitespace or commas (a URL's own `?events=a,b` keeps its commas).
fn notify_items(value: &str) -> Vec<crate::secret::Secret> {
    let mut out = Vec::new();
    for word in value.split_whitespace() {
        if word.contains("://") {
            out.push(crate::secret::Secret::new(word));
        } else {
            out.extend(
                word.split(',')
                    .filter(|n| !n.is_empty())
                    .map(crate::secret::Secret::new),
            );
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests;
