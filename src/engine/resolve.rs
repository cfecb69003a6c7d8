//! Reading the values of a target's variables when a backup or restore starts.
//!
//! Labels, environment variables and literals are known from the plan. A value in a file
//! inside the container (`POSTGRES_PASSWORD_FILE`, `stowage.password_file`) is read with
//! `cat -- PATH` as an exec (at most [`VAR_FILE_LIMIT`] bytes), and a program alternative
//! (`program:mariadb-dump`, `program:mysqldump`) is probed with `NAME --version`. Values that
//! are not secrets are checked like label values, so a file cannot smuggle an option into
//! an argv.

use std::collections::BTreeMap;

use bollard::Docker;

use super::spec::Engine;
use super::vars::Chosen;
use crate::discover::labels;
use crate::docker::exec::{self, ExecError, ExecRequest};

/// Largest secret or name file read from a container.
pub const VAR_FILE_LIMIT: usize = 64 * 1024;

/// A variable whose value could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The exec that reads the file could not run.
    #[error("cannot read {var} ({source_text})")]
    Exec {
        /// The variable.
        var: String,
        /// Where its value was to come from.
        source_text: String,
        /// Why.
        #[source]
        source: ExecError,
    },
    /// The file could not be read inside the container.
    #[error(
        "cannot read {var} from {source_text}: {stderr}. Check that the file exists in the container"
    )]
    Unreadable {
        /// The variable.
        var: String,
        /// Where its value was to come from.
        source_text: String,
        /// The end of `cat`'s stderr.
        stderr: String,
    },
    /// The value is unusable (not UTF-8, or it would read as an option).
    #[error("{var} ({source_text}): {reason}")]
    Invalid {
        /// The variable.
        var: String,
        /// Where its value came from.
        source_text: String,
        /// What is wrong.
        reason: String,
    },
    /// None of a variable's program alternatives is installed.
    #[error(
        "none of {} is installed in the container; install one, or define an engine whose commands the container has", .candidates.join(", ")
    )]
    NoProgram {
        /// The programs probed.
        candidates: Vec<String>,
    },
}

impl crate::error::Temporary for ResolveError {
    fn is_temporary(&self) -> bool {
        match self {
            Self::Exec { source, .. } => source.is_temporary(),
            _ => false,
        }
    }
}

/// Reads every variable's value; see the module doc.
pub async fn resolve_values(
    docker: &Docker,
    container_id: &str,
    engine: &Engine,
    vars: &BTreeMap<String, Chosen>,
) -> Result<BTreeMap<String, String>, ResolveError> {
    let mut values = BTreeMap::new();
    for (name, chosen) in vars {
        let value = match chosen {
            Chosen::File { path, .. } | Chosen::LabelFile { path, .. } => {
                let secret = engine.spec.vars.get(name).is_some_and(|v| v.secret);
                read_file(docker, container_id, name, chosen, path, secret).await?
            }
            Chosen::Program(candidates) => probe_programs(docker, container_id, candidates).await?,
            Chosen::Absent => continue,
            other => other
                .known_value()
                .expect("label, env and literal values are known")
                .to_string(),
        };
        values.insert(name.clone(), value);
    }
    Ok(values)
}

async fn read_file(
    docker: &Docker,
    container_id: &str,
    var: &str,
    chosen: &Chosen,
    path: &str,
    secret: bool,
) -> Result<String, ResolveError> {
    let source_text = || chosen.describe();
    let req = ExecRequest {
        argv: vec!["cat".into(), "--".into(), path.to_string()],
        ..Default::default()
    };
    let (out, status) = exec::capture(docker, container_id, &req, VAR_FILE_LIMIT)
        .await
        .map_err(|source| ResolveError::Exec {
            var: var.to_string(),
            source_text: source_text(),
            source,
        })?;
    if !status.success() {
        return Err(ResolveError::Unreadable {
            var: var.to_string(),
            source_text: source_text(),
            stderr: exec::last_lines(&status.stderr, 2),
        });
    }
    let invalid = |reason: String| ResolveError::Invalid {
        var: var.to_string(),
        source_text: source_text(),
        reason,
    };
    // Like the official images' `$(< file)`: trailing newlines are not part of it.
    let text = String::from_utf8(out).map_err(|_| invalid("is not UTF-8".into()))?;
    let value = text.trim_end_matches(['\n', '\r']).to_string();
    if !secret {
        labels::check_argument(var, &value).map_err(|e| invalid(e.reason))?;
    }
    Ok(value)
}

async fn probe_programs(
    docker: &Docker,
    container_id: &str,
    candidates: &[String],
) -> Result<String, ResolveError> {
    for program in candidates {
        let req = ExecRequest {
            argv: vec![program.clone(), "--version".into()],
            ..Default::default()
        };
        if let Ok((_, status)) = exec::capture(docker, container_id, &req, 4096).await
            && status.success()
        {
            return Ok(program.clone());
        }
    }
    Err(ResolveError::NoProgram {
        candidates: candidates.to_vec(),
    })
}
