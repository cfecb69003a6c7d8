//! Artifacts on disk: names, temp files, atomic commit, manifests and crash clean-up.
//!
//! Layout: `<backup_dir>/<target>/<UTC time>_<target>_<database>.<ext>.zst`, with the
//! manifest beside it as `<artifact>.json`. Names sort by time and every component is made
//! file-safe, so no label can point outside the target's directory.
//!
//! A dump is written to a hidden temp file (`.<final name>.<pid>.stowage-tmp`) in the final
//! directory; only a complete, verified, fsynced file is linked to its final name (a hard
//! link, which fails rather than replace an existing file), then the directory is fsynced.
//! The manifest is written the same way, after the artifact: an artifact without a
//! manifest is visibly incomplete. Temp files that a crash left behind are removed at
//! start-up, under a lock so that one stowage process never removes another's temp files.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::discover::labels::file_safe;
use crate::pipeline::encryption::EncryptionInfo;

/// Suffix of temp files.
pub const TEMP_SUFFIX: &str = ".stowage-tmp";
/// Name of the lock file in the backup directory.
pub const LOCK_FILE: &str = ".stowage.lock";
/// Suffix of manifests (after the artifact's own name).
pub const MANIFEST_SUFFIX: &str = ".json";

/// Suffix of a restore drill's record (after the artifact's own name), see
/// [`crate::drill::record`]. Not a manifest, although it also ends in `.json`.
pub const DRILL_SUFFIX: &str = ".drill.json";

/// The artifact a manifest's file name belongs to (`None` for other names, drill records
/// included).
pub fn manifest_of(name: &str) -> Option<&str> {
    if name.ends_with(DRILL_SUFFIX) {
        return None;
    }
    name.strip_suffix(MANIFEST_SUFFIX)
}

/// The manifest version this stowage writes.
pub const MANIFEST_FORMAT: u32 = 1;

/// What a manifest records about one artifact. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version.
    pub format: u32,
    /// stowage's version.
    pub stowage_version: String,
    /// Target name.
    pub target: String,
    /// The container that was dumped.
    pub container: ContainerRef,
    /// Engine name.
    pub engine: String,
    /// Database name, or `all`.
    pub database: String,
    /// First line of the dump tool's `--version`.
    pub dump_tool_version: Option<String>,
    /// When the dump started.
    pub started_at: DateTime<Utc>,
    /// When the artifact was committed.
    pub finished_at: DateTime<Utc>,
    /// The raw dump.
    pub raw: Content,
    /// The stored file.
    pub stored: Stored,
    /// Rows per table, counted from the dump as it streamed (engines with `[drill] count`);
    /// compared with the previous backup to catch a database that shrank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<BTreeMap<String, u64>>,
}

/// The container an artifact came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRef {
    /// Container ID.
    pub id: String,
    /// Container name.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// The image's ID (`sha256:…`), which a restore drill starts its container from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
}

/// Size and hash of a byte stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    /// Bytes.
    pub bytes: u64,
    /// Hex sha256.
    pub sha256: String,
}

/// The stored file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// File name (in the same directory as the manifest).
    pub file: String,
    /// Bytes in the file.
    pub bytes: u64,
    /// Hex sha256 of the file.
    pub sha256: String,
    /// `zstd`.
    pub compression: String,
    /// zstd level (when adaptive: the one that compressed the most).
    pub compression_level: i32,
    /// Dump bytes compressed at each level, when the level was adaptive
    /// (`compression.level = "auto"`); the file is then one zstd frame per level change.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub compression_levels: BTreeMap<i32, u64>,
    /// Whether the file is age-encrypted.
    pub encrypted: bool,
    /// How: age, and to which public keys or a passphrase. Never a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionInfo>,
}

/// The final name of an artifact: `<time>_<target>_<database>.<ext>.zst`, plus `.age` when
/// it is encrypted.
pub fn artifact_file_name(
    target: &str,
    database: &str,
    ext: &str,
    encrypted: bool,
    at: DateTime<Utc>,
) -> String {
    format!(
        "{}_{}_{}.{}.zst{}",
        at.format("%Y%m%dT%H%M%SZ"),
        file_safe(target),
        file_safe(database),
        file_safe(ext),
        if encrypted { ".age" } else { "" }
    )
}

/// When an artifact was started, read from the time its [`artifact_file_name`] begins with
/// (second precision). `None` for a name stowage did not make.
pub fn time_from_file_name(name: &str) -> Option<DateTime<Utc>> {
    let stamp = name.get(..16)?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|t| t.and_utc())
}

/// The directory of a target's artifacts.
pub fn target_dir(backup_dir: &Path, target: &str) -> PathBuf {
    backup_dir.join(file_safe(target))
}

/// A temp file that is removed when dropped unless committed.
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
    committed: bool,
}

impl TempFile {
    /// Creates a new temp file for `final_name` in `dir` (created if missing).
    pub fn create(dir: &Path, final_name: &str) -> io::Result<(Self, File)> {
        fs::create_dir_all(dir)?;
        let path = dir.join(format!(".{final_name}.{}{TEMP_SUFFIX}", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok((
            Self {
                path,
                committed: false,
            },
            file,
        ))
    }

    /// The temp file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Gives the (fsynced) content its final name without ever replacing a file: if the name
    /// is taken, `-2`, `-3`, … is added before the extension. Returns the final path.
    pub fn commit(mut self, final_name: &str) -> io::Result<PathBuf> {
        let dir = self
            .path
            .parent()
            .expect("temp files live in a directory")
            .to_path_buf();
        for n in 1..100 {
            let name = numbered(final_name, n);
            let target = dir.join(&name);
            match fs::hard_link(&self.path, &target) {
                Ok(()) => {
                    crate::fault::point("commit:linked");
                    fs::remove_file(&self.path)?;
                    self.committed = true;
                    sync_dir(&dir)?;
                    return Ok(target);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{final_name}: 99 artifacts with this name already exist"),
        ))
    }
}

/// `final_name` with counter `n`: the name itself for 1, else `-n` inserted before the
/// artifact's extensions (`x.sql.zst` → `x-2.sql.zst`; `.age` stays after `.zst`).
fn numbered(final_name: &str, n: u32) -> String {
    if n == 1 {
        return final_name.to_string();
    }
    let ext_dots = if final_name.ends_with(".age") { 2 } else { 1 };
    let cut = final_name
        .rmatch_indices('.')
        .nth(ext_dots)
        .map_or(final_name.len(), |(i, _)| i);
    let (stem, ext) = final_name.split_at(cut);
    format!("{stem}-{n}{ext}")
}

/// Gives a committed artifact a new name that neither the directory nor `taken` holds (the
/// next free counter added to its name, as [`TempFile::commit`] counts), with its manifest rewritten to name
/// it; returns the new path and manifest. Used when a storage holds a different artifact
/// under the same name (see [`crate::remote::replicate`]), so that nothing is overwritten.
///
/// Crash-safe in this order: the new link, the new manifest, then the old manifest and the
/// old link. A crash after the first step leaves an artifact without a manifest (the next
/// start removes it); after the second, the same artifact under two names, both valid (one
/// more copy, which retention handles; nothing lost). A drill record of the old name is
/// removed: it named the old file.
pub fn rename(
    path: &Path,
    manifest: &Manifest,
    taken: impl Fn(&str) -> bool,
) -> io::Result<(PathBuf, Manifest)> {
    let dir = path.parent().expect("artifacts live in a directory");
    for n in 2..1000 {
        let name = numbered(&manifest.stored.file, n);
        if taken(&name) {
            continue;
        }
        let new_path = dir.join(&name);
        match fs::hard_link(path, &new_path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
        let mut renamed = manifest.clone();
        renamed.stored.file = name;
        if let Err(e) = write_manifest(&new_path, &renamed) {
            uncommit(&new_path);
            return Err(e);
        }
        crate::fault::point("rename:manifest-written");
        fs::remove_file(manifest_path(path))?;
        fs::remove_file(path)?;
        let mut record = path.as_os_str().to_owned();
        record.push(DRILL_SUFFIX);
        let _ = fs::remove_file(record);
        sync_dir(dir)?;
        return Ok((new_path, renamed));
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "{}: 999 artifacts with this name already exist",
            manifest.stored.file
        ),
    ))
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// fsyncs a directory, making a rename or link in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Path of the manifest of an artifact.
pub fn manifest_path(artifact: &Path) -> PathBuf {
    let mut s = artifact.as_os_str().to_owned();
    s.push(MANIFEST_SUFFIX);
    PathBuf::from(s)
}

/// Writes a manifest atomically (temp, fsync, rename, fsync directory). Errors say that it
/// was the manifest.
pub fn write_manifest(artifact: &Path, manifest: &Manifest) -> io::Result<PathBuf> {
    let path = manifest_path(artifact);
    write_manifest_at(&path, manifest).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("writing the manifest {}: {e}", path.display()),
        )
    })
}

fn write_manifest_at(path: &Path, manifest: &Manifest) -> io::Result<PathBuf> {
    let path = path.to_path_buf();
    let dir = path.parent().expect("artifacts live in a directory");
    let name = path
        .file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned();
    let (mut temp, mut file) = TempFile::create(dir, &name)?;
    let json = serde_json::to_vec_pretty(manifest).map_err(io::Error::other)?;
    file.write_all(&json)?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    crate::fault::point("manifest:temp-synced");
    fs::rename(temp.path(), &path)?;
    temp.committed = true;
    crate::fault::point("manifest:renamed");
    sync_dir(dir)?;
    Ok(path)
}

/// Removes a committed artifact whose manifest could not be written, so nothing is left
/// under a final name; failures are logged (the next start removes it).
pub fn uncommit(artifact: &Path) {
    let removed = fs::remove_file(artifact).and_then(|()| match artifact.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    });
    if let Err(e) = removed {
        tracing::error!(artifact = %artifact.display(), "cannot remove an artifact whose manifest could not be written: {e}; the next start removes it");
    }
}

/// Reads a manifest.
pub fn read_manifest(path: &Path) -> io::Result<Manifest> {
    serde_json::from_slice(&fs::read(path)?).map_err(io::Error::other)
}

/// Whether `name` is an artifact name stowage makes (`<time>_…​.zst` or `.zst.age`).
pub fn is_artifact_name(name: &str) -> bool {
    time_from_file_name(name).is_some()
        && name.get(16..17) == Some("_")
        && (name.ends_with(".zst") || name.ends_with(".zst.age"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("stowage-artifact-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn names_sort_by_time_and_stay_inside() {
        let t = |h| Utc.with_ymd_and_hms(2026, 1, 2, h, 4, 5).unwrap();
        let a = artifact_file_name("../x", "db/1", "sql", false, t(3));
        assert_eq!(a, "20260102T030405Z__.._x_db_1.sql.zst");
        assert!(!a.contains('/'));
        assert!(
            artifact_file_name("x", "d", "sql", false, t(3))
                < artifact_file_name("x", "d", "sql", false, t(12))
        );
        assert_eq!(
            artifact_file_name("x", "d", "sql", true, t(3)),
            "20260102T030405Z_x_d.sql.zst.age"
        );
        assert_eq!(time_from_file_name(&a), Some(t(3)));
        assert_eq!(time_from_file_name("notes.txt"), None);
        assert_eq!(time_from_file_name("20261301T000000Z_x_d.sql.zst"), None);
        assert_eq!(
            target_dir(Path::new("/b"), "../../etc"),
            PathBuf::from("/b/_.._.._etc")
        );
    }

    #[test]
    fn commit_never_replaces_and_drop_cleans() {
        let dir = scratch("commit");
        let (t1, mut f1) = TempFile::create(&dir, "a.b.sql.zst").unwrap();
        f1.write_all(b"one").unwrap();
        let p1 = t1.commit("a.b.sql.zst").unwrap();
        let (t2, mut f2) = TempFile::create(&dir, "a.b.sql.zst").unwrap();
        f2.write_all(b"two").unwrap();
        let p2 = t2.commit("a.b.sql.zst").unwrap();
        assert_eq!(fs::read(&p1).unwrap(), b"one");
        assert_eq!(p2, dir.join("a.b-2.sql.zst"));
        assert_eq!(numbered("t_d.sql.zst.age", 3), "t_d-3.sql.zst.age");
        assert_eq!(numbered("t_d.sql.zst", 1), "t_d.sql.zst");
        {
            let (t3, _f3) = TempFile::create(&dir, "b.sql.zst").unwrap();
            assert!(t3.path().exists());
        }
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
