//! The command line: argument definitions, what each command prints, and exit codes.
//!
//! This is the binary's edge: every command first loads the configuration and checks every
//! section ([`Config::check`]), so a broken section is reported, with its key, before any work
//! (exit 2). Then it calls the library and turns results into output and exit codes (0 all
//! good, 1 a backup failed or a labelled container could not be planned, 2 usage or
//! configuration errors). Human-readable results go to stdout, logs to stderr. No backup
//! logic lives here: running targets is [`crate::job`]'s, the daemon is [`crate::daemon`].

mod artifacts;
mod drill;
mod hosts;
mod print;
mod restore;
mod targets;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Checked, Config};

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
        /// List every host's artifacts in the storages (hosts sharing a storage), not this
        /// backup directory's.
        #[arg(long)]
        all_hosts: bool,
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
    /// Restore an artifact into a running database container, or an archive of files into a
    /// volume. The artifact is checked against its manifest first; a mismatch is refused.
    Restore {
        /// The artifact: a file (its manifest beside it), or a stored copy
        /// `STORAGE:[HOST/]TARGET/FILE`, where FILE may be `latest`.
        #[arg(required_unless_present = "all")]
        artifact: Option<PathBuf>,
        /// Container name or ID to restore into; its credentials are found as for a backup.
        #[arg(long, value_name = "CONTAINER", required_unless_present_any = ["all", "volume"])]
        to: Option<String>,
        /// Restore an archive of files (stowage.volumes, stowage.paths) into this Docker
        /// volume instead; it is created if missing and must be empty unless --force.
        #[arg(long, value_name = "NAME", conflicts_with_all = ["to", "database", "all", "jobs"])]
        volume: Option<String>,
        /// With --volume: extract into a volume that already holds files.
        #[arg(long, requires = "volume")]
        force: bool,
        /// Restore every target of another host (--from-host, --storage): each database's
        /// newest copy into the container of the target's name here (or as --map says).
        #[arg(long, requires_all = ["from_host", "storage"], conflicts_with_all = ["artifact", "to", "database", "volume"])]
        all: bool,
        /// With --all: the host whose targets to restore.
        #[arg(long, value_name = "HOST", requires = "all")]
        from_host: Option<String>,
        /// With --all: the storage to restore from.
        #[arg(long, value_name = "NAME", requires = "all")]
        storage: Option<String>,
        /// With --all: a TOML file of `TARGET = "CONTAINER"` lines, for targets whose
        /// container has another name here.
        #[arg(long, value_name = "FILE", requires = "all")]
        map: Option<PathBuf>,
        /// Database to restore into (default: the one the artifact was dumped from).
        #[arg(long, value_name = "NAME")]
        database: Option<String>,
        /// Restore with N parallel jobs, where the engine can (PostgreSQL's custom format,
        /// stowage.format=custom).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
        jobs: Option<u32>,
        /// age identity file for an encrypted artifact (repeatable; added to
        /// encryption.identity_files).
        #[arg(long, value_name = "FILE")]
        identity: Vec<PathBuf>,
    },
    /// Restore drills now: restore each target's newest artifact into a throwaway container
    /// and check its data (exit 1 if a drill failed). Of some targets, or all.
    Drill {
        /// Targets to drill; all when none is given.
        targets: Vec<String>,
    },
    /// Re-hash artifacts against their manifests (of some targets, or all).
    Verify {
        /// Target names; all when none is given.
        targets: Vec<String>,
    },
    /// List the engines: built-in and from `engines_dir`.
    Engines,
    /// Print the default configuration file; with --check, check the configuration in use
    /// (file and environment) and report every problem.
    Config {
        /// Check the configuration in use instead of printing the default.
        #[arg(long)]
        check: bool,
    },
    /// Send a test alert to every configured webhook and to email now, and say how each
    /// delivery went (exit 1 if any failed). Checks the `[alerts]` configuration.
    AlertTest,
}

/// A loaded, checked configuration: what every command starts from.
pub(crate) struct Loaded {
    config: Config,
    checked: Checked,
}

/// Loads the configuration and checks every section.
fn load(path: Option<PathBuf>) -> anyhow::Result<Loaded> {
    let config = Config::load(path.as_deref())?;
    let checked = config.check()?;
    Ok(Loaded { config, checked })
}

/// Exit 1 when `failed`, else 0.
fn exit(failed: bool) -> ExitCode {
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        // The embedded default is the way out of a broken configuration: it needs none.
        Command::Config { check: false } => {
            print!("{}", config::DEFAULT_CONFIG);
            Ok(ExitCode::SUCCESS)
        }
        command => match load(cli.config) {
            Ok(loaded) => dispatch(command, loaded).await,
            Err(e) => Err(e),
        },
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {}", crate::error_text::one_line(e.as_ref()));
        ExitCode::from(2)
    })
}

async fn dispatch(command: Command, l: Loaded) -> anyhow::Result<ExitCode> {
    match command {
        Command::Config { .. } => {
            println!("configuration ok");
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan => targets::cmd_plan(&l).await,
        Command::Engines => Ok(print::engines(&l.checked.registry)),
        Command::List {
            targets,
            all_hosts: true,
        } => hosts::cmd_list_hosts(&l, &targets).await,
        Command::List { targets, .. } => artifacts::cmd_list(&l, &targets).await,
        Command::Prune { dry_run, targets } => artifacts::cmd_prune(&l, dry_run, &targets).await,
        Command::Upload { targets } => artifacts::cmd_upload(&l, &targets).await,
        Command::Restore {
            all: true,
            from_host: Some(host),
            storage: Some(storage),
            map,
            identity,
            ..
        } => hosts::cmd_restore_all(&l, &host, &storage, map.as_deref(), identity).await,
        Command::Restore {
            artifact: Some(artifact),
            to: Some(to),
            database,
            identity,
            jobs,
            ..
        } => {
            let into = crate::restore::Destination::Container(&to);
            let into = restore::RestoreTo {
                to: into,
                database: database.as_deref(),
                jobs,
            };
            restore::cmd_restore(&l, &artifact, into, identity).await
        }
        Command::Restore {
            artifact: Some(artifact),
            volume: Some(name),
            force,
            identity,
            ..
        } => {
            let into = restore::RestoreTo {
                to: crate::restore::Destination::Volume { name: &name, force },
                database: None,
                jobs: None,
            };
            restore::cmd_restore(&l, &artifact, into, identity).await
        }
        Command::Restore { .. } => anyhow::bail!(
            "restore needs an ARTIFACT and --to CONTAINER (or --volume NAME), or --all --from-host HOST --storage NAME"
        ),
        Command::Verify { targets } => artifacts::cmd_verify(&l, &targets).await,
        Command::Drill { targets } => drill::cmd_drill(&l, &targets).await,
        Command::Backup { targets } => targets::cmd_backup(&l, &targets).await,
        Command::Run => targets::cmd_run(&l).await,
        Command::AlertTest => targets::cmd_alert_test(&l).await,
    }
}

/// The storages, scoped to this host (config `host`, else the engine's name, for which this
/// connects to Docker when a storage is configured).
async fn storages(l: &Loaded) -> anyhow::Result<std::sync::Arc<crate::remote::config::Storages>> {
    if l.checked.storages.all().is_empty() {
        return Ok(l.checked.storages.clone());
    }
    let host = match &l.config.host {
        Some(h) => h.clone(),
        None => crate::app::host(&l.config, &crate::docker::connect().await?).await?,
    };
    Ok(std::sync::Arc::new(l.checked.storages.scoped(&host)))
}

/// Locks the backup directory for this process; removes a crash's temp files if it may (each
/// removal is logged by `local::artifact`).
fn lock_backup_dir(config: &Config) -> anyhow::Result<crate::local::cleanup::DirLock> {
    use anyhow::Context as _;
    let (lock, _removed) = crate::local::cleanup::open_backup_dir(&config.backup_dir)
        .with_context(|| {
            format!(
                "cannot use backup directory {}; check that it exists or can be created, and is writable",
                config.backup_dir.display()
            )
        })?;
    Ok(lock)
}

/// Locks the backup directory as [`lock_backup_dir`] does and, when no other stowage process
/// uses it, first starts the containers an earlier process stopped for a backup and could not
/// start again (it was killed; see [`crate::backup::stop`]).
async fn lock_and_recover(
    config: &Config,
    docker: &bollard::Docker,
) -> anyhow::Result<crate::local::cleanup::DirLock> {
    use crate::local::cleanup::{Opened, open};
    let opened = open(&config.backup_dir).ok();
    match opened {
        Some(Opened::Alone(lock, _)) => {
            crate::backup::stop::recover(docker, &config.backup_dir).await;
            Ok(lock.share()?)
        }
        Some(Opened::Shared(lock)) => Ok(lock),
        None => lock_backup_dir(config),
    }
}

/// Delivers `event` through every channel now (a command ends right after), logging failures.
async fn deliver(notifier: &crate::daemon::alerts::Notifier, event: &crate::daemon::alerts::Event) {
    for (channel, result) in notifier.deliver_all(event).await {
        if let Err(e) = result {
            tracing::error!(
                channel,
                "alert not delivered: {}",
                crate::error_text::one_line(&e)
            );
        }
    }
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
