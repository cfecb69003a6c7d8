//! Where an engine's commands run: in the target container, or in a short-lived helper.
//!
//! Application containers that keep an SQLite file usually have no `sqlite3`. For an engine
//! whose spec has a `[helper]`, stowage probes the target for the program; when it is
//! missing, the commands run in a helper container instead: stowage's own image (which has
//! `sqlite3`), started with the target's volumes (`--volumes-from`), no network, and a
//! bounded `sleep` as its only process. The helper runs each command as the owner of the
//! database file, so any file SQLite creates beside it (`-wal`, `-shm`) belongs to the
//! application's user. Both containers share the host's kernel, so SQLite's file locks and
//! its shared-memory WAL index work across them exactly as between two processes of one
//! container (ARCHITECTURE.md, "SQLite").
//!
//! An engine whose `[helper]` names no program always runs in the helper, and with
//! `read_only` the helper mounts the target's volumes read-only (`--volumes-from ID:ro`): the
//! files engine archives volumes that way, so a backup can never change them. A restore into
//! a Docker volume uses a helper too ([`Site::for_volume`]), with just that volume mounted.
//!
//! The helper is removed when the backup or restore ends. If stowage dies first, Docker
//! removes it when its `sleep` ends ([`HELPER_LIFETIME`]): it is created with auto-remove.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, RemoveContainerOptions,
};

use super::render::RenderError;
use super::spec::Engine;
use crate::discover::ContainerInfo;
use crate::docker::exec::{self, ExecError, ExecRequest};

/// The helper container could not be made ready, or the user to run as not found.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// No image to start a helper from.
    #[error(
        "{why}, and stowage does not run in a container whose image it could use as a helper; set helper_image (STOWAGE_HELPER_IMAGE) to stowage's image"
    )]
    NoImage {
        /// Why a helper is needed (the program the target lacks).
        why: String,
    },
    /// The helper could not be created.
    #[error(
        "{why}, and the helper container from image {image} could not be created. Check helper_image"
    )]
    Create {
        /// Why a helper is needed (the program the target lacks).
        why: String,
        /// The helper image.
        image: String,
        /// Why.
        #[source]
        source: bollard::errors::Error,
    },
    /// The helper could not start.
    #[error("the helper container from image {image} could not start")]
    Start {
        /// The helper image.
        image: String,
        /// Why.
        #[source]
        source: bollard::errors::Error,
    },
    /// The path whose owner to run as cannot be rendered.
    #[error("the helper's run_as_owner_of path")]
    Render(#[source] RenderError),
    /// The owner of the database file could not be read.
    #[error("cannot inspect {path} in the helper")]
    Stat {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: ExecError,
    },
    /// The database file is not on a volume the helper can see.
    #[error(
        "neither {path} nor its directory is on a volume of the container. Keep the database on a volume or bind mount (a file in the container's own layer is lost with the container) and name it with stowage.database"
    )]
    NotOnVolume {
        /// The path.
        path: String,
    },
}

impl crate::error::Temporary for SiteError {
    fn is_temporary(&self) -> bool {
        match self {
            Self::Create { source, .. } | Self::Start { source, .. } => {
                exec::api_is_temporary(source)
            }
            Self::Stat { source, .. } => crate::error::Temporary::is_temporary(source),
            Self::NoImage { .. } | Self::Render(_) | Self::NotOnVolume { .. } => false,
        }
    }
}

/// How long a helper may live: longer than any backup, short enough that one left behind by
/// a crash goes away by itself.
pub const HELPER_LIFETIME: &str = "86400";

/// The label that marks helper containers (value: the target container's name).
pub const HELPER_LABEL: &str = crate::discover::OWN_CONTAINER_LABELS[1];

/// Where commands run.
#[derive(Debug)]
pub struct Site {
    /// The container the execs go to.
    pub container_id: String,
    /// The helper, if commands run in one, and the connection to remove it with.
    helper: Option<(String, Docker)>,
}

impl Drop for Site {
    /// A run aborted with its helper still there (a timeout, SIGTERM): remove it on a task of
    /// its own, which [`crate::docker::pending::settle`] waits for.
    fn drop(&mut self) {
        if let Some((id, docker)) = self.helper.take() {
            crate::docker::pending::spawn(async move { remove_helper(&docker, &id).await });
        }
    }
}

/// Removes a helper container, with its anonymous volumes: stowage's image declares
/// `VOLUME /backups`, and each helper would otherwise leave an empty volume behind. Failures
/// are logged: Docker removes it when its lifetime ends anyway.
async fn remove_helper(docker: &Docker, id: &str) {
    let opts = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    if let Err(e) = docker.remove_container(id, Some(opts)).await {
        tracing::warn!(helper = %id, "could not remove the helper container: {e}; Docker removes it within a day");
    }
}

impl Site {
    /// Commands run in the target itself.
    pub fn direct(container_id: &str) -> Self {
        Self {
            container_id: container_id.to_string(),
            helper: None,
        }
    }

    /// Whether commands run in a helper container.
    pub fn is_helper(&self) -> bool {
        self.helper.is_some()
    }

    /// Chooses where `engine`'s commands run for `target`, starting a helper if the target
    /// lacks the engine's program. `image` is the helper image from config; without it,
    /// the image of the container stowage itself runs in.
    pub async fn prepare(
        docker: &Docker,
        target: &ContainerInfo,
        engine: &Engine,
        image: Option<&str>,
    ) -> Result<Self, SiteError> {
        let Some(spec) = &engine.spec.helper else {
            return Ok(Self::direct(&target.id));
        };
        // Why the helper is needed, for messages.
        let why = match &spec.when_missing {
            Some(program) => {
                let probe = ExecRequest {
                    argv: vec![program.clone(), "--version".into()],
                    ..Default::default()
                };
                if let Ok((_, status)) = exec::capture(docker, &target.id, &probe, 4096).await
                    && status.success()
                {
                    return Ok(Self::direct(&target.id));
                }
                format!("the container has no {program}")
            }
            None => format!(
                "engine {} runs its commands in a helper container",
                engine.name()
            ),
        };
        let volumes_from = if spec.read_only {
            format!("{}:ro", target.id)
        } else {
            target.id.clone()
        };
        let host = HostConfig {
            volumes_from: Some(vec![volumes_from]),
            ..Default::default()
        };
        let site = Self::start(docker, image, &why, &target.name, host).await?;
        let access = if spec.read_only {
            "read-only"
        } else {
            "read-write"
        };
        tracing::info!(container = %target.name, helper = %&site.container_id[..12], "{why}: its commands run in a helper container with its volumes mounted {access}");
        Ok(site)
    }

    /// A helper with `target`'s volumes mounted read-write (the container may be stopped),
    /// for replacing a file on them.
    pub async fn with_volumes_of(
        docker: &Docker,
        target: &ContainerInfo,
        image: Option<&str>,
    ) -> Result<Self, SiteError> {
        let why = format!(
            "replacing a file of container {} needs a helper container",
            target.name
        );
        let host = HostConfig {
            volumes_from: Some(vec![target.id.clone()]),
            ..Default::default()
        };
        Self::start(docker, image, &why, &target.name, host).await
    }

    /// A helper with the Docker volume `volume` mounted read-write at `at` (Docker creates the
    /// volume if it does not exist), for restoring into it.
    pub async fn for_volume(
        docker: &Docker,
        volume: &str,
        at: &str,
        image: Option<&str>,
    ) -> Result<Self, SiteError> {
        let why = format!("restoring into volume {volume} needs a helper container");
        let host = HostConfig {
            mounts: Some(vec![bollard::models::Mount {
                typ: Some(bollard::models::MountType::VOLUME),
                source: Some(volume.to_string()),
                target: Some(at.to_string()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        Self::start(docker, image, &why, &format!("volume {volume}"), host).await
    }

    /// Creates and starts a helper container: `image` (else stowage's own), labelled as a
    /// helper for `of`, no network, auto-removed, with `host`'s mounts; its only process a
    /// bounded `sleep`. `why` explains errors.
    async fn start(
        docker: &Docker,
        image: Option<&str>,
        why: &str,
        of: &str,
        host: HostConfig,
    ) -> Result<Self, SiteError> {
        let image = match image {
            Some(i) => i.to_string(),
            None => own_image(docker)
                .await
                .ok_or_else(|| SiteError::NoImage { why: why.into() })?,
        };
        let body = ContainerCreateBody {
            image: Some(image.clone()),
            entrypoint: Some(vec!["sleep".into()]),
            cmd: Some(vec![HELPER_LIFETIME.into()]),
            labels: Some(HashMap::from([(HELPER_LABEL.to_string(), of.to_string())])),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                auto_remove: Some(true),
                ..host
            }),
            ..Default::default()
        };
        let created = docker
            .create_container(None::<CreateContainerOptions>, body)
            .await
            .map_err(|source| SiteError::Create {
                why: why.into(),
                image: image.clone(),
                source,
            })?;
        let site = Self {
            container_id: created.id.clone(),
            helper: Some((created.id.clone(), docker.clone())),
        };
        if let Err(source) = docker.start_container(&created.id, None).await {
            site.remove(docker).await;
            return Err(SiteError::Start { image, source });
        }
        tracing::debug!(helper = %created.id, image, "helper container started");
        Ok(site)
    }

    /// The `uid:gid` commands run as: in a helper, the owner of the spec's
    /// `run_as_owner_of` path (or of its directory, if it does not exist yet); `None` when
    /// they run in the target as its own user.
    pub async fn user(
        &self,
        docker: &Docker,
        engine: &Engine,
        values: &BTreeMap<String, String>,
    ) -> Result<Option<String>, SiteError> {
        let (Some(_), Some(template)) = (&self.helper, &engine.helper_owner_of) else {
            return Ok(None);
        };
        let path = template
            .render(values)
            .map_err(|v| SiteError::Render(RenderError::Missing(v.0)))?;
        let parent = Path::new(&path)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "/".into());
        for candidate in [&path, &parent] {
            let req = ExecRequest {
                argv: vec![
                    "stat".into(),
                    "--format=%u:%g".into(),
                    "--".into(),
                    candidate.clone(),
                ],
                ..Default::default()
            };
            let (out, status) = exec::capture(docker, &self.container_id, &req, 256)
                .await
                .map_err(|source| SiteError::Stat {
                    path: candidate.clone(),
                    source,
                })?;
            if status.success() {
                return Ok(Some(String::from_utf8_lossy(&out).trim().to_string()));
            }
        }
        Err(SiteError::NotOnVolume { path })
    }

    /// Removes the helper, if any. Failures are logged: Docker removes it when its lifetime
    /// ends anyway.
    pub async fn remove(mut self, docker: &Docker) {
        if let Some((id, _)) = self.helper.take() {
            remove_helper(docker, &id).await;
        }
    }
}

/// The image of the container stowage runs in, found by its hostname (Docker sets it to the
/// container ID's prefix unless the user chose another).
pub async fn own_image(docker: &Docker) -> Option<String> {
    let hostname = std::fs::read_to_string("/etc/hostname").ok()?;
    let own = docker
        .inspect_container(hostname.trim(), None::<InspectContainerOptions>)
        .await
        .ok()?;
    own.image
}

/// A temp path inside a container, for a `to_file` dump or a `from_file` restore.
pub fn temp_path(extension: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("/tmp/stowage-{}-{nanos:x}.{extension}", std::process::id())
}
