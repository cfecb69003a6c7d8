//! `stowage restore`: an artifact back into a database container.
//!
//! Steps: verify the artifact's bytes against its manifest (a mismatch refuses the restore
//! before anything is sent); pick the engine from the manifest; resolve the credentials of the
//! *target* container exactly as a backup would (its labels, then its environment); run the
//! engine's restore command as an exec and stream the decompressed dump into its stdin. A
//! blocking thread reads and decompresses 128 KiB at a time into a bounded channel, so memory
//! stays bounded and a slow database slows the reader down. The exec's output is drained at
//! the same time so the restore tool can never block on a full stdout.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::InspectContainerOptions;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::artifact::Manifest;
use crate::backup::{self, Failure};
use crate::catalog;
use crate::discovery::ContainerInfo;
use crate::encryption::{EncryptionInfo, Identities};
use crate::engine::{Registry, choose_vars};
use crate::exec::{ExecRequest, ExecStream};
use crate::helper::Site;
use crate::labels::{self, Labels};
use crate::secret::Secret;

const BLOCK: usize = 128 * 1024;
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// A restore that did not happen or did not complete.
#[derive(Debug, thiserror::Error)]
#[error("restore of {artifact} into container {container} failed while {step}: {reason}")]
pub struct RestoreError {
    /// The artifact path.
    pub artifact: String,
    /// The container asked for.
    pub container: String,
    /// Where it failed.
    pub step: &'static str,
    /// Why, and what to do.
    pub reason: String,
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
}

/// What to restore where.
pub struct Request<'a> {
    /// The artifact file; its manifest sits beside it.
    pub artifact: &'a Path,
    /// Container name or ID.
    pub container: &'a str,
    /// Database to restore into; default the manifest's.
    pub database: Option<&'a str>,
    /// For engines that may need a helper container (see [`crate::helper`]).
    pub helper_image: Option<&'a str>,
    /// Keys for encrypted artifacts.
    pub identities: Arc<Identities>,
}

/// Restores an artifact as `req` says.
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
        ..
    } = *req;
    let err = |step, reason: String| RestoreError {
        artifact: artifact.display().to_string(),
        container: container.to_string(),
        step,
        reason,
    };
    let path = artifact.to_path_buf();
    let manifest = tokio::task::spawn_blocking(move || catalog::verify_path(&path))
        .await
        .map_err(|e| err("checking the artifact", e.to_string()))?
        .map_err(|e| {
            err(
                "checking the artifact",
                format!("{e}. Refusing to restore it"),
            )
        })?;
    let decryption = if manifest.stored.encrypted {
        if req.identities.is_empty() {
            return Err(err(
                "decrypting",
                "the artifact is encrypted: give its identity file with --identity FILE (or set encryption.identity_files, or encryption.passphrase for a passphrase)".into(),
            ));
        }
        // Open the header now, so a wrong key fails before anything reaches the database.
        let ids = req.identities.clone();
        let info = manifest.stored.encryption.clone();
        let path = artifact.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let file = File::open(&path).map_err(|e| e.to_string())?;
            ids.open(io::BufReader::new(file), info.as_ref())
                .map(|_| ())
        })
        .await
        .map_err(|e| err("decrypting", e.to_string()))?
        .map_err(|e| err("decrypting", e))?;
        Some((req.identities.clone(), manifest.stored.encryption.clone()))
    } else {
        None
    };
    let engine = registry.get(&manifest.engine).ok_or_else(|| {
        err(
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
        return Err(err(
            "choosing the database",
            "this artifact holds every database (stowage.database=all); restore it with the engine's own client as README's restore guide shows, or pass --database to pick a target database".into(),
        ));
    }
    labels::check_argument("--database", &database)
        .map_err(|e| err("choosing the database", e.to_string()))?;

    let inspected = docker
        .inspect_container(container, None::<InspectContainerOptions>)
        .await
        .map_err(|e| {
            err(
                "finding the container",
                format!("{e}. Check the name with `docker ps`"),
            )
        })?;
    let info = ContainerInfo::from_inspect(inspected, container.to_string());
    if !info.is_running() {
        return Err(err(
            "finding the container",
            Failure::NotRunning(info.state.clone()).to_string(),
        ));
    }
    let mut own_labels = Labels::parse(&info.labels).unwrap_or_default();
    // The database is the one asked for, whatever the container's labels say.
    own_labels.database = (!whole).then(|| database.clone());
    let vars = choose_vars(engine, &own_labels, &info)
        .map_err(|e| err("reading credentials", e.to_string()))?;
    let mut values = backup::resolve_values(docker, &info.id, engine, &vars)
        .await
        .map_err(|f| err("reading credentials", f.to_string()))?;
    if whole {
        values.remove("database");
    } else {
        values.insert("database".into(), database.clone());
        if manifest.database != "all" {
            values.insert("source_database".into(), manifest.database.clone());
        }
    }
    let inv = engine
        .restore_invocation(&values)
        .ok_or_else(|| {
            err(
                "preparing the restore",
                format!("engine {} has no restore command", engine.name()),
            )
        })?
        .map_err(|e| err("preparing the restore", e))?;
    let tool = inv.argv[0].clone();
    let site = Site::prepare(docker, &info, engine, helper_image)
        .await
        .map_err(|e| err("preparing the helper container", e))?;
    let result = async {
        let user = site
            .user(docker, engine, &values)
            .await
            .map_err(|e| err("preparing the helper container", e))?;
        tracing::info!(artifact = %artifact.display(), container = %info.name, engine = engine.name(), database, "restore started");
        let req = ExecRequest {
            argv: inv.argv,
            env: inv.env,
            stdin: true,
            user,
        };
        let stream = ExecStream::start(docker, &site.container_id, &req)
            .await
            .map_err(|e| err("starting the restore", Failure::Exec(e).to_string()))?;
        feed(stream, inv.stdin, artifact, decryption, &manifest, &tool)
            .await
            .map_err(|(step, reason)| err(step, reason))
    }
    .await;
    site.remove(docker).await;
    let (raw_bytes, elapsed) = result?;
    tracing::info!(container = %info.name, database, raw_bytes, seconds = elapsed.as_secs_f64(), "restore complete");
    Ok(Restored {
        database,
        raw_bytes,
        elapsed,
    })
}

/// Streams the artifact (after the `first` line, if any) into the running restore command;
/// returns the raw bytes sent and the time taken.
async fn feed(
    mut stream: ExecStream,
    first: Option<Secret>,
    artifact: &Path,
    decryption: Option<Decryption>,
    manifest: &Manifest,
    tool: &str,
) -> Result<(u64, Duration), (&'static str, String)> {
    let err = |step, reason: String| (step, reason);
    let started = Instant::now();
    let mut stdin = stream.take_stdin().expect("requested a stdin");
    let (tx, mut rx) = mpsc::channel::<Bytes>(16);
    let path: PathBuf = artifact.to_path_buf();
    let reader = tokio::task::spawn_blocking(move || decompress(&path, decryption, tx));
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
    let status = status.map_err(|e| err("restoring", Failure::Exec(e).to_string()))?;
    if !status.success() {
        let failure = Failure::Exit {
            tool: tool.to_string(),
            status,
            container_running: true,
        };
        return Err(err(
            "restoring",
            format!(
                "{failure}. Nothing was committed if the restore command is transactional (PostgreSQL's is)"
            ),
        ));
    }
    let sent = fed.map_err(|e| err("restoring", format!("writing to the restore command: {e}")))?;
    let (raw_bytes, raw_sha256) = reader
        .await
        .map_err(|e| err("restoring", e.to_string()))?
        .map_err(|e| err("reading the artifact", e.to_string()))?;
    if raw_bytes != sent || raw_sha256 != manifest.raw.sha256 {
        return Err(err(
            "checking what was restored",
            format!(
                "the decompressed dump ({raw_bytes} bytes, sha256 {raw_sha256}) does not match the manifest ({} bytes, sha256 {}); check the database",
                manifest.raw.bytes, manifest.raw.sha256
            ),
        ));
    }
    Ok((raw_bytes, started.elapsed()))
}

/// The keys for an encrypted artifact and what its manifest says about them.
type Decryption = (Arc<Identities>, Option<EncryptionInfo>);

/// Reads (decrypts) and decompresses the artifact into blocks; returns the raw size and
/// sha256.
fn decompress(
    path: &Path,
    decryption: Option<Decryption>,
    tx: mpsc::Sender<Bytes>,
) -> io::Result<(u64, String)> {
    let file = io::BufReader::new(File::open(path)?);
    let input: Box<dyn Read> = match decryption {
        Some((ids, info)) => Box::new(ids.open(file, info.as_ref()).map_err(io::Error::other)?),
        None => Box::new(file),
    };
    let mut decoder = zstd::stream::read::Decoder::new(input)?;
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    loop {
        let mut block = vec![0u8; BLOCK];
        let mut filled = 0;
        while filled < BLOCK {
            let n = decoder.read(&mut block[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            return Ok((total, hex::encode(hasher.finalize())));
        }
        block.truncate(filled);
        hasher.update(&block);
        total += filled as u64;
        if tx.blocking_send(Bytes::from(block)).is_err() {
            return Err(io::Error::other("the restore stopped reading"));
        }
    }
}
