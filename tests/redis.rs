//! Redis 7.0 (Debian's) with a password: keys of every type, in two databases, with and
//! without expiry, round-trip through a backup and `stowage restore`, compared key by key
//! (type, expiry, value); the artifact is a standard RDB that `redis-check-rdb`
//! accepts; a restore killed with SIGKILL while the server is stopped leaves a record, and the
//! next stowage starts the server again; a wrong password fails the backup.

mod common;

use std::time::{Duration, Instant};

use common::*;

const REDIS_IMAGE: &str = "stowage-test/redis:test";
const PASSWORD: &str = "r3dis pw'$(id)";

/// A Redis server with a password, as compose files run it.
struct Redis {
    c: Container,
}

impl Redis {
    fn start(prefix: &str, labels: &[(&str, String)]) -> Redis {
        require_image(REDIS_IMAGE);
        let name = unique(prefix);
        let mut args: Vec<String> = vec![
            "run".into(),
            "-d".into(),
            "--init".into(),
            "--name".into(),
            name.clone(),
        ];
        args.extend(["-e".into(), format!("REDIS_PASSWORD={PASSWORD}")]);
        for (k, v) in labels {
            args.extend(["--label".into(), format!("{k}={v}")]);
        }
        args.extend(
            [
                REDIS_IMAGE,
                "redis-server",
                "--dir",
                "/data",
                "--requirepass",
                PASSWORD,
            ]
            .map(String::from),
        );
        docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let r = Redis {
            c: Container { name },
        };
        r.wait_ready();
        r
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.cli_output(&["PING"]).trim() != "PONG" {
            assert!(Instant::now() < deadline, "redis did not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn cli_output(&self, args: &[&str]) -> String {
        let auth = format!("REDISCLI_AUTH={PASSWORD}");
        let mut argv = vec!["exec", "-e", &auth, &self.c.name, "redis-cli"];
        argv.extend(args);
        String::from_utf8_lossy(&docker_output(&argv).stdout).into_owned()
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = self.cli_output(args);
        assert!(
            !out.starts_with("ERR") && !out.starts_with("(error)"),
            "{args:?}: {out}"
        );
        out
    }

    /// Keys of every type, in databases 0 and 3.
    fn seed(&self) {
        self.cli(&["SET", "plain", "hello world"]);
        self.cli(&["SET", "binary", "\u{1}\u{2}é\u{ff}"]);
        self.cli(&["SET", "expiring", "soon", "EX", "86400"]);
        self.cli(&["RPUSH", "list", "a", "b", "c", "a"]);
        self.cli(&["SADD", "set", "x", "y", "z"]);
        self.cli(&["ZADD", "zset", "1", "one", "2.5", "two-and-a-half"]);
        self.cli(&["HSET", "hash", "f1", "v1", "f2", "v2"]);
        self.cli(&["XADD", "stream", "*", "field", "value"]);
        self.cli(&[
            "EVAL",
            "redis.call('SET', 'big', string.rep('0123456789', 100000)) \
             for i = 0, 1999 do redis.call('SET', 'key:' .. i, 'value ' .. i) end",
            "0",
        ]);
        self.cli(&["-n", "3", "HSET", "other-db", "k", "v"]);
    }

    /// Every key of databases 0 and 3: name, type, whether it expires, and its value, sorted.
    fn snapshot(&self) -> Vec<String> {
        // Each value in a canonical form (sets and hashes sorted): DUMP's bytes depend on
        // the order a set was rebuilt in.
        let script = r#"
local out = {}
for _, k in ipairs(redis.call('KEYS', '*')) do
  local t = redis.call('TYPE', k).ok
  local v
  if t == 'string' then v = redis.call('GET', k)
  elseif t == 'list' then v = redis.call('LRANGE', k, 0, -1)
  elseif t == 'set' then v = redis.call('SMEMBERS', k); table.sort(v)
  elseif t == 'zset' then v = redis.call('ZRANGE', k, 0, -1, 'WITHSCORES')
  elseif t == 'hash' then
    local all = redis.call('HGETALL', k); v = {}
    for i = 1, #all, 2 do table.insert(v, all[i] .. '=' .. all[i + 1]) end
    table.sort(v)
  elseif t == 'stream' then v = redis.call('XRANGE', k, '-', '+')
  end
  table.insert(out, k .. ' ' .. t .. ' ' .. tostring(redis.call('TTL', k) > 0) .. ' ' .. cjson.encode(v))
end
return out"#;
        let mut lines = Vec::new();
        for db in ["0", "3"] {
            let out = self.cli(&["-n", db, "--no-raw", "EVAL", script, "0"]);
            // `--no-raw` numbers the array's lines ("  12) "); the order is the server's own.
            lines.extend(out.lines().map(|l| {
                let item = l.split_once(") ").map_or(l, |(_, rest)| rest);
                format!("db{db} {item}")
            }));
        }
        lines.sort();
        lines
    }
}

#[test]
fn keys_of_every_type_round_trip_through_backup_and_restore() {
    let instance = unique("redis");
    let dir = Scratch::new("redis");
    let source = Redis::start("redis-src", &target_labels(&instance));
    source.seed();
    let before = source.snapshot();
    assert!(before.len() > 2000, "{} keys", before.len());

    let (code, plan, _) = run_stowage(dir.path(), &instance, &["plan"]);
    assert_eq!(code, 0, "{plan}");
    assert!(plan.contains("engine:    redis"), "{plan}");
    let (code, stdout, stderr) = run_stowage(dir.path(), &instance, &["backup"]);
    assert_eq!(code, 0, "{stderr}");
    let found = artifacts(dir.path());
    assert_eq!(found.len(), 1, "{stdout}{stderr}");
    assert!(found[0].ends_with(".rdb.zst"), "{found:?}");
    let artifact = dir.path().join(&found[0]);
    // The temp file in the container is gone.
    let tmp = docker(&["exec", &source.c.name, "ls", "/tmp"]);
    assert!(!tmp.contains("stowage-"), "{tmp}");

    // A standard RDB: decompressed with zstd, Redis's own checker accepts it.
    let raw = dir.path().join("dump.rdb");
    let status = std::process::Command::new("zstd")
        .args(["-d", "-q", "-o"])
        .arg(&raw)
        .arg(&artifact)
        .status()
        .unwrap();
    assert!(status.success());
    let mount = format!("{}:/check/dump.rdb:ro", raw.display());
    let checked = docker_output(&[
        "run",
        "--rm",
        "-v",
        &mount,
        REDIS_IMAGE,
        "redis-check-rdb",
        "/check/dump.rdb",
    ]);
    let text = String::from_utf8_lossy(&checked.stdout);
    assert!(text.contains("RDB looks OK"), "{text}");

    // Restored into a fresh server: every key, type, expiry and value is the same.
    let restored = Redis::start("redis-dst", &[]);
    restored.cli(&["SET", "not-in-the-backup", "x"]);
    let (code, stdout, stderr) = outcome(
        stowage(dir.path(), &instance)
            .env("STOWAGE_HELPER_IMAGE", STOWAGE_IMAGE)
            .args([
                "restore",
                artifact.to_str().unwrap(),
                "--to",
                &restored.c.name,
            ]),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("restored"), "{stdout}");
    restored.wait_ready();
    let after = restored.snapshot();
    let differing: Vec<_> = before
        .iter()
        .filter(|l| !after.contains(l))
        .take(3)
        .collect();
    assert!(
        differing.is_empty() && after.len() == before.len(),
        "{} keys before, {} after; missing or different: {differing:?}",
        before.len(),
        after.len()
    );
    let running = |name: &str| docker(&["inspect", "--format", "{{.State.Running}}", name]);
    assert_eq!(running(&restored.c.name).trim(), "true");

    // Killed (SIGKILL) while the container is stopped for the replacement: the record stays,
    // and the next stowage starts the server again, which still holds the data it had.
    let killed = stowage(dir.path(), &instance)
        .env("STOWAGE_HELPER_IMAGE", STOWAGE_IMAGE)
        .env("STOWAGE_TEST_CRASH_AT", "stop:stopped")
        .args([
            "restore",
            artifact.to_str().unwrap(),
            "--to",
            &restored.c.name,
        ])
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(killed.status.signal(), Some(9), "{killed:?}");
    // SIGKILL leaves stowage no moment to remove its helper: it stays until its lifetime
    // (`sleep 86400`, auto-removed) ends. The test removes it, also when an assert below fails.
    let label = format!("label=stowage.helper-for={}", restored.c.name);
    let left: Vec<Container> = docker(&["ps", "-q", "--filter", &label])
        .split_whitespace()
        .map(|id| Container { name: id.into() })
        .collect();
    assert_eq!(left.len(), 1, "the killed run's helper is still there");
    assert_eq!(
        running(&restored.c.name).trim(),
        "false",
        "stopped when killed"
    );
    let records = files_under(&dir.path().join(".stopped"));
    assert_eq!(records.len(), 1, "{records:?}");
    let (code, _, stderr) = run_stowage(dir.path(), &instance, &["backup"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("starting them now"), "{stderr}");
    assert_eq!(
        running(&restored.c.name).trim(),
        "true",
        "started by the next stowage"
    );
    assert!(files_under(&dir.path().join(".stopped")).is_empty());
    restored.wait_ready();
    assert_eq!(restored.snapshot().len(), before.len());
}

/// A restore drill: the RDB loads into a throwaway server from the target's image (through the
/// same replacing restore, with a helper), and the throwaway container is gone afterwards.
#[test]
fn a_restore_drill_loads_the_rdb_into_a_throwaway_server() {
    let instance = unique("redis-drill");
    let dir = Scratch::new("redis-drill");
    let source = Redis::start("redis-drill", &target_labels(&instance));
    source.seed();
    let run = |args: &[&str]| {
        outcome(
            stowage(dir.path(), &instance)
                .env("STOWAGE_HELPER_IMAGE", STOWAGE_IMAGE)
                .args(args),
        )
    };
    let (code, _, stderr) = run(&["backup"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = run(&["drill"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("passed"), "{stdout}");
    let record = files_under(dir.path())
        .into_iter()
        .find(|f| f.ends_with(".drill.json"))
        .expect("a drill record");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(record)).unwrap()).unwrap();
    assert_eq!(record["outcome"], "passed", "{record}");
    assert_eq!(
        record["checks"]["the server loaded the RDB"], true,
        "{record}"
    );
    let left = docker(&["ps", "-aq", "--filter", "label=stowage.drill-for"]);
    assert!(left.trim().is_empty(), "drill containers left: {left}");

    // A damaged RDB (one flipped byte, manifest made to match) fails the drill.
    let artifact = dir.path().join(
        artifacts(dir.path())
            .into_iter()
            .next()
            .expect("the artifact"),
    );
    let raw = zstd::decode_all(&std::fs::read(&artifact).unwrap()[..]).unwrap();
    let mut damaged = raw.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x55;
    let stored = zstd::encode_all(&damaged[..], 3).unwrap();
    std::fs::write(&artifact, &stored).unwrap();
    let manifest_path = format!("{}.json", artifact.display());
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let hex = |b: &[u8]| {
        use sha2::Digest;
        format!("{:x}", sha2::Sha256::digest(b))
    };
    manifest["raw"]["sha256"] = hex(&damaged).into();
    manifest["stored"]["sha256"] = hex(&stored).into();
    manifest["stored"]["bytes"] = stored.len().into();
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let (code, stdout, _) = run(&["drill"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("FAILED") && stdout.contains("the server did not accept it"),
        "Redis itself refuses the damaged file: {stdout}"
    );
}

#[test]
fn a_wrong_password_fails_the_backup_and_names_the_cause() {
    let instance = unique("redis-auth");
    let dir = Scratch::new("redis-auth");
    let mut labels = target_labels(&instance);
    labels.push(("stowage.password", "not the password".into()));
    let _redis = Redis::start("redis-auth", &labels);
    let (code, _, stderr) = run_stowage(dir.path(), &instance, &["backup"]);
    assert_ne!(code, 0, "{stderr}");
    assert!(artifacts(dir.path()).is_empty());
    assert!(
        stderr.contains("AUTH failed") || stderr.contains("WRONGPASS"),
        "{stderr}"
    );
}
