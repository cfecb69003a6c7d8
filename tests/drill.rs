//! Restore drills against real engines: PostgreSQL, MariaDB and SQLite drills pass with their
//! rows counted and matched; a drill of an artifact that does not restore fails loudly (exit
//! 1, a `drill_failed` webhook, the metric, the record) and leaves no container; a kill -9
//! mid-drill leaves a container the next drill removes; a remote-only artifact is drilled from
//! a real S3 server; a backup that lost most of its rows raises `suspicious_shrink`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// The drill containers of `target` (running or not).
fn drill_containers(target: &str) -> Vec<String> {
    docker(&[
        "ps",
        "-a",
        "-q",
        "--filter",
        &format!("label=stowage.drill-for={target}"),
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

/// The drill records under `dir`, parsed.
fn records(dir: &Path) -> Vec<serde_json::Value> {
    files_under(dir)
        .iter()
        .filter(|f| f.ends_with(".drill.json"))
        .map(|f| serde_json::from_slice(&std::fs::read(dir.join(f)).unwrap()).unwrap())
        .collect()
}

/// The manifests under `dir`, oldest first, parsed.
fn manifests(dir: &Path) -> Vec<serde_json::Value> {
    let mut names: Vec<String> = files_under(dir)
        .into_iter()
        .filter(|f| f.ends_with(".zst.json"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|f| serde_json::from_slice(&std::fs::read(dir.join(f)).unwrap()).unwrap())
        .collect()
}

#[test]
fn postgres_drill_counts_every_table_and_leaves_nothing_behind() {
    let instance = unique("drill-pg");
    let dir = Scratch::new("drill-pg");
    let pg = Pg::start_target("drill-pg", &instance);
    pg.seed(1);
    let (code, _, stderr) = run_stowage(dir.path(), &instance, &["backup"]);
    assert_eq!(code, 0, "{stderr}");
    // The backup counted the rows into its manifest.
    let manifest = &manifests(dir.path())[0];
    assert_eq!(
        manifest["rows"]["public.pgbench_accounts"], 100_000,
        "{manifest}"
    );
    assert_eq!(manifest["rows"]["public.notes"], 2003, "{manifest}");
    assert!(
        manifest["container"]["image_id"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );

    let (code, stdout, stderr) = run_stowage(dir.path(), &instance, &["drill"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("passed") && stdout.contains("matched"),
        "{stdout}"
    );
    let recs = records(dir.path());
    assert_eq!(recs.len(), 1, "{recs:?}");
    let r = &recs[0];
    assert_eq!(r["outcome"], "passed", "{r}");
    assert_eq!(r["source"], "local");
    for (table, rows) in [
        ("public.pgbench_accounts", 100_000),
        ("public.pgbench_branches", 1),
        ("public.pgbench_tellers", 10),
        ("public.pgbench_history", 0),
        ("public.notes", 2003),
    ] {
        assert_eq!(r["tables"][table]["dump"], rows, "{table}: {r}");
        assert_eq!(r["tables"][table]["restored"], rows, "{table}: {r}");
    }
    assert!(
        drill_containers(&pg.c.name).is_empty(),
        "a drill container was left behind"
    );
    // `list` shows the drill beside the artifact.
    let (code, stdout, _) = run_stowage(dir.path(), &instance, &["list"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("LAST DRILL") && stdout.contains("passed"),
        "{stdout}"
    );
}

#[test]
fn mariadb_drill_with_routines_and_triggers_passes_check_table() {
    let instance = unique("drill-maria");
    let dir = Scratch::new("drill-maria");
    let m = Maria::start("drill-maria", target_labels(&instance), "shop");
    m.seed("shop");
    m.sql(
        "shop",
        "INSERT INTO items (name, price) SELECT CONCAT('bulk ', seq, ' it''s (x)'), seq FROM seq_1_to_5000;",
    );
    let (code, _, stderr) = run_stowage(dir.path(), &instance, &["backup"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = run_stowage(dir.path(), &instance, &["drill"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let r = &records(dir.path())[0];
    assert_eq!(r["outcome"], "passed", "{r}");
    // The trigger fired once per item when seeding: both tables hold 5003 rows.
    assert_eq!(r["tables"]["items"]["restored"], 5003, "{r}");
    assert_eq!(r["tables"]["audit"]["dump"], 5003, "{r}");
    assert_eq!(r["checks"]["CHECK TABLE"], true, "{r}");
    assert!(drill_containers(&m.c.name).is_empty());
}

#[test]
fn sqlite_drill_runs_in_a_helper_image_the_app_lacks_sqlite3() {
    let instance = unique("drill-sqlite");
    let dir = Scratch::new("drill-sqlite");
    let app = SqliteApp::start_writer(SQLITE_APP, &instance, "wal", 3000);
    let run = |args: &[&str]| {
        outcome(
            stowage(dir.path(), &instance)
                .env("STOWAGE_HELPER_IMAGE", STOWAGE_IMAGE)
                .args(args),
        )
    };
    let (code, _, stderr) = run(&["backup"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = run(&["drill"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let r = &records(dir.path())[0];
    assert_eq!(r["outcome"], "passed", "{r}");
    assert_eq!(r["checks"]["PRAGMA integrity_check"], true, "{r}");
    let rows = r["tables"].as_object().unwrap();
    assert!(!rows.is_empty(), "{r}");
    for (table, t) in rows {
        assert_eq!(t["dump"], t["restored"], "{table}: {r}");
    }
    assert!(
        rows.values().any(|t| t["dump"].as_u64().unwrap() >= 3000),
        "the seeded rows were counted: {r}"
    );
    assert!(drill_containers(&app.c.name).is_empty());
}

/// A user engine spec that dumps PostgreSQL without the rows of `parent`, which `child`
/// references: every checksum is valid, and the dump does not restore.
fn broken_engine(dir: &Path) -> std::path::PathBuf {
    let engines = dir.join("engines");
    std::fs::create_dir_all(&engines).unwrap();
    let builtin = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("engines/postgres.toml"),
    )
    .unwrap();
    let spec = builtin
        .replace("name = \"postgres\"", "name = \"pgbroken\"")
        .replace(
            "argv = [\"pg_dump\", ",
            "argv = [\"pg_dump\", \"--exclude-table-data=public.parent\", ",
        );
    assert!(spec.contains("exclude-table-data"));
    std::fs::write(engines.join("pgbroken.toml"), spec).unwrap();
    engines
}

#[test]
fn a_drill_that_must_fail_fails_loudly_everywhere_and_cleans_up() {
    let instance = unique("drill-fail");
    let dir = Scratch::new("drill-fail");
    let engines = broken_engine(dir.path());
    let backups = dir.path().join("backups");
    let pg = Pg::start_target_with(
        "drill-fail",
        &instance,
        &[
            ("stowage.engine", "pgbroken"),
            ("stowage.drill", "* * * * *"),
        ],
    );
    pg.psql(
        "CREATE TABLE parent (id int PRIMARY KEY);
         CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent(id));
         INSERT INTO parent SELECT g FROM generate_series(1, 50) g;
         INSERT INTO child SELECT g, 1 + g % 50 FROM generate_series(1, 500) g;",
    );
    let receiver = Receiver::start();
    let (http_port, token) = (free_port(), "drill-token");
    let config = dir.path().join("stowage.toml");
    std::fs::write(
        &config,
        format!(
            "engines_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{http_port}\"\ntoken = \"{token}\"\n[alerts]\nwebhooks = [{{ url = \"http://127.0.0.1:{}/hook\" }}]\n[daemon]\njitter = 0\n",
            engines.display(),
            receiver.port
        ),
    )
    .unwrap();
    let cmd = || {
        let mut c = stowage(&backups, &instance);
        c.env("STOWAGE_CONFIG", &config);
        c
    };
    let (code, _, stderr) = outcome(cmd().arg("backup"));
    assert_eq!(code, 0, "the backup itself succeeds: {stderr}");
    let (code, stdout, stderr) = outcome(cmd().arg("drill"));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("FAILED") && stdout.contains("does not restore"),
        "{stdout}"
    );
    let r = &records(&backups)[0];
    assert_eq!(r["outcome"], "failed", "{r}");
    assert_eq!(r["reason"], "restore", "{r}");
    assert!(r["error"].as_str().unwrap().contains("foreign key"), "{r}");
    let hooks = receiver.seen();
    assert!(
        hooks
            .iter()
            .any(|(_, _, body)| body.contains("\"drill_failed\"")),
        "{hooks:?}"
    );
    assert!(drill_containers(&pg.c.name).is_empty());

    // The daemon drills on the label's schedule (every minute here): the metric, the alert
    // and the API say it failed, and nothing is left behind.
    let seen_before = receiver.seen().len();
    let log = dir.path().join("daemon.log");
    let mut daemon = Daemon(
        cmd()
            .arg("run")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(150);
    while !receiver.seen()[seen_before..]
        .iter()
        .any(|(_, _, body)| body.contains("\"drill_failed\""))
    {
        assert!(
            Instant::now() < deadline,
            "no drill_failed alert from the daemon:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (_, metrics) = http(http_port, "GET", "/metrics", None);
    for series in [
        format!("stowage_drill_failures_total{{target=\"{}\"}} 1", pg.c.name),
        format!("stowage_drill_last_result{{target=\"{}\"}} 0", pg.c.name),
        format!(
            "stowage_drill_duration_seconds{{target=\"{}\"}} ",
            pg.c.name
        ),
    ] {
        assert!(metrics.contains(&series), "{series} in {metrics}");
    }
    let (code, body) = http(http_port, "GET", "/api/drills", Some(token));
    assert_eq!(code, 200);
    assert!(body.contains("\"outcome\":\"failed\""), "{body}");
    let path = format!("/api/targets/{}/drill", pg.c.name);
    let (code, body) = http(http_port, "POST", &path, Some(token));
    assert!(code == 202 || code == 409, "{code} {body}");
    let (code, _) = http(http_port, "POST", &path, None);
    assert_eq!(code, 401);
    // The requested drill may be running: SIGTERM stops it, and its container goes first.
    let deadline = Instant::now() + Duration::from_secs(30);
    while drill_containers(&pg.c.name).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let pid = daemon.0.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while daemon.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the daemon did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        drill_containers(&pg.c.name).is_empty(),
        "the daemon left a drill container:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

#[test]
fn a_drill_killed_midway_is_cleaned_up_by_the_next_one() {
    let instance = unique("drill-kill");
    let dir = Scratch::new("drill-kill");
    // SQLite's drill container has an anonymous volume: its removal is checked too.
    let app = SqliteApp::start_writer(SQLITE_APP, &instance, "wal", 100);
    let cmd = || {
        let mut c = stowage(dir.path(), &instance);
        c.env("STOWAGE_HELPER_IMAGE", STOWAGE_IMAGE);
        c
    };
    let (code, _, stderr) = outcome(cmd().arg("backup"));
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = outcome(
        cmd()
            .env("STOWAGE_TEST_CRASH_AT", "drill:container-started")
            .arg("drill"),
    );
    assert_eq!(code, -1, "killed by its crash point: {stderr}");
    let left = drill_containers(&app.c.name);
    assert_eq!(left.len(), 1, "the kill -9 left its container");
    let volumes: Vec<String> = docker(&[
        "inspect",
        "--format",
        "{{range .Mounts}}{{.Name}} {{end}}",
        &left[0],
    ])
    .split_whitespace()
    .map(str::to_string)
    .collect();
    assert!(
        !volumes.is_empty(),
        "the drill container has anonymous volumes"
    );
    let (code, stdout, stderr) = outcome(cmd().arg("drill"));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("left behind by a stowage that was killed"),
        "{stderr}"
    );
    assert!(drill_containers(&app.c.name).is_empty());
    for v in &volumes {
        assert!(
            !docker_output(&["volume", "inspect", v]).status.success(),
            "the leftover's anonymous volume {v} was removed with it"
        );
    }
}

#[test]
fn sigterm_during_a_drill_removes_its_container() {
    let instance = unique("drill-term");
    let dir = Scratch::new("drill-term");
    let pg = Pg::start_target("drill-term", &instance);
    pg.seed(3);
    let (code, _, stderr) = run_stowage(dir.path(), &instance, &["backup"]);
    assert_eq!(code, 0, "{stderr}");
    let child = stowage(dir.path(), &instance)
        .arg("drill")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while drill_containers(&pg.c.name).is_empty() {
        assert!(Instant::now() < deadline, "no drill container appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("SIGTERM received"), "{stderr}");
    assert!(drill_containers(&pg.c.name).is_empty(), "{stderr}");
    let r = &records(dir.path())[0];
    assert_eq!(
        r["outcome"], "skipped",
        "a stopped drill is not a failed one: {r}"
    );
}

#[test]
fn remote_only_artifacts_are_drilled_from_the_s3_server() {
    let instance = unique("drill-s3");
    let dir = Scratch::new("drill-s3");
    let s3 = S3Server::start(&dir.path().join("s3"));
    let backups = dir.path().join("backups");
    let pg = Pg::start_target_with("drill-s3", &instance, &[("stowage.storage", "offsite")]);
    pg.psql("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 777);");
    let mut env = s3.stowage_env(s3.port, &dir.path().join("s3-secret"));
    env.push(("STOWAGE_REMOTE_ONLY".into(), "true".into()));
    let run = |args: &[&str]| outcome(stowage(&backups, &instance).envs(env.clone()).args(args));
    let (code, _, stderr) = run(&["backup"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(artifacts(&backups).is_empty(), "remote-only: no local copy");
    let (code, stdout, stderr) = run(&["drill"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("from offsite"), "{stdout}");
    let r = &records(&backups)[0];
    assert_eq!(r["source"], "offsite");
    assert_eq!(r["tables"]["public.t"]["restored"], 777, "{r}");
    assert!(
        !files_under(&backups).iter().any(|f| f.contains(".drill-")),
        "the download was removed: {:?}",
        files_under(&backups)
    );
    assert!(drill_containers(&pg.c.name).is_empty());
}

#[test]
fn a_backup_that_lost_most_rows_is_a_suspicious_shrink() {
    let instance = unique("drill-shrink");
    let dir = Scratch::new("drill-shrink");
    let receiver = Receiver::start();
    let config = dir.path().join("stowage.toml");
    std::fs::write(
        &config,
        format!(
            "[alerts]\nwebhooks = [{{ url = \"http://127.0.0.1:{}/hook\" }}]\n",
            receiver.port
        ),
    )
    .unwrap();
    let backups = dir.path().join("backups");
    let pg = Pg::start_target("drill-shrink", &instance);
    pg.seed(1);
    let run = || {
        outcome(
            stowage(&backups, &instance)
                .env("STOWAGE_CONFIG", &config)
                .arg("backup"),
        )
    };
    let (code, _, stderr) = run();
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("suspicious shrink"), "{stderr}");
    pg.psql("DELETE FROM pgbench_accounts WHERE aid > 1000;");
    // Artifact names have second precision.
    std::thread::sleep(Duration::from_millis(1100));
    let (code, _, stderr) = run();
    assert_eq!(code, 0, "a shrink is a warning, not a failure: {stderr}");
    assert!(
        stderr.contains("suspicious shrink")
            && stderr.contains("public.pgbench_accounts 100000 → 1000 rows"),
        "{stderr}"
    );
    let hooks = receiver.seen();
    let hook = hooks
        .iter()
        .find(|(_, _, b)| b.contains("\"suspicious_shrink\""))
        .unwrap_or_else(|| panic!("{hooks:?}"));
    assert!(hook.2.contains("pgbench_accounts"), "{}", hook.2);
}
