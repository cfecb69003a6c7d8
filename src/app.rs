//! A checked configuration turned into the live parts a command uses: the Docker connection
//! and the [`job::Context`] every run shares, and the daemon's settings. This is wiring only;
//! the decisions live in the modules it wires.

use std::sync::Arc;

use crate::backup;
use crate::config::{Checked, Config};
use crate::daemon;
use crate::docker::{self, ConnectError};
use crate::drill;
use crate::job;
use crate::pipeline::encryption::{EncryptionError, Identities};

/// Connects to Docker and builds the job context from a checked configuration.
pub async fn context(config: &Config, checked: &Checked) -> Result<job::Context, ConnectError> {
    let docker = docker::connect().await?;
    let host = host(config, &docker).await?;
    let mut ctx = job::Context::new(
        docker,
        backup::Options {
            backup_dir: config.backup_dir.clone(),
            compression: config.compression,
            helper_image: config.helper_image.clone(),
            encryption: checked.encryption.clone(),
            free_space_margin: config.free_space_margin,
        },
        Arc::new(checked.storages.scoped(&host)),
        config.remote_only,
        Arc::new(checked.registry.clone()),
        checked.schedule.clone(),
        config.retention.clone(),
        config.instance.clone(),
        config.daemon.max_concurrent,
    );
    ctx.drill_schedule = checked.drill_schedule.clone();
    ctx.shrink_alert = config.drill.shrink_alert;
    ctx.host = host;
    Ok(ctx)
}

/// This host's name in storages: config `host`, else the engine's own name (`docker info`'s
/// Name, the node's host name). A name that cannot be a key segment is refused.
pub async fn host(config: &Config, docker: &bollard::Docker) -> Result<String, ConnectError> {
    if let Some(h) = &config.host {
        return Ok(h.clone());
    }
    let info = docker.info().await.map_err(|e| ConnectError::Name {
        reason: e.to_string(),
    })?;
    let name = info.name.unwrap_or_default();
    crate::discover::labels::check_name("host", &name).map_err(|e| ConnectError::Name {
        reason: format!("{name:?}: {}", e.reason),
    })?;
    Ok(name)
}

/// What drills need, from the job context and the configuration: the keys to open encrypted
/// artifacts (`encryption.identity_files`, `encryption.passphrase`) are loaded here.
pub fn drill_context(
    config: &Config,
    job: &job::Context,
) -> Result<drill::Context, EncryptionError> {
    let identities = Identities::load(
        &config.encryption.identity_files,
        config.encryption.passphrase.as_ref(),
    )?;
    let mut ctx = drill::Context::new(
        job.docker.clone(),
        job.registry.clone(),
        config.backup_dir.clone(),
        config.helper_image.clone(),
        Arc::new(identities),
        job.storages.clone(),
        (
            std::time::Duration::from_secs(config.drill.timeout),
            config.drill.memory_bytes().unwrap_or(0),
        ),
        config.drill.max_concurrent,
    );
    ctx.instance = config.instance.clone();
    Ok(ctx)
}

/// What `stowage run` needs besides the job context.
pub fn daemon_settings(config: &Config, checked: &Checked) -> daemon::Settings {
    daemon::Settings {
        daemon: config.daemon,
        http: config.http.clone(),
        alerts: config.alerts.clone(),
        channels: checked.channels.clone(),
        coordination: config.coordination.clone(),
    }
}
