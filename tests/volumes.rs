//! Volumes and files (`stowage.volumes`, `stowage.paths`) against real Docker volumes: a tree
//! of 10,000 files with nested directories, symlinks, a hard link, a file of uid 1000 with mode
//! 0600, an extended attribute, a 200 MB file and a 2 GB sparse file, backed up while the
//! application writes, then restored with `stowage restore --volume` into a fresh volume:
//! the tree (types, owners, modes, sizes, link targets, xattrs, contents) is equal, the sparse
//! file stays sparse, and stowage's memory stays bounded.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// The application's image: Debian with python3, uid 1000, `VOLUME /data`.
const APP_IMAGE: &str = SQLITE_APP;

/// A Docker volume removed on drop.
struct Volume(String);

impl Volume {
    fn new(prefix: &str) -> Volume {
        let name = unique(prefix);
        docker(&["volume", "create", &name]);
        Volume(name)
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = docker_output(&["volume", "rm", "-f", &self.0]);
    }
}

/// Makes the tree under /data (run as root in the application container).
const POPULATE: &str = r#"
import os
root = "/data"
for d in range(100):
    sub = os.path.join(root, "tree", f"d{d:02}", "sub")
    os.makedirs(sub)
    for f in range(100):
        with open(os.path.join(sub, f"f{f:02}"), "w") as fh:
            fh.write(f"file {d}/{f}\n" * (f + 1))
os.symlink("tree/d00/sub/f01", os.path.join(root, "link"))
os.symlink("does/not/exist", os.path.join(root, "dangling"))
os.link(os.path.join(root, "tree/d01/sub/f01"), os.path.join(root, "hardlink"))
secret = os.path.join(root, "secret")
with open(secret, "w") as fh:
    fh.write("only uid 1000 reads this\n")
os.chown(secret, 1000, 1000)
os.chmod(secret, 0o600)
os.makedirs(os.path.join(root, "private"), mode=0o750)
os.chown(os.path.join(root, "private"), 1000, 1001)
os.setxattr(os.path.join(root, "tree/d00/sub/f00"), "user.stowage", b"kept")
with open(os.path.join(root, "big"), "wb") as fh:
    for _ in range(200):
        fh.write(os.urandom(1 << 20))
with open(os.path.join(root, "sparse"), "wb") as fh:
    fh.truncate(2 << 30)
    fh.seek(1 << 30)
    fh.write(b"middle")
os.makedirs(os.path.join(root, "live"))
print("populated")
"#;

/// One line per entry under /data except `live/` (what the application writes during the
/// backup): path, type, owner, mode, size, link target, xattrs, sha256 of contents, and
/// whether a file over 1 GiB is sparse.
const MANIFEST: &str = r#"
import hashlib, os, stat
root = "/data"
out = []
for dirpath, dirs, files in os.walk(root):
    dirs.sort()
    for name in sorted(dirs + files):
        p = os.path.join(dirpath, name)
        rel = os.path.relpath(p, root)
        if rel == "live" or rel.startswith("live/"):
            continue
        st = os.lstat(p)
        kind = "l" if stat.S_ISLNK(st.st_mode) else "d" if stat.S_ISDIR(st.st_mode) else "f"
        line = [rel, kind, f"{st.st_uid}:{st.st_gid}", oct(stat.S_IMODE(st.st_mode))]
        if kind == "l":
            line.append("-> " + os.readlink(p))
        else:
            line.append(",".join(f"{k}={os.getxattr(p, k).decode()}" for k in sorted(os.listxattr(p))))
        if kind == "f":
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            line += [str(st.st_size), h.hexdigest(), f"links={st.st_nlink}"]
            if st.st_size > (1 << 30):
                line.append("sparse" if st.st_blocks * 512 < st.st_size // 2 else "dense")
        out.append(" ".join(line))
print("\n".join(out))
"#;

/// The manifest of a volume, read in a throwaway container that mounts it read-only.
fn tree(volume: &str) -> Vec<String> {
    let mount = format!("{volume}:/data:ro");
    let out = docker(&[
        "run", "--rm", "--user", "0", "-v", &mount, APP_IMAGE, "python3", "-c", MANIFEST,
    ]);
    out.lines().map(String::from).collect()
}

/// Runs `cmd` and samples its peak resident memory (VmHWM) until it exits: (exit code, stdout,
/// stderr, peak KiB).
fn run_measured(cmd: &mut std::process::Command) -> (i32, String, String, u64) {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    // Read the pipes on threads, so a chatty child never blocks on them.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let read_out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).unwrap();
        s
    });
    let read_err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).unwrap();
        s
    });
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status.code().unwrap_or(-1),
        read_out.join().unwrap(),
        read_err.join().unwrap(),
        peak,
    )
}

#[test]
fn a_volume_round_trips_with_owners_modes_links_xattrs_and_sparse_files() {
    require_image(APP_IMAGE);
    require_image(STOWAGE_IMAGE);
    let instance = unique("volumes");
    let dir = Scratch::new("volumes");
    let data = Volume::new("volumes-data");
    let app = Container {
        name: unique("volumes-app"),
    };
    let mount = format!("{}:/data", data.0);
    let labels = [
        "stowage.enable=true".to_string(),
        format!("stowage.instance={instance}"),
        format!("stowage.volumes={}", data.0),
    ];
    let mut args = vec!["run", "-d", "--name", &app.name, "-v", &mount];
    for l in &labels {
        args.extend(["--label", l]);
    }
    args.extend([APP_IMAGE, "sleep", "3600"]);
    docker(&args);
    let populated = docker(&["exec", "-u", "0", &app.name, "python3", "-c", POPULATE]);
    assert!(populated.contains("populated"), "{populated}");
    let before = tree(&data.0);
    assert!(before.len() > 10_100, "{} entries", before.len());

    let run = |args: &[&str]| {
        let mut cmd = stowage(dir.path(), &instance);
        cmd.env("STOWAGE_HELPER_IMAGE", STOWAGE_IMAGE).args(args);
        cmd
    };
    let (code, plan, _) = outcome(&mut run(&["plan"]));
    assert_eq!(code, 0, "{plan}");
    assert!(
        plan.contains("engine:    files")
            && plan.contains(&format!("archives:  {} (at /data), read-only", data.0)),
        "{plan}"
    );

    // The application keeps appending while the backup runs.
    docker(&[
        "exec",
        "-d",
        "-u",
        "0",
        &app.name,
        "python3",
        "-c",
        "import time\nwhile True:\n    with open('/data/live/log', 'a') as f:\n        f.write(f'{time.time()}\\n')\n    time.sleep(0.001)\n",
    ]);
    let dangling = || docker(&["volume", "ls", "-q", "--filter", "dangling=true"]);
    let dangling_before = dangling();
    let started = Instant::now();
    let (code, _, stderr, peak_kib) = run_measured(&mut run(&["backup"]));
    eprintln!(
        "volume backup: {:.1} s, stowage peak RSS {} MiB",
        started.elapsed().as_secs_f64(),
        peak_kib / 1024
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr
            .contains("its commands run in a helper container with its volumes mounted read-only"),
        "{stderr}"
    );
    // 200 MB of random data went through: memory stays far below it.
    assert!(
        peak_kib > 0 && peak_kib < 96 * 1024,
        "peak RSS {peak_kib} KiB"
    );
    let found = artifacts(dir.path());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].ends_with(&format!("_{}.tar.zst", data.0)),
        "named by the volume: {found:?}"
    );
    let artifact = dir.path().join(&found[0]);
    let manifest = std::fs::read_to_string(format!("{}.json", artifact.display())).unwrap();
    assert!(manifest.contains("\"engine\": \"files\""), "{manifest}");
    assert!(
        manifest.contains("GNU tar"),
        "the tool's version is recorded: {manifest}"
    );
    assert!(
        docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=stowage.helper-for={}", app.name)
        ])
        .trim()
        .is_empty(),
        "the helper is gone"
    );
    let leaked: Vec<String> = dangling()
        .lines()
        .filter(|v| !dangling_before.lines().any(|b| b == *v))
        .map(String::from)
        .collect();
    assert!(leaked.is_empty(), "the helper left volumes: {leaked:?}");

    // Stock tools read it: zstd, then tar.
    let listed = std::process::Command::new("sh")
        .arg("-c")
        .arg("zstd -dc \"$1\" | tar -tvf - ./secret ./link")
        .arg("sh")
        .arg(&artifact)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("-rw------- 1000/1000"), "{listed}");
    assert!(listed.contains("./link -> tree/d00/sub/f01"), "{listed}");

    // Restore into a fresh volume: the same tree.
    let restored = Volume::new("volumes-restored");
    let artifact_arg = artifact.to_str().unwrap();
    let (code, stdout, stderr) = outcome(&mut run(&[
        "restore",
        artifact_arg,
        "--volume",
        &restored.0,
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("into volume {}", restored.0)),
        "{stdout}"
    );
    let after = tree(&restored.0);
    let differing: Vec<_> = before
        .iter()
        .zip(&after)
        .filter(|(a, b)| a != b)
        .take(5)
        .collect();
    assert!(
        differing.is_empty() && before.len() == after.len(),
        "{differing:?}"
    );
    assert!(
        before
            .iter()
            .any(|l| l.starts_with("sparse f 0:0") && l.ends_with("sparse"))
    );
    assert!(
        before
            .iter()
            .any(|l| l.starts_with("secret f 1000:1000 0o600"))
    );
    assert!(before.iter().any(|l| l.contains("user.stowage=kept")));
    assert!(
        before
            .iter()
            .any(|l| l.starts_with("hardlink f") && l.contains("links=2"))
    );
    let log = docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/data:ro", restored.0),
        APP_IMAGE,
        "wc",
        "-l",
        "/data/live/log",
    ]);
    assert!(!log.starts_with("0 "), "the live file was archived: {log}");

    // A volume that holds files is refused, unless --force.
    let (code, _, stderr) = outcome(&mut run(&[
        "restore",
        artifact_arg,
        "--volume",
        &restored.0,
    ]));
    assert_ne!(code, 0);
    assert!(
        stderr.contains("is not empty") && stderr.contains("--force"),
        "{stderr}"
    );
    let (code, _, stderr) = outcome(&mut run(&[
        "restore",
        artifact_arg,
        "--volume",
        &restored.0,
        "--force",
    ]));
    assert_eq!(code, 0, "{stderr}");
    // An archive of files does not go into a database container.
    let (code, _, stderr) = outcome(&mut run(&["restore", artifact_arg, "--to", &app.name]));
    assert_ne!(code, 0);
    assert!(
        stderr.contains("restore it into a volume with --volume"),
        "{stderr}"
    );
}

#[test]
fn paths_off_the_volumes_are_refused_by_plan() {
    require_image(APP_IMAGE);
    let instance = unique("volumes-plan");
    let dir = Scratch::new("volumes-plan");
    let app = Container {
        name: unique("volumes-plan-app"),
    };
    let labels = [
        "stowage.enable=true".to_string(),
        format!("stowage.instance={instance}"),
        "stowage.paths=/data/uploads,/etc".to_string(),
    ];
    let mut args = vec!["run", "-d", "--name", &app.name];
    for l in &labels {
        args.extend(["--label", l]);
    }
    args.extend([APP_IMAGE, "sleep", "600"]);
    docker(&args);
    let (code, out, err) = run_stowage(dir.path(), &instance, &["plan"]);
    assert_ne!(code, 0, "a label mistake is an error: {out}");
    let text = format!("{out}{err}");
    assert!(
        text.contains("\"/etc\" is not on a volume or bind mount")
            && text.contains("volume")
            && text.contains("at /data"),
        "{text}"
    );
}

/// `restore --all` does not count a volume's archive as a failure: it names the archive and
/// the `--volume` command that restores it, and exits 0.
#[test]
fn restore_all_names_volume_archives_and_leaves_them_for_the_operator() {
    require_image(APP_IMAGE);
    let instance = unique("volumes-all");
    let dir = Scratch::new("volumes-all");
    let volume = Volume::new("volumes-all-data");
    let app = Container {
        name: unique("volumes-all-app"),
    };
    let labels = [
        "stowage.enable=true".to_string(),
        format!("stowage.instance={instance}"),
        "stowage.name=notes".to_string(),
        "stowage.volumes=all".to_string(),
    ];
    let mount = format!("{}:/data", volume.0);
    let mut args = vec!["run", "-d", "--name", &app.name, "-v", &mount];
    for l in &labels {
        args.extend(["--label", l]);
    }
    args.extend([APP_IMAGE, "sleep", "600"]);
    docker(&args);
    docker(&["exec", &app.name, "sh", "-c", "echo hello > /data/note.txt"]);
    let disk = format!("file://{}", dir.path().join("disk").display());
    let with_storage = |args: &[&str]| {
        outcome(
            stowage(&dir.path().join("backups"), &instance)
                .env("STOWAGE_HELPER_IMAGE", STOWAGE_IMAGE)
                .env("STOWAGE_STORAGE__DISK__URL", &disk)
                .args(args),
        )
    };
    let (code, out, err) = with_storage(&["backup"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = with_storage(&[
        "restore",
        "--all",
        "--from-host",
        TEST_HOST,
        "--storage",
        "disk",
    ]);
    assert_eq!(code, 0, "a volume archive is no failure: {out}{err}");
    assert!(
        out.contains("0 restored, 0 failed, 1 volume archive(s) left for `--volume`"),
        "{out}"
    );
    assert!(
        out.contains(&format!("`stowage restore disk:{TEST_HOST}/notes/"))
            && out.contains("--volume NAME`"),
        "{out}"
    );
}
