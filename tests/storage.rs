//! Remote storage against a real S3-compatible server (s3s-fs, from crates.io), next to a
//! `file://` storage that only a label selects: uploads after each backup, verified; `stowage
//! list` shows local and remote copies; retention applies remotely too; remote-only mode
//! removes local copies, and such an artifact restores straight from the storage. And the server killed in the middle of
//! a multipart upload: nothing appears under the final key, the local copy is kept, and the
//! next backup completes the upload.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;

fn with_env(mut cmd: Command, env: &[(String, String)]) -> Command {
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn run(
    dir: &Path,
    instance: &str,
    env: &[(String, String)],
    args: &[&str],
) -> (i32, String, String) {
    let mut cmd = with_env(stowage(dir, instance), env);
    outcome(cmd.args(args))
}

/// The object keys of `target` in the bucket, relative to the storage prefix.
fn remote_files(s3: &S3Server, target: &str) -> Vec<String> {
    s3.objects()
        .into_iter()
        .filter_map(|o| {
            o.strip_prefix(&format!("stowage/{TEST_HOST}/{target}/"))
                .map(String::from)
        })
        .collect()
}

#[test]
fn uploads_list_remote_retention_and_remote_only() {
    let instance = unique("s3");
    let dir = Scratch::new("s3");
    let s3_root = Scratch::new("s3-root");
    let secrets = Scratch::new("s3-secret");
    let s3 = S3Server::start(s3_root.path());
    let usb = Scratch::new("s3-usb");
    let mut env = s3.stowage_env(s3.port, &secrets.path().join("key"));
    env.push((
        "STOWAGE_STORAGE__USB__URL".into(),
        format!("file://{}", usb.path().display()),
    ));
    env.push(("STOWAGE_STORAGE__USB__DEFAULT".into(), "false".into()));
    let pg = Pg::start_target_with(
        "s3",
        &instance,
        &[
            ("stowage.retention", "last=2"),
            ("stowage.storage", "offsite,usb"),
        ],
    );
    pg.psql("CREATE TABLE t (v text); INSERT INTO t VALUES ('offsite')");
    let target = pg.c.name.clone();

    let (code, plan, _) = run(dir.path(), &instance, &env, &["plan"]);
    assert_eq!(code, 0, "{plan}");
    let mut made = Vec::new();
    for _ in 0..3 {
        let (code, stdout, stderr) = run(dir.path(), &instance, &env, &["backup"]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stderr.contains("uploaded and verified"), "{stderr}");
        assert!(!stderr.contains(S3_SECRET_KEY));
        made.push(stdout.trim().to_string());
        std::thread::sleep(Duration::from_millis(1100));
    }
    let names: Vec<String> = made
        .iter()
        .map(|a| {
            Path::new(a)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    // last=2 holds locally and remotely: the first backup is gone from both.
    let mut expected: Vec<String> = names[1..]
        .iter()
        .flat_map(|n| [n.clone(), format!("{n}.json")])
        .collect();
    expected.sort();
    assert_eq!(remote_files(&s3, &target), expected);
    assert_eq!(
        files_under(&usb.path().join(TEST_HOST).join(&target)),
        expected,
        "the label's second storage"
    );
    assert!(!Path::new(&made[0]).exists() && Path::new(&made[2]).exists());
    // The remote copy is the local file, byte for byte.
    let remote = s3
        .root
        .join(S3_BUCKET)
        .join("stowage")
        .join(TEST_HOST)
        .join(&target)
        .join(&names[2]);
    assert_eq!(
        std::fs::read(&remote).unwrap(),
        std::fs::read(&made[2]).unwrap()
    );

    let (code, listing, _) = run(dir.path(), &instance, &env, &["list"]);
    assert_eq!(code, 0);
    let row = listing.lines().find(|l| l.contains(&names[2])).unwrap();
    assert!(
        row.contains(" ok ") && row.contains("local,offsite,usb"),
        "{listing}"
    );

    // Remote-only: once verified remotely, the local copies go.
    let mut remote_only = env.clone();
    remote_only.push(("STOWAGE_REMOTE_ONLY".into(), "true".into()));
    let (code, stdout, stderr) = run(dir.path(), &instance, &remote_only, &["backup"]);
    assert_eq!(code, 0, "{stderr}");
    let newest = Path::new(stdout.trim())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        artifacts(dir.path()).is_empty(),
        "{:?}",
        files_under(dir.path())
    );
    assert!(remote_files(&s3, &target).contains(&newest));
    let (_, listing, _) = run(dir.path(), &instance, &env, &["list"]);
    let row = listing.lines().find(|l| l.contains(&newest)).unwrap();
    assert!(
        row.contains(" remote ") && row.contains("offsite:"),
        "{listing}"
    );
    assert!(
        row.contains("postgres") && row.contains("app"),
        "details from the remote manifest: {row}"
    );

    // A remote-only artifact restores straight from the storage, named as `list` shows it.
    let dst = Pg::start_target("s3-dst", &unique("none"));
    let remote_name = format!("offsite:{target}/{newest}");
    let (code, _, stderr) = run(
        dir.path(),
        &instance,
        &env,
        &["restore", &remote_name, "--to", &dst.c.name],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(dst.psql("SELECT v FROM t").trim(), "offsite");
    assert!(
        artifacts(dir.path()).is_empty(),
        "the download is removed afterwards"
    );
}

#[test]
fn server_killed_mid_upload_then_completed_next_time() {
    let instance = unique("s3-kill");
    let dir = Scratch::new("s3-kill");
    let s3_root = Scratch::new("s3-kill-root");
    let secrets = Scratch::new("s3-kill-secret");
    let mut s3 = S3Server::start(s3_root.path());
    let forwarder = Forwarder::start(s3.port);
    let env = s3.stowage_env(forwarder.port, &secrets.path().join("key"));
    let pg = Pg::start_target("s3-kill", &instance);
    // Hex text compresses about 2:1, so the artifact needs several 8 MiB parts.
    pg.psql(
        "CREATE TABLE noise AS SELECT md5(random()::text) || md5(random()::text) AS v FROM generate_series(1, 700000)",
    );
    let target = pg.c.name.clone();

    let mut backup = with_env(stowage(dir.path(), &instance), &env);
    let child = backup
        .arg("backup")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the server once more than one part has gone through, mid-upload.
    let deadline = Instant::now() + Duration::from_secs(120);
    while forwarder.sent.load(Ordering::SeqCst) < 10 * 1024 * 1024 {
        assert!(Instant::now() < deadline, "the upload never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    s3.stop();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "an upload failure fails the run: {stderr}"
    );
    assert!(
        stderr.contains("storage offsite") && stderr.contains("local copy is kept"),
        "{stderr}"
    );
    let first = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(Path::new(&first).exists(), "the local copy is kept");
    let first_name = Path::new(&first)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();

    // Nothing under the final key, not even after the server is back.
    s3.restart();
    assert!(
        remote_files(&s3, &target).is_empty(),
        "{:?}",
        remote_files(&s3, &target)
    );

    // The next backup uploads its own artifact and the one that failed.
    std::thread::sleep(Duration::from_millis(1100));
    let (code, stdout, stderr) = run(dir.path(), &instance, &env, &["backup"]);
    assert_eq!(code, 0, "{stderr}");
    let second_name = Path::new(stdout.trim())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let files = remote_files(&s3, &target);
    for name in [&first_name, &second_name] {
        assert!(
            files.contains(name) && files.contains(&format!("{name}.json")),
            "{files:?}"
        );
    }
    let remote = s3
        .root
        .join(S3_BUCKET)
        .join("stowage")
        .join(TEST_HOST)
        .join(&target)
        .join(&first_name);
    assert_eq!(
        std::fs::read(&remote).unwrap(),
        std::fs::read(&first).unwrap()
    );
}
