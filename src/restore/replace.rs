//! Restores that replace a file the server reads at start (`[restore.replace]`; Redis's RDB).
//!
//! While the container runs: ask the server where the file is (the spec's `ask` command) and
//! refuse what cannot work (Redis with its append-only file on would load that instead). Then
//! stop the container, write the decompressed dump beside the file through a helper container
//! with its volumes (streamed, sha256-checked at the end), give it the owner of its directory,
//! rename it over the file, and start the container. The container is stopped through
//! [`crate::backup::stop`]: recorded in the backup directory first and started again on every
//! path, also by the next stowage if this one is killed while it is down. A file that is not on
//! a volume is refused, since a helper cannot reach it.

use std::collections::BTreeMap;
use std::time::Duration;

use bollard::Docker;

use super::{Cause, Request, feed};
use crate::backup::Failure;
use crate::backup::stop::stop_for_restore;
use crate::discover::ContainerInfo;
use crate::docker::exec::{self, ExecRequest, ExecStream, last_lines};
use crate::engine::Engine;
use crate::engine::site::Site;
use crate::local::artifact::Manifest;
use crate::pipeline::read::{Decryption, ReadSummary};

/// An error at a step of the restore.
type Failed = (&'static str, Cause);

/// Asks, stops, replaces, starts; returns what was fed and how long it took.
pub(super) async fn restore(
    docker: &Docker,
    engine: &Engine,
    req: &Request<'_>,
    (info, values): (&ContainerInfo, &BTreeMap<String, String>),
    (manifest, decryption): (&Manifest, Option<Decryption>),
) -> Result<(ReadSummary, Duration), Failed> {
    let asked = ask(docker, engine, info, values).await?;
    let path = engine
        .restore_path
        .as_ref()
        .expect("a replacing restore has a path")
        .render(&asked)
        .map_err(|v| {
            refused(format!(
                "the server did not say {{{}}}, which the restore's path needs",
                v.0
            ))
        })?;
    if !path.starts_with('/') || path.split('/').any(|p| p == "..") {
        return Err(refused(format!(
            "the server's file {path:?} is not a plain absolute path"
        )));
    }
    // The helper first: if it cannot start, nothing was stopped.
    let site = Site::with_volumes_of(docker, info, req.helper_image)
        .await
        .map_err(|e| {
            (
                "preparing the helper container",
                Cause::Failure(Failure::Site(e)),
            )
        })?;
    tracing::info!(container = %info.name, path, "stopping the container to replace its file");
    let stopped = match stop_for_restore(docker, req.record_dir, &info.id, &info.name).await {
        Ok(s) => s,
        Err(e) => {
            site.remove(docker).await;
            return Err(("stopping the container", Cause::Failure(Failure::Stop(e))));
        }
    };
    let result = replace(docker, &site, req, info, &path, (manifest, decryption)).await;
    site.remove(docker).await;
    // Started again on every path (also when this task is dropped: the guard's own task).
    let started = stopped.start().await.iter().all(|d| d.started);
    let read = result?;
    if !started {
        return Err(refused(format!(
            "the file was replaced but the container did not start again; start it with `docker start {}`",
            info.name
        )));
    }
    wait_loaded(docker, engine, info, values).await?;
    Ok(read)
}

/// How long a restarted server may take to load the restored file.
const LOAD_WAIT: Duration = Duration::from_secs(300);

/// Waits until the restarted server answers the `ask` command with its settings again (a
/// server loading its file answers with an error meanwhile: Redis's `LOADING`).
async fn wait_loaded(
    docker: &Docker,
    engine: &Engine,
    info: &ContainerInfo,
    values: &BTreeMap<String, String>,
) -> Result<(), Failed> {
    let (Some(_), Some(path)) = (&engine.restore_ask, &engine.restore_path) else {
        return Ok(());
    };
    let started = std::time::Instant::now();
    loop {
        if let Ok(asked) = ask(docker, engine, info, values).await
            && path.render(&asked).is_ok()
        {
            tracing::info!(container = %info.name, seconds = started.elapsed().as_secs_f64(), "the server runs with the restored file");
            return Ok(());
        }
        let running = docker
            .inspect_container(
                &info.id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .ok()
            .and_then(|c| c.state?.running);
        if running == Some(false) {
            return Err((
                "waiting for the server",
                Cause::Refused(format!(
                    "the container stopped after its restart with the restored file: the server did not accept it; check its log (docker logs {})",
                    info.name
                )),
            ));
        }
        if started.elapsed() >= LOAD_WAIT {
            return Err((
                "waiting for the server",
                Cause::Refused(format!(
                    "the server did not answer within {} s of its restart with the restored file; check its log (docker logs {})",
                    LOAD_WAIT.as_secs(),
                    info.name
                )),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn refused(reason: String) -> Failed {
    ("asking the server", Cause::Refused(reason))
}

/// Runs the spec's `ask` command and reads its name/value lines; checks `refuse`.
async fn ask(
    docker: &Docker,
    engine: &Engine,
    info: &ContainerInfo,
    values: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, Failed> {
    let mut asked = values.clone();
    let Some(compiled) = &engine.restore_ask else {
        return Ok(asked);
    };
    let inv = engine
        .command_invocation(compiled, values)
        .map_err(|e| ("asking the server", Cause::Failure(Failure::Render(e))))?;
    let tool = inv.argv[0].clone();
    let req = ExecRequest {
        argv: inv.argv,
        env: inv.env,
        ..Default::default()
    };
    let (out, status) = exec::capture(docker, &info.id, &req, 64 * 1024)
        .await
        .map_err(|e| ("asking the server", Cause::Failure(Failure::Exec(e))))?;
    if !status.success() {
        return Err(refused(format!(
            "{tool} failed ({}): check the credentials",
            last_lines(&status.stderr, 3)
        )));
    }
    let text = String::from_utf8_lossy(&out);
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        if let [name, value] = pair {
            asked.insert(name.trim().to_string(), value.trim().to_string());
        }
    }
    let refuse = engine
        .spec
        .restore
        .as_ref()
        .and_then(|r| r.replace.as_ref())
        .map(|r| &r.refuse);
    for (name, rule) in refuse.into_iter().flatten() {
        let (value, reason) = rule.split_once(':').unwrap_or((rule, ""));
        if asked.get(name).map(String::as_str) == Some(value.trim()) {
            return Err(refused(format!(
                "{name} is {}: {}",
                value.trim(),
                reason.trim()
            )));
        }
    }
    Ok(asked)
}

/// In a helper with the stopped container's volumes: writes the dump beside `path`, gives it
/// the directory's owner, renames it over `path`.
async fn replace(
    docker: &Docker,
    site: &Site,
    req: &Request<'_>,
    info: &ContainerInfo,
    path: &str,
    (manifest, decryption): (&Manifest, Option<Decryption>),
) -> Result<(ReadSummary, Duration), Failed> {
    const STEP: &str = "replacing the file";
    let dir = path
        .rsplit_once('/')
        .map_or("/", |(d, _)| if d.is_empty() { "/" } else { d });
    let temp = format!("{path}.stowage-restore");
    let run = |argv: Vec<String>| async move {
        let req = ExecRequest {
            argv,
            ..Default::default()
        };
        let (_, status) = exec::capture(docker, &site.container_id, &req, 4096)
            .await
            .map_err(|e| (STEP, Cause::Failure(Failure::Exec(e))))?;
        if status.success() {
            Ok(())
        } else {
            Err((STEP, Cause::Refused(last_lines(&status.stderr, 3))))
        }
    };
    let result = async {
        // The directory must be on one of the container's volumes, where the helper sees it.
        run(["test", "-d", dir].map(String::from).to_vec())
            .await
            .map_err(|_| {
                (STEP, Cause::Refused(format!(
                    "{dir} is not on a volume of container {} (a helper container cannot reach the container's own layer); copy the file in by hand",
                    info.name
                )))
            })?;
        let write = ExecRequest {
            argv: ["dd", &format!("of={temp}"), "bs=1M", "status=none"]
                .map(String::from)
                .to_vec(),
            stdin: true,
            ..Default::default()
        };
        let stream = ExecStream::start(docker, &site.container_id, &write)
            .await
            .map_err(|e| (STEP, Cause::Failure(Failure::Exec(e))))?;
        let fed = feed(stream, None, req.artifact, (decryption, None), manifest, "dd").await?;
        run(["chown", &format!("--reference={dir}"), "--", &temp].map(String::from).to_vec()).await?;
        // The old file's mode, if there is one (the server's umask made it).
        let _ = run(["chmod", &format!("--reference={path}"), "--", &temp].map(String::from).to_vec()).await;
        run(["mv", "-f", "--", &temp, path].map(String::from).to_vec()).await?;
        Ok(fed)
    }
    .await;
    if result.is_err() {
        let _ = run(["rm", "-f", "--", &temp].map(String::from).to_vec()).await;
    }
    result
}
