//! Stopping containers while their files are archived (`stowage.stop`, `stowage.stop_group`),
//! and always starting them again.
//!
//! Before anything is stopped, the containers about to be stopped are recorded in
//! `<backup dir>/.stopped/<target>.json` (written atomically). [`Stopped::start`] starts them
//! again, the target first and its group after, logs how long each was down, and removes the
//! record. When the run ends any other way (the daemon's `backup_timeout` aborts it, SIGTERM
//! cancels it), dropping [`Stopped`] starts them on a task of its own, which
//! [`crate::docker::pending::settle`] waits for before the process exits. When stowage is killed while they are down, the record stays
//! and [`recover`] starts them at the next `stowage backup`, `stowage run` or `stowage
//! restore`. A restore that replaces a server's file (Redis) stops its container the same way
//! ([`stop_for_restore`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptionsBuilder};
use serde::{Deserialize, Serialize};

use crate::discover::OWN_CONTAINER_LABELS;
use crate::plan::Target;

/// The directory of the records, in the backup directory.
const RECORDS: &str = ".stopped";

/// The label whose value names a stop group.
const GROUP_LABEL: &str = "stowage.stop_group";

/// How long after an aborted run's restart its containers are watched (Docker's default stop
/// timeout is 10 s; a stop it was still carrying out would take them down again).
const ABORT_WATCH_SECONDS: u64 = 30;

/// The containers could not all be stopped (those that were are started again).
#[derive(Debug, thiserror::Error)]
pub enum StopError {
    /// The group's containers could not be listed.
    #[error("cannot list the containers of stop group {group}: {source}")]
    List {
        /// The group.
        group: String,
        /// Why.
        #[source]
        source: bollard::errors::Error,
    },
    /// The record of what is stopped could not be written, so nothing was stopped.
    #[error(
        "cannot record which containers are stopped ({0}); nothing was stopped. Check the backup directory"
    )]
    Record(#[source] std::io::Error),
    /// A container did not stop.
    #[error(
        "container {name} did not stop: {source}; the containers stopped so far were started again"
    )]
    Stop {
        /// The container.
        name: String,
        /// Why.
        #[source]
        source: bollard::errors::Error,
    },
}

impl crate::error::Temporary for StopError {
    fn is_temporary(&self) -> bool {
        match self {
            Self::List { source, .. } | Self::Stop { source, .. } => {
                crate::docker::exec::api_is_temporary(source)
            }
            Self::Record(e) => crate::error::io_is_temporary(e),
        }
    }
}

/// One container that was stopped.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Member {
    id: String,
    name: String,
}

/// The record of a target's stopped containers.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    target: String,
    stopped_at: chrono::DateTime<chrono::Utc>,
    containers: Vec<Member>,
}

/// How long one container was down.
#[derive(Debug, Clone)]
pub struct Downtime {
    /// The container.
    pub container: String,
    /// From the stop request to the start.
    pub down: Duration,
    /// Whether it runs again (`false`: starting it failed; the record keeps it for the next
    /// start of stowage).
    pub started: bool,
}

/// Containers stopped for a backup; dropping this starts them again.
#[derive(Debug)]
pub struct Stopped {
    docker: Docker,
    /// Where they are recorded (none for a drill's throwaway container).
    record: Option<PathBuf>,
    /// In the order they were stopped (the group, then the target).
    members: Vec<Member>,
    since: Instant,
    done: bool,
    /// A stop request of the last member is under way.
    stopping: bool,
}

/// Stops the target's container and its stop group, after recording them.
pub async fn stop(
    docker: &Docker,
    backup_dir: &Path,
    target: &Target,
) -> Result<Stopped, StopError> {
    let mut members = match target.stop.as_ref().and_then(|s| s.group.as_deref()) {
        Some(group) => group_members(docker, target, group).await?,
        None => Vec::new(),
    };
    members.push(Member {
        id: target.container.id.clone(),
        name: target.container.name.clone(),
    });
    let record = record_path(backup_dir, &target.name);
    stop_members(docker, Some(record), &target.name, members, "the backup").await
}

/// Stops one container for a restore that replaces a file it reads at start
/// (`restore.replace`), after recording it under `backup_dir` when given (the caller holds the
/// directory's lock), so that if stowage is killed the next one starts it again.
pub async fn stop_for_restore(
    docker: &Docker,
    backup_dir: Option<&Path>,
    id: &str,
    name: &str,
) -> Result<Stopped, StopError> {
    let label = format!("restore-{name}");
    let record = backup_dir.map(|d| record_path(d, &label));
    let member = Member {
        id: id.into(),
        name: name.into(),
    };
    stop_members(docker, record, &label, vec![member], "the restore").await
}

fn record_path(backup_dir: &Path, name: &str) -> PathBuf {
    backup_dir
        .join(RECORDS)
        .join(format!("{}.json", crate::discover::labels::file_safe(name)))
}

/// Records `members` (when `record` is given), then stops them in order.
async fn stop_members(
    docker: &Docker,
    record: Option<PathBuf>,
    label: &str,
    members: Vec<Member>,
    purpose: &str,
) -> Result<Stopped, StopError> {
    if let Some(path) = &record {
        let content = Record {
            target: label.to_string(),
            stopped_at: chrono::Utc::now(),
            containers: members.clone(),
        };
        write_record(path, &content).map_err(StopError::Record)?;
    }
    let mut stopped = Stopped {
        docker: docker.clone(),
        record,
        members: Vec::new(),
        since: Instant::now(),
        done: false,
        stopping: false,
    };
    for m in members {
        tracing::info!(target = %label, container = %m.name, "stopping the container for {purpose}");
        // In the guard before the request: a run aborted while Docker stops it starts it too.
        stopped.members.push(m.clone());
        stopped.stopping = true;
        let result = docker.stop_container(&m.id, None).await;
        stopped.stopping = false;
        if let Err(source) = result {
            stopped.start().await;
            return Err(StopError::Stop {
                name: m.name,
                source,
            });
        }
    }
    crate::fault::point("stop:stopped");
    Ok(stopped)
}

/// The running containers of stop group `group` other than the target, by name (stowage's
/// own helpers and drill containers left out).
async fn group_members(
    docker: &Docker,
    target: &Target,
    group: &str,
) -> Result<Vec<Member>, StopError> {
    let mut members = Vec::new();
    let filter = format!("{GROUP_LABEL}={group}");
    let filters = std::collections::HashMap::from([("label", vec![filter.as_str()])]);
    let opts = ListContainersOptionsBuilder::default()
        .filters(&filters)
        .build();
    let listed = docker
        .list_containers(Some(opts))
        .await
        .map_err(|source| StopError::List {
            group: group.into(),
            source,
        })?;
    for c in listed {
        let own = c
            .labels
            .as_ref()
            .is_some_and(|l| OWN_CONTAINER_LABELS.iter().any(|k| l.contains_key(*k)));
        let (Some(id), false) = (c.id, own) else {
            continue;
        };
        if id != target.container.id {
            let name = c
                .names
                .and_then(|n| n.into_iter().next())
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_else(|| id.clone());
            members.push(Member { id, name });
        }
    }
    members.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(members)
}

impl Stopped {
    /// Starts the containers again (the target first) and removes the record once all run.
    pub async fn start(mut self) -> Vec<Downtime> {
        self.done = true;
        start_all(
            &self.docker,
            self.record.as_deref(),
            &self.members,
            self.since,
        )
        .await
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // The run was aborted (timeout, shutdown): start them on a task of their own.
        let (docker, record, members, since) = (
            self.docker.clone(),
            self.record.clone(),
            std::mem::take(&mut self.members),
            self.since,
        );
        let in_flight = members.last().cloned().filter(|_| self.stopping);
        tracing::warn!(
            containers = members.len(),
            "the run was aborted while its containers were stopped; starting them again"
        );
        crate::docker::pending::spawn(async move {
            start_all(&docker, record.as_deref(), &members, since).await;
            // The stop request the run was waiting for when it was aborted may still be
            // under way in Docker (until the container's stop timeout): keep it up.
            let Some(m) = in_flight else { return };
            for _ in 0..ABORT_WATCH_SECONDS {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let running = docker
                    .inspect_container(&m.id, None::<InspectContainerOptions>)
                    .await
                    .ok()
                    .and_then(|c| c.state?.running);
                if running == Some(false) {
                    tracing::info!(container = %m.name, "starting the container again: the stop the aborted run had asked for ended after it was started");
                    let _ = docker.start_container(&m.id, None).await;
                }
            }
        });
    }
}

/// Starts `members` in reverse order; removes the record when every one runs.
async fn start_all(
    docker: &Docker,
    record: Option<&Path>,
    members: &[Member],
    since: Instant,
) -> Vec<Downtime> {
    let mut out = Vec::new();
    for m in members.iter().rev() {
        let result = docker.start_container(&m.id, None).await;
        let down = since.elapsed();
        let started = match result {
            Ok(()) => {
                tracing::info!(container = %m.name, down_seconds = format!("{:.1}", down.as_secs_f64()), "container started again");
                true
            }
            // 304: it was already running (someone started it).
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => true,
            Err(e) => {
                tracing::error!(container = %m.name, "could not start the container again: {e}. Start it with `docker start {}`; stowage tries again at its next start", m.name);
                false
            }
        };
        out.push(Downtime {
            container: m.name.clone(),
            down,
            started,
        });
    }
    if let Some(record) = record
        && out.iter().all(|d| d.started)
    {
        let _ = std::fs::remove_file(record);
    }
    out
}

/// Starts the containers that an earlier stowage stopped and could not start again (it was
/// killed); returns how many it started. Call with the backup directory's lock held.
pub async fn recover(docker: &Docker, backup_dir: &Path) -> usize {
    let dir = backup_dir.join(RECORDS);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let mut started = 0;
    for path in entries.flatten().map(|e| e.path()) {
        if path.extension().is_none_or(|x| x != "json") {
            let _ = std::fs::remove_file(&path); // a temp file of an interrupted write
            continue;
        }
        let record: Record = match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(record = %path.display(), "cannot read the record of stopped containers: {e}; check the containers it names and remove it");
                continue;
            }
        };
        let mut down = Vec::new();
        for m in &record.containers {
            match docker
                .inspect_container(&m.id, None::<InspectContainerOptions>)
                .await
            {
                Ok(c) if c.state.as_ref().and_then(|s| s.running) == Some(true) => {}
                Ok(_) => down.push(m.clone()),
                Err(e) => {
                    tracing::warn!(container = %m.name, "a container stopped for a backup is gone: {e}")
                }
            }
        }
        tracing::warn!(target = %record.target, stopped_at = %record.stopped_at, containers = down.len(), "an earlier stowage stopped containers for a backup and ended before starting them again; starting them now");
        let age = (chrono::Utc::now() - record.stopped_at)
            .to_std()
            .unwrap_or_default();
        let since = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        let results = start_all(docker, Some(&path), &down, since).await;
        started += results.iter().filter(|d| d.started).count();
    }
    started
}

/// Writes the record atomically: temp file, fsync, rename, fsync the directory.
fn write_record(path: &Path, record: &Record) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().expect("records live in a directory");
    std::fs::create_dir_all(dir)?;
    let temp = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(&serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?)?;
    file.sync_all()?;
    std::fs::rename(&temp, path)?;
    std::fs::File::open(dir)?.sync_all()
}
