//! Pre and post hooks (`stowage.pre`, `stowage.post`) against a real PostgreSQL container:
//! run without a shell, logged with their timings, a failing or overrunning pre hook fails
//! the backup with its stderr, and the post hook runs after every outcome and learns it.

mod common;

use common::*;

/// What the post hook of these tests records: `STOWAGE_OUTCOME` into /tmp/outcome. (The
/// user's argv may call a shell; stowage itself never does.)
const POST: &str = r#"["sh", "-c", "echo \"$STOWAGE_TARGET $STOWAGE_OUTCOME\" > /tmp/outcome"]"#;

/// A PostgreSQL target with `labels`, and `stowage backup` of it: (target, backup dir, exit
/// code, stderr, the plan's output).
fn backup(prefix: &str, labels: &[(&'static str, &str)]) -> (Pg, Scratch, i32, String, String) {
    let instance = unique(prefix);
    let dir = Scratch::new(prefix);
    let pg = Pg::start_target_with(prefix, &instance, labels);
    let (code, _, stderr) = run_stowage(dir.path(), &instance, &["backup"]);
    let (_, plan, _) = run_stowage(dir.path(), &instance, &["plan"]);
    (pg, dir, code, stderr, plan)
}

fn outcome_file(pg: &Pg) -> String {
    pg.exec(&["cat", "/tmp/outcome"]).trim().to_string()
}

#[test]
fn hooks_run_around_a_backup_without_a_shell() {
    // A `;` inside an argv element is a literal: the file is named with it, nothing else runs.
    let pre = r#"["touch", "/tmp/pre;touch injected"]"#;
    let (pg, dir, code, stderr, plan) =
        backup("hooks-ok", &[("stowage.pre", pre), ("stowage.post", POST)]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(artifacts(dir.path()).len(), 1, "{stderr}");
    assert!(stderr.contains("running the pre hook"), "{stderr}");
    let done = stderr
        .lines()
        .find(|l| l.contains("pre hook done"))
        .unwrap_or_else(|| panic!("no timing line: {stderr}"));
    assert!(done.contains("seconds="), "{done}");
    assert!(stderr.contains("post hook done"), "{stderr}");
    let tmp = pg.exec(&["ls", "/tmp"]);
    assert!(tmp.lines().any(|l| l == "pre;touch injected"), "{tmp}");
    assert!(!tmp.lines().any(|l| l == "injected"), "{tmp}");
    assert!(!pg.exec(&["ls", "/"]).lines().any(|l| l == "injected"));
    assert_eq!(outcome_file(&pg), format!("{} success", pg.c.name));
    // `plan` shows them.
    assert!(
        plan.contains(r#"pre:       ["touch", "/tmp/pre;touch injected"] (timeout 300 s)"#),
        "{plan}"
    );
    // The pre hook ran before the dump started: its log line comes first.
    let pre_at = stderr.find("running the pre hook").unwrap();
    let done_at = stderr.find("backup complete").unwrap();
    assert!(pre_at < done_at, "{stderr}");
}

#[test]
fn a_failing_pre_hook_fails_the_backup_with_its_stderr_and_the_post_hook_still_runs() {
    let pre = r#"["sh", "-c", "echo cannot enter maintenance mode >&2; exit 3"]"#;
    let (pg, dir, code, stderr, _) =
        backup("hooks-pre", &[("stowage.pre", pre), ("stowage.post", POST)]);
    assert_ne!(code, 0, "{stderr}");
    assert!(artifacts(dir.path()).is_empty(), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("while running the pre hook"))
        .unwrap_or_else(|| panic!("no pre hook error: {stderr}"));
    assert!(
        line.contains(&format!("container {}", pg.c.name))
            && line.contains("exited with status 3")
            && line.contains("cannot enter maintenance mode")
            && line.contains("Nothing was dumped"),
        "{line}"
    );
    assert_eq!(outcome_file(&pg), format!("{} failure", pg.c.name));
}

#[test]
fn the_post_hook_runs_after_a_failed_dump() {
    let (pg, _dir, code, stderr, _) = backup(
        "hooks-dump",
        &[
            ("stowage.database", "no_such_database"),
            ("stowage.post", POST),
        ],
    );
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("no_such_database"), "{stderr}");
    assert_eq!(outcome_file(&pg), format!("{} failure", pg.c.name));
}

#[test]
fn a_pre_hook_that_overruns_its_timeout_fails_the_backup() {
    let started = std::time::Instant::now();
    let (pg, dir, code, stderr, _) = backup(
        "hooks-slow",
        &[
            ("stowage.pre", r#"["sleep", "30"]"#),
            ("stowage.hook_timeout", "2"),
            ("stowage.post", POST),
        ],
    );
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("did not finish within 2 s"), "{stderr}");
    assert!(artifacts(dir.path()).is_empty());
    // It did not wait for the sleep (the container's start is included: a wide margin).
    assert!(started.elapsed() < std::time::Duration::from_secs(28));
    assert_eq!(outcome_file(&pg), format!("{} failure", pg.c.name));
}

#[test]
fn a_hook_label_that_is_a_shell_string_is_refused_by_plan() {
    let instance = unique("hooks-bad");
    let dir = Scratch::new("hooks-bad");
    let pg = Pg::start_target_with(
        "hooks-bad",
        &instance,
        &[("stowage.pre", "redis-cli BGSAVE")],
    );
    let (_, stdout, stderr) = run_stowage(dir.path(), &instance, &["plan"]);
    let all = format!("{stdout}{stderr}");
    assert!(
        all.contains(&pg.c.name) && all.contains("stowage.pre") && all.contains("JSON array"),
        "{all}"
    );
}

#[test]
fn the_post_hook_runs_when_the_daemon_aborts_a_backup_at_its_timeout() {
    let instance = unique("hooks-abort");
    let dir = Scratch::new("hooks-abort");
    // The pre hook outlasts daemon.backup_timeout (but not its own timeout): the run is
    // aborted while it waits, and the post hook must still undo it.
    let pg = Pg::start_target_with(
        "hooks-abort",
        &instance,
        &[
            ("stowage.name", "slow"),
            ("stowage.schedule", "0 0 1 1 *"),
            ("stowage.pre", r#"["sleep", "60"]"#),
            ("stowage.hook_timeout", "120"),
            ("stowage.post", POST),
        ],
    );
    let (port, token) = (free_port(), "hooks-test-token");
    let log = dir.path().join("daemon.log");
    let _daemon = Daemon(
        stowage(&dir.path().join("backups"), &instance)
            .arg("run")
            .env("STOWAGE_DAEMON__BACKUP_TIMEOUT", "3")
            .env("STOWAGE_HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .env("STOWAGE_HTTP__TOKEN", token)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for(30, "the target to be planned", || {
        let (code, body) = http(port, "GET", "/api/targets", Some(token));
        (code == 200 && body.contains("\"slow\"")).then_some(())
    });
    assert_eq!(
        http(port, "POST", "/api/targets/slow/backup", Some(token)).0,
        202
    );
    let outcome = wait_for(30, "the post hook after the abort", || {
        let out = docker_output(&["exec", &pg.c.name, "cat", "/tmp/outcome"]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    assert_eq!(outcome, "slow failure");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("backup timed out"), "{log}");
    assert!(
        log.contains("the backup was aborted; running the post hook"),
        "{log}"
    );
}
