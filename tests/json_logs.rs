//! `STOWAGE_LOG_FORMAT=json`: a real backup's log is one JSON object per line, with the same
//! fields the text lines carry (target, container, engine, database, sizes, seconds) at the
//! top level; a bad value is refused before anything runs.

mod common;

use common::*;

#[test]
fn a_backup_logs_one_json_object_per_line_with_its_fields() {
    let instance = unique("jsonlog");
    let dir = Scratch::new("jsonlog");
    let pg = Pg::start_target("jsonlog", &instance);
    let (code, _, stderr) = outcome(
        stowage(dir.path(), &instance)
            .env("STOWAGE_LOG_FORMAT", "json")
            .arg("backup"),
    );
    assert_eq!(code, 0, "{stderr}");
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let started = events
        .iter()
        .find(|e| e["message"] == "backup started")
        .unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(started["container"], pg.c.name.as_str(), "{started}");
    assert_eq!(started["engine"], "postgres", "{started}");
    assert_eq!(started["level"], "INFO", "{started}");
    let done = events
        .iter()
        .find(|e| e["message"] == "backup complete")
        .unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(
        done["target"],
        pg.c.name.as_str(),
        "the target name, not a module: {done}"
    );
    assert_eq!(done["database"], "app", "{done}");
    assert!(done["raw_bytes"].as_u64().unwrap() > 0, "{done}");
    assert!(done["stored_bytes"].as_u64().unwrap() > 0, "{done}");
    assert!(done["seconds"].as_f64().is_some(), "{done}");
    assert!(done["timestamp"].as_str().is_some(), "{done}");

    // A failure carries its step and reason class as fields.
    let failing = unique("jsonlog-fail");
    let _bad = Pg::start_target_with(
        "jsonlog-fail",
        &failing,
        &[("stowage.database", "missing_db")],
    );
    let (code, _, stderr) = outcome(
        stowage(dir.path(), &failing)
            .env("STOWAGE_LOG_FORMAT", "json")
            .arg("backup"),
    );
    assert_eq!(code, 1, "{stderr}");
    let failed = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["level"] == "ERROR" && e["step"].is_string())
        .unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(failed["step"], "dumping", "{failed}");
    assert_eq!(failed["reason"], "dump_failed", "{failed}");
    assert_eq!(failed["database"], "missing_db", "{failed}");

    let (code, _, stderr) = outcome(
        stowage(dir.path(), &instance)
            .env("STOWAGE_LOG_FORMAT", "yaml")
            .arg("plan"),
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("use text or json"), "{stderr}");
}
