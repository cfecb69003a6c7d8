//! Restores whose command reads a file (`[restore] from_file`): pg_restore's `--jobs` needs a
//! seekable archive, which a pipe is not.
//!
//! The decompressed artifact is written to a temp path in the container with `dd` (streamed,
//! its sha256 checked against the manifest at the end, as for every restore), the restore
//! command runs on it, and the file is removed on every path. The container needs the raw
//! dump's size free where the file goes (`/tmp`).

use std::path::Path;
use std::time::{Duration, Instant};

use bollard::Docker;

use super::{Cause, feed};
use crate::backup::Failure;
use crate::docker::exec::{self, ExecRequest, ExecStream};
use crate::engine::site::Site;
use crate::local::artifact::Manifest;
use crate::pipeline::read::{Decryption, ReadSummary};

/// Writes the artifact to `path` in the site's container, runs `command` (which reads it),
/// removes the file.
pub(super) async fn restore(
    docker: &Docker,
    site: &Site,
    command: ExecRequest,
    path: &str,
    (artifact, decryption): (&Path, Option<Decryption>),
    manifest: &Manifest,
) -> Result<(ReadSummary, Duration), (&'static str, Cause)> {
    let started = Instant::now();
    let result = async {
        let write = ExecRequest {
            argv: ["dd", &format!("of={path}"), "bs=1M", "status=none"]
                .map(String::from)
                .to_vec(),
            stdin: true,
            user: command.user.clone(),
            ..Default::default()
        };
        let stream = ExecStream::start(docker, &site.container_id, &write)
            .await
            .map_err(|e| ("writing the dump into the container", Cause::Failure(Failure::Exec(e))))?;
        let (read, _) = feed(stream, None, artifact, (decryption, None), manifest, "dd")
            .await
            .map_err(|(_, cause)| ("writing the dump into the container", cause))?;
        tracing::info!(path, raw_bytes = read.bytes, "dump written into the container; restoring from it");
        let tool = command.argv[0].clone();
        let run = ExecRequest {
            stdin: false,
            ..command
        };
        let mut stream = ExecStream::start(docker, &site.container_id, &run)
            .await
            .map_err(|e| ("starting the restore", Cause::Failure(Failure::Exec(e))))?;
        while let Some(chunk) = stream.next_stdout().await {
            chunk.map_err(|e| ("restoring", Cause::Failure(Failure::Exec(e))))?;
        }
        let status = stream
            .finish()
            .await
            .map_err(|e| ("restoring", Cause::Failure(Failure::Exec(e))))?;
        if !status.success() {
            let failure = Failure::Exit {
                tool,
                status,
                container_running: true,
            };
            return Err((
                "restoring",
                Cause::Refused(format!(
                    "{failure}. What was restored before the error stays: restore into an empty database"
                )),
            ));
        }
        Ok(read)
    }
    .await;
    if let Err(why) = exec::remove_file(docker, &site.container_id, path, None).await {
        tracing::warn!(
            path,
            "could not remove the restore's temp file in the container: {why}"
        );
    }
    result.map(|read| (read, started.elapsed()))
}
