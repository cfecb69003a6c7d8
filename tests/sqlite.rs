//! SQLite: a consistent snapshot while the application keeps writing, in WAL and in
//! rollback-journal mode, both when the application container has `sqlite3` (the dump runs
//! there) and when it has not (the dump runs in a helper container from stowage's image with
//! the application's volumes). The artifact restores, with `stowage restore`, to a database
//! that passes `PRAGMA integrity_check` and holds exactly the first N writes, N between the
//! counts seen before and after the backup.

mod common;

use common::*;

fn snapshot_under_writes(image: &str, mode: &str, expect_helper: bool) {
    let instance = unique("sqlite");
    let dir = Scratch::new("sqlite");
    // Enough rows that the dump takes a while, so that the writer commits during it.
    let app = SqliteApp::start_writer(image, &instance, mode, 150_000);
    let run = |args: &[&str]| {
        outcome(
            stowage(dir.path(), &instance)
                .env("STOWAGE_HELPER_IMAGE", STOWAGE_IMAGE)
                .args(args),
        )
    };

    let (code, plan, _) = run(&["plan"]);
    assert_eq!(code, 0, "{plan}");
    assert!(
        plan.contains("engine:    sqlite") && plan.contains("/data/app.db"),
        "{plan}"
    );

    let before = app.count();
    let (code, stdout, stderr) = run(&["backup"]);
    let after = app.count();
    assert_eq!(code, 0, "{stderr}");
    assert!(after > before, "the writer kept writing during the backup");
    assert_eq!(
        stderr.contains("its commands run in a helper container"),
        expect_helper,
        "{stderr}"
    );
    let artifact = stdout.trim().to_string();
    assert!(artifact.ends_with("_data_app.db.sql.zst"), "{artifact}");

    let (code, _, stderr) = run(&[
        "restore",
        &artifact,
        "--to",
        &app.c.name,
        "--database",
        "/data/restored.db",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let checked = app.app(&["check", "/data/restored.db"]);
    let n: u64 = checked
        .trim()
        .strip_prefix("ok ")
        .unwrap_or_else(|| panic!("{checked}"))
        .parse()
        .unwrap();
    assert!(
        (before..=after).contains(&n),
        "restored {n} writes; the backup ran between {before} and {after}"
    );
    // Files the tools created belong to the application's user, not to root.
    let owners = docker(&[
        "exec",
        &app.c.name,
        "stat",
        "-c",
        "%u %n",
        "/data/restored.db",
    ]);
    assert!(owners.starts_with("1000 "), "{owners}");
    assert_eq!(
        docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=stowage.helper-for={}", app.c.name)
        ])
        .trim(),
        "",
        "no helper container is left behind"
    );
}

#[test]
fn wal_snapshot_without_sqlite3_uses_a_helper() {
    snapshot_under_writes(SQLITE_APP, "wal", true);
}

#[test]
fn rollback_journal_snapshot_with_sqlite3_in_the_app() {
    snapshot_under_writes(SQLITE_APP_CLI, "delete", false);
}

#[test]
fn wal_snapshot_with_sqlite3_in_the_app() {
    snapshot_under_writes(SQLITE_APP_CLI, "wal", false);
}

/// A database file that does not exist is a clear error naming the container, and never an
/// empty "successful" backup (the file is opened read-only, so none is created).
#[test]
fn missing_database_file_is_a_clear_error() {
    let instance = unique("sqlite-bad");
    let dir = Scratch::new("sqlite-bad");
    let bad = SqliteApp::start(
        SQLITE_APP,
        "sqlite-bad-helper",
        Some(&instance),
        &["sleep", "600"],
    );
    let (code, _, stderr) = outcome(
        stowage(dir.path(), &instance)
            .env("STOWAGE_HELPER_IMAGE", STOWAGE_IMAGE)
            .arg("backup"),
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("container {}", bad.c.name)) && stderr.contains("unable to open"),
        "{stderr}"
    );
    assert!(
        artifacts(dir.path()).is_empty(),
        "{:?}",
        files_under(dir.path())
    );
    let listing = docker(&["exec", &bad.c.name, "ls", "-A", "/data"]);
    assert_eq!(listing.trim(), "", "nothing was created in /data");
}
