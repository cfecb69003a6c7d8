//! `stowage restore`, `verify` and `list` against real PostgreSQL: a round trip through
//! stowage itself, and an altered artifact refused before anything reaches the database.

mod common;

use common::*;

#[test]
fn restore_round_trip_and_altered_artifacts_are_refused() {
    let instance = unique("restore");
    let dir = Scratch::new("restore");
    let src = Pg::start_target("restore-src", &instance);
    src.seed(1);
    let before = src.table_checksums();
    let (code, stdout, stderr) = run_stowage(dir.path(), &instance, &["backup"]);
    assert_eq!(code, 0, "{stderr}");
    let artifact = stdout.trim().to_string();

    let (code, listing, _) = run_stowage(dir.path(), &instance, &["list"]);
    assert_eq!(code, 0);
    assert!(
        listing.contains(&artifact)
            && listing.contains(" ok ")
            && listing.contains("1 artifact(s)"),
        "{listing}"
    );

    // Into another container (no stowage labels), into a database other than the dumped one:
    // the credentials come from the target container's own environment.
    let dst = Pg::start(
        "restore-dst",
        PgOptions {
            env: vec![
                ("POSTGRES_PASSWORD", "other-pw".into()),
                ("POSTGRES_INITDB_ARGS", "--auth-local=scram-sha-256".into()),
            ],
            ..Default::default()
        },
    );
    dst.psql("CREATE DATABASE copy");
    let (code, out, stderr) = run_stowage(
        dir.path(),
        &instance,
        &[
            "restore",
            &artifact,
            "--to",
            &dst.c.name,
            "--database",
            "copy",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        out.contains("into database copy") && stderr.contains("restore complete"),
        "{out}\n{stderr}"
    );
    assert_eq!(dst.table_checksums_in("copy"), before);

    // One flipped byte: verify and restore both refuse, and nothing is written.
    let mut bytes = std::fs::read(&artifact).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&artifact, &bytes).unwrap();
    let (code, verified, _) = run_stowage(dir.path(), &instance, &["verify"]);
    assert_eq!(code, 1, "{verified}");
    assert!(
        verified.contains("FAILED") && verified.contains("altered or corrupted"),
        "{verified}"
    );
    dst.psql("CREATE DATABASE fresh");
    let (code, _, stderr) = run_stowage(
        dir.path(),
        &instance,
        &[
            "restore",
            &artifact,
            "--to",
            &dst.c.name,
            "--database",
            "fresh",
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("Refusing to restore it") && stderr.contains(&dst.c.name),
        "{stderr}"
    );
    assert!(
        dst.table_checksums_in("fresh").is_empty(),
        "nothing was restored"
    );
}
