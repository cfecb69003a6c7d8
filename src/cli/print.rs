//! How targets, engines and sizes are printed.

use std::process::ExitCode;

use chrono::Utc;

use crate::engine::Registry;
use crate::plan::{Databases, Target};

/// One target as `stowage plan` shows it.
pub(super) fn target(t: &Target, now: chrono::DateTime<Utc>) {
    println!("{}", t.name);
    println!(
        "  container: {} ({}, image {})",
        t.container.name,
        t.container.short_id(),
        t.container.image
    );
    println!(
        "  engine:    {} — {}",
        t.engine.name(),
        t.engine.spec.description
    );
    if let Databases::Files(sets) = &t.databases {
        for set in sets {
            let shown = if set.name == set.path {
                set.path.clone()
            } else {
                format!("{} (at {})", set.name, set.path)
            };
            println!("  archives:  {shown}, read-only");
        }
    }
    let databases = match &t.databases {
        Databases::Files(_) => String::new(),
        Databases::All => "all".to_string(),
        Databases::Named(n) => format!("{} (label stowage.database)", n.join(", ")),
        Databases::Default => t
            .vars
            .get("database")
            .map(|c| c.describe())
            .unwrap_or_default(),
    };
    if !databases.is_empty() {
        println!("  database:  {databases}");
    }
    for (name, chosen) in &t.vars {
        if name != "database" {
            println!("  {:<10} {}", format!("{name}:"), chosen.describe());
        }
    }
    let next = t
        .next_run(now)
        .map(|n| n.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "never".into());
    println!("  schedule:  {} (next run {next})", t.schedule.as_str());
    println!("  retention: {}", t.retention);
    match &t.drill {
        Some(d) => {
            let next = d
                .next_after(now)
                .map(|n| n.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_else(|| "never".into());
            println!("  drill:     {} (next drill {next})", d.as_str());
        }
        None if t.engine.drill.is_none() => {
            println!(
                "  drill:     none (engine {} has no [drill])",
                t.engine.name()
            )
        }
        None => println!("  drill:     off (label stowage.drill or drill.schedule)"),
    }
    hooks_and_stop(t);
    for w in &t.warnings {
        println!("  warning:   {w}");
    }
}

/// Where the target's alerts go beyond every-target channels (`stowage.notify`; URLs shown
/// without their secrets), and what is wrong with the label.
pub fn notify(t: &Target, problems: &[String]) {
    if !t.notify.is_empty() {
        let shown: Vec<String> = t
            .notify
            .iter()
            .map(|i| {
                let text = i.expose();
                if text.contains("://") {
                    crate::daemon::alerts::notify::redact(text)
                } else {
                    text.to_string()
                }
            })
            .collect();
        println!("  notify:    {}", shown.join(" "));
    }
    for p in problems {
        println!("  warning:   label stowage.notify: {p}");
    }
}

/// The target's hooks and what it stops, if any.
fn hooks_and_stop(t: &Target) {
    for (which, argv) in [("pre", &t.hooks.pre), ("post", &t.hooks.post)] {
        if let Some(argv) = argv {
            let timeout = t.hooks.timeout.as_secs();
            println!(
                "  {:<10} {argv:?} (timeout {timeout} s)",
                format!("{which}:")
            );
        }
    }
    if let Some(stop) = &t.stop {
        match &stop.group {
            Some(g) => println!(
                "  stop:      the container and every container labelled stowage.stop_group={g}, during the backup"
            ),
            None => println!("  stop:      the container, during the backup"),
        }
    }
}

/// An artifact's time, engine, database and size as `list` shows them (`?` without a
/// manifest).
pub(super) fn manifest_columns(
    m: Option<&crate::local::artifact::Manifest>,
) -> (String, String, String, String) {
    match m {
        Some(m) => (
            m.started_at.format("%Y-%m-%d %H:%M").to_string(),
            m.engine.clone(),
            m.database.clone(),
            human_bytes(m.stored.bytes),
        ),
        None => ("?".into(), "?".into(), "?".into(), "?".into()),
    }
}

/// `stowage engines`.
pub(super) fn engines(registry: &Registry) -> ExitCode {
    for e in registry.all() {
        let d = &e.spec.detect;
        let mut detect: Vec<String> = Vec::new();
        if !d.images.is_empty() {
            detect.push(format!("images {}", d.images.join(", ")));
        }
        if !d.env.is_empty() {
            detect.push(format!("env {}", d.env.join(", ")));
        }
        println!("{}", e.name());
        println!("  {}", e.spec.description);
        println!("  from:     {}", e.origin);
        println!(
            "  detects:  {}",
            if detect.is_empty() {
                "by label stowage.engine only".to_string()
            } else {
                detect.join("; ")
            }
        );
        let can: Vec<&str> = [
            Some("dump"),
            e.spec.dump_all.as_ref().map(|_| "dump all"),
            e.spec.restore.as_ref().map(|_| "restore"),
        ]
        .into_iter()
        .flatten()
        .collect();
        println!("  can:      {}", can.join(", "));
    }
    ExitCode::SUCCESS
}

/// Bytes in KiB/MiB/GiB, one decimal.
pub(super) fn human_bytes(n: u64) -> String {
    crate::local::space::human(n)
}
