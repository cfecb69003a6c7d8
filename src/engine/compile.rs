//! Compiling a spec's commands: templates parsed, every `{var}` checked against the spec's
//! `[vars]`, secrets kept out of argv. Shared by the spec's sections ([`super::spec`],
//! [`super::drill`]).

use std::collections::BTreeMap;

use super::template::Template;

/// A spec that cannot be used. Names the spec and the field.
#[derive(Debug, thiserror::Error)]
#[error("engine spec {origin}: {field}: {reason}")]
pub struct SpecError {
    /// File path or `built-in NAME`.
    pub origin: String,
    /// Dotted field path.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

/// A command with parsed templates.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pub argv: Vec<Template>,
    pub env: Vec<(String, Template)>,
    pub stdin: Option<Template>,
}

/// Compiles a spec's commands, checking each `{var}` against `[vars]` and keeping secrets out
/// of argv. Shared by every section that holds commands.
pub(crate) struct Compiler<'a> {
    /// The declared variables, and whether each is a secret.
    pub vars: &'a BTreeMap<String, bool>,
    /// Where the spec came from.
    pub origin: &'a str,
}

impl Compiler<'_> {
    /// An error at `field`.
    pub fn err(&self, field: &str, reason: String) -> SpecError {
        SpecError {
            origin: self.origin.to_string(),
            field: field.to_string(),
            reason,
        }
    }

    /// An argv: non-empty, every variable declared, none secret.
    pub fn argv(&self, field: &str, argv: &[String]) -> Result<Vec<Template>, SpecError> {
        if argv.is_empty() {
            return Err(self.err(field, "argv is empty".into()));
        }
        argv.iter()
            .map(|a| {
                let t = Template::parse(a).map_err(|r| self.err(field, r.to_string()))?;
                for v in t.vars() {
                    match self.vars.get(v) {
                        None => return Err(self.err(field, format!("{{{v}}} is not declared under [vars]"))),
                        Some(true) => {
                            return Err(self.err(field, format!("secret {{{v}}} may not appear in argv (visible in ps and docker inspect); pass it in env")));
                        }
                        Some(false) => {}
                    }
                }
                Ok(t)
            })
            .collect()
    }

    /// A template whose variables are declared (secrets allowed).
    pub fn template(&self, field: &str, text: &str) -> Result<Template, SpecError> {
        let t = Template::parse(text).map_err(|r| self.err(field, r.to_string()))?;
        if let Some(v) = t.vars().find(|v| !self.vars.contains_key(*v)) {
            return Err(self.err(field, format!("{{{v}}} is not declared under [vars]")));
        }
        Ok(t)
    }

    /// An `env` table.
    pub fn env(
        &self,
        field: &str,
        vars: &BTreeMap<String, String>,
    ) -> Result<Vec<(String, Template)>, SpecError> {
        let mut env = Vec::new();
        for (k, v) in vars {
            let f = format!("{field}.env.{k}");
            if k.is_empty() || k.contains('=') {
                return Err(self.err(&f, "not a valid environment variable name".into()));
            }
            env.push((k.clone(), self.template(&f, v)?));
        }
        Ok(env)
    }

    /// A whole command: argv, env and stdin line.
    pub fn command(
        &self,
        field: &str,
        argv: &[String],
        env: &BTreeMap<String, String>,
        stdin: &Option<String>,
    ) -> Result<Compiled, SpecError> {
        Ok(Compiled {
            argv: self.argv(&format!("{field}.argv"), argv)?,
            env: self.env(field, env)?,
            stdin: stdin
                .as_deref()
                .map(|s| self.template(&format!("{field}.stdin"), s))
                .transpose()?,
        })
    }
}
