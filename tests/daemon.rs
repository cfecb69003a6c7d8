//! `stowage run`: a container labelled after the daemon started is backed up on the schedule
//! from its label (picked up from the engine's events, without a restart), and a SIGTERM
//! aborts a backup that outlives the grace period without leaving anything behind. And the
//! `run-once` missed-run policy in remote-only mode: a copy that lives only in storage counts
//! as the last backup, so only the target without one is caught up at start-up.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn runs_on_schedule_and_stops_cleanly_on_sigterm() {
    let instance = unique("daemon");
    let dir = Scratch::new("daemon");
    let env = || {
        vec![
            ("POSTGRES_PASSWORD", "pw".into()),
            ("POSTGRES_DB", "app".into()),
        ]
    };
    let mut labels = target_labels(&instance);
    labels.push(("stowage.schedule", "* * * * *".into()));
    labels.push(("stowage.name", "stuck".into()));
    let stuck = Pg::start(
        "daemon-stuck",
        PgOptions {
            labels: labels.clone(),
            env: env(),
            ..Default::default()
        },
    );
    stuck.psql("CREATE TABLE t (v text)");
    let lock = stuck.hold_lock("t");

    let child = stowage(dir.path(), &instance)
        .arg("run")
        .env("STOWAGE_HTTP__LISTEN", format!("127.0.0.1:{}", free_port()))
        // Long: a new container must be found through the engine's events, not by polling.
        .env("STOWAGE_DAEMON__DISCOVERY_INTERVAL", "600")
        .env("STOWAGE_DAEMON__SHUTDOWN_GRACE", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Labelled after the daemon started.
    std::thread::sleep(Duration::from_secs(2));
    labels.pop();
    labels.push(("stowage.name", "quick".into()));
    let _quick = Pg::start(
        "daemon-quick",
        PgOptions {
            labels,
            env: env(),
            ..Default::default()
        },
    );
    // Both fire at the next minute: "quick" completes, "stuck" waits for the lock.
    let deadline = Instant::now() + Duration::from_secs(90);
    while artifacts(&dir.path().join("quick")).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no scheduled backup within 90 s: {:?}",
            files_under(dir.path())
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    stuck.wait_for_process("pg_dump");
    assert_eq!(temp_files(&dir.path().join("stuck")).len(), 1);

    let started = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "stopped in {:?}",
        started.elapsed()
    );
    assert!(
        stderr.contains("SIGTERM received") && stderr.contains("aborting running backups"),
        "{stderr}"
    );
    assert!(stderr.contains("target added"), "{stderr}");
    assert!(
        artifacts(&dir.path().join("stuck")).is_empty(),
        "{:?}",
        files_under(dir.path())
    );
    assert!(
        temp_files(dir.path()).is_empty(),
        "the aborted backup's temp file is gone: {:?}",
        files_under(dir.path())
    );
    lock.release(&stuck);
}

#[test]
fn run_once_counts_copies_that_live_only_in_storage() {
    let instance = unique("missed");
    let dir = Scratch::new("missed");
    let disk = Scratch::new("missed-disk");
    let start = |name: &str| {
        let mut labels = target_labels(&instance);
        // Once a year: the last scheduled time (1 January) is long past.
        labels.push(("stowage.schedule", "0 0 1 1 *".into()));
        labels.push(("stowage.name", name.to_string()));
        Pg::start(
            &format!("missed-{name}"),
            PgOptions {
                labels,
                env: vec![("POSTGRES_PASSWORD", "pw".into())],
                ..Default::default()
            },
        )
    };
    let (_stored, _fresh) = (start("stored"), start("fresh"));
    let env = [
        (
            "STOWAGE_STORAGE__DISK__URL",
            format!("file://{}", disk.path().display()),
        ),
        ("STOWAGE_REMOTE_ONLY", "true".into()),
        ("STOWAGE_DAEMON__MISSED_RUNS", "run-once".into()),
    ];
    let remote = |target: &str| artifacts(&disk.path().join(TEST_HOST).join(target));
    let mut backup = stowage(dir.path(), &instance);
    let (code, out, err) = outcome(backup.args(["backup", "stored"]).envs(env.clone()));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(remote("stored").len(), 1, "{:?}", files_under(disk.path()));
    assert!(
        artifacts(&dir.path().join("stored")).is_empty(),
        "remote-only keeps no local copy"
    );

    let log = dir.path().join("daemon.log");
    let mut daemon = stowage(dir.path(), &instance)
        .arg("run")
        .envs(env)
        .env("STOWAGE_HTTP__LISTEN", "")
        .env("STOWAGE_DAEMON__DISCOVERY_INTERVAL", "600")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let added = |target: &str| {
        let needle = format!("target={target} ");
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .find(|l| l.contains("target added") && l.contains(&needle))
            .map(String::from)
    };
    // "fresh" has no backup anywhere: it is caught up at once.
    wait_for(90, "the catch-up backup of fresh in storage", || {
        remote("fresh").first().cloned()
    });
    let fresh = added("fresh").expect("fresh was added");
    assert!(fresh.contains("catch_up=true"), "{fresh}");
    // "stored" has this year's backup in storage only: nothing was missed.
    let stored = added("stored").expect("stored was added");
    assert!(stored.contains("catch_up=false"), "{stored}");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    assert_eq!(daemon.wait().unwrap().code(), Some(0));
    assert_eq!(remote("stored").len(), 1, "{:?}", files_under(disk.path()));
}
