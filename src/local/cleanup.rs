//! The backup directory's lock, and the clean-up of what a crash left behind.
//!
//! Every stowage process holds a shared `flock` on `<backup_dir>/.stowage.lock` while it runs.
//! Clean-up happens only when an exclusive lock can be taken first, which means no other
//! stowage process is using the directory (and so none is mid-commit): temp files, temp
//! directories (a drill's download), artifacts whose manifest was never written, and manifests
//! whose artifact a deletion had removed.

use std::fs::{self, OpenOptions};
use std::io;
use std::path::Path;

use super::artifact::{LOCK_FILE, TEMP_SUFFIX, is_artifact_name, manifest_path, sync_dir};

/// Holds a shared lock on the backup directory for the life of the process.
#[derive(Debug)]
pub struct DirLock {
    _file: fs::File,
}

/// Locks the backup directory (creating it) and, if no other stowage process is using it,
/// removes what a crash left behind: temp files, artifacts whose manifest was never written
/// (the manifest is the commit record), and manifests whose artifact a deletion had already
/// removed. Returns the lock and how many files were removed.
pub fn open_backup_dir(backup_dir: &Path) -> io::Result<(DirLock, usize)> {
    match open(backup_dir)? {
        Opened::Alone(lock, removed) => Ok((lock.share()?, removed)),
        Opened::Shared(lock) => Ok((lock, 0)),
    }
}

/// The backup directory, locked.
#[derive(Debug)]
pub enum Opened {
    /// No other stowage process uses it: locked exclusively, crash leftovers removed (how
    /// many). Other processes wait until [`ExclusiveLock::share`].
    Alone(ExclusiveLock, usize),
    /// Another stowage process uses it: shared, nothing cleaned.
    Shared(DirLock),
}

/// The backup directory locked exclusively: no other stowage process runs against it.
#[derive(Debug)]
pub struct ExclusiveLock {
    file: fs::File,
}

impl ExclusiveLock {
    /// Turns the lock into the shared one the process holds while it runs.
    pub fn share(self) -> io::Result<DirLock> {
        self.file.lock_shared()?;
        Ok(DirLock { _file: self.file })
    }
}

/// Locks the backup directory (creating it): exclusively, after removing crash leftovers,
/// when no other stowage process uses it; else shared.
pub fn open(backup_dir: &Path) -> io::Result<Opened> {
    fs::create_dir_all(backup_dir)?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(backup_dir.join(LOCK_FILE))?;
    match file.try_lock() {
        Ok(()) => {
            let removed = remove_temp_files(backup_dir)? + remove_uncommitted(backup_dir)?;
            Ok(Opened::Alone(ExclusiveLock { file }, removed))
        }
        Err(fs::TryLockError::WouldBlock) => {
            tracing::info!(dir = %backup_dir.display(), "another stowage process uses the backup directory; leaving temp files alone");
            file.lock_shared()?;
            Ok(Opened::Shared(DirLock { _file: file }))
        }
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

fn remove_temp_files(backup_dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(backup_dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let dir_name = entry.file_name();
        let dir_name = dir_name.to_string_lossy();
        if dir_name.starts_with('.') && dir_name.ends_with(TEMP_SUFFIX) {
            fs::remove_dir_all(entry.path())?;
            tracing::info!(dir = %entry.path().display(), "removed a temp directory left by an interrupted drill");
            removed += 1;
            continue;
        }
        for file in fs::read_dir(entry.path())? {
            let file = file?;
            let name = file.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(TEMP_SUFFIX) && file.file_type()?.is_file() {
                fs::remove_file(file.path())?;
                tracing::info!(file = %file.path().display(), "removed a temp file left by an interrupted backup");
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Removes uncommitted artifacts (an artifact file with no manifest: the process died, or the
/// disk filled, between the artifact's link and the manifest's rename) and manifests left by
/// a deletion cut short (the artifact goes first). Only names stowage makes for the
/// directory's own target are touched: a file named for another target (copied in by hand,
/// say) is left alone, as retention leaves it alone.
fn remove_uncommitted(backup_dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(backup_dir)? {
        let entry = entry?;
        let target = entry.file_name().to_string_lossy().into_owned();
        if !entry.file_type()?.is_dir() || target.starts_with('.') {
            continue;
        }
        // Only what stowage itself writes in this directory: names that embed its target.
        let ours = |artifact: &str| {
            is_artifact_name(artifact)
                && artifact
                    .get(17..)
                    .is_some_and(|rest| rest.starts_with(&format!("{target}_")))
        };
        let mut changed = false;
        for file in fs::read_dir(entry.path())? {
            let file = file?;
            if !file.file_type()?.is_file() {
                continue;
            }
            let name = file.file_name().to_string_lossy().into_owned();
            let path = file.path();
            let orphan = if let Some(artifact) = crate::local::artifact::manifest_of(&name) {
                ours(artifact) && !entry.path().join(artifact).exists()
            } else {
                ours(&name) && !manifest_path(&path).exists()
            };
            if orphan {
                fs::remove_file(&path)?;
                tracing::warn!(file = %path.display(), "removed a file a crash left behind: an artifact whose manifest was never written (it was never reported as a backup), or a manifest whose artifact had been deleted");
                removed += 1;
                changed = true;
            }
        }
        if changed {
            sync_dir(&entry.path())?;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("stowage-cleanup-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn startup_removes_only_temp_files() {
        let dir = scratch("cleanup");
        let t = dir.join("db");
        fs::create_dir_all(&t).unwrap();
        fs::write(t.join(".x.sql.zst.77.stowage-tmp"), b"partial").unwrap();
        fs::write(t.join("x.sql.zst"), b"keep").unwrap();
        // A drill's download directory that a crash left; other dot directories stay.
        let download = dir.join(".drill-77-5.stowage-tmp");
        fs::create_dir_all(&download).unwrap();
        fs::write(download.join("20260101T000000Z_db_app.sql.zst"), b"copy").unwrap();
        fs::create_dir_all(dir.join(".shrink/db")).unwrap();
        let (_lock, removed) = open_backup_dir(&dir).unwrap();
        assert_eq!(removed, 2);
        assert!(t.join("x.sql.zst").exists());
        assert!(!download.exists());
        assert!(dir.join(".shrink/db").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn startup_removes_uncommitted_artifacts_and_stale_manifests() {
        let dir = scratch("uncommitted");
        let t = dir.join("db");
        fs::create_dir_all(&t).unwrap();
        let committed = t.join("20260101T000000Z_db_app.sql.zst");
        let uncommitted = t.join("20260102T000000Z_db_app.sql.zst.age");
        let deleted = t.join("20260103T000000Z_db_app.sql.zst");
        fs::write(&committed, b"a").unwrap();
        fs::write(manifest_path(&committed), b"{}").unwrap();
        fs::write(&uncommitted, b"b").unwrap();
        fs::write(manifest_path(&deleted), b"{}").unwrap();
        // Not stowage's names, or named for another target: left alone.
        fs::write(t.join("notes.sql.zst"), b"mine").unwrap();
        fs::write(t.join("20200101T000000Z_stray_app.sql.zst"), b"not ours").unwrap();
        fs::write(t.join("README.manifest.json"), b"mine").unwrap();
        let (_lock, removed) = open_backup_dir(&dir).unwrap();
        assert_eq!(removed, 2);
        assert!(committed.exists() && manifest_path(&committed).exists());
        assert!(!uncommitted.exists());
        assert!(!manifest_path(&deleted).exists());
        assert!(t.join("notes.sql.zst").exists() && t.join("README.manifest.json").exists());
        assert!(t.join("20200101T000000Z_stray_app.sql.zst").exists());
        assert!(is_artifact_name("20260101T000000Z_db_app.sql.zst"));
        assert!(!is_artifact_name("20260101T000000Zdb.sql.zst"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
