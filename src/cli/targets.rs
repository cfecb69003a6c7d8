//! The commands about targets: `plan`, `backup`, `run` and `alert-test`.

use std::process::ExitCode;
use std::sync::Arc;

use chrono::Utc;

use super::{Loaded, exit, lock_and_recover, print, shutdown_signal};
use crate::daemon::alerts::{Event, Notifier};
use crate::daemon::metrics::Metrics;
use crate::plan::Entry;
use crate::{app, daemon, job};

pub(super) async fn cmd_plan(l: &Loaded) -> anyhow::Result<ExitCode> {
    let ctx = app::context(&l.config, &l.checked).await?;
    let entries = ctx.discover_and_plan().await?;
    let now = Utc::now();
    let notifier = Notifier::new(l.checked.channels.clone(), Metrics::new());
    let (mut planned, mut skipped, mut errors) = (0, 0, 0);
    for entry in &entries {
        match entry {
            Entry::Target(t) => {
                planned += 1;
                print::target(t, now);
                print::notify(t, &notifier.label_problems(t));
            }
            Entry::Skipped(skip) => {
                skipped += 1;
                errors += usize::from(skip.is_error);
                println!("skipped {}: {}", skip.container, skip.reason);
            }
        }
    }
    println!(
        "{planned} target(s), {skipped} labelled container(s) skipped; artifacts go to {}",
        l.config.backup_dir.display()
    );
    let host_from = if l.config.host.is_some() {
        "config host"
    } else {
        "the Docker engine's name"
    };
    println!(
        "host: {} ({host_from}); storage keys are <storage>/{}/<target>/<file>",
        ctx.host, ctx.host
    );
    let coordination = &l.config.coordination;
    match &coordination.storage {
        Some(storage) => println!(
            "coordination: leases in storage {storage} ({} s each): each scheduled run is claimed first, so daemons sharing these targets run each once",
            coordination
                .lease_for(l.config.daemon.backup_timeout)
                .as_secs()
        ),
        None => println!("coordination: off (coordination.storage unset)"),
    }
    Ok(exit(errors > 0))
}

pub(super) async fn cmd_backup(l: &Loaded, wanted: &[String]) -> anyhow::Result<ExitCode> {
    let ctx = app::context(&l.config, &l.checked).await?;
    let _lock = lock_and_recover(&l.config, &ctx.docker).await?;
    let entries = ctx.discover_and_plan().await?;
    let selection = job::select(&entries, wanted);
    let mut failed = false;
    for (skip, is_error) in &selection.skipped {
        if *is_error {
            failed = true;
            tracing::error!(container = %skip.container, "not backed up: {}", skip.reason);
        } else {
            tracing::info!(container = %skip.container, "not backed up: {}", skip.reason);
        }
    }
    for w in &selection.unknown {
        failed = true;
        tracing::error!("no labelled container or target named {w:?}; `stowage plan` lists them");
    }
    if selection.targets.is_empty() && wanted.is_empty() {
        tracing::warn!(
            "no labelled containers to back up: add the label stowage.enable=true to a database container"
        );
    }
    let notifier = Notifier::new(l.checked.channels.clone(), Metrics::new());
    notifier.set_targets(selection.targets.iter().map(|t| &**t));
    // SIGTERM or SIGINT cancels the runs: their temp files are removed and stopped
    // containers started again before the process exits.
    let runs = tokio::select! {
        runs = job::run_all(&ctx, &selection.targets) => runs,
        () = shutdown_signal() => {
            tracing::error!("stopping: the running backups were cancelled and leave no artifact");
            crate::docker::pending::settle().await;
            return Ok(exit(true));
        }
    };
    for (target, run) in selection.targets.iter().zip(runs) {
        for r in &run.backups {
            match r {
                Ok(o) => println!("{}", o.artifact.display()),
                Err(_) => failed = true, // already logged with full context
            }
        }
        // Failed uploads are logged with the storage and key, and retried next time.
        failed |= run.replication.is_some_and(|r| !r.failures.is_empty());
        for shrink in &run.shrinks {
            let event = Event::shrink(target, shrink, l.config.instance.clone());
            super::deliver(&notifier, &event).await;
        }
    }
    Ok(exit(failed))
}

pub(super) async fn cmd_run(l: &Loaded) -> anyhow::Result<ExitCode> {
    let ctx = app::context(&l.config, &l.checked).await?;
    let _lock = lock_and_recover(&l.config, &ctx.docker).await?;
    let settings = app::daemon_settings(&l.config, &l.checked);
    let drills = app::drill_context(&l.config, &ctx)?;
    let result = daemon::run(Arc::new(ctx), drills, settings, shutdown_signal()).await;
    // Runs aborted at the shutdown grace start their stopped containers on their own tasks.
    crate::docker::pending::settle().await;
    result?;
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn cmd_alert_test(l: &Loaded) -> anyhow::Result<ExitCode> {
    let notifier = Notifier::new(l.checked.channels.clone(), Metrics::new());
    // Channels that targets' stowage.notify labels add are tested too, when Docker answers.
    match app::context(&l.config, &l.checked).await {
        Ok(ctx) => match ctx.discover_and_plan().await {
            Ok(entries) => notifier.set_targets(entries.iter().filter_map(|e| match e {
                Entry::Target(t) => Some(&**t),
                Entry::Skipped(_) => None,
            })),
            Err(e) => println!(
                "(labels not read: {}; channels from stowage.notify labels are not tested)",
                crate::error_text::one_line(&e)
            ),
        },
        Err(e) => println!(
            "(Docker not reached: {}; channels from stowage.notify labels are not tested)",
            crate::error_text::one_line(&e)
        ),
    }
    let results = notifier
        .test_all(&Event::test(l.config.instance.clone()))
        .await;
    if results.is_empty() {
        anyhow::bail!(
            "no alert channel is configured: add [alerts.notify.NAME], [[alerts.webhooks]] or [alerts.email] to the config, or a stowage.notify label"
        );
    }
    let mut failed = false;
    for (channel, result) in results {
        match result {
            Ok(()) => println!("{channel}: delivered"),
            Err(why) => {
                failed = true;
                println!("{channel}: FAILED: {}", crate::error_text::one_line(&why));
            }
        }
    }
    Ok(exit(failed))
}
