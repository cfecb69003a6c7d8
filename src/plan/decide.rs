//! The decisions of planning that stand alone: which databases a target covers, which
//! storages its artifacts go to, and what the user should fix that does not stop the backup.

use std::collections::BTreeMap;

use crate::discover::labels::{self, Labels};
use crate::engine::{Chosen, Engine};
use crate::remote::config::Storages;

use super::Databases;

/// Which databases a target's backup covers, from its label and the engine; `Err` is the
/// reason to skip the container.
pub(super) fn databases(
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
pub(super) fn warnings(
    engine: &Engine,
    labels: &Labels,
    vars: &BTreeMap<String, Chosen>,
) -> Vec<String> {
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
pub(super) fn storages(labels: &Labels, configured: &Storages) -> Result<Vec<String>, String> {
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
