//! stowage running as a container with the Docker socket mounted, as users run it.

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
        STOWAGE_IMAGE,
        "backup",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let found = artifacts(dir.path());
    assert_eq!(found.len(), 1, "{found:?}");
    // The path printed is the one inside the container.
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(printed.trim(), format!("/backups/{}", found[0]));
    let sql = zstd::decode_all(&std::fs::read(dir.path().join(&found[0])).unwrap()[..]).unwrap();
    assert!(
        String::from_utf8(sql)
            .unwrap()
            .contains("backed up from a container")
    );

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
        plan.contains(&pg.c.name) && plan.contains("1 target(s)"),
        "{plan}"
    );
}
