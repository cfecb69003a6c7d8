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
mod steps;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use chrono::Utc;
use tokio::sync::{Semaphore, watch};

use crate::engine::Registry;
use crate::pipeline::encryption::Identities;
use crate::plan::Target;
use crate::remote::config::Storages;
use check::Failed;
use container::Throwaway;
use record::{Outcome, Record};
use source::{Location, Picked};

/// The reason of a drill stopped by shutdown: recorded as skipped, never alerted.
const CANCELLED: &str = "cancelled";

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
    /// Config `instance`: its drill containers are labelled with it.
    pub instance: Option<String>,
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
            instance: None,
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
    let earlier = record::all(&ctx.backup_dir, &target.name);
    let mut records = Vec::new();
    for p in picked {
        let previous = earlier
            .iter()
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
    match result {
        // Stopped from outside: this says nothing about the artifact.
        Err(f) if f.reason == CANCELLED => {
            rec.outcome = Outcome::Skipped;
            rec.error = Some(f.message);
        }
        Err(f) => {
            rec.outcome = Outcome::Failed;
            rec.reason = Some(f.reason.to_string());
            rec.error = Some(f.message);
        }
        Ok(()) => {}
    }
    rec.duration_seconds = clock.elapsed().as_secs_f64();
    rec
}

/// Why `m` is not drilled, if it is not.
fn skip_reason(ctx: &Context, m: &crate::local::artifact::Manifest) -> Option<String> {
    let engine = ctx.registry.get(&m.engine)?;
    let Some(drill) = &engine.drill else {
        return Some(format!(
            "engine {} has no [drill] section in its spec, so its artifacts cannot be drilled",
            m.engine
        ));
    };
    if m.database == "all" && !drill.spec.all {
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
    let cancelled = || Failed::new(CANCELLED, "stowage was asked to stop during the drill");
    // A remote copy is fetched into a private directory first.
    let (path, fetched) = match &picked.location {
        Location::Local(p) => (p.clone(), None),
        Location::Remote(remote) => {
            // A temp name: if stowage dies here, the next start removes the directory.
            let dir = ctx.backup_dir.join(format!(
                ".drill-{}-{}{}",
                std::process::id(),
                container::rand_index(1 << 30),
                crate::local::artifact::TEMP_SUFFIX
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
        let blueprint = steps::blueprint(ctx, target, engine, drill, m).await?;
        rec.image = Some(blueprint.image.clone());
        let c = Throwaway::start(&ctx.docker, &blueprint)
            .await
            .map_err(|e| Failed::new("start", crate::error_text::one_line(&e)))?;
        tracing::info!(target = %target.name, container = %c.short_id(), image = %blueprint.image, "drill container started");
        crate::fault::point("drill:container-started");
        let steps = steps::steps(ctx, engine, drill, &c, &path, m, rec);
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
