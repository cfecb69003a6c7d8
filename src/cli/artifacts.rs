//! The commands about stored artifacts: `list`, `verify`, `prune` and `upload`.
//!
//! They read the backup directory (through [`crate::local::catalog`]) and the storages; `prune` and
//! `upload` also need the plan, for each target's retention policy and storages.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::Utc;

use super::{Loaded, exit, lock_backup_dir};
use crate::drill::record;
use crate::local::{artifact, catalog, prune};
use crate::plan::Entry;
use crate::remote::copies;
use crate::{app, job, retention};

/// The artifacts of `targets` (all when empty) in the backup directory.
fn load_catalog(backup_dir: &Path, targets: &[String]) -> anyhow::Result<Vec<catalog::Listed>> {
    catalog::list(backup_dir, targets)
        .with_context(|| format!("cannot read backup directory {}", backup_dir.display()))
}

pub(super) async fn cmd_list(l: &Loaded, targets: &[String]) -> anyhow::Result<ExitCode> {
    let config = &l.config;
    let listed = load_catalog(&config.backup_dir, targets)?;
    let storages = &super::storages(l).await?;
    // (target, file) → the storages holding a complete copy.
    let (mut remote, errors) = copies::by_file(storages.all(), targets).await;
    for e in errors {
        tracing::error!(
            "{}; its copies are not shown",
            crate::error_text::one_line(&e)
        );
    }
    println!(
        "{:<20} {:<17} {:<9} {:<16} {:>10}  {:<12} {:<20} {:<18} FILE",
        "TARGET", "TIME (UTC)", "ENGINE", "DATABASE", "SIZE", "STATE", "COPIES", "LAST DRILL"
    );
    let row = |target: &str,
               m: Option<&artifact::Manifest>,
               state: &str,
               copies: String,
               file: String| {
        let drilled = m.map_or("-".into(), |m| {
            last_drill(&config.backup_dir, target, &m.stored.file)
        });
        let (time, engine, database, size) = super::print::manifest_columns(m);
        println!(
            "{target:<20} {time:<17} {engine:<9} {database:<16} {size:>10}  {state:<12} {copies:<20} {drilled:<18} {file}"
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

/// The last drill of an artifact, as `list` shows it: `passed 3d ago`, or `-`.
fn last_drill(backup_dir: &Path, target: &str, file: &str) -> String {
    match record::read(backup_dir, target, file) {
        Some(r) => format!(
            "{} {} ago",
            match r.outcome {
                record::Outcome::Passed => "passed",
                record::Outcome::Failed => "FAILED",
                record::Outcome::Skipped => "skipped",
            },
            crate::human::age(Utc::now() - r.started_at)
        ),
        None => "-".into(),
    }
}

pub(super) async fn cmd_upload(l: &Loaded, targets: &[String]) -> anyhow::Result<ExitCode> {
    let ctx = app::context(&l.config, &l.checked).await?;
    let _lock = lock_backup_dir(&l.config)?;
    let mut failed = false;
    for entry in ctx.discover_and_plan().await? {
        let Entry::Target(t) = entry else { continue };
        if t.storages.is_empty() || (!targets.is_empty() && !targets.contains(&t.name)) {
            continue;
        }
        let _permit = ctx.permit().await;
        let r = job::upload(&ctx, &t).await;
        println!(
            "{}: {} uploaded, {} deleted remotely, {} failed",
            t.name,
            r.uploaded,
            r.pruned,
            r.failures.len()
        );
        failed |= !r.failures.is_empty();
    }
    Ok(exit(failed))
}

pub(super) async fn cmd_prune(
    l: &Loaded,
    dry_run: bool,
    targets: &[String],
) -> anyhow::Result<ExitCode> {
    let ctx = app::context(&l.config, &l.checked).await?;
    let _lock = lock_backup_dir(&l.config)?;
    let backup_dir = &l.config.backup_dir;
    // Policies come from the containers' labels; a target whose container is gone gets the
    // default policy.
    let policies: std::collections::BTreeMap<String, retention::Policy> = ctx
        .discover_and_plan()
        .await?
        .into_iter()
        .filter_map(|e| match e {
            Entry::Target(t) => Some((t.name.clone(), t.retention.clone())),
            Entry::Skipped(_) => None,
        })
        .collect();
    let names: BTreeSet<String> = load_catalog(backup_dir, targets)?
        .into_iter()
        .map(|l| l.target)
        .collect();
    let (mut deleting, mut kept, mut failed) = (0, 0, false);
    for name in names {
        let policy = policies.get(&name).unwrap_or(&l.config.retention);
        let plan = prune::plan_target(backup_dir, &name, policy, Utc::now())?;
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
    Ok(exit(failed))
}

pub(super) async fn cmd_verify(l: &Loaded, targets: &[String]) -> anyhow::Result<ExitCode> {
    let listed = load_catalog(&l.config.backup_dir, targets)?;
    let mut bad = 0;
    for l in &listed {
        // The same rule as retention: a manifest that does not describe this file of this
        // target makes no backup, even if the bytes match it.
        let manifest = match l.valid() {
            Ok(m) => m.clone(),
            Err(why) => {
                bad += 1;
                println!("FAILED  {}: {why}", l.path.display());
                continue;
            }
        };
        let path = l.path.clone();
        // Hashing reads whole files: keep it off the async threads.
        let result = tokio::task::spawn_blocking(move || catalog::verify(&path, &manifest)).await?;
        match result {
            Ok(()) => println!("ok      {}", l.path.display()),
            Err(e) => {
                bad += 1;
                println!("FAILED  {}: {e}", l.path.display());
            }
        }
    }
    println!("{} verified, {bad} failed", listed.len() - bad);
    Ok(exit(bad > 0))
}
