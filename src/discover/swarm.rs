//! Docker Swarm task containers: their stable target names, and the service's own labels.
//!
//! A task container's name (`stack_db.1.k2j3…`) changes on every reschedule; the service's
//! name does not. So a task container's default target name is its service's name, with
//! `.SLOT` added for slots above 1 of a replicated service (a one-replica service is plain
//! `stack_db`, and keeps that name when scaled). Global services run one task per node, and
//! each node's stowage sees only its own, so the service name alone is unique per host.
//!
//! Labels: a stack file's `labels:` under a service become the task containers' labels and
//! are read like any container's. `deploy.labels` are the *service's* labels, which only a
//! manager can read: when this engine is a manager, services labelled `stowage.enable` (or
//! Baktainer's) are looked up, their task containers on this node are discovered, and the
//! service's labels are merged under each task container's (the container's win).

use std::collections::{BTreeMap, HashMap};

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptionsBuilder, ListServicesOptionsBuilder};

use super::ContainerInfo;

/// Label on task containers: the service's ID.
pub const SERVICE_ID: &str = "com.docker.swarm.service.id";
/// Label on task containers: the service's name.
pub const SERVICE_NAME: &str = "com.docker.swarm.service.name";
/// Label on task containers: `<service>.<slot or node ID>.<task ID>`.
pub const TASK_NAME: &str = "com.docker.swarm.task.name";

/// The target name a Swarm task container gets by default, or `None` for a plain container.
pub fn target_name(labels: &BTreeMap<String, String>) -> Option<String> {
    let service = labels.get(SERVICE_NAME)?;
    let slot = labels
        .get(TASK_NAME)
        .and_then(|t| t.strip_prefix(service.as_str()))
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| rest.split('.').next())
        .and_then(|s| s.parse::<u64>().ok());
    Some(match slot {
        Some(n) if n > 1 => format!("{service}.{n}"),
        _ => service.clone(),
    })
}

/// Whether this engine is a Swarm manager (it can read services).
pub async fn is_manager(docker: &Docker) -> Result<bool, bollard::errors::Error> {
    let info = docker.info().await?;
    Ok(info
        .swarm
        .and_then(|s| s.control_available)
        .unwrap_or(false))
}

/// On a manager: the labels of services carrying one of `enable_labels` (with `instance`),
/// by service ID, and the IDs of their task containers on this node.
pub async fn labelled_services(
    docker: &Docker,
    enable_labels: &[&str],
    instance_filter: Option<&str>,
) -> Result<(HashMap<String, BTreeMap<String, String>>, Vec<String>), bollard::errors::Error> {
    let mut labels = HashMap::new();
    let mut containers = Vec::new();
    for enable in enable_labels {
        let mut wanted = vec![enable.to_string()];
        wanted.extend(instance_filter.map(String::from));
        let filters = HashMap::from([("label".to_string(), wanted)]);
        let opts = ListServicesOptionsBuilder::default()
            .filters(&filters)
            .build();
        for service in docker.list_services(Some(opts)).await? {
            let (Some(id), Some(spec)) = (service.id, service.spec) else {
                continue;
            };
            if labels.contains_key(&id) {
                continue;
            }
            let filters =
                HashMap::from([("label".to_string(), vec![format!("{SERVICE_ID}={id}")])]);
            let opts = ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build();
            for c in docker.list_containers(Some(opts)).await? {
                containers.extend(c.id);
            }
            labels.insert(id, spec.labels.unwrap_or_default().into_iter().collect());
        }
    }
    Ok((labels, containers))
}

/// On a manager: the labels of the services of `containers` that `known` lacks (a service
/// found through its task containers' own labels), added to `known`. A service that cannot
/// be inspected (removed meanwhile) is left out.
pub async fn add_service_labels(
    docker: &Docker,
    containers: &[ContainerInfo],
    known: &mut HashMap<String, BTreeMap<String, String>>,
) {
    for c in containers {
        let Some(id) = c.labels.get(SERVICE_ID) else {
            continue;
        };
        if known.contains_key(id) {
            continue;
        }
        match docker.inspect_service(id, None).await {
            Ok(service) => {
                let labels = service
                    .spec
                    .and_then(|s| s.labels)
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                known.insert(id.clone(), labels);
            }
            Err(e) => tracing::debug!(service = %id, "service not inspected: {e}"),
        }
    }
}

/// The service labels of a manager, merged under `c`'s own labels.
pub fn merge_service_labels(
    c: &mut ContainerInfo,
    services: &HashMap<String, BTreeMap<String, String>>,
) {
    let Some(service) = c.labels.get(SERVICE_ID).and_then(|id| services.get(id)) else {
        return;
    };
    for (k, v) in service {
        c.labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::labels::tests::labels;

    #[test]
    fn task_containers_are_named_for_their_service() {
        assert_eq!(target_name(&labels(&[])), None);
        let replicated =
            |task: &str| target_name(&labels(&[(SERVICE_NAME, "shop_db"), (TASK_NAME, task)]));
        assert_eq!(replicated("shop_db.1.q3kx9").as_deref(), Some("shop_db"));
        assert_eq!(replicated("shop_db.3.zz").as_deref(), Some("shop_db.3"));
        // Global services: node IDs are not slots.
        assert_eq!(
            replicated("shop_db.w8ajzqbq2h5y7v9x3k1m4n6p0.zz").as_deref(),
            Some("shop_db")
        );
        // A service name with dots.
        assert_eq!(
            target_name(&labels(&[(SERVICE_NAME, "a.b"), (TASK_NAME, "a.b.2.zz")])).as_deref(),
            Some("a.b.2")
        );
    }

    #[test]
    fn container_labels_win_over_service_labels() {
        let mut c = ContainerInfo::running("postgres:16", &[]);
        c.labels = labels(&[(SERVICE_ID, "s1"), ("stowage.database", "mine")]);
        let services = HashMap::from([(
            "s1".to_string(),
            labels(&[("stowage.enable", "true"), ("stowage.database", "theirs")]),
        )]);
        merge_service_labels(&mut c, &services);
        assert_eq!(c.labels["stowage.enable"], "true");
        assert_eq!(c.labels["stowage.database"], "mine");
    }
}
