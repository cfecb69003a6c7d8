//! Passwords reach the dump tool through the exec environment only: never an argv (ps,
//! docker inspect), never stowage's output or manifests; and no shell ever reads them.

mod common;

use bollard::Docker;
use common::*;

const PASSWORD: &str = "it's a \"s3cr3t\" $(touch /tmp/pwned); rm -rf /tmp/x ; `id` & | <>";

#[tokio::test]
async fn password_with_shell_characters_never_reaches_an_argv() {
    let instance = unique("sec");
    let dir = Scratch::new("sec");
    let pg = Pg::start(
        "sec",
        PgOptions {
            labels: target_labels(&instance),
            env: vec![
                ("POSTGRES_PASSWORD", PASSWORD.into()),
                ("POSTGRES_DB", "app".into()),
                // Local connections need the password too, so a backup proves it arrived.
                ("POSTGRES_INITDB_ARGS", "--auth-local=scram-sha-256".into()),
            ],
            ..Default::default()
        },
    );
    pg.psql("CREATE TABLE t (v text); INSERT INTO t VALUES ('x')");
    let lock = pg.hold_lock("t");
    let child = spawn_backup(dir.path(), &instance);
    // pg_dump now waits for the lock: look at it from inside and from the engine.
    let ps = pg.wait_for_process("pg_dump");
    assert!(!ps.contains("s3cr3t"), "password visible in ps:\n{ps}");
    assert!(ps.contains("--dbname=app"), "{ps}");

    let docker = Docker::connect_with_unix_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    let info = docker
        .inspect_container(
            &pg.c.name,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .unwrap();
    let mut saw_dump = false;
    for id in info.exec_ids.unwrap_or_default() {
        let exec = docker.inspect_exec(&id).await.unwrap();
        let shown = format!("{:?}", exec.process_config);
        assert!(
            !shown.contains("s3cr3t"),
            "password visible in exec inspect: {shown}"
        );
        saw_dump |= shown.contains("pg_dump") && shown.contains("--no-password");
    }
    assert!(saw_dump, "the dump's exec was inspected");

    lock.release(&pg);
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stdout.contains("s3cr3t") && !stderr.contains("s3cr3t"));
    let found = artifacts(dir.path());
    assert_eq!(found.len(), 1);
    let manifest = std::fs::read_to_string(dir.path().join(format!("{}.json", found[0]))).unwrap();
    assert!(!manifest.contains("s3cr3t"));
    assert!(
        pg.exec(&["ls", "/tmp"]).lines().all(|l| l != "pwned"),
        "no shell ran the password"
    );

    let (code, plan, _) = run_stowage(dir.path(), &instance, &["plan"]);
    assert_eq!(code, 0);
    assert!(
        plan.contains("password:  env POSTGRES_PASSWORD") && !plan.contains("s3cr3t"),
        "{plan}"
    );
}

#[test]
fn password_file_is_read_inside_the_container() {
    let instance = unique("secfile");
    let dir = Scratch::new("secfile");
    let secret = dir.path().join("pg_password");
    std::fs::write(&secret, format!("{PASSWORD}\n")).unwrap();
    let mount = format!("{}:/run/secrets/pg_password:ro", secret.display());
    let backups = Scratch::new("secfile-out");
    let pg = Pg::start(
        "secfile",
        PgOptions {
            labels: target_labels(&instance),
            env: vec![
                ("POSTGRES_PASSWORD_FILE", "/run/secrets/pg_password".into()),
                ("POSTGRES_DB", "app".into()),
                ("POSTGRES_INITDB_ARGS", "--auth-local=scram-sha-256".into()),
            ],
            run_args: vec!["-v".into(), mount],
            password: Some(PASSWORD.into()),
        },
    );
    pg.psql("CREATE TABLE t (v text); INSERT INTO t VALUES ('from a file secret')");
    let (code, plan, _) = run_stowage(backups.path(), &instance, &["plan"]);
    assert_eq!(code, 0);
    assert!(
        plan.contains(
            "password:  file /run/secrets/pg_password in the container (POSTGRES_PASSWORD_FILE)"
        ),
        "{plan}"
    );
    let (code, _, stderr) = run_stowage(backups.path(), &instance, &["backup"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("s3cr3t"));
    let found = artifacts(backups.path());
    assert_eq!(found.len(), 1);
    let sql =
        zstd::decode_all(&std::fs::read(backups.path().join(&found[0])).unwrap()[..]).unwrap();
    assert!(
        String::from_utf8(sql)
            .unwrap()
            .contains("from a file secret")
    );
}
