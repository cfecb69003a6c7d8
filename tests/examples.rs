//! The deployment files users copy, brought up as written with the locally built images
//! substituted through their image variables:
//! - `stack.example.yml` on a single-node Swarm (`docker swarm init` on this engine): the
//!   labelled PostgreSQL service is backed up under its service name, and after
//!   `docker service update --force` reschedules its task, the next backup continues the same
//!   target (directory, retention series, metric labels). The service's `deploy.labels` are
//!   read (this node is a manager). The swarm is left also when the test fails.
//! - `compose.example.yml` with docker-compose: the labelled database is backed up and
//!   /healthz answers.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const TOKEN: &str = "example-token-for-tests";

/// A copy of a repository file in `dir`, with the secret files it names.
fn prepare(dir: &Path, file: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let dst = dir.join(file);
    std::fs::copy(&src, &dst).unwrap();
    std::fs::write(dir.join("db_password.txt"), "example-db-password\n").unwrap();
    std::fs::write(dir.join("stowage_token.txt"), format!("{TOKEN}\n")).unwrap();
    std::fs::create_dir_all(dir.join("backups")).unwrap();
    dst
}

/// The artifacts stowage wrote for `target` in a backups directory owned by root inside
/// the container (listed as this test's user can).
fn artifacts_of(backups: &Path, target: &str) -> Vec<String> {
    artifacts(&backups.join(target))
}

/// A single-node swarm on this engine, left on drop (its stack removed first).
struct Swarm {
    stack: String,
}

impl Swarm {
    fn init(stack: &str) -> Swarm {
        let out = docker_output(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(state, "inactive", "this engine is already in a swarm");
        docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
        Swarm {
            stack: stack.to_string(),
        }
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        let _ = docker_output(&["stack", "rm", &self.stack]);
        // Task containers go before the swarm does.
        let deadline = Instant::now() + Duration::from_secs(60);
        let label = format!("label=com.docker.stack.namespace={}", self.stack);
        while Instant::now() < deadline {
            let out = docker_output(&["ps", "-aq", "--filter", &label]);
            if out.stdout.iter().all(u8::is_ascii_whitespace) {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        let _ = docker_output(&["swarm", "leave", "--force"]);
        for kind in ["volume", "network"] {
            let out = docker_output(&[kind, "ls", "-q", "--filter", &label]);
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = docker_output(&[kind, "rm", id]);
            }
        }
    }
}

/// The running task container of a service.
fn task_container(service: &str) -> Option<String> {
    let out = docker_output(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.swarm.service.name={service}"),
        "--filter",
        "status=running",
    ]);
    let ids = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!ids.is_empty() && !ids.contains('\n')).then_some(ids)
}

/// Asks the daemon on `port` for a backup of `target`, until `count` artifacts are there.
fn backup_until(port: u16, backups: &Path, target: &str, count: usize) -> Vec<String> {
    let path = format!("/api/targets/{target}/backup");
    let mut last_ask = Instant::now() - Duration::from_secs(60);
    wait_for(240, &format!("{count} artifact(s) of {target}"), || {
        let have = artifacts_of(backups, target);
        if have.len() >= count {
            return Some(have);
        }
        // Again now and then: the first ask may reach a daemon that has not yet planned the
        // target (or still knows the task container that was replaced).
        if last_ask.elapsed() > Duration::from_secs(15) {
            last_ask = Instant::now();
            let _ = std::panic::catch_unwind(|| http(port, "POST", &path, Some(TOKEN)));
        }
        None
    })
}

/// One test, the two files in turn: `docker swarm init` and `leave` reconfigure the engine's
/// networking, which broke a compose project's published port started at the same moment.
#[test]
fn the_deployment_examples_work_as_written() {
    the_compose_example_backs_up_its_database();
    the_stack_example_backs_up_a_swarm_service_across_reschedules();
}

fn the_stack_example_backs_up_a_swarm_service_across_reschedules() {
    require_image(PG_IMAGE);
    require_image(STOWAGE_IMAGE);
    let dir = Scratch::new("stack");
    let file = prepare(dir.path(), "stack.example.yml");
    let stack = format!("stack{}", std::process::id());
    let port = free_port();
    let backups = dir.path().join("backups");
    let _swarm = Swarm::init(&stack);
    let deploy = Command::new("docker")
        .args(["stack", "deploy", "--resolve-image", "never", "-c"])
        .arg(&file)
        .arg(&stack)
        .current_dir(dir.path())
        .env("POSTGRES_IMAGE", PG_IMAGE)
        .env("STOWAGE_IMAGE", STOWAGE_IMAGE)
        .env("STOWAGE_PORT", port.to_string())
        .env("STOWAGE_BACKUPS", &backups)
        .output()
        .unwrap();
    assert!(deploy.status.success(), "{deploy:?}");
    let db_service = format!("{stack}_db");
    let first_task = wait_for(120, "the database task", || task_container(&db_service));
    let stowage_task = wait_for(120, "the stowage task", || {
        task_container(&format!("{stack}_stowage"))
    });
    wait_for(60, "/healthz", || {
        std::panic::catch_unwind(|| http(port, "GET", "/healthz", None))
            .ok()
            .filter(|(code, _)| *code == 200)
    });
    // The plan names the service, reads the service's deploy.labels (a manager), and takes
    // the engine's name as the host.
    let plan = docker(&["exec", &stowage_task, "stowage", "plan"]);
    assert!(plan.lines().any(|l| l == db_service), "{plan}");
    assert!(
        plan.contains("retention: last=3,daily=7,weekly=4"),
        "deploy.labels were read: {plan}"
    );
    let engine_name = docker(&["info", "--format", "{{.Name}}"]);
    assert!(
        plan.contains(&format!(
            "host: {} (the Docker engine's name)",
            engine_name.trim()
        )),
        "{plan}"
    );

    let first = backup_until(port, &backups, &db_service, 1);
    docker(&[
        "service",
        "update",
        "--force",
        "--detach=false",
        &db_service,
    ]);
    let second_task = wait_for(120, "the rescheduled database task", || {
        task_container(&db_service).filter(|id| *id != first_task)
    });
    assert_ne!(first_task, second_task);
    // The replaced task's container (still listed, exited) is not a second target.
    let both = backup_until(port, &backups, &db_service, 2);
    assert!(both.contains(&first[0]), "{both:?}");
    let dirs: Vec<_> = std::fs::read_dir(&backups)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(
        dirs,
        std::slice::from_ref(&db_service),
        "one target directory"
    );
    let (_, metrics) = http(port, "GET", "/metrics", None);
    let ok = format!("stowage_backup_last_result{{target=\"{db_service}\"}} 1");
    assert!(
        metrics.contains(&ok),
        "one metric series across the reschedule: {metrics}"
    );
    assert!(
        !metrics.contains(&format!("target=\"{db_service}.1.")),
        "no series named for a task container: {metrics}"
    );
}

fn the_compose_example_backs_up_its_database() {
    require_image(PG_IMAGE);
    require_image(STOWAGE_IMAGE);
    let dir = Scratch::new("compose");
    let file = prepare(dir.path(), "compose.example.yml");
    let project = format!("compose{}", std::process::id());
    let port = free_port();
    let compose = |args: &[&str]| {
        Command::new("docker-compose")
            .arg("-f")
            .arg(&file)
            .args(["-p", &project])
            .args(args)
            .current_dir(dir.path())
            .env("POSTGRES_IMAGE", PG_IMAGE)
            .env("STOWAGE_IMAGE", STOWAGE_IMAGE)
            .env("STOWAGE_PORT", port.to_string())
            .output()
            .unwrap()
    };
    struct Down<'a>(&'a dyn Fn(&[&str]) -> std::process::Output);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = (self.0)(&["down", "-v", "--remove-orphans"]);
        }
    }
    let _down = Down(&compose);
    let up = compose(&["up", "-d"]);
    assert!(up.status.success(), "{up:?}");
    wait_for(60, "/healthz", || {
        std::panic::catch_unwind(|| http(port, "GET", "/healthz", None))
            .ok()
            .filter(|(code, _)| *code == 200)
    });
    // docker-compose 1 names the container <project>_db_1; the target is named after it.
    let target = format!("{project}_db_1");
    let made = backup_until(port, &dir.path().join("backups"), &target, 1);
    assert!(made[0].ends_with(".sql.zst"), "{made:?}");
}
