//! Finding the containers to back up.
//!
//! Lists every container (running or not) that carries a `stowage.enable` label and inspects
//! each one for what planning needs: name, image, state, labels and environment. On a Swarm
//! manager it also finds the task containers of services labelled so ([`swarm`]). It reads the
//! Docker API only; deciding what a container means is [`crate::plan`]'s job.

pub mod labels;
pub mod swarm;

use std::collections::BTreeMap;
use std::fmt;

use bollard::Docker;
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptionsBuilder};
use futures_util::StreamExt;

/// The label whose presence makes a container a candidate.
pub const ENABLE_LABEL: &str = "stowage.enable";

/// The label of stowage's own throwaway containers (restore drills, helpers): they are never
/// targets, whatever labels their image carries.
pub const OWN_CONTAINER_LABELS: [&str; 2] = ["stowage.drill-for", "stowage.helper-for"];

/// The label that assigns a container to one stowage instance (config `instance`).
pub const INSTANCE_LABEL: &str = "stowage.instance";

/// How many container inspections run at once. Each one holds a response body and its parsed
/// form; 4 keeps the idle daemon's peak heap low and still plans 200 containers in a fraction
/// of a second (BENCHMARKS.md).
const INSPECT_CONCURRENCY: usize = 4;

/// A container's environment. Values may be secrets, so `Debug` shows the names only.
#[derive(Clone, Default)]
pub struct Env(BTreeMap<String, String>);

impl Env {
    /// Parses Docker's `KEY=value` list.
    pub fn from_list(list: &[String]) -> Self {
        Self(
            list.iter()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// The value of one variable.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// What stowage knows about one container. `Debug` shows label and variable names only:
/// label values may hold secrets (`stowage.password`).
#[derive(Clone)]
pub struct ContainerInfo {
    /// Full container ID.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// Image reference as the container was created with (e.g. `postgres:16`).
    pub image: String,
    /// Docker's state word: running, exited, paused, …
    pub state: String,
    /// All labels.
    pub labels: BTreeMap<String, String>,
    /// Environment (image's and container's).
    pub env: Env,
    /// Its volumes and bind mounts.
    pub mounts: Vec<Mount>,
}

/// One of a container's mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `volume`, `bind`, `tmpfs`, …
    pub kind: String,
    /// The volume's name (empty for a bind mount).
    pub name: String,
    /// Where it is mounted in the container.
    pub destination: String,
}

impl fmt::Debug for ContainerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContainerInfo")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("image", &self.image)
            .field("state", &self.state)
            .field("labels", &self.labels.keys().collect::<Vec<_>>())
            .field("env", &self.env)
            .field("mounts", &self.mounts)
            .finish()
    }
}

impl ContainerInfo {
    /// Builds the info from an inspection (`id` is used if the response lacks one).
    pub fn from_inspect(c: bollard::models::ContainerInspectResponse, id: String) -> Self {
        let config = c.config.unwrap_or_default();
        Self {
            name: c
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            image: config.image.unwrap_or_default(),
            state: c
                .state
                .and_then(|s| s.status)
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".into()),
            labels: config.labels.unwrap_or_default().into_iter().collect(),
            env: Env::from_list(&config.env.unwrap_or_default()),
            mounts: c
                .mounts
                .unwrap_or_default()
                .into_iter()
                .map(|m| Mount {
                    kind: m.typ.map(|t| t.to_string()).unwrap_or_default(),
                    name: m.name.unwrap_or_default(),
                    destination: m.destination.unwrap_or_default(),
                })
                .collect(),
            id: c.id.unwrap_or(id),
        }
    }

    /// Whether the container is running (an exec can only run in a running container).
    pub fn is_running(&self) -> bool {
        self.state == "running"
    }

    /// The first 12 characters of the ID, as `docker ps` shows it.
    pub fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(12)]
    }
}

#[cfg(test)]
impl ContainerInfo {
    /// A running container `db` (ID `abc`) with `image` and `env`, for unit tests.
    pub(crate) fn running(image: &str, env: &[&str]) -> Self {
        Self {
            id: "abc".into(),
            name: "db".into(),
            image: image.into(),
            state: "running".into(),
            labels: Default::default(),
            env: Env::from_list(&env.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
            mounts: Vec::new(),
        }
    }
}

/// The engine could not be asked for its containers.
#[derive(Debug, thiserror::Error)]
#[error("listing containers labelled {ENABLE_LABEL} failed: {0}. Is the Docker engine reachable?")]
pub struct DiscoveryError(#[from] bollard::errors::Error);

impl crate::error::Temporary for DiscoveryError {
    fn is_temporary(&self) -> bool {
        crate::docker::exec::api_is_temporary(&self.0)
    }
}

/// The IDs of containers labelled `stowage.enable` or `baktainer.backup` (and, with
/// `instance`, `stowage.instance=<instance>`), stowage's own containers left out.
async fn labelled_ids(
    docker: &Docker,
    instance: Option<&str>,
) -> Result<Vec<String>, bollard::errors::Error> {
    // Label filters are ANDed, so stowage's and Baktainer's enable labels take a list each.
    let mut ids: Vec<String> = Vec::new();
    for enable in [ENABLE_LABEL, crate::discover::labels::BAKTAINER_ENABLE] {
        let mut wanted = vec![enable.to_string()];
        if let Some(i) = instance {
            wanted.push(format!("{INSTANCE_LABEL}={i}"));
        }
        let filters = std::collections::HashMap::from([(
            "label",
            wanted.iter().map(String::as_str).collect::<Vec<_>>(),
        )]);
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        for id in docker
            .list_containers(Some(opts))
            .await?
            .into_iter()
            .filter(|s| {
                let labels = s.labels.as_ref();
                !OWN_CONTAINER_LABELS
                    .iter()
                    .any(|l| labels.is_some_and(|m| m.contains_key(*l)))
            })
            .filter_map(|s| s.id)
        {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    Ok(ids)
}

/// Lists and inspects every container with a `stowage.enable` or `baktainer.backup` label
/// (and, with `instance`, `stowage.instance=<instance>`), sorted by name. A container that
/// disappears between listing and inspection is left out.
pub async fn labelled_containers(
    docker: &Docker,
    instance: Option<&str>,
) -> Result<Vec<ContainerInfo>, DiscoveryError> {
    let mut ids = labelled_ids(docker, instance).await?;
    // On a Swarm manager, services labelled in `deploy.labels` count too.
    let manager = swarm::is_manager(docker).await?;
    let mut services = if manager {
        let instance_filter = instance.map(|i| format!("{INSTANCE_LABEL}={i}"));
        let (labels, tasks) = swarm::labelled_services(
            docker,
            &[ENABLE_LABEL, crate::discover::labels::BAKTAINER_ENABLE],
            instance_filter.as_deref(),
        )
        .await?;
        for id in tasks {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        labels
    } else {
        Default::default()
    };
    let inspected: Vec<_> = futures_util::stream::iter(ids)
        .map(|id| async move {
            (
                docker
                    .inspect_container(&id, None::<InspectContainerOptions>)
                    .await,
                id,
            )
        })
        .buffer_unordered(INSPECT_CONCURRENCY)
        .collect()
        .await;
    let mut out = Vec::new();
    for (result, id) in inspected {
        match result {
            Ok(c) => out.push(ContainerInfo::from_inspect(c, id)),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => tracing::debug!(container = %id, "container vanished while being inspected"),
            Err(e) => return Err(e.into()),
        }
    }
    if manager {
        swarm::add_service_labels(docker, &out, &mut services).await;
        for c in &mut out {
            swarm::merge_service_labels(c, &services);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_debug_hides_values() {
        let env = Env::from_list(&["POSTGRES_PASSWORD=s3cret".into(), "A=b=c".into()]);
        assert_eq!(env.get("A"), Some("b=c"));
        let shown = format!("{env:?}");
        assert!(
            shown.contains("POSTGRES_PASSWORD") && !shown.contains("s3cret"),
            "{shown}"
        );
    }
}
