//! Config layers, secret files and the whole-config check.

use super::*;
use crate::pipeline::{Level, Threads};

#[test]
fn embedded_default_parses_and_validates() {
    let config: Config = Figment::from(Toml::string(DEFAULT_CONFIG))
        .extract()
        .unwrap();
    config.check().unwrap();
    assert_eq!(config.backup_dir, PathBuf::from("/backups"));
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail closure type
fn layers_and_unknown_keys() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "s.toml",
            "backup_dir = \"/srv/b\"\n[compression]\nlevel = 5\n",
        )?;
        jail.set_env("STOWAGE_COMPRESSION__LEVEL", "7");
        let c = Config::load(Some(Path::new("s.toml"))).unwrap();
        assert_eq!(c.backup_dir, PathBuf::from("/srv/b"));
        assert_eq!(c.compression.level, Level::Fixed(7), "env beats file");
        jail.set_env("STOWAGE_COMPRESSION__LEVEL", "auto");
        jail.set_env("STOWAGE_COMPRESSION__THREADS", "2");
        let c = Config::load(Some(Path::new("s.toml"))).unwrap();
        assert_eq!(c.compression.level, Level::Auto);
        assert_eq!(c.compression.threads, Threads::Fixed(2));
        jail.set_env("STOWAGE_COMPRESSION__LEVEL", "fast");
        let err = Config::load(Some(Path::new("s.toml"))).unwrap_err();
        assert!(err.to_string().contains("neither a number nor"), "{err}");
        jail.set_env("STOWAGE_COMPRESSION__LEVEL", "7");
        jail.set_env("STOWAGE_COMPRESION__LEVEL", "7");
        let err = Config::load(Some(Path::new("s.toml"))).unwrap_err();
        assert!(err.to_string().contains("compresion"), "{err}");
        Ok(())
    });
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail closure type
fn rejects_bad_values() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("STOWAGE_SCHEDULE", "61 * * * *");
        let err = Config::load(None).unwrap().check().unwrap_err().to_string();
        assert!(err.contains("schedule"), "{err}");
        Ok(())
    });
    // Inside a jail too: loading reads the environment, which other tests' jails change.
    figment::Jail::expect_with(|_| {
        let err = Config::load(Some(Path::new("/nonexistent/stowage.toml"))).unwrap_err();
        assert!(matches!(err, ConfigError::Missing(_)));
        let err = Config::load(Some(Path::new("/tmp"))).unwrap_err();
        assert!(matches!(err, ConfigError::NotAFile { .. }), "{err}");
        Config::load(Some(Path::new("/dev/null"))).expect("an empty config is fine");
        Ok(())
    });
}

/// The keys of the problems `check` finds in the environment's config, and the error text.
fn problem_keys() -> (Vec<String>, String) {
    let err = Config::load(None).unwrap().check().unwrap_err();
    let ConfigError::Invalid(problems) = &err else {
        panic!("{err}");
    };
    (
        problems.iter().map(|p| p.key.clone()).collect(),
        err.to_string(),
    )
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail closure type
fn check_reports_every_problem_with_its_key() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("STOWAGE_COMPRESSION__LEVEL", "42");
        jail.set_env("STOWAGE_ALERTS__EMAIL__HOST", "mail.example");
        jail.set_env("STOWAGE_ALERTS__EMAIL__FROM", "not an address");
        jail.set_env("STOWAGE_ALERTS__EMAIL__TO", "[\"ops@example.org\"]");
        jail.set_env("STOWAGE_HTTP__TOKEN", " ");
        jail.set_env("STOWAGE_DAEMON__MAX_CONCURRENT", "18446744073709551615");
        let (keys, err) = problem_keys();
        assert_eq!(
            keys,
            [
                "compression.level",
                "daemon.max_concurrent",
                "http.token",
                "alerts.email"
            ],
            "{err}"
        );
        assert!(err.to_string().contains("alerts.email.from"), "{err}");
        Ok(())
    });
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail closure type
fn secret_files_and_lists_from_the_environment() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("pp", "s3cret phrase\n")?;
        jail.set_env("STOWAGE_ENCRYPTION__PASSPHRASE_FILE", "pp");
        jail.set_env("STOWAGE_ENCRYPTION__RECIPIENTS", "age1aaa, age1bbb age1ccc");
        jail.set_env(
            "STOWAGE_ENCRYPTION__IDENTITY_FILES",
            "/k/one.txt,/k/two.txt",
        );
        let c = Config::load(None).unwrap();
        assert_eq!(
            c.encryption
                .passphrase
                .as_ref()
                .map(crate::secret::Secret::expose),
            Some("s3cret phrase")
        );
        assert_eq!(c.encryption.recipients, ["age1aaa", "age1bbb", "age1ccc"]);
        assert_eq!(
            c.encryption.identity_files.len(),
            2,
            "identity_files is not a secret"
        );
        assert!(!format!("{c:?}").contains("s3cret"));
        jail.set_env("STOWAGE_ENCRYPTION__PASSPHRASE_FILE", "missing");
        let err = Config::load(None).unwrap_err();
        let err = crate::error_text::one_line(&err);
        assert!(
            err.contains("STOWAGE_ENCRYPTION__PASSPHRASE_FILE") && err.contains("missing"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail closure type
fn host_and_coordination_are_checked() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("STOWAGE_HOST", "../etc");
        jail.set_env("STOWAGE_COORDINATION__STORAGE", "nowhere");
        jail.set_env("STOWAGE_COORDINATION__LEASE", "60");
        jail.set_env("STOWAGE_DAEMON__BACKUP_TIMEOUT", "600");
        let (keys, err) = problem_keys();
        assert_eq!(
            keys,
            ["host", "coordination.storage", "coordination.lease"],
            "{err}"
        );
        jail.set_env("STOWAGE_HOST", "db-host-1");
        jail.set_env("STOWAGE_STORAGE__NOWHERE__URL", "file:///tmp/stowage-x");
        jail.set_env("STOWAGE_COORDINATION__LEASE", "0");
        Config::load(None).unwrap().check().unwrap();
        Ok(())
    });
}
