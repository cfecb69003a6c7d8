//! `[storage.NAME]` in config, and turning it into [`Remote`]s.
//!
//! Building checks every option (object_store's own names) and the URL without sending a
//! request or creating anything: a `file://` storage's directory is created when it is first
//! used, so `stowage plan` and `stowage config --check` change nothing on disk.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path;
use object_store::{ObjectStore, RetryConfig};
use serde::Deserialize;

use super::storage::{Backend, Remote};
use crate::secret::Secret;

/// One storage, as written in config (`[storage.NAME]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`,
    /// `file:///absolute/path`.
    pub url: String,
    /// object_store options for the scheme (`endpoint`, `region`, `access_key_id`,
    /// `secret_access_key`, `allow_http`, `virtual_hosted_style_request`,
    /// `google_service_account`, `azure_storage_account_name`, …). Values are never shown.
    #[serde(default)]
    pub options: BTreeMap<String, Secret>,
    /// Whether targets without a `stowage.storage` label go here.
    #[serde(default = "yes")]
    pub default: bool,
    /// Read every upload back and compare its sha256 with the manifest (doubles the
    /// traffic; without it only the size is compared).
    #[serde(default = "yes")]
    pub verify_readback: bool,
    /// Retries of a request that failed temporarily.
    #[serde(default = "default_retries")]
    pub max_retries: usize,
    /// Seconds after which a request is not retried any more.
    #[serde(default = "default_retry_timeout")]
    pub retry_timeout: u64,
}

fn yes() -> bool {
    true
}
fn default_retries() -> usize {
    5
}
fn default_retry_timeout() -> u64 {
    120
}

/// The most retries of one request.
pub const MAX_RETRIES: usize = 100;
/// The longest a request is retried, in seconds (a day).
pub const MAX_RETRY_TIMEOUT: u64 = 24 * 3600;

/// A storage section that cannot be used. Names the storage and the problem.
#[derive(Debug, thiserror::Error)]
#[error("storage.{name}: {reason}")]
pub struct StorageConfigError {
    /// The storage's name in config.
    pub name: String,
    /// What is wrong (an option, the URL, the scheme).
    pub reason: String,
}

impl Remote {
    /// Builds the store from its config. Errors name the storage and the bad option.
    pub fn new(name: &str, c: &StorageConfig) -> Result<Self, StorageConfigError> {
        let err = |e: &dyn fmt::Display| StorageConfigError {
            name: name.to_string(),
            reason: e.to_string(),
        };
        if c.max_retries > MAX_RETRIES {
            return Err(err(&format!(
                "max_retries {} is more than {MAX_RETRIES}",
                c.max_retries
            )));
        }
        if c.retry_timeout > MAX_RETRY_TIMEOUT {
            return Err(err(&format!(
                "retry_timeout {} seconds is more than {MAX_RETRY_TIMEOUT} (a day)",
                c.retry_timeout
            )));
        }
        let url = url::Url::parse(&c.url).map_err(|e| err(&format!("url {:?}: {e}", c.url)))?;
        let retry = RetryConfig {
            max_retries: c.max_retries,
            retry_timeout: Duration::from_secs(c.retry_timeout),
            ..Default::default()
        };
        let options = c.options.iter().map(|(k, v)| (k.as_str(), v.expose()));
        let prefix = Path::from_url_path(url.path()).map_err(|e| err(&e))?;
        let store: Arc<dyn ObjectStore> = match url.scheme() {
            "s3" | "s3a" => {
                let mut b = object_store::aws::AmazonS3Builder::new().with_url(url.as_str());
                for (k, v) in options {
                    b = b.with_config(k.parse().map_err(|e| err(&e))?, v);
                }
                Arc::new(b.with_retry(retry).build().map_err(|e| err(&e))?)
            }
            "gs" => {
                let mut b =
                    object_store::gcp::GoogleCloudStorageBuilder::new().with_url(url.as_str());
                for (k, v) in options {
                    b = b.with_config(k.parse().map_err(|e| err(&e))?, v);
                }
                Arc::new(b.with_retry(retry).build().map_err(|e| err(&e))?)
            }
            "az" | "azure" | "abfs" | "abfss" => {
                let mut b =
                    object_store::azure::MicrosoftAzureBuilder::new().with_url(url.as_str());
                for (k, v) in options {
                    b = b.with_config(k.parse().map_err(|e| err(&e))?, v);
                }
                Arc::new(b.with_retry(retry).build().map_err(|e| err(&e))?)
            }
            "file" => {
                if !c.options.is_empty() {
                    return Err(err(&"a file:// storage takes no options"));
                }
                let dir = url
                    .to_file_path()
                    .map_err(|()| err(&"a file:// url needs an absolute path"))?;
                return Ok(Self::with_backend(
                    name,
                    Backend::Directory(dir),
                    Path::default(),
                    c.default,
                    c.verify_readback,
                ));
            }
            other => {
                return Err(err(&format!(
                    "url scheme {other:?} is not one of s3, gs, az, file"
                )));
            }
        };
        Ok(Self::with_backend(
            name,
            Backend::Store(store),
            prefix,
            c.default,
            c.verify_readback,
        ))
    }
}

/// Every configured storage.
#[derive(Debug, Default)]
pub struct Storages {
    remotes: Vec<Arc<Remote>>,
}

impl Storages {
    /// Builds every `[storage.NAME]`.
    /// Builds every `[storage.NAME]`; returns every problem, not just the first.
    pub fn from_config(
        configs: &BTreeMap<String, StorageConfig>,
    ) -> Result<Self, Vec<StorageConfigError>> {
        let mut remotes = Vec::new();
        let mut problems = Vec::new();
        for (name, c) in configs {
            let built = crate::discover::labels::check_name(&format!("storage.{name}"), name)
                .map_err(|e| StorageConfigError {
                    name: name.clone(),
                    reason: e.reason,
                })
                .and_then(|()| Remote::new(name, c));
            match built {
                Ok(r) => remotes.push(Arc::new(r)),
                Err(e) => problems.push(e),
            }
        }
        if problems.is_empty() {
            Ok(Self { remotes })
        } else {
            Err(problems)
        }
    }

    /// Every storage, scoped to `host` ([`Remote::scoped`]).
    pub fn scoped(&self, host: &str) -> Self {
        Self {
            remotes: self
                .remotes
                .iter()
                .map(|r| Arc::new(r.scoped(host)))
                .collect(),
        }
    }

    /// All storages.
    pub fn all(&self) -> &[Arc<Remote>] {
        &self.remotes
    }

    /// The one named so.
    pub fn get(&self, name: &str) -> Option<&Arc<Remote>> {
        self.remotes.iter().find(|r| r.name == name)
    }

    /// The names of the storages targets go to by default.
    pub fn defaults(&self) -> Vec<String> {
        self.remotes
            .iter()
            .filter(|r| r.default)
            .map(|r| r.name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_the_storage() {
        let c = |url: &str, opts: &[(&str, &str)]| StorageConfig {
            url: url.into(),
            options: opts
                .iter()
                .map(|(k, v)| (k.to_string(), Secret::new(*v)))
                .collect(),
            default: true,
            verify_readback: true,
            max_retries: 1,
            retry_timeout: 1,
        };
        let e = Remote::new("offsite", &c("ftp://x/y", &[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("storage.offsite") && e.contains("ftp"), "{e}");
        let e = Remote::new("offsite", &c("s3://b/p", &[("no_such_option", "1")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no_such_option"), "{e}");
        let e = Remote::new("offsite", &c("s3://b/p", &[("secret_access_key", "x")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("AccessKeyId"),
            "a half-given key pair fails at start-up: {e}"
        );
        let r = Remote::new(
            "offsite",
            &c(
                "s3://bucket/some/prefix",
                &[
                    ("endpoint", "http://127.0.0.1:9"),
                    ("allow_http", "true"),
                    ("access_key_id", "AK"),
                    ("secret_access_key", "hunter2"),
                ],
            ),
        )
        .unwrap();
        assert_eq!(
            r.scoped("h1").key("db", "a.sql.zst").to_string(),
            "some/prefix/h1/db/a.sql.zst"
        );
        assert!(!format!("{r:?}").contains("hunter2"));
    }
}
