//! Database engines, as data.
//!
//! Each engine is a TOML spec (`engines/*.toml`, embedded at build time) interpreted by this
//! module: detection from image and environment, choosing where each variable's value comes
//! from, and rendering the dump command. Nothing here is specific to one database: a new
//! capability becomes a word of the spec vocabulary in [`spec`], not a special case.
//! This module runs nothing in containers; [`crate::backup`] does, with what it renders.

pub mod spec;
pub mod template;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use spec::{Engine, EngineSpec, Source, SpecError};

use crate::discovery::ContainerInfo;
use crate::labels::Labels;
use crate::secret::Secret;

/// The built-in specs: (file name, text).
const BUILTIN: &[(&str, &str)] = &[
    ("postgres", include_str!("../../engines/postgres.toml")),
    ("mysql", include_str!("../../engines/mysql.toml")),
    ("sqlite", include_str!("../../engines/sqlite.toml")),
    ("mongodb", include_str!("../../engines/mongodb.toml")),
];

/// Other names users write for built-in engines.
const ALIASES: &[(&str, &str)] = &[
    ("postgresql", "postgres"),
    ("mariadb", "mysql"),
    ("mongo", "mongodb"),
    ("sqlite3", "sqlite"),
];

/// The engines stowage knows.
#[derive(Debug, Clone)]
pub struct Registry {
    engines: Vec<Arc<Engine>>,
}

impl Registry {
    /// The built-in engines. They are tested to be valid, so a failure here is a build bug.
    pub fn builtin() -> Result<Self, SpecError> {
        let engines = BUILTIN
            .iter()
            .map(|(name, text)| Engine::from_toml(&format!("built-in {name}"), text).map(Arc::new))
            .collect::<Result<_, _>>()?;
        Ok(Self { engines })
    }

    /// The built-in engines plus every `*.toml` spec in `dir` (sorted by file name). A user
    /// spec with a built-in's name replaces it. Any malformed spec is an error naming its file
    /// and field: better to refuse to start than to back up with half the engines.
    pub fn with_dir(dir: Option<&Path>) -> Result<Self, SpecError> {
        let mut registry = Self::builtin()?;
        let Some(dir) = dir else {
            return Ok(registry);
        };
        let io_err = |path: &Path, e: std::io::Error| SpecError {
            origin: path.display().to_string(),
            field: "file".into(),
            reason: format!("cannot read: {e}"),
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| io_err(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
            .collect();
        files.sort();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
            let engine = Arc::new(Engine::from_toml(&path.display().to_string(), &text)?);
            match registry
                .engines
                .iter_mut()
                .find(|e| e.name() == engine.name())
            {
                Some(existing) if existing.origin.starts_with("built-in") => {
                    tracing::info!(engine = engine.name(), file = %path.display(), "user spec replaces the built-in engine");
                    *existing = engine;
                }
                Some(existing) => {
                    return Err(SpecError {
                        origin: path.display().to_string(),
                        field: "name".into(),
                        reason: format!(
                            "engine {:?} is already defined in {}",
                            engine.name(),
                            existing.origin
                        ),
                    });
                }
                None => registry.engines.push(engine),
            }
        }
        Ok(registry)
    }

    /// All engines, in definition order.
    pub fn all(&self) -> &[Arc<Engine>] {
        &self.engines
    }

    /// The engine with this name, or with the name this alias stands for (`postgresql` →
    /// `postgres`, `mariadb` → `mysql`). Exact names win, so a user engine may take an alias.
    pub fn get(&self, name: &str) -> Option<&Arc<Engine>> {
        let find = |n: &str| self.engines.iter().find(|e| e.name() == n);
        find(name).or_else(|| {
            ALIASES
                .iter()
                .find(|(alias, _)| *alias == name)
                .and_then(|(_, real)| find(real))
        })
    }

    /// The engine a container runs, from its image or environment; `None` if nothing matches.
    pub fn detect(&self, container: &ContainerInfo) -> Option<&Arc<Engine>> {
        let repo = image_repository_name(&container.image);
        self.engines.iter().find(|e| {
            e.spec.detect.images.iter().any(|i| i == repo)
                || e.spec
                    .detect
                    .env
                    .iter()
                    .any(|k| container.env.get(k).is_some())
        })
    }
}

/// The last path segment of an image reference, without tag or digest:
/// `docker.io/library/postgres:16@sha256:…` → `postgres`.
pub fn image_repository_name(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    last.split(':').next().unwrap_or(last)
}

/// Where one variable's value will come from, chosen at plan time without running anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chosen {
    /// A `stowage.<var>` label.
    Label { label: String, value: ValueText },
    /// A `stowage.<var>_file` label: a path inside the container.
    LabelFile { label: String, path: String },
    /// A container environment variable.
    Env { name: String, value: ValueText },
    /// A file inside the container, named by an environment variable.
    File { env: String, path: String },
    /// The first of these programs that the container has (probed when the backup runs).
    Program(Vec<String>),
    /// The spec's fixed value.
    Literal(String),
    /// No source is present (only for optional variables).
    Absent,
}

/// A value that is shown unless it is a secret.
#[derive(Clone, PartialEq, Eq)]
pub enum ValueText {
    /// Shown as is.
    Plain(String),
    /// Never shown.
    Secret(Secret),
}

impl std::fmt::Debug for ValueText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Plain(s) => write!(f, "{s:?}"),
            Self::Secret(s) => write!(f, "{s:?}"),
        }
    }
}

impl ValueText {
    fn new(value: &str, secret: bool) -> Self {
        if secret {
            Self::Secret(Secret::new(value))
        } else {
            Self::Plain(value.to_string())
        }
    }
}

impl Chosen {
    /// Where the value comes from, for `plan`; never the value of a secret.
    pub fn describe(&self) -> String {
        match self {
            Self::Label {
                label,
                value: ValueText::Plain(v),
            } => format!("{v} (label {label})"),
            Self::Label { label, .. } => format!("label {label}"),
            Self::LabelFile { label, path } => {
                format!("file {path} in the container (label {label})")
            }
            Self::Env {
                name,
                value: ValueText::Plain(v),
            } => format!("{v} (env {name})"),
            Self::Env { name, .. } => format!("env {name}"),
            Self::File { env, path } => format!("file {path} in the container ({env})"),
            Self::Literal(v) => format!("{v} (default)"),
            Self::Program(p) => format!("the first of {} found in the container", p.join(", ")),
            Self::Absent => "none".into(),
        }
    }

    /// The value when it is known without reading a file; `None` for files and absence.
    pub fn known_value(&self) -> Option<&str> {
        match self {
            Self::Label { value, .. } | Self::Env { value, .. } => Some(match value {
                ValueText::Plain(s) => s,
                ValueText::Secret(s) => s.expose(),
            }),
            Self::Literal(v) => Some(v),
            _ => None,
        }
    }
}

/// A variable that cannot be resolved from what the container offers.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no value for {var}: set label stowage.{var}{}", if tried.is_empty() { String::new() } else { format!(" or one of {tried}") })]
pub struct MissingVar {
    /// The variable.
    pub var: String,
    /// The sources that were looked at.
    pub tried: String,
}

/// Chooses the source of every variable of `engine` for a container: its `stowage.<var>`
/// (or `stowage.<var>_file` for secrets) label first, then the spec's sources in order.
pub fn choose_vars(
    engine: &Engine,
    labels: &Labels,
    container: &ContainerInfo,
) -> Result<BTreeMap<String, Chosen>, MissingVar> {
    let mut out = BTreeMap::new();
    // The first account whose every variable has a present source; its sources then come
    // before the variables' own, so a user and its password are taken together.
    let account = engine.spec.accounts.iter().find(|a| {
        a.iter()
            .all(|(_, sources)| first_present(sources, false, container).is_some())
    });
    for (name, var) in &engine.spec.vars {
        let chosen = if let Some(v) = labels.vars.get(name) {
            Chosen::Label {
                label: v.label.clone(),
                value: ValueText::new(&v.value, var.secret),
            }
        } else if let (true, Some(list)) = (name == "database", &labels.database) {
            // One run per listed database sets the value; this is for `plan` and checks.
            Chosen::Label {
                label: "stowage.database".into(),
                value: ValueText::new(list, false),
            }
        } else if let (true, Some(p)) = (var.secret, labels.vars.get(&format!("{name}_file"))) {
            Chosen::LabelFile {
                label: p.label.clone(),
                path: p.value.clone(),
            }
        } else {
            account
                .and_then(|a| a.get(name))
                .and_then(|sources| first_present(sources, var.secret, container))
                .or_else(|| first_present(&var.from, var.secret, container))
                .unwrap_or(Chosen::Absent)
        };
        if chosen == Chosen::Absent && !var.optional {
            let tried: Vec<String> = var
                .from
                .iter()
                .map(|s| match s {
                    Source::Env(n) => format!("env {n}"),
                    Source::File(n) => format!("env {n}"),
                    Source::Literal(_) | Source::Program(_) => {
                        unreachable!("literals and programs are always chosen")
                    }
                })
                .collect();
            return Err(MissingVar {
                var: name.clone(),
                tried: tried.join(", "),
            });
        }
        out.insert(name.clone(), chosen);
    }
    Ok(out)
}

/// The first source in `sources` that the container offers.
fn first_present(sources: &[Source], secret: bool, container: &ContainerInfo) -> Option<Chosen> {
    sources.iter().find_map(|s| match s {
        Source::Env(n) => container.env.get(n).map(|v| Chosen::Env {
            name: n.clone(),
            value: ValueText::new(v, secret),
        }),
        Source::File(n) => container.env.get(n).map(|p| Chosen::File {
            env: n.clone(),
            path: p.to_string(),
        }),
        Source::Program(_) => Some(Chosen::Program(
            sources
                .iter()
                .filter_map(|s| match s {
                    Source::Program(p) => Some(p.clone()),
                    _ => None,
                })
                .collect(),
        )),
        Source::Literal(v) => Some(Chosen::Literal(v.clone())),
    })
}

/// An exec ready to run: argv (never holding a secret) and environment.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// `NAME`, value. Values may be secrets.
    pub env: Vec<(String, Secret)>,
    /// A line to write to the command's stdin first; may hold a secret.
    pub stdin: Option<Secret>,
    /// The spec part it came from, for completeness checks.
    pub dump: Option<spec::Dump>,
}

impl Engine {
    /// Renders the dump command: `database` is `None` for `dump_all` (when the spec has one).
    /// `values` holds every present variable's value; absent optional ones drop their env
    /// entries.
    pub fn dump_invocation(
        &self,
        all: bool,
        values: &BTreeMap<String, String>,
    ) -> Result<Invocation, String> {
        let (compiled, spec) = match (all, &self.dump_all, &self.spec.dump_all) {
            (true, Some(c), Some(s)) => (c, s),
            _ => (&self.dump, &self.spec.dump),
        };
        let (argv, env, stdin) = self.render(compiled, values)?;
        Ok(Invocation {
            argv,
            env,
            stdin,
            dump: Some(spec.clone()),
        })
    }

    /// Renders the restore command, if the spec has one.
    pub fn restore_invocation(
        &self,
        values: &BTreeMap<String, String>,
    ) -> Option<Result<Invocation, String>> {
        let compiled = self.restore.as_ref()?;
        Some(
            self.render(compiled, values)
                .map(|(argv, env, stdin)| Invocation {
                    argv,
                    env,
                    stdin,
                    dump: None,
                }),
        )
    }

    /// Renders the version command, if the spec has one.
    pub fn version_invocation(&self, values: &BTreeMap<String, String>) -> Option<Vec<String>> {
        self.version
            .as_ref()
            .and_then(|argv| argv.iter().map(|t| t.render(values).ok()).collect())
    }
}

/// A rendered command: argv, environment and stdin line.
type Rendered = (Vec<String>, Vec<(String, Secret)>, Option<Secret>);

impl Engine {
    /// Renders a command. An argv entry, env entry or stdin line that uses an absent
    /// *optional* variable is dropped (so `--username={user}` disappears when there is no
    /// user); an absent required variable is an error.
    fn render(
        &self,
        compiled: &spec::Compiled,
        values: &BTreeMap<String, String>,
    ) -> Result<Rendered, String> {
        let optional = |v: &str| self.spec.vars.get(v).is_some_and(|s| s.optional);
        let mut argv = Vec::new();
        for t in &compiled.argv {
            match t.render(values) {
                Ok(a) => argv.push(a),
                Err(v) if optional(&v) => {}
                Err(v) => return Err(format!("no value for {{{v}}}")),
            }
        }
        let env = compiled
            .env
            .iter()
            .filter_map(|(k, t)| t.render(values).ok().map(|v| (k.clone(), Secret::new(v))))
            .collect();
        let stdin = match compiled.stdin.as_ref().map(|t| t.render(values)) {
            Some(Ok(line)) => {
                // The line is read up to its newline: a value must not end it early.
                let body = line.strip_suffix('\n').unwrap_or(&line);
                if body.contains(['\n', '\r', '\0', '\u{8}', '\u{7f}']) {
                    return Err("a value sent on stdin contains a line break or control character, which the tool would misread; change it".into());
                }
                Some(Secret::new(line))
            }
            Some(Err(v)) if optional(&v) => None,
            Some(Err(v)) => return Err(format!("no value for {{{v}}}")),
            None => None,
        };
        Ok((argv, env, stdin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::Env;

    fn container(image: &str, env: &[&str]) -> ContainerInfo {
        ContainerInfo {
            id: "abc".into(),
            name: "db".into(),
            image: image.into(),
            state: "running".into(),
            labels: Default::default(),
            env: Env::from_list(&env.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
        }
    }

    #[test]
    fn user_specs_load_replace_and_fail_clearly() {
        let dir = std::env::temp_dir().join(format!("stowage-engines-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy("engines/examples/postgres-custom.toml", dir.join("a.toml")).unwrap();
        std::fs::write(dir.join("README.txt"), "not a spec").unwrap();
        let r = Registry::with_dir(Some(&dir)).unwrap();
        let custom = r.get("postgres-custom").expect("the example loads");
        assert!(custom.origin.ends_with("a.toml"));
        assert!(custom.restore.is_some());
        assert!(r.get("postgres").unwrap().origin.starts_with("built-in"));

        std::fs::write(
            dir.join("b.toml"),
            include_str!("../../engines/postgres.toml").replace(
                "pg_dump\", \"--username",
                "pg_dump\", \"--no-comments\", \"--username",
            ),
        )
        .unwrap();
        let r = Registry::with_dir(Some(&dir)).unwrap();
        assert!(
            r.get("postgres").unwrap().origin.ends_with("b.toml"),
            "a user spec replaces the built-in"
        );

        std::fs::write(
            dir.join("c.toml"),
            "name = \"broken\"\ndescription = \"x\"\nextension = \"sql\"\n[dump]\nargv = []\n",
        )
        .unwrap();
        let e = Registry::with_dir(Some(&dir)).unwrap_err();
        assert!(
            e.origin.ends_with("c.toml") && e.field == "dump.argv",
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn detects_by_image_or_env() {
        let r = Registry::builtin().unwrap();
        for image in [
            "postgres",
            "postgres:16-alpine",
            "docker.io/library/postgres:15@sha256:ab",
            "postgis/postgis:16-3.4",
            "stowage-test/postgres:test",
        ] {
            assert_eq!(
                r.detect(&container(image, &[])).map(|e| e.name()),
                Some("postgres"),
                "{image}"
            );
        }
        assert!(
            r.detect(&container("myorg/app:1", &["POSTGRES_PASSWORD=x"]))
                .is_none(),
            "an app that connects to postgres is not postgres"
        );
        assert!(
            r.detect(&container("custom/db:1", &["PG_MAJOR=16"]))
                .is_some()
        );
        assert_eq!(
            r.detect(&container("mariadb:11", &[])).map(|e| e.name()),
            Some("mysql")
        );
        assert_eq!(r.get("mariadb").map(|e| e.name()), Some("mysql"));
        assert_eq!(r.get("postgresql").map(|e| e.name()), Some("postgres"));
        assert_eq!(image_repository_name("localhost:5000/x/pg:1"), "pg");
    }

    #[test]
    fn vars_follow_label_then_spec_order() {
        let r = Registry::builtin().unwrap();
        let pg = r.get("postgres").unwrap();
        let c = container(
            "postgres",
            &[
                "POSTGRES_USER=app",
                "POSTGRES_PASSWORD_FILE=/run/secrets/pg",
            ],
        );
        let v = choose_vars(pg, &Labels::default(), &c).unwrap();
        assert_eq!(v["user"].describe(), "app (env POSTGRES_USER)");
        assert_eq!(v["database"].describe(), "app (env POSTGRES_USER)");
        assert_eq!(
            v["password"].describe(),
            "file /run/secrets/pg in the container (POSTGRES_PASSWORD_FILE)"
        );

        let mut labels = Labels::default();
        for (k, v) in [("user", "bob"), ("password", "s3cret")] {
            let label = format!("stowage.{k}");
            labels.vars.insert(
                k.into(),
                crate::labels::LabelValue {
                    value: v.into(),
                    label,
                },
            );
        }
        let v = choose_vars(
            pg,
            &labels,
            &container("postgres", &["POSTGRES_PASSWORD=x"]),
        )
        .unwrap();
        assert_eq!(v["user"].describe(), "bob (label stowage.user)");
        assert_eq!(v["password"].describe(), "label stowage.password");
        assert!(!format!("{v:?}").contains("s3cret"));
        let bare = choose_vars(pg, &Labels::default(), &container("postgres", &[])).unwrap();
        assert_eq!(bare["password"], Chosen::Absent);
        assert_eq!(bare["database"].describe(), "postgres (default)");
    }

    #[test]
    fn accounts_take_user_and_password_together() {
        let r = Registry::builtin().unwrap();
        let my = r.get("mariadb").unwrap();
        let pick = |env: &[&str]| {
            let v = choose_vars(my, &Labels::default(), &container("mariadb:11", env)).unwrap();
            (v["user"].describe(), v["password"].describe())
        };
        // Root wins when its password is known, even with an application account.
        let (user, pw) = pick(&[
            "MARIADB_ROOT_PASSWORD=r",
            "MARIADB_USER=app",
            "MARIADB_PASSWORD=a",
        ]);
        assert_eq!(
            (user.as_str(), pw.as_str()),
            ("root (default)", "env MARIADB_ROOT_PASSWORD")
        );
        // A random root password: the application account, user and password as a pair.
        let (user, pw) = pick(&[
            "MARIADB_RANDOM_ROOT_PASSWORD=yes",
            "MARIADB_USER=app",
            "MARIADB_PASSWORD_FILE=/run/secrets/db",
        ]);
        assert_eq!(user, "app (env MARIADB_USER)");
        assert_eq!(
            pw,
            "file /run/secrets/db in the container (MARIADB_PASSWORD_FILE)"
        );
        let (user, _) = pick(&["MYSQL_USER=legacy", "MYSQL_PASSWORD=x"]);
        assert_eq!(user, "legacy (env MYSQL_USER)");
        // A user without its password is no account: root with an empty password.
        let (user, pw) = pick(&["MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1", "MARIADB_USER=app"]);
        assert_eq!((user.as_str(), pw.as_str()), ("root (default)", "none"));
    }

    /// MongoDB cannot run here: its commands and credentials are checked as rendered.
    #[test]
    fn mongodb_password_goes_to_stdin_never_argv() {
        let r = Registry::builtin().unwrap();
        let mongo = r.get("mongo").unwrap();
        let c = container(
            "mongo:7",
            &[
                "MONGO_INITDB_ROOT_USERNAME=admin",
                "MONGO_INITDB_ROOT_PASSWORD_FILE=/run/secrets/mongo",
            ],
        );
        let v = choose_vars(mongo, &Labels::default(), &c).unwrap();
        assert_eq!(
            v["user"].describe(),
            "admin (env MONGO_INITDB_ROOT_USERNAME)"
        );
        assert_eq!(
            v["password"].describe(),
            "file /run/secrets/mongo in the container (MONGO_INITDB_ROOT_PASSWORD_FILE)"
        );
        assert_eq!(v["database"], Chosen::Absent);

        let values = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let creds = [("user", "admin"), ("password", "p w'$(x)")];
        let all = mongo.dump_invocation(true, &values(&creds)).unwrap();
        assert_eq!(
            all.argv,
            [
                "mongodump",
                "--archive",
                "--username=admin",
                "--authenticationDatabase=admin"
            ]
        );
        assert!(all.env.is_empty());
        assert_eq!(all.stdin.as_ref().unwrap().expose(), "p w'$(x)\n");
        assert!(!format!("{all:?}").contains("p w'"), "stdin is redacted");

        let mut one = values(&creds);
        one.insert("database".into(), "shop".into());
        let inv = mongo.dump_invocation(false, &one).unwrap();
        assert_eq!(inv.argv.last().unwrap(), "--db=shop");

        // No authentication configured: no user, no stdin.
        let open = mongo.dump_invocation(true, &BTreeMap::new()).unwrap();
        assert_eq!(
            open.argv,
            ["mongodump", "--archive", "--authenticationDatabase=admin"]
        );
        assert!(open.stdin.is_none());

        // The tools read the password up to the first line break: refuse what they would cut.
        let bad = values(&[("user", "admin"), ("password", "a\nb")]);
        assert!(
            mongo
                .dump_invocation(true, &bad)
                .unwrap_err()
                .contains("line break")
        );

        let mut restore = values(&creds);
        restore.insert("database".into(), "copy".into());
        restore.insert("source_database".into(), "shop".into());
        let inv = mongo.restore_invocation(&restore).unwrap().unwrap();
        assert_eq!(
            inv.argv,
            [
                "mongorestore",
                "--archive",
                "--username=admin",
                "--authenticationDatabase=admin",
                "--nsFrom=shop.*",
                "--nsTo=copy.*"
            ]
        );
        assert_eq!(inv.stdin.unwrap().expose(), "p w'$(x)\n");
        let whole = mongo.restore_invocation(&values(&creds)).unwrap().unwrap();
        assert!(!whole.argv.iter().any(|a| a.starts_with("--ns")));
    }

    #[test]
    fn invocation_keeps_password_in_env() {
        let r = Registry::builtin().unwrap();
        let pg = r.get("postgres").unwrap();
        let values = BTreeMap::from([
            ("user".to_string(), "u".to_string()),
            ("database".to_string(), "my db".to_string()),
            ("password".to_string(), "p w'$(x);".to_string()),
        ]);
        let inv = pg.dump_invocation(false, &values).unwrap();
        assert_eq!(
            inv.argv,
            ["pg_dump", "--username=u", "--dbname=my db", "--no-password"]
        );
        assert!(!inv.argv.iter().any(|a| a.contains("p w'")));
        assert_eq!(inv.env[0].0, "PGPASSWORD");
        assert_eq!(inv.env[0].1.expose(), "p w'$(x);");
        let all = pg.dump_invocation(true, &values).unwrap();
        assert_eq!(all.argv[0], "pg_dumpall");
        let no_pw = BTreeMap::from([
            ("user".to_string(), "u".to_string()),
            ("database".to_string(), "d".to_string()),
        ]);
        assert!(pg.dump_invocation(false, &no_pw).unwrap().env.is_empty());
    }
}
