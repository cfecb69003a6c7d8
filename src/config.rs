//! The daemon's configuration: typed, validated, layered.
//!
//! Layers, lowest first: the embedded default file (`config/stowage.toml`, printed by
//! `stowage config`), the config file (`/etc/stowage/stowage.toml` or `$STOWAGE_CONFIG`), then
//! `STOWAGE_*` environment variables with `__` between nested keys. Unknown keys are errors, so
//! a typo never silently falls back to a default. This module reads configuration only; it
//! talks to neither Docker nor the disk beyond the config file.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Serialize};

use crate::schedule::Schedule;

/// The default configuration file, embedded at build time.
pub const DEFAULT_CONFIG: &str = include_str!("../config/stowage.toml");

/// Where the config file is looked for when `STOWAGE_CONFIG` is not set.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/stowage/stowage.toml";

/// Everything stowage can be told. See `config/stowage.toml` for each key's meaning.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    /// How dumps are compressed.
    pub compression: Compression,
    /// How `stowage run` behaves.
    pub daemon: Daemon,
}

/// zstd settings.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Compression {
    /// zstd level, 1..=19.
    pub level: i32,
    /// zstd worker threads; 0 = compress on the writer thread.
    pub threads: u32,
}

/// Daemon settings.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Daemon {
    /// Seconds between two looks for labelled containers.
    pub discovery_interval: u64,
    /// Backups allowed to run at once.
    pub max_concurrent: usize,
    /// Seconds running backups get to finish after SIGTERM.
    pub shutdown_grace: u64,
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
        let figment = Figment::from(Toml::string(DEFAULT_CONFIG))
            .merge(Toml::file(&file))
            .merge(
                Env::prefixed("STOWAGE_")
                    .ignore(&["config", "log"])
                    .split("__"),
            );
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
        if let Err(e) = Schedule::parse(&self.schedule) {
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
}
