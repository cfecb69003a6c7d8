//! One backup of one database of one target, from exec to committed artifact.
//!
//! A [`Session`] is opened per target run: it checks that the container runs, reads the
//! variables that live in files inside it ([`crate::engine::resolve`]), picks where commands
//! run ([`crate::engine::site`]) and asks the dump tool its version (and whether it runs under
//! `stdbuf`, [`buffer`]). Then, per database,
//! [`Session::dump`] runs the dump as an exec and streams its stdout through the
//! [`crate::pipeline`] into a temp file, and decides. Success needs all of: exit code 0, no
//! error pattern on stderr, the engine's completeness marker near the end of the stream, and a
//! clean write. Only then is the file committed under its final name and its manifest written.
//! On any failure the temp file is removed and the error names the container, the engine, the
//! database and the step, and says what to do. What happens around a target's backups
//! (ordering, retention, uploads) is [`crate::job`]'s business, not this module's.

mod buffer;
mod error;
pub mod hooks;
mod judge;
pub mod stop;
mod stream;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::InspectContainerOptions;
use chrono::Utc;

pub use error::{BackupError, Failure, Step, exit_text, pre_hook_failed, stop_failed};
use error::{databases_label, target_error};

use crate::engine::Invocation;
use crate::engine::resolve::resolve_values;
use crate::engine::site::Site;
use crate::engine::spec::FILE_VAR;
use crate::local::artifact::{self, ContainerRef, Content, Manifest, Stored, TempFile};
use crate::local::space;
use crate::pipeline::encryption::Encryption;
use crate::pipeline::{Compression, PipelineWriter};
use crate::plan::{Databases, Target};

/// How often progress is logged during a long dump.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// What a backup needs besides the target.
#[derive(Debug, Clone)]
pub struct Options {
    /// Root of the artifacts.
    pub backup_dir: PathBuf,
    /// Compression.
    pub compression: Compression,
    /// Image for helper containers (engines with a `[helper]`); `None`: stowage's own.
    pub helper_image: Option<String>,
    /// The configured encryption, for targets that are encrypted.
    pub encryption: Option<Arc<Encryption>>,
    /// Free space needed before a backup, as a multiple of the previous artifact (0: off).
    pub free_space_margin: f64,
}

/// A committed artifact.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Path of the artifact.
    pub artifact: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
}

/// One dump a target's run makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpSpec {
    /// The database to set as `{database}`, when the target names it.
    pub name: Option<String>,
    /// Whether the engine's `dump_all` command is used.
    pub all: bool,
    /// The artifact's database name when it is not `name` (a volume's name for its path).
    pub title: Option<String>,
}

/// The dumps a target's run makes, one artifact each.
pub fn dumps(target: &Target) -> Vec<DumpSpec> {
    match &target.databases {
        Databases::All => vec![DumpSpec {
            name: None,
            all: true,
            title: None,
        }],
        Databases::Default => vec![DumpSpec {
            name: None,
            all: false,
            title: None,
        }],
        Databases::Named(names) => names
            .iter()
            .map(|n| DumpSpec {
                name: Some(n.clone()),
                all: false,
                title: None,
            })
            .collect(),
        Databases::Files(sets) => sets
            .iter()
            .map(|s| DumpSpec {
                name: Some(s.path.clone()),
                all: false,
                title: Some(s.name.clone()),
            })
            .collect(),
    }
}

/// What every database of one target's run shares: the checked container, the resolved
/// values, where commands run and the dump tool's version.
pub struct Session<'a> {
    docker: &'a Docker,
    target: &'a Target,
    opts: &'a Options,
    site: Site,
    values: BTreeMap<String, String>,
    version: Option<String>,
    /// Whether the dump tool runs under `stdbuf` (`stdout_buffer`, [`buffer`]).
    stdbuf: bool,
    image_id: Option<String>,
    /// The container's `StartedAt` when the session opened: a failed dump compares it to
    /// tell a restart during the dump from a failure of the tool's own.
    container_started: Option<String>,
}

impl<'a> Session<'a> {
    /// Checks the container, reads its credentials and prepares where commands run.
    pub async fn open(
        docker: &'a Docker,
        target: &'a Target,
        opts: &'a Options,
    ) -> Result<Session<'a>, BackupError> {
        let databases = databases_label(target);
        let fail = |step, failure| target_error(target, &databases, step, failure);
        let inspected = docker
            .inspect_container(&target.container.id, None::<InspectContainerOptions>)
            .await
            .map_err(|e| fail(Step::Inspect, Failure::Exec(e.into())))?;
        let image_id = inspected.image.clone();
        let container_started = inspected.state.as_ref().and_then(|s| s.started_at.clone());
        let state = inspected
            .state
            .and_then(|s| s.status)
            .map(|s| s.to_string())
            .unwrap_or_default();
        if state != "running" {
            return Err(fail(Step::Inspect, Failure::NotRunning(state)));
        }
        let (dir, name, margin) = (
            opts.backup_dir.clone(),
            target.name.clone(),
            opts.free_space_margin,
        );
        tokio::task::spawn_blocking(move || space::check(&dir, &name, margin))
            .await
            .map_err(|e| fail(Step::Space, Failure::Io(std::io::Error::other(e))))?
            .map_err(|e| fail(Step::Space, Failure::Space(e)))?;
        let values = resolve_values(docker, &target.container.id, &target.engine, &target.vars)
            .await
            .map_err(|e| fail(Step::Credentials, Failure::Resolve(e)))?;
        let site = Site::prepare(
            docker,
            &target.container,
            &target.engine,
            opts.helper_image.as_deref(),
        )
        .await
        .map_err(|e| fail(Step::Helper, Failure::Site(e)))?;
        let probed = buffer::probe(docker, target, &site, &values).await;
        crate::fault::point("session:opened");
        Ok(Session {
            docker,
            target,
            opts,
            site,
            values,
            version: probed.version,
            stdbuf: probed.stdbuf,
            image_id,
            container_started,
        })
    }

    /// Dumps one database into a committed artifact.
    pub async fn dump(&self, spec: &DumpSpec) -> Result<Outcome, BackupError> {
        let target = self.target;
        let mut values = self.values.clone();
        if let Some(n) = &spec.name {
            values.insert("database".into(), n.clone());
        }
        let database = if let Some(title) = &spec.title {
            title.clone()
        } else if spec.all || !target.engine.dumps_one_database() {
            "all".to_string()
        } else {
            values
                .get("database")
                .cloned()
                .unwrap_or_else(|| "default".into())
        };
        self.dump_one(&values, spec.all, &database)
            .await
            .map_err(|(step, failure)| target_error(target, &database, step, failure))
    }

    /// Removes the helper container, if one was started.
    pub async fn close(self) {
        self.site.remove(self.docker).await;
    }
}

impl Session<'_> {
    /// One dump into a committed artifact: exec → pipeline → judge → commit → manifest.
    async fn dump_one(
        &self,
        values: &BTreeMap<String, String>,
        all: bool,
        database: &str,
    ) -> Result<Outcome, (Step, Failure)> {
        let (docker, target, opts) = (self.docker, self.target, self.opts);
        let mut values = values.clone();
        let to_file = target.engine.dump_spec(all).to_file;
        if to_file {
            values.insert(
                FILE_VAR.into(),
                crate::engine::site::temp_path(&target.engine.spec.extension),
            );
        }
        let inv: Invocation = target
            .engine
            .dump_invocation(all, &values)
            .map_err(|e| (Step::Credentials, Failure::Render(e)))?;
        let user = self
            .site
            .user(docker, &target.engine, &values)
            .await
            .map_err(|e| (Step::Helper, Failure::Site(e)))?;
        let started_at = Utc::now();
        let file_name = artifact::artifact_file_name(
            &target.name,
            database,
            &target.engine.spec.extension,
            target.encrypt && opts.encryption.is_some(),
            started_at,
        );
        let dir = artifact::target_dir(&opts.backup_dir, &target.name);
        let (temp, file) = TempFile::create(&dir, &file_name).map_err(io)?;
        tracing::info!(target = %target.name, container = %target.container.name, engine = %target.engine.name(), database, "backup started");

        let encryption = opts.encryption.clone().filter(|_| target.encrypt);
        let encryption_info = encryption.as_ref().map(|e| e.info());
        let count = target.engine.drill.as_ref().and_then(|d| d.spec.count);
        let mut writer = PipelineWriter::start(file, opts.compression, encryption, count);
        match values.get(FILE_VAR).filter(|_| to_file) {
            Some(path) => {
                let result = self
                    .via_file(inv, user.clone(), path, &mut writer, database)
                    .await;
                self.remove_file(path, user).await;
                result?;
            }
            None => self.via_stdout(inv, user, &mut writer, database).await?,
        }
        crate::fault::point("dump:judged");
        let written = writer.finish().await.map_err(io)?;
        crate::fault::point("commit:pipeline-finished");
        let artifact = temp.commit(&file_name).map_err(io)?;
        crate::fault::point("commit:done");
        let manifest = self.manifest(database, started_at, written, &artifact, encryption_info);
        if let Err(e) = artifact::write_manifest(&artifact, &manifest) {
            // The manifest is the commit record: without it the artifact must not stay
            // visible under its final name (a crash here is cleaned up at the next start).
            artifact::uncommit(&artifact);
            return Err(io(e));
        }
        crate::fault::point("manifest:done");
        Ok(Outcome { artifact, manifest })
    }

    /// The manifest of a committed artifact.
    fn manifest(
        &self,
        database: &str,
        started_at: chrono::DateTime<Utc>,
        written: crate::pipeline::Written,
        artifact: &std::path::Path,
        encryption_info: Option<crate::pipeline::encryption::EncryptionInfo>,
    ) -> Manifest {
        let target = self.target;
        Manifest {
            format: artifact::MANIFEST_FORMAT,
            stowage_version: env!("CARGO_PKG_VERSION").to_string(),
            target: target.name.clone(),
            container: ContainerRef {
                id: target.container.id.clone(),
                name: target.container.name.clone(),
                image: target.container.image.clone(),
                image_id: self.image_id.clone(),
            },
            engine: target.engine.name().to_string(),
            database: database.to_string(),
            dump_tool_version: self.version.clone(),
            started_at,
            finished_at: Utc::now(),
            raw: Content {
                bytes: written.raw_bytes,
                sha256: written.raw_sha256,
            },
            stored: Stored {
                file: artifact
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                bytes: written.stored_bytes,
                sha256: written.stored_sha256,
                compression: "zstd".into(),
                compression_level: written.level,
                compression_levels: written.levels,
                encrypted: encryption_info.is_some(),
                encryption: encryption_info,
            },
            rows: written.rows,
        }
    }
}

/// A local file error, at the write step.
fn io(e: std::io::Error) -> (Step, Failure) {
    (Step::Write, Failure::Io(e))
}
