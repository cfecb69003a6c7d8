//! One remote object store and what stowage does with it: upload an artifact so it is
//! complete or absent, verify it, list, read manifests, download, delete.
//!
//! Built on object_store: S3 and S3-compatible servers (custom endpoint, path style, plain
//! http), Google Cloud Storage, Azure Blob Storage and a local directory, each configured by a
//! URL plus object_store's own option names. Keys are `<url path>/<host>/<target>/<file>`:
//! under the host's prefix (config `host`, see [`Remote::scoped`]) the same layout as the
//! local backup directory, with the manifest beside its artifact.
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
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::sync::OnceCell;

pub use super::error::{Cause, StorageError};
use crate::local::artifact::{MANIFEST_SUFFIX, Manifest};

/// The smallest multipart part (S3 needs 5 MiB except for the last part).
pub const MIN_PART: u64 = 8 * 1024 * 1024;
/// Providers allow at most this many parts; we stay below it.
pub const MAX_PARTS: u64 = 9_000;

/// Where a storage's objects live.
#[derive(Clone)]
pub(super) enum Backend {
    /// An object store client (S3, GCS, Azure), built from config.
    Store(Arc<dyn ObjectStore>),
    /// A local directory (`file://`), created and opened at first use.
    Directory(PathBuf),
}

/// A configured storage, ready to use.
pub struct Remote {
    /// Its name in config.
    pub name: String,
    /// Whether targets go here by default.
    pub default: bool,
    backend: Backend,
    store: OnceCell<Arc<dyn ObjectStore>>,
    /// The URL's path: every host's objects live under it.
    base: Path,
    /// The host whose objects this handle reads and writes (empty until scoped).
    host: String,
    /// `base/host`.
    prefix: Path,
    verify_readback: bool,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.backend {
            Backend::Store(s) => write!(f, "Remote({} at {s})", self.name),
            Backend::Directory(d) => write!(f, "Remote({} at {})", self.name, d.display()),
        }
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
    /// A storage over `backend`; `default` and `verify_readback` as in its config.
    pub(super) fn with_backend(
        name: &str,
        backend: Backend,
        base: Path,
        default: bool,
        verify_readback: bool,
    ) -> Self {
        Self {
            name: name.to_string(),
            default,
            backend,
            store: OnceCell::new(),
            prefix: base.clone(),
            base,
            host: String::new(),
            verify_readback,
        }
    }

    /// The same storage, reading and writing the objects of `host` (`<url path>/<host>/…`).
    /// Every target operation goes through a scoped handle, so one host's retention never
    /// sees another host's objects.
    pub fn scoped(&self, host: &str) -> Remote {
        Self {
            name: self.name.clone(),
            default: self.default,
            backend: self.backend.clone(),
            store: self.store.clone(),
            prefix: self.base.clone().join(host),
            base: self.base.clone(),
            host: host.to_string(),
            verify_readback: self.verify_readback,
        }
    }

    /// The host this handle is scoped to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The URL's path, above every host's prefix.
    pub(super) fn base(&self) -> &Path {
        &self.base
    }

    /// `base/host`: this handle's objects.
    pub(super) fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The store; a `file://` directory is created and opened the first time.
    pub(super) async fn store(&self) -> Result<&Arc<dyn ObjectStore>, StorageError> {
        self.store
            .get_or_try_init(|| async {
                match &self.backend {
                    Backend::Store(s) => Ok(s.clone()),
                    Backend::Directory(dir) => {
                        let fail = |cause: Cause| StorageError {
                            storage: self.name.clone(),
                            what: "opening the directory",
                            key: dir.display().to_string(),
                            cause,
                            aborted: false,
                        };
                        tokio::fs::create_dir_all(dir)
                            .await
                            .map_err(|e| fail(e.into()))?;
                        let local = object_store::local::LocalFileSystem::new_with_prefix(dir)
                            .map_err(|e| fail(e.into()))?
                            .with_automatic_cleanup(true);
                        Ok(Arc::new(local) as Arc<dyn ObjectStore>)
                    }
                }
            })
            .await
    }

    pub(super) fn key(&self, target: &str, file: &str) -> Path {
        self.prefix.clone().join(target).join(file)
    }

    pub(super) fn error(
        &self,
        what: &'static str,
        key: &Path,
        cause: impl Into<Cause>,
    ) -> StorageError {
        StorageError {
            storage: self.name.clone(),
            what,
            key: key.to_string(),
            cause: cause.into(),
            aborted: false,
        }
    }

    /// One cheap request that proves the storage answers and the credentials work (a
    /// delimited LIST of the prefix).
    pub async fn health(&self) -> Result<(), StorageError> {
        self.store()
            .await?
            .list_with_delimiter(Some(&self.prefix))
            .await
            .map_err(|e| self.error("checking", &self.prefix, e))?;
        Ok(())
    }

    /// The objects under `target`'s prefix, by file name.
    pub async fn list(&self, target: &str) -> Result<BTreeMap<String, RemoteObject>, StorageError> {
        let prefix = self.prefix.clone().join(target);
        let metas: Vec<_> = self
            .store()
            .await?
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

    /// Reads a remote manifest.
    pub async fn manifest(&self, target: &str, file: &str) -> Result<Manifest, StorageError> {
        let key = self.key(target, &format!("{file}{MANIFEST_SUFFIX}"));
        let bytes = self
            .store()
            .await?
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
        match self.store().await?.head(&key).await {
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
                crate::fault::point("upload:artifact-put");
            }
            Err(e) => return Err(self.error("checking", &key, e)),
        }
        self.verify(&key, manifest).await?;
        crate::fault::point("upload:verified");
        let mkey = self.key(
            target,
            &format!("{}{MANIFEST_SUFFIX}", manifest.stored.file),
        );
        let json = serde_json::to_vec_pretty(manifest).expect("a manifest serializes");
        self.store()
            .await?
            .put(&mkey, PutPayload::from(json))
            .await
            .map_err(|e| self.error("uploading", &mkey, e))?;
        crate::fault::point("upload:manifest-put");
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
            self.store()
                .await?
                .put_opts(key, PutPayload::from(buf), opts)
                .await
                .map_err(|e| self.error("uploading", key, e))?;
            return Ok(());
        }
        let upload = self
            .store()
            .await?
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
        if let Some(mut e) = failure {
            let _ = writer.abort().await;
            e.aborted = true;
            return Err(e);
        }
        writer.finish().await.map_err(|e| StorageError {
            aborted: true,
            ..self.error("uploading", key, e)
        })?;
        Ok(())
    }

    /// Size, and unless disabled a read-back sha256, against the manifest.
    async fn verify(&self, key: &Path, manifest: &Manifest) -> Result<(), StorageError> {
        let meta = self
            .store()
            .await?
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
            .store()
            .await?
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
                let e = std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
                self.error("downloading", &key, e)
            };
            let mut stream = self
                .store()
                .await?
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
            match self.store().await?.delete(&key).await {
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
}
