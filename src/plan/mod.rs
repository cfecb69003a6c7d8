//! From labelled containers to backup targets.
//!
//! [`plan`] is a pure function: containers (as discovered), the engine registry and the
//! default schedule in; for every container either a [`Target`] or a [`Skip`] with the reason
//! out. A bad label on one container skips that container only. Nothing here touches Docker
//! or the disk, so `stowage plan` can never change anything.

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

/// Which databases a target's backup covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Databases {
    /// The engine's `database` variable (e.g. `POSTGRES_DB`).
    Default,
    /// The names in `stowage.database`, one artifact each.
    Named(Vec<String>),
    /// Everything, in one artifact (`stowage.database=all`, or an engine that always dumps all).
    All,
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
    /// Commands run in the container before and after its backup.
    pub hooks: Hooks,
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

/// Plans every container. Order follows `containers`.
pub fn plan(containers: &[ContainerInfo], defaults: &Defaults) -> Vec<Entry> {
    let mut entries: Vec<Entry> = containers
        .iter()
        .map(|c| match plan_one(c, defaults) {
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

/// One container: its target, or why it is skipped.
// Long: the checks in the order a user sees their skip reasons; each decision that stands
// alone is a function (databases, warnings, storages).
fn plan_one(c: &ContainerInfo, defaults: &Defaults) -> Result<Target, Skip> {
    let registry = defaults.registry;
    let default_schedule = defaults.schedule;
    let skip = |reason: String, is_error: bool| Skip {
        container: c.name.clone(),
        reason,
        is_error,
    };
    let labels = Labels::parse(&c.labels).map_err(|e| skip(e.to_string(), true))?;
    if !labels.enable {
        return Err(skip("disabled (stowage.enable=false)".into(), false));
    }
    let engine = match &labels.engine {
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
    let schedule = match &labels.schedule {
        Some(s) => Schedule::parse_in(s, default_schedule.zone())
            .map_err(|e| skip(format!("label stowage.schedule: {e}"), true))?,
        None => default_schedule.clone(),
    };
    let vars = choose_vars(engine, &labels, c).map_err(|e| skip(e.to_string(), true))?;
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
    let databases = databases(engine, &labels, &vars).map_err(|r| skip(r, true))?;
    let warnings = warnings(engine, &labels, &vars);
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
    let name = labels.name.clone().unwrap_or_else(|| {
        let default = crate::discover::swarm::target_name(&c.labels);
        labels::file_safe(default.as_deref().unwrap_or(&c.name))
    });
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
    let storages = storages(&labels, defaults.storages).map_err(|r| skip(r, true))?;
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
        hooks: Hooks {
            pre: labels.pre.clone(),
            post: labels.post.clone(),
            timeout: labels
                .hook_timeout
                .map_or(DEFAULT_HOOK_TIMEOUT, Duration::from_secs),
        },
        warnings,
    })
}

/// Which databases a target's backup covers, from its label and the engine; `Err` is the
/// reason to skip the container.
fn databases(
    engine: &Engine,
    labels: &Labels,
    vars: &BTreeMap<String, Chosen>,
) -> Result<Databases, String> {
    let no_default_database = matches!(vars.get("database"), None | Some(Chosen::Absent));
    Ok(match labels.database.as_deref() {
        // No database named anywhere: everything, if the engine can.
        None if engine.dumps_one_database() && no_default_database && engine.dump_all.is_some() => {
            Databases::All
        }
        None if engine.dumps_one_database() => Databases::Default,
        None => Databases::All,
        Some("all") if engine.dump_all.is_some() || !engine.dumps_one_database() => Databases::All,
        Some("all") => {
            return Err(format!(
                "stowage.database=all: engine {} cannot dump all databases at once; list them",
                engine.name()
            ));
        }
        Some(list) if engine.dumps_one_database() => {
            Databases::Named(list.split(',').map(|d| d.trim().to_string()).collect())
        }
        Some(_) => {
            return Err(format!(
                "stowage.database: engine {} always dumps everything; remove the label",
                engine.name()
            ));
        }
    })
}

/// What the user should fix that does not stop the backup: unknown labels, secrets in
/// labels, and the label parser's notes.
fn warnings(engine: &Engine, labels: &Labels, vars: &BTreeMap<String, Chosen>) -> Vec<String> {
    let mut warnings = labels.notes.clone();
    for (key, given) in &labels.vars {
        let base = key.strip_suffix("_file").unwrap_or(key);
        let known = engine
            .spec
            .vars
            .get(base)
            .is_some_and(|v| key == base || v.secret);
        if !known {
            let names: std::collections::BTreeSet<&str> = labels::CORE_KEYS
                .iter()
                .copied()
                .chain(engine.spec.vars.keys().map(String::as_str))
                .collect();
            let nearest = names
                .iter()
                .map(|n| (strsim::damerau_levenshtein(n, key), *n))
                .filter(|(d, n)| *d <= 2.max(n.len() / 4))
                .min();
            let hint = match nearest {
                Some((_, n)) => format!("did you mean stowage.{n}? "),
                None => String::new(),
            };
            warnings.push(format!(
                "unknown label {} is ignored ({hint}known: {})",
                crate::error_text::shorten(&given.label, crate::error_text::SHOWN),
                names.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    for (name, chosen) in vars {
        let secret = engine.spec.vars.get(name).is_some_and(|v| v.secret);
        if let (true, Chosen::Label { label, .. }) = (secret, chosen) {
            warnings.push(format!(
                "{label} puts a secret in a label, visible to anyone who can inspect the container; prefer stowage.{name}_file or the container's own environment"
            ));
        }
    }
    warnings
}

/// The storages a target's artifacts go to: `stowage.storage` (`none`, or names that must
/// be configured), else the default ones.
fn storages(labels: &Labels, configured: &Storages) -> Result<Vec<String>, String> {
    Ok(match labels.storage.as_deref().map(str::trim) {
        None => configured.defaults(),
        Some("none") => vec![],
        Some(list) => {
            let names: Vec<String> = list
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if let Some(unknown) = names.iter().find(|n| configured.get(n).is_none()) {
                return Err(format!(
                    "label stowage.storage names {unknown:?}, which is not configured (storage.{unknown} in the config)"
                ));
            }
            names
        }
    })
}

#[cfg(test)]
mod tests;
