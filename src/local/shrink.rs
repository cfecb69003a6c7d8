//! Shrink detection: each new backup of a database is compared with the previous one, by raw
//! size and, where the dump's rows were counted, per table. A drop beyond `drill.shrink_alert`
//! (a fraction; 0.5 by default) is a `suspicious_shrink` warning: it catches the application
//! that wiped its tables, and the backup that faithfully saved the empty result.
//!
//! The previous backup's figures are kept in a small file per database outside the targets'
//! directories (`<backup_dir>/.shrink/<target>/<database>.json`), so the comparison still
//! works in remote-only mode and after retention deleted the previous artifact. It is written
//! through a fixed temp name and renamed; a failed write removes the temp file, and a crash
//! leaves at most that one small file, replaced by the next backup.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::discover::labels::file_safe;
use crate::local::artifact::Manifest;

/// Tables with fewer rows than this before are not judged (a drop from 4 rows to 1 is noise).
pub const MIN_ROWS: u64 = 10;
/// How many shrunken tables a warning names.
const NAMED: usize = 5;

/// What is remembered of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Figures {
    artifact: String,
    raw_bytes: u64,
    #[serde(default)]
    rows: Option<BTreeMap<String, u64>>,
}

/// A suspicious drop from the previous backup to this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shrink {
    /// The database.
    pub database: String,
    /// The previous artifact.
    pub previous: String,
    /// The new artifact.
    pub artifact: String,
    /// What dropped, for humans.
    pub message: String,
}

/// Where the figures of `target`'s `database` are kept.
pub fn figures_path(backup_dir: &Path, target: &str, database: &str) -> PathBuf {
    backup_dir
        .join(FIGURES_DIR)
        .join(file_safe(target))
        .join(format!("{}.json", file_safe(database)))
}

/// The directory of the figures, beside the targets' (a dot name: never a target).
pub const FIGURES_DIR: &str = ".shrink";

/// Compares `manifest` with the previous backup of its database, then remembers it as the
/// previous one. `threshold` is the fraction that counts as a drop (0 turns this off).
pub fn check_and_remember(
    backup_dir: &Path,
    manifest: &Manifest,
    threshold: f64,
) -> io::Result<Option<Shrink>> {
    let path = figures_path(backup_dir, &manifest.target, &manifest.database);
    let previous: Option<Figures> = fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let now = Figures {
        artifact: manifest.stored.file.clone(),
        raw_bytes: manifest.raw.bytes,
        rows: manifest.rows.clone(),
    };
    let shrink = previous
        .filter(|_| threshold > 0.0)
        .and_then(|p| compare(&p, &now, threshold).map(|m| (p, m)))
        .map(|(p, message)| Shrink {
            database: manifest.database.clone(),
            previous: p.artifact,
            artifact: now.artifact.clone(),
            message,
        });
    let temp = path.with_extension("json.tmp");
    let written = (|| {
        fs::create_dir_all(path.parent().expect("a directory"))?;
        fs::write(&temp, serde_json::to_vec(&now).map_err(io::Error::other)?)?;
        fs::rename(&temp, &path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    Ok(shrink)
}

/// What dropped by more than `threshold` from `before` to `after`, if anything.
fn compare(before: &Figures, after: &Figures, threshold: f64) -> Option<String> {
    let dropped = |old: u64, new: u64| (new as f64) < (old as f64) * (1.0 - threshold);
    let mut parts = Vec::new();
    if dropped(before.raw_bytes, after.raw_bytes) {
        parts.push(format!(
            "the dump shrank from {} to {} bytes",
            before.raw_bytes, after.raw_bytes
        ));
    }
    if let (Some(old), Some(new)) = (&before.rows, &after.rows) {
        let tables: Vec<String> = old
            .iter()
            .filter(|(_, n)| **n >= MIN_ROWS)
            .filter_map(|(t, n)| {
                let now = new.get(t).copied().unwrap_or(0);
                dropped(*n, now).then(|| {
                    if new.contains_key(t) {
                        format!("{t} {n} → {now} rows")
                    } else {
                        format!("{t} ({n} rows) is gone")
                    }
                })
            })
            .collect();
        if !tables.is_empty() {
            let more = tables.len().saturating_sub(NAMED);
            let mut text = format!(
                "tables shrank: {}",
                tables[..tables.len().min(NAMED)].join(", ")
            );
            if more > 0 {
                text.push_str(&format!(" and {more} more"));
            }
            parts.push(text);
        }
    }
    (!parts.is_empty()).then(|| {
        format!(
            "{} since {} (more than {:.0}% less). If this was not intended, keep the previous artifact: the database may have lost data",
            parts.join("; "),
            before.artifact,
            threshold * 100.0
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(bytes: u64, rows: &[(&str, u64)]) -> Figures {
        Figures {
            artifact: format!("a{bytes}"),
            raw_bytes: bytes,
            rows: Some(rows.iter().map(|(t, n)| (t.to_string(), *n)).collect()),
        }
    }

    #[test]
    fn drops_beyond_the_threshold_are_reported() {
        let before = f(1000, &[("t", 100), ("small", 5), ("gone", 50)]);
        assert_eq!(
            compare(
                &before,
                &f(900, &[("t", 60), ("small", 0), ("gone", 50)]),
                0.5
            ),
            None
        );
        let m = compare(&before, &f(400, &[("t", 10), ("small", 0)]), 0.5).unwrap();
        assert!(m.contains("1000 to 400 bytes"), "{m}");
        assert!(
            m.contains("t 100 → 10 rows") && m.contains("gone (50 rows) is gone"),
            "{m}"
        );
        assert!(
            !m.contains("small"),
            "tables under MIN_ROWS are not judged: {m}"
        );
        // Growth is never a shrink, and old manifests without rows compare by size only.
        assert_eq!(compare(&f(10, &[]), &f(5000, &[]), 0.5), None);
        let no_rows = Figures {
            rows: None,
            ..f(1000, &[])
        };
        assert_eq!(compare(&no_rows, &f(990, &[("t", 0)]), 0.5), None);
    }
}
