//! `stowage restore --volume NAME`: a files artifact (a tar archive of a volume or path) into a
//! Docker volume.
//!
//! The artifact is checked first, as for every restore. Then a helper container from
//! stowage's own image mounts the volume read-write (Docker creates it if it does not exist);
//! a volume that already holds anything is refused unless `--force`, so a restore never mixes
//! two trees by accident. The decompressed archive is streamed into the files engine's
//! restore command (GNU tar) in the helper, which runs as root so numeric owners, modes,
//! extended attributes and ACLs come back as they were. The helper is removed at the end.

use std::time::Duration;

use bollard::Docker;

use super::{Cause, Destination, Request, RestoreError, Restored, check_artifact, feed};
use crate::backup::Failure;
use crate::docker::exec::{self, ExecRequest, ExecStream};
use crate::engine::site::Site;
use crate::engine::{Invocation, Registry};
use crate::local::artifact::Manifest;
use crate::pipeline::read::{Decryption, ReadSummary};
use crate::plan::FILES_ENGINE;

/// Where the volume is mounted in the helper.
const MOUNT: &str = "/restore";

/// Restores `req.artifact` (a files artifact) into the volume `name`.
pub(super) async fn restore(
    docker: &Docker,
    registry: &Registry,
    req: &Request<'_>,
    name: &str,
    force: bool,
) -> Result<Restored, RestoreError> {
    let err = |step, cause: Cause| RestoreError {
        artifact: req.artifact.display().to_string(),
        into: Destination::Volume { name, force }.to_string(),
        step,
        cause,
    };
    let refused = |step, reason: String| err(step, Cause::Refused(reason));
    if name.is_empty() || name.starts_with('-') || name.contains('/') {
        return Err(refused(
            "choosing the volume",
            format!("{name:?} is not a volume name"),
        ));
    }
    let (manifest, decryption) = check_artifact(req).await.map_err(|(s, c)| err(s, c))?;
    if manifest.engine != FILES_ENGINE {
        return Err(refused(
            "choosing the engine",
            format!(
                "the artifact is a {} dump, not an archive of files: restore it into its database container with --to",
                manifest.engine
            ),
        ));
    }
    let engine = registry.get(FILES_ENGINE).ok_or_else(|| {
        refused(
            "choosing the engine",
            "this stowage has no files engine".into(),
        )
    })?;
    let values = [("database".to_string(), MOUNT.to_string())].into();
    let inv = engine
        .restore_invocation(&values)
        .ok_or_else(|| {
            refused(
                "preparing the restore",
                "the files engine has no restore command".into(),
            )
        })?
        .map_err(|e| err("preparing the restore", Cause::Failure(Failure::Render(e))))?;
    let site = Site::for_volume(docker, name, MOUNT, req.helper_image)
        .await
        .map_err(|e| {
            err(
                "preparing the helper container",
                Cause::Failure(Failure::Site(e)),
            )
        })?;
    let result = extract(
        docker,
        &site,
        req,
        (name, force),
        (inv, decryption),
        &manifest,
    )
    .await
    .map_err(|(step, cause)| err(step, cause));
    site.remove(docker).await;
    let (read, elapsed) = result?;
    tracing::info!(
        volume = name,
        raw_bytes = read.bytes,
        seconds = elapsed.as_secs_f64(),
        "restore complete"
    );
    Ok(Restored {
        database: manifest.database.clone(),
        raw_bytes: read.bytes,
        elapsed,
        rows: None,
    })
}

/// In the ready helper: refuses a volume that holds files (unless forced), then streams the
/// archive into tar.
async fn extract(
    docker: &Docker,
    site: &Site,
    req: &Request<'_>,
    (name, force): (&str, bool),
    (inv, decryption): (Invocation, Option<Decryption>),
    manifest: &Manifest,
) -> Result<(ReadSummary, Duration), (&'static str, Cause)> {
    const CHECK: &str = "checking the volume";
    if !force && let Some(first) = first_entry(docker, site).await.map_err(|c| (CHECK, c))? {
        return Err((
            CHECK,
            Cause::Refused(format!(
                "volume {name} is not empty (it holds {first}); restore into a new volume, or pass --force to extract over what it holds"
            )),
        ));
    }
    tracing::info!(artifact = %req.artifact.display(), volume = name, "restore started");
    let tool = inv.argv[0].clone();
    let exec_req = ExecRequest {
        argv: inv.argv,
        env: inv.env,
        stdin: true,
        user: None,
    };
    let stream = ExecStream::start(docker, &site.container_id, &exec_req)
        .await
        .map_err(|e| ("starting the restore", Cause::Failure(Failure::Exec(e))))?;
    feed(
        stream,
        inv.stdin,
        req.artifact,
        (decryption, None),
        manifest,
        &tool,
    )
    .await
}

/// The first entry of the mounted volume, if it holds any.
async fn first_entry(docker: &Docker, site: &Site) -> Result<Option<String>, Cause> {
    let req = ExecRequest {
        argv: [
            "find",
            MOUNT,
            "-mindepth",
            "1",
            "-maxdepth",
            "1",
            "-print",
            "-quit",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    };
    let (out, status) = exec::capture(docker, &site.container_id, &req, 4096)
        .await
        .map_err(|e| Cause::Failure(Failure::Exec(e)))?;
    if !status.success() {
        return Err(Cause::Refused(format!(
            "cannot list the volume: {}",
            exec::last_lines(&status.stderr, 3)
        )));
    }
    let first = String::from_utf8_lossy(&out).trim().to_string();
    Ok((!first.is_empty()).then(|| {
        first
            .strip_prefix(&format!("{MOUNT}/"))
            .unwrap_or(&first)
            .to_string()
    }))
}
