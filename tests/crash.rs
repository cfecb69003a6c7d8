//! A stowage process killed mid-dump leaves no partial artifact, and the next start cleans up.

mod common;

use std::process::Stdio;

use common::*;

#[test]
fn killed_during_a_dump_leaves_nothing_under_a_final_name() {
    let instance = unique("crash");
    let dir = Scratch::new("crash");
    let pg = Pg::start_target("crash", &instance);
    pg.seed(1);
    let lock = pg.hold_lock("pgbench_accounts");
    let mut child = stowage(dir.path(), &instance)
        .arg("backup")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    pg.wait_for_process("pg_dump");
    // The dump is running (waiting for the lock) and its temp file exists.
    wait_for_temp_file(dir.path());
    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
    assert!(
        artifacts(dir.path()).is_empty(),
        "{:?}",
        files_under(dir.path())
    );
    assert_eq!(
        temp_files(dir.path()).len(),
        1,
        "the crash left its hidden temp file"
    );

    lock.release(&pg);
    let (code, _, stderr) = run_stowage(dir.path(), &instance, &["backup"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("removed a temp file left by an interrupted backup"),
        "{stderr}"
    );
    assert!(
        temp_files(dir.path()).is_empty(),
        "{:?}",
        files_under(dir.path())
    );
    assert_eq!(artifacts(dir.path()).len(), 1);
}
