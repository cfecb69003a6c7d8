//! The command line: argument definitions and what each command does.
//!
//! This is the binary's edge: it loads configuration, connects to Docker, calls the library
//! and turns results into output and exit codes (0 all good, 1 a backup failed or a labelled
//! container could not be planned, 2 usage or configuration errors). Human-readable results go
//! to stdout, logs to stderr.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use clap::{Parser, Subcommand};

use crate::alerts::{Event, Notifier};
use crate::backup::{self, Options};
use crate::config::{self, Config};
use crate::encryption::{Encryption, Identities};
use crate::engine::Registry;
use crate::metrics::Metrics;
use crate::pipeline::Settings;
use crate::plan::{self, Databases, Defaults, Entry, Target};
use crate::schedule::Schedule;
use crate::storage::{self, Storages};
use crate::{artifact, daemon, discovery, docker, restore};

mod artifacts;

/// Backs up the databases in your Docker containers, found by their labels.
#[derive(Debug, Parser)]
#[command(name = "stowage", version, about)]
pub struct Cli {
    /// Config file (default: $STOWAGE_CONFIG, else /etc/stowage/stowage.toml if present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run as a daemon: back up every labelled container on its schedule.
    Run,
    /// Back up now: the named targets (target or container names), or all of them.
    Backup {
        /// Targets to back up; all when none is given.
        targets: Vec<String>,
    },
    /// Show what would be backed up, how, and why a labelled container is skipped.
    Plan,
    /// List the artifacts in the backup directory (of some targets, or all).
    List {
        /// Target names; all when none is given.
        targets: Vec<String>,
    },
    /// Upload what the storages lack (failed uploads are retried this way, and by the
    /// daemon), then apply retention there.
    Upload {
        /// Target names; all when none is given.
        targets: Vec<String>,
    },
    /// Apply the retention policies: delete the artifacts no rule keeps (of some targets, or
    /// all). Each target's policy is its stowage.retention label, else config `retention`.
    Prune {
        /// Print the plan (every artifact, kept or deleted, with the reasons); delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Target names; all when none is given.
        targets: Vec<String>,
    },
    /// Restore an artifact into a running database container. The artifact is checked against
    /// its manifest first; a mismatch is refused.
    Restore {
        /// The artifact file (its manifest must sit beside it).
        artifact: PathBuf,
        /// Container name or ID to restore into; its credentials are found as for a backup.
        #[arg(long, value_name = "CONTAINER")]
        to: String,
        /// Database to restore into (default: the one the artifact was dumped from).
        #[arg(long, value_name = "NAME")]
        database: Option<String>,
        /// age identity file for an encrypted artifact (repeatable; added to
        /// encryption.identity_files).
        #[arg(long, value_name = "FILE")]
        identity: Vec<PathBuf>,
    },
    /// Re-hash artifacts against their manifests (of some targets, or all).
    Verify {
        /// Target names; all when none is given.
        targets: Vec<String>,
    },
    /// List the engines: built-in and from `engines_dir`.
    Engines,
    /// Print the default configuration file.
    Config,
    /// Send a test alert to every configured webhook and to email now, and say how each
    /// delivery went (exit 1 if any failed). Checks the `[alerts]` configuration.
    AlertTest,
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Config => {
            print!("{}", config::DEFAULT_CONFIG);
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan => cmd_plan(cli.config).await,
        Command::Engines => cmd_engines(cli.config),
        Command::List { targets } => artifacts::cmd_list(cli.config, &targets).await,
        Command::Prune { dry_run, targets } => {
            artifacts::cmd_prune(cli.config, dry_run, &targets).await
        }
        Command::Upload { targets } => artifacts::cmd_upload(cli.config, &targets).await,
        Command::Restore {
            artifact,
            to,
            database,
            identity,
        } => cmd_restore(cli.config, &artifact, &to, database.as_deref(), identity).await,
        Command::Verify { targets } => artifacts::cmd_verify(cli.config, &targets).await,
        Command::Backup { targets } => cmd_backup(cli.config, targets).await,
        Command::Run => cmd_run(cli.config).await,
        Command::AlertTest => cmd_alert_test(cli.config).await,
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {}", crate::error_text::one_line(e.as_ref()));
        ExitCode::from(2)
    })
}

async fn cmd_alert_test(config_path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path.as_deref())?;
    let notifier = Notifier::new(&config.alerts, Metrics::new())
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    let results = notifier
        .deliver_all(&Event::test(config.instance.clone()))
        .await;
    if results.is_empty() {
        anyhow::bail!(
            "no alert channel is configured: add [[alerts.webhooks]] or [alerts.email] to the config"
        );
    }
    let mut failed = false;
    for (channel, result) in results {
        match result {
            Ok(()) => println!("{channel}: delivered"),
            Err(why) => {
                failed = true;
                println!("{channel}: FAILED: {why}");
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

struct Setup {
    config: Config,
    registry: Registry,
    docker: bollard::Docker,
    default_schedule: Schedule,
    encryption: Option<Arc<Encryption>>,
    storages: Arc<Storages>,
}

async fn setup(config_path: Option<PathBuf>) -> anyhow::Result<Setup> {
    let config = Config::load(config_path.as_deref())?;
    let registry = Registry::with_dir(config.engines_dir.as_deref())?;
    let encryption = Encryption::from_config(&config.encryption)
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?
        .map(Arc::new);
    let storages = Arc::new(
        Storages::from_config(&config.storage)
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?,
    );
    let docker = docker::connect().await?;
    let default_schedule = config.default_schedule()?;
    Ok(Setup {
        config,
        registry,
        docker,
        default_schedule,
        encryption,
        storages,
    })
}

impl Setup {
    fn defaults(&self) -> Defaults<'_> {
        Defaults {
            registry: &self.registry,
            schedule: &self.default_schedule,
            encryption: self.encryption.is_some(),
            retention: &self.config.retention,
            storages: &self.storages,
        }
    }
}

/// Locks the backup directory for this process; removes a crash's temp files if it may (each
/// removal is logged by `artifact`).
fn lock_backup_dir(config: &Config) -> anyhow::Result<artifact::DirLock> {
    let (lock, _removed) = artifact::open_backup_dir(&config.backup_dir).with_context(|| {
        format!(
            "cannot use backup directory {}; check that it exists or can be created, and is writable",
            config.backup_dir.display()
        )
    })?;
    Ok(lock)
}

fn options(s: &Setup) -> Options {
    let config = &s.config;
    Options {
        backup_dir: config.backup_dir.clone(),
        compression: Settings {
            level: config.compression.level,
            threads: config.compression.threads,
        },
        helper_image: config.helper_image.clone(),
        encryption: s.encryption.clone(),
        storages: s.storages.clone(),
        remote_only: s.config.remote_only,
    }
}

async fn discover_and_plan(s: &Setup) -> anyhow::Result<Vec<Entry>> {
    let containers =
        discovery::labelled_containers(&s.docker, s.config.instance.as_deref()).await?;
    Ok(plan::plan(&containers, &s.defaults()))
}

async fn cmd_plan(config_path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let s = setup(config_path).await?;
    let entries = discover_and_plan(&s).await?;
    let now = Utc::now();
    let (mut planned, mut skipped, mut errors) = (0, 0, 0);
    for entry in &entries {
        match entry {
            Entry::Target(t) => {
                planned += 1;
                print_target(t, now);
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
        s.config.backup_dir.display()
    );
    Ok(if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_target(t: &Target, now: chrono::DateTime<Utc>) {
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
    let databases = match &t.databases {
        Databases::All => "all".to_string(),
        Databases::Named(n) => format!("{} (label stowage.database)", n.join(", ")),
        Databases::Default => t
            .vars
            .get("database")
            .map(|c| c.describe())
            .unwrap_or_default(),
    };
    println!("  database:  {databases}");
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
    for w in &t.warnings {
        println!("  warning:   {w}");
    }
}

async fn cmd_backup(config_path: Option<PathBuf>, wanted: Vec<String>) -> anyhow::Result<ExitCode> {
    let s = setup(config_path).await?;
    let _lock = lock_backup_dir(&s.config)?;
    let entries = discover_and_plan(&s).await?;
    let mut failed = false;
    let mut selected: Vec<&Target> = Vec::new();
    for entry in &entries {
        let matches = |names: &[&str]| {
            wanted.is_empty() || wanted.iter().any(|w| names.contains(&w.as_str()))
        };
        match entry {
            Entry::Target(t)
                if matches(&[&t.name, &t.container.name])
                    || wanted
                        .iter()
                        .any(|w| w.len() >= 4 && t.container.id.starts_with(w.as_str())) =>
            {
                selected.push(t)
            }
            Entry::Skipped(skip) if matches(&[&skip.container]) => {
                let explicit = !wanted.is_empty();
                if skip.is_error || explicit {
                    failed = true;
                    tracing::error!(container = %skip.container, "not backed up: {}", skip.reason);
                } else {
                    tracing::info!(container = %skip.container, "not backed up: {}", skip.reason);
                }
            }
            _ => {}
        }
    }
    for w in &wanted {
        let known = entries.iter().any(|e| match e {
            Entry::Target(t) => {
                &t.name == w
                    || &t.container.name == w
                    || (w.len() >= 4 && t.container.id.starts_with(w.as_str()))
            }
            Entry::Skipped(s) => &s.container == w,
        });
        if !known {
            failed = true;
            tracing::error!(
                "no labelled container or target named {w:?}; `stowage plan` lists them"
            );
        }
    }
    if selected.is_empty() && wanted.is_empty() {
        tracing::warn!(
            "no labelled containers to back up: add the label stowage.enable=true to a database container"
        );
    }
    let opts = options(&s);
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(s.config.daemon.max_concurrent));
    let runs = selected.iter().map(|t| {
        let (docker, opts, permits) = (&s.docker, &opts, permits.clone());
        async move {
            let _permit = permits.acquire().await.expect("never closed");
            backup::backup_target(docker, t, opts).await
        }
    });
    for run in futures_util::future::join_all(runs).await {
        for r in run.backups {
            match r {
                Ok(o) => println!("{}", o.artifact.display()),
                Err(_) => failed = true, // already logged with full context
            }
        }
        // Failed uploads are logged with the storage and key, and retried next time.
        failed |= run.replication.is_some_and(|r| !r.failures.is_empty());
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn cmd_restore(
    config_path: Option<PathBuf>,
    artifact: &std::path::Path,
    to: &str,
    database: Option<&str>,
    identity: Vec<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let s = setup(config_path).await?;
    let mut files = s.config.encryption.identity_files.clone();
    files.extend(identity);
    let identities = Identities::load(&files, s.config.encryption.passphrase.as_ref())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // `STORAGE:TARGET/FILE` names a remote copy: fetch it (and its manifest) first.
    let mut fetched = None;
    let artifact = match remote_artifact(&s.storages, artifact) {
        Some((remote, target, file)) => {
            let dir = s
                .config
                .backup_dir
                .join(format!(".restore-{}", std::process::id()));
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            tracing::info!(storage = %remote.name, target, file, "downloading the artifact to restore");
            let downloaded = remote.download(target, file, &dir).await;
            fetched = Some(dir);
            match downloaded {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!("{e}");
                    let _ = std::fs::remove_dir_all(fetched.as_ref().expect("set above"));
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        None => artifact.to_path_buf(),
    };
    let artifact = artifact.as_path();
    let req = restore::Request {
        artifact,
        container: to,
        database,
        helper_image: s.config.helper_image.as_deref(),
        identities: Arc::new(identities),
    };
    let result = restore::restore(&s.docker, &s.registry, &req).await;
    if let Some(dir) = fetched {
        let _ = std::fs::remove_dir_all(dir);
    }
    match result {
        Ok(r) => {
            println!(
                "restored {} ({}) into database {} of container {to} in {:.1}s",
                artifact.display(),
                human_bytes(r.raw_bytes),
                r.database,
                r.elapsed.as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            tracing::error!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `STORAGE:TARGET/FILE` (as `stowage list` prints remote copies), when STORAGE is configured
/// and no local file has that name.
fn remote_artifact<'a>(
    storages: &'a Storages,
    arg: &'a std::path::Path,
) -> Option<(&'a storage::Remote, &'a str, &'a str)> {
    if arg.exists() {
        return None;
    }
    let text = arg.to_str()?;
    let (name, rest) = text.split_once(':')?;
    let (target, file) = rest.split_once('/')?;
    let remote = storages.get(name)?;
    let safe = |s: &str| !s.is_empty() && !s.contains('/') && !s.starts_with('.');
    (safe(target) && safe(file)).then_some((remote.as_ref(), target, file))
}

fn cmd_engines(config_path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path.as_deref())?;
    let registry = Registry::with_dir(config.engines_dir.as_deref())?;
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
    Ok(ExitCode::SUCCESS)
}

/// Bytes in KiB/MiB/GiB, one decimal.
fn human_bytes(n: u64) -> String {
    let mut v = n as f64;
    for unit in ["B", "KiB", "MiB", "GiB"] {
        if v < 1024.0 || unit == "GiB" {
            return if unit == "B" {
                format!("{n} B")
            } else {
                format!("{v:.1} {unit}")
            };
        }
        v /= 1024.0;
    }
    unreachable!()
}

async fn cmd_run(config_path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let s = setup(config_path).await?;
    let _lock = lock_backup_dir(&s.config)?;
    let opts = options(&s);
    daemon::run(s.docker, s.config, s.registry, opts, shutdown_signal())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}
