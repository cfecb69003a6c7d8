//! A drill's record: the audit trail of one restore drill, as JSON beside the artifact's
//! manifest (`<artifact>.drill.json`, written atomically; the newest drill of an artifact
//! replaces the one before). `stowage list`, the API and the recovery alert read it back.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::local::artifact::{self, DRILL_SUFFIX};

/// How a drill ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Restored, and every check passed.
    Passed,
    /// Something failed: the artifact does not restore, or the data does not match.
    Failed,
    /// Not drilled (the engine has no `[drill]`, or the artifact holds every database).
    Skipped,
}

/// Rows of one table: as counted in the dump, and in the restored database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRows {
    /// In the dump.
    pub dump: u64,
    /// In the restored database (`None`: the table is missing there).
    pub restored: Option<u64>,
}

/// One drill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Record format version.
    pub format: u32,
    /// Target name.
    pub target: String,
    /// The artifact's file name.
    pub artifact: String,
    /// Where it was read from: `local`, or a storage name.
    pub source: String,
    /// Engine.
    pub engine: String,
    /// The database restored.
    pub database: String,
    /// The image the drill container was made from.
    pub image: Option<String>,
    /// When the drill started.
    pub started_at: DateTime<Utc>,
    /// How long it took, in seconds.
    pub duration_seconds: f64,
    /// Passed, failed or skipped.
    pub outcome: Outcome,
    /// The step that failed, or why it was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The reason class of a failure (a metric and alert label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Per table, when the engine counts rows.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tables: BTreeMap<String, TableRows>,
    /// The checks that ran, by name, and whether each passed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<String, bool>,
}

impl Record {
    /// When the drill ended, as Unix seconds.
    pub fn ended_timestamp(&self) -> f64 {
        self.started_at.timestamp() as f64 + self.duration_seconds
    }
}

/// The record format this stowage writes.
pub const FORMAT: u32 = 1;

/// Where the record of `artifact_file` of `target` lives.
pub fn path(backup_dir: &Path, target: &str, artifact_file: &str) -> PathBuf {
    artifact::target_dir(backup_dir, target).join(format!("{artifact_file}{DRILL_SUFFIX}"))
}

/// Writes the record (temp file, fsync, rename) beside the artifact's manifest.
pub fn write(backup_dir: &Path, record: &Record) -> io::Result<PathBuf> {
    let dest = path(backup_dir, &record.target, &record.artifact);
    let dir = dest.parent().expect("a target directory");
    fs::create_dir_all(dir)?;
    let temp = dir.join(format!(
        ".{}.{}{}",
        record.artifact,
        std::process::id(),
        artifact::TEMP_SUFFIX
    ));
    let mut f = fs::File::create(&temp)?;
    f.write_all(&serde_json::to_vec_pretty(record).map_err(io::Error::other)?)?;
    f.sync_all()?;
    fs::rename(&temp, &dest)?;
    artifact::sync_dir(dir)?;
    Ok(dest)
}

/// The record of `artifact_file`, if there is a readable one.
pub fn read(backup_dir: &Path, target: &str, artifact_file: &str) -> Option<Record> {
    let bytes = fs::read(path(backup_dir, target, artifact_file)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Every readable record of `target`, newest first.
pub fn all(backup_dir: &Path, target: &str) -> Vec<Record> {
    let Ok(entries) = fs::read_dir(artifact::target_dir(backup_dir, target)) else {
        return vec![];
    };
    let mut out: Vec<Record> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(DRILL_SUFFIX))
        .filter_map(|e| serde_json::from_slice(&fs::read(e.path()).ok()?).ok())
        .collect();
    out.sort_by_key(|r: &Record| std::cmp::Reverse(r.started_at));
    out
}

/// The newest drill of `target` that was not skipped.
pub fn last(backup_dir: &Path, target: &str) -> Option<Record> {
    all(backup_dir, target)
        .into_iter()
        .find(|r| r.outcome != Outcome::Skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_records_read_back_newest_first() {
        let dir = std::env::temp_dir().join(format!("stowage-record-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let record = |file: &str, secs: i64, outcome| Record {
            format: FORMAT,
            target: "db".into(),
            artifact: file.into(),
            source: "local".into(),
            engine: "postgres".into(),
            database: "app".into(),
            image: None,
            started_at: DateTime::from_timestamp(secs, 0).unwrap(),
            duration_seconds: 1.5,
            outcome,
            error: None,
            reason: None,
            tables: BTreeMap::from([(
                "public.t".into(),
                TableRows {
                    dump: 3,
                    restored: Some(3),
                },
            )]),
            checks: BTreeMap::new(),
        };
        let a = record("20260101T000000Z_db_app.sql.zst", 10, Outcome::Passed);
        let b = record("20260102T000000Z_db_app.sql.zst", 20, Outcome::Failed);
        let c = record("20260103T000000Z_db_app.sql.zst", 30, Outcome::Skipped);
        for r in [&a, &b, &c] {
            write(&dir, r).unwrap();
        }
        assert_eq!(read(&dir, "db", &a.artifact), Some(a.clone()));
        assert_eq!(all(&dir, "db"), [c, b.clone(), a]);
        assert_eq!(last(&dir, "db"), Some(b));
        // Records are not artifacts or manifests to the catalog.
        let listed = crate::local::catalog::list(&dir, &[]).unwrap();
        assert!(listed.is_empty(), "{listed:?}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
