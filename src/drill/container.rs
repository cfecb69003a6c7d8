//! The throwaway container a drill restores into.
//!
//! It is made from the target's image ID (or stowage's helper image, for engines such as SQLite
//! whose tool is not in the application's image), with no network, a memory limit, fresh
//! credentials in its environment, anonymous volumes only and the [`DRILL_LABEL`] label, which
//! discovery never treats as a target and which finds containers a killed stowage left behind
//! ([`remove_leftovers`]). [`Throwaway::remove`] removes it with its anonymous volumes; a
//! `Throwaway` dropped without it (a panic, an aborted task) removes it in the background.

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, LogsOptions, RemoveContainerOptions,
};
use futures_util::StreamExt;

/// The label that marks drill containers (value: the target's name); discovery never takes a
/// container with it for a target.
pub const DRILL_LABEL: &str = crate::discover::OWN_CONTAINER_LABELS[0];

/// The label that names the stowage instance (config `instance`, empty without one) whose
/// drill made the container: leftovers are removed only by the same instance.
pub const INSTANCE_LABEL: &str = "stowage.drill-instance";

/// What a drill container is made of.
#[derive(Debug, Clone)]
pub struct Blueprint {
    /// The target's name (the label's value, and part of the container's name).
    pub target: String,
    /// Config `instance` of the stowage that drills (empty: none).
    pub instance: String,
    /// Image ID or reference.
    pub image: String,
    /// `NAME=value` entries; may hold the fresh password.
    pub env: Vec<String>,
    /// Entrypoint and arguments, replacing the image's.
    pub command: Option<Vec<String>>,
    /// Paths that get anonymous volumes.
    pub volumes: Vec<String>,
    /// Memory limit in bytes (0: none).
    pub memory: i64,
}

/// A running drill container.
#[derive(Debug)]
pub struct Throwaway {
    docker: Docker,
    /// Its ID.
    pub id: String,
    removed: bool,
}

/// The container could not be made or started.
#[derive(Debug, thiserror::Error)]
#[error("the drill container from image {image} could not be {what}")]
pub struct StartError {
    /// The image.
    pub image: String,
    /// `created` or `started`.
    pub what: &'static str,
    /// Why.
    #[source]
    pub source: bollard::errors::Error,
}

impl Throwaway {
    /// Creates and starts the container.
    pub async fn start(docker: &Docker, b: &Blueprint) -> Result<Self, StartError> {
        let err = |what, source| StartError {
            image: b.image.clone(),
            what,
            source,
        };
        let (entrypoint, cmd) = match &b.command {
            Some(c) => (Some(vec![c[0].clone()]), Some(c[1..].to_vec())),
            None => (None, None),
        };
        let body = ContainerCreateBody {
            image: Some(b.image.clone()),
            env: Some(b.env.clone()),
            entrypoint,
            cmd,
            labels: Some(HashMap::from([
                (DRILL_LABEL.to_string(), b.target.clone()),
                (INSTANCE_LABEL.to_string(), b.instance.clone()),
            ])),
            volumes: Some(b.volumes.clone()),
            // Network mode `none`: a loopback interface only. (`network_disabled` would take
            // the loopback too, and some entrypoints fail without it.)
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                memory: (b.memory > 0).then_some(b.memory),
                // No swap beyond the limit: a drill that needs more memory fails, visibly.
                memory_swap: (b.memory > 0).then_some(b.memory),
                ..Default::default()
            }),
            ..Default::default()
        };
        let suffix: String = (0..6)
            .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rand_index(36)]))
            .collect();
        let name = format!(
            "stowage-drill-{}-{suffix}",
            crate::discover::labels::file_safe(&b.target)
        );
        let opts = CreateContainerOptions {
            name: Some(name),
            ..Default::default()
        };
        let created = docker
            .create_container(Some(opts), body)
            .await
            .map_err(|e| err("created", e))?;
        let container = Self {
            docker: docker.clone(),
            id: created.id,
            removed: false,
        };
        if let Err(e) = docker.start_container(&container.id, None).await {
            container.remove().await;
            return Err(err("started", e));
        }
        Ok(container)
    }

    /// The short ID, for logs.
    pub fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(12)]
    }

    /// Whether it still runs, and if not, the last lines of its log (why the engine stopped).
    /// A container that is gone (removed by someone else) has stopped too.
    pub async fn exited(&self) -> Option<String> {
        let inspected = match self.docker.inspect_container(&self.id, None).await {
            Ok(i) => i,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return Some("(the container is gone: it was removed from outside)".into()),
            // The engine did not answer: not a reason to give up on the drill.
            Err(_) => return None,
        };
        if inspected.state.and_then(|s| s.running) == Some(true) {
            return None;
        }
        let opts = LogsOptions {
            stdout: true,
            stderr: true,
            tail: "5".into(),
            ..Default::default()
        };
        let mut logs = self.docker.logs(&self.id, Some(opts));
        let mut text = String::new();
        while let Some(Ok(chunk)) = logs.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        Some(crate::error_text::shorten(text.trim(), 400))
    }

    /// Removes the container and its anonymous volumes. A failure is logged: the next start
    /// removes it by its label.
    pub async fn remove(mut self) {
        self.removed = true;
        remove(&self.docker, &self.id).await;
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        if !self.removed
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            let (docker, id) = (self.docker.clone(), self.id.clone());
            handle.spawn(async move { remove(&docker, &id).await });
        }
    }
}

async fn remove(docker: &Docker, id: &str) {
    let opts = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    match docker.remove_container(id, Some(opts)).await {
        Ok(()) => tracing::debug!(container = %id, "drill container removed"),
        Err(e) => {
            tracing::warn!(container = %id, "could not remove the drill container: {e}; the next `stowage drill` or `stowage run` removes it")
        }
    }
}

/// Removes drill containers (and their volumes) that a killed stowage of the same `instance`
/// left behind; returns how many. Call it, holding the backup directory's lock, before any
/// drill of this process starts. (Drills of other instances on the same engine are theirs.)
pub async fn remove_leftovers(
    docker: &Docker,
    instance: Option<&str>,
) -> Result<usize, bollard::errors::Error> {
    let opts = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(
            "label".to_string(),
            vec![
                DRILL_LABEL.to_string(),
                format!("{INSTANCE_LABEL}={}", instance.unwrap_or_default()),
            ],
        )])),
        ..Default::default()
    };
    let found = docker.list_containers(Some(opts)).await?;
    for c in &found {
        let Some(id) = &c.id else { continue };
        let target = c
            .labels
            .as_ref()
            .and_then(|l| l.get(DRILL_LABEL))
            .cloned()
            .unwrap_or_default();
        tracing::warn!(container = %id, target, "removing a drill container left behind by a stowage that was killed");
        remove(docker, id).await;
    }
    Ok(found.len())
}

/// A random index below `n`, from the OS's random source (names and passwords of drill
/// containers).
pub fn rand_index(n: usize) -> usize {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("the OS random source");
    (u64::from_le_bytes(b) % n as u64) as usize
}

/// A fresh random password: 32 characters of `[A-Za-z0-9]`.
pub fn password() -> crate::secret::Secret {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    crate::secret::Secret::new(
        (0..32)
            .map(|_| char::from(ABC[rand_index(ABC.len())]))
            .collect::<String>(),
    )
}
