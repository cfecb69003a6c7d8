//! Whether a finished dump is complete, from what was seen of it: the tool's exit status and
//! stderr, and the end of its stream. A stream that ended early must never be kept as a
//! backup, so every check the engine's spec asks for must pass (README, "Artifacts").

use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::InspectContainerOptions;

use super::{Failure, Step};
use crate::docker::exec::{self, last_lines};
use crate::engine::spec::Dump;
use crate::engine::trailer::Checker;
use crate::plan::Target;

/// How long a failed dump goes on asking whether its container is still up. Docker can
/// report the dump tool's exit before the container's own: a `docker kill` ends both, and
/// the tool, seeing its connection close, may exit first with an ordinary error code.
const SETTLE: Duration = Duration::from_secs(2);
/// How often it asks within [`SETTLE`].
const SETTLE_POLL: Duration = Duration::from_millis(100);

/// Decides whether the dump tool's run was a success: exit code 0 (or one the spec calls a
/// warning, logged), no error pattern on stderr. `started` is the container's start time
/// (Docker's `StartedAt`) when the session opened: a different one means it was restarted.
pub(super) async fn judge_exit(
    docker: &Docker,
    target: &Target,
    status: exec::ExitStatus,
    dump: &Dump,
    tool: String,
    database: &str,
    started: Option<&str>,
) -> Result<(), (Step, Failure)> {
    let warned = status.code.filter(|c| dump.warn_exit_codes.contains(c));
    if let Some(code) = warned {
        tracing::warn!(target = %target.name, database, "{tool} exited with {code}, a warning: the output is complete, but what it warns about may be inconsistent in the artifact. {}", last_lines(&status.stderr, 5));
    }
    if !status.success() && warned.is_none() {
        // A container stopped for the backup (stowage.stop) is meant to be down.
        let container_running =
            target.stop.is_some() || stayed_up(docker, &target.container.id, started).await;
        return Err((
            Step::Dump,
            Failure::Exit {
                tool,
                status,
                container_running,
            },
        ));
    }
    if let Some(line) = status
        .stderr
        .lines()
        .find(|l| dump.error_patterns.iter().any(|p| l.contains(p.as_str())))
    {
        return Err((Step::Check, Failure::StderrError(line.to_string())));
    }
    Ok(())
}

/// Whether the container stayed up through the dump: running, and started when `started`
/// says (the start time seen when the session opened). Only a failed dump asks, so the
/// settling time is paid on failures alone: while the answer is "up", it is asked again for up
/// to [`SETTLE`], so a container that was being stopped as the tool failed is reported as
/// stopped.
async fn stayed_up(docker: &Docker, id: &str, started: Option<&str>) -> bool {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let state = docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .ok()
            .and_then(|c| c.state);
        let up = state.is_some_and(|s| {
            s.running == Some(true) && !restarted(started, s.started_at.as_deref())
        });
        if !up {
            return false;
        }
        if tokio::time::Instant::now() >= deadline {
            return true;
        }
        tokio::time::sleep(SETTLE_POLL).await;
    }
}

/// Whether the container's start time changed from `before` to `now`; unknown is unchanged.
fn restarted(before: Option<&str>, now: Option<&str>) -> bool {
    matches!((before, now), (Some(b), Some(n)) if b != n)
}

/// Decides whether the stream is whole: the completeness marker near its end, the format's
/// binary end. `Some` is why not (at the check step).
pub(super) fn judge_end(
    dump: &Dump,
    tail: &exec::TailWindow,
    checker: Option<Checker>,
) -> Option<Failure> {
    if let Some(marker) = &dump.complete_marker
        && !tail.contains(marker.as_bytes())
    {
        return Some(Failure::Incomplete(marker.clone()));
    }
    if let (Some(trailer), Some(checker)) = (dump.trailer, checker)
        && let Err(why) = checker.finish()
    {
        return Some(Failure::Truncated(trailer.name(), why));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_start_time_is_a_restart_and_an_unknown_one_is_not() {
        let at_open = Some("2026-12-06T16:30:01.123456789Z");
        assert!(!restarted(at_open, at_open));
        assert!(restarted(at_open, Some("2026-12-06T16:32:14.529162123Z")));
        assert!(!restarted(None, Some("2026-12-06T16:32:14.529162123Z")));
        assert!(!restarted(at_open, None));
    }
}
