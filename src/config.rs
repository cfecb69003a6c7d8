//! The daemon's configuration: typed, validated, layered.
//!
//! Layers, lowest first: the embedded default file (`config/stowage.toml`, printed by
//! `stowage config`), the config file (`/etc/stowage/stowage.toml` or `$STOWAGE_CONFIG`), then
//! `STOWAGE_*` environment variables with `__` between nested keys. Unknown keys are errors, so
//! a typo never silently falls back to a default. This module reads configuration only; it
//! talks to neither Docker nor the disk beyond the config file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Deserialize;

use crate::schedule::Schedule;
use crate::secret::Secret;

/// The default configuration file, embedded at build time.
pub const DEFAULT_CONFIG: &str = include_str!("../config/stowage.toml");

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
    pub daemon: Daemon,
    /// age encryption of artifacts.
    #[serde(default)]
    pub encryption: Encryption,
    /// Default retention policy (restic's rules), for targets without `stowage.retention`.
    #[serde(default)]
    pub retention: crate::retention::Policy,
    /// Named remote storages (`[storage.NAME]`).
    #[serde(default)]
    pub storage: BTreeMap<String, crate::storage::StorageConfig>,
    /// Remove local copies once they are verified in every storage of their target.
    #[serde(default)]
    pub remote_only: bool,
    /// The daemon's HTTP port.
    #[serde(default)]
    pub http: crate::http::HttpConfig,
    /// Webhooks, email and staleness.
    #[serde(default)]
    pub alerts: crate::alerts::AlertsConfig,
}

/// age encryption settings. See `config/stowage.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    /// X25519 recipients (`age1…`); a list, or one string separated by commas or spaces.
    #[serde(default, deserialize_with = "one_or_many")]
    pub recipients: Vec<String>,
    /// A file of recipients, one per line (`#` comments), as `age -R` reads.
    #[serde(default)]
    pub recipients_file: Option<PathBuf>,
    /// A passphrase instead of recipients (age's scrypt recipient).
    #[serde(default)]
    pub passphrase: Option<Secret>,
    /// scrypt work factor (log2 N) for passphrase encryption.
    #[serde(default = "default_work_factor")]
    pub scrypt_work_factor: u8,
    /// Identity file(s) for `stowage restore` (`age-keygen` output).
    #[serde(default, deserialize_with = "one_or_many_paths")]
    pub identity_files: Vec<PathBuf>,
}

fn default_work_factor() -> u8 {
    16
}

fn split_list(s: &str) -> Vec<String> {
    s.split([',', ' ', '\n', '\t'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect()
}

/// A list, or one string of comma- or space-separated items (how environment variables say it).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => split_list(&s),
        OneOrMany::Many(v) => v,
    })
}

fn one_or_many_paths<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    Ok(one_or_many(d)?.into_iter().map(PathBuf::from).collect())
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

/// zstd settings.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compression {
    /// zstd level, 1..=19.
    pub level: i32,
    /// zstd worker threads; 0 = compress on the writer thread.
    pub threads: u32,
}

/// Daemon settings.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Daemon {
    /// Seconds between two looks for labelled containers.
    pub discovery_interval: u64,
    /// Backups allowed to run at once.
    pub max_concurrent: usize,
    /// Seconds running backups get to finish after SIGTERM.
    pub shutdown_grace: u64,
    /// Seconds between passes that retry failed uploads (and apply remote retention).
    #[serde(default = "default_upload_retry")]
    pub upload_retry_interval: u64,
    /// Up to this many seconds are added to each scheduled time, fixed per target and time.
    #[serde(default)]
    pub jitter: u64,
    /// Seconds a backup may take before it is aborted (0: no limit).
    #[serde(default = "default_backup_timeout")]
    pub backup_timeout: u64,
    /// Runs missed while stowage was down: `skip` or `run-once`.
    #[serde(default)]
    pub missed_runs: crate::scheduler::MissedRuns,
}

fn default_backup_timeout() -> u64 {
    6 * 3600
}

fn default_upload_retry() -> u64 {
    900
}

/// A configuration that could not be loaded or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `STOWAGE_CONFIG` names a file that does not exist.
    #[error(
        "config file {0} (from STOWAGE_CONFIG) does not exist; unset STOWAGE_CONFIG or create the file"
    )]
    Missing(PathBuf),
    /// A layer could not be parsed or has an unknown key or a value of the wrong type.
    #[error("invalid configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    /// A `STOWAGE_…_FILE` variable names a file that cannot be read.
    #[error("{var} names {path}, which cannot be read: {reason}")]
    SecretFile {
        /// The variable.
        var: String,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A value parsed but makes no sense.
    #[error("invalid configuration: {key}: {reason}")]
    Invalid {
        /// The key, dotted.
        key: &'static str,
        /// What is wrong and what is allowed.
        reason: String,
    },
}

impl Config {
    /// The time zone schedules use: `timezone`, else `TZ`, else UTC.
    pub fn zone(&self) -> Result<chrono_tz::Tz, ConfigError> {
        crate::schedule::zone(self.timezone.as_deref()).map_err(|reason| ConfigError::Invalid {
            key: "timezone",
            reason,
        })
    }

    /// The default schedule, in the configured zone.
    pub fn default_schedule(&self) -> Result<Schedule, ConfigError> {
        Schedule::parse_in(&self.schedule, self.zone()?).map_err(|e| ConfigError::Invalid {
            key: "schedule",
            reason: e.to_string(),
        })
    }

    /// Loads defaults < file < environment. `path` overrides `STOWAGE_CONFIG`.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let (file, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => match std::env::var_os("STOWAGE_CONFIG") {
                Some(p) => (PathBuf::from(p), true),
                None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
            },
        };
        if explicit && !file.exists() {
            return Err(ConfigError::Missing(file));
        }
        let mut figment = Figment::from(Toml::string(DEFAULT_CONFIG))
            .merge(Toml::file(&file))
            .merge(
                Env::prefixed("STOWAGE_")
                    .ignore(&["config", "log"])
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
            let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::SecretFile {
                var: var.to_string_lossy().into_owned(),
                path: PathBuf::from(&path),
                reason: e.to_string(),
            })?;
            // Like the official images' `$(< file)`: trailing newlines are not part of it.
            let value = text.trim_end_matches(['\n', '\r']).to_string();
            figment = figment.merge(Serialized::default(&key, value));
        }
        let config: Config = figment.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types cannot: ranges and the default schedule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=19).contains(&self.compression.level) {
            return Err(ConfigError::Invalid {
                key: "compression.level",
                reason: format!("{} is outside 1..=19", self.compression.level),
            });
        }
        if self.compression.threads > 64 {
            return Err(ConfigError::Invalid {
                key: "compression.threads",
                reason: format!("{} is more than 64", self.compression.threads),
            });
        }
        if self.daemon.max_concurrent == 0 {
            return Err(ConfigError::Invalid {
                key: "daemon.max_concurrent",
                reason: "must be at least 1".into(),
            });
        }
        if self.daemon.discovery_interval == 0 {
            return Err(ConfigError::Invalid {
                key: "daemon.discovery_interval",
                reason: "must be at least 1 second".into(),
            });
        }
        if let Some(i) = &self.instance
            && let Err(e) = crate::labels::check_name("instance", i)
        {
            return Err(ConfigError::Invalid {
                key: "instance",
                reason: e.reason,
            });
        }
        let zone = self.zone()?;
        if let Err(e) = Schedule::parse_in(&self.schedule, zone) {
            return Err(ConfigError::Invalid {
                key: "schedule",
                reason: e.to_string(),
            });
        }
        if !self.backup_dir.is_absolute() {
            return Err(ConfigError::Invalid {
                key: "backup_dir",
                reason: format!("{} is not an absolute path", self.backup_dir.display()),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses_and_validates() {
        let config: Config = Figment::from(Toml::string(DEFAULT_CONFIG))
            .extract()
            .unwrap();
        config.validate().unwrap();
        assert_eq!(config.backup_dir, PathBuf::from("/backups"));
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closure type
    fn layers_and_unknown_keys() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "s.toml",
                "backup_dir = \"/srv/b\"\n[compression]\nlevel = 5\n",
            )?;
            jail.set_env("STOWAGE_COMPRESSION__LEVEL", "7");
            let c = Config::load(Some(Path::new("s.toml"))).unwrap();
            assert_eq!(c.backup_dir, PathBuf::from("/srv/b"));
            assert_eq!(c.compression.level, 7, "env beats file");
            jail.set_env("STOWAGE_COMPRESION__LEVEL", "7");
            let err = Config::load(Some(Path::new("s.toml"))).unwrap_err();
            assert!(err.to_string().contains("compresion"), "{err}");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closure type
    fn rejects_bad_values() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("STOWAGE_SCHEDULE", "61 * * * *");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("schedule"), "{err}");
            Ok(())
        });
        let err = Config::load(Some(Path::new("/nonexistent/stowage.toml"))).unwrap_err();
        assert!(matches!(err, ConfigError::Missing(_)));
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closure type
    fn secret_files_and_lists_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("pp", "s3cret phrase\n")?;
            jail.set_env("STOWAGE_ENCRYPTION__PASSPHRASE_FILE", "pp");
            jail.set_env("STOWAGE_ENCRYPTION__RECIPIENTS", "age1aaa, age1bbb age1ccc");
            jail.set_env(
                "STOWAGE_ENCRYPTION__IDENTITY_FILES",
                "/k/one.txt,/k/two.txt",
            );
            let c = Config::load(None).unwrap();
            assert_eq!(
                c.encryption.passphrase.as_ref().map(Secret::expose),
                Some("s3cret phrase")
            );
            assert_eq!(c.encryption.recipients, ["age1aaa", "age1bbb", "age1ccc"]);
            assert_eq!(
                c.encryption.identity_files.len(),
                2,
                "identity_files is not a secret"
            );
            assert!(!format!("{c:?}").contains("s3cret"));
            jail.set_env("STOWAGE_ENCRYPTION__PASSPHRASE_FILE", "missing");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(
                err.contains("STOWAGE_ENCRYPTION__PASSPHRASE_FILE") && err.contains("missing"),
                "{err}"
            );
            Ok(())
        });
    }
}
