//! PostgreSQL's custom format (`stowage.format=custom`) against a real server: the backup is a
//! pg_dump custom archive (not compressed by pg_dump; stowage compresses it), `plan` shows the
//! format, and `stowage restore --jobs 2` restores it with pg_restore in parallel from a temp
//! file in the container, which is removed afterwards. The data is equal table by table.

mod common;

use common::*;

#[test]
fn custom_format_backs_up_and_restores_with_parallel_jobs() {
    let instance = unique("pgcustom");
    let dir = Scratch::new("pgcustom");
    let src = Pg::start_target_with("pgcustom-src", &instance, &[("stowage.format", "custom")]);
    src.seed(2);
    let before = src.table_checksums();

    let (code, plan, _) = run_stowage(dir.path(), &instance, &["plan"]);
    assert_eq!(code, 0, "{plan}");
    assert!(plan.contains("engine:    postgres-custom"), "{plan}");

    let (code, stdout, stderr) = run_stowage(dir.path(), &instance, &["backup"]);
    assert_eq!(code, 0, "{stderr}");
    let artifact = stdout.trim().to_string();
    assert!(artifact.ends_with("_app.dump.zst"), "{artifact}");
    let raw = zstd::decode_all(&std::fs::read(&artifact).unwrap()[..]).unwrap();
    assert!(raw.starts_with(b"PGDMP"), "a pg_dump custom-format archive");

    let dst = Pg::start(
        "pgcustom-dst",
        PgOptions {
            env: vec![
                ("POSTGRES_PASSWORD", "pw".into()),
                ("POSTGRES_DB", "app".into()),
            ],
            ..Default::default()
        },
    );
    let (code, stdout, stderr) = run_stowage(
        dir.path(),
        &instance,
        &["restore", &artifact, "--to", &dst.c.name, "--jobs", "2"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("restored"), "{stdout}");
    assert!(stderr.contains("restoring from it"), "{stderr}");
    assert_eq!(dst.table_checksums(), before);
    let tmp = dst.exec(&["ls", "-A", "/tmp"]);
    assert!(!tmp.contains("stowage-"), "the temp file is removed: {tmp}");

    // --jobs for an engine that restores from a pipe (plain SQL): refused, nothing sent.
    let plain_instance = unique("pgcustom-plain");
    let plain = Pg::start_target("pgcustom-plain", &plain_instance);
    let (code, stdout, stderr) = run_stowage(dir.path(), &plain_instance, &["backup"]);
    assert_eq!(code, 0, "{stderr}");
    let plain_artifact = stdout.trim().to_string();
    let (code, _, stderr) = run_stowage(
        dir.path(),
        &plain_instance,
        &[
            "restore",
            &plain_artifact,
            "--to",
            &plain.c.name,
            "--jobs",
            "2",
        ],
    );
    assert_ne!(code, 0);
    assert!(
        stderr.contains("engine postgres does not restore in parallel: leave out --jobs"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_format_is_a_label_mistake() {
    let instance = unique("pgformat");
    let dir = Scratch::new("pgformat");
    let _pg = Pg::start_target_with("pgformat", &instance, &[("stowage.format", "directory")]);
    let (code, out, err) = run_stowage(dir.path(), &instance, &["plan"]);
    assert_ne!(code, 0);
    let text = format!("{out}{err}");
    assert!(
        text.contains(
            "stowage.format=directory: engine postgres has no such format (it has: custom)"
        ),
        "{text}"
    );
}
