//! The two ends of every restore: the artifact checked against its manifest (and its
//! encryption header opened) before anything is sent, and the decompressed stream fed into
//! the restore command's stdin with its output drained, its sha256 checked at the end.

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use super::{Cause, PROGRESS_EVERY, Request};
use crate::backup::Failure;
use crate::docker::exec::ExecStream;
use crate::local::artifact::Manifest;
use crate::local::catalog::{self, VerifyError};
use crate::pipeline::read::{self, Decryption, ReadSummary};
use crate::pipeline::rows::RowFormat;
use crate::secret::Secret;

/// Verifies the artifact against its manifest and, if it is encrypted, opens its header with
/// the keys given, so a wrong key fails before anything reaches the database.
pub(crate) async fn check_artifact(
    req: &Request<'_>,
) -> Result<(Manifest, Option<Decryption>), (&'static str, Cause)> {
    let artifact = req.artifact;
    let path = artifact.to_path_buf();
    let verified = req.verified;
    let manifest = tokio::task::spawn_blocking(move || {
        if verified {
            crate::local::artifact::read_manifest(&crate::local::artifact::manifest_path(&path))
                .map_err(|e| VerifyError::NoManifest(e.to_string()))
        } else {
            catalog::verify_path(&path)
        }
    })
    .await
    .map_err(|e| ("checking the artifact", Cause::Io(io::Error::other(e))))?
    .map_err(|e| ("checking the artifact", Cause::Verify(e)))?;
    let decryption = if manifest.stored.encrypted {
        if req.identities.is_empty() {
            return Err((
                "decrypting",
                Cause::Refused("the artifact is encrypted: give its identity file with --identity FILE (or set encryption.identity_files, or encryption.passphrase for a passphrase)".into()),
            ));
        }
        // Open the header now, so a wrong key fails before anything reaches the database.
        let ids = req.identities.clone();
        let info = manifest.stored.encryption.clone();
        let path = artifact.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let file = File::open(&path).map_err(Cause::Io)?;
            ids.open(io::BufReader::new(file), info.as_ref())
                .map(|_| ())
                .map_err(Cause::Decrypt)
        })
        .await
        .map_err(|e| ("decrypting", Cause::Io(io::Error::other(e))))?
        .map_err(|c| ("decrypting", c))?;
        Some((req.identities.clone(), manifest.stored.encryption.clone()))
    } else {
        None
    };
    Ok((manifest, decryption))
}

/// Streams the artifact (after the `first` line, if any) into the running restore command;
/// returns the raw bytes sent and the time taken.
pub(crate) async fn feed(
    mut stream: ExecStream,
    first: Option<Secret>,
    artifact: &Path,
    (decryption, rows): (Option<Decryption>, Option<RowFormat>),
    manifest: &Manifest,
    tool: &str,
) -> Result<(ReadSummary, Duration), (&'static str, Cause)> {
    let started = Instant::now();
    let mut stdin = stream.take_stdin().expect("requested a stdin");
    let (mut rx, reader) = read::spawn(artifact, decryption, rows);
    let feed = async {
        if let Some(line) = &first {
            stdin.write_all(line.expose().as_bytes()).await?;
        }
        let mut sent: u64 = 0;
        let mut last = Instant::now();
        while let Some(block) = rx.recv().await {
            stdin.write_all(&block).await?;
            sent += block.len() as u64;
            if last.elapsed() >= PROGRESS_EVERY {
                last = Instant::now();
                tracing::info!(
                    raw_bytes = sent,
                    total = manifest.raw.bytes,
                    "restore in progress"
                );
            }
        }
        stdin.shutdown().await?;
        Ok::<u64, io::Error>(sent)
    };
    let (fed, status) = tokio::join!(feed, stream.finish());
    let status = status.map_err(|e| ("restoring", Cause::Failure(Failure::Exec(e))))?;
    if !status.success() {
        let failure = Failure::Exit {
            tool: tool.to_string(),
            status,
            container_running: true,
        };
        return Err((
            "restoring",
            Cause::Refused(format!(
                "{failure}. Nothing was committed if the restore command is transactional (PostgreSQL's is)"
            )),
        ));
    }
    let sent = fed.map_err(|e| {
        let e = io::Error::new(e.kind(), format!("writing to the restore command: {e}"));
        ("restoring", Cause::Io(e))
    })?;
    let read = reader
        .await
        .map_err(|e| ("restoring", Cause::Io(io::Error::other(e))))?
        .map_err(|e| ("reading the artifact", Cause::Io(e)))?;
    let (raw_bytes, raw_sha256) = (read.bytes, &read.sha256);
    if raw_bytes != sent || *raw_sha256 != manifest.raw.sha256 {
        return Err((
            "checking what was restored",
            Cause::Refused(format!(
                "the decompressed dump ({raw_bytes} bytes, sha256 {raw_sha256}) does not match the manifest ({} bytes, sha256 {}); check the database",
                manifest.raw.bytes, manifest.raw.sha256
            )),
        ));
    }
    Ok((read, started.elapsed()))
}
