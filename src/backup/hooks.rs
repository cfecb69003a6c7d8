//! Pre and post hooks: a command exec'd inside the target's container before and after its
//! backup (`stowage.pre`, `stowage.post`), e.g. to put an app in maintenance mode or to make
//! Redis write its snapshot.
//!
//! A hook is an argv (the label holds a JSON array of strings), run without a shell, so a `;`
//! or `$` in an element is passed to the program as it is. Its output's last lines and its
//! duration go to the log. A failing or overrunning pre hook fails the backup with the end of
//! its stderr; the post hook then still runs, as after any failed dump, and learns the outcome
//! from `STOWAGE_OUTCOME` (`success` or `failure`); also when the daemon aborts the run at
//! `daemon.backup_timeout` ([`PostHook`]). A hook that overruns its timeout is abandoned
//! (Docker cannot kill an exec), and the error says so.

use std::time::{Duration, Instant};

use bollard::Docker;

use crate::docker::exec::{ExecError, ExecRequest, ExecStream, keep_tail, last_lines};
use crate::plan::Target;
use crate::secret::Secret;

/// How much of a hook's stdout is kept for the log.
const STDOUT_TAIL: usize = 4 * 1024;

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// `stowage.pre`.
    Pre,
    /// `stowage.post`.
    Post,
}

impl std::fmt::Display for Which {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pre => "pre",
            Self::Post => "post",
        })
    }
}

/// Why a hook failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The exec could not be started or its output broke off.
    #[error(
        "the {which} hook {program:?} could not run: {source}. Check that the container is running"
    )]
    Exec {
        /// Which hook.
        which: Which,
        /// Its program.
        program: String,
        /// Why.
        #[source]
        source: ExecError,
    },
    /// It exited non-zero (or with no known code).
    #[error(
        "the {which} hook {program:?} exited with {}{}. Fix the command in the label stowage.{which}, or try it with docker exec",
        .code.map_or("no exit status".to_string(), |c| format!("status {c}")),
        if .stderr.is_empty() { String::new() } else { format!(": {}", .stderr) }
    )]
    Exit {
        /// Which hook.
        which: Which,
        /// Its program.
        program: String,
        /// Its exit code.
        code: Option<i64>,
        /// The last lines of its stderr.
        stderr: String,
    },
    /// It ran longer than the timeout.
    #[error(
        "the {which} hook {program:?} did not finish within {} s and was abandoned (it may still be running in the container). Make it faster, or raise stowage.hook_timeout",
        .timeout.as_secs()
    )]
    Timeout {
        /// Which hook.
        which: Which,
        /// Its program.
        program: String,
        /// The limit.
        timeout: Duration,
    },
}

impl crate::error::Temporary for HookError {
    fn is_temporary(&self) -> bool {
        match self {
            Self::Exec { source, .. } => source.is_temporary(),
            Self::Exit { .. } => false,
            Self::Timeout { .. } => true,
        }
    }
}

/// Runs `target`'s hook `which`, if it has one, with `env`, within its timeout; logs its
/// output and duration.
async fn run(
    docker: &Docker,
    target: &Target,
    which: Which,
    env: Vec<(String, Secret)>,
) -> Result<(), HookError> {
    let argv = match which {
        Which::Pre => &target.hooks.pre,
        Which::Post => &target.hooks.post,
    };
    let Some(argv) = argv else {
        return Ok(());
    };
    let (name, timeout) = (&target.name, target.hooks.timeout);
    let program = argv.first().cloned().unwrap_or_default();
    let started = Instant::now();
    tracing::info!(target = %name, hook = %which, argv = ?argv, "running the {which} hook");
    let req = ExecRequest {
        argv: argv.clone(),
        env,
        ..Default::default()
    };
    let exec = async {
        let mut stream = ExecStream::start(docker, &target.container.id, &req).await?;
        let mut stdout = Vec::new();
        while let Some(chunk) = stream.next_stdout().await {
            keep_tail(&mut stdout, &chunk?, STDOUT_TAIL);
        }
        Ok::<_, ExecError>((stdout, stream.finish().await?))
    };
    let (stdout, status) = match tokio::time::timeout(timeout, exec).await {
        Err(_) => {
            return Err(HookError::Timeout {
                which,
                program,
                timeout,
            });
        }
        Ok(Err(source)) => {
            return Err(HookError::Exec {
                which,
                program,
                source,
            });
        }
        Ok(Ok(done)) => done,
    };
    let seconds = started.elapsed().as_secs_f64();
    let stdout = last_lines(&String::from_utf8_lossy(&stdout), 5);
    let stderr = last_lines(&status.stderr, 5);
    if !status.success() {
        return Err(HookError::Exit {
            which,
            program,
            code: status.code,
            stderr,
        });
    }
    tracing::info!(target = %name, hook = %which, seconds, stdout = %stdout, stderr = %stderr, "{which} hook done");
    Ok(())
}

/// Runs `target`'s pre hook, if it has one.
pub async fn before(docker: &Docker, target: &Target) -> Result<(), HookError> {
    run(docker, target, Which::Pre, env(&target.name, None)).await
}

/// Runs `target`'s post hook, if it has one, telling it the outcome. Its failure is logged;
/// the backups stand.
async fn after(docker: &Docker, target: &Target, ok: bool) {
    if let Err(e) = run(docker, target, Which::Post, env(&target.name, Some(ok))).await {
        tracing::error!(target = %target.name, container = %target.container.name, "{e}");
    }
}

/// The post hook a target run owes once its pre hook was tried. [`PostHook::run`] runs it with
/// the outcome. Dropped without that, because the run was aborted (`daemon.backup_timeout`),
/// it runs on a task of its own with the outcome `failure`, so the pre hook is still undone.
pub struct PostHook {
    docker: Docker,
    /// The target, while a post hook is owed.
    owed: Option<Target>,
}

impl PostHook {
    /// The post hook `target` owes from now on (nothing, if it has none).
    pub fn owed(docker: &Docker, target: &Target) -> Self {
        Self {
            docker: docker.clone(),
            owed: target.hooks.post.is_some().then(|| target.clone()),
        }
    }

    /// Runs it, telling it whether every backup succeeded.
    pub async fn run(mut self, ok: bool) {
        if let Some(target) = self.owed.take() {
            after(&self.docker, &target, ok).await;
        }
    }
}

impl Drop for PostHook {
    fn drop(&mut self) {
        let Some(target) = self.owed.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        tracing::warn!(target = %target.name, "the backup was aborted; running the post hook");
        let docker = self.docker.clone();
        runtime.spawn(async move { after(&docker, &target, false).await });
    }
}

/// The environment a hook gets: the target's name, and for the post hook the outcome.
fn env(target: &str, outcome: Option<bool>) -> Vec<(String, Secret)> {
    let mut out = vec![(
        "STOWAGE_TARGET".to_string(),
        Secret::new(target.to_string()),
    )];
    if let Some(ok) = outcome {
        let word = if ok { "success" } else { "failure" };
        out.push(("STOWAGE_OUTCOME".to_string(), Secret::new(word.to_string())));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_hook_and_say_what_to_do() {
        let e = HookError::Exit {
            which: Which::Pre,
            program: "occ".into(),
            code: Some(3),
            stderr: "maintenance mode is locked".into(),
        }
        .to_string();
        assert!(e.contains("pre hook \"occ\" exited with status 3: maintenance mode is locked"));
        assert!(e.contains("stowage.pre"));
        let t = HookError::Timeout {
            which: Which::Post,
            program: "sleep".into(),
            timeout: Duration::from_secs(2),
        }
        .to_string();
        assert!(t.contains("within 2 s") && t.contains("stowage.hook_timeout"));
    }

    #[test]
    fn the_post_hook_learns_the_outcome() {
        let keys = |env: Vec<(String, Secret)>| {
            env.into_iter()
                .map(|(k, v)| format!("{k}={}", v.expose()))
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(env("db", None)), ["STOWAGE_TARGET=db"]);
        assert_eq!(
            keys(env("db", Some(false))),
            ["STOWAGE_TARGET=db", "STOWAGE_OUTCOME=failure"]
        );
    }
}
