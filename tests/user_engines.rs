//! A user-defined engine from `engines_dir`, end to end on real PostgreSQL: the shipped
//! example spec (pg_dump custom format) backs up, and `stowage restore` puts it back through
//! the spec's pg_restore command.

mod common;

use std::process::Command;

use common::*;

fn with_examples(mut cmd: Command) -> Command {
    cmd.env(
        "STOWAGE_ENGINES_DIR",
        concat!(env!("CARGO_MANIFEST_DIR"), "/engines/examples"),
    );
    cmd
}

fn run(dir: &std::path::Path, instance: &str, args: &[&str]) -> (i32, String, String) {
    outcome(with_examples(stowage(dir, instance)).args(args))
}

#[test]
fn example_user_engine_backs_up_and_restores() {
    let instance = unique("usereng");
    let dir = Scratch::new("usereng");
    let src = Pg::start_target_with(
        "usereng-src",
        &instance,
        &[("stowage.engine", "pg-custom-example")],
    );
    src.seed(1);
    let before = src.table_checksums();

    let (code, engines, _) = run(dir.path(), &instance, &["engines"]);
    assert_eq!(code, 0);
    assert!(
        engines.contains("pg-custom-example")
            && engines.contains("engines/examples/pg-custom-example.toml"),
        "{engines}"
    );

    let (code, plan, _) = run(dir.path(), &instance, &["plan"]);
    assert_eq!(code, 0, "{plan}");
    assert!(plan.contains("engine:    pg-custom-example"), "{plan}");

    let (code, stdout, stderr) = run(dir.path(), &instance, &["backup"]);
    assert_eq!(code, 0, "{stderr}");
    let artifact = stdout.trim().to_string();
    assert!(artifact.ends_with("_app.dump.zst"), "{artifact}");
    let raw = zstd::decode_all(&std::fs::read(&artifact).unwrap()[..]).unwrap();
    assert!(raw.starts_with(b"PGDMP"), "a pg_dump custom-format archive");

    let dst = Pg::start(
        "usereng-dst",
        PgOptions {
            env: vec![
                ("POSTGRES_PASSWORD", "pw".into()),
                ("POSTGRES_DB", "app".into()),
            ],
            ..Default::default()
        },
    );
    let (code, _, stderr) = run(
        dir.path(),
        &instance,
        &["restore", &artifact, "--to", &dst.c.name],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(dst.table_checksums(), before);
}

/// The spec's `stdin` line (how the MongoDB engine passes its password) reaches the tool
/// through the Docker exec API before anything else, for a dump and for a restore, and is in
/// no argv. The "tools" are coreutils: `head` prints the line it was given, `tee` keeps all of
/// its input, so what arrived, and in which order, can be read back.
#[test]
fn stdin_line_reaches_dump_and_restore_first() {
    let instance = unique("stdin");
    let dir = Scratch::new("stdin");
    let engines = Scratch::new("stdin-engines");
    std::fs::write(
        engines.path().join("probe.toml"),
        r#"
name = "stdin-probe"
description = "test: tools that show what they read on stdin"
extension = "txt"
[vars.password]
from = ["env:PROBE_PASSWORD"]
secret = true
[dump]
argv = ["head", "-n", "1"]
stdin = "{password}\n"
[restore]
argv = ["tee", "/tmp/restored"]
stdin = "{password}\n"
"#,
    )
    .unwrap();
    let password = "s3cret 'x' $(id)";
    let name = unique("stdin-probe");
    require_image(STOWAGE_IMAGE);
    let probe_env = format!("PROBE_PASSWORD={password}");
    let instance_label = format!("stowage.instance={instance}");
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "stowage.enable=true",
        "--label",
        &instance_label,
        "--label",
        "stowage.engine=stdin-probe",
        "-e",
        &probe_env,
        "--entrypoint",
        "sleep",
        STOWAGE_IMAGE,
        "600",
    ]);
    let c = Container { name };
    let run = |args: &[&str]| {
        outcome(
            stowage(dir.path(), &instance)
                .env("STOWAGE_ENGINES_DIR", engines.path())
                .args(args),
        )
    };
    let (code, stdout, stderr) = run(&["backup"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
    let artifact = stdout.trim().to_string();
    let raw = zstd::decode_all(&std::fs::read(&artifact).unwrap()[..]).unwrap();
    assert_eq!(raw, format!("{password}\n").as_bytes());

    let (code, _, stderr) = run(&["restore", &artifact, "--to", &c.name]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        docker(&["exec", &c.name, "cat", "/tmp/restored"]),
        format!("{password}\n{password}\n"),
        "the line first, then the artifact"
    );
}
