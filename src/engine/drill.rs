//! The `[drill]` section of an engine spec: how a restore drill runs for this engine.
//!
//! A drill ([`crate::drill`]) restores an artifact into a throwaway container. What differs
//! per engine is data, said here: which image (the target's, or stowage's helper image for
//! engines without a server), the container's environment (fresh credentials), when the engine
//! is ready, how the dump's rows are counted ([`crate::pipeline::rows`]), how the restored
//! database's rows are counted, and which checks must pass. The core has no engine names in it.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::compile::{Compiled, Compiler, SpecError};
use super::template::Template;
use crate::pipeline::rows::RowFormat;

/// `[drill]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillSpec {
    /// Where the throwaway container comes from.
    #[serde(default)]
    pub image: DrillImage,
    /// Entrypoint and arguments for the container (default: the image's own).
    pub command: Option<Vec<String>>,
    /// The container's environment; `{password}` is a fresh random value, `{database}` the
    /// database to restore into, other variables the target's plain (non-secret) values.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The database to restore into (default: the artifact's).
    pub database: Option<String>,
    /// Artifacts of every database (`stowage.database=all`) can be drilled: restored whole,
    /// with tables counted as `database.table`.
    #[serde(default)]
    pub all: bool,
    /// Paths that get an anonymous volume.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// How the dump's rows are counted (also at backup, for shrink detection).
    pub count: Option<RowFormat>,
    /// Exits 0 once the engine accepts the restore; retried every second.
    pub ready: Option<DrillCommand>,
    /// Prints `TABLE<TAB>ROWS` per table of the restored database.
    pub rows: Option<DrillCommand>,
    /// Checks that must pass after the restore.
    #[serde(default)]
    pub checks: Vec<DrillCheck>,
}

/// The image a drill container is made from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DrillImage {
    /// The image ID of the target's container, so the engine version matches.
    #[default]
    Target,
    /// stowage's helper image (for engines whose tool is not in the application's image).
    Helper,
}

/// A command run in the drill container.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillCommand {
    /// Program and arguments; `{var}` templates (never secret ones).
    pub argv: Vec<String>,
    /// Environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// A check: the command must exit 0, print no line containing a `fail_patterns` entry, and,
/// with `expect`, print exactly that (trimmed).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillCheck {
    /// A short name for records and messages.
    pub name: String,
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Output text that fails the check.
    #[serde(default)]
    pub fail_patterns: Vec<String>,
    /// The whole (trimmed) output a passing check prints.
    pub expect: Option<String>,
}

/// `[drill]` with its templates parsed.
#[derive(Debug, Clone)]
pub struct Drill {
    /// As written.
    pub spec: DrillSpec,
    pub(crate) env: Vec<(String, Template)>,
    pub(crate) ready: Option<Compiled>,
    pub(crate) rows: Option<Compiled>,
    pub(crate) checks: Vec<Compiled>,
}

impl Drill {
    /// Validates and compiles `[drill]`.
    pub(crate) fn compile(c: &Compiler<'_>, spec: &DrillSpec) -> Result<Self, SpecError> {
        let command = |field: &str, d: &DrillCommand| c.command(field, &d.argv, &d.env, &None);
        if spec.command.as_ref().is_some_and(Vec::is_empty) {
            return Err(c.err("drill.command", "is empty".into()));
        }
        if let Some(v) = spec.volumes.iter().find(|v| !v.starts_with('/')) {
            return Err(c.err("drill.volumes", format!("{v:?} is not an absolute path")));
        }
        if spec.rows.is_some() && spec.count.is_none() {
            return Err(c.err(
                "drill.rows",
                "needs drill.count: the restored rows are compared with the dump's".into(),
            ));
        }
        Ok(Self {
            spec: spec.clone(),
            env: c.env("drill", &spec.env)?,
            ready: spec
                .ready
                .as_ref()
                .map(|r| command("drill.ready", r))
                .transpose()?,
            rows: spec
                .rows
                .as_ref()
                .map(|r| command("drill.rows", r))
                .transpose()?,
            checks: spec
                .checks
                .iter()
                .enumerate()
                .map(|(i, k)| c.command(&format!("drill.checks[{i}]"), &k.argv, &k.env, &None))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The drill container's environment for `values`; entries whose variable has no value
    /// are left out.
    pub fn container_env(&self, values: &BTreeMap<String, String>) -> Vec<String> {
        self.env
            .iter()
            .filter_map(|(k, t)| t.render(values).ok().map(|v| format!("{k}={v}")))
            .collect()
    }
}
