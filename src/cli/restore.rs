//! `stowage restore`: a local artifact, or a stored copy (`STORAGE:[HOST/]TARGET/FILE`, FILE
//! may be `latest`) fetched first, into a running container or a volume.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;

use super::Loaded;
use super::print::human_bytes;
use crate::pipeline::encryption::Identities;
use crate::remote::config::Storages;
use crate::remote::hosts;
use crate::remote::storage::Remote;
use crate::restore::Destination;
use crate::{docker, restore};

/// Where a restore goes, and how.
#[derive(Debug, Clone, Copy)]
pub(super) struct RestoreTo<'a> {
    /// The container or volume.
    pub to: Destination<'a>,
    /// `--database`.
    pub database: Option<&'a str>,
    /// `--jobs`.
    pub jobs: Option<u32>,
}

impl<'a> RestoreTo<'a> {
    /// Into a container's database of the artifact's name, without jobs.
    pub fn container(name: &'a str) -> Self {
        Self {
            to: Destination::Container(name),
            database: None,
            jobs: None,
        }
    }
}

pub(super) async fn cmd_restore(
    l: &Loaded,
    artifact: &Path,
    into: RestoreTo<'_>,
    identity: Vec<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let to = into.to;
    let docker = docker::connect().await?;
    let _lock = lock_for_restore(l, &docker).await;
    let identities = Arc::new(identities(l, identity)?);
    let storages = super::storages(l).await?;
    let result = match remote_artifact(&storages, artifact) {
        Some(stored) => {
            let remote = match stored.host {
                Some(h) => Arc::new(stored.remote.scoped(h)),
                None => stored.remote.clone(),
            };
            let file = match stored.file {
                "latest" => latest(&remote, stored.target).await?,
                f => f.to_string(),
            };
            let shown = format!("{}:{}/{}/{file}", remote.name, remote.host(), stored.target);
            let r =
                from_storage(l, &docker, &identities, &remote, stored.target, &file, into).await;
            r.map(|r| (shown, r))
        }
        None => {
            let req = request(l, artifact, into, identities);
            restore::restore(&docker, &l.checked.registry, &req)
                .await
                .map(|r| (artifact.display().to_string(), r))
                .map_err(anyhow::Error::from)
        }
    };
    match result {
        Ok((shown, r)) => {
            let into = match to {
                Destination::Container(_) => format!("database {} of {to}", r.database),
                Destination::Volume { .. } => format!("{to} (archive of {})", r.database),
            };
            println!(
                "restored {shown} ({}) into {into} in {:.1}s",
                human_bytes(r.raw_bytes),
                r.elapsed.as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            tracing::error!("{}", crate::error_text::one_line(e.as_ref()));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The backup directory's lock, held while a container may be stopped (a replacing restore
/// records it there first); taking it also starts what a killed stowage left stopped. A
/// directory that cannot be used is a warning: most restores need none.
pub(super) async fn lock_for_restore(
    l: &Loaded,
    docker: &bollard::Docker,
) -> Option<crate::local::cleanup::DirLock> {
    super::lock_and_recover(&l.config, docker)
        .await
        .map_err(|e| tracing::warn!("{e:#}; restoring anyway"))
        .ok()
}

/// The identities for encrypted artifacts: config's and `--identity` files.
pub(super) fn identities(l: &Loaded, extra: Vec<PathBuf>) -> anyhow::Result<Identities> {
    let mut files = l.config.encryption.identity_files.clone();
    files.extend(extra);
    Ok(Identities::load(
        &files,
        l.config.encryption.passphrase.as_ref(),
    )?)
}

fn request<'a>(
    l: &'a Loaded,
    artifact: &'a Path,
    into: RestoreTo<'a>,
    identities: Arc<Identities>,
) -> restore::Request<'a> {
    restore::Request {
        artifact,
        into: into.to,
        database: into.database,
        jobs: into.jobs,
        helper_image: l.config.helper_image.as_deref(),
        identities,
        rows: None,
        verified: false,
        record_dir: Some(&l.config.backup_dir),
    }
}

/// Downloads `target/file` from `remote` (scoped to the artifact's host) into a temporary
/// directory in the backup directory, restores it, and removes the download.
#[allow(clippy::too_many_arguments)] // one restore's parts; a struct would only rename them
pub(super) async fn from_storage(
    l: &Loaded,
    docker: &bollard::Docker,
    identities: &Arc<Identities>,
    remote: &Remote,
    target: &str,
    file: &str,
    into: RestoreTo<'_>,
) -> anyhow::Result<restore::Restored> {
    // A temp name: the start-up clean-up removes it if this process dies.
    let dir = l
        .config
        .backup_dir
        .join(format!(".restore-{}.stowage-tmp", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    tracing::info!(storage = %remote.name, host = remote.host(), target, file, "downloading the artifact to restore");
    let result = async {
        let path = remote.download(target, file, &dir).await?;
        let req = request(l, &path, into, identities.clone());
        Ok(restore::restore(docker, &l.checked.registry, &req).await?)
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The newest verified copy of `target` in `remote`; an error when the target has several
/// databases (each is its own series: name the file, or use `restore --all`).
async fn latest(remote: &Remote, target: &str) -> anyhow::Result<String> {
    let newest = hosts::newest_per_database(remote, target).await?;
    let mut files: Vec<&String> = newest.values().map(|(f, _)| f).collect();
    match files.len() {
        0 => anyhow::bail!(
            "storage {} holds no complete copy of target {target} of host {}; `stowage list --all-hosts` shows what it holds",
            remote.name,
            remote.host()
        ),
        1 => Ok(files.remove(0).clone()),
        _ => anyhow::bail!(
            "target {target} has artifacts of {} databases ({}); name the file, or use `stowage restore --all`",
            newest.len(),
            newest.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    }
}

/// A stored copy named on the command line.
struct Stored<'a> {
    remote: &'a Arc<Remote>,
    host: Option<&'a str>,
    target: &'a str,
    file: &'a str,
}

/// `STORAGE:TARGET/FILE` (this host) or `STORAGE:HOST/TARGET/FILE`, as `stowage list` prints
/// stored copies, when STORAGE is configured and no local file has that name.
fn remote_artifact<'a>(storages: &'a Storages, arg: &'a Path) -> Option<Stored<'a>> {
    if arg.exists() {
        return None;
    }
    let text = arg.to_str()?;
    let (name, rest) = text.split_once(':')?;
    let remote = storages.get(name)?;
    let parts: Vec<&str> = rest.split('/').collect();
    let (host, target, file) = match parts[..] {
        [t, f] => (None, t, f),
        [h, t, f] => (Some(h), t, f),
        _ => return None,
    };
    let safe = |s: &str| !s.is_empty() && !s.starts_with('.');
    (host.is_none_or(safe) && safe(target) && safe(file)).then_some(Stored {
        remote,
        host,
        target,
        file,
    })
}
