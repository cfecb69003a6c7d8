//! The `[restore]` section of a spec: a command that reads the dump on stdin or from a file,
//! or a file of the stopped container that the dump replaces.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A restore command: it reads the raw dump on its stdin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restore {
    /// Program and arguments; `{var}` templates allowed (never secret ones). Empty with
    /// `replace`.
    #[serde(default)]
    pub argv: Vec<String>,
    /// Instead of a command: the dump replaces a file of the stopped container.
    pub replace: Option<Replace>,
    /// The command reads the dump from `{file}`, not stdin: stowage first writes it there (a
    /// temp path in the container) and removes it afterwards, on every path.
    #[serde(default)]
    pub from_file: bool,
    /// Environment for the exec; entries whose optional variable is absent are dropped.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// A line written to the command's stdin before the dump (for tools that read a password
    /// there); may hold secrets. Dropped when one of its optional variables is absent.
    pub stdin: Option<String>,
}

/// A restore that puts the dump in place of a file the server reads at start (Redis's
/// dump.rdb): stowage asks the running server where that file is, stops the container, writes
/// the file through a helper container with its volumes (keeping the old file's owner), and
/// starts the container again, whatever happened.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replace {
    /// Run in the running container first; its output is read as alternating name and value
    /// lines (the shape of Redis's `CONFIG GET`), each pair usable as `{name}` in `path`.
    pub ask: Option<AskCommand>,
    /// The file replaced, e.g. `{dir}/{dbfilename}`.
    pub path: String,
    /// Asked names and the values that make the restore impossible, with why: each entry is
    /// `name = "value: reason"`.
    #[serde(default)]
    pub refuse: BTreeMap<String, String>,
}

/// A command with an environment (for secrets) and no stdin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskCommand {
    /// Program and arguments; `{var}` templates allowed (never secret ones).
    pub argv: Vec<String>,
    /// Environment; entries whose optional variable is absent are dropped.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}
