//! The fault suite, part two: what a careless or hostile configuration does. API tokens that
//! are blank, secrets hunted at `STOWAGE_LOG=trace` in every command that touches a container,
//! absurd numbers, a 100 kB label, and `verify` against a manifest of another target. Each case
//! checks what a user sees: the exit code, the message, the output.

mod common;

use std::process::{Command, Stdio};

use common::*;

/// `stowage ARGS` with a config file holding `toml` and extra environment: (code, out + err).
fn with_config(dir: &Scratch, toml: &str, env: &[(&str, &str)], args: &[&str]) -> (i32, String) {
    let config = dir.path().join("stowage.toml");
    std::fs::write(&config, toml).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stowage"));
    cmd.arg("--config")
        .arg(&config)
        .args(args)
        .env_remove("STOWAGE_CONFIG")
        .env("STOWAGE_BACKUP_DIR", dir.path().join("backups"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (code, out, err) = outcome(&mut cmd);
    (code, out + &err)
}

#[test]
fn a_blank_api_token_is_a_configuration_error_not_an_open_api() {
    let dir = Scratch::new("tok");
    let newline = dir.path().join("token");
    std::fs::write(&newline, "\n").unwrap();
    let file = newline.display().to_string();
    for (name, env) in [
        ("empty", vec![("STOWAGE_HTTP__TOKEN", "")]),
        ("spaces", vec![("STOWAGE_HTTP__TOKEN", "   ")]),
        (
            "a file with a newline",
            vec![("STOWAGE_HTTP__TOKEN_FILE", file.as_str())],
        ),
    ] {
        let (code, out) = with_config(&dir, "", &env, &["run"]);
        assert_eq!(code, 2, "{name}: {out}");
        assert!(out.contains("http.token"), "{name}: {out}");
    }
}

#[test]
fn the_api_accepts_exactly_the_token() {
    let dir = Scratch::new("tok-api");
    let instance = unique("tok-api");
    for (token, cases) in [
        (
            Some("t0ken-with-some-length"),
            vec![
                (None, 401),
                (Some("Bearer wrong"), 401),
                (Some("Bearer t0ken-with-some-lengt"), 401),
                (Some("Basic t0ken-with-some-length"), 401),
                (Some("bearer t0ken-with-some-length"), 401),
                (Some("Bearer t0ken-with-some-length"), 200),
            ],
        ),
        // No token: the API is off, whatever is sent.
        (
            None,
            vec![(None, 403), (Some("Bearer "), 403), (Some("Bearer x"), 403)],
        ),
    ] {
        let port = free_port();
        let mut cmd = stowage(&dir.path().join("backups"), &instance);
        cmd.env("STOWAGE_HTTP__LISTEN", format!("127.0.0.1:{port}"));
        if let Some(t) = token {
            cmd.env("STOWAGE_HTTP__TOKEN", t);
        }
        let _daemon = Daemon(
            cmd.arg("run")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_for(30, "/healthz", || {
            (http(port, "GET", "/healthz", None).0 == 200).then_some(())
        });
        for (auth, expected) in cases {
            assert_eq!(
                http_with_authorization(port, "GET", "/api/targets", auth).0,
                expected,
                "token {token:?}, Authorization {auth:?}"
            );
        }
    }
}

const PASSWORD: &str = "Tr4ce-Hunt-S3cret-Value";

#[test]
fn no_secret_reaches_any_output_at_trace_in_any_command_that_touches_a_container() {
    let instance = unique("trace");
    let dir = Scratch::new("trace");
    let backups = dir.path().join("backups");
    let pg = Pg::start(
        "trace",
        PgOptions {
            labels: {
                let mut l = target_labels(&instance);
                l.push(("stowage.name", "db".into()));
                l
            },
            env: vec![
                ("POSTGRES_PASSWORD", PASSWORD.into()),
                ("POSTGRES_DB", "app".into()),
                ("POSTGRES_INITDB_ARGS", "--auth-local=scram-sha-256".into()),
            ],
            password: Some(PASSWORD.into()),
            ..Default::default()
        },
    );
    pg.psql("CREATE TABLE t AS SELECT 1 AS x");
    let disk = format!("file://{}", dir.path().join("disk").display());
    let run = |args: &[&str]| {
        let (code, out, err) = outcome(
            stowage(&backups, &instance)
                .env("STOWAGE_LOG", "trace")
                .env("STOWAGE_STORAGE__DISK__URL", &disk)
                .args(args),
        );
        let all = out + &err;
        assert!(
            !all.contains(PASSWORD),
            "{args:?} printed the password:\n{}",
            all.lines()
                .filter(|l| l.contains(PASSWORD))
                .collect::<Vec<_>>()
                .join("\n")
        );
        (code, all)
    };
    assert_eq!(run(&["plan"]).0, 0);
    let (code, out) = run(&["backup"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(run(&["upload"]).0, 0);
    assert_eq!(run(&["prune", "--dry-run"]).0, 0);
    let artifact = backups.join(artifacts(&backups).pop().expect("an artifact"));
    let artifact = artifact.display().to_string();
    pg.psql("CREATE DATABASE restored");
    let (code, out) = run(&[
        "restore",
        &artifact,
        "--to",
        &pg.c.name,
        "--database",
        "restored",
    ]);
    assert_eq!(code, 0, "{out}");
    // The daemon: start-up, discovery, a scheduled catch-up backup, the upload pass.
    let port = free_port();
    let log = dir.path().join("daemon.log");
    let child = stowage(&backups, &instance)
        .env("STOWAGE_LOG", "trace")
        .env("STOWAGE_STORAGE__DISK__URL", &disk)
        .env("STOWAGE_HTTP__LISTEN", format!("127.0.0.1:{port}"))
        .env("STOWAGE_HTTP__TOKEN", "a-token-for-the-trace-test")
        .env("STOWAGE_DAEMON__MISSED_RUNS", "run-once")
        .env("STOWAGE_SCHEDULE", "* * * * *")
        .arg("run")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let daemon = Daemon(child);
    // A catch-up run starts at once, or else the next per-minute run: within about a minute.
    wait_for(120, "a backup by the daemon", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("backup complete").then_some(())
    });
    drop(daemon);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(PASSWORD), "the daemon logged the password");
    assert!(text.contains("TRACE") || text.contains("DEBUG") || text.contains("INFO"));
}

#[test]
fn absurd_numbers_are_configuration_errors_naming_the_key() {
    let dir = Scratch::new("numbers");
    let max = u64::MAX.to_string();
    let big = i64::MAX.to_string();
    for (var, value, args, key) in [
        (
            "STOWAGE_DAEMON__MAX_CONCURRENT",
            max.as_str(),
            "backup",
            "daemon.max_concurrent",
        ),
        (
            "STOWAGE_DAEMON__MAX_CONCURRENT",
            "0",
            "backup",
            "daemon.max_concurrent",
        ),
        (
            "STOWAGE_DAEMON__DISCOVERY_INTERVAL",
            max.as_str(),
            "run",
            "daemon.discovery_interval",
        ),
        (
            "STOWAGE_DAEMON__JITTER",
            max.as_str(),
            "run",
            "daemon.jitter",
        ),
        (
            "STOWAGE_DAEMON__BACKUP_TIMEOUT",
            max.as_str(),
            "run",
            "daemon.backup_timeout",
        ),
        (
            "STOWAGE_DAEMON__SHUTDOWN_GRACE",
            max.as_str(),
            "run",
            "daemon.shutdown_grace",
        ),
        (
            "STOWAGE_DAEMON__RETRY_AFTER",
            max.as_str(),
            "run",
            "daemon.retry_after",
        ),
        (
            "STOWAGE_ALERTS__STALE_AFTER",
            big.as_str(),
            "run",
            "alerts.stale_after",
        ),
        (
            "STOWAGE_ALERTS__STALE_AFTER",
            max.as_str(),
            "run",
            "alerts.stale_after",
        ),
        (
            "STOWAGE_COMPRESSION__THREADS",
            "4294967295",
            "backup",
            "compression.threads",
        ),
        (
            "STOWAGE_FREE_SPACE_MARGIN",
            "1000.5",
            "backup",
            "free_space_margin",
        ),
        (
            "STOWAGE_RETENTION__KEEP_WITHIN",
            "300000y1d",
            "prune",
            "retention",
        ),
        ("STOWAGE_SCHEDULE", "*/0 * * * *", "plan", "schedule"),
        (
            "STOWAGE_DAEMON__UPLOAD_RETRY_INTERVAL",
            max.as_str(),
            "run",
            "daemon.upload_retry_interval",
        ),
    ] {
        let (code, out) = with_config(&dir, "", &[(var, value)], &[args]);
        assert_eq!(code, 2, "{var}={value}: {out}");
        assert!(
            out.to_lowercase().contains(key),
            "{var}={value} does not name {key}: {out}"
        );
        assert!(!out.contains("panicked"), "{var}={value}: {out}");
    }
    for (key, value) in [
        ("max_retries", big.as_str()),
        ("retry_timeout", big.as_str()),
    ] {
        let toml = format!("[storage.s]\nurl = \"file:///tmp/x\"\n{key} = {value}\n");
        let (code, out) = with_config(&dir, &toml, &[], &["plan"]);
        assert_eq!(code, 2, "{key}: {out}");
        assert!(
            out.contains("storage.s") && out.contains(key),
            "{key}: {out}"
        );
    }
}

#[test]
fn hostile_labels_are_skipped_with_a_short_reason_and_never_panic() {
    let instance = unique("labels");
    let dir = Scratch::new("labels");
    let long = format!("-{}", "x".repeat(100_000));
    let pg = Pg::start_target_with(
        "labels",
        &instance,
        &[
            ("stowage.retention", "within=4000000000d"),
            ("stowage.name", "db"),
            ("stowage.pasword", "typo"),
        ],
    );
    let other = Pg::start_target_with(
        "labels2",
        &instance,
        &[("stowage.database", &long), ("stowage.name", "db2")],
    );
    let (code, out, err) = run_stowage(dir.path(), &instance, &["plan"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("thousand years"), "{out}");
    assert!(
        out.len() + err.len() < 8_000,
        "{} bytes of plan output",
        out.len() + err.len()
    );
    for (args, expected) in [
        (&["backup"][..], 1),
        (&["backup", "db"], 1),
        // Nothing to prune yet; the point is that it does not panic (it exited 101).
        (&["prune", "--dry-run"], 0),
    ] {
        let (code, out, err) = run_stowage(dir.path(), &instance, args);
        assert_eq!(code, expected, "{args:?}: {out}{err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    drop((pg, other));
    // A typo'd label: one suggestion, each known key once.
    let pg = Pg::start_target_with("labels3", &instance, &[("stowage.pasword", "typo")]);
    let (code, out, err) = run_stowage(dir.path(), &instance, &["plan"]);
    assert_eq!(code, 0, "{out}{err}");
    let warning = out
        .lines()
        .find(|l| l.contains("unknown label stowage.pasword"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        warning.contains("did you mean stowage.password?"),
        "{warning}"
    );
    assert_eq!(warning.matches("database").count(), 1, "{warning}");
    drop(pg);
}

#[test]
fn verify_refuses_an_artifact_whose_manifest_is_of_another_target() {
    let instance = unique("verify");
    let dir = Scratch::new("verify");
    let _pg = Pg::start_target_with("verify", &instance, &[("stowage.name", "db")]);
    let (code, _, err) = run_stowage(dir.path(), &instance, &["backup"]);
    assert_eq!(code, 0, "{err}");
    // The same bytes and manifest under another target's directory: the manifest says
    // target db, so this is no backup of target copy.
    std::fs::create_dir_all(dir.path().join("copy")).unwrap();
    for f in std::fs::read_dir(dir.path().join("db")).unwrap().flatten() {
        std::fs::copy(f.path(), dir.path().join("copy").join(f.file_name())).unwrap();
    }
    let (code, out, _) = run_stowage(dir.path(), &instance, &["verify", "copy"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("names another file or target"), "{out}");
    let (code, out, _) = run_stowage(dir.path(), &instance, &["verify", "db"]);
    assert_eq!(code, 0, "{out}");
    let (_, out, _) = run_stowage(dir.path(), &instance, &["prune", "--dry-run", "copy"]);
    assert!(
        out.contains("names another file or target") && out.contains("left alone"),
        "{out}"
    );
}
