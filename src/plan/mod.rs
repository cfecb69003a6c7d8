//! From labelled containers to backup targets.
//!
//! [`plan`] is a pure function: containers (as discovered), the engine registry and the
//! default schedule in; for every container either a [`Target`] or a [`Skip`] with the reason
//! out. A bad label on one container skips that container only. Nothing here touches Docker
//! or the disk, so `stowage plan` can never change anything.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::discovery::ContainerInfo;
use crate::engine::{Chosen, Engine, Registry, choose_vars};
use crate::labels::{self, Labels};
use crate::retention::Policy;
use crate::schedule::Schedule;
use crate::storage::Storages;

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
    /// Target name: `stowage.name` or the container name made file-safe. Unique.
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
    /// Whether its artifacts are encrypted.
    pub encrypt: bool,
    /// Which of its artifacts are kept.
    pub retention: Policy,
    /// The storages its artifacts are uploaded to.
    pub storages: Vec<String>,
    /// Pinged on start (`/start`), success and failure (`/fail`).
    pub ping_url: Option<String>,
    /// Things the user should fix that do not stop the backup.
    pub warnings: Vec<String>,
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
    /// Whether encryption keys are configured (then targets are encrypted by default).
    pub encryption: bool,
    /// Config `retention`.
    pub retention: &'a Policy,
    /// The configured storages.
    pub storages: &'a Storages,
}

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
    let no_default_database = matches!(vars.get("database"), None | Some(Chosen::Absent));
    let databases = match labels.database.as_deref() {
        // No database named anywhere: everything, if the engine can.
        None if engine.dumps_one_database() && no_default_database && engine.dump_all.is_some() => {
            Databases::All
        }
        None if engine.dumps_one_database() => Databases::Default,
        None => Databases::All,
        Some("all") if engine.dump_all.is_some() || !engine.dumps_one_database() => Databases::All,
        Some("all") => {
            return Err(skip(
                format!(
                    "stowage.database=all: engine {} cannot dump all databases at once; list them",
                    engine.name()
                ),
                true,
            ));
        }
        Some(list) if engine.dumps_one_database() => {
            Databases::Named(list.split(',').map(|d| d.trim().to_string()).collect())
        }
        Some(_) => {
            return Err(skip(
                format!(
                    "stowage.database: engine {} always dumps everything; remove the label",
                    engine.name()
                ),
                true,
            ));
        }
    };
    let mut warnings = labels.notes.clone();
    for (key, given) in &labels.vars {
        let base = key.strip_suffix("_file").unwrap_or(key);
        let known = engine
            .spec
            .vars
            .get(base)
            .is_some_and(|v| key == base || v.secret);
        if !known {
            let mut names: Vec<String> = labels::CORE_KEYS.iter().map(|k| k.to_string()).collect();
            names.extend(engine.spec.vars.keys().cloned());
            warnings.push(format!(
                "unknown label {} is ignored (known: {})",
                given.label,
                names.join(", ")
            ));
        }
    }
    for (name, chosen) in &vars {
        let secret = engine.spec.vars.get(name).is_some_and(|v| v.secret);
        if let (true, Chosen::Label { label, .. }) = (secret, chosen) {
            warnings.push(format!(
                "{label} puts a secret in a label, visible to anyone who can inspect the container; prefer stowage.{name}_file or the container's own environment"
            ));
        }
    }
    // Checked last, so a stopped container's label mistakes are reported first.
    if !c.is_running() {
        return Err(skip(
            format!(
                "container is {} (not running); it is backed up once it runs again",
                c.state
            ),
            false,
        ));
    }
    let name = labels
        .name
        .clone()
        .unwrap_or_else(|| labels::file_safe(&c.name));
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
        Some(text) => Policy::parse_label(text)
            .map_err(|e| skip(format!("label stowage.retention={text:?}: {e}"), true))?,
        None => defaults.retention.clone(),
    };
    let storages = match labels.storage.as_deref().map(str::trim) {
        None => defaults.storages.defaults(),
        Some("none") => vec![],
        Some(list) => {
            let names: Vec<String> = list
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if let Some(unknown) = names.iter().find(|n| defaults.storages.get(n).is_none()) {
                return Err(skip(
                    format!(
                        "label stowage.storage names {unknown:?}, which is not configured (storage.{unknown} in the config)"
                    ),
                    true,
                ));
            }
            names
        }
    };
    Ok(Target {
        name,
        container: c.clone(),
        engine: engine.clone(),
        databases,
        vars,
        schedule,
        encrypt,
        retention,
        storages,
        ping_url: labels.ping_url.clone(),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::Env;

    fn c(
        name: &str,
        image: &str,
        state: &str,
        labels: &[(&str, &str)],
        env: &[&str],
    ) -> ContainerInfo {
        ContainerInfo {
            id: format!("{name}-id"),
            name: name.into(),
            image: image.into(),
            state: state.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            env: Env::from_list(&env.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
        }
    }

    fn run(containers: &[ContainerInfo]) -> Vec<Entry> {
        plan_with(containers, false)
    }

    fn plan_with(containers: &[ContainerInfo], encryption: bool) -> Vec<Entry> {
        plan_full(containers, encryption, &Storages::default())
    }

    fn plan_full(
        containers: &[ContainerInfo],
        encryption: bool,
        storages: &Storages,
    ) -> Vec<Entry> {
        plan(
            containers,
            &Defaults {
                registry: &Registry::builtin().unwrap(),
                schedule: &Schedule::parse("0 3 * * *").unwrap(),
                encryption,
                retention: &Policy::parse_label("daily=7").unwrap(),
                storages,
            },
        )
    }

    #[test]
    fn storages_and_retention_by_label() {
        let dir = std::env::temp_dir().join(format!("stowage-plan-st-{}", std::process::id()));
        let config = |default: bool| crate::storage::StorageConfig {
            url: format!("file://{}", dir.display()),
            options: Default::default(),
            default,
            verify_readback: true,
            max_retries: 0,
            retry_timeout: 1,
        };
        let storages = Storages::from_config(
            &[
                ("main".to_string(), config(true)),
                ("usb".to_string(), config(false)),
            ]
            .into_iter()
            .collect(),
        )
        .unwrap();
        let on = ("stowage.enable", "true");
        let pg = |name: &str, extra: &[(&str, &str)]| {
            let mut labels = vec![on];
            labels.extend_from_slice(extra);
            c(name, "postgres:16", "running", &labels, &[])
        };
        let entries = plan_full(
            &[
                pg("a", &[]),
                pg("b", &[("stowage.storage", "usb, main")]),
                pg(
                    "c",
                    &[("stowage.storage", "none"), ("stowage.retention", "last=3")],
                ),
                pg("d", &[("stowage.storage", "tape")]),
                pg("e", &[("stowage.retention", "daily")]),
            ],
            false,
            &storages,
        );
        let target = |i: usize| match &entries[i] {
            Entry::Target(t) => t.clone(),
            Entry::Skipped(s) => panic!("{}: {}", s.container, s.reason),
        };
        assert_eq!(target(0).storages, ["main"], "only default storages");
        assert_eq!(target(0).retention.to_string(), "daily=7");
        assert_eq!(target(1).storages, ["usb", "main"]);
        assert!(target(2).storages.is_empty());
        assert_eq!(target(2).retention.keep_last, 3);
        assert!(skip_reason(&entries[3]).contains("\"tape\", which is not configured"));
        assert!(skip_reason(&entries[4]).contains("stowage.retention"));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn encryption_by_default_when_keys_exist_and_by_label() {
        let on = ("stowage.enable", "true");
        let pg = |name: &str, extra: &[(&str, &str)]| {
            let mut labels = vec![on];
            labels.extend_from_slice(extra);
            c(name, "postgres:16", "running", &labels, &[])
        };
        let containers = [
            pg("plain", &[]),
            pg("yes", &[("stowage.encrypt", "true")]),
            pg("no", &[("stowage.encrypt", "false")]),
        ];
        let without = plan_with(&containers, false);
        assert!(matches!(&without[0], Entry::Target(t) if !t.encrypt));
        assert!(skip_reason(&without[1]).contains("no encryption key is configured"));
        let with = plan_with(&containers, true);
        let flags: Vec<bool> = with
            .iter()
            .map(|e| matches!(e, Entry::Target(t) if t.encrypt))
            .collect();
        assert_eq!(flags, [true, true, false]);
    }

    fn skip_reason(e: &Entry) -> &str {
        match e {
            Entry::Skipped(s) => &s.reason,
            Entry::Target(t) => panic!("{} was planned", t.name),
        }
    }

    #[test]
    fn one_bad_container_never_stops_the_others() {
        let on = ("stowage.enable", "true");
        let entries = run(&[
            c(
                "a",
                "postgres:16",
                "running",
                &[on],
                &["POSTGRES_PASSWORD=x"],
            ),
            c("b", "redis:7", "running", &[on], &[]),
            c(
                "c",
                "postgres:16",
                "running",
                &[on, ("stowage.schedule", "every day")],
                &[],
            ),
            c(
                "d",
                "postgres:16",
                "running",
                &[on, ("stowage.engine", "oracle")],
                &[],
            ),
            c(
                "e",
                "postgres:16",
                "running",
                &[("stowage.enable", "false")],
                &[],
            ),
            c(
                "f",
                "postgres:16",
                "running",
                &[on, ("stowage.database", "-x")],
                &[],
            ),
            c("g", "postgres:16", "running", &[on], &["POSTGRES_DB=x=y"]),
            c(
                "h",
                "postgres:16",
                "running",
                &[on, ("stowage.name", "a")],
                &[],
            ),
        ]);
        assert!(
            matches!(&entries[0], Entry::Target(t) if t.name == "a" && t.databases == Databases::Default)
        );
        assert!(skip_reason(&entries[1]).contains("set the label stowage.engine"));
        assert!(skip_reason(&entries[2]).contains("stowage.schedule"));
        assert!(skip_reason(&entries[3]).contains("known: postgres"));
        assert!(skip_reason(&entries[4]).contains("disabled"));
        assert!(skip_reason(&entries[5]).contains("option"));
        assert!(skip_reason(&entries[6]).contains("POSTGRES_DB"));
        assert!(skip_reason(&entries[7]).contains("already used by container a"));
    }

    #[test]
    fn stopped_containers_are_skipped_without_hiding_label_mistakes() {
        let on = ("stowage.enable", "true");
        let entries = run(&[
            c("s", "postgres", "exited", &[on], &[]),
            c(
                "t",
                "postgres",
                "exited",
                &[on, ("stowage.database", "-x")],
                &[],
            ),
        ]);
        let Entry::Skipped(s) = &entries[0] else {
            panic!()
        };
        assert!(
            s.reason.contains("exited (not running)") && !s.is_error,
            "{s:?}"
        );
        let Entry::Skipped(t) = &entries[1] else {
            panic!()
        };
        assert!(t.reason.contains("option") && t.is_error, "{t:?}");
    }

    #[test]
    fn databases_and_warnings() {
        let on = ("stowage.enable", "yes");
        let entries = run(&[
            c(
                "all",
                "postgres",
                "running",
                &[on, ("stowage.database", "all")],
                &[],
            ),
            c(
                "two",
                "postgres",
                "running",
                &[
                    on,
                    ("stowage.database", "a, b"),
                    ("stowage.pasword", "x"),
                    ("stowage.password", "y"),
                ],
                &[],
            ),
        ]);
        let Entry::Target(all) = &entries[0] else {
            panic!()
        };
        assert_eq!(all.databases, Databases::All);
        let Entry::Target(two) = &entries[1] else {
            panic!()
        };
        assert_eq!(
            two.databases,
            Databases::Named(vec!["a".into(), "b".into()])
        );
        assert!(
            two.warnings.iter().any(|w| w.contains("stowage.pasword")),
            "{:?}",
            two.warnings
        );
        assert!(
            two.warnings
                .iter()
                .any(|w| w.contains("puts a secret in a label"))
        );
        assert!(!format!("{two:?}").contains("\"y\""));
    }

    #[test]
    fn sqlite_needs_its_file_named_and_mongodb_defaults_to_everything() {
        let on = ("stowage.enable", "true");
        let sqlite = ("stowage.engine", "sqlite");
        let entries = run(&[
            c("app", "myorg/app:1", "running", &[on, sqlite], &[]),
            c(
                "app2",
                "myorg/app:1",
                "running",
                &[on, sqlite, ("stowage.database", "/data/a.db,/data/b.db")],
                &[],
            ),
            c("mongo", "mongo:7", "running", &[on], &["MONGO_MAJOR=7.0"]),
        ]);
        assert!(
            skip_reason(&entries[0]).contains("set label stowage.database"),
            "{entries:?}"
        );
        let Entry::Target(two) = &entries[1] else {
            panic!("{entries:?}")
        };
        assert_eq!(
            two.databases,
            Databases::Named(vec!["/data/a.db".into(), "/data/b.db".into()])
        );
        let Entry::Target(mongo) = &entries[2] else {
            panic!("{entries:?}")
        };
        assert_eq!(mongo.engine.name(), "mongodb");
        assert_eq!(mongo.databases, Databases::All);
    }
}
