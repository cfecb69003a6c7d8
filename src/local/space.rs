//! Free space in the backup directory, before a backup runs out of it.
//!
//! A dump that fills the disk half-way fails late, after minutes of load on the database, and
//! can starve whatever else shares the disk. So a backup first checks that the backup
//! directory's filesystem has room for the target's previous artifact (the largest newest one
//! of its databases) times a margin (`free_space_margin`, default 1.5), and refuses clearly
//! otherwise. With no previous artifact there is nothing to go by and the backup runs.

use std::io;
use std::path::{Path, PathBuf};

use super::catalog;

/// Bytes available to an unprivileged writer on the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(dir).map_err(io::Error::from)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Not enough room for the next artifact.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "{dir} has {} free, but the previous artifact was {} and the margin is {margin}×: free space (or lower retention), or lower free_space_margin",
    human(*.free), human(*.previous)
)]
pub struct SpaceError {
    /// The backup directory.
    pub dir: PathBuf,
    /// Free bytes.
    pub free: u64,
    /// The previous artifact's size.
    pub previous: u64,
    /// The configured margin.
    pub margin: f64,
}

/// The size of `target`'s largest newest artifact (one per database), if it has any.
pub fn previous_size(backup_dir: &Path, target: &str) -> Option<u64> {
    let listed = catalog::list(backup_dir, &[target.to_string()]).ok()?;
    let mut newest: std::collections::BTreeMap<String, (chrono::DateTime<chrono::Utc>, u64)> =
        Default::default();
    for l in &listed {
        if let Ok(m) = l.valid() {
            let e = newest
                .entry(m.database.clone())
                .or_insert((m.started_at, m.stored.bytes));
            if m.started_at >= e.0 {
                *e = (m.started_at, m.stored.bytes);
            }
        }
    }
    newest.values().map(|(_, bytes)| *bytes).max()
}

/// Checks that `backup_dir` has room for `target`'s next artifact (see the module doc); a
/// margin of 0 turns the check off. An unreadable free-space figure is not a refusal.
pub fn check(backup_dir: &Path, target: &str, margin: f64) -> Result<(), SpaceError> {
    if margin <= 0.0 {
        return Ok(());
    }
    let Some(previous) = previous_size(backup_dir, target) else {
        return Ok(());
    };
    let Ok(free) = free_bytes(backup_dir) else {
        return Ok(());
    };
    if (free as f64) < previous as f64 * margin {
        return Err(SpaceError {
            dir: backup_dir.to_path_buf(),
            free,
            previous,
            margin,
        });
    }
    Ok(())
}

pub use crate::human::bytes as human;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_read_and_sizes_print() {
        assert!(free_bytes(Path::new("/")).unwrap() > 0);
        assert!(free_bytes(Path::new("/nonexistent/dir")).is_err());
        assert_eq!(human(512), "512 B");
        assert_eq!(human(3 * 1024 * 1024 / 2), "1.5 MiB");
        // Without a previous artifact there is nothing to compare with.
        assert!(check(Path::new("/nonexistent"), "db", 1.5).is_ok());
    }
}
