//! Stop during backup (`stowage.stop`, `stowage.stop_group`) against real containers: they are
//! down while their volume is archived and running afterwards, after a success, after SIGTERM
//! to `stowage backup`, after the daemon's `backup_timeout`, and after `kill -9` of stowage
//! while they were down (the next `stowage backup` or `stowage run` starts them again).

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Sends SIGTERM to `child`, waits for it, returns its stderr.
fn terminate(mut child: std::process::Child) -> String {
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let _ = child.wait();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    stderr
}

/// An application whose volume holds `mib` MiB of random data (so archiving takes a while),
/// labelled to be stopped for its backup together with a second container of its group.
struct App {
    instance: String,
    dir: Scratch,
    target: Container,
    member: Container,
    volume: String,
}

impl Drop for App {
    fn drop(&mut self) {
        // A helper left by `kill -9` (Docker would remove it within a day).
        let helpers = self.helpers();
        for id in helpers.split_whitespace() {
            let _ = docker_output(&["rm", "-f", "-v", id]);
        }
        let _ = docker_output(&["rm", "-f", "-v", &self.target.name, &self.member.name]);
        let _ = docker_output(&["volume", "rm", "-f", &self.volume]);
    }
}

impl App {
    fn start(prefix: &str, mib: u32) -> App {
        Self::start_with(prefix, mib, true)
    }

    /// `init`: the containers stop at once (tini as PID 1 passes SIGTERM on); without it
    /// `sleep` ignores SIGTERM and Docker kills it after its 10 s stop timeout.
    fn start_with(prefix: &str, mib: u32, init: bool) -> App {
        let init = if init { "--init" } else { "--init=false" };
        require_image(SQLITE_APP);
        require_image(STOWAGE_IMAGE);
        let instance = unique(prefix);
        let group = unique("group");
        let volume = unique(&format!("{prefix}-data"));
        docker(&["volume", "create", &volume]);
        let target = Container {
            name: unique(&format!("{prefix}-app")),
        };
        let member = Container {
            name: unique(&format!("{prefix}-worker")),
        };
        let mount = format!("{volume}:/data");
        let group_label = format!("stowage.stop_group={group}");
        docker(&[
            "run",
            "-d",
            init,
            "--name",
            &target.name,
            "-v",
            &mount,
            "--label",
            "stowage.enable=true",
            "--label",
            &format!("stowage.instance={instance}"),
            "--label",
            "stowage.volumes=all",
            "--label",
            "stowage.stop=true",
            "--label",
            &group_label,
            SQLITE_APP,
            "sleep",
            "3600",
        ]);
        docker(&[
            "run",
            "-d",
            init,
            "--name",
            &member.name,
            "--label",
            &group_label,
            SQLITE_APP,
            "sleep",
            "3600",
        ]);
        docker(&[
            "exec",
            "-u",
            "0",
            &target.name,
            "sh",
            "-c",
            &format!("head -c {mib}M /dev/urandom > /data/blob && echo hello > /data/small"),
        ]);
        App {
            instance,
            dir: Scratch::new(prefix),
            target,
            member,
            volume,
        }
    }

    /// `stowage run` with `env` (discovery by polling only, a free port), output captured.
    fn daemon(&self, env: &[(&str, &str)]) -> std::process::Child {
        let mut cmd = self.stowage();
        cmd.arg("run")
            .env("STOWAGE_DAEMON__DISCOVERY_INTERVAL", "600")
            .env("STOWAGE_HTTP__LISTEN", format!("127.0.0.1:{}", free_port()))
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd.spawn().unwrap()
    }

    /// The IDs of helper containers made for the application.
    fn helpers(&self) -> String {
        let filter = format!("label=stowage.helper-for={}", self.target.name);
        docker(&["ps", "-aq", "--filter", &filter])
    }

    fn stowage(&self) -> std::process::Command {
        let mut cmd = stowage(self.dir.path(), &self.instance);
        cmd.env("STOWAGE_HELPER_IMAGE", STOWAGE_IMAGE);
        cmd
    }

    /// `docker inspect` of a container's state field.
    fn state(name: &str, field: &str) -> String {
        docker(&[
            "inspect",
            "--format",
            &format!("{{{{.State.{field}}}}}"),
            name,
        ])
        .trim()
        .to_string()
    }

    fn both_running(&self) -> bool {
        [&self.target.name, &self.member.name]
            .iter()
            .all(|n| Self::state(n, "Running") == "true")
    }

    fn records(&self) -> Vec<String> {
        files_under(&self.dir.path().join(".stopped"))
    }

    /// Waits until the application container is stopped (a backup is archiving).
    fn wait_stopped(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Self::state(&self.target.name, "Running") == "true" {
            assert!(Instant::now() < deadline, "the container was never stopped");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn containers_are_down_during_the_archive_and_running_after() {
    let app = App::start("stop-ok", 8);
    let (code, plan, _) = outcome(app.stowage().arg("plan"));
    assert_eq!(code, 0, "{plan}");
    assert!(
        plan.contains("stop:      the container and every container labelled stowage.stop_group="),
        "{plan}"
    );
    let (code, _, stderr) = outcome(app.stowage().arg("backup"));
    assert_eq!(code, 0, "{stderr}");
    assert!(app.both_running(), "{stderr}");
    assert!(app.records().is_empty(), "{:?}", app.records());
    for name in [&app.target.name, &app.member.name] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains("stopping the container") && l.contains(name.as_str())),
            "{stderr}"
        );
        let started = stderr
            .lines()
            .find(|l| l.contains("container started again") && l.contains(name.as_str()))
            .unwrap_or_else(|| panic!("no start line for {name}: {stderr}"));
        assert!(started.contains("down_seconds="), "{started}");
    }
    // Docker's own times: both stopped before the archive began and started after it ended.
    let artifact = artifacts(app.dir.path()).pop().expect("an artifact");
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(app.dir.path().join(format!("{artifact}.json"))).unwrap(),
    )
    .unwrap();
    let time = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
    let began = time(manifest["started_at"].as_str().unwrap());
    let ended = time(manifest["finished_at"].as_str().unwrap());
    for name in [&app.target.name, &app.member.name] {
        let stopped = time(&App::state(name, "FinishedAt"));
        let restarted = time(&App::state(name, "StartedAt"));
        assert!(
            stopped <= began && restarted >= ended,
            "{name}: stopped {stopped}, started {restarted}, archive {began}..{ended}"
        );
    }
}

#[test]
fn sigterm_to_stowage_backup_starts_them_again() {
    let app = App::start("stop-term", 400);
    let child = app
        .stowage()
        .arg("backup")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    app.wait_stopped();
    docker_output(&["ps"]); // (a moment for the dump to be under way)
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("SIGTERM received"), "{stderr}");
    assert!(app.both_running(), "{stderr}");
    assert!(artifacts(app.dir.path()).is_empty(), "{stderr}");
    assert!(temp_files(app.dir.path()).is_empty(), "{stderr}");
    assert!(app.records().is_empty(), "{:?}", app.records());
    assert!(
        app.helpers().trim().is_empty(),
        "the aborted run's helper is removed"
    );
}

#[test]
fn the_daemon_starts_them_again_when_backup_timeout_aborts_the_run() {
    let app = App::start("stop-timeout", 400);
    let daemon = app.daemon(&[
        ("STOWAGE_DAEMON__MISSED_RUNS", "run-once"),
        ("STOWAGE_DAEMON__BACKUP_TIMEOUT", "3"),
    ]);
    app.wait_stopped();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(app.both_running() && app.records().is_empty()) {
        assert!(
            Instant::now() < deadline,
            "not started again after the timeout"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let stderr = terminate(daemon);
    assert!(stderr.contains("backup timed out"), "{stderr}");
    assert!(stderr.contains("container started again"), "{stderr}");
    assert!(artifacts(app.dir.path()).is_empty(), "{stderr}");
    assert!(
        app.helpers().trim().is_empty(),
        "the aborted run's helper is removed"
    );
}

#[test]
fn after_kill_9_while_stopped_the_next_backup_or_run_starts_them() {
    let app = App::start("stop-kill", 8);
    // Killed (SIGKILL) right after stopping them: nothing of stowage's can start them.
    let (code, _, stderr) = outcome(
        app.stowage()
            .arg("backup")
            .env("STOWAGE_TEST_CRASH_AT", "stop:stopped"),
    );
    assert_eq!(code, -1, "{stderr}");
    assert_eq!(App::state(&app.target.name, "Running"), "false");
    assert_eq!(App::state(&app.member.name, "Running"), "false");
    assert_eq!(app.records().len(), 1, "what it stopped was recorded first");

    // The next `stowage backup` starts them first, then backs up as usual.
    let (code, _, stderr) = outcome(app.stowage().arg("backup"));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("ended before starting them again"),
        "{stderr}"
    );
    assert!(app.both_running(), "{stderr}");
    assert!(app.records().is_empty());
    assert_eq!(artifacts(app.dir.path()).len(), 1, "{stderr}");

    // The same after a crash, with `stowage run`.
    let (code, _, stderr) = outcome(
        app.stowage()
            .arg("backup")
            .env("STOWAGE_TEST_CRASH_AT", "stop:stopped"),
    );
    assert_eq!(code, -1, "{stderr}");
    assert_eq!(App::state(&app.target.name, "Running"), "false");
    let daemon = app.daemon(&[("STOWAGE_SCHEDULE", "0 3 1 1 *")]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(app.both_running() && app.records().is_empty()) {
        assert!(Instant::now() < deadline, "stowage run did not start them");
        std::thread::sleep(Duration::from_millis(100));
    }
    terminate(daemon);
}

#[test]
fn a_run_aborted_while_docker_is_stopping_the_container_leaves_it_running() {
    // Docker takes 10 s to stop these; the daemon aborts the run after 2 s, mid-request.
    let app = App::start_with("stop-slow", 8, false);
    let daemon = app.daemon(&[
        ("STOWAGE_DAEMON__MISSED_RUNS", "run-once"),
        ("STOWAGE_DAEMON__BACKUP_TIMEOUT", "2"),
    ]);
    // Docker's stop ends (SIGKILL at 10 s) after the abort; the container must come back.
    let deadline = Instant::now() + Duration::from_secs(60);
    let never = "0001-01-01T00:00:00Z";
    while App::state(&app.member.name, "FinishedAt") == never
        && App::state(&app.target.name, "FinishedAt") == never
    {
        assert!(Instant::now() < deadline, "no container was stopped");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    while !(app.both_running() && app.records().is_empty()) {
        assert!(
            Instant::now() < deadline,
            "not running again after the aborted stop"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let stderr = terminate(daemon);
    assert!(stderr.contains("backup timed out"), "{stderr}");
    assert!(app.both_running(), "{stderr}");
}
