//! The commands about stored artifacts: `list`, `verify`, `prune` and `upload`.
//!
//! They read the backup directory (through [`crate::catalog`]) and the storages; `prune` and
//! `upload` also need the plan, for each target's retention policy and storages.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;

use super::{discover_and_plan, human_bytes, lock_backup_dir, options, setup};
use crate::backup;
use crate::config::Config;
use crate::plan::Entry;
use crate::storage::Storages;
use crate::{artifact, catalog, prune, retention};

/// The config and the artifacts of `targets` (all when empty).
fn load_catalog(
    config_path: Option<PathBuf>,
    targets: &[String],
) -> anyhow::Result<(Config, Vec<catalog::Listed>)> {
    let config = Config::load(config_path.as_deref())?;
    let listed = catalog::list(&config.backup_dir, targets).with_context(|| {
        format!(
            "cannot read backup directory {}",
            config.backup_dir.display()
        )
    })?;
    Ok((config, listed))
}

pub(super) async fn cmd_list(
    config_path: Option<PathBuf>,
    targets: &[String],
) -> anyhow::Result<ExitCode> {
    let (config, listed) = load_catalog(config_path, targets)?;
    let storages = Storages::from_config(&config.storage)
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    // (target, file) → the storages holding a verified copy (its manifest is there).
    let mut remote: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for r in storages.all() {
        let names = if targets.is_empty() {
            r.targets().await
        } else {
            Ok(targets.to_vec())
        };
        let names = names.unwrap_or_else(|e| {
            tracing::warn!("{e}; its copies are not shown");
            vec![]
        });
        for t in names {
            match r.list(&t).await {
                Ok(objects) => {
                    for name in objects.keys() {
                        if let Some(file) = name.strip_suffix(artifact::MANIFEST_SUFFIX) {
                            remote
                                .entry((t.clone(), file.to_string()))
                                .or_default()
                                .push(r.name.clone());
                        }
                    }
                }
                Err(e) => tracing::warn!("{e}; its copies are not shown"),
            }
        }
    }
    println!(
        "{:<20} {:<17} {:<9} {:<16} {:>10}  {:<12} {:<20} FILE",
        "TARGET", "TIME (UTC)", "ENGINE", "DATABASE", "SIZE", "STATE", "COPIES"
    );
    let row = |target: &str,
               m: Option<&artifact::Manifest>,
               state: &str,
               copies: String,
               file: String| {
        let (time, engine, database, size) = match m {
            Some(m) => (
                m.started_at.format("%Y-%m-%d %H:%M").to_string(),
                m.engine.clone(),
                m.database.clone(),
                human_bytes(m.stored.bytes),
            ),
            None => ("?".into(), "?".into(), "?".into(), "?".into()),
        };
        println!(
            "{target:<20} {time:<17} {engine:<9} {database:<16} {size:>10}  {state:<12} {copies:<20} {file}"
        );
    };
    let mut count = listed.len();
    for l in &listed {
        let file = l
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut copies = if l.file_exists {
            vec!["local".to_string()]
        } else {
            vec![]
        };
        copies.extend(remote.remove(&(l.target.clone(), file)).unwrap_or_default());
        row(
            &l.target,
            l.manifest.as_ref().ok(),
            l.state(),
            copies.join(","),
            l.path.display().to_string(),
        );
    }
    // Copies that exist only remotely (remote-only mode, or a lost backup directory).
    for ((target, file), names) in remote {
        let manifest = match storages.get(&names[0]) {
            Some(r) => r.manifest(&target, &file).await.ok(),
            None => None,
        };
        row(
            &target,
            manifest.as_ref(),
            "remote",
            names.join(","),
            format!("{}:{target}/{file}", names[0]),
        );
        count += 1;
    }
    println!(
        "{count} artifact(s); local copies in {}",
        config.backup_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn cmd_upload(
    config_path: Option<PathBuf>,
    targets: &[String],
) -> anyhow::Result<ExitCode> {
    let s = setup(config_path).await?;
    let _lock = lock_backup_dir(&s.config)?;
    let opts = options(&s);
    let mut failed = false;
    for entry in discover_and_plan(&s).await? {
        let Entry::Target(t) = entry else { continue };
        if t.storages.is_empty() || (!targets.is_empty() && !targets.contains(&t.name)) {
            continue;
        }
        let r = backup::replicate_target(&t, &opts).await;
        println!(
            "{}: {} uploaded, {} deleted remotely, {} failed",
            t.name,
            r.uploaded,
            r.pruned,
            r.failures.len()
        );
        failed |= !r.failures.is_empty();
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub(super) async fn cmd_prune(
    config_path: Option<PathBuf>,
    dry_run: bool,
    targets: &[String],
) -> anyhow::Result<ExitCode> {
    let s = setup(config_path).await?;
    let _lock = lock_backup_dir(&s.config)?;
    // Policies come from the containers' labels; a target whose container is gone gets the
    // default policy.
    let policies: BTreeMap<String, retention::Policy> = discover_and_plan(&s)
        .await?
        .into_iter()
        .filter_map(|e| match e {
            Entry::Target(t) => Some((t.name.clone(), t.retention.clone())),
            Entry::Skipped(_) => None,
        })
        .collect();
    let names: BTreeSet<String> = catalog::list(&s.config.backup_dir, targets)?
        .into_iter()
        .map(|l| l.target)
        .collect();
    let (mut deleting, mut kept, mut failed) = (0, 0, false);
    for name in names {
        let policy = policies.get(&name).unwrap_or(&s.config.retention);
        let plan = prune::plan_target(&s.config.backup_dir, &name, policy, Utc::now())?;
        println!("{name}: {}", plan.policy);
        for p in &plan.planned {
            let verdict = if p.decision.keep { "keep" } else { "delete" };
            println!(
                "  {verdict:<7} {}  {:<16} {:<40} {}",
                p.manifest.started_at.format("%Y-%m-%d %H:%M"),
                p.manifest.database,
                p.decision.reasons.join(", "),
                p.path.display()
            );
        }
        for (path, why) in &plan.ignored {
            println!("  ignore  {}: {why}", path.display());
        }
        let n = plan.deletions().count();
        deleting += n;
        kept += plan.planned.len() - n;
        if !dry_run && n > 0 {
            let plan = plan.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || prune::apply(&plan)).await? {
                tracing::error!(target = %name, "could not delete: {e}");
                failed = true;
            }
        }
    }
    if dry_run {
        println!("{kept} kept, {deleting} would be deleted (dry run: nothing was deleted)");
    } else {
        println!("{kept} kept, {deleting} deleted");
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub(super) async fn cmd_verify(
    config_path: Option<PathBuf>,
    targets: &[String],
) -> anyhow::Result<ExitCode> {
    let (_, listed) = load_catalog(config_path, targets)?;
    let mut bad = 0;
    for l in &listed {
        let path = l.path.clone();
        // Hashing reads whole files: keep it off the async threads.
        let result = tokio::task::spawn_blocking(move || catalog::verify_path(&path)).await?;
        match result {
            Ok(_) => println!("ok      {}", l.path.display()),
            Err(e) => {
                bad += 1;
                println!("FAILED  {}: {e}", l.path.display());
            }
        }
    }
    println!("{} verified, {bad} failed", listed.len() - bad);
    Ok(if bad > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
