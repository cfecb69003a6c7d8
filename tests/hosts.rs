//! Several daemons and several hosts on one S3 store (a real s3s-fs server):
//! - three daemons on one engine with coordination on back each scheduled time up exactly
//!   once, also when the lease's holder is killed with SIGKILL mid-run (taken over after the
//!   lease expires);
//! - two real Docker engines (a second `dockerd` in its own network namespace) each with its
//!   own stowage: each host's objects under its own prefix, retention on one leaves the other's
//!   alone, `list --all-hosts` shows both, and the first host's database is restored onto the
//!   second after its engine was stopped and wiped.

mod common;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Timelike, Utc};
use common::*;

/// Every artifact manifest (`<artifact>.json`) under `dir` (recursively), with its
/// `started_at`.
fn manifests(dir: &Path) -> Vec<(String, DateTime<Utc>)> {
    files_under(dir)
        .into_iter()
        .filter(|f| f.ends_with(".json") && !f.ends_with(".drill.json") && !f.contains(".leases"))
        .map(|f| {
            let text = std::fs::read_to_string(dir.join(&f)).unwrap();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            let at = v["started_at"].as_str().unwrap().parse().unwrap();
            (f, at)
        })
        .collect()
}

fn minute(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_second(0).unwrap().with_nanosecond(0).unwrap()
}

/// One daemon's value of `stowage_lease_total{result=…,target=…}`.
fn lease_metric(port: u16, target: &str, result: &str) -> u64 {
    let (_, body) = http(port, "GET", "/metrics", None);
    let needle = format!("stowage_lease_total{{result=\"{result}\",target=\"{target}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// The two tests of this file do not overlap: the standby test's daemons must finish each
/// backup within its scheduled minute and a 20 s timeout, which a second test's containers
/// and daemons on the same 2 cores made them miss now and then.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn standby_daemons_back_each_scheduled_time_up_exactly_once() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let instance = unique("standby");
    let dir = Scratch::new("standby");
    let s3 = S3Server::start(&dir.path().join("s3"));
    let target = format!("shared-{}", std::process::id());
    let _pg = Pg::start_target_with(
        "standby",
        &instance,
        &[("stowage.schedule", "* * * * *"), ("stowage.name", &target)],
    );
    let env = s3.stowage_env(s3.port, &dir.path().join("s3-secret"));
    let host_dir = s3.root.join(S3_BUCKET).join("stowage").join(TEST_HOST);
    let leases = host_dir.join(".leases").join(&target);
    let start = |name: &str, crash: bool| -> (Daemon, u16) {
        let port = free_port();
        let mut cmd = stowage(&dir.path().join(name), &instance);
        cmd.arg("run")
            .envs(env.clone())
            .env("STOWAGE_COORDINATION__STORAGE", "offsite")
            .env("STOWAGE_COORDINATION__LEASE", "30")
            .env("STOWAGE_DAEMON__BACKUP_TIMEOUT", "20")
            .env("STOWAGE_DAEMON__JITTER", "0")
            .env("STOWAGE_DAEMON__MISSED_RUNS", "run-once")
            .env("STOWAGE_RETENTION__KEEP_LAST", "100")
            .env("STOWAGE_HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join(format!("{name}.log"))).unwrap());
        if crash {
            // Killed with SIGKILL in the middle of the first dump it runs.
            cmd.env("STOWAGE_TEST_CRASH_AT", "dump:first-chunk");
        }
        (Daemon(cmd.spawn().unwrap()), port)
    };
    // The first daemon claims the current minute at once (missed_runs = run-once) and dies
    // mid-run. The others take its run over one second after its 30 s lease expires, and only
    // if that comes before the next scheduled minute (else they give it up by design): so
    // it must claim before second 29. Start it at the beginning of a minute, leaving ~15 s
    // for its start-up on a loaded machine. (Started at any second up to 40, it claimed too
    // late about one run in four and the test timed out.)
    if Utc::now().second() > 8 {
        std::thread::sleep(Duration::from_secs(u64::from(61 - Utc::now().second())));
    }
    let (mut doomed, _) = start("k", true);
    let first = wait_for(60, "the first daemon's lease", || {
        std::fs::read_dir(&leases).ok()?.flatten().next()
    });
    let first_name = first.file_name().to_string_lossy().into_owned();
    let t0: DateTime<Utc> = chrono::NaiveDateTime::parse_from_str(&first_name, "%Y%m%dT%H%M%SZ")
        .unwrap()
        .and_utc();
    let expires: DateTime<Utc> = wait_for(30, "the first lease's record", || {
        let text = std::fs::read_to_string(first.path().join("0.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["expires_at"].as_str()?.parse().ok()
    });
    assert!(
        expires + chrono::Duration::seconds(3) < t0 + chrono::Duration::minutes(1),
        "the first daemon's lease for {t0} expires at {expires}: too late for a takeover \
         before the next scheduled minute; the test's start window is wrong"
    );
    let (_a, port_a) = start("a", false);
    let (_b, port_b) = start("b", false);
    let status = wait_for(60, "the lease holder's crash", || {
        doomed.0.try_wait().unwrap()
    });
    assert_eq!(status.signal(), Some(9), "killed mid-run with SIGKILL");
    // It comes back, and takes part in the next scheduled times.
    let (_k2, port_k) = start("k", false);

    // Three scheduled times: t0 (taken over once the dead holder's lease expired) and two
    // more, each contested by all three daemons and run by exactly one of them.
    let times: Vec<DateTime<Utc>> = (0..3).map(|i| t0 + chrono::Duration::minutes(i)).collect();
    let last = *times.last().unwrap();
    let wait = (last - Utc::now()).num_seconds().max(0) as u64 + 90;
    wait_for(wait, "a backup of each of three scheduled times", || {
        let done: Vec<_> = manifests(&host_dir.join(&target))
            .into_iter()
            .map(|(_, at)| minute(at))
            .collect();
        times.iter().all(|t| done.contains(t)).then_some(())
    });
    // Give a double backup of the last time the moment it would need to show.
    std::thread::sleep(Duration::from_secs(10));
    let mut per_minute: BTreeMap<DateTime<Utc>, Vec<String>> = BTreeMap::new();
    for (file, at) in manifests(&host_dir.join(&target)) {
        per_minute.entry(minute(at)).or_default().push(file);
    }
    for t in &times {
        assert_eq!(
            per_minute.get(t).map_or(0, Vec::len),
            1,
            "exactly one artifact for {t}: {per_minute:?}"
        );
    }
    assert!(
        per_minute.values().all(|v| v.len() == 1),
        "no scheduled time twice: {per_minute:?}"
    );
    // The dead holder's time was taken over (generation 1), and marked done.
    let t0_dir = leases.join(&first_name);
    assert!(t0_dir.join("1.json").exists(), "{:?}", files_under(&t0_dir));
    assert!(
        t0_dir.join("done.json").exists(),
        "{:?}",
        files_under(&t0_dir)
    );
    let ports = [port_a, port_b, port_k];
    let sum = |result: &str| -> u64 {
        ports
            .iter()
            .map(|p| lease_metric(*p, &target, result))
            .sum()
    };
    assert_eq!(sum("takeover"), 1, "one takeover of the dead holder's run");
    assert!(sum("won") >= 2, "the later times were won: {}", sum("won"));
    assert!(
        sum("skipped") >= 4,
        "the losers said so: {}",
        sum("skipped")
    );
    let log = std::fs::read_to_string(dir.path().join("a.log")).unwrap()
        + &std::fs::read_to_string(dir.path().join("b.log")).unwrap();
    assert!(
        log.contains("another daemon holds the lease: skipped here"),
        "{log}"
    );
}

/// A second Docker engine, started in a network namespace of its own (one in the host's
/// namespace would replace the main engine's bridge), stopped and removed on drop.
struct Engine {
    dir: PathBuf,
    netns: String,
    dockerd: Option<std::process::Child>,
}

impl Engine {
    fn start(name: &str) -> Engine {
        let dir = std::env::temp_dir().join(unique(name));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("daemon.json"), "{}").unwrap();
        let netns = unique("stowns");
        let mut engine = Engine {
            dir: dir.clone(),
            netns: netns.clone(),
            dockerd: None,
        };
        let ip = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().unwrap();
            assert!(out.status.success(), "ip {args:?}: {out:?}");
        };
        ip(&["netns", "add", &netns]);
        ip(&["netns", "exec", &netns, "ip", "link", "set", "lo", "up"]);
        let d = |p: &str| dir.join(p).display().to_string();
        // nsenter enters the network namespace only; `ip netns exec` would also remount
        // /sys, hiding the cgroup mounts dockerd needs.
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{netns}"))
            .arg("dockerd")
            .args(["--config-file", &d("daemon.json")])
            .args(["--host", &format!("unix://{}", d("docker.sock"))])
            .args(["--data-root", &d("root"), "--exec-root", &d("exec")])
            .args(["--pidfile", &d("pid"), "--bridge", "none"])
            .args(["--iptables=false", "--storage-driver=vfs"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("dockerd.log")).unwrap())
            .spawn()
            .unwrap();
        engine.dockerd = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !engine.cli(&["info"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "the second dockerd did not start"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        engine
    }

    fn host(&self) -> String {
        format!("unix://{}", self.dir.join("docker.sock").display())
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .args(["-H", &self.host()])
            .args(args)
            .output()
            .unwrap()
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(out.status.success(), "docker {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Copies an image from the main engine.
    fn load(&self, image: &str) {
        let mut save = Command::new("docker")
            .args(["save", image])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let load = Command::new("docker")
            .args(["-H", &self.host(), "load"])
            .stdin(save.stdout.take().unwrap())
            .output()
            .unwrap();
        assert!(
            save.wait().unwrap().success() && load.status.success(),
            "{load:?}"
        );
    }

    /// Stops the engine and removes everything it had.
    fn stop_and_wipe(&mut self) {
        if let Some(mut child) = self.dockerd.take() {
            let ids = self.cli(&["ps", "-aq"]);
            for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
                let _ = self.cli(&["rm", "-f", "-v", id]);
            }
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // Anything dockerd left mounted below its directories.
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let root = self.dir.display().to_string();
        for m in mounts.lines().filter_map(|l| l.split(' ').nth(1)) {
            if m.starts_with(&root) {
                let _ = Command::new("umount").args(["-l", m]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if !self.netns.is_empty() {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.netns])
                .status();
            self.netns.clear();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop_and_wipe();
    }
}

/// `psql` in a container of `engine` (the main one when `None`).
fn psql(engine: Option<&Engine>, container: &str, sql: &str) -> String {
    let args = [
        "exec",
        "-e",
        "PGPASSWORD=pw",
        container,
        "psql",
        "-X",
        "-At",
        "-v",
        "ON_ERROR_STOP=1",
        "-U",
        "postgres",
        "-d",
        "app",
        "-c",
        sql,
    ];
    match engine {
        Some(e) => e.run(&args),
        None => docker(&args),
    }
}

#[test]
fn two_hosts_share_one_store_and_a_dead_host_is_restored_onto_another() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    require_image(PG_IMAGE);
    let instance = unique("hosts");
    let dir = Scratch::new("hosts");
    let s3 = S3Server::start(&dir.path().join("s3"));
    let env = s3.stowage_env(s3.port, &dir.path().join("s3-secret"));
    let mut alpha = Engine::start("alpha");
    alpha.load(PG_IMAGE);
    // The same target name on both hosts: only the host prefix keeps them apart.
    let labels = [
        "--label",
        "stowage.enable=true",
        "--label",
        &format!("stowage.instance={instance}"),
        "--label",
        "stowage.name=db",
    ];
    let mut args = vec!["run", "-d", "--network", "none", "--name", "pg-alpha"];
    args.extend(labels);
    args.extend([
        "-e",
        "POSTGRES_PASSWORD=pw",
        "-e",
        "POSTGRES_DB=app",
        PG_IMAGE,
    ]);
    alpha.run(&args);
    wait_for(60, "postgres on the second engine", || {
        let out = alpha.cli(&[
            "exec", "pg-alpha", "psql", "-U", "postgres", "-d", "app", "-Atc", "SELECT 1",
        ]);
        let logs = alpha.cli(&["logs", "pg-alpha"]);
        let text = String::from_utf8_lossy(&logs.stderr).into_owned()
            + &String::from_utf8_lossy(&logs.stdout);
        (out.status.success() && text.contains("init process complete")).then_some(())
    });
    psql(
        Some(&alpha),
        "pg-alpha",
        "CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS note FROM generate_series(1, 5000) g",
    );
    let beta_pg = Pg::start_target_with("hosts-beta", &instance, &[("stowage.name", "db")]);

    let run = |host: &str, docker_host: Option<String>, args: &[&str]| {
        let mut cmd = stowage(&dir.path().join(host), &instance);
        cmd.args(args).envs(env.clone()).env("STOWAGE_HOST", host);
        if let Some(h) = docker_host {
            cmd.env("DOCKER_HOST", h);
        }
        let (code, out, err) = outcome(&mut cmd);
        assert_eq!(code, 0, "stowage {args:?} on {host}: {out}{err}");
        out
    };
    for _ in 0..2 {
        run("alpha", Some(alpha.host()), &["backup"]);
        run("beta", None, &["backup"]);
        std::thread::sleep(Duration::from_millis(1100));
    }
    let stored = |host: &str| -> Vec<String> {
        manifests(
            &s3.root
                .join(S3_BUCKET)
                .join("stowage")
                .join(host)
                .join("db"),
        )
        .into_iter()
        .map(|(f, _)| f)
        .collect()
    };
    assert_eq!(stored("alpha").len(), 2, "{:?}", s3.objects());
    assert_eq!(stored("beta").len(), 2, "{:?}", s3.objects());

    // Retention on alpha (keep one) leaves beta's objects of the same target name alone.
    let mut cmd = stowage(&dir.path().join("alpha"), &instance);
    cmd.args(["upload"])
        .envs(env.clone())
        .env("STOWAGE_HOST", "alpha")
        .env("DOCKER_HOST", alpha.host())
        .env("STOWAGE_RETENTION__KEEP_LAST", "1");
    for rule in ["HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"] {
        cmd.env(format!("STOWAGE_RETENTION__KEEP_{rule}"), "0");
    }
    let (code, out, err) = outcome(&mut cmd);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(stored("alpha").len(), 1, "{out}{err}{:?}", s3.objects());
    assert_eq!(stored("beta").len(), 2, "{:?}", s3.objects());

    // One view of both hosts.
    let listing = run("beta", None, &["list", "--all-hosts"]);
    for (host, n) in [("alpha", 1), ("beta", 2)] {
        let rows = listing
            .lines()
            .filter(|l| l.starts_with(&format!("{host} ")) && l.contains(" db "))
            .count();
        assert_eq!(rows, n, "{host} in:\n{listing}");
    }
    assert!(listing.contains("offsite:alpha/db/"), "{listing}");

    // Host alpha dies: its engine is stopped and wiped. Its database comes back on beta, in a
    // fresh container named by a map file.
    let expected = psql(
        Some(&alpha),
        "pg-alpha",
        "SELECT count(*), md5(string_agg(note, ',' ORDER BY id)) FROM orders",
    );
    alpha.stop_and_wipe();
    let fresh = Pg::start(
        "hosts-recovered",
        PgOptions {
            env: vec![
                ("POSTGRES_PASSWORD", "pw".into()),
                ("POSTGRES_DB", "app".into()),
            ],
            ..Default::default()
        },
    );
    let map = dir.path().join("map.toml");
    std::fs::write(&map, format!("db = \"{}\"\n", fresh.c.name)).unwrap();
    let out = run(
        "beta",
        None,
        &[
            "restore",
            "--all",
            "--from-host",
            "alpha",
            "--storage",
            "offsite",
            "--map",
            map.to_str().unwrap(),
        ],
    );
    assert!(out.contains("1 restored, 0 failed"), "{out}");
    assert!(
        out.contains(&format!("container {}", fresh.c.name)),
        "{out}"
    );
    let restored = psql(
        None,
        &fresh.c.name,
        "SELECT count(*), md5(string_agg(note, ',' ORDER BY id)) FROM orders",
    );
    assert_eq!(restored, expected);
    assert!(expected.starts_with("5000|"), "{expected}");

    // One artifact by name: the latest of host beta's target, into another fresh container.
    let single = Pg::start(
        "hosts-single",
        PgOptions {
            env: vec![
                ("POSTGRES_PASSWORD", "pw".into()),
                ("POSTGRES_DB", "app".into()),
            ],
            ..Default::default()
        },
    );
    beta_pg.psql("SELECT 1");
    let out = run(
        "alpha-new",
        None,
        &["restore", "offsite:beta/db/latest", "--to", &single.c.name],
    );
    assert!(out.contains("restored offsite:beta/db/"), "{out}");
}
