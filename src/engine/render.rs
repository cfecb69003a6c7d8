//! Rendering an engine's commands: argv (never holding a secret), environment and a stdin
//! line, from the values of its variables.

use std::collections::BTreeMap;

use super::spec::{self, Engine};
use crate::secret::Secret;

/// A command that cannot be rendered from the values at hand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A required variable has no value.
    #[error("no value for {{{0}}}")]
    Missing(String),
    /// A value sent on stdin would be cut or edited by the tool's line reader.
    #[error(
        "a value sent on stdin contains a line break or control character, which the tool would misread; change it"
    )]
    StdinControl,
}

impl crate::error::Temporary for RenderError {
    fn is_temporary(&self) -> bool {
        false
    }
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
    /// The spec of the dump `dump_invocation(all, …)` renders.
    pub fn dump_spec(&self, all: bool) -> &spec::Dump {
        match (all, &self.spec.dump_all) {
            (true, Some(s)) => s,
            _ => &self.spec.dump,
        }
    }

    /// Renders the dump command: `database` is `None` for `dump_all` (when the spec has one).
    /// `values` holds every present variable's value; absent optional ones drop their env
    /// entries.
    pub fn dump_invocation(
        &self,
        all: bool,
        values: &BTreeMap<String, String>,
    ) -> Result<Invocation, RenderError> {
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
    ) -> Option<Result<Invocation, RenderError>> {
        let compiled = self.restore.as_ref()?;
        Some(self.command_invocation(compiled, values))
    }

    /// Renders one of the spec's other commands (restore; a drill's ready, rows or check
    /// command).
    pub(crate) fn command_invocation(
        &self,
        compiled: &spec::Compiled,
        values: &BTreeMap<String, String>,
    ) -> Result<Invocation, RenderError> {
        self.render(compiled, values)
            .map(|(argv, env, stdin)| Invocation {
                argv,
                env,
                stdin,
                dump: None,
            })
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
    ) -> Result<Rendered, RenderError> {
        let optional =
            |v: &str| v == spec::JOBS_VAR || self.spec.vars.get(v).is_some_and(|s| s.optional);
        let mut argv = Vec::new();
        for t in &compiled.argv {
            match t.render(values) {
                Ok(a) => argv.push(a),
                Err(v) if optional(&v.0) => {}
                Err(v) => return Err(RenderError::Missing(v.0)),
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
                    return Err(RenderError::StdinControl);
                }
                Some(Secret::new(line))
            }
            Some(Err(v)) if optional(&v.0) => None,
            Some(Err(v)) => return Err(RenderError::Missing(v.0)),
            None => None,
        };
        Ok((argv, env, stdin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::ContainerInfo;
    use crate::discover::labels::Labels;
    use crate::engine::{Chosen, Registry, choose_vars};

    fn container(image: &str, env: &[&str]) -> ContainerInfo {
        ContainerInfo::running(image, env)
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
                .to_string()
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
