//! From labelled containers to backup targets.
//!
//! [`plan`] is a pure function: containers (as discovered), the engine registry and the
//! default schedule in; for every container either a [`Target`] or a [`Skip`] with the reason
//! out. A bad label on one container skips that container only. Nothing here touches Docker
//! or the disk, so `stowage plan` can never change anything.

mod decide;
mod files;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::discover::ContainerInfo;
use crate::discover::labels::{self, Labels};
use crate::engine::{Chosen, Engine, Registry, choose_vars};
use crate::remote::config::Storages;
use crate::retention::Policy;
use crate::schedule::Schedule;
use decide::{databases, storages, warnings};
pub use files::FileSet;

/// Which databases a target's backup covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Databases {
    /// The engine's `database` variable (e.g. `POSTGRES_DB`).
    Default,
    /// The names in `stowage.database`, one artifact each.
    Named(Vec<String>),
    /// Everything, in one artifact (`stowage.database=all`, or an engine that always dumps all).
    All,
    /// Directories, one tar artifact each (`stowage.volumes`, `stowage.paths`; engine `files`).
    Files(Vec<FileSet>),
}

/// A container that will be backed up, and how.
#[derive(Debug, Clone)]
pub struct Target {
    /// Target name: `stowage.name`, else a Swarm task's service name (see
    /// [`crate::discover::swarm`]), else the container name, made file-safe. Unique.
    pub name: String,
    /// The container.
    pub container: ContainerInfo,
    /// Its engine.
    pub engine: Arc<Engine>,
    /// What is dumped.
    pub databases: Databases,
    /// Where each variable comes from.
    pub vars: BTreeMap<String, Chosen>,
    /// When `stowage run` backs it up.
    pub schedule: Schedule,
    /// When `stowage run` drills it (`None`: never; `stowage drill` still can).
    pub drill: Option<Schedule>,
    /// Whether its artifacts are encrypted.
    pub encrypt: bool,
    /// Which of its artifacts are kept.
    pub retention: Policy,
    /// The storages its artifacts are uploaded to.
    pub storages: Vec<String>,
    /// Pinged on start (`/start`), success and failure (`/fail`).
    pub ping_url: Option<String>,
    /// `stowage.notify`: configured channel names and URLs (secrets) that get its alerts too.
    pub notify: Vec<crate::secret::Secret>,
    /// Commands run in the container before and after its backup.
    pub hooks: Hooks,
    /// Stop the container (and its stop group) while the files are archived (files targets
    /// with `stowage.stop=true`).
    pub stop: Option<StopGroup>,
    /// Things the user should fix that do not stop the backup.
    pub warnings: Vec<String>,
}

/// How long a hook may run when `stowage.hook_timeout` does not say.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(300);

/// A target's hooks (`stowage.pre`, `stowage.post`; run by [`crate::backup::hooks`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hooks {
    /// Run before the first dump.
    pub pre: Option<Vec<String>>,
    /// Run after the last dump, whatever the outcome.
    pub post: Option<Vec<String>>,
    /// How long each may run.
    pub timeout: Duration,
}

impl Target {
    /// The next scheduled run after `now`.
    pub fn next_run(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.next_after(now)
    }

    /// What its runs cover, as errors and the status page name it: database names, `all`,
    /// volume and path names, or the engine's default database.
    pub fn databases_label(&self) -> String {
        match &self.databases {
            Databases::All => "all".to_string(),
            Databases::Named(names) => names.join(","),
            Databases::Files(sets) => sets
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(","),
            Databases::Default => self
                .vars
                .get("database")
                .and_then(crate::engine::Chosen::known_value)
                .unwrap_or("default")
                .to_string(),
        }
    }
}

/// What a files target stops during its backup: the container, and every container labelled
/// `stowage.stop_group` with the same value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopGroup {
    /// `stowage.stop_group`.
    pub group: Option<String>,
}

/// A labelled container that will not be backed up.
#[derive(Debug, Clone)]
pub struct Skip {
    /// Container name.
    pub container: String,
    /// Why, and what to do about it.
    pub reason: String,
    /// Whether the skip is a mistake to fix (false for "disabled" or "not running").
    pub is_error: bool,
}

/// The outcome for one container.
#[derive(Debug, Clone)]
pub enum Entry {
    /// Will be backed up.
    Target(Box<Target>),
    /// Will not.
    Skipped(Skip),
}

/// Plans every container. Order follows `containers`; a container with both a database and
/// `stowage.volumes`/`stowage.paths` gives two targets, the database's first.
pub fn plan(containers: &[ContainerInfo], defaults: &Defaults) -> Vec<Entry> {
    let mut entries: Vec<Entry> = containers
        .iter()
        .flat_map(|c| plan_container(c, defaults))
        .map(|planned| match planned {
            Ok(t) => Entry::Target(Box::new(t)),
            Err(skip) => Entry::Skipped(skip),
        })
        .collect();
    // Two containers may not share a target name: their artifacts would mix.
    let mut seen: HashMap<String, String> = HashMap::new();
    for entry in &mut entries {
        if let Entry::Target(t) = entry {
            if let Some(first) = seen.get(&t.name) {
                *entry = Entry::Skipped(Skip {
                    container: t.container.name.clone(),
                    reason: format!(
                        "target name {:?} is already used by container {first}; set a distinct stowage.name",
                        t.name
                    ),
                    is_error: true,
                });
            } else {
                seen.insert(t.name.clone(), t.container.name.clone());
            }
        }
    }
    entries
}

/// What applies to a target unless its labels say otherwise.
#[derive(Debug, Clone, Copy)]
pub struct Defaults<'a> {
    /// The engines.
    pub registry: &'a Registry,
    /// Config `schedule`.
    pub schedule: &'a Schedule,
    /// Config `drill.schedule` (`None`: drills are off).
    pub drill: Option<&'a Schedule>,
    /// Whether encryption keys are configured (then targets are encrypted by default).
    pub encryption: bool,
    /// Config `retention`.
    pub retention: &'a Policy,
    /// The configured storages.
    pub storages: &'a Storages,
}

/// One container: its database target and its files target (each, or why it is skipped).
fn plan_container(c: &ContainerInfo, defaults: &Defaults) -> Vec<Result<Target, Skip>> {
    let skip = |reason: String| Skip {
        container: c.name.clone(),
        reason,
        is_error: true,
    };
    let labels = match Labels::parse(&c.labels) {
        Ok(l) if !l.enable => {
            return vec![Err(Skip {
                is_error: false,
                ..skip("disabled (stowage.enable=false)".into())
            })];
        }
        Ok(l) => l,
        Err(e) => return vec![Err(skip(e.to_string()))],
    };
    let files_label = labels.volumes.is_some() || labels.paths.is_some();
    let files_engine = labels.engine.as_deref() == Some(FILES_ENGINE);
    if files_engine && !files_label {
        return vec![Err(skip(
            "stowage.engine=files: name what to archive with stowage.volumes or stowage.paths"
                .into(),
        ))];
    }
    // A container whose image is no database is a files target only.
    let database = !files_engine
        && (!files_label || labels.engine.is_some() || defaults.registry.detect(c).is_some());
    let mut out = Vec::new();
    if database {
        out.push(plan_one(c, defaults, &labels, None));
    }
    if files_label {
        let sets = match files::file_sets(&labels, &c.mounts) {
            Ok(sets) => sets.unwrap_or_default(),
            Err(reason) => return [out, vec![Err(skip(reason))]].concat(),
        };
        out.push(plan_one(c, defaults, &labels, Some((sets, database))));
    }
    out
}

/// The engine for `stowage.format`: the one named `<engine>-<format>`.
fn with_format<'a>(
    registry: &'a Registry,
    engine: &Arc<Engine>,
    format: &str,
) -> Result<&'a Arc<Engine>, String> {
    let prefix = format!("{}-", engine.name());
    registry.get(&format!("{prefix}{format}")).ok_or_else(|| {
        let formats: Vec<&str> = registry
            .all()
            .iter()
            .filter_map(|e| e.name().strip_prefix(&prefix))
            .collect();
        format!(
            "stowage.format={format}: engine {} has no such format ({})",
            engine.name(),
            if formats.is_empty() {
                "it has only its default one".to_string()
            } else {
                format!("it has: {}", formats.join(", "))
            }
        )
    })
}

/// The engine of `stowage.volumes` and `stowage.paths` targets (`engines/files.toml`).
pub const FILES_ENGINE: &str = "files";

/// What makes a files target: its directories, and whether the container also has a
/// database target (then this one is named `<name>-files`).
type FilesPart = (Vec<FileSet>, bool);

/// One target of a container (its database, or with `files` its directories), or why it is
/// skipped.
// Long: the checks in the order a user sees their skip reasons; each decision that stands
// alone is a function (databases, warnings, storages).
fn plan_one(
    c: &ContainerInfo,
    defaults: &Defaults,
    labels: &Labels,
    files: Option<FilesPart>,
) -> Result<Target, Skip> {
    let registry = defaults.registry;
    let default_schedule = defaults.schedule;
    let skip = |reason: String, is_error: bool| Skip {
        container: c.name.clone(),
        reason,
        is_error,
    };
    let engine_label = match &files {
        Some(_) => Some(FILES_ENGINE.to_string()),
        None => labels.engine.clone(),
    };
    let engine = match &engine_label {
        Some(name) => registry.get(name).ok_or_else(|| {
            let known: Vec<&str> = registry.all().iter().map(|e| e.name()).collect();
            skip(
                format!(
                    "stowage.engine={name} is not a known engine (known: {})",
                    known.join(", ")
                ),
                true,
            )
        })?,
        None => registry.detect(c).ok_or_else(|| {
            skip(
                format!(
                    "cannot tell the database engine from image {:?}; set the label stowage.engine",
                    c.image
                ),
                true,
            )
        })?,
    };
    let engine = match (&labels.format, &files) {
        (Some(format), None) => with_format(registry, engine, format).map_err(|r| skip(r, true))?,
        _ => engine,
    };
    let schedule = match &labels.schedule {
        Some(s) => Schedule::parse_in(s, default_schedule.zone())
            .map_err(|e| skip(format!("label stowage.schedule: {e}"), true))?,
        None => default_schedule.clone(),
    };
    // A files target's one variable is set per directory, never by the database's labels.
    let files_labels;
    let var_labels = match &files {
        Some(_) => {
            files_labels = Labels::default();
            &files_labels
        }
        None => labels,
    };
    let vars = choose_vars(engine, var_labels, c).map_err(|e| skip(e.to_string(), true))?;
    // Values that will sit inside an argument must not read as options or connection strings.
    for (name, chosen) in &vars {
        let secret = engine.spec.vars.get(name).is_some_and(|v| v.secret);
        if let (false, Some(value)) = (secret, chosen.known_value()) {
            labels::check_argument(name, value).map_err(|e| {
                skip(
                    format!("{} ({}): {}", name, chosen.describe(), e.reason),
                    true,
                )
            })?;
        }
    }
    let beside_database = matches!(files, Some((_, true)));
    let stop = (files.is_some() && labels.stop).then(|| StopGroup {
        group: labels.stop_group.clone(),
    });
    let (databases, warnings) = match files {
        // Beside a database target, which reports the labels' mistakes once.
        Some((sets, true)) => (Databases::Files(sets), Vec::new()),
        Some((sets, false)) => (Databases::Files(sets), warnings(engine, labels, &vars)),
        None => {
            let mut warnings = warnings(engine, labels, &vars);
            if labels.stop && labels.volumes.is_none() && labels.paths.is_none() {
                warnings.push("stowage.stop applies to volume backups (stowage.volumes, stowage.paths); a database is dumped while it runs".into());
            }
            (
                databases(engine, labels, &vars).map_err(|r| skip(r, true))?,
                warnings,
            )
        }
    };
    // Checked last, so a stopped container's label mistakes are reported first.
    if !c.is_running()
        && let Some(service) = crate::discover::swarm::target_name(&c.labels)
    {
        return Err(skip(
            format!(
                "a Swarm task of {service} that is {} (an earlier task, or not started yet); the service's running task is the target",
                c.state
            ),
            false,
        ));
    }
    if !c.is_running() {
        return Err(skip(
            format!(
                "container is {} (not running); it is backed up once it runs again",
                c.state
            ),
            false,
        ));
    }
    let mut name = labels.name.clone().unwrap_or_else(|| {
        let default = crate::discover::swarm::target_name(&c.labels);
        labels::file_safe(default.as_deref().unwrap_or(&c.name))
    });
    if beside_database {
        name.push_str("-files");
    }
    let encrypt = match labels.encrypt {
        Some(true) if !defaults.encryption => {
            return Err(skip(
                "stowage.encrypt=true, but no encryption key is configured: set encryption.recipients (or encryption.passphrase)".into(),
                true,
            ));
        }
        Some(e) => e,
        None => defaults.encryption,
    };
    let retention = match &labels.retention {
        Some(text) => Policy::parse_label(text).map_err(|e| {
            let shown = crate::error_text::shorten(text, crate::error_text::SHOWN);
            skip(format!("label stowage.retention={shown:?}: {e}"), true)
        })?,
        None => defaults.retention.clone(),
    };
    let storages = storages(labels, defaults.storages).map_err(|r| skip(r, true))?;
    let drill = match labels.drill.as_deref().map(str::trim) {
        _ if engine.drill.is_none() => None,
        Some("false") => None,
        Some("true") | None => defaults.drill.cloned(),
        Some(cron) => Some(
            Schedule::parse_in(cron, default_schedule.zone()).map_err(|e| {
                skip(
                    format!("label stowage.drill (false, true or a cron line): {e}"),
                    true,
                )
            })?,
        ),
    };
    Ok(Target {
        name,
        container: c.clone(),
        engine: engine.clone(),
        databases,
        vars,
        schedule,
        drill,
        encrypt,
        retention,
        storages,
        ping_url: labels.ping_url.clone(),
        notify: labels.notify.clone(),
        hooks: Hooks {
            pre: labels.pre.clone(),
            post: labels.post.clone(),
            timeout: labels
                .hook_timeout
                .map_or(DEFAULT_HOOK_TIMEOUT, Duration::from_secs),
        },
        stop,
        warnings,
    })
}

#[cfg(test)]
mod tests;
