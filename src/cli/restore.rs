//! `stowage restore`: a local artifact, or a remote copy (`STORAGE:TARGET/FILE`) fetched
//! first, into a running container.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;

use super::Loaded;
use super::print::human_bytes;
use crate::pipeline::encryption::Identities;
use crate::remote::config::Storages;
use crate::remote::storage::Remote;
use crate::{docker, restore};

pub(super) async fn cmd_restore(
    l: &Loaded,
    artifact: &Path,
    to: &str,
    database: Option<&str>,
    identity: Vec<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let config = &l.config;
    let docker = docker::connect().await?;
    let mut files = config.encryption.identity_files.clone();
    files.extend(identity);
    let identities = Identities::load(&files, config.encryption.passphrase.as_ref())?;
    // `STORAGE:TARGET/FILE` names a remote copy: fetch it (and its manifest) first.
    let mut fetched = None;
    let artifact = match remote_artifact(&l.checked.storages, artifact) {
        Some((remote, target, file)) => {
            let dir = config
                .backup_dir
                .join(format!(".restore-{}", std::process::id()));
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            tracing::info!(storage = %remote.name, target, file, "downloading the artifact to restore");
            let downloaded = remote.download(target, file, &dir).await;
            fetched = Some(dir);
            match downloaded {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!("{}", crate::error_text::one_line(&e));
                    let _ = std::fs::remove_dir_all(fetched.as_ref().expect("set above"));
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        None => artifact.to_path_buf(),
    };
    let artifact = artifact.as_path();
    let req = restore::Request {
        artifact,
        container: to,
        database,
        helper_image: config.helper_image.as_deref(),
        identities: Arc::new(identities),
        rows: None,
        verified: false,
    };
    let result = restore::restore(&docker, &l.checked.registry, &req).await;
    if let Some(dir) = fetched {
        let _ = std::fs::remove_dir_all(dir);
    }
    match result {
        Ok(r) => {
            println!(
                "restored {} ({}) into database {} of container {to} in {:.1}s",
                artifact.display(),
                human_bytes(r.raw_bytes),
                r.database,
                r.elapsed.as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            tracing::error!("{}", crate::error_text::one_line(&e));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `STORAGE:TARGET/FILE` (as `stowage list` prints remote copies), when STORAGE is configured
/// and no local file has that name.
fn remote_artifact<'a>(
    storages: &'a Storages,
    arg: &'a Path,
) -> Option<(&'a Remote, &'a str, &'a str)> {
    if arg.exists() {
        return None;
    }
    let text = arg.to_str()?;
    let (name, rest) = text.split_once(':')?;
    let (target, file) = rest.split_once('/')?;
    let remote = storages.get(name)?;
    let safe = |s: &str| !s.is_empty() && !s.contains('/') && !s.starts_with('.');
    (safe(target) && safe(file)).then_some((remote.as_ref(), target, file))
}
