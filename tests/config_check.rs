//! Every command checks the whole configuration before it does any work: a broken section
//! (here `[alerts]`, which only the daemon uses) stops `plan`, `backup`, `list` and the rest
//! with exit 2 and a message that names the key. No Docker is needed: nothing gets that far.

mod common;

use common::Scratch;
use std::process::Command;

/// Runs `stowage ARGS` with `config` as the config file: (exit code, stderr).
fn run(config: &std::path::Path, backup_dir: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stowage"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("STOWAGE_BACKUP_DIR", backup_dir)
        .env_remove("STOWAGE_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const COMMANDS: &[&[&str]] = &[
    &["plan"],
    &["backup"],
    &["list"],
    &["verify"],
    &["prune", "--dry-run"],
    &["upload"],
    &["engines"],
    &["alert-test"],
    &["config", "--check"],
    &["restore", "some.sql.zst", "--to", "db"],
    &["run"],
];

#[test]
fn a_broken_alerts_section_stops_every_command_naming_the_key() {
    let dir = Scratch::new("cfg-check");
    let backups = dir.path().join("backups");
    let cases = [
        // A value serde refuses.
        ("security = \"bogus\"", "alerts.email.security"),
        // A value only building the channel finds wrong.
        ("from = \"not an address\"", "alerts.email.from"),
    ];
    for (line, key) in cases {
        let config = dir.path().join("stowage.toml");
        let from = if line.starts_with("from") {
            ""
        } else {
            "from = \"stowage@example.org\"\n"
        };
        std::fs::write(
            &config,
            format!(
                "[alerts.email]\nhost = \"localhost\"\nto = [\"ops@example.org\"]\n{from}{line}\n"
            ),
        )
        .unwrap();
        for args in COMMANDS {
            let (code, err) = run(&config, &backups, args);
            assert_eq!(code, 2, "{args:?} with {line}: {err}");
            assert!(err.contains(key), "{args:?} does not name {key}: {err}");
        }
        assert!(!backups.exists(), "a command did work before the check");
    }
}

#[test]
fn config_check_reports_every_problem_at_once_and_passes_a_good_file() {
    let dir = Scratch::new("cfg-all");
    let config = dir.path().join("stowage.toml");
    std::fs::write(
        &config,
        "[compression]\nlevel = 40\nthreads = 0\n[http]\ntoken = \"  \"\n[storage.offsite]\nurl = \"ftp://x/y\"\n",
    )
    .unwrap();
    let (code, err) = run(&config, dir.path(), &["config", "--check"]);
    assert_eq!(code, 2, "{err}");
    for key in ["compression.level", "http.token", "storage.offsite"] {
        assert!(err.contains(key), "{key} missing from: {err}");
    }
    std::fs::write(&config, "").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stowage"))
        .args(["--config", config.to_str().unwrap(), "config", "--check"])
        .env_remove("STOWAGE_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration ok"));
    // A directory given as the config file is refused, not silently ignored.
    let (code, err) = run(dir.path(), dir.path(), &["plan"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a readable file"), "{err}");
}
