//! One backup of one target, from container to committed artifact.
//!
//! Steps, each named in errors: check the container runs; read the variables that live in
//! files inside the container; ask the dump tool its version; run the dump as an exec and
//! stream its stdout through the [`crate::pipeline`] into a temp file; then decide. Success
//! needs all of: exit code 0, no error pattern on stderr, the engine's completeness marker
//! near the end of the stream, and a clean write. Only then is the file committed under its
//! final name and its manifest written. On any failure the temp file is removed and the
//! error names the container, the engine, the database and the step, and says what to do.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::InspectContainerOptions;
use chrono::Utc;
use tokio::io::AsyncWriteExt;

use crate::artifact::{self, ContainerRef, Content, Manifest, Stored, TempFile};
use crate::encryption::Encryption;
use crate::engine::{Chosen, Engine, Invocation};
use crate::exec::{self, ExecError, ExecRequest, ExecStream, ExitStatus};
use crate::helper::Site;
use crate::labels;
use crate::pipeline::{PipelineWriter, Settings};
use crate::plan::{Databases, Target};
use crate::prune;
use crate::replicate;
use crate::storage::Storages;

/// How often progress is logged during a long dump.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Largest secret or name file read from a container.
const VAR_FILE_LIMIT: usize = 64 * 1024;

/// What a backup needs besides the target.
#[derive(Debug, Clone)]
pub struct Options {
    /// Root of the artifacts.
    pub backup_dir: PathBuf,
    /// Compression.
    pub compression: Settings,
    /// Image for helper containers (engines with a `[helper]`); `None`: stowage's own.
    pub helper_image: Option<String>,
    /// The configured encryption, for targets that are encrypted.
    pub encryption: Option<Arc<Encryption>>,
    /// The configured remote storages.
    pub storages: Arc<Storages>,
    /// Remove local copies once verified in every storage of their target.
    pub remote_only: bool,
}

/// What a target's run did: one result per database, and the upload pass after a success.
#[derive(Debug)]
pub struct TargetRun {
    /// One per database.
    pub backups: Vec<Result<Outcome, BackupError>>,
    /// The upload pass, when the target has storages and a backup succeeded.
    pub replication: Option<replicate::Report>,
    /// Local retention after a success: artifacts deleted, or why it failed.
    pub local_retention: Option<Result<usize, String>>,
}

/// A committed artifact.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Path of the artifact.
    pub artifact: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
}

/// The step a backup was at when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Inspecting the container.
    Inspect,
    /// Reading variables from files inside the container.
    Credentials,
    /// Preparing the helper container the commands run in.
    Helper,
    /// Running the dump tool.
    Dump,
    /// Judging the finished dump.
    Check,
    /// Writing the artifact or manifest.
    Write,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Inspect => "checking the container",
            Self::Credentials => "reading credentials",
            Self::Helper => "preparing the helper container",
            Self::Dump => "dumping",
            Self::Check => "checking the dump",
            Self::Write => "writing the artifact",
        })
    }
}

/// Why a backup failed.
#[derive(Debug)]
pub enum Failure {
    /// The container is not running.
    NotRunning(String),
    /// A Docker request failed or the stream broke.
    Exec(ExecError),
    /// A variable file could not be read or holds an unusable value.
    Var(String),
    /// The dump tool exited non-zero (or with no known code).
    Exit {
        /// The program.
        tool: String,
        /// Its status.
        status: ExitStatus,
        /// Whether the container was still running afterwards.
        container_running: bool,
    },
    /// stderr holds an error line although the exit code was 0.
    StderrError(String),
    /// The completeness marker is missing.
    Incomplete(String),
    /// Local file I/O.
    Io(std::io::Error),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotRunning(state) => write!(
                f,
                "the container is {state}, not running. Start it, or set stowage.enable=false"
            ),
            Self::Exec(e) => write!(
                f,
                "{e}. Check that the container is running and the Docker engine is reachable"
            ),
            Self::Var(msg) => write!(f, "{msg}"),
            Self::Exit {
                tool,
                status,
                container_running,
            } => {
                match status.code {
                    Some(code) => write!(f, "{tool} exited with status {code}")?,
                    None => write!(f, "{tool} ended without an exit status")?,
                }
                let stderr = last_lines(&status.stderr, 5);
                if !stderr.is_empty() {
                    write!(f, ": {stderr}")?;
                }
                let signal = status
                    .code
                    .filter(|c| (129..160).contains(c))
                    .map(|c| c - 128);
                if !container_running {
                    write!(
                        f,
                        ". The container stopped during the dump; start it and run the backup again"
                    )
                } else if let Some(sig) = signal {
                    write!(
                        f,
                        ". {tool} was killed by signal {sig}: the container was stopped or restarted, or ran out of memory, during the dump; run the backup again"
                    )
                } else {
                    write!(
                        f,
                        ". Check the database name and credentials (`stowage plan` shows where they come from)"
                    )
                }
            }
            Self::StderrError(line) => write!(
                f,
                "the dump tool reported an error although it exited 0: {line}"
            ),
            Self::Incomplete(marker) => write!(
                f,
                "the dump ended without its completeness marker {marker:?}: it was cut short. Nothing was kept; run the backup again"
            ),
            Self::Io(e) => write!(
                f,
                "{e}. Check free space and permissions of the backup directory"
            ),
        }
    }
}

/// A failed backup, with everything needed to act on it.
#[derive(Debug, thiserror::Error)]
#[error(
    "backup of container {container} (target {target}, engine {engine}, database {database}) failed while {step}: {failure}"
)]
pub struct BackupError {
    /// Container name.
    pub container: String,
    /// Target name.
    pub target: String,
    /// Engine name.
    pub engine: String,
    /// Database (or `all`).
    pub database: String,
    /// Where it failed.
    pub step: Step,
    /// Why.
    pub failure: Failure,
}

impl BackupError {
    /// The failure's class, for metrics and alerts (one of [`crate::metrics::REASONS`]).
    pub fn reason_class(&self) -> &'static str {
        match (&self.failure, self.step) {
            (Failure::NotRunning(_), _) => "not_running",
            (Failure::Io(_), _) | (_, Step::Write) => "write",
            (Failure::Exec(_), Step::Inspect | Step::Dump | Step::Check) => "docker",
            (_, Step::Credentials) => "credentials",
            (_, Step::Helper) => "helper",
            (Failure::Exit { .. }, _) => "dump_failed",
            (Failure::StderrError(_), _) => "dump_error",
            (Failure::Incomplete(_), _) => "incomplete",
            _ => "dump_failed",
        }
    }
}

/// Backs up every database a target selects: one artifact each. One database failing does
/// not stop the others. Every outcome is logged here, with its timings or its full error.
pub async fn backup_target(docker: &Docker, target: &Target, opts: &Options) -> TargetRun {
    let results = run_target(docker, target, opts).await;
    for result in &results {
        match result {
            Ok(o) => tracing::info!(
                target = %target.name,
                database = %o.manifest.database,
                artifact = %o.artifact.display(),
                raw_bytes = o.manifest.raw.bytes,
                stored_bytes = o.manifest.stored.bytes,
                seconds = (o.manifest.finished_at - o.manifest.started_at).num_milliseconds() as f64 / 1000.0,
                "backup complete"
            ),
            Err(e) => tracing::error!(target = %target.name, database = %e.database, "{e}"),
        }
    }
    let mut replication = None;
    let mut local_retention = None;
    if results.iter().any(Result::is_ok) {
        local_retention = apply_retention(target, opts).await;
        if !target.storages.is_empty() {
            replication = Some(replicate_target(target, opts).await);
        }
    }
    TargetRun {
        backups: results,
        replication,
        local_retention,
    }
}

/// Uploads what the target's storages lack, applies retention there, and in remote-only
/// mode removes verified local copies (see [`crate::replicate`]).
pub async fn replicate_target(target: &Target, opts: &Options) -> replicate::Report {
    let remotes: Vec<_> = target
        .storages
        .iter()
        .filter_map(|n| opts.storages.get(n).cloned())
        .collect();
    let report = replicate::sync_target(
        &opts.backup_dir,
        &target.name,
        &remotes,
        &target.retention,
        opts.remote_only,
    )
    .await;
    if report.failures.is_empty() {
        tracing::info!(target = %target.name, uploaded = report.uploaded, remote_deleted = report.pruned, local_removed = report.local_removed, "storages up to date");
    }
    report
}

/// Applies the target's retention policy after a successful backup. A failure is logged: the
/// backup itself succeeded, and the next one tries again.
async fn apply_retention(target: &Target, opts: &Options) -> Option<Result<usize, String>> {
    if target.retention.is_empty() {
        return None;
    }
    let dir = opts.backup_dir.clone();
    let name = target.name.clone();
    let policy = target.retention.clone();
    let result = tokio::task::spawn_blocking(move || {
        let plan = prune::plan_target(&dir, &name, &policy, Utc::now())?;
        prune::apply(&plan).map(|n| (n, plan.planned.len() - n))
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r);
    match result {
        Ok((deleted, kept)) => {
            tracing::info!(target = %target.name, policy = %target.retention, deleted, kept, "retention applied");
            Some(Ok(deleted))
        }
        Err(e) => {
            tracing::error!(target = %target.name, "retention could not be applied: {e}. Check the backup directory's permissions; the next backup tries again");
            Some(Err(e.to_string()))
        }
    }
}

/// A failure of `target` at `step`, with its context.
fn target_error(target: &Target, database: &str, step: Step, failure: Failure) -> BackupError {
    BackupError {
        container: target.container.name.clone(),
        target: target.name.clone(),
        engine: target.engine.name().to_string(),
        database: database.to_string(),
        step,
        failure,
    }
}

async fn run_target(
    docker: &Docker,
    target: &Target,
    opts: &Options,
) -> Vec<Result<Outcome, BackupError>> {
    let fail = |database: &str, step, failure| target_error(target, database, step, failure);
    let first_db = match &target.databases {
        Databases::All => "all".to_string(),
        Databases::Named(names) => names.join(","),
        Databases::Default => target
            .vars
            .get("database")
            .and_then(Chosen::known_value)
            .unwrap_or("default")
            .to_string(),
    };
    match docker
        .inspect_container(&target.container.id, None::<InspectContainerOptions>)
        .await
    {
        Ok(c) => {
            let state = c
                .state
                .and_then(|s| s.status)
                .map(|s| s.to_string())
                .unwrap_or_default();
            if state != "running" {
                return vec![Err(fail(
                    &first_db,
                    Step::Inspect,
                    Failure::NotRunning(state),
                ))];
            }
        }
        Err(e) => return vec![Err(fail(&first_db, Step::Inspect, Failure::Exec(e.into())))],
    }
    let values =
        match resolve_values(docker, &target.container.id, &target.engine, &target.vars).await {
            Ok(v) => v,
            Err(f) => return vec![Err(fail(&first_db, Step::Credentials, f))],
        };
    let site = match Site::prepare(
        docker,
        &target.container,
        &target.engine,
        opts.helper_image.as_deref(),
    )
    .await
    {
        Ok(site) => site,
        Err(reason) => return vec![Err(fail(&first_db, Step::Helper, Failure::Var(reason)))],
    };
    let results = run_databases(docker, target, opts, &site, values).await;
    site.remove(docker).await;
    results
}

/// One dump per selected database, in `site`.
async fn run_databases(
    docker: &Docker,
    target: &Target,
    opts: &Options,
    site: &Site,
    values: BTreeMap<String, String>,
) -> Vec<Result<Outcome, BackupError>> {
    let fail = |database: &str, step, failure| target_error(target, database, step, failure);
    let version = dump_tool_version(docker, target, site, &values).await;
    let runs: Vec<(Option<String>, bool)> = match &target.databases {
        Databases::All => vec![(None, true)],
        Databases::Default => vec![(None, false)],
        Databases::Named(names) => names.iter().map(|n| (Some(n.clone()), false)).collect(),
    };
    let mut results = Vec::new();
    for (name, all) in runs {
        let mut values = values.clone();
        if let Some(n) = &name {
            values.insert("database".into(), n.clone());
        }
        let database = if all || !target.engine.dumps_one_database() {
            "all".to_string()
        } else {
            values
                .get("database")
                .cloned()
                .unwrap_or_else(|| "default".into())
        };
        let result = dump_one(
            docker,
            target,
            opts,
            site,
            &values,
            all,
            &database,
            version.clone(),
        )
        .await
        .map_err(|(step, failure)| fail(&database, step, failure));
        results.push(result);
    }
    results
}

/// Reads every variable's value; files are read inside the container with `cat`. Values that
/// are not secrets are checked as [`labels::check_argument`] does.
pub(crate) async fn resolve_values(
    docker: &Docker,
    container_id: &str,
    engine: &Engine,
    vars: &BTreeMap<String, Chosen>,
) -> Result<BTreeMap<String, String>, Failure> {
    let mut values = BTreeMap::new();
    for (name, chosen) in vars {
        let value = match chosen {
            Chosen::File { path, .. } | Chosen::LabelFile { path, .. } => {
                let req = ExecRequest {
                    argv: vec!["cat".into(), "--".into(), path.clone()],
                    ..Default::default()
                };
                let (out, status) = exec::capture(docker, container_id, &req, VAR_FILE_LIMIT)
                    .await
                    .map_err(|e| {
                        Failure::Var(format!("cannot read {} ({}): {e}", name, chosen.describe()))
                    })?;
                if !status.success() {
                    return Err(Failure::Var(format!(
                        "cannot read {} from {}: {}. Check that the file exists in the container",
                        name,
                        chosen.describe(),
                        last_lines(&status.stderr, 2)
                    )));
                }
                // Like the official images' `$(< file)`: trailing newlines are not part of it.
                let text = String::from_utf8(out).map_err(|_| {
                    Failure::Var(format!("{} ({}) is not UTF-8", name, chosen.describe()))
                })?;
                let value = text.trim_end_matches(['\n', '\r']).to_string();
                let secret = engine.spec.vars.get(name).is_some_and(|v| v.secret);
                if !secret {
                    labels::check_argument(name, &value).map_err(|e| {
                        Failure::Var(format!("{} ({}): {}", name, chosen.describe(), e.reason))
                    })?;
                }
                value
            }
            Chosen::Program(candidates) => {
                let mut found = None;
                for program in candidates {
                    let req = ExecRequest {
                        argv: vec![program.clone(), "--version".into()],
                        ..Default::default()
                    };
                    if let Ok((_, status)) = exec::capture(docker, container_id, &req, 4096).await
                        && status.success()
                    {
                        found = Some(program.clone());
                        break;
                    }
                }
                found.ok_or_else(|| {
                    Failure::Var(format!(
                        "none of {} is installed in the container; install one, or define an engine whose commands the container has",
                        candidates.join(", ")
                    ))
                })?
            }
            Chosen::Absent => continue,
            other => other
                .known_value()
                .expect("label, env and literal values are known")
                .to_string(),
        };
        values.insert(name.clone(), value);
    }
    Ok(values)
}

/// The first line of the dump tool's version output; `None` (with a warning) if unavailable.
async fn dump_tool_version(
    docker: &Docker,
    target: &Target,
    site: &Site,
    values: &BTreeMap<String, String>,
) -> Option<String> {
    let argv = target.engine.version_invocation(values)?;
    let req = ExecRequest {
        argv,
        ..Default::default()
    };
    match exec::capture(docker, &site.container_id, &req, 4096).await {
        Ok((out, status)) if status.success() => String::from_utf8_lossy(&out)
            .lines()
            .next()
            .map(|l| l.trim().to_string()),
        Ok((_, status)) => {
            tracing::warn!(target = %target.name, "could not read the dump tool's version: {}", last_lines(&status.stderr, 2));
            None
        }
        Err(e) => {
            tracing::warn!(target = %target.name, "could not read the dump tool's version: {e}");
            None
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn dump_one(
    docker: &Docker,
    target: &Target,
    opts: &Options,
    site: &Site,
    values: &BTreeMap<String, String>,
    all: bool,
    database: &str,
    tool_version: Option<String>,
) -> Result<Outcome, (Step, Failure)> {
    let inv: Invocation = target
        .engine
        .dump_invocation(all, values)
        .map_err(|e| (Step::Credentials, Failure::Var(e)))?;
    let user = site
        .user(docker, &target.engine, values)
        .await
        .map_err(|e| (Step::Helper, Failure::Var(e)))?;
    let dump = inv.dump.clone().expect("dump invocations carry their spec");
    let tool = inv.argv[0].clone();
    let started_at = Utc::now();
    let clock = Instant::now();
    let file_name = artifact::artifact_file_name(
        &target.name,
        database,
        &target.engine.spec.extension,
        target.encrypt && opts.encryption.is_some(),
        started_at,
    );
    let dir = artifact::target_dir(&opts.backup_dir, &target.name);
    let io = |e| (Step::Write, Failure::Io(e));
    let (temp, file) = TempFile::create(&dir, &file_name).map_err(io)?;
    tracing::info!(target = %target.name, container = %target.container.name, engine = %target.engine.name(), database, "backup started");

    let encryption = opts.encryption.clone().filter(|_| target.encrypt);
    let encryption_info = encryption.as_ref().map(|e| e.info());
    let mut writer = PipelineWriter::start(file, opts.compression, encryption);
    let req = ExecRequest {
        argv: inv.argv,
        env: inv.env,
        stdin: inv.stdin.is_some(),
        user,
    };
    let mut stream = ExecStream::start(docker, &site.container_id, &req)
        .await
        .map_err(|e| (Step::Dump, Failure::Exec(e)))?;
    if let (Some(line), Some(mut stdin)) = (&inv.stdin, stream.take_stdin()) {
        // A short line: it fits the pipe, so this cannot wait on the tool reading it.
        let sent = async {
            stdin.write_all(line.expose().as_bytes()).await?;
            stdin.shutdown().await
        };
        sent.await
            .map_err(|e| (Step::Dump, Failure::Exec(ExecError::Stdin(e))))?;
    }
    let mut tail = exec::TailWindow::new(dump.marker_window);
    let mut raw: u64 = 0;
    let mut last_report = Instant::now();
    while let Some(chunk) = stream.next_stdout().await {
        let chunk = chunk.map_err(|e| (Step::Dump, Failure::Exec(e)))?;
        tail.push(&chunk);
        raw += chunk.len() as u64;
        writer.write(chunk).await.map_err(io)?;
        if last_report.elapsed() >= PROGRESS_EVERY {
            last_report = Instant::now();
            let secs = clock.elapsed().as_secs_f64();
            tracing::info!(
                target = %target.name, database, raw_bytes = raw,
                mib_per_s = format!("{:.1}", raw as f64 / 1048576.0 / secs),
                "backup in progress"
            );
        }
    }
    let status = stream
        .finish()
        .await
        .map_err(|e| (Step::Dump, Failure::Exec(e)))?;
    if !status.success() {
        let container_running = docker
            .inspect_container(&target.container.id, None::<InspectContainerOptions>)
            .await
            .ok()
            .and_then(|c| c.state?.running)
            .unwrap_or(false);
        return Err((
            Step::Dump,
            Failure::Exit {
                tool,
                status,
                container_running,
            },
        ));
    }
    if let Some(line) = status
        .stderr
        .lines()
        .find(|l| dump.error_patterns.iter().any(|p| l.contains(p.as_str())))
    {
        return Err((Step::Check, Failure::StderrError(line.to_string())));
    }
    if let Some(marker) = &dump.complete_marker
        && !tail.contains(marker.as_bytes())
    {
        return Err((Step::Check, Failure::Incomplete(marker.clone())));
    }
    let written = writer.finish().await.map_err(io)?;
    let artifact = temp.commit(&file_name).map_err(io)?;
    let manifest = Manifest {
        format: artifact::MANIFEST_FORMAT,
        stowage_version: env!("CARGO_PKG_VERSION").to_string(),
        target: target.name.clone(),
        container: ContainerRef {
            id: target.container.id.clone(),
            name: target.container.name.clone(),
            image: target.container.image.clone(),
        },
        engine: target.engine.name().to_string(),
        database: database.to_string(),
        dump_tool_version: tool_version,
        started_at,
        finished_at: Utc::now(),
        raw: Content {
            bytes: written.raw_bytes,
            sha256: written.raw_sha256,
        },
        stored: Stored {
            file: artifact
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            bytes: written.stored_bytes,
            sha256: written.stored_sha256,
            compression: "zstd".into(),
            compression_level: opts.compression.level,
            encrypted: encryption_info.is_some(),
            encryption: encryption_info,
        },
    };
    artifact::write_manifest(&artifact, &manifest).map_err(io)?;
    Ok(Outcome { artifact, manifest })
}

/// The last `n` non-empty lines of a text, joined with " | ".
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(last_lines("a\n\nb\nc\n", 2), "b | c");
    }

    #[test]
    fn exit_failure_says_what_to_do() {
        let f = Failure::Exit {
            tool: "pg_dump".into(),
            status: ExitStatus {
                code: Some(1),
                stderr: "pg_dump: error: database \"x\" does not exist\n".into(),
            },
            container_running: true,
        };
        let e = BackupError {
            container: "db".into(),
            target: "db".into(),
            engine: "postgres".into(),
            database: "x".into(),
            step: Step::Dump,
            failure: f,
        }
        .to_string();
        assert!(
            e.contains("container db")
                && e.contains("while dumping")
                && e.contains("status 1")
                && e.contains("does not exist"),
            "{e}"
        );
    }
}
