//! The configuration: defaults < config file < environment, gathered from each component's
//! own section type, and checked as a whole before any command works.
//!
//! Layers, lowest first: the embedded default file (`config/stowage.toml`, printed by
//! `stowage config`), the config file (`/etc/stowage/stowage.toml` or `$STOWAGE_CONFIG`), then
//! `STOWAGE_*` environment variables with `__` between nested keys, and `STOWAGE_…_FILE` for
//! every secret. Unknown keys are errors, so a typo never silently falls back to a default.
//!
//! Each section's type belongs to its component (`[compression]` to [`crate::pipeline`],
//! `[storage.NAME]` to [`crate::remote`], `[alerts]` to [`crate::daemon::alerts`], …); this
//! module only layers and gathers them. [`Config::check`] asks every section for its problems
//! and builds what can be built without touching Docker, the network or the disk (engines,
//! encryption keys, storages, alert channels, the schedule), and reports every problem at once.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Deserialize;

use crate::daemon::DaemonConfig;
use crate::daemon::alerts::{AlertsConfig, Channels};
use crate::daemon::http::HttpConfig;
use crate::drill::config::DrillConfig;
use crate::engine::Registry;
use crate::pipeline::Compression;
use crate::pipeline::encryption::{Encryption, EncryptionConfig};
use crate::remote::config::{StorageConfig, Storages};
use crate::remote::lease::CoordinationConfig;
use crate::retention::Policy;
use crate::schedule::Schedule;

/// The default configuration file, embedded at build time.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/stowage.toml");

/// Where the config file is looked for when `STOWAGE_CONFIG` is not set.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/stowage/stowage.toml";

/// Everything stowage can be told. See `config/stowage.toml` for each key's meaning.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Root directory of the artifacts, one sub-directory per target.
    pub backup_dir: PathBuf,
    /// Directory of user engine specs, when set.
    #[serde(default)]
    pub engines_dir: Option<PathBuf>,
    /// Only containers labelled `stowage.instance=<instance>` are considered, when set.
    #[serde(default)]
    pub instance: Option<String>,
    /// Image of helper containers (SQLite targets without `sqlite3`); unset: the image of
    /// the container stowage runs in.
    #[serde(default)]
    pub helper_image: Option<String>,
    /// Default cron schedule for targets without a `stowage.schedule` label.
    pub schedule: String,
    /// IANA time zone schedules are evaluated in; unset: `TZ`, else UTC.
    #[serde(default)]
    pub timezone: Option<String>,
    /// How dumps are compressed.
    pub compression: Compression,
    /// How `stowage run` behaves.
    pub daemon: DaemonConfig,
    /// age encryption of artifacts.
    #[serde(default)]
    pub encryption: EncryptionConfig,
    /// Default retention policy (restic's rules), for targets without `stowage.retention`.
    #[serde(default)]
    pub retention: Policy,
    /// Named remote storages (`[storage.NAME]`).
    #[serde(default)]
    pub storage: BTreeMap<String, StorageConfig>,
    /// Remove local copies once they are verified in every storage of their target.
    #[serde(default)]
    pub remote_only: bool,
    /// A backup starts only with this many times its target's previous artifact free in
    /// `backup_dir` (0: no check).
    #[serde(default = "default_margin")]
    pub free_space_margin: f64,
    /// The daemon's HTTP port.
    #[serde(default)]
    pub http: HttpConfig,
    /// Webhooks, email and staleness.
    #[serde(default)]
    pub alerts: AlertsConfig,
    /// `[drill]`: restore drills and shrink detection.
    #[serde(default)]
    pub drill: DrillConfig,
    /// This host's name in storages' key layout; unset: the Docker engine's name.
    #[serde(default)]
    pub host: Option<String>,
    /// `[coordination]`: leases, so that daemons sharing targets run each once.
    #[serde(default)]
    pub coordination: CoordinationConfig,
}

/// Config keys whose last segment names a secret. For each, `STOWAGE_<KEY>_FILE` names a file
/// holding the value (as Docker secrets provide), instead of the value itself.
pub const SECRET_FIELDS: &[&str] = &[
    "passphrase",
    "password",
    "secret_access_key",
    "aws_secret_access_key",
    "session_token",
    "aws_session_token",
    "token",
    "azure_storage_account_key",
    "account_key",
    "access_key",
    "client_secret",
    "azure_client_secret",
    "service_account_key",
    "google_service_account_key",
    "url",
];

/// The dotted config key a `STOWAGE_…_FILE` variable stands for, if it names a secret field:
/// `ENCRYPTION__PASSPHRASE_FILE` → `encryption.passphrase`.
fn secret_file_key(var: &str) -> Option<String> {
    let key = var
        .strip_suffix("_FILE")
        .or_else(|| var.strip_suffix("_file"))?;
    let key = key.to_ascii_lowercase().replace("__", ".");
    let last = key.rsplit('.').next()?;
    SECRET_FIELDS.contains(&last).then_some(key)
}

fn default_margin() -> f64 {
    1.5
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key, dotted (`alerts.email.from`, `storage.offsite`).
    pub key: String,
    /// What is wrong and what is allowed.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.starts_with(&self.key) {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.key, self.reason)
        }
    }
}

/// A configuration that could not be loaded or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `STOWAGE_CONFIG` or `--config` names a file that does not exist.
    #[error(
        "config file {0} (from STOWAGE_CONFIG or --config) does not exist; unset STOWAGE_CONFIG or create the file"
    )]
    Missing(PathBuf),
    /// `STOWAGE_CONFIG` or `--config` names something that is not a readable file.
    #[error("config file {path} (from STOWAGE_CONFIG or --config) is not a readable file")]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A layer could not be parsed or has an unknown key or a value of the wrong type.
    #[error("invalid configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    /// A `STOWAGE_…_FILE` variable names a file that cannot be read.
    #[error("{var} names {path}, which cannot be read")]
    SecretFile {
        /// The variable.
        var: String,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Values parsed but make no sense; every problem found.
    #[error("invalid configuration: {}", .0.iter().map(Problem::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Problem>),
}

impl crate::error::Temporary for ConfigError {
    fn is_temporary(&self) -> bool {
        false
    }
}

/// The parts a checked configuration builds: nothing here has touched Docker, the network or
/// the disk beyond reading key, CA and engine files.
#[derive(Debug)]
pub struct Checked {
    /// Built-in and user engines.
    pub registry: Registry,
    /// The encryption keys, when configured.
    pub encryption: Option<Arc<Encryption>>,
    /// The storages (a `file://` directory is created when first used).
    pub storages: Arc<Storages>,
    /// The alert channels.
    pub channels: Channels,
    /// The default schedule, in the configured zone.
    pub schedule: Schedule,
    /// The default drill schedule, in the configured zone (`None`: off).
    pub drill_schedule: Option<Schedule>,
}

impl Config {
    /// Loads defaults < file < environment. `path` overrides `STOWAGE_CONFIG`. Only the shape
    /// is checked here (keys and types); [`Config::check`] checks the values.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let (file, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => match std::env::var_os("STOWAGE_CONFIG") {
                Some(p) => (PathBuf::from(p), true),
                None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
            },
        };
        if explicit {
            match std::fs::metadata(&file) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(ConfigError::Missing(file));
                }
                Err(source) => return Err(ConfigError::NotAFile { path: file, source }),
                // /dev/null is a fine empty config; a directory is a mistake.
                Ok(m) if m.is_dir() => {
                    return Err(ConfigError::NotAFile {
                        path: file,
                        source: std::io::Error::other("it is a directory, not a file"),
                    });
                }
                Ok(_) => {}
            }
        }
        let mut figment = Figment::from(Toml::string(DEFAULT_CONFIG))
            .merge(Toml::file(&file))
            .merge(
                Env::prefixed("STOWAGE_")
                    .ignore(&["config", "log", "log_format", "test_crash_at"])
                    .filter(|k| secret_file_key(k.as_str()).is_none())
                    .split("__"),
            );
        for (var, path) in std::env::vars_os() {
            let Some(rest) = var.to_str().and_then(|v| v.strip_prefix("STOWAGE_")) else {
                continue;
            };
            let Some(key) = secret_file_key(rest) else {
                continue;
            };
            let text =
                std::fs::read_to_string(&path).map_err(|source| ConfigError::SecretFile {
                    var: var.to_string_lossy().into_owned(),
                    path: PathBuf::from(&path),
                    source,
                })?;
            // Like the official images' `$(< file)`: trailing newlines are not part of it.
            let value = text.trim_end_matches(['\n', '\r']).to_string();
            figment = figment.merge(Serialized::default(&key, value));
        }
        Ok(figment.extract().map_err(Box::new)?)
    }

    /// The problems of the plain values (ranges, names, paths), as (key, reason).
    fn value_problems(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = [
            self.compression.problems(),
            self.daemon.problems(),
            self.http.problems(),
            self.drill.problems(),
        ]
        .into_iter()
        .flatten()
        .map(|(k, r)| (k.to_string(), r))
        .collect();
        for (key, value) in [("instance", &self.instance), ("host", &self.host)] {
            if let Some(v) = value
                && let Err(e) = crate::discover::labels::check_name(key, v)
            {
                out.push((key.into(), e.reason));
            }
        }
        if let Some(name) = &self.coordination.storage
            && !self.storage.contains_key(name)
        {
            out.push((
                "coordination.storage".into(),
                format!("{name:?} is not a configured [storage.NAME]"),
            ));
        }
        let lease = self.coordination.lease;
        if lease != 0 && lease <= self.daemon.backup_timeout {
            out.push((
                "coordination.lease".into(),
                format!(
                    "{lease} seconds is not longer than daemon.backup_timeout ({}): a live holder would be taken over. Use 0 for backup_timeout + 120",
                    self.daemon.backup_timeout
                ),
            ));
        }
        if !(0.0..=100.0).contains(&self.free_space_margin) {
            out.push((
                "free_space_margin".into(),
                format!(
                    "{} is outside 0..=100 (0: no check)",
                    self.free_space_margin
                ),
            ));
        }
        if !self.backup_dir.is_absolute() {
            out.push((
                "backup_dir".into(),
                format!("{} is not an absolute path", self.backup_dir.display()),
            ));
        }
        out
    }

    /// Checks every section and builds what the commands use; reports every problem found,
    /// each with its key.
    pub fn check(&self) -> Result<Checked, ConfigError> {
        let mut problems: Vec<Problem> = Vec::new();
        let mut add = |key: &str, reason: String| {
            problems.push(Problem {
                key: key.to_string(),
                reason,
            })
        };
        for (key, reason) in self.value_problems() {
            add(&key, reason);
        }
        let (schedule, drill_schedule) = match crate::schedule::zone(self.timezone.as_deref()) {
            Ok(zone) => (
                Schedule::parse_in(&self.schedule, zone)
                    .map_err(|e| add("schedule", e.to_string()))
                    .ok(),
                self.drill
                    .schedule_in(zone)
                    .map_err(|e| add("drill.schedule", format!("{e} (or \"off\")")))
                    .ok(),
            ),
            Err(e) => {
                add("timezone", e.to_string());
                (None, None)
            }
        };
        let registry = Registry::with_dir(self.engines_dir.as_deref())
            .map_err(|e| add("engines_dir", e.to_string()))
            .ok();
        let encryption = Encryption::from_config(&self.encryption)
            .map_err(|e| add("encryption", crate::error_text::one_line(&e)))
            .ok();
        let storages = match Storages::from_config(&self.storage) {
            Ok(s) => Some(s),
            Err(errors) => {
                for e in errors {
                    add(&format!("storage.{}", e.name), e.reason);
                }
                None
            }
        };
        let channels = match Channels::from_config(&self.alerts) {
            Ok(c) => Some(c),
            Err(errors) => {
                for e in errors {
                    add(&e.key, e.reason);
                }
                None
            }
        };
        match (schedule, registry, encryption, storages, channels) {
            (Some(schedule), Some(registry), Some(encryption), Some(storages), Some(channels))
                if problems.is_empty() =>
            {
                Ok(Checked {
                    registry,
                    encryption: encryption.map(Arc::new),
                    storages: Arc::new(storages),
                    channels,
                    schedule,
                    drill_schedule: drill_schedule.flatten(),
                })
            }
            _ => Err(ConfigError::Invalid(problems)),
        }
    }
}

#[cfg(test)]
mod tests;
