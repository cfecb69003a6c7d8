//! Whether a finished dump is complete, from what was seen of it: the tool's exit status and
//! stderr, and the end of its stream. A stream that ended early must never be kept as a
//! backup, so every check the engine's spec asks for must pass (README, "Artifacts").

use bollard::Docker;
use bollard::query_parameters::InspectContainerOptions;

use super::{Failure, Step};
use crate::docker::exec::{self, last_lines};
use crate::engine::spec::Dump;
use crate::engine::trailer::Checker;
use crate::plan::Target;

/// Decides whether the dump tool's run was a success: exit code 0 (or one the spec calls a
/// warning, logged), no error pattern on stderr.
pub(super) async fn judge_exit(
    docker: &Docker,
    target: &Target,
    status: exec::ExitStatus,
    dump: &Dump,
    tool: String,
    database: &str,
) -> Result<(), (Step, Failure)> {
    let warned = status.code.filter(|c| dump.warn_exit_codes.contains(c));
    if let Some(code) = warned {
        tracing::warn!(target = %target.name, database, "{tool} exited with {code}, a warning: the output is complete, but what it warns about may be inconsistent in the artifact. {}", last_lines(&status.stderr, 5));
    }
    if !status.success() && warned.is_none() {
        // A container stopped for the backup (stowage.stop) is meant to be down.
        let container_running = target.stop.is_some()
            || docker
                .inspect_container(&target.container.id, None::<InspectContainerOptions>)
                .await
                .ok()
                .and_then(|c| c.state?.running)
                .unwrap_or(false);
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
