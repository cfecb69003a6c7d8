//! etcd 3.4 (Debian's) with authentication on: keys round-trip through `etcdctl snapshot
//! save` (a temp file in the container, streamed out by stowage and removed) and a restore
//! with stock tools (`zstd -d`, `etcdctl snapshot restore`, a new member on the restored data
//! directory). A snapshot whose SHA-256 trailer is damaged is refused by the check stowage
//! applies, as by etcd's own restore.

mod common;

use std::time::{Duration, Instant};

use common::*;

const ETCD_IMAGE: &str = "stowage-test/etcd:test";
const ROOT_PASSWORD: &str = "etcd root pw";

fn etcdctl(container: &str, auth: bool, args: &[&str]) -> String {
    let user = format!("ETCDCTL_USER=root:{ROOT_PASSWORD}");
    let mut argv = vec!["exec"];
    if auth {
        argv.extend(["-e", &user]);
    }
    argv.extend([container, "etcdctl"]);
    argv.extend(args);
    docker(&argv)
}

fn wait_ready(container: &str, auth: bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let user = format!("ETCDCTL_USER=root:{ROOT_PASSWORD}");
        let mut argv = vec!["exec"];
        if auth {
            argv.extend(["-e", &user]);
        }
        argv.extend([container, "etcdctl", "endpoint", "health"]);
        if docker_output(&argv).status.success() {
            return;
        }
        assert!(Instant::now() < deadline, "etcd did not become healthy");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn keys_round_trip_through_a_snapshot_and_a_restore() {
    require_image(ETCD_IMAGE);
    let instance = unique("etcd");
    let dir = Scratch::new("etcd");
    let etcd = Container {
        name: unique("etcd"),
    };
    let mut args: Vec<String> = ["run", "-d", "--name", &etcd.name, "-e"]
        .map(String::from)
        .to_vec();
    args.push(format!("ETCD_ROOT_PASSWORD={ROOT_PASSWORD}"));
    for (k, v) in target_labels(&instance) {
        args.extend(["--label".into(), format!("{k}={v}")]);
    }
    args.push(ETCD_IMAGE.into());
    docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
    wait_ready(&etcd.name, false);
    etcdctl(&etcd.name, false, &["put", "/app/config", "{\"a\": 1}"]);
    etcdctl(
        &etcd.name,
        false,
        &["put", "/app/with space", "value with spaces"],
    );
    for i in 0..200 {
        etcdctl(
            &etcd.name,
            false,
            &["put", &format!("/many/{i:03}"), &format!("v{i}")],
        );
    }
    // Authentication on: stowage must pass the root password (ETCDCTL_USER, not argv).
    etcdctl(
        &etcd.name,
        false,
        &["user", "add", &format!("root:{ROOT_PASSWORD}")],
    );
    etcdctl(&etcd.name, false, &["auth", "enable"]);
    let all = |c: &str, auth: bool| etcdctl(c, auth, &["get", "--prefix", ""]);
    let before = all(&etcd.name, true);
    assert!(before.contains("/many/199") && before.contains("value with spaces"));

    let (code, plan, _) = run_stowage(dir.path(), &instance, &["plan"]);
    assert!(code == 0 && plan.contains("engine:    etcd"), "{plan}");
    let (code, _, stderr) = run_stowage(dir.path(), &instance, &["backup"]);
    assert_eq!(code, 0, "{stderr}");
    let found = artifacts(dir.path());
    assert_eq!(found.len(), 1, "{stderr}");
    assert!(found[0].ends_with("_all.db.zst"), "{found:?}");
    let tmp = docker(&["exec", &etcd.name, "ls", "-A", "/tmp"]);
    assert!(!tmp.contains("stowage-"), "the temp file is removed: {tmp}");

    // Restore with stock tools into a new member.
    let raw = dir.path().join("snapshot.db");
    let status = std::process::Command::new("zstd")
        .args(["-d", "-q", "-o"])
        .arg(&raw)
        .arg(dir.path().join(&found[0]))
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::set_permissions(&raw, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let restored = Container {
        name: unique("etcd-restored"),
    };
    let mount = format!("{}:/restore/snapshot.db:ro", raw.display());
    docker(&[
        "run",
        "-d",
        "--name",
        &restored.name,
        "-v",
        &mount,
        "--entrypoint",
        "sh",
        ETCD_IMAGE,
        "-c",
        "etcdctl snapshot restore /restore/snapshot.db --data-dir /tmp/restored \
         && exec etcd --data-dir /tmp/restored --listen-client-urls http://0.0.0.0:2379 \
         --advertise-client-urls http://127.0.0.1:2379",
    ]);
    wait_ready(&restored.name, true);
    assert_eq!(all(&restored.name, true), before);

    // A damaged trailer fails etcd's own check, as it fails stowage's.
    let mut bytes = std::fs::read(&raw).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    let damaged = dir.path().join("damaged.db");
    std::fs::write(&damaged, &bytes).unwrap();
    std::fs::set_permissions(
        &damaged,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let mount = format!("{}:/restore/damaged.db:ro", damaged.display());
    let out = docker_output(&[
        "run",
        "--rm",
        "-v",
        &mount,
        ETCD_IMAGE,
        "etcdctl",
        "snapshot",
        "restore",
        "/restore/damaged.db",
        "--data-dir",
        "/tmp/x",
    ]);
    assert!(!out.status.success(), "etcd accepted a damaged snapshot");
}
