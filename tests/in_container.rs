//! stowage running as a container with the Docker socket mounted, as users run it. With no
//! helper image configured, an SQLite target without `sqlite3` is dumped in a helper made
//! from the image stowage itself runs in. Docker's default seccomp profile lets it take the
//! `SCHED_BATCH` policy.

mod common;

use common::*;

#[test]
fn stowage_container_backs_up_through_the_mounted_socket() {
    require_image(STOWAGE_IMAGE);
    let socket = docker_socket();
    let instance = unique("ctr");
    let dir = Scratch::new("ctr");
    let pg = Pg::start_target("ctr", &instance);
    pg.psql("CREATE TABLE t (v text); INSERT INTO t VALUES ('backed up from a container')");
    let app = SqliteApp::start(SQLITE_APP, "ctr-sqlite", Some(&instance), &["sleep", "600"]);
    app.app(&["seed", "/data/app.db", "wal", "10"]);
    let name = unique("stowage");
    let out = docker_output(&[
        "run",
        "--rm",
        "--name",
        &name,
        "-v",
        &format!("{socket}:/var/run/docker.sock"),
        "-v",
        &format!("{}:/backups", dir.path().display()),
        "-e",
        &format!("STOWAGE_INSTANCE={instance}"),
        "-e",
        "STOWAGE_LOG=info,stowage=debug",
        STOWAGE_IMAGE,
        "backup",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("its commands run in a helper container"),
        "{stderr}"
    );
    // Docker's default seccomp profile lets it take SCHED_BATCH (pipeline::sched).
    assert!(stderr.contains("scheduling=Batch"), "{stderr}");
    let found = artifacts(dir.path());
    assert_eq!(found.len(), 2, "{found:?}");
    let pg_artifact = found.iter().find(|f| f.starts_with(&pg.c.name)).unwrap();
    // The paths printed are the ones inside the container.
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed
            .lines()
            .any(|l| l == format!("/backups/{pg_artifact}")),
        "{printed}"
    );
    let read = |f: &str| {
        String::from_utf8(
            zstd::decode_all(&std::fs::read(dir.path().join(f)).unwrap()[..]).unwrap(),
        )
        .unwrap()
    };
    assert!(read(pg_artifact).contains("backed up from a container"));
    let sqlite_artifact = found.iter().find(|f| f.starts_with(&app.c.name)).unwrap();
    assert!(read(sqlite_artifact).contains("INSERT INTO events VALUES(10,'seed 10"));

    let plan = docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{socket}:/var/run/docker.sock"),
        "-e",
        &format!("STOWAGE_INSTANCE={instance}"),
        STOWAGE_IMAGE,
        "plan",
    ]);
    assert!(
        plan.contains(&pg.c.name) && plan.contains("2 target(s)"),
        "{plan}"
    );
}
