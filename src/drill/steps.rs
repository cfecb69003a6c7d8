//! Inside a drill: what its container is made of, and the steps once it runs (verify and
//! ready at once, restore with counting, row comparison, checks).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::Context;
use super::check::{self, Failed};
use super::container::{self, Blueprint, Throwaway};
use super::record::Record;
use crate::engine::drill::{Drill, DrillImage};
use crate::engine::spec::Engine;
use crate::local::artifact::Manifest;
use crate::plan::Target;
use crate::restore;

/// How long reading the drill container's values may keep failing right after its start.
const SETUP_GRACE: Duration = Duration::from_secs(30);

/// What the drill container is made of: image, environment with a fresh password, volumes.
pub(super) async fn blueprint(
    ctx: &Context,
    target: &Target,
    engine: &Engine,
    drill: &Drill,
    m: &Manifest,
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
        instance: ctx.instance.clone().unwrap_or_default(),
        image,
        env: drill.container_env(&values),
        command: drill.spec.command.clone(),
        volumes: drill.spec.volumes.clone(),
        memory: ctx.memory,
    })
}

/// The database a drill restores into: the spec's (a file path, for SQLite), else the
/// artifact's.
fn drill_database(drill: &Drill, m: &Manifest) -> String {
    drill
        .spec
        .database
        .clone()
        .unwrap_or_else(|| m.database.clone())
}

/// Inside the running drill container: verify and wait for the engine at once, restore
/// counting rows, compare counts, run the checks.
pub(super) async fn steps(
    ctx: &Context,
    engine: &Engine,
    drill: &Drill,
    c: &Throwaway,
    path: &std::path::Path,
    m: &Manifest,
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
    let ready = ready_values(ctx, engine, drill, c, &database, m);
    let (verified, values) = tokio::join!(verify, ready);
    verified?;
    let values = values?;
    let req = restore::Request {
        artifact: path,
        into: restore::Destination::Container(&c.id),
        database: Some(&database),
        helper_image: ctx.helper_image.as_deref(),
        identities: ctx.identities.clone(),
        rows: drill.spec.count,
        jobs: None,
        verified: true,
        record_dir: None,
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

/// The drill container's values (read as a restore reads them), once its engine is ready.
async fn ready_values(
    ctx: &Context,
    engine: &Engine,
    drill: &Drill,
    c: &Throwaway,
    database: &str,
    m: &Manifest,
) -> Result<BTreeMap<String, String>, Failed> {
    // Right after the start, the engine's entrypoint may still be setting the container up:
    // reading its values is retried for a while before it counts as a failure.
    let started = Instant::now();
    let values = loop {
        match restore::container_values(&ctx.docker, engine, &c.id, database, &m.database).await {
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
    Ok(values)
}
