//! A failed backup is never a success and never leaves an artifact.

mod common;

use common::*;

fn pg_env() -> Vec<(&'static str, String)> {
    vec![
        ("POSTGRES_PASSWORD", "pw".into()),
        ("POSTGRES_DB", "app".into()),
    ]
}

#[test]
fn a_database_that_does_not_exist_fails_with_the_container_named() {
    let instance = unique("nodb");
    let dir = Scratch::new("nodb");
    let mut labels = target_labels(&instance);
    labels.push(("stowage.database", "nope".into()));
    let pg = Pg::start(
        "nodb",
        PgOptions {
            labels,
            env: pg_env(),
            ..Default::default()
        },
    );

    let (code, stdout, stderr) = run_stowage(dir.path(), &instance, &["backup"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty(), "no artifact is reported: {stdout}");
    assert!(
        stderr.contains(&format!("container {}", pg.c.name)),
        "{stderr}"
    );
    assert!(
        stderr.contains("database \"nope\" does not exist"),
        "{stderr}"
    );
    assert!(
        artifacts(dir.path()).is_empty() && temp_files(dir.path()).is_empty(),
        "{:?}",
        files_under(dir.path())
    );
}

/// A backup whose pg_dump (held at a lock, with its temp file written) is interrupted by
/// `docker <action> CONTAINER`; returns the instance, the backup dir, the container and what
/// the backup printed.
fn interrupted_dump(tag: &str, action: &[&str]) -> (String, Scratch, Pg, std::process::Output) {
    let instance = unique(tag);
    let dir = Scratch::new(tag);
    let pg = Pg::start(
        tag,
        PgOptions {
            labels: target_labels(&instance),
            env: pg_env(),
            ..Default::default()
        },
    );
    pg.seed(1);
    let lock = pg.hold_lock("pgbench_accounts");
    let child = spawn_backup(dir.path(), &instance);
    pg.wait_for_process("pg_dump");
    wait_for_temp_file(dir.path());
    let mut args = action.to_vec();
    args.push(&pg.c.name);
    docker(&args);
    let out = child.wait_with_output().unwrap();
    drop(lock);
    (instance, dir, pg, out)
}

#[test]
fn container_stopped_during_the_dump_leaves_no_artifact() {
    let (instance, dir, pg, out) = interrupted_dump("stop", &["kill"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("container {}", pg.c.name)),
        "{stderr}"
    );
    assert!(
        stderr.contains("stopped during the dump") || stderr.contains("the container was stopped"),
        "{stderr}"
    );
    assert!(
        artifacts(dir.path()).is_empty(),
        "{:?}",
        files_under(dir.path())
    );
    assert!(
        temp_files(dir.path()).is_empty(),
        "{:?}",
        files_under(dir.path())
    );

    // And a stopped container is reported, not silently skipped, when asked for by name.
    let (code, _, stderr) = run_stowage(dir.path(), &instance, &["backup", &pg.c.name]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("not running"), "{stderr}");
}

#[test]
fn container_restarted_during_the_dump_is_not_blamed_on_credentials() {
    // Restarted, the container is running again when the dump tool's failure is judged:
    // only its start time tells that it went down during the dump.
    let (_, dir, _pg, out) = interrupted_dump("restart", &["restart", "-t", "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("stopped during the dump (or was restarted)"),
        "{stderr}"
    );
    assert!(!stderr.contains("credentials"), "{stderr}");
    assert!(stderr.contains("temporary=true"), "{stderr}");
    assert!(
        artifacts(dir.path()).is_empty() && temp_files(dir.path()).is_empty(),
        "{:?}",
        files_under(dir.path())
    );
}

#[test]
fn unknown_target_and_bad_labels_fail_the_run() {
    let instance = unique("bad");
    let dir = Scratch::new("bad");
    let mut labels = target_labels(&instance);
    labels.push(("stowage.schedule", "every night".into()));
    let _pg = Pg::start(
        "bad",
        PgOptions {
            labels,
            env: pg_env(),
            ..Default::default()
        },
    );
    let (code, stdout, _) = run_stowage(dir.path(), &instance, &["plan"]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains("bad cron schedule") && stdout.contains("0 3 * * *"),
        "the fix is shown: {stdout}"
    );
    let (code, _, stderr) = run_stowage(dir.path(), &instance, &["backup", "no-such-target"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("no labelled container or target named \"no-such-target\""),
        "{stderr}"
    );
}

#[test]
fn unreachable_engine_is_a_clear_error() {
    let dir = Scratch::new("nodocker");
    let out = stowage(dir.path(), "x")
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        .arg("plan")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot reach the Docker engine at unix:///nonexistent.sock"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
