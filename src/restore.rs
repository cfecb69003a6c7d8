//! `stowage restore`: an artifact back into a database container.
//!
//! Steps: verify the artifact's bytes against its manifest (a mismatch refuses the restore
//! before anything is sent); pick the engine from the manifest; resolve the credentials of the
//! *target* container exactly as a backup would (its labels, then its environment); run the
//! engine's restore command as an exec and stream the decompressed dump into its stdin
//! ([`crate::pipeline::read`]: a blocking thread, a bounded channel, so memory stays bounded
//! and a slow database slows the reader down). The exec's output is drained at the same time
//! so the restore tool can never block on a full stdout.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::InspectContainerOptions;
use tokio::io::AsyncWriteExt;

use crate::backup::Failure;
use crate::discover::ContainerInfo;
use crate::discover::labels::{self, Labels};
use crate::docker::exec::{ExecRequest, ExecStream};
use crate::engine::resolve::resolve_values;
use crate::engine::site::Site;
use crate::engine::{Engine, Registry, choose_vars};
use crate::error::{Temporary, io_is_temporary};
use crate::local::artifact::Manifest;
use crate::local::catalog::{self, VerifyError};
use crate::pipeline::encryption::{EncryptionError, Identities};
use crate::pipeline::read::{self, Decryption, ReadSummary};
use crate::pipeline::rows::RowFormat;
use crate::secret::Secret;

const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// A restore that did not happen or did not complete.
#[derive(Debug, thiserror::Error)]
#[error("restore of {artifact} into container {container} failed while {step}: {cause}")]
pub struct RestoreError {
    /// The artifact path.
    pub artifact: String,
    /// The container asked for.
    pub container: String,
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
    /// Container name or ID.
    pub container: &'a str,
    /// Database to restore into; default the manifest's.
    pub database: Option<&'a str>,
    /// For engines that may need a helper container (see [`crate::engine::site`]).
    pub helper_image: Option<&'a str>,
    /// Keys for encrypted artifacts.
    pub identities: Arc<Identities>,
    /// Count the dump's rows per table as it is fed in (a drill), in this format.
    pub rows: Option<RowFormat>,
    /// The caller has just verified the artifact against its manifest (a drill does it while
    /// its container starts): read the manifest without hashing the artifact again.
    pub verified: bool,
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
        container,
        database,
        helper_image,
        rows,
        ..
    } = *req;
    let err = |step, cause: Cause| RestoreError {
        artifact: artifact.display().to_string(),
        container: container.to_string(),
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

    let (info, values) = container_values(docker, engine, container, &database, &manifest.database)
        .await
        .map_err(|(s, c)| err(s, c))?;
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

/// Verifies the artifact against its manifest and, if it is encrypted, opens its header with
/// the keys given, so a wrong key fails before anything reaches the database.
async fn check_artifact(
    req: &Request<'_>,
) -> Result<(Manifest, Option<Decryption>), (&'static str, Cause)> {
    let artifact = req.artifact;
    let path = artifact.to_path_buf();
    let verified = req.verified;
    let manifest = tokio::task::spawn_blocking(move || {
        if verified {
            crate::local::artifact::read_manifest(&crate::local::artifact::manifest_path(&path))
                .map_err(|e| VerifyError::NoManifest(e.to_string()))
        } else {
            catalog::verify_path(&path)
        }
    })
    .await
    .map_err(|e| ("checking the artifact", Cause::Io(io::Error::other(e))))?
    .map_err(|e| ("checking the artifact", Cause::Verify(e)))?;
    let decryption = if manifest.stored.encrypted {
        if req.identities.is_empty() {
            return Err((
                "decrypting",
                Cause::Refused("the artifact is encrypted: give its identity file with --identity FILE (or set encryption.identity_files, or encryption.passphrase for a passphrase)".into()),
            ));
        }
        // Open the header now, so a wrong key fails before anything reaches the database.
        let ids = req.identities.clone();
        let info = manifest.stored.encryption.clone();
        let path = artifact.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let file = File::open(&path).map_err(Cause::Io)?;
            ids.open(io::BufReader::new(file), info.as_ref())
                .map(|_| ())
                .map_err(Cause::Decrypt)
        })
        .await
        .map_err(|e| ("decrypting", Cause::Io(io::Error::other(e))))?
        .map_err(|c| ("decrypting", c))?;
        Some((req.identities.clone(), manifest.stored.encryption.clone()))
    } else {
        None
    };
    Ok((manifest, decryption))
}

/// Streams the artifact (after the `first` line, if any) into the running restore command;
/// returns the raw bytes sent and the time taken.
async fn feed(
    mut stream: ExecStream,
    first: Option<Secret>,
    artifact: &Path,
    (decryption, rows): (Option<Decryption>, Option<RowFormat>),
    manifest: &Manifest,
    tool: &str,
) -> Result<(ReadSummary, Duration), (&'static str, Cause)> {
    let started = Instant::now();
    let mut stdin = stream.take_stdin().expect("requested a stdin");
    let (mut rx, reader) = read::spawn(artifact, decryption, rows);
    let feed = async {
        if let Some(line) = &first {
            stdin.write_all(line.expose().as_bytes()).await?;
        }
        let mut sent: u64 = 0;
        let mut last = Instant::now();
        while let Some(block) = rx.recv().await {
            stdin.write_all(&block).await?;
            sent += block.len() as u64;
            if last.elapsed() >= PROGRESS_EVERY {
                last = Instant::now();
                tracing::info!(
                    raw_bytes = sent,
                    total = manifest.raw.bytes,
                    "restore in progress"
                );
            }
        }
        stdin.shutdown().await?;
        Ok::<u64, io::Error>(sent)
    };
    let (fed, status) = tokio::join!(feed, stream.finish());
    let status = status.map_err(|e| ("restoring", Cause::Failure(Failure::Exec(e))))?;
    if !status.success() {
        let failure = Failure::Exit {
            tool: tool.to_string(),
            status,
            container_running: true,
        };
        return Err((
            "restoring",
            Cause::Refused(format!(
                "{failure}. Nothing was committed if the restore command is transactional (PostgreSQL's is)"
            )),
        ));
    }
    let sent = fed.map_err(|e| {
        let e = io::Error::new(e.kind(), format!("writing to the restore command: {e}"));
        ("restoring", Cause::Io(e))
    })?;
    let read = reader
        .await
        .map_err(|e| ("restoring", Cause::Io(io::Error::other(e))))?
        .map_err(|e| ("reading the artifact", Cause::Io(e)))?;
    let (raw_bytes, raw_sha256) = (read.bytes, &read.sha256);
    if raw_bytes != sent || *raw_sha256 != manifest.raw.sha256 {
        return Err((
            "checking what was restored",
            Cause::Refused(format!(
                "the decompressed dump ({raw_bytes} bytes, sha256 {raw_sha256}) does not match the manifest ({} bytes, sha256 {}); check the database",
                manifest.raw.bytes, manifest.raw.sha256
            )),
        ));
    }
    Ok((read, started.elapsed()))
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
