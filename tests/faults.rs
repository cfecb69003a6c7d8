//! The fault suite: what a hostile environment does to a backup, and what a user then finds.
//!
//! - `kill -9` at 22 named points of a backup (dump, commit, manifest, retention, upload,
//!   remote-only clean-up; the `#2` points hit the second database), through the debug build's
//!   crash points (`src/fault.rs`), then the next `stowage backup`: only committed artifacts
//!   are left, locally and in the storage, and `stowage verify` passes.
//! - A full disk (a real tmpfs): at the artifact, at the manifest, and the pre-flight check
//!   that refuses to start. Nothing is left under a final name.
//!
//! RELIABILITY.md lists every case with its result. Storage faults, API tokens, secrets at
//! `trace` and absurd numbers are in `tests/faults_config.rs` and `tests/faults_storage.rs`.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// Every crash point, and its phase.
const POINTS: &[&str] = &[
    "session:opened",
    "dump:exec-started",
    "dump:first-chunk",
    "dump:first-chunk#2",
    "dump:stream-ended",
    "dump:judged",
    "commit:pipeline-finished",
    "commit:linked",
    "commit:linked#2",
    "commit:done",
    "manifest:temp-synced",
    "manifest:temp-synced#2",
    "manifest:renamed",
    "manifest:done",
    "manifest:done#2",
    "retention:artifact-deleted",
    "upload:listed",
    "upload:artifact-put",
    "upload:artifact-put#2",
    "upload:verified",
    "upload:manifest-put",
    "remote-only:artifact-removed",
];

/// The names of the files in `dir` (not recursive), sorted; none if it does not exist.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Every artifact in `dir` has its manifest and every manifest its artifact, of the size the
/// manifest records; no hidden temp file is left. Returns the artifacts.
fn assert_committed(dir: &Path, what: &str) -> Vec<String> {
    let files = names(dir);
    let mut artifacts = Vec::new();
    for f in &files {
        assert!(
            !f.starts_with('.'),
            "{what}: a temp file is left: {files:?}"
        );
        let (artifact, manifest) = match f.strip_suffix(".json") {
            Some(a) => (a.to_string(), f.clone()),
            None => (f.clone(), format!("{f}.json")),
        };
        assert!(
            files.contains(&artifact) && files.contains(&manifest),
            "{what}: {f} is not committed (artifact and manifest): {files:?}"
        );
        if f.ends_with(".json") {
            let m: serde_json::Value =
                serde_json::from_slice(&std::fs::read(dir.join(f)).unwrap()).unwrap();
            let size = std::fs::metadata(dir.join(&artifact)).unwrap().len();
            assert_eq!(m["stored"]["bytes"], size, "{what}: {artifact} size");
            assert_eq!(m["stored"]["file"], artifact.as_str(), "{what}");
            artifacts.push(artifact);
        }
    }
    artifacts
}

/// The environment of one kill case: its own backup directory and `file://` storage.
struct Case {
    dir: Scratch,
    disk: PathBuf,
    instance: String,
    remote_only: bool,
}

impl Case {
    fn cmd(&self) -> Command {
        let mut c = stowage(&self.dir.path().join("backups"), &self.instance);
        c.env(
            "STOWAGE_STORAGE__DISK__URL",
            format!("file://{}", self.disk.display()),
        )
        .env("STOWAGE_REMOTE_ONLY", self.remote_only.to_string())
        .arg("backup");
        c
    }

    fn backup(&self) -> (i32, String) {
        let (code, _, err) = outcome(&mut self.cmd());
        (code, err)
    }
}

#[test]
fn kill_9_at_every_point_of_a_backup_leaves_only_committed_artifacts() {
    let instance = unique("kill");
    let pg = Pg::start_target_with(
        "kill",
        &instance,
        &[
            ("stowage.database", "app,other"),
            ("stowage.retention", "last=1"),
            ("stowage.name", "db"),
        ],
    );
    pg.psql("CREATE DATABASE other");
    pg.psql("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g");
    pg.psql_in(
        "other",
        "CREATE TABLE u AS SELECT g AS id FROM generate_series(1, 5000) g",
    );
    let mut hit = Vec::new();
    for point in POINTS {
        let dir = Scratch::new("kill");
        let case = Case {
            disk: dir.path().join("disk"),
            dir,
            instance: instance.clone(),
            remote_only: point.starts_with("remote-only"),
        };
        let local = case.dir.path().join("backups/db");
        let remote = case.disk.join(TEST_HOST).join("db");
        // A first backup, so that retention and remote retention have something to delete.
        let (code, err) = case.backup();
        assert_eq!(code, 0, "{point}: first backup: {err}");
        // The backup killed at the point.
        let out = case
            .cmd()
            .env("STOWAGE_TEST_CRASH_AT", point)
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{point} was not reached: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        hit.push(*point);
        // The next start cleans up what the crash left, and backs up.
        let (code, err) = case.backup();
        assert_eq!(code, 0, "{point}: backup after the crash: {err}");
        let local_artifacts = assert_committed(&local, &format!("{point}, local"));
        let remote_manifests: Vec<String> = names(&remote)
            .into_iter()
            .filter(|f| f.ends_with(".json"))
            .collect();
        // Remotely, every manifest has its complete artifact (an artifact object whose upload
        // was cut before its manifest is invisible: no manifest, no copy).
        for m in &remote_manifests {
            let manifest: serde_json::Value =
                serde_json::from_slice(&std::fs::read(remote.join(m)).unwrap()).unwrap();
            let artifact = m.strip_suffix(".json").unwrap();
            let size = std::fs::metadata(remote.join(artifact))
                .unwrap_or_else(|e| panic!("{point}: remote {artifact}: {e}"))
                .len();
            assert_eq!(
                manifest["stored"]["bytes"], size,
                "{point}: remote {artifact}"
            );
        }
        if case.remote_only {
            assert!(local_artifacts.is_empty(), "{point}: {local_artifacts:?}");
        } else {
            // The newest backup of each database is here and in the storage.
            assert_eq!(local_artifacts.len(), 2, "{point}: {local_artifacts:?}");
            for a in &local_artifacts {
                assert!(
                    remote_manifests.contains(&format!("{a}.json")),
                    "{point}: {a} is not in the storage: {remote_manifests:?}"
                );
            }
            let (code, out, err) =
                outcome(stowage(&case.dir.path().join("backups"), &instance).arg("verify"));
            assert_eq!(code, 0, "{point}: verify: {out}{err}");
        }
        assert_eq!(remote_manifests.len(), 2, "{point}: {remote_manifests:?}");
    }
    assert_eq!(hit.len(), POINTS.len());
    assert!(hit.len() >= 20);
}

/// A tmpfs of `bytes` mounted at `path`, unmounted on drop (also when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, bytes: u64) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount tmpfs (the fault suite runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

const PAGE: u64 = 4096;

#[test]
fn a_full_disk_fails_cleanly_at_the_artifact_at_the_manifest_and_before_starting() {
    let instance = unique("enospc");
    let pg = Pg::start_target_with("enospc", &instance, &[("stowage.name", "db")]);
    // Text that compresses little, so the artifact is a few hundred KiB.
    pg.psql("CREATE TABLE t AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v FROM generate_series(1, 20000) g");
    let scratch = Scratch::new("enospc");
    // The artifact's size, from a backup with room.
    let roomy = scratch.path().join("roomy");
    let (code, _, err) = run_stowage(&roomy, &instance, &["backup"]);
    assert_eq!(code, 0, "{err}");
    let size = names(&roomy.join("db"))
        .iter()
        .find(|f| f.ends_with(".zst"))
        .map(|f| std::fs::metadata(roomy.join("db").join(f)).unwrap().len())
        .unwrap();
    let pages = size.div_ceil(PAGE);
    let backup_in = |bytes: u64, margin: &str| {
        let mount = scratch.path().join(format!("fs-{bytes}-{margin}"));
        let fs = Tmpfs::mount(&mount, bytes);
        let (code, _, err) = outcome(
            stowage(&mount, &instance)
                .env("STOWAGE_FREE_SPACE_MARGIN", margin)
                .arg("backup"),
        );
        (fs, mount, code, err)
    };

    // 1. At the artifact: far too small.
    let (_fs, mount, code, err) = backup_in(8 * PAGE, "0");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(!err.contains("writing the manifest"), "{err}");
    assert!(
        names(&mount.join("db")).is_empty(),
        "{:?}",
        names(&mount.join("db"))
    );

    // 2. At the manifest: room for the artifact's pages and not one more. The artifact was
    // linked under its final name before the manifest failed: it must be gone again.
    let mut manifest_case = false;
    for extra in 0..4 {
        let (_fs, mount, code, err) = backup_in((pages + extra) * PAGE, "0");
        let files = names(&mount.join("db"));
        if code == 0 {
            assert_committed(&mount.join("db"), "enough room");
            break;
        }
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("No space left on device"), "{err}");
        assert!(files.is_empty(), "{pages}+{extra} pages: {files:?}");
        manifest_case |= err.contains("writing the manifest");
    }
    assert!(
        manifest_case,
        "no tmpfs size made the manifest the write that failed"
    );

    // 3. Before starting: one artifact fits, and less than 1.5 times it is left, so the next
    // backup refuses at once (no temp file, no load on the database) and says why.
    let (_fs, mount, code, err) = backup_in((pages * 2 + 2) * PAGE, "1.5");
    assert_eq!(
        code, 0,
        "the first backup has nothing to compare with: {err}"
    );
    let (code, _, err) = outcome(stowage(&mount, &instance).arg("backup"));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("checking free space") && err.contains("free_space_margin"),
        "{err}"
    );
    assert_eq!(assert_committed(&mount.join("db"), "refused").len(), 1);
}
