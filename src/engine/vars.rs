//! Where each of an engine's variables gets its value, chosen at plan time.
//!
//! A `stowage.<var>` label first (or `stowage.<var>_file` for a secret), then the first
//! account whose variables are all present, then the variable's own sources in the spec's
//! order. Nothing is run: a value that lives in a file inside the container is only named
//! here and read by [`super::resolve`] when a backup starts.

use std::collections::BTreeMap;

use super::spec::{Engine, Source};
use crate::discover::ContainerInfo;
use crate::discover::labels::Labels;
use crate::error_text::{SHOWN, shorten};
use crate::secret::Secret;

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
            } => format!("{} (label {label})", shorten(v, SHOWN)),
            Self::Label { label, .. } => format!("label {label}"),
            Self::LabelFile { label, path } => {
                format!("file {path} in the container (label {label})")
            }
            Self::Env {
                name,
                value: ValueText::Plain(v),
            } => format!("{} (env {name})", shorten(v, SHOWN)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Registry;

    fn container(image: &str, env: &[&str]) -> ContainerInfo {
        ContainerInfo::running(image, env)
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
                crate::discover::labels::LabelValue {
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
}
