//! The dump tool's stdout buffer. A tool that writes through C stdio gets a 4 KiB buffer on a
//! pipe, so a plain pg_dump makes one write(2) per 4 KiB, and each is a wake-up all along the
//! exec chain (the tool, containerd's shim, dockerd, stowage): measured, about a quarter of a
//! raw dump's time on 2 cores (BENCHMARKS.md). coreutils' `stdbuf -o N` sets a larger buffer
//! without changing a byte of what is written (stdout on a pipe is fully buffered either way;
//! only the size of the pieces changes).
//!
//! An engine asks for it with `stdout_buffer` in its `[dump]`. Whether the container (or the
//! helper, where commands run there) has a working `stdbuf` is asked once per session, by
//! running the version probe under it; where it does not (Alpine's busybox, distroless), the
//! tool runs exactly as the spec writes it.

use std::collections::BTreeMap;

use bollard::Docker;

use crate::docker::exec::{self, ExecRequest, last_lines};
use crate::engine::Invocation;
use crate::engine::site::Site;
use crate::plan::Target;

/// What the session's first exec learned.
pub(super) struct Probed {
    /// The first line of the dump tool's version output.
    pub version: Option<String>,
    /// Whether the tool can run under `stdbuf`.
    pub stdbuf: bool,
}

/// `argv` run under `stdbuf` with a stdout buffer of `size` bytes.
pub(super) fn under_stdbuf(argv: Vec<String>, size: usize) -> Vec<String> {
    [
        "stdbuf".to_string(),
        "-o".into(),
        size.to_string(),
        "--".into(),
    ]
    .into_iter()
    .chain(argv)
    .collect()
}

/// The invocation as it is run: under `stdbuf` when its spec asks for a buffer and the
/// session found `stdbuf` working.
pub(super) fn buffered(mut inv: Invocation, stdbuf: bool) -> Invocation {
    if let Some(size) = inv.dump.as_ref().and_then(|d| d.stdout_buffer)
        && stdbuf
    {
        inv.argv = under_stdbuf(std::mem::take(&mut inv.argv), size);
    }
    inv
}

/// Asks the dump tool's version, under `stdbuf` first when the engine wants a buffer: a
/// version read that way proves both that `stdbuf` is there and that the tool runs under it.
pub(super) async fn probe(
    docker: &Docker,
    target: &Target,
    site: &Site,
    values: &BTreeMap<String, String>,
) -> Probed {
    let engine = &target.engine;
    let size = engine
        .spec
        .dump
        .stdout_buffer
        .or_else(|| engine.spec.dump_all.as_ref()?.stdout_buffer);
    let version_argv = engine.version_invocation(values);
    if let Some(size) = size {
        let argv = version_argv.clone().unwrap_or_else(|| vec!["true".into()]);
        match run(docker, site, under_stdbuf(argv, size)).await {
            Ok(out) => {
                return Probed {
                    version: version_argv.and_then(|_| first_line(&out)),
                    stdbuf: true,
                };
            }
            Err(why) => {
                tracing::debug!(target = %target.name, "stdbuf does not run here ({why}): the dump tool writes through its default stdout buffer");
            }
        }
    }
    let version = match version_argv {
        Some(argv) => match run(docker, site, argv).await {
            Ok(out) => first_line(&out),
            Err(why) => {
                tracing::warn!(target = %target.name, "could not read the dump tool's version: {why}");
                None
            }
        },
        None => None,
    };
    Probed {
        version,
        stdbuf: false,
    }
}

/// Runs `argv` where commands run: its stdout (up to 4 KiB) if it exits 0, else why not.
async fn run(docker: &Docker, site: &Site, argv: Vec<String>) -> Result<Vec<u8>, String> {
    let req = ExecRequest {
        argv,
        ..Default::default()
    };
    match exec::capture(docker, &site.container_id, &req, 4096).await {
        Ok((out, status)) if status.success() => Ok(out),
        Ok((_, status)) => Err(last_lines(&status.stderr, 2)),
        Err(e) => Err(e.to_string()),
    }
}

fn first_line(out: &[u8]) -> Option<String> {
    String::from_utf8_lossy(out)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::spec::Dump;

    fn inv(stdout_buffer: Option<usize>) -> Invocation {
        let dump: Dump = toml::from_str(r#"argv = ["x"]"#).unwrap();
        Invocation {
            argv: vec!["pg_dump".into(), "--dbname=app".into()],
            env: Vec::new(),
            stdin: None,
            dump: Some(Dump {
                stdout_buffer,
                ..dump
            }),
        }
    }

    #[test]
    fn the_tool_runs_under_stdbuf_only_when_asked_for_and_found() {
        let wrapped = ["stdbuf", "-o", "65536", "--", "pg_dump", "--dbname=app"];
        assert_eq!(buffered(inv(Some(65536)), true).argv, wrapped);
        assert_eq!(
            buffered(inv(Some(65536)), false).argv,
            ["pg_dump", "--dbname=app"]
        );
        assert_eq!(buffered(inv(None), true).argv, ["pg_dump", "--dbname=app"]);
    }
}
