//! PostgreSQL end to end against the real Docker engine: round trip through stock tools,
//! selection by label, every database and named databases, pg_dump's stdout buffer.

mod common;

use std::path::Path;

use common::*;
use sha2::{Digest, Sha256};

fn pg_env(db: &str) -> Vec<(&'static str, String)> {
    vec![
        ("POSTGRES_PASSWORD", "pw".into()),
        ("POSTGRES_DB", db.into()),
    ]
}

fn manifest(artifact: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(format!("{}.json", artifact.display())).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Whether the stock `zstd -t` accepts the file.
fn zstd_accepts(path: &Path) -> bool {
    std::process::Command::new("zstd")
        .arg("-tq")
        .arg(path)
        .status()
        .unwrap()
        .success()
}

#[test]
fn round_trip_through_stock_tools_keeps_every_table_equal() {
    let instance = unique("rt");
    let dir = Scratch::new("rt");
    // A non-default user, detected from POSTGRES_USER. initdb then creates no "postgres"
    // role at all, so a dump as any other user fails: the backup succeeding proves detection.
    let mut env = pg_env("app");
    env.push(("POSTGRES_USER", "appuser".into()));
    let src = Pg::start(
        "rt-src",
        PgOptions {
            labels: target_labels(&instance),
            env: env.clone(),
            ..Default::default()
        },
    );
    src.seed(2);
    let before = src.table_checksums();
    assert_eq!(
        before.len(),
        5,
        "pgbench's four tables and notes: {before:?}"
    );

    let (code, stdout, stderr) = run_stowage(dir.path(), &instance, &["backup"]);
    assert_eq!(code, 0, "backup failed:\n{stderr}");
    let found = artifacts(dir.path());
    assert_eq!(found.len(), 1, "{found:?}");
    let path = dir.path().join(&found[0]);
    assert_eq!(
        stdout.trim(),
        path.display().to_string(),
        "stdout names the artifact"
    );
    assert!(
        stderr.contains("backup complete"),
        "timings are logged:\n{stderr}"
    );

    // The manifest describes the file exactly.
    let m = manifest(&path);
    let stored = std::fs::read(&path).unwrap();
    assert_eq!(m["stored"]["sha256"], hex::encode(Sha256::digest(&stored)));
    assert_eq!(m["stored"]["bytes"], stored.len() as u64);
    let raw = zstd::decode_all(&stored[..]).unwrap();
    assert_eq!(m["raw"]["sha256"], hex::encode(Sha256::digest(&raw)));
    assert_eq!(m["raw"]["bytes"], raw.len() as u64);
    assert_eq!(m["engine"], "postgres");
    assert_eq!(m["database"], "app");
    assert!(
        m["dump_tool_version"]
            .as_str()
            .unwrap()
            .starts_with("pg_dump (PostgreSQL) 15"),
        "{m}"
    );
    assert!(zstd_accepts(&path), "zstd -t accepts it");

    // The adaptive level with worker threads: the stock CLI decodes the artifact (one frame
    // per level) to the dump that was hashed on its way in (pg_dump's output differs per run:
    // it carries a random \restrict key), and the manifest accounts every byte to a level.
    let adaptive = Scratch::new("rt-auto");
    let out = stowage(adaptive.path(), &instance)
        .env("STOWAGE_COMPRESSION__LEVEL", "auto")
        .env("STOWAGE_COMPRESSION__THREADS", "auto")
        .arg("backup")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let auto_path = adaptive.path().join(&artifacts(adaptive.path())[0]);
    let auto = manifest(&auto_path);
    let decoded = std::process::Command::new("zstd")
        .arg("-dcq")
        .arg(&auto_path)
        .output()
        .unwrap();
    assert!(decoded.status.success());
    assert_eq!(
        hex::encode(Sha256::digest(&decoded.stdout)),
        auto["raw"]["sha256"]
    );
    assert_eq!(auto["raw"]["bytes"], decoded.stdout.len() as u64);
    let levels = auto["stored"]["compression_levels"].as_object().unwrap();
    let total: u64 = levels.values().map(|b| b.as_u64().unwrap()).sum();
    assert_eq!(total, decoded.stdout.len() as u64, "{levels:?}");
    assert!(decoded.stdout.len() > 16 << 20, "more than one window");

    let dst = Pg::start(
        "rt-dst",
        PgOptions {
            env,
            ..Default::default()
        },
    );
    restore_with_stock_tools(&path, &dst);
    assert_eq!(dst.table_checksums(), before);
}

#[test]
fn exactly_the_labelled_containers_are_backed_up() {
    let instance = unique("sel");
    let dir = Scratch::new("sel");
    let a = Pg::start(
        "sel-a",
        PgOptions {
            labels: target_labels(&instance),
            env: pg_env("a"),
            ..Default::default()
        },
    );
    let mut named = target_labels(&instance);
    named.push(("stowage.name", "billing".into()));
    let b = Pg::start(
        "sel-b",
        PgOptions {
            labels: named,
            env: pg_env("b"),
            ..Default::default()
        },
    );
    let _unlabelled = Pg::start(
        "sel-c",
        PgOptions {
            env: pg_env("c"),
            ..Default::default()
        },
    );

    let (code, stdout, _) = run_stowage(dir.path(), &instance, &["plan"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains(&a.c.name)
            && stdout.contains("billing")
            && stdout.contains("2 target(s), 0 labelled container(s) skipped"),
        "{stdout}"
    );
    assert!(
        stdout.contains("password:  env POSTGRES_PASSWORD") && !stdout.contains("pw\n"),
        "{stdout}"
    );

    let (code, _, stderr) = run_stowage(dir.path(), &instance, &["backup"]);
    assert_eq!(code, 0, "{stderr}");
    let found = artifacts(dir.path());
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found
            .iter()
            .any(|f| f.starts_with(&format!("{}/", a.c.name))
                && f.ends_with(&format!("_{}_a.sql.zst", a.c.name))),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.starts_with("billing/") && f.ends_with("_billing_b.sql.zst")),
        "{found:?}"
    );
    drop(b);
}

#[test]
fn all_databases_and_named_databases() {
    let instance = unique("dbs");
    let dir = Scratch::new("dbs");
    let mut labels = target_labels(&instance);
    labels.push(("stowage.database", "all".into()));
    let all = Pg::start(
        "dbs-all",
        PgOptions {
            labels,
            env: pg_env("one"),
            ..Default::default()
        },
    );
    all.psql("CREATE DATABASE two");
    all.psql("CREATE TABLE t1 (v text); INSERT INTO t1 VALUES ('in one')");

    let mut labels = target_labels(&instance);
    labels.push(("stowage.database", "one,two".into()));
    labels.push(("stowage.name", "pair".into()));
    let pair = Pg::start(
        "dbs-pair",
        PgOptions {
            labels,
            env: pg_env("one"),
            ..Default::default()
        },
    );
    pair.psql("CREATE DATABASE two");

    let (code, _, stderr) = run_stowage(dir.path(), &instance, &["backup"]);
    assert_eq!(code, 0, "{stderr}");
    let found = artifacts(dir.path());
    assert_eq!(
        found.len(),
        3,
        "one artifact for all, one per named database: {found:?}"
    );
    let everything = found
        .iter()
        .find(|f| f.ends_with("_all.sql.zst"))
        .expect("an _all artifact");
    let sql = String::from_utf8(
        zstd::decode_all(&std::fs::read(dir.path().join(everything)).unwrap()[..]).unwrap(),
    )
    .unwrap();
    assert!(sql.contains("PostgreSQL database cluster dump complete"));
    assert!(
        sql.contains("CREATE DATABASE two") && sql.contains("in one"),
        "pg_dumpall covers every database"
    );
    assert!(
        found
            .iter()
            .any(|f| f.starts_with("pair/") && f.ends_with("_pair_one.sql.zst"))
    );
    assert!(
        found
            .iter()
            .any(|f| f.starts_with("pair/") && f.ends_with("_pair_two.sql.zst"))
    );
}

/// pg_dump's environment while it runs, read from /proc inside the container (it is held
/// at a lock, so it runs long enough to be looked at).
fn dump_environment(pg: &Pg, dir: &Path, instance: &str) -> (String, serde_json::Value) {
    let lock = pg.hold_lock("pgbench_accounts");
    let child = spawn_backup(dir, instance);
    pg.wait_for_process("pg_dump");
    let pid = docker(&["exec", &pg.c.name, "ps", "-C", "pg_dump", "-o", "pid="]);
    let environ = docker(&[
        "exec",
        &pg.c.name,
        "cat",
        &format!("/proc/{}/environ", pid.trim()),
    ])
    .replace('\0', "\n");
    lock.release(pg);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let path = dir.join(artifacts(dir).last().unwrap());
    assert!(zstd_accepts(&path), "zstd -t accepts it");
    (environ, manifest(&path))
}

#[test]
fn pg_dump_writes_through_stdbuf_where_the_container_has_it_and_as_written_where_not() {
    let instance = unique("stdbuf");
    let pg = Pg::start(
        "stdbuf",
        PgOptions {
            labels: target_labels(&instance),
            env: pg_env("app"),
            ..Default::default()
        },
    );
    pg.seed(1);

    // Debian's image has coreutils: pg_dump runs with stdbuf's 64 KiB stdout buffer.
    let with = Scratch::new("stdbuf-with");
    let (environ, m_with) = dump_environment(&pg, with.path(), &instance);
    assert!(environ.contains("_STDBUF_O=65536"), "{environ}");
    assert!(environ.contains("libstdbuf.so"), "{environ}");
    assert!(environ.contains("PGPASSWORD="), "the spec's env is kept");

    // Without stdbuf (as in busybox images), pg_dump runs exactly as the spec writes it.
    docker(&["exec", "-u", "0", &pg.c.name, "rm", "/usr/bin/stdbuf"]);
    let without = Scratch::new("stdbuf-without");
    let (environ, m_without) = dump_environment(&pg, without.path(), &instance);
    assert!(!environ.contains("_STDBUF_O"), "{environ}");
    assert!(!environ.contains("libstdbuf"), "{environ}");
    assert!(
        m_without["dump_tool_version"]
            .as_str()
            .unwrap()
            .starts_with("pg_dump (PostgreSQL) 15")
    );
    assert_eq!(m_with["dump_tool_version"], m_without["dump_tool_version"]);
    // The same data, the same dump (its \restrict key aside, which has a fixed length):
    // the buffer changes how the bytes are written, never which.
    assert_eq!(m_with["raw"]["bytes"], m_without["raw"]["bytes"]);
}
