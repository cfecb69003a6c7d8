//! Remote object storage: the named storages from config, and what stowage does with one
//! (upload an artifact so it is complete or absent, verify it, list, read manifests, delete).
//!
//! Built on object_store: S3 and S3-compatible servers (custom endpoint, path style, plain
//! http), Google Cloud Storage, Azure Blob Storage and a local directory, each configured by a
//! URL plus object_store's own option names. Keys are `<url path>/<target>/<file>`, the same
//! layout as the local backup directory, with the manifest beside its artifact.
//!
//! An upload never makes a partial object visible under its final key: a file up to one part
//! is a single conditional PUT (never overwriting), a larger one a multipart upload that only
//! appears when completed and is aborted on failure. Part sizes grow with the file so that
//! any size fits in the providers' 10 000-part limit. Temporary errors are retried with
//! backoff by object_store's retry layer. An upload counts only after its size (and, by
//! default, a read-back sha256) matches the manifest; only then is the manifest uploaded,
//! so a remote manifest always means a complete, verified artifact.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig, WriteMultipart,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::artifact::{MANIFEST_SUFFIX, Manifest};
use crate::secret::Secret;

/// The smallest multipart part (S3 needs 5 MiB except for the last part).
pub const MIN_PART: u64 = 8 * 1024 * 1024;
/// Providers allow at most this many parts; we stay below it.
pub const MAX_PARTS: u64 = 9_000;

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

/// A storage operation that failed. Names the storage and the key.
#[derive(Debug, thiserror::Error)]
#[error("storage {storage}: {what} {key}: {reason}")]
pub struct StorageError {
    /// Storage name.
    pub storage: String,
    /// What was being done.
    pub what: &'static str,
    /// The object key.
    pub key: String,
    /// Why, and what to do.
    pub reason: String,
}

/// A configured storage, ready to use.
pub struct Remote {
    /// Its name in config.
    pub name: String,
    /// Whether targets go here by default.
    pub default: bool,
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    verify_readback: bool,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Remote({} at {})", self.name, self.store)
    }
}

/// An object found under a target's prefix.
#[derive(Debug, Clone)]
pub struct RemoteObject {
    /// File name (last key segment).
    pub file: String,
    /// Size in bytes.
    pub size: u64,
}

impl Remote {
    /// Builds the store from its config. Errors name the storage and the bad option.
    pub fn new(name: &str, c: &StorageConfig) -> Result<Self, String> {
        let err = |e: &dyn fmt::Display| format!("storage.{name}: {e}");
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
                std::fs::create_dir_all(&dir)
                    .map_err(|e| err(&format!("{}: {e}", dir.display())))?;
                return Ok(Self {
                    name: name.to_string(),
                    default: c.default,
                    store: Arc::new(
                        object_store::local::LocalFileSystem::new_with_prefix(&dir)
                            .map_err(|e| err(&e))?
                            .with_automatic_cleanup(true),
                    ),
                    prefix: Path::default(),
                    verify_readback: c.verify_readback,
                });
            }
            other => {
                return Err(err(&format!(
                    "url scheme {other:?} is not one of s3, gs, az, file"
                )));
            }
        };
        Ok(Self {
            name: name.to_string(),
            default: c.default,
            store,
            prefix,
            verify_readback: c.verify_readback,
        })
    }

    fn key(&self, target: &str, file: &str) -> Path {
        self.prefix.clone().join(target).join(file)
    }

    fn error(&self, what: &'static str, key: &Path, reason: impl fmt::Display) -> StorageError {
        StorageError {
            storage: self.name.clone(),
            what,
            key: key.to_string(),
            reason: reason.to_string(),
        }
    }

    /// The objects under `target`'s prefix, by file name.
    pub async fn list(&self, target: &str) -> Result<BTreeMap<String, RemoteObject>, StorageError> {
        let prefix = self.prefix.clone().join(target);
        let metas: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| self.error("listing", &prefix, e))?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let file = m.location.filename()?.to_string();
                Some((file.clone(), RemoteObject { file, size: m.size }))
            })
            .collect())
    }

    /// The target names that have objects here.
    pub async fn targets(&self) -> Result<Vec<String>, StorageError> {
        let listed = self
            .store
            .list_with_delimiter(Some(&self.prefix))
            .await
            .map_err(|e| self.error("listing", &self.prefix, e))?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(String::from))
            .collect())
    }

    /// Reads a remote manifest.
    pub async fn manifest(&self, target: &str, file: &str) -> Result<Manifest, StorageError> {
        let key = self.key(target, &format!("{file}{MANIFEST_SUFFIX}"));
        let bytes = self
            .store
            .get(&key)
            .await
            .map_err(|e| self.error("reading", &key, e))?
            .bytes()
            .await
            .map_err(|e| self.error("reading", &key, e))?;
        serde_json::from_slice(&bytes).map_err(|e| self.error("reading", &key, e))
    }

    /// Uploads an artifact and then its manifest. An artifact already present with the
    /// manifest's size (an earlier attempt that failed before the manifest) is verified
    /// instead of uploaded again; one with another size is an error, never overwritten.
    pub async fn upload(
        &self,
        target: &str,
        artifact: &FsPath,
        manifest: &Manifest,
    ) -> Result<(), StorageError> {
        let key = self.key(target, &manifest.stored.file);
        match self.store.head(&key).await {
            Ok(meta) if meta.size == manifest.stored.bytes => {
                tracing::info!(storage = %self.name, key = %key, "already uploaded; verifying");
            }
            Ok(meta) => {
                return Err(self.error(
                    "uploading",
                    &key,
                    format!(
                        "an object of {} bytes is already there, but the artifact has {}; it is left as is. Remove it if it is not a stowage upload",
                        meta.size, manifest.stored.bytes
                    ),
                ));
            }
            Err(object_store::Error::NotFound { .. }) => {
                self.put_file(&key, artifact, manifest.stored.bytes).await?;
            }
            Err(e) => return Err(self.error("checking", &key, e)),
        }
        self.verify(&key, manifest).await?;
        let mkey = self.key(
            target,
            &format!("{}{MANIFEST_SUFFIX}", manifest.stored.file),
        );
        let json = serde_json::to_vec_pretty(manifest).expect("a manifest serializes");
        self.store
            .put(&mkey, PutPayload::from(json))
            .await
            .map_err(|e| self.error("uploading", &mkey, e))?;
        Ok(())
    }

    /// One PUT for a small file, else a multipart upload with bounded memory.
    async fn put_file(&self, key: &Path, path: &FsPath, size: u64) -> Result<(), StorageError> {
        let part = part_size(size);
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| self.error("reading the local artifact for", key, e))?;
        if size <= part {
            let mut buf = Vec::with_capacity(size as usize);
            file.read_to_end(&mut buf)
                .await
                .map_err(|e| self.error("reading the local artifact for", key, e))?;
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            self.store
                .put_opts(key, PutPayload::from(buf), opts)
                .await
                .map_err(|e| self.error("uploading", key, e))?;
            return Ok(());
        }
        let upload = self
            .store
            .put_multipart(key)
            .await
            .map_err(|e| self.error("starting the multipart upload of", key, e))?;
        // At most two parts in memory (one uploading, one filling): bounded by the part size.
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part as usize);
        let mut buf = vec![0u8; 1024 * 1024];
        let failure = loop {
            let n = match file.read(&mut buf).await {
                Ok(0) => break None,
                Ok(n) => n,
                Err(e) => break Some(self.error("reading the local artifact for", key, e)),
            };
            if let Err(e) = writer.wait_for_capacity(1).await {
                break Some(self.error("uploading", key, e));
            }
            writer.write(&buf[..n]);
        };
        let aborted =
            "the incomplete multipart upload was aborted, nothing is visible under this key";
        if let Some(mut e) = failure {
            let _ = writer.abort().await;
            e.reason = format!("{}; {aborted}", e.reason);
            return Err(e);
        }
        writer
            .finish()
            .await
            .map_err(|e| self.error("uploading", key, format!("{e}; {aborted}")))?;
        Ok(())
    }

    /// Size, and unless disabled a read-back sha256, against the manifest.
    async fn verify(&self, key: &Path, manifest: &Manifest) -> Result<(), StorageError> {
        let meta = self
            .store
            .head(key)
            .await
            .map_err(|e| self.error("verifying", key, e))?;
        if meta.size != manifest.stored.bytes {
            return Err(self.error(
                "verifying",
                key,
                format!(
                    "{} bytes stored, {} expected",
                    meta.size, manifest.stored.bytes
                ),
            ));
        }
        if !self.verify_readback {
            return Ok(());
        }
        let mut stream = self
            .store
            .get(key)
            .await
            .map_err(|e| self.error("verifying", key, e))?
            .into_stream();
        let mut hasher = Sha256::new();
        while let Some(chunk) = stream.next().await {
            let chunk: Bytes = chunk.map_err(|e| self.error("verifying", key, e))?;
            hasher.update(&chunk);
        }
        let actual = hex::encode(hasher.finalize());
        if actual != manifest.stored.sha256 {
            return Err(self.error(
                "verifying",
                key,
                format!(
                    "read back sha256 {actual}, expected {}; the upload does not count",
                    manifest.stored.sha256
                ),
            ));
        }
        Ok(())
    }

    /// Downloads an artifact and its manifest into `dir`; returns the artifact's path.
    pub async fn download(
        &self,
        target: &str,
        file: &str,
        dir: &FsPath,
    ) -> Result<std::path::PathBuf, StorageError> {
        use tokio::io::AsyncWriteExt;
        let mut out = dir.join(file);
        for name in [format!("{file}{MANIFEST_SUFFIX}"), file.to_string()] {
            let key = self.key(target, &name);
            let path = dir.join(&name);
            let local = |e: std::io::Error| {
                self.error("downloading", &key, format!("{}: {e}", path.display()))
            };
            let mut stream = self
                .store
                .get(&key)
                .await
                .map_err(|e| self.error("downloading", &key, e))?
                .into_stream();
            let mut f = tokio::fs::File::create(&path).await.map_err(local)?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| self.error("downloading", &key, e))?;
                f.write_all(&chunk).await.map_err(local)?;
            }
            f.flush().await.map_err(local)?;
            out = path;
        }
        Ok(out)
    }

    /// Deletes an artifact, then its manifest.
    pub async fn delete(&self, target: &str, file: &str) -> Result<(), StorageError> {
        for f in [file.to_string(), format!("{file}{MANIFEST_SUFFIX}")] {
            let key = self.key(target, &f);
            match self.store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.error("deleting", &key, e)),
            }
        }
        Ok(())
    }
}

/// The part size for a file of `size` bytes: at least [`MIN_PART`], in whole MiB, and large
/// enough that the file fits in [`MAX_PARTS`] parts.
pub fn part_size(size: u64) -> u64 {
    const MIB: u64 = 1024 * 1024;
    let needed = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    needed.max(MIN_PART)
}

/// Every configured storage.
#[derive(Debug, Default)]
pub struct Storages {
    remotes: Vec<Arc<Remote>>,
}

impl Storages {
    /// Builds every `[storage.NAME]`.
    pub fn from_config(configs: &BTreeMap<String, StorageConfig>) -> Result<Self, String> {
        let remotes = configs
            .iter()
            .map(|(name, c)| {
                crate::labels::check_name(&format!("storage.{name}"), name)
                    .map_err(|e| e.to_string())?;
                Remote::new(name, c).map(Arc::new)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { remotes })
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
    fn parts_fit_every_size() {
        const MIB: u64 = 1024 * 1024;
        assert_eq!(part_size(0), MIN_PART);
        assert_eq!(part_size(100 * MIB), MIN_PART);
        for size in [1 << 30, 100 << 30, 5u64 << 40, 50u64 << 40] {
            let p = part_size(size);
            assert!(size.div_ceil(p) <= MAX_PARTS, "{size}");
            assert_eq!(p % MIB, 0);
            assert!(
                p <= 5 << 30 || size > 45u64 << 40,
                "S3's 5 GiB part limit for {size}"
            );
        }
    }

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
        let e = Remote::new("offsite", &c("ftp://x/y", &[])).unwrap_err();
        assert!(e.contains("storage.offsite") && e.contains("ftp"), "{e}");
        let e = Remote::new("offsite", &c("s3://b/p", &[("no_such_option", "1")])).unwrap_err();
        assert!(e.contains("no_such_option"), "{e}");
        let e = Remote::new("offsite", &c("s3://b/p", &[("secret_access_key", "x")])).unwrap_err();
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
            r.key("db", "a.sql.zst").to_string(),
            "some/prefix/db/a.sql.zst"
        );
        assert!(!format!("{r:?}").contains("hunter2"));
    }
}
