//! age encryption end to end on real PostgreSQL: the artifact opens with the stock `age` CLI
//! (`age -d -i key.txt | zstd -d`), `stowage restore` decrypts it in the stream, a wrong or
//! missing identity is a clear error that sends nothing to the database, a passphrase read
//! from a `*_FILE` secret works with the configured scrypt work factor, and
//! `stowage.encrypt=false` opts a container out.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// `age-keygen` into `dir/name`; returns the public key.
fn keygen(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&path)
        .output()
        .expect("age-keygen (scripts/deps.sh installs age)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string()
}

fn manifest(artifact: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{artifact}.json")).unwrap()).unwrap()
}

#[test]
fn age_recipients_round_trip_and_wrong_identity() {
    let instance = unique("age");
    let dir = Scratch::new("age");
    let keys = Scratch::new("age-keys");
    let public = keygen(keys.path(), "key.txt");
    let _other = keygen(keys.path(), "other.txt");
    let src = Pg::start_target("age-src", &instance);
    src.seed(1);
    let before = src.table_checksums();
    let mut labels = target_labels(&instance);
    labels.push(("stowage.encrypt", "false".into()));
    let plain = Pg::start(
        "age-plain",
        PgOptions {
            labels,
            env: vec![("POSTGRES_PASSWORD", "pw".into())],
            ..Default::default()
        },
    );
    let run = |args: &[&str]| {
        outcome(
            stowage(dir.path(), &instance)
                .env("STOWAGE_ENCRYPTION__RECIPIENTS", &public)
                .args(args),
        )
    };

    let (code, stdout, stderr) = run(&["backup"]);
    assert_eq!(code, 0, "{stderr}");
    let artifacts: Vec<&str> = stdout.lines().collect();
    let encrypted = artifacts
        .iter()
        .find(|a| a.contains(&src.c.name))
        .unwrap()
        .to_string();
    let unencrypted = artifacts
        .iter()
        .find(|a| a.contains(&plain.c.name))
        .unwrap();
    assert!(encrypted.ends_with("_app.sql.zst.age"), "{encrypted}");
    assert!(
        unencrypted.ends_with(".sql.zst"),
        "stowage.encrypt=false: {unencrypted}"
    );
    let m = manifest(&encrypted);
    assert_eq!(m["stored"]["encrypted"], true);
    assert_eq!(m["stored"]["encryption"]["format"], "age");
    assert_eq!(m["stored"]["encryption"]["recipients"][0], public.as_str());
    assert!(!m.to_string().contains("AGE-SECRET-KEY"));
    assert_eq!(manifest(unencrypted)["stored"]["encrypted"], false);

    // The stock CLIs open it: age -d -i key.txt | zstd -d.
    let decrypted = keys.path().join("dump.sql.zst");
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(keys.path().join("key.txt"))
        .arg("-o")
        .arg(&decrypted)
        .arg(&encrypted)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sql = zstd::decode_all(&std::fs::read(&decrypted).unwrap()[..]).unwrap();
    let sql = String::from_utf8(sql).unwrap();
    assert!(sql.contains("PostgreSQL database dump complete"));
    let (code, verified, _) = run(&["verify"]);
    assert!(
        code == 0 && verified.contains("2 verified, 0 failed"),
        "{verified}"
    );

    // No identity, then a wrong one: clear errors, and nothing reaches the database.
    let dst = Pg::start_target("age-dst", &unique("none"));
    let (code, _, stderr) = run(&["restore", &encrypted, "--to", &dst.c.name]);
    assert_eq!(code, 1);
    assert!(stderr.contains("--identity"), "{stderr}");
    let other = keys.path().join("other.txt");
    let (code, _, stderr) = run(&[
        "restore",
        &encrypted,
        "--to",
        &dst.c.name,
        "--identity",
        other.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("none of the keys can decrypt this artifact")
            && stderr.contains(&public)
            && stderr.contains("other.txt"),
        "{stderr}"
    );
    assert!(dst.table_checksums().is_empty(), "nothing was restored");

    let key = keys.path().join("key.txt");
    let (code, _, stderr) = run(&[
        "restore",
        &encrypted,
        "--to",
        &dst.c.name,
        "--identity",
        key.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(dst.table_checksums(), before);
}

#[test]
fn passphrase_from_a_file_secret() {
    let instance = unique("age-pass");
    let dir = Scratch::new("age-pass");
    let secrets = Scratch::new("age-pass-secret");
    let file = secrets.path().join("passphrase");
    std::fs::write(&file, "correct horse battery staple\n").unwrap();
    let src = Pg::start_target("age-pass-src", &instance);
    src.seed(1);
    let before = src.table_checksums();
    let run = |args: &[&str]| {
        outcome(
            stowage(dir.path(), &instance)
                .env("STOWAGE_ENCRYPTION__PASSPHRASE_FILE", &file)
                .env("STOWAGE_ENCRYPTION__SCRYPT_WORK_FACTOR", "15")
                .args(args),
        )
    };
    let (code, stdout, stderr) = run(&["backup"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("horse"));
    let artifact = stdout.trim().to_string();
    assert_eq!(
        manifest(&artifact)["stored"]["encryption"]["passphrase"],
        true
    );
    // The header's scrypt stanza carries the work factor that was configured.
    let head = std::fs::read(&artifact).unwrap();
    let header = String::from_utf8_lossy(&head[..200.min(head.len())]).into_owned();
    let stanza = header
        .lines()
        .find(|l| l.starts_with("-> scrypt "))
        .unwrap();
    assert!(stanza.ends_with(" 15"), "{stanza}");

    let dst = Pg::start_target("age-pass-dst", &unique("none"));
    let (code, _, stderr) = run(&["restore", &artifact, "--to", &dst.c.name]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(dst.table_checksums(), before);

    std::fs::write(&file, "wrong\n").unwrap();
    let fresh = Pg::start_target("age-pass-fresh", &unique("none"));
    let (code, _, stderr) = run(&["restore", &artifact, "--to", &fresh.c.name]);
    assert_eq!(code, 1);
    assert!(stderr.contains("wrong passphrase"), "{stderr}");
}
