//! `stowage restore`: an artifact back into a database container, or a files artifact into
//! a Docker volume ([`volume`]).
//!
//! Steps: verify the artifact's bytes against its manifest (a mismatch refuses the restore
//! before anything is sent); pick the engine from the manifest; resolve the credentials of the
//! *target* container exactly as a backup would (its labels, then its environment); run the
//! engine's restore command as an exec and stream the decompressed dump into its stdin
//! ([`crate::pipeline::read`]: a blocking thread, a bounded channel, so memory stays bounded
//! and a slow database slows the reader down). The exec's output is drained at the same time
//! so the restore tool can never block on a full stdout.

mod feed;
mod from_file;
mod replace;
mod volume;

pub(crate) use feed::{check_artifact, feed};

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::InspectContainerOptions;

use crate::backup::Failure;
use crate::discover::ContainerInfo;
use crate::discover::labels::{self, Labels};
use crate::docker::exec::{ExecRequest, ExecStream};
use crate::engine::resolve::resolve_values;
use crate::engine::site::Site;
use crate::engine::spec::{FILE_VAR, JOBS_VAR};
use crate::engine::{Engine, Registry, choose_vars};
use crate::error::{Temporary, io_is_temporary};
use crate::local::catalog::VerifyError;
use crate::pipeline::encryption::{EncryptionError, Identities};
use crate::pipeline::rows::RowFormat;

const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// A restore that did not happen or did not complete.
#[derive(Debug, thiserror::Error)]
#[error("restore of {artifact} into {into} failed while {step}: {cause}")]
pub struct RestoreError {
    /// The artifact path.
    pub artifact: String,
    /// Where to: `container NAME` or `volume NAME`.
    pub into: String,
    /// Where it failed.
    pub step: &'static str,
    /// Why.
    #[source]
    pub cause: Cause,
}

/// Why a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    /// The artifact does not match its manifest.
    #[error("{0}. Refusing to restore it")]
    Verify(#[source] VerifyError),
    /// The artifact cannot be decrypted.
    #[error("{0}")]
    Decrypt(#[source] EncryptionError),
    /// Something the container, the engine or a command did (as for a backup).
    #[error("{0}")]
    Failure(#[source] Failure),
    /// The container cannot be found.
    #[error("{0}. Check the name with `docker ps`")]
    Docker(#[source] bollard::errors::Error),
    /// Reading the artifact failed.
    #[error("{0}")]
    Io(#[source] io::Error),
    /// The request cannot be carried out as asked (engine, database, a mismatch).
    #[error("{0}")]
    Refused(String),
}

impl Temporary for RestoreError {
    fn is_temporary(&self) -> bool {
        match &self.cause {
            Cause::Failure(f) => f.is_temporary(),
            Cause::Docker(e) => crate::docker::exec::api_is_temporary(e),
            Cause::Io(e) => io_is_temporary(e),
            Cause::Verify(_) | Cause::Decrypt(_) | Cause::Refused(_) => false,
        }
    }
}

/// A completed restore.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The database written to.
    pub database: String,
    /// Bytes of SQL (or archive) sent.
    pub raw_bytes: u64,
    /// How long it took.
    pub elapsed: Duration,
    /// Rows per table the dump held, when [`Request::rows`] asked for them.
    pub rows: Option<BTreeMap<String, u64>>,
}

/// What to restore where.
pub struct Request<'a> {
    /// The artifact file; its manifest sits beside it.
    pub artifact: &'a Path,
    /// Where to.
    pub into: Destination<'a>,
    /// Database to restore into; default the manifest's.
    pub database: Option<&'a str>,
    /// For engines that may need a helper container (see [`crate::engine::site`]).
    pub helper_image: Option<&'a str>,
    /// Keys for encrypted artifacts.
    pub identities: Arc<Identities>,
    /// Count the dump's rows per table as it is fed in (a drill), in this format.
    pub rows: Option<RowFormat>,
    /// `--jobs N`: restore with N parallel jobs, where the engine can (`{jobs}` in its argv).
    pub jobs: Option<u32>,
    /// The caller has just verified the artifact against its manifest (a drill does it while
    /// its container starts): read the manifest without hashing the artifact again.
    pub verified: bool,
    /// Where a container the restore stops is recorded (`restore.replace`), so that the next
    /// stowage starts it again if this one is killed: the backup directory, whose lock the
    /// caller holds. `None` for a drill's throwaway container.
    pub record_dir: Option<&'a Path>,
}

/// Where a restore goes.
#[derive(Debug, Clone, Copy)]
pub enum Destination<'a> {
    /// A running container (name or ID), through its engine's restore command.
    Container(&'a str),
    /// A Docker volume, new or empty unless `force` (files artifacts only).
    Volume {
        /// The volume's name (created if missing).
        name: &'a str,
        /// Extract into a volume that already holds files.
        force: bool,
    },
}

impl std::fmt::Display for Destination<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Container(c) => write!(f, "container {c}"),
            Self::Volume { name, .. } => write!(f, "volume {name}"),
        }
    }
}

/// Restores an artifact as `req` says.
// Long: the restore's steps in order, each naming its step in the error; the parts that stand
// alone are functions (check_artifact, feed).
pub async fn restore(
    docker: &Docker,
    registry: &Registry,
    req: &Request<'_>,
) -> Result<Restored, RestoreError> {
    let Request {
        artifact,
        into,
        database,
        helper_image,
        rows,
        ..
    } = *req;
    let container = match into {
        Destination::Container(c) => c,
        Destination::Volume { name, force } => {
            return volume::restore(docker, registry, req, name, force).await;
        }
    };
    let err = |step, cause: Cause| RestoreError {
        artifact: artifact.display().to_string(),
        into: into.to_string(),
        step,
        cause,
    };
    let refused = |step, reason: String| err(step, Cause::Refused(reason));
    let (manifest, decryption) = check_artifact(req).await.map_err(|(s, c)| err(s, c))?;
    let engine = registry.get(&manifest.engine).ok_or_else(|| {
        refused(
            "choosing the engine",
            format!(
                "the artifact was made by engine {:?}, which this stowage does not know",
                manifest.engine
            ),
        )
    })?;
    if engine.name() == crate::plan::FILES_ENGINE {
        return Err(refused(
            "choosing the engine",
            format!(
                "the artifact is an archive of files ({}); restore it into a volume with --volume NAME, or unpack it with tar (README, \"Volumes and files\")",
                manifest.database
            ),
        ));
    }
    let database = database.unwrap_or(&manifest.database).to_string();
    // An artifact of every database is restored whole, where the engine's restore command
    // can do without a database name.
    let whole = database == "all";
    let database_optional = engine.spec.vars.get("database").is_some_and(|v| v.optional);
    if whole && engine.dumps_one_database() && !database_optional {
        return Err(refused(
            "choosing the database",
            "this artifact holds every database (stowage.database=all); restore it with the engine's own client as README's restore guide shows, or pass --database to pick a target database".into(),
        ));
    }
    labels::check_argument("--database", &database)
        .map_err(|e| refused("choosing the database", e.to_string()))?;

    let (info, mut values) =
        container_values(docker, engine, container, &database, &manifest.database)
            .await
            .map_err(|(s, c)| err(s, c))?;
    let from_file = engine.spec.restore.as_ref().is_some_and(|r| r.from_file);
    if from_file {
        values.insert(
            FILE_VAR.into(),
            crate::engine::site::temp_path(&engine.spec.extension),
        );
    }
    if let Some(jobs) = req.jobs {
        let parallel = engine
            .spec
            .restore
            .as_ref()
            .is_some_and(|r| r.argv.iter().any(|a| a.contains("{jobs}")));
        if !parallel {
            return Err(refused(
                "preparing the restore",
                format!(
                    "engine {} does not restore in parallel: leave out --jobs (PostgreSQL's custom format does, stowage.format=custom)",
                    engine.name()
                ),
            ));
        }
        values.insert(JOBS_VAR.into(), jobs.to_string());
    }
    if engine.restore_path.is_some() {
        tracing::info!(artifact = %artifact.display(), container = %info.name, engine = engine.name(), "restore started");
        let (read, elapsed) = replace::restore(
            docker,
            engine,
            req,
            (&info, &values),
            (&manifest, decryption),
        )
        .await
        .map_err(|(s, c)| err(s, c))?;
        tracing::info!(container = %info.name, raw_bytes = read.bytes, seconds = elapsed.as_secs_f64(), "restore complete");
        return Ok(Restored {
            database,
            raw_bytes: read.bytes,
            elapsed,
            rows: None,
        });
    }
    let inv = engine
        .restore_invocation(&values)
        .ok_or_else(|| {
            refused(
                "preparing the restore",
                format!("engine {} has no restore command", engine.name()),
            )
        })?
        .map_err(|e| err("preparing the restore", Cause::Failure(Failure::Render(e))))?;
    let tool = inv.argv[0].clone();
    let site = Site::prepare(docker, &info, engine, helper_image)
        .await
        .map_err(|e| {
            err(
                "preparing the helper container",
                Cause::Failure(Failure::Site(e)),
            )
        })?;
    let result = async {
        let user = site
            .user(docker, engine, &values)
            .await
            .map_err(|e| err("preparing the helper container", Cause::Failure(Failure::Site(e))))?;
        tracing::info!(artifact = %artifact.display(), container = %info.name, engine = engine.name(), database, "restore started");
        let req = ExecRequest {
            argv: inv.argv,
            env: inv.env,
            stdin: true,
            user,
        };
        if let Some(path) = values.get(FILE_VAR).filter(|_| from_file) {
            return from_file::restore(docker, &site, req, path, (artifact, decryption), &manifest)
                .await
                .map_err(|(step, cause)| err(step, cause));
        }
        let stream = ExecStream::start(docker, &site.container_id, &req)
            .await
            .map_err(|e| err("starting the restore", Cause::Failure(Failure::Exec(e))))?;
        feed(stream, inv.stdin, artifact, (decryption, rows), &manifest, &tool)
            .await
            .map_err(|(step, cause)| err(step, cause))
    }
    .await;
    site.remove(docker).await;
    let (read, elapsed) = result?;
    tracing::info!(container = %info.name, database, raw_bytes = read.bytes, seconds = elapsed.as_secs_f64(), "restore complete");
    Ok(Restored {
        database,
        raw_bytes: read.bytes,
        elapsed,
        rows: read.rows,
    })
}

/// Inspects the container a restore goes to and resolves its engine variables exactly as a
/// backup would (its labels, then its environment), with `database` (or every database, for
/// `all`) as the one restored into. A drill uses it for its own commands too.
pub async fn container_values(
    docker: &Docker,
    engine: &Engine,
    container: &str,
    database: &str,
    source_database: &str,
) -> Result<(ContainerInfo, BTreeMap<String, String>), (&'static str, Cause)> {
    let whole = database == "all";
    let inspected = docker
        .inspect_container(container, None::<InspectContainerOptions>)
        .await
        .map_err(|e| ("finding the container", Cause::Docker(e)))?;
    let info = ContainerInfo::from_inspect(inspected, container.to_string());
    if !info.is_running() {
        return Err((
            "finding the container",
            Cause::Failure(Failure::NotRunning(info.state.clone())),
        ));
    }
    let mut own_labels = Labels::parse(&info.labels).unwrap_or_default();
    // The database is the one asked for, whatever the container's labels say.
    own_labels.database = (!whole).then(|| database.to_string());
    let vars = choose_vars(engine, &own_labels, &info)
        .map_err(|e| ("reading credentials", Cause::Refused(e.to_string())))?;
    let mut values = resolve_values(docker, &info.id, engine, &vars)
        .await
        .map_err(|e| ("reading credentials", Cause::Failure(Failure::Resolve(e))))?;
    if whole {
        values.remove("database");
    } else {
        values.insert("database".into(), database.to_string());
        if source_database != "all" {
            values.insert("source_database".into(), source_database.to_string());
        }
    }
    Ok((info, values))
}
