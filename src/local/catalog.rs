//! What is in the backup directory: artifacts with their manifests, listed and verified.
//!
//! Reads the directory layout that [`crate::local::artifact`] writes. An artifact without a manifest
//! (the process died between the two commits) or a manifest without its file is reported as
//! such, never hidden. Verification re-hashes the stored bytes against the manifest. This module
//! only reads.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::local::artifact::{self, MANIFEST_SUFFIX, Manifest};

/// Why a listed artifact is not a valid backup (or its manifest cannot be read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// One artifact found on disk.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Target directory name.
    pub target: String,
    /// Path of the artifact file.
    pub path: PathBuf,
    /// Its manifest, if there is a readable one.
    pub manifest: Result<Manifest, Invalid>,
    /// Whether the artifact file exists.
    pub file_exists: bool,
}

impl Listed {
    /// The manifest, if this artifact is a valid backup: the manifest reads, names this file
    /// and this target, the file exists and has the recorded size. Otherwise why not. The one
    /// rule `verify`, `prune` and uploads all apply.
    pub fn valid(&self) -> Result<&Manifest, Invalid> {
        let m = self
            .manifest
            .as_ref()
            .map_err(|e| Invalid(format!("no valid manifest ({e})")))?;
        if !self.file_exists {
            return Err(Invalid("the manifest's artifact file is missing".into()));
        }
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        if name.as_deref() != Some(m.stored.file.as_str()) || m.target != self.target {
            return Err(Invalid(format!(
                "the manifest names another file or target ({} of target {})",
                m.stored.file, m.target
            )));
        }
        let size = fs::metadata(&self.path)
            .map(|md| md.len())
            .unwrap_or(u64::MAX);
        if size != m.stored.bytes {
            return Err(Invalid(format!(
                "size {size} differs from the manifest's {}",
                m.stored.bytes
            )));
        }
        Ok(m)
    }

    /// One word for the artifact's state.
    pub fn state(&self) -> &'static str {
        match (&self.manifest, self.file_exists) {
            (Ok(_), true) => "ok",
            (Ok(_), false) => "missing-file",
            (Err(_), true) => "no-manifest",
            (Err(_), false) => "broken",
        }
    }
}

/// Lists every artifact under `backup_dir` (optionally of some targets), oldest first.
pub fn list(backup_dir: &Path, targets: &[String]) -> io::Result<Vec<Listed>> {
    let mut out = Vec::new();
    let dirs = match fs::read_dir(backup_dir) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for dir in dirs {
        let dir = dir?;
        let target = dir.file_name().to_string_lossy().into_owned();
        if !dir.file_type()?.is_dir() || target.starts_with('.') {
            continue;
        }
        if !targets.is_empty() && !targets.contains(&target) {
            continue;
        }
        let mut names: Vec<String> = fs::read_dir(dir.path())?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        for name in &names {
            let (path, manifest_path) = if let Some(artifact) = artifact::manifest_of(name) {
                (dir.path().join(artifact), dir.path().join(name))
            } else if (name.ends_with(".zst") || name.ends_with(".zst.age"))
                && !names.contains(&format!("{name}{MANIFEST_SUFFIX}"))
            {
                let p = dir.path().join(name);
                (p.clone(), artifact::manifest_path(&p))
            } else {
                continue;
            };
            let manifest =
                artifact::read_manifest(&manifest_path).map_err(|e| Invalid(e.to_string()));
            out.push(Listed {
                target: target.clone(),
                file_exists: path.is_file(),
                path,
                manifest,
            });
        }
    }
    out.sort_by(|a, b| (&a.target, a.path.file_name()).cmp(&(&b.target, b.path.file_name())));
    Ok(out)
}

/// When the newest artifact of `target` with a readable manifest was started, if any.
pub fn newest(backup_dir: &Path, target: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    list(backup_dir, &[target.to_string()])
        .ok()?
        .into_iter()
        .filter(|l| l.file_exists)
        .filter_map(|l| l.manifest.ok().map(|m| m.started_at))
        .max()
}

/// Why an artifact failed verification.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// No usable manifest.
    #[error("no valid manifest ({0}); this artifact cannot be trusted")]
    NoManifest(String),
    /// The file could not be read.
    #[error("cannot read the artifact: {0}")]
    Io(#[from] io::Error),
    /// Size differs.
    #[error(
        "size is {actual} bytes but the manifest says {expected}: the file was truncated or altered"
    )]
    Size {
        /// From the manifest.
        expected: u64,
        /// On disk.
        actual: u64,
    },
    /// Hash differs.
    #[error(
        "sha256 is {actual} but the manifest says {expected}: the file was altered or corrupted"
    )]
    Hash {
        /// From the manifest.
        expected: String,
        /// On disk.
        actual: String,
    },
}

/// Re-hashes an artifact's stored bytes against its manifest.
pub fn verify(artifact: &Path, manifest: &Manifest) -> Result<(), VerifyError> {
    let mut file = File::open(artifact)?;
    let actual_size = file.metadata()?.len();
    if actual_size != manifest.stored.bytes {
        return Err(VerifyError::Size {
            expected: manifest.stored.bytes,
            actual: actual_size,
        });
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let actual = hex::encode(hasher.finalize());
    if actual != manifest.stored.sha256 {
        return Err(VerifyError::Hash {
            expected: manifest.stored.sha256.clone(),
            actual,
        });
    }
    Ok(())
}

/// Reads an artifact's manifest and verifies the artifact against it; a manifest that names
/// another file is refused.
pub fn verify_path(artifact: &Path) -> Result<Manifest, VerifyError> {
    let manifest = artifact::read_manifest(&artifact::manifest_path(artifact))
        .map_err(|e| VerifyError::NoManifest(e.to_string()))?;
    let name = artifact.file_name().map(|n| n.to_string_lossy());
    if name.as_deref() != Some(manifest.stored.file.as_str()) {
        return Err(VerifyError::NoManifest(format!(
            "the manifest names another file, {}",
            manifest.stored.file
        )));
    }
    verify(artifact, &manifest)?;
    Ok(manifest)
}

/// A manifest for `bytes` stored as `file` (target `db`, database `app`, started now), for
/// tests anywhere in the crate.
#[cfg(test)]
pub(crate) fn test_manifest(file: &str, bytes: &[u8]) -> Manifest {
    let now = chrono::Utc::now();
    Manifest {
        format: artifact::MANIFEST_FORMAT,
        stowage_version: "t".into(),
        target: "db".into(),
        container: artifact::ContainerRef {
            id: "i".into(),
            name: "db".into(),
            image: "postgres".into(),
            image_id: None,
        },
        engine: "postgres".into(),
        database: "app".into(),
        dump_tool_version: None,
        started_at: now,
        finished_at: now,
        raw: artifact::Content {
            bytes: 0,
            sha256: String::new(),
        },
        stored: artifact::Stored {
            file: file.into(),
            bytes: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
            compression: "zstd".into(),
            compression_level: 3,
            compression_levels: Default::default(),
            encrypted: false,
            encryption: None,
        },
        rows: None,
    }
}

#[cfg(test)]
mod tests {
    use super::test_manifest as manifest;
    use super::*;

    #[test]
    fn a_renamed_artifact_stays_valid_under_a_name_nobody_holds() {
        let root = std::env::temp_dir().join(format!("stowage-rename-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let dir = root.join("db");
        fs::create_dir_all(&dir).unwrap();
        let old = "20260101T000000Z_db_app.sql.zst";
        let path = dir.join(old);
        fs::write(&path, b"bytes").unwrap();
        artifact::write_manifest(&path, &manifest(old, b"bytes")).unwrap();
        fs::write(dir.join(format!("{old}{}", artifact::DRILL_SUFFIX)), b"{}").unwrap();
        let m = artifact::read_manifest(&artifact::manifest_path(&path)).unwrap();
        // `-2` is held elsewhere (a storage), so the next free name is `-3`.
        let (new_path, renamed) =
            artifact::rename(&path, &m, |n| n == "20260101T000000Z_db_app-2.sql.zst").unwrap();
        assert_eq!(new_path, dir.join("20260101T000000Z_db_app-3.sql.zst"));
        assert_eq!(renamed.stored.file, "20260101T000000Z_db_app-3.sql.zst");
        assert_eq!(renamed.stored.sha256, m.stored.sha256);
        let listed = list(&root, &[]).unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0].path, new_path);
        assert_eq!(listed[0].valid().unwrap(), &renamed);
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names.len(),
            2,
            "old name, manifest and drill record gone: {names:?}"
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn lists_states_and_verifies() {
        let root = std::env::temp_dir().join(format!("stowage-catalog-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let dir = root.join("db");
        fs::create_dir_all(&dir).unwrap();
        let good = dir.join("20260101T000000Z_db_app.sql.zst");
        fs::write(&good, b"good bytes").unwrap();
        let good_name = "20260101T000000Z_db_app.sql.zst";
        artifact::write_manifest(&good, &manifest(good_name, b"good bytes")).unwrap();
        let orphan = dir.join("20260102T000000Z_db_app.sql.zst");
        fs::write(&orphan, b"no manifest").unwrap();
        fs::write(
            dir.join(".20260103T000000Z_db_app.sql.zst.1.stowage-tmp"),
            b"tmp",
        )
        .unwrap();

        let listed = list(&root, &[]).unwrap();
        let states: Vec<_> = listed.iter().map(|l| l.state()).collect();
        assert_eq!(states, ["ok", "no-manifest"]);
        assert!(list(&root, &["other".into()]).unwrap().is_empty());

        verify_path(&good).unwrap();
        assert!(listed[0].valid().is_ok());
        assert!(matches!(
            verify_path(&orphan),
            Err(VerifyError::NoManifest(_))
        ));
        // A manifest that describes another file is no manifest of this one, even when the
        // bytes match it (verify and retention agree on this).
        let other = dir.join("20260104T000000Z_db_app.sql.zst");
        fs::write(&other, b"good bytes").unwrap();
        artifact::write_manifest(&other, &manifest(good_name, b"good bytes")).unwrap();
        assert!(matches!(
            verify_path(&other),
            Err(VerifyError::NoManifest(_))
        ));
        let listed = list(&root, &[]).unwrap();
        let why = listed.iter().find(|l| l.path == other).unwrap().valid();
        assert!(why.unwrap_err().0.contains("names another file"));
        fs::remove_file(artifact::manifest_path(&other)).unwrap();
        fs::remove_file(&other).unwrap();
        fs::write(&good, b"evil bytes").unwrap();
        let err = verify_path(&good).unwrap_err();
        assert!(matches!(err, VerifyError::Hash { .. }), "{err}");
        fs::write(&good, b"short").unwrap();
        assert!(matches!(verify_path(&good), Err(VerifyError::Size { .. })));
        fs::remove_dir_all(&root).unwrap();
    }
}
