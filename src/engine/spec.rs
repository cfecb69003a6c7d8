//! The engine spec format: what a file in `engines/` may say, and its validation.
//!
//! A spec is plain TOML (see `engines/postgres.toml`, which documents each field). Loading
//! checks everything that can be checked without a container: field names and types (unknown
//! fields are errors), template syntax, that every `{var}` is declared, and that no secret
//! variable is ever placed in an argv (argv is visible in `ps` and in `docker inspect`).

use std::collections::BTreeMap;

use serde::Deserialize;

pub(crate) use super::compile::Compiled;
use super::compile::Compiler;
pub use super::compile::SpecError;
use super::template::Template;

/// The variable that holds a `to_file` dump's or a `from_file` restore's temp path.
pub const FILE_VAR: &str = "file";

/// The variable `stowage restore --jobs N` sets (optional: entries using it are left out).
pub const JOBS_VAR: &str = "jobs";

/// One engine, as written in its spec file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSpec {
    /// Short name, used in `stowage.engine` and in manifests.
    pub name: String,
    /// One line for `stowage engines` and `plan`.
    pub description: String,
    /// File extension of the raw dump (`sql`), before `.zst`.
    pub extension: String,
    /// How a container is recognised as this engine.
    #[serde(default)]
    pub detect: Detect,
    /// Variables (credentials, database name) and where their values come from.
    #[serde(default)]
    pub vars: BTreeMap<String, VarSpec>,
    /// Variables that belong together, such as a user and its password: the first account
    /// whose every variable has a present source is used, before the variables' own `from`.
    #[serde(default)]
    pub accounts: Vec<BTreeMap<String, Vec<Source>>>,
    /// A command whose first output line names the dump tool's version.
    pub version: Option<Command>,
    /// The dump of one database (`{database}`), or of everything if there is no `dump_all`.
    pub dump: Dump,
    /// The dump of all databases, used for `stowage.database=all`.
    pub dump_all: Option<Dump>,
    /// The command that reads a dump of one database on stdin and applies it.
    pub restore: Option<Restore>,
    /// Where the commands run when the container lacks the engine's program.
    pub helper: Option<Helper>,
    /// How a restore drill runs (see [`super::drill`]).
    pub drill: Option<super::drill::DrillSpec>,
}

/// A short-lived helper container for targets that lack the engine's program: made from
/// stowage's own image, with the target's volumes (`--volumes-from`) and no network.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Helper {
    /// The program whose absence from the target (probed with `NAME --version`) calls for
    /// the helper; without it, commands always run in the helper.
    pub when_missing: Option<String>,
    /// The helper mounts the target's volumes read-only (`--volumes-from ID:ro`), so nothing
    /// it runs can change them.
    #[serde(default)]
    pub read_only: bool,
    /// In the helper, commands run as the owner (uid:gid) of this path, or of its directory
    /// when it does not exist yet, so that files the tool creates belong to the application.
    pub run_as_owner_of: Option<String>,
}

/// Detection rules: any match is enough.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detect {
    /// Last path segment of the image repository, without tag (`postgres` for `postgres:16`).
    #[serde(default)]
    pub images: Vec<String>,
    /// Environment variables whose presence identifies the engine's image.
    #[serde(default)]
    pub env: Vec<String>,
}

/// A variable's sources, first present wins.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VarSpec {
    /// `env:NAME`, `file:NAME` (read the file whose path is in env NAME, inside the
    /// container), `program:NAME` (NAME, if the container has that program; consecutive
    /// `program:` sources are alternatives probed in order) or `literal:VALUE`.
    #[serde(default)]
    pub from: Vec<Source>,
    /// A secret never goes into an argv and is never shown.
    #[serde(default)]
    pub secret: bool,
    /// An absent optional variable drops the argv entries, env entries and stdin line that
    /// use it; an absent required one skips the target. A required variable with no sources
    /// must be given by its `stowage.<var>` label.
    #[serde(default)]
    pub optional: bool,
}

/// Where one variable's value may come from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Source {
    /// The container's environment variable.
    Env(String),
    /// A file inside the container whose path is in this environment variable.
    File(String),
    /// A program, if the container has it (probed with `NAME --version`).
    Program(String),
    /// A fixed value.
    Literal(String),
}

impl TryFrom<String> for Source {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.split_once(':') {
            Some(("env", n)) if !n.is_empty() => Ok(Self::Env(n.into())),
            Some(("file", n)) if !n.is_empty() => Ok(Self::File(n.into())),
            Some(("literal", v)) => Ok(Self::Literal(v.into())),
            Some(("program", n)) if !n.is_empty() && !n.starts_with('-') => {
                Ok(Self::Program(n.into()))
            }
            _ => Err(format!(
                "source {s:?} is not env:NAME, file:NAME, program:NAME or literal:VALUE"
            )),
        }
    }
}

/// A command with no stdin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    /// Program and arguments; `{var}` templates allowed (never secret ones).
    pub argv: Vec<String>,
}

/// A dump command and how to tell that its output is complete.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dump {
    /// Program and arguments; `{var}` templates allowed (never secret ones).
    pub argv: Vec<String>,
    /// Environment for the exec; entries whose optional variable is absent are dropped.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Text that a complete dump contains near its end.
    pub complete_marker: Option<String>,
    /// How many bytes at the end of the stream are searched for the marker.
    #[serde(default = "default_marker_window")]
    pub marker_window: usize,
    /// Text that, seen on stderr, fails the dump even with exit code 0.
    #[serde(default)]
    pub error_patterns: Vec<String>,
    /// Exit codes other than 0 after which the output is still complete, the tool having
    /// warned (GNU tar's 1: a file changed while it was read). The backup succeeds and its
    /// stderr is logged as a warning.
    #[serde(default)]
    pub warn_exit_codes: Vec<i64>,
    /// The binary end a complete stream has, for formats without a text marker.
    pub trailer: Option<super::trailer::Trailer>,
    /// The tool writes the dump to a file, `{file}` (a temp path stowage picks inside the
    /// container), not to stdout: once it exits, stowage streams the file out with `cat` and
    /// removes it with `rm`, on every path.
    #[serde(default)]
    pub to_file: bool,
    /// A line written to the command's stdin, which is then closed (for tools that read a
    /// password there); may hold secrets. Dropped when one of its optional variables is
    /// absent.
    pub stdin: Option<String>,
    /// The stdout buffer, in bytes, the tool runs with when the container has coreutils'
    /// `stdbuf` (`stdbuf -o N`). stdio gives a pipe 4 KiB, and a dump written 4 KiB per
    /// write(2) costs a wake-up per 4 KiB all along the exec chain. Only for tools that
    /// write through C stdio (not Go's); without `stdbuf`, the tool runs as written.
    pub stdout_buffer: Option<usize>,
}

/// The smallest `stdout_buffer` that is worth a wrapper (stdio's own for a pipe).
pub const MIN_STDOUT_BUFFER: usize = 4096;
/// The largest `stdout_buffer`: a larger buffer costs memory in the database's container, and
/// 1 MiB was already slower than 64 KiB (BENCHMARKS.md).
pub const MAX_STDOUT_BUFFER: usize = 1 << 20;

fn default_marker_window() -> usize {
    4096
}

/// A validated spec with its templates parsed.
#[derive(Debug, Clone)]
pub struct Engine {
    /// The spec as written.
    pub spec: EngineSpec,
    /// Where it came from (for messages).
    pub origin: String,
    pub(crate) dump: Compiled,
    pub(crate) dump_all: Option<Compiled>,
    pub(crate) restore: Option<Compiled>,
    /// `[restore.replace]`: the asking command and the path template.
    pub(crate) restore_ask: Option<Compiled>,
    pub(crate) restore_path: Option<Template>,
    pub(crate) version: Option<Vec<Template>>,
    pub(crate) helper_owner_of: Option<Template>,
    /// `[drill]`, compiled.
    pub drill: Option<super::drill::Drill>,
}

impl Engine {
    /// Parses and validates a spec. `origin` names the file in errors.
    // Long: the checks of a spec in the order of its fields, a few lines each; one place shows
    // everything a spec must satisfy.
    pub fn from_toml(origin: &str, text: &str) -> Result<Self, SpecError> {
        let err = |field: &str, reason: String| SpecError {
            origin: origin.to_string(),
            field: field.to_string(),
            reason,
        };
        let spec: EngineSpec = toml::from_str(text).map_err(|e| {
            let field = e
                .span()
                .map(|s| format!("at byte {}", s.start))
                .unwrap_or_else(|| "file".into());
            err(&field, e.message().to_string())
        })?;
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        };
        if !name_ok(&spec.name) {
            return Err(err("name", format!("{:?}: use a-z 0-9 - _", spec.name)));
        }
        if spec.extension.is_empty() || !spec.extension.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(err(
                "extension",
                format!("{:?}: use a-z 0-9", spec.extension),
            ));
        }
        for name in spec.vars.keys() {
            if !name_ok(name)
                || name.ends_with("_file")
                || crate::discover::labels::CORE_KEYS
                    .iter()
                    .any(|k| *k != "database" && k == name)
            {
                return Err(err(
                    &format!("vars.{name}"),
                    "not a usable variable name (a-z 0-9 _, not ending in _file, not a core label)"
                        .into(),
                ));
            }
        }
        for (i, account) in spec.accounts.iter().enumerate() {
            for (name, sources) in account {
                let field = format!("accounts[{i}].{name}");
                if !spec.vars.contains_key(name) {
                    return Err(err(&field, "not declared under [vars]".into()));
                }
                if sources.is_empty() {
                    return Err(err(&field, "needs at least one source".into()));
                }
            }
            if account.is_empty() {
                return Err(err(&format!("accounts[{i}]"), "is empty".into()));
            }
        }
        for reserved in [FILE_VAR, JOBS_VAR] {
            if spec.vars.contains_key(reserved) {
                return Err(err(
                    &format!("vars.{reserved}"),
                    format!("is reserved: stowage sets {{{reserved}}} itself"),
                ));
            }
        }
        let mut declared: BTreeMap<String, bool> = spec
            .vars
            .iter()
            .map(|(name, v)| (name.clone(), v.secret))
            .collect();
        declared.insert(FILE_VAR.into(), false);
        declared.insert(JOBS_VAR.into(), false);
        let c = Compiler {
            vars: &declared,
            origin,
        };
        let compile_dump = |field: &str, d: &Dump| -> Result<Compiled, SpecError> {
            let compiled = c.command(field, &d.argv, &d.env, &d.stdin)?;
            let uses_file = compiled
                .argv
                .iter()
                .any(|t| t.vars().any(|v| v == FILE_VAR));
            if uses_file != d.to_file {
                return Err(err(
                    &format!("{field}.argv"),
                    "{file} belongs in the argv of a dump with to_file = true, and only there"
                        .into(),
                ));
            }
            if let Some(n) = d.stdout_buffer
                && (d.to_file || !(MIN_STDOUT_BUFFER..=MAX_STDOUT_BUFFER).contains(&n))
            {
                return Err(err(
                    &format!("{field}.stdout_buffer"),
                    format!(
                        "{n}: must be {MIN_STDOUT_BUFFER} to {MAX_STDOUT_BUFFER} bytes, and only on a dump that writes to stdout (not to_file)"
                    ),
                ));
            }
            if d.warn_exit_codes.contains(&0) {
                return Err(err(
                    &format!("{field}.warn_exit_codes"),
                    "0 is success already; list only the codes that mean a warning".into(),
                ));
            }
            if let Some(m) = &d.complete_marker
                && (m.is_empty() || m.len() > d.marker_window)
            {
                return Err(err(
                    &format!("{field}.complete_marker"),
                    "must be non-empty and shorter than marker_window".into(),
                ));
            }
            Ok(compiled)
        };
        let dump = compile_dump("dump", &spec.dump)?;
        let dump_all = spec
            .dump_all
            .as_ref()
            .map(|d| compile_dump("dump_all", d))
            .transpose()?;
        let (mut restore, mut restore_ask, mut restore_path) = (None, None, None);
        match spec.restore.as_ref().map(|r| (r, &r.replace)) {
            Some((r, None)) => {
                let compiled = c.command("restore", &r.argv, &r.env, &r.stdin)?;
                let uses_file = compiled
                    .argv
                    .iter()
                    .any(|t| t.vars().any(|v| v == FILE_VAR));
                if uses_file != r.from_file {
                    return Err(err(
                        "restore.argv",
                        "{file} belongs in the argv of a restore with from_file = true, and only there".into(),
                    ));
                }
                restore = Some(compiled);
            }
            Some((r, Some(replace))) => {
                if !r.argv.is_empty() || r.stdin.is_some() {
                    return Err(err(
                        "restore.replace",
                        "a replacing restore has no argv or stdin of its own".into(),
                    ));
                }
                restore_ask = replace
                    .ask
                    .as_ref()
                    .map(|a| c.command("restore.replace.ask", &a.argv, &a.env, &None))
                    .transpose()?;
                let path = Template::parse(&replace.path)
                    .map_err(|r| err("restore.replace.path", r.to_string()))?;
                restore_path = Some(path);
            }
            None => {}
        }
        let version = spec
            .version
            .as_ref()
            .map(|v| c.argv("version.argv", &v.argv))
            .transpose()?;
        let helper_owner_of = match &spec.helper {
            Some(h) => {
                if let Some(p) = &h.when_missing
                    && (p.is_empty() || p.starts_with('-'))
                {
                    return Err(err("helper.when_missing", "must name a program".into()));
                }
                h.run_as_owner_of
                    .as_deref()
                    .map(|t| c.template("helper.run_as_owner_of", t))
                    .transpose()?
            }
            None => None,
        };
        let drill = spec
            .drill
            .as_ref()
            .map(|d| super::drill::Drill::compile(&c, d))
            .transpose()?;
        Ok(Self {
            spec,
            origin: origin.to_string(),
            drill,
            dump,
            dump_all,
            restore,
            restore_ask,
            restore_path,
            version,
            helper_owner_of,
        })
    }

    /// The engine's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Whether the per-database dump uses `{database}` (else it always dumps everything).
    pub fn dumps_one_database(&self) -> bool {
        self.dump
            .argv
            .iter()
            .any(|t| t.vars().any(|v| v == "database"))
    }
}

mod restore;
#[cfg(test)]
mod tests;

pub use restore::{AskCommand, Replace, Restore};
