//! Database engines, as data.
//!
//! Each engine is a TOML spec (`engines/*.toml`, embedded at build time) interpreted by this
//! module and its parts: [`spec`] (the format and its validation), [`template`] (`{var}`),
//! [`vars`] (where each variable's value comes from, chosen without running anything),
//! [`render`] (the argv, env and stdin of a command), [`resolve`] (reading the values that
//! live in files inside the container) and [`site`] (the target container, or a helper with
//! its volumes). Nothing here is specific to one database: a new capability becomes a word of
//! the spec vocabulary, not a special case. The dump itself is run by [`crate::backup`].

mod compile;
pub mod drill;
pub mod render;
pub mod resolve;
pub mod site;
pub mod spec;
pub mod template;
pub mod trailer;
pub mod vars;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use render::{Invocation, RenderError};
pub use spec::{Engine, EngineSpec, Source, SpecError};
pub use vars::{Chosen, MissingVar, ValueText, choose_vars};

use crate::discover::ContainerInfo;

/// The built-in specs: (file name, text).
const BUILTIN: &[(&str, &str)] = &[
    ("postgres", include_str!("../../engines/postgres.toml")),
    (
        "postgres-custom",
        include_str!("../../engines/postgres-custom.toml"),
    ),
    ("mysql", include_str!("../../engines/mysql.toml")),
    ("sqlite", include_str!("../../engines/sqlite.toml")),
    ("mongodb", include_str!("../../engines/mongodb.toml")),
    ("redis", include_str!("../../engines/redis.toml")),
    ("etcd", include_str!("../../engines/etcd.toml")),
    ("files", include_str!("../../engines/files.toml")),
];

/// Other names users write for built-in engines.
const ALIASES: &[(&str, &str)] = &[
    ("postgresql", "postgres"),
    ("mariadb", "mysql"),
    ("mongo", "mongodb"),
    ("sqlite3", "sqlite"),
    ("valkey", "redis"),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn container(image: &str, env: &[&str]) -> ContainerInfo {
        ContainerInfo::running(image, env)
    }

    #[test]
    fn user_specs_load_replace_and_fail_clearly() {
        let dir = std::env::temp_dir().join(format!("stowage-engines-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(
            "engines/examples/pg-custom-example.toml",
            dir.join("a.toml"),
        )
        .unwrap();
        std::fs::write(dir.join("README.txt"), "not a spec").unwrap();
        let r = Registry::with_dir(Some(&dir)).unwrap();
        let custom = r.get("pg-custom-example").expect("the example loads");
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
}
