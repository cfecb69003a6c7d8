//! The commands across hosts that share a storage: `list --all-hosts` and
//! `restore --all --from-host` (disaster recovery of a dead host onto this one).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;

use super::print::human_bytes;
use super::{Loaded, exit};
use crate::docker;
use crate::remote::{copies, hosts};

pub(super) async fn cmd_list_hosts(l: &Loaded, targets: &[String]) -> anyhow::Result<ExitCode> {
    let storages = &l.checked.storages;
    if storages.all().is_empty() {
        anyhow::bail!("no storage is configured ([storage.NAME]); --all-hosts lists storages");
    }
    println!(
        "{:<16} {:<20} {:<17} {:<9} {:<16} {:>10}  FILE",
        "HOST", "TARGET", "TIME (UTC)", "ENGINE", "DATABASE", "SIZE"
    );
    let (mut count, mut failed) = (0, false);
    for storage in storages.all() {
        let names = match hosts::hosts(storage).await {
            Ok(h) => h,
            Err(e) => {
                tracing::error!("{}", crate::error_text::one_line(&e));
                failed = true;
                continue;
            }
        };
        for host in names {
            let scoped = Arc::new(storage.scoped(&host));
            let (held, errors) = copies::by_file(std::slice::from_ref(&scoped), targets).await;
            for e in &errors {
                tracing::error!("{}", crate::error_text::one_line(e));
            }
            failed |= !errors.is_empty();
            for (target, file) in held.keys() {
                let m = scoped.manifest(target, file).await.ok();
                let (time, engine, database, size) = super::print::manifest_columns(m.as_ref());
                println!(
                    "{host:<16} {target:<20} {time:<17} {engine:<9} {database:<16} {size:>10}  {}:{host}/{target}/{file}",
                    storage.name
                );
                count += 1;
            }
        }
    }
    println!("{count} artifact(s) in {} storage(s)", storages.all().len());
    Ok(exit(failed))
}

/// Reads a `--map` file: `TARGET = "CONTAINER"` lines (TOML).
fn read_map(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the map file {}", path.display()))?;
    toml::from_str(&text).with_context(|| {
        format!(
            "{} is not a map of TARGET = \"CONTAINER\" lines",
            path.display()
        )
    })
}

/// Prints how one restore of `restore --all` went (`line` names target, database and
/// container); whether it succeeded.
fn report(
    line: &str,
    file: &str,
    manifest: &crate::local::artifact::Manifest,
    result: anyhow::Result<crate::restore::Restored>,
) -> bool {
    match result {
        Ok(r) => {
            println!(
                "{line}: {file} (made {}): {} in {:.1}s",
                manifest.started_at.format("%Y-%m-%d %H:%M UTC"),
                human_bytes(r.raw_bytes),
                r.elapsed.as_secs_f64()
            );
            true
        }
        Err(e) => {
            println!(
                "{line}: FAILED: {}",
                crate::error_text::one_line(e.as_ref())
            );
            false
        }
    }
}

/// The engine of volume and path archives (`engines/files.toml`).
const FILES_ENGINE: &str = "files";

pub(super) async fn cmd_restore_all(
    l: &Loaded,
    host: &str,
    storage: &str,
    map: Option<&Path>,
    identity: Vec<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let Some(remote) = l.checked.storages.get(storage) else {
        anyhow::bail!("--storage {storage} is not a configured [storage.NAME]");
    };
    let map = match map {
        Some(p) => read_map(p)?,
        None => BTreeMap::new(),
    };
    let docker = docker::connect().await?;
    let _lock = super::restore::lock_for_restore(l, &docker).await;
    let identities = Arc::new(super::restore::identities(l, identity)?);
    let remote = remote.scoped(host);
    let targets = remote.targets().await?;
    if targets.is_empty() {
        anyhow::bail!(
            "storage {storage} holds nothing of host {host}; `stowage list --all-hosts` shows the hosts it holds"
        );
    }
    println!(
        "restoring {} target(s) of host {host} from storage {storage}",
        targets.len()
    );
    let (mut restored, mut failed, mut skipped) = (0, 0, 0);
    for target in &targets {
        let container = map.get(target).map_or(target.as_str(), String::as_str);
        let newest = match hosts::newest_per_database(&remote, target).await {
            Ok(n) if !n.is_empty() => n,
            Ok(_) => {
                println!("  {target}: no complete copy; skipped");
                failed += 1;
                continue;
            }
            Err(e) => {
                println!("  {target}: FAILED: {}", crate::error_text::one_line(&e));
                failed += 1;
                continue;
            }
        };
        for (database, (file, manifest)) in newest {
            if manifest.engine == FILES_ENGINE {
                // A volume's archive goes into a volume, which only the operator can name.
                skipped += 1;
                println!(
                    "  {target}: {file} is an archive of {database} (volumes and files): not restored into a container; restore it into a volume with `stowage restore {storage}:{host}/{target}/{file} --volume NAME`"
                );
                continue;
            }
            let r = super::restore::from_storage(
                l,
                &docker,
                &identities,
                &remote,
                target,
                &file,
                super::restore::RestoreTo::container(container),
            )
            .await;
            let line = format!("  {target}: {database} into container {container}");
            if report(&line, &file, &manifest, r) {
                restored += 1;
            } else {
                failed += 1;
            }
        }
    }
    println!(
        "{restored} restored, {failed} failed, {skipped} volume archive(s) left for `--volume`"
    );
    Ok(exit(failed > 0))
}
