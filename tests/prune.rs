//! Retention end to end on real PostgreSQL: a target's `stowage.retention` label; `prune
//! --dry-run` shows the plan and deletes nothing; `prune` deletes what no rule keeps and
//! never a file without a valid manifest; and a later backup applies the policy by itself.
//! Older artifacts are made from a real one by re-dating copies of it and their manifests,
//! exactly as stowage would have written them on those days.

mod common;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use common::*;

/// A copy of `artifact` (and its manifest) as if made `days_ago`.
fn redate(artifact: &Path, days_ago: i64) -> PathBuf {
    let text = std::fs::read_to_string(format!("{}.json", artifact.display())).unwrap();
    let mut m: serde_json::Value = serde_json::from_str(&text).unwrap();
    let started: DateTime<Utc> = m["started_at"].as_str().unwrap().parse().unwrap();
    let when = started - Duration::days(days_ago);
    let name = artifact.file_name().unwrap().to_str().unwrap();
    let new_name = format!("{}{}", when.format("%Y%m%dT%H%M%SZ"), &name[16..]);
    m["started_at"] = serde_json::json!(when);
    m["finished_at"] = serde_json::json!(when + Duration::seconds(1));
    m["stored"]["file"] = serde_json::json!(new_name);
    let copy = artifact.with_file_name(&new_name);
    std::fs::copy(artifact, &copy).unwrap();
    std::fs::write(
        format!("{}.json", copy.display()),
        serde_json::to_string_pretty(&m).unwrap(),
    )
    .unwrap();
    copy
}

#[test]
fn prune_plans_deletes_and_runs_after_backups() {
    let instance = unique("prune");
    let dir = Scratch::new("prune");
    let pg = Pg::start_target_with("prune", &instance, &[("stowage.retention", "daily=2")]);
    pg.psql("CREATE TABLE t (v int); INSERT INTO t VALUES (1)");
    let (code, stdout, stderr) = run_stowage(dir.path(), &instance, &["backup"]);
    assert_eq!(code, 0, "{stderr}");
    let first = PathBuf::from(stdout.trim());
    let older: Vec<PathBuf> = [1, 2, 3, 10].iter().map(|d| redate(&first, *d)).collect();
    let target_dir = first.parent().unwrap().to_path_buf();
    // Files retention must never touch: an artifact without a manifest, and a foreign file.
    let stray = target_dir.join("20200101T000000Z_stray_app.sql.zst");
    std::fs::write(&stray, b"not ours").unwrap();
    std::fs::write(target_dir.join("notes.txt"), b"mine").unwrap();
    let before = files_under(dir.path());

    let (code, plan, stderr) = run_stowage(dir.path(), &instance, &["prune", "--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(plan.contains(": daily=2"), "the label's policy: {plan}");
    let line = |p: &Path| {
        let name = p.display().to_string();
        plan.lines()
            .find(|l| l.ends_with(&name))
            .unwrap_or_else(|| panic!("{name} not in {plan}"))
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(line(&first), "keep");
    assert_eq!(line(&older[0]), "keep");
    for gone in &older[1..] {
        assert_eq!(line(gone), "delete", "{plan}");
    }
    assert!(plan.contains("newest, daily"), "{plan}");
    assert!(
        plan.contains(&format!("ignore  {}: no valid manifest", stray.display())),
        "{plan}"
    );
    assert!(
        plan.contains("2 kept, 3 would be deleted (dry run"),
        "{plan}"
    );
    assert_eq!(files_under(dir.path()), before, "a dry run deletes nothing");

    let (code, out, stderr) = run_stowage(dir.path(), &instance, &["prune"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(out.contains("2 kept, 3 deleted"), "{out}");
    for gone in &older[1..] {
        assert!(!gone.exists() && !Path::new(&format!("{}.json", gone.display())).exists());
    }
    assert!(first.exists() && older[0].exists());
    assert!(stray.exists() && target_dir.join("notes.txt").exists());

    // The next backup applies the policy itself: today's newest replaces today's first.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (code, stdout, stderr) = run_stowage(dir.path(), &instance, &["backup"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("retention applied"), "{stderr}");
    let second = PathBuf::from(stdout.trim());
    assert!(second.exists() && older[0].exists());
    assert!(
        !first.exists(),
        "same day as the newer backup: not kept by daily=2"
    );
    assert!(stray.exists());
}
