//! Why a backup failed: the step it was at, the failure with its cause, and the context
//! (container, target, engine, database) that lets a user act on it.

use std::fmt;

use crate::docker::exec::{ExecError, ExitStatus, last_lines};
use crate::engine::RenderError;
use crate::engine::resolve::ResolveError;
use crate::engine::site::SiteError;
use crate::error::{Temporary, io_is_temporary};
use crate::local::space::SpaceError;
use crate::plan::Target;

/// The step a backup was at when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Inspecting the container.
    Inspect,
    /// Checking the backup directory's free space.
    Space,
    /// Reading variables from files inside the container.
    Credentials,
    /// Preparing the helper container the commands run in.
    Helper,
    /// Running the pre hook (`stowage.pre`).
    PreHook,
    /// Stopping the containers (`stowage.stop`).
    Stop,
    /// Running the dump tool.
    Dump,
    /// Judging the finished dump.
    Check,
    /// Writing the artifact or manifest.
    Write,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Inspect => "checking the container",
            Self::Space => "checking free space",
            Self::Credentials => "reading credentials",
            Self::Helper => "preparing the helper container",
            Self::PreHook => "running the pre hook",
            Self::Stop => "stopping the containers",
            Self::Dump => "dumping",
            Self::Check => "checking the dump",
            Self::Write => "writing the artifact",
        })
    }
}

/// Why a backup failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The container is not running.
    #[error("the container is {0}, not running. Start it, or set stowage.enable=false")]
    NotRunning(String),
    /// A Docker request failed or the stream broke.
    #[error("{0}. Check that the container is running and the Docker engine is reachable")]
    Exec(#[source] ExecError),
    /// A variable's value could not be read inside the container.
    #[error("{0}")]
    Resolve(#[source] ResolveError),
    /// The command cannot be rendered from the values.
    #[error("{0}")]
    Render(#[source] RenderError),
    /// The helper container could not be made ready.
    #[error("{0}")]
    Site(#[source] SiteError),
    /// The dump tool exited non-zero (or with no known code).
    #[error("{}", exit_text(.tool, .status, *.container_running))]
    Exit {
        /// The program.
        tool: String,
        /// Its status.
        status: ExitStatus,
        /// Whether the container was still running afterwards.
        container_running: bool,
    },
    /// stderr holds an error line although the exit code was 0.
    #[error("the dump tool reported an error although it exited 0: {0}")]
    StderrError(String),
    /// The completeness marker is missing.
    #[error(
        "the dump ended without its completeness marker {0:?}: it was cut short. Nothing was kept; run the backup again"
    )]
    Incomplete(String),
    /// A binary format's end is missing (format, what is wrong).
    #[error("the {0} stream is incomplete: {1}. Nothing was kept; run the backup again")]
    Truncated(&'static str, String),
    /// Local file I/O.
    #[error("{0}. Check free space and permissions of the backup directory")]
    Io(#[source] std::io::Error),
    /// Not enough free space for the next artifact.
    #[error("{0}")]
    Space(#[source] SpaceError),
    /// The containers could not be stopped, so nothing was archived.
    #[error("{0}. Nothing was archived")]
    Stop(#[source] super::stop::StopError),
    /// The pre hook failed, so nothing was dumped.
    #[error("{0}. Nothing was dumped")]
    Hook(#[source] super::hooks::HookError),
}

/// What an exit status means, and what to do about it.
pub fn exit_text(tool: &str, status: &ExitStatus, container_running: bool) -> String {
    let mut out = match status.code {
        Some(code) => format!("{tool} exited with status {code}"),
        None => format!("{tool} ended without an exit status"),
    };
    let stderr = last_lines(&status.stderr, 5);
    if !stderr.is_empty() {
        out.push_str(&format!(": {stderr}"));
    }
    let signal = status
        .code
        .filter(|c| (129..160).contains(c))
        .map(|c| c - 128);
    if !container_running {
        out.push_str(". The container stopped during the dump (or was restarted); check that it is running, then run the backup again");
    } else if let Some(sig) = signal {
        out.push_str(&format!(
            ". {tool} was killed by signal {sig}: the container was stopped or restarted, or ran out of memory, during the dump; run the backup again"
        ));
    } else {
        out.push_str(
            ". Check the database name and credentials (`stowage plan` shows where they come from)",
        );
    }
    out
}

impl Temporary for Failure {
    fn is_temporary(&self) -> bool {
        match self {
            Self::Exec(e) => e.is_temporary(),
            Self::Resolve(e) => e.is_temporary(),
            Self::Site(e) => e.is_temporary(),
            Self::Io(e) => io_is_temporary(e),
            // A killed tool or a cut stream: the container restarted or ran out of memory.
            Self::Exit {
                status,
                container_running,
                ..
            } => !container_running || status.code.is_none_or(|c| (129..160).contains(&c)),
            Self::Incomplete(_) | Self::Truncated(..) => true,
            Self::Hook(e) => e.is_temporary(),
            Self::Stop(e) => e.is_temporary(),
            Self::NotRunning(_) | Self::Render(_) | Self::StderrError(_) | Self::Space(_) => false,
        }
    }
}

/// A failed backup, with everything needed to act on it.
#[derive(Debug, thiserror::Error)]
#[error(
    "backup of container {container} (target {target}, engine {engine}, database {database}) failed while {step}: {failure}"
)]
pub struct BackupError {
    /// Container name.
    pub container: String,
    /// Target name.
    pub target: String,
    /// Engine name.
    pub engine: String,
    /// Database (or `all`).
    pub database: String,
    /// Where it failed.
    pub step: Step,
    /// Why.
    #[source]
    pub failure: Failure,
}

impl Temporary for BackupError {
    fn is_temporary(&self) -> bool {
        self.failure.is_temporary()
    }
}

impl BackupError {
    /// The failure's class, for metrics and alerts (one of the daemon's metric reasons).
    pub fn reason_class(&self) -> &'static str {
        match (&self.failure, self.step) {
            (Failure::NotRunning(_), _) => "not_running",
            (Failure::Hook(_), _) => "hook",
            (Failure::Stop(_), _) => "stop",
            (Failure::Space(_), _) => "disk_space",
            (Failure::Io(_), _) | (_, Step::Write) => "write",
            (Failure::Exec(_), Step::Inspect | Step::Dump | Step::Check) => "docker",
            (_, Step::Credentials) => "credentials",
            (_, Step::Helper) => "helper",
            (Failure::Exit { .. }, _) => "dump_failed",
            (Failure::StderrError(_), _) => "dump_error",
            (Failure::Incomplete(_) | Failure::Truncated(..), _) => "incomplete",
            _ => "dump_failed",
        }
    }
}

/// The databases a target's run covers, as errors name them.
pub(super) fn databases_label(target: &Target) -> String {
    target.databases_label()
}

/// A failure of `target` at `step`, with its context.
pub(super) fn target_error(
    target: &Target,
    database: &str,
    step: Step,
    failure: Failure,
) -> BackupError {
    BackupError {
        container: target.container.name.clone(),
        target: target.name.clone(),
        engine: target.engine.name().to_string(),
        database: database.to_string(),
        step,
        failure,
    }
}

/// The failed pre hook of `target`, as the failure of its backup.
pub fn pre_hook_failed(target: &Target, e: super::hooks::HookError) -> BackupError {
    target_failed(target, Step::PreHook, Failure::Hook(e))
}

/// The error of a target whose containers could not be stopped: no dump was started.
pub fn stop_failed(target: &Target, e: super::stop::StopError) -> BackupError {
    target_failed(target, Step::Stop, Failure::Stop(e))
}

/// An error of the whole target (every database it covers).
fn target_failed(target: &Target, step: Step, failure: Failure) -> BackupError {
    target_error(target, &databases_label(target), step, failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_failure_says_what_to_do() {
        let f = Failure::Exit {
            tool: "pg_dump".into(),
            status: ExitStatus {
                code: Some(1),
                stderr: "pg_dump: error: database \"x\" does not exist\n".into(),
            },
            container_running: true,
        };
        assert!(!f.is_temporary(), "a missing database stays missing");
        let e = BackupError {
            container: "db".into(),
            target: "db".into(),
            engine: "postgres".into(),
            database: "x".into(),
            step: Step::Dump,
            failure: f,
        }
        .to_string();
        assert!(
            e.contains("container db")
                && e.contains("while dumping")
                && e.contains("status 1")
                && e.contains("does not exist"),
            "{e}"
        );
    }
}
