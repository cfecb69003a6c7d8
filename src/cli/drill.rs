//! `stowage drill`: restore drills now, of the named targets or all of them.

use std::process::ExitCode;

use super::{Loaded, deliver, exit, lock_backup_dir, shutdown_signal};
use crate::daemon::alerts::{Event, Notifier};
use crate::daemon::metrics::Metrics;
use crate::drill::record::Outcome;
use crate::drill::{self, container};
use crate::{app, job};

pub(super) async fn cmd_drill(l: &Loaded, wanted: &[String]) -> anyhow::Result<ExitCode> {
    let ctx = app::context(&l.config, &l.checked).await?;
    let drills = app::drill_context(&l.config, &ctx)?;
    let _lock = lock_backup_dir(&l.config)?;
    let removed = container::remove_leftovers(&ctx.docker, ctx.instance.as_deref()).await?;
    if removed > 0 {
        tracing::warn!(
            removed,
            "removed drill containers a killed stowage left behind"
        );
    }
    let entries = ctx.discover_and_plan().await?;
    let selection = job::select(&entries, wanted);
    let mut failed = !selection.unknown.is_empty();
    for w in &selection.unknown {
        tracing::error!("no labelled container or target named {w:?}; `stowage plan` lists them");
    }
    for (skip, _) in selection.skipped.iter().filter(|(_, error)| *error) {
        failed = true;
        tracing::error!(container = %skip.container, "not drilled: {}", skip.reason);
    }
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let notifier = Notifier::new(l.checked.channels.clone(), Metrics::new());
    notifier.set_targets(selection.targets.iter().map(|t| &**t));
    let runs = selection.targets.iter().map(|t| {
        let (ctx, drills, stop) = (&ctx, &drills, stop.clone());
        async move {
            let _permit = ctx.permit().await;
            (*t, drill::drill_target(drills, t, stop).await)
        }
    });
    for (target, drilled) in futures_util::future::join_all(runs).await {
        for d in &drilled {
            let r = &d.record;
            let what = format!(
                "{} {} ({}, from {})",
                r.target, r.database, r.artifact, r.source
            );
            match r.outcome {
                Outcome::Passed => println!(
                    "passed   {what} in {:.1}s: {} table(s), {} row(s) matched{}",
                    r.duration_seconds,
                    r.tables.len(),
                    r.tables.values().map(|t| t.dump).sum::<u64>(),
                    checks_text(r)
                ),
                Outcome::Failed => {
                    failed = true;
                    println!(
                        "FAILED   {what} after {:.1}s: {}",
                        r.duration_seconds,
                        r.error.as_deref().unwrap_or("")
                    );
                }
                Outcome::Skipped => {
                    println!("skipped  {what}: {}", r.error.as_deref().unwrap_or(""))
                }
            }
            if let Some(event) = Event::drill(d, &target.container.name, l.config.instance.clone())
            {
                deliver(&notifier, &event).await;
            }
        }
    }
    if *stop.borrow() {
        tracing::warn!("stopped before every drill ended; their containers are removed");
        failed = true;
    }
    Ok(exit(failed))
}

fn checks_text(r: &drill::record::Record) -> String {
    if r.checks.is_empty() {
        return String::new();
    }
    let names: Vec<&str> = r.checks.keys().map(String::as_str).collect();
    format!("; checks passed: {}", names.join(", "))
}
