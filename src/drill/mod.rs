//! Restore drills: proof, on a schedule, that each target's newest backup restores.
//!
//! For each database of a target, a drill takes the newest complete artifact ([`source`]: the
//! local copy, or a storage's in remote-only mode), starts a throwaway container
//! ([`container`]: the target's image ID, no network, a memory limit, fresh credentials),
//! verifies the artifact's sha256 against its manifest while the engine starts, waits until the
//! engine is ready, restores the artifact with the same code as `stowage restore` (counting
//! the dump's rows per table as it streams in, [`crate::pipeline::rows`]), compares them with
//! the restored database's counts and runs the engine's checks ([`check`]; all of it is the
//! spec's `[drill]`, [`crate::engine::drill`]). The container and its volumes are removed in
//! every case: success, failure, timeout, shutdown; one a kill -9 left behind is removed at
//! the next start ([`container::remove_leftovers`]). Each drill leaves a [`record`] beside the
//! artifact's manifest.

mod check;
pub mod config;
pub mod container;
pub mod record;
pub mod source;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use chrono::Utc;
use tokio::sync::{Semaphore, watch};

use crate::engine::Registry;
use crate::engine::drill::{Drill, DrillImage};
use crate::engine::spec::Engine;
use crate::pipeline::encryption::Identities;
use crate::plan::Target;
use crate::remote::config::Storages;
use crate::restore;
use check::Failed;
use container::{Blueprint, Throwaway};
use record::{Outcome, Record};
use source::{Location, Picked};

/// How long reading the drill container's values may keep failing right after its start.
const SETUP_GRACE: Duration = Duration::from_secs(30);

/// Completes a drill early when it turns true (shutdown).
pub type Stop = watch::Receiver<bool>;

/// What every drill needs.
#[derive(Clone)]
pub struct Context {
    /// The engine.
    pub docker: Docker,
    /// The engines.
    pub registry: Arc<Registry>,
    /// Where artifacts and drill records are.
    pub backup_dir: PathBuf,
    /// The helper image (engines with `[drill] image = "helper"`); `None`: stowage's own.
    pub helper_image: Option<String>,
    /// Keys for encrypted artifacts.
    pub identities: Arc<Identities>,
    /// The configured storages.
    pub storages: Arc<Storages>,
    /// `drill.timeout`.
    pub timeout: Duration,
    /// `drill.memory`, bytes.
    pub memory: i64,
    permits: Arc<Semaphore>,
}

impl Context {
    /// A context that runs at most `max_concurrent` drills at once.
    #[allow(clippy::too_many_arguments)] // each is one configured part
    pub fn new(
        docker: Docker,
        registry: Arc<Registry>,
        backup_dir: PathBuf,
        helper_image: Option<String>,
        identities: Arc<Identities>,
        storages: Arc<Storages>,
        (timeout, memory): (Duration, i64),
        max_concurrent: usize,
    ) -> Self {
        Self {
            docker,
            registry,
            backup_dir,
            helper_image,
            identities,
            storages,
            timeout,
            memory,
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
        }
    }
}

/// Completes when `stop` turns true (never, if its sender is gone without it).
async fn stopped(mut stop: Stop) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// One drill's record, and whether the drill of the same database before it had failed (a
/// pass after a failure is a recovery).
#[derive(Debug, Clone)]
pub struct Drilled {
    /// The record (already written).
    pub record: Record,
    /// The previous drill of this database failed.
    pub was_failing: bool,
}

/// Drills the newest artifact of each of `target`'s databases, one after the other. The
/// caller holds a `daemon.max_concurrent` slot.
pub async fn drill_target(ctx: &Context, target: &Target, stop: Stop) -> Vec<Drilled> {
    let _permit = ctx.permits.acquire().await.expect("never closed");
    let picked = source::newest(
        &ctx.backup_dir,
        &ctx.storages,
        &target.name,
        &target.storages,
    )
    .await;
    if picked.is_empty() {
        tracing::warn!(target = %target.name, "nothing to drill: the target has no complete artifact yet");
    }
    let mut records = Vec::new();
    for p in picked {
        let previous = record::all(&ctx.backup_dir, &target.name)
            .into_iter()
            .find(|r| r.database == p.manifest.database && r.outcome != Outcome::Skipped);
        let was_failing = previous.is_some_and(|r| r.outcome == Outcome::Failed);
        let record = drill_one(ctx, target, &p, stop.clone()).await;
        let dir = ctx.backup_dir.clone();
        let r = record.clone();
        match tokio::task::spawn_blocking(move || record::write(&dir, &r)).await {
            Ok(Ok(path)) => tracing::debug!(record = %path.display(), "drill record written"),
            Ok(Err(e)) => {
                tracing::error!(target = %target.name, "could not write the drill record: {e}")
            }
            Err(e) => {
                tracing::error!(target = %target.name, "could not write the drill record: {e}")
            }
        }
        log(&record);
        records.push(Drilled {
            record,
            was_failing,
        });
    }
    records
}

fn log(r: &Record) {
    match r.outcome {
        Outcome::Passed => tracing::info!(
            target = %r.target, database = %r.database, artifact = %r.artifact, source = %r.source,
            tables = r.tables.len(), rows = r.tables.values().map(|t| t.dump).sum::<u64>(),
            seconds = format!("{:.1}", r.duration_seconds), "drill passed: the artifact restores and its data matches"
        ),
        Outcome::Failed => tracing::error!(
            target = %r.target, database = %r.database, artifact = %r.artifact, reason = r.reason.as_deref().unwrap_or(""),
            seconds = format!("{:.1}", r.duration_seconds),
            "drill FAILED: {}", r.error.as_deref().unwrap_or("")
        ),
        Outcome::Skipped => tracing::warn!(
            target = %r.target, database = %r.database, artifact = %r.artifact,
            "drill skipped: {}", r.error.as_deref().unwrap_or("")
        ),
    }
}

/// Drills one artifact; never fails, the record says how it went.
async fn drill_one(ctx: &Context, target: &Target, picked: &Picked, stop: Stop) -> Record {
    let m = &picked.manifest;
    let clock = Instant::now();
    let mut rec = Record {
        format: record::FORMAT,
        target: target.name.clone(),
        artifact: m.stored.file.clone(),
        source: picked.source(),
        engine: m.engine.clone(),
        database: m.database.clone(),
        image: None,
        started_at: Utc::now(),
        duration_seconds: 0.0,
        outcome: Outcome::Passed,
        error: None,
        reason: None,
        tables: BTreeMap::new(),
        checks: BTreeMap::new(),
    };
    tracing::info!(target = %target.name, database = %m.database, artifact = %m.stored.file, source = %rec.source, "drill started");
    let result = match skip_reason(ctx, m) {
        Some(why) => {
            rec.outcome = Outcome::Skipped;
            rec.error = Some(why);
            Ok(())
        }
        None => run(ctx, target, picked, &mut rec, stop).await,
    };
    if let Err(f) = result {
        rec.outcome = Outcome::Failed;
        rec.reason = Some(f.reason.to_string());
        rec.error = Some(f.message);
    }
    rec.duration_seconds = clock.elapsed().as_secs_f64();
    rec
}

/// Why `m` is not drilled, if it is not.
fn skip_reason(ctx: &Context, m: &crate::local::artifact::Manifest) -> Option<String> {
    let engine = ctx.registry.get(&m.engine)?;
    if engine.drill.is_none() {
        return Some(format!(
            "engine {} has no [drill] section in its spec, so its artifacts cannot be drilled",
            m.engine
        ));
    }
    if m.database == "all" {
        return Some("the artifact holds every database (stowage.database=all); drills restore one database: name the databases in stowage.database to drill them".into());
    }
    if m.stored.encrypted && ctx.identities.is_empty() {
        return Some("the artifact is encrypted and no key to open it is configured: set encryption.identity_files (or encryption.passphrase) where drills run".into());
    }
    None
}

/// The drill proper: download if remote, container, verify + ready, restore, rows, checks;
/// the container (and a download) is removed whatever happens.
async fn run(
    ctx: &Context,
    target: &Target,
    picked: &Picked,
    rec: &mut Record,
    stop: Stop,
) -> Result<(), Failed> {
    let m = &picked.manifest;
    let engine = ctx
        .registry
        .get(&m.engine)
        .ok_or_else(|| Failed::new("engine", format!("engine {:?} is unknown here", m.engine)))?;
    let drill = engine.drill.as_ref().expect("checked by skip_reason");
    let deadline = tokio::time::Instant::now() + ctx.timeout;
    let timed_out = || {
        Failed::new(
            "timeout",
            format!(
                "the drill took longer than drill.timeout ({} s); raise it if this database needs longer to restore",
                ctx.timeout.as_secs()
            ),
        )
    };
    let cancelled = || Failed::new("cancelled", "stowage was asked to stop during the drill");
    // A remote copy is fetched into a private directory first.
    let (path, fetched) = match &picked.location {
        Location::Local(p) => (p.clone(), None),
        Location::Remote(remote) => {
            let dir = ctx.backup_dir.join(format!(
                ".drill-{}-{}",
                std::process::id(),
                container::rand_index(1 << 30)
            ));
            std::fs::create_dir_all(&dir).map_err(|e| {
                Failed::new("download", format!("cannot create {}: {e}", dir.display()))
            })?;
            let download = remote.download(&target.name, &m.stored.file, &dir);
            let got = tokio::select! {
                r = download => r.map_err(|e| Failed::new("download", crate::error_text::one_line(&e))),
                _ = tokio::time::sleep_until(deadline) => Err(timed_out()),
                _ = stopped(stop.clone()) => Err(cancelled()),
            };
            match got {
                Ok(p) => (p, Some(dir)),
                Err(f) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(f);
                }
            }
        }
    };
    let result = async {
        let blueprint = blueprint(ctx, target, engine, drill, m).await?;
        rec.image = Some(blueprint.image.clone());
        let c = Throwaway::start(&ctx.docker, &blueprint)
            .await
            .map_err(|e| Failed::new("start", crate::error_text::one_line(&e)))?;
        tracing::info!(target = %target.name, container = %c.short_id(), image = %blueprint.image, "drill container started");
        crate::fault::point("drill:container-started");
        let steps = steps(ctx, engine, drill, &c, &path, m, rec);
        let result = tokio::select! {
            r = steps => r,
            _ = tokio::time::sleep_until(deadline) => Err(timed_out()),
            _ = stopped(stop) => Err(cancelled()),
        };
        c.remove().await;
        result
    }
    .await;
    if let Some(dir) = fetched {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

/// What the drill container is made of: image, environment with a fresh password, volumes.
async fn blueprint(
    ctx: &Context,
    target: &Target,
    engine: &Engine,
    drill: &Drill,
    m: &crate::local::artifact::Manifest,
) -> Result<Blueprint, Failed> {
    let image = match drill.spec.image {
        DrillImage::Target => {
            let mut found = None;
            let candidates = m.container.image_id.iter().chain([&m.container.image, &target.container.image]);
            for c in candidates {
                if ctx.docker.inspect_image(c).await.is_ok() {
                    found = Some(c.clone());
                    break;
                }
            }
            found.ok_or_else(|| Failed::new("image", format!(
                "neither the image the artifact was made with ({}) nor the target's ({}) is on this Docker engine; pull it to drill this artifact",
                m.container.image, target.container.image
            )))?
        }
        DrillImage::Helper => match &ctx.helper_image {
            Some(i) => i.clone(),
            None => crate::engine::site::own_image(&ctx.docker).await.ok_or_else(|| {
                Failed::new("image", "this engine's drills run in stowage's own image, which was not found: set helper_image (STOWAGE_HELPER_IMAGE)")
            })?,
        },
    };
    // The target's plain values (a user name, say), never its secrets; then the fresh ones.
    let mut values: BTreeMap<String, String> = target
        .vars
        .iter()
        .filter(|(name, _)| !engine.spec.vars.get(*name).is_some_and(|v| v.secret))
        .filter_map(|(name, chosen)| Some((name.clone(), chosen.known_value()?.to_string())))
        .collect();
    values.insert(
        "password".into(),
        container::password().expose().to_string(),
    );
    values.insert("database".into(), drill_database(drill, m));
    Ok(Blueprint {
        target: target.name.clone(),
        image,
        env: drill.container_env(&values),
        command: drill.spec.command.clone(),
        volumes: drill.spec.volumes.clone(),
        memory: ctx.memory,
    })
}

/// The database a drill restores into: the spec's (a file path, for SQLite), else the
/// artifact's.
fn drill_database(drill: &Drill, m: &crate::local::artifact::Manifest) -> String {
    drill
        .spec
        .database
        .clone()
        .unwrap_or_else(|| m.database.clone())
}

/// Inside the running drill container: verify and wait for the engine at once, restore
/// counting rows, compare counts, run the checks.
async fn steps(
    ctx: &Context,
    engine: &Engine,
    drill: &Drill,
    c: &Throwaway,
    path: &std::path::Path,
    m: &crate::local::artifact::Manifest,
    rec: &mut Record,
) -> Result<(), Failed> {
    let database = drill_database(drill, m);
    let verify = {
        let path = path.to_path_buf();
        async move {
            tokio::task::spawn_blocking(move || crate::local::catalog::verify_path(&path))
                .await
                .map_err(|e| Failed::new("verify", e.to_string()))?
                .map(|_| ())
                .map_err(|e| {
                    Failed::new(
                        "verify",
                        format!("{e}; the artifact is damaged: keep an older one"),
                    )
                })
        }
    };
    let ready = async {
        // Right after the start, the engine's entrypoint may still be setting the container up:
        // reading its values is retried for a while before it counts as a failure.
        let started = Instant::now();
        let values = loop {
            match restore::container_values(&ctx.docker, engine, &c.id, &database, &m.database)
                .await
            {
                Ok((_, values)) => break values,
                Err((step, cause)) if started.elapsed() >= SETUP_GRACE => {
                    return Err(Failed::new("not_ready", format!("{step}: {cause}")));
                }
                Err(_) if let Some(logs) = c.exited().await => {
                    return Err(Failed::new(
                        "not_ready",
                        format!(
                            "the drill container stopped before its engine was ready; its log ends: {logs}"
                        ),
                    ));
                }
                Err((step, cause)) => {
                    tracing::debug!(container = %c.short_id(), "{step}: {cause}; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        check::wait_ready(&ctx.docker, engine, drill, c, &values).await?;
        Ok::<_, Failed>(values)
    };
    let (verified, values) = tokio::join!(verify, ready);
    verified?;
    let values = values?;
    let req = restore::Request {
        artifact: path,
        container: &c.id,
        database: Some(&database),
        helper_image: ctx.helper_image.as_deref(),
        identities: ctx.identities.clone(),
        rows: drill.spec.count,
        verified: true,
    };
    let restored = restore::restore(&ctx.docker, &ctx.registry, &req)
        .await
        .map_err(|e| {
            Failed::new(
                "restore",
                format!(
                    "the artifact does not restore: {}",
                    crate::error_text::one_line(&e)
                ),
            )
        })?;
    if let (Some(rows_cmd), Some(dump_rows)) = (&drill.rows, &restored.rows) {
        let restored_rows =
            check::restored_rows(&ctx.docker, engine, rows_cmd, &c.id, &values).await?;
        let (tables, mismatch) = check::compare_rows(dump_rows, &restored_rows);
        rec.tables = tables;
        if let Some(message) = mismatch {
            return Err(Failed::new("rows_mismatch", message));
        }
    }
    let (checks, failed) = check::run_checks(&ctx.docker, engine, drill, &c.id, &values).await;
    rec.checks = checks;
    failed.map_or(Ok(()), Err)
}
