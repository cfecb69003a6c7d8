//! MariaDB end to end: an image built from Debian's packages whose entrypoint honours the
//! official image's variables; data with routines, a trigger and unicode; backup, then
//! `stowage restore` into a fresh container; data, routines and triggers equal.

mod common;

use common::*;

#[test]
fn mariadb_round_trip_with_routines_triggers_and_unicode() {
    let instance = unique("maria");
    let dir = Scratch::new("maria");
    let src = Maria::start("maria-src", target_labels(&instance), "app");
    src.seed("app");
    let before = src.snapshot("app");
    assert!(
        before[1].contains("added Grüße"),
        "the trigger ran: {before:?}"
    );

    let (code, plan, _) = run_stowage(dir.path(), &instance, &["plan"]);
    assert_eq!(code, 0, "{plan}");
    assert!(
        plan.contains("engine:    mysql") && plan.contains("app (env MARIADB_DATABASE)"),
        "{plan}"
    );
    assert!(
        plan.contains("the first of mariadb-dump, mysqldump found in the container"),
        "{plan}"
    );
    assert!(!plan.contains("r00t"), "{plan}");

    let (code, stdout, stderr) = run_stowage(dir.path(), &instance, &["backup"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("r00t"));
    let artifact = stdout.trim().to_string();
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{artifact}.json")).unwrap())
            .unwrap();
    assert!(
        m["dump_tool_version"].as_str().unwrap().contains("MariaDB"),
        "{m}"
    );

    let dst = Maria::start("maria-dst", vec![], "app");
    let (code, _, stderr) = run_stowage(
        dir.path(),
        &instance,
        &["restore", &artifact, "--to", &dst.c.name],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(dst.snapshot("app"), before);
    // The routines and the trigger work in the restored database.
    assert_eq!(dst.sql("app", "SELECT double_price(2.25)").trim(), "4.50");
    dst.sql(
        "app",
        "INSERT INTO items (name, price) VALUES ('after restore', 1)",
    );
    assert!(
        dst.sql("app", "SELECT note FROM audit ORDER BY id DESC LIMIT 1")
            .contains("added after restore")
    );
    assert!(
        docker(&["exec", &src.c.name, "ls", "/tmp"])
            .lines()
            .all(|l| l != "x"),
        "no shell ran the password"
    );
}

/// The common compose setup: a random root password and an application account. stowage
/// takes the account's user and password as a pair (one from a file), with no label at all.
#[test]
fn mariadb_application_account_is_used_when_root_password_is_unknown() {
    let instance = unique("maria-app");
    let dir = Scratch::new("maria-app");
    let secret = Scratch::new("maria-app-secret");
    let app_pw = "app 'pw\" $(id)";
    std::fs::write(secret.path().join("pw"), format!("{app_pw}\n")).unwrap();
    let mount = format!("{}:/run/secrets:ro", secret.path().display());
    let env = |extra: &[&str]| {
        let mut args = Vec::new();
        for e in [
            "MARIADB_RANDOM_ROOT_PASSWORD=yes",
            "MARIADB_USER=appuser",
            "MARIADB_DATABASE=shop",
        ] {
            args.extend(["-e".to_string(), e.to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let src = Maria::start_with(
        "maria-app-src",
        target_labels(&instance),
        env(&["-e", &format!("MARIADB_PASSWORD={app_pw}")]),
        ("appuser", app_pw),
    );
    src.seed("shop");
    let before = src.snapshot("shop");

    let (code, plan, _) = run_stowage(dir.path(), &instance, &["plan"]);
    assert_eq!(code, 0, "{plan}");
    assert!(
        plan.contains("appuser (env MARIADB_USER)") && plan.contains("env MARIADB_PASSWORD"),
        "{plan}"
    );
    let (code, stdout, stderr) = run_stowage(dir.path(), &instance, &["backup"]);
    assert_eq!(code, 0, "{stderr}");
    let artifact = stdout.trim().to_string();

    // The destination reads the same password from a file, as with Docker secrets.
    let dst = Maria::start_with(
        "maria-app-dst",
        vec![],
        env(&["-e", "MARIADB_PASSWORD_FILE=/run/secrets/pw", "-v", &mount]),
        ("appuser", app_pw),
    );
    let (code, _, stderr) = run_stowage(
        dir.path(),
        &instance,
        &["restore", &artifact, "--to", &dst.c.name],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(dst.snapshot("shop"), before);
}
