//! Shared harness for the integration tests: real Docker, real PostgreSQL.
//!
//! Images come from `scripts/images.sh` (run by `scripts/test.sh`); a missing image is a
//! test failure with instructions, never a skip. Every container gets a unique name and is
//! removed when its guard drops; every test uses its own `stowage.instance` so tests running
//! in parallel never see each other's containers.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const PG_IMAGE: &str = "stowage-test/postgres:test";
pub const STOWAGE_IMAGE: &str = "stowage-test/stowage:test";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("stowage-it-{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

/// Runs `docker ARGS`, panicking with its stderr on failure.
pub fn docker(args: &[&str]) -> String {
    let out = docker_output(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `docker ARGS` and returns its output whatever the exit code.
pub fn docker_output(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("running the docker CLI")
}

pub fn require_image(image: &str) {
    let ok = docker_output(&["image", "inspect", image]).status.success();
    assert!(
        ok,
        "image {image} is missing: run scripts/test.sh (or scripts/images.sh stowage) first"
    );
}

/// A container removed (with its anonymous volumes) on drop.
pub struct Container {
    pub name: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker_output(&["rm", "-f", "-v", &self.name]);
    }
}

/// Options for a PostgreSQL test container.
#[derive(Default)]
pub struct PgOptions<'a> {
    pub labels: Vec<(&'a str, String)>,
    pub env: Vec<(&'a str, String)>,
    /// Extra `docker run` arguments (mounts and the like).
    pub run_args: Vec<String>,
    /// The password, when it is not given as POSTGRES_PASSWORD (e.g. a *_FILE secret).
    pub password: Option<String>,
}

/// The engine's unix socket on this machine (from DOCKER_HOST, else the default path).
pub fn docker_socket() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(str::to_string))
        .unwrap_or_else(|| "/var/run/docker.sock".into())
}

/// A running PostgreSQL container built from Debian's packages.
pub struct Pg {
    pub c: Container,
    pub user: String,
    pub db: String,
    pub password: String,
}

impl Pg {
    /// The common case: a target of `instance` with password `pw` and database `app`.
    pub fn start_target(prefix: &str, instance: &str) -> Pg {
        Pg::start_target_with(prefix, instance, &[])
    }

    /// [`Pg::start_target`] with more labels.
    pub fn start_target_with(prefix: &str, instance: &str, extra: &[(&'static str, &str)]) -> Pg {
        let mut labels = target_labels(instance);
        labels.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        Pg::start(
            prefix,
            PgOptions {
                labels,
                env: vec![
                    ("POSTGRES_PASSWORD", "pw".into()),
                    ("POSTGRES_DB", "app".into()),
                ],
                ..Default::default()
            },
        )
    }

    /// Starts a container and waits until it accepts connections.
    pub fn start(prefix: &str, opts: PgOptions) -> Pg {
        require_image(PG_IMAGE);
        let name = unique(prefix);
        let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.clone()];
        for (k, v) in &opts.labels {
            args.push("--label".into());
            args.push(format!("{k}={v}"));
        }
        for (k, v) in &opts.env {
            args.push("-e".into());
            args.push(format!("{k}={v}"));
        }
        args.extend(opts.run_args.iter().cloned());
        args.push(PG_IMAGE.into());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&refs);
        let get = |k: &str| {
            opts.env
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.clone())
        };
        let user = get("POSTGRES_USER").unwrap_or_else(|| "postgres".into());
        let pg = Pg {
            c: Container { name },
            db: get("POSTGRES_DB").unwrap_or_else(|| user.clone()),
            password: get("POSTGRES_PASSWORD")
                .or(opts.password.clone())
                .unwrap_or_default(),
            user,
        };
        pg.wait_ready();
        pg
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let logs = docker_output(&["logs", &self.c.name]);
            let text = String::from_utf8_lossy(&logs.stderr).into_owned()
                + &String::from_utf8_lossy(&logs.stdout);
            // The init phase runs a socket-only server; wait for the real one.
            let initialised = text.contains("init process complete") || !text.contains("initdb");
            if initialised
                && text.contains("database system is ready to accept connections")
                && self.psql_output("SELECT 1").status.success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "postgres {} did not start:\n{text}",
                self.c.name
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn psql_output(&self, sql: &str) -> Output {
        self.psql_output_in(&self.db, sql)
    }

    fn psql_output_in(&self, db: &str, sql: &str) -> Output {
        let pw = format!("PGPASSWORD={}", self.password);
        docker_output(&[
            "exec",
            "-e",
            &pw,
            &self.c.name,
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-At",
            "-U",
            &self.user,
            "-d",
            db,
            "-c",
            sql,
        ])
    }

    /// Runs SQL with psql inside the container and returns its output.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in(&self.db, sql)
    }

    /// Runs SQL in another database of the same server.
    pub fn psql_in(&self, db: &str, sql: &str) -> String {
        let out = self.psql_output_in(db, sql);
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a command inside the container.
    pub fn exec(&self, argv: &[&str]) -> String {
        let mut args = vec!["exec", "-e"];
        let pw = format!("PGPASSWORD={}", self.password);
        args.push(&pw);
        args.push(&self.c.name);
        args.extend_from_slice(argv);
        docker(&args)
    }

    /// Seeds the data every round-trip test compares: pgbench's tables and a table of
    /// unicode text and binary data.
    pub fn seed(&self, scale: u32) {
        self.exec(&[
            "pgbench",
            "-i",
            "-q",
            "-s",
            &scale.to_string(),
            "-U",
            &self.user,
            &self.db,
        ]);
        self.psql(
            "CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL, blob bytea NOT NULL);
             INSERT INTO notes (body, blob) VALUES
               ('Grüße aus Köln — ünïcødé ✓', '\\x00ff10deadbeef'::bytea),
               ('日本語のテキスト 🚀 and emoji', decode(repeat('00ff', 512), 'hex')),
               (E'quotes '' \" and backslash \\\\ and tab\\t', ''::bytea);
             INSERT INTO notes (body, blob)
               SELECT 'row ' || g || ' ' || md5(g::text), sha256(g::text::bytea) FROM generate_series(1, 2000) g;",
        );
    }

    /// One checksum per user table: md5 over the rows in a stable order.
    pub fn table_checksums(&self) -> Vec<(String, String)> {
        self.table_checksums_in(&self.db)
    }

    /// [`Pg::table_checksums`] of another database of the same server.
    pub fn table_checksums_in(&self, db: &str) -> Vec<(String, String)> {
        let tables = self.psql_in(
            db,
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
        );
        tables
            .lines()
            .map(|t| {
                let sum = self.psql_in(db, &format!(
                    "SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, E'\\n' ORDER BY x::text)), '') FROM {t} x"
                ));
                (t.to_string(), sum.trim().to_string())
            })
            .collect()
    }

    /// Holds an ACCESS EXCLUSIVE lock on `table` until [`Lock::release`]: a pg_dump started
    /// meanwhile waits inside the container, so a test can act "during the dump".
    pub fn hold_lock(&self, table: &str) -> Lock {
        let pw = format!("PGPASSWORD={}", self.password);
        let sql =
            format!("BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(600);");
        let child = Command::new("docker")
            .args([
                "exec",
                "-e",
                &pw,
                "-e",
                "PGAPPNAME=stowage-test-lock",
                &self.c.name,
                "psql",
                "-X",
                "-U",
                &self.user,
                "-d",
                &self.db,
                "-c",
                &sql,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.psql(&format!("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = '{table}' AND l.mode = 'AccessExclusiveLock' AND l.granted")).trim() != "1" {
            assert!(Instant::now() < deadline, "could not take the lock");
            std::thread::sleep(Duration::from_millis(100));
        }
        Lock { child }
    }

    /// Waits until a process whose command line starts with `prefix` runs in the container;
    /// returns every process's command line.
    pub fn wait_for_process(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ps = docker(&["exec", &self.c.name, "ps", "-eo", "args"]);
            if ps.lines().any(|l| l.trim_start().starts_with(prefix)) {
                return ps;
            }
            assert!(
                Instant::now() < deadline,
                "{prefix} never appeared in ps:\n{ps}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// See [`Pg::hold_lock`].
pub struct Lock {
    child: std::process::Child,
}

impl Lock {
    /// Ends the locking session (and with it the lock).
    pub fn release(mut self, pg: &Pg) {
        pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'stowage-test-lock'");
        let _ = self.child.wait();
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

pub const MARIADB_IMAGE: &str = "stowage-test/mariadb:test";
/// The root password of every MariaDB test container: shell characters on purpose.
pub const MARIADB_PASSWORD: &str = "r00t 'pw\" $(touch /tmp/x); `id`";

/// A running MariaDB container built from Debian's packages.
pub struct Maria {
    pub c: Container,
    /// The account the test's own SQL runs as, and its password.
    pub account: (String, String),
}

impl Maria {
    /// Starts a container with MARIADB_DATABASE=`db` and a root password, and waits until it
    /// answers.
    pub fn start(prefix: &str, labels: Vec<(&str, String)>, db: &str) -> Maria {
        let run_args = vec![
            "-e".into(),
            format!("MARIADB_ROOT_PASSWORD={MARIADB_PASSWORD}"),
            "-e".into(),
            format!("MARIADB_DATABASE={db}"),
        ];
        Self::start_with(prefix, labels, run_args, ("root", MARIADB_PASSWORD))
    }

    /// Starts a container with these extra `docker run` arguments; the test's SQL runs as
    /// `account`.
    pub fn start_with(
        prefix: &str,
        labels: Vec<(&str, String)>,
        run_args: Vec<String>,
        account: (&str, &str),
    ) -> Maria {
        require_image(MARIADB_IMAGE);
        let name = unique(prefix);
        let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.clone()];
        for (k, v) in labels {
            args.extend(["--label".into(), format!("{k}={v}")]);
        }
        args.extend(run_args);
        args.push(MARIADB_IMAGE.into());
        docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let m = Maria {
            c: Container { name },
            account: (account.0.to_string(), account.1.to_string()),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let logs = docker_output(&["logs", &m.c.name]);
            let text = String::from_utf8_lossy(&logs.stdout).into_owned()
                + &String::from_utf8_lossy(&logs.stderr);
            if text.contains("Ready for start up")
                && m.sql_output("information_schema", "SELECT 1")
                    .status
                    .success()
            {
                return m;
            }
            assert!(Instant::now() < deadline, "mariadb did not start:\n{text}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    pub fn sql_output(&self, db: &str, sql: &str) -> std::process::Output {
        let pw = format!("MYSQL_PWD={}", self.account.1);
        let user = format!("--user={}", self.account.0);
        docker_output(&[
            "exec",
            "-e",
            &pw,
            &self.c.name,
            "mariadb",
            &user,
            "--default-character-set=utf8mb4",
            "--batch",
            "--skip-column-names",
            db,
            "-e",
            sql,
        ])
    }

    /// Runs SQL as the test's account in `db`.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let out = self.sql_output(db, sql);
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Tables with unicode and binary data, a trigger, a function and a procedure.
    pub fn seed(&self, db: &str) {
        self.sql(
            db,
            "CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) CHARACTER SET utf8mb4, price DECIMAL(10,2), data BLOB) ENGINE=InnoDB;
         CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, item_id INT, note VARCHAR(200) CHARACTER SET utf8mb4) ENGINE=InnoDB;
         CREATE TRIGGER items_ai AFTER INSERT ON items FOR EACH ROW INSERT INTO audit (item_id, note) VALUES (NEW.id, CONCAT('added ', NEW.name));
         CREATE FUNCTION double_price(p DECIMAL(10,2)) RETURNS DECIMAL(10,2) DETERMINISTIC RETURN p * 2;
         CREATE PROCEDURE count_items(OUT n INT) SELECT COUNT(*) INTO n FROM items;
         INSERT INTO items (name, price, data) VALUES ('Grüße ✓ 日本語 🚀', 9.99, 0x00FF10DEADBEEF), ('plain', 1.50, NULL), ('quote '' and \\\\ backslash', 0.01, '');",
        );
    }

    /// Everything the round trip must keep: rows, routines, triggers.
    pub fn snapshot(&self, db: &str) -> Vec<String> {
        vec![
            self.sql(db, "SELECT id, name, price, HEX(data) FROM items ORDER BY id"),
            self.sql(db, "SELECT id, item_id, note FROM audit ORDER BY id"),
            self.sql(db, &format!("SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{db}' ORDER BY 2")),
            self.sql(db, &format!("SELECT TRIGGER_NAME, EVENT_MANIPULATION FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{db}' ORDER BY 1")),
        ]
    }
}

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(prefix: &str) -> Scratch {
        let dir = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The host name tests give stowage (config `host`): storages hold its objects under it.
pub const TEST_HOST: &str = "testhost";

/// The stowage binary under test, with a backup directory and an instance of its own, as
/// host [`TEST_HOST`].
pub fn stowage(backup_dir: &Path, instance: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stowage"));
    cmd.env("STOWAGE_BACKUP_DIR", backup_dir)
        .env("STOWAGE_INSTANCE", instance)
        .env("STOWAGE_HOST", TEST_HOST)
        .env("STOWAGE_CONFIG", "/dev/null")
        .env("STOWAGE_LOG", "info");
    cmd
}

/// Starts `stowage backup` in the background, output captured.
pub fn spawn_backup(backup_dir: &Path, instance: &str) -> std::process::Child {
    stowage(backup_dir, instance)
        .arg("backup")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until a temp file exists under `dir` (a backup is writing).
pub fn wait_for_temp_file(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while temp_files(dir).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no temp file appeared: {:?}",
            files_under(dir)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs stowage to completion: (exit code, stdout, stderr).
pub fn run_stowage(backup_dir: &Path, instance: &str, args: &[&str]) -> (i32, String, String) {
    outcome(stowage(backup_dir, instance).args(args))
}

/// Runs the openssl CLI in `dir`; panics with its stderr if it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl CLI (scripts/deps.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a prepared command to completion: (exit code, or -1 if killed; stdout; stderr).
pub fn outcome(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every file under `dir`, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// Final artifacts (not manifests, not temp files, not the lock) under `dir`.
pub fn artifacts(dir: &Path) -> Vec<String> {
    files_under(dir)
        .into_iter()
        .filter(|f| f.ends_with(".zst") && !f.rsplit('/').next().unwrap().starts_with('.'))
        .collect()
}

/// Temp files under `dir`.
pub fn temp_files(dir: &Path) -> Vec<String> {
    files_under(dir)
        .into_iter()
        .filter(|f| f.ends_with(".stowage-tmp"))
        .collect()
}

/// Labels that make a container a target of `instance`.
pub fn target_labels(instance: &str) -> Vec<(&'static str, String)> {
    vec![
        ("stowage.enable", "true".into()),
        ("stowage.instance", instance.into()),
    ]
}

/// Restores a plain-SQL artifact with stock tools only: `zstd -d < artifact | psql`.
pub fn restore_with_stock_tools(artifact: &Path, into: &Pg) {
    let mut zstd = Command::new("zstd")
        .args(["-d", "-c"])
        .arg(artifact)
        .stdout(Stdio::piped())
        .spawn()
        .expect("zstd CLI (scripts/test.sh installs it)");
    let pw = format!("PGPASSWORD={}", into.password);
    let status = Command::new("docker")
        .args([
            "exec",
            "-i",
            "-e",
            &pw,
            &into.c.name,
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-U",
            &into.user,
            "-d",
            &into.db,
        ])
        .stdin(zstd.stdout.take().unwrap())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(
        zstd.wait().unwrap().success(),
        "zstd -d failed on {}",
        artifact.display()
    );
    assert!(
        status.success(),
        "restoring {} with zstd | psql failed",
        artifact.display()
    );
}

/// The SQLite test application without a `sqlite3` binary, and the same with one.
pub const SQLITE_APP: &str = "stowage-test/sqlite-app:test";
pub const SQLITE_APP_CLI: &str = "stowage-test/sqlite-app-cli:test";

/// A container of a SQLite test application (uid 1000, its data on a volume at /data).
pub struct SqliteApp {
    pub c: Container,
}

impl SqliteApp {
    /// Starts `image` running `cmd` (argv), with the labels of a SQLite target when
    /// `instance` is given.
    pub fn start(image: &str, prefix: &str, instance: Option<&str>, cmd: &[&str]) -> SqliteApp {
        require_image(image);
        let name = unique(prefix);
        let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.clone()];
        if let Some(instance) = instance {
            let mut labels = target_labels(instance);
            labels.push(("stowage.engine", "sqlite".into()));
            labels.push(("stowage.database", "/data/app.db".into()));
            for (k, v) in labels {
                args.extend(["--label".into(), format!("{k}={v}")]);
            }
        }
        args.push(image.into());
        args.extend(cmd.iter().map(|s| s.to_string()));
        docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
        SqliteApp {
            c: Container { name },
        }
    }

    /// Starts the writer: `seed` rows, then one transaction after another, in journal `mode`.
    pub fn start_writer(image: &str, instance: &str, mode: &str, seed: u32) -> SqliteApp {
        let seed = seed.to_string();
        let app = Self::start(
            image,
            "sqlite-app",
            Some(instance),
            &[
                "python3",
                "/usr/local/bin/app.py",
                "write",
                "/data/app.db",
                mode,
                &seed,
            ],
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while !docker(&["logs", &app.c.name]).contains("seeded") {
            assert!(Instant::now() < deadline, "the writer did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        app
    }

    /// Runs `app.py ARGS` in the container (as its user).
    pub fn app(&self, args: &[&str]) -> String {
        let mut argv = vec![
            "exec",
            self.c.name.as_str(),
            "python3",
            "/usr/local/bin/app.py",
        ];
        argv.extend(args);
        docker(&argv)
    }

    /// The writer's committed count.
    pub fn count(&self) -> u64 {
        self.app(&["count", "/data/app.db"]).trim().parse().unwrap()
    }
}

/// A real S3-compatible server: s3s-fs (from crates.io, installed by scripts/deps.sh),
/// storing objects as files under `root/<bucket>/<key>`.
pub struct S3Server {
    pub root: PathBuf,
    pub port: u16,
    child: Option<std::process::Child>,
}

pub const S3_ACCESS_KEY: &str = "stowage-test";
pub const S3_SECRET_KEY: &str = "s3cret-key-for-tests";
pub const S3_BUCKET: &str = "backups";

/// A `stowage run` (or any child) killed and reaped on drop, also when the test fails.
pub struct Daemon(pub std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl S3Server {
    /// Starts a server with an empty bucket `S3_BUCKET`.
    pub fn start(root: &Path) -> S3Server {
        Self::start_on(root, free_port())
    }

    /// [`S3Server::start`] on a given port (one a client was told about before).
    pub fn start_on(root: &Path, port: u16) -> S3Server {
        std::fs::create_dir_all(root.join(S3_BUCKET)).unwrap();
        let mut s = S3Server {
            root: root.to_path_buf(),
            port,
            child: None,
        };
        s.restart();
        s
    }

    /// (Re)starts the server on the same port and directory.
    pub fn restart(&mut self) {
        self.stop();
        let bin = std::env::var("S3S_FS").unwrap_or_else(|_| "s3s-fs".into());
        let child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(&self.root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{bin}: {e} (scripts/deps.sh installs s3s-fs)"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server (as a crash would).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The object files under the bucket, relative, sorted.
    pub fn objects(&self) -> Vec<String> {
        files_under(&self.root.join(S3_BUCKET))
    }

    /// Environment for stowage: storage `offsite` at `endpoint_port` (this server, or a
    /// forwarder in front of it), the secret key read from a file.
    pub fn stowage_env(&self, endpoint_port: u16, secret_file: &Path) -> Vec<(String, String)> {
        std::fs::write(secret_file, format!("{S3_SECRET_KEY}\n")).unwrap();
        let o = "STOWAGE_STORAGE__OFFSITE__OPTIONS__";
        vec![
            (
                "STOWAGE_STORAGE__OFFSITE__URL".into(),
                format!("s3://{S3_BUCKET}/stowage"),
            ),
            (
                format!("{o}ENDPOINT"),
                format!("http://127.0.0.1:{endpoint_port}"),
            ),
            (format!("{o}ALLOW_HTTP"), "true".into()),
            (format!("{o}REGION"), "us-east-1".into()),
            (format!("{o}ACCESS_KEY_ID"), S3_ACCESS_KEY.into()),
            (
                format!("{o}SECRET_ACCESS_KEY_FILE"),
                secret_file.display().to_string(),
            ),
            ("STOWAGE_STORAGE__OFFSITE__MAX_RETRIES".into(), "2".into()),
            (
                "STOWAGE_STORAGE__OFFSITE__RETRY_TIMEOUT".into(),
                "10".into(),
            ),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP forwarder in front of a server that counts the bytes clients send, so a test can
/// act at a known point of an upload.
pub struct Forwarder {
    pub port: u16,
    pub sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Forwarder {
    pub fn start(to_port: u16) -> Forwarder {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = sent.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", to_port)) else {
                    continue; // the server is down: the client sees the connection close
                };
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut s_read, mut c_write) = (server, client);
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 64 * 1024];
                    while let Ok(n) = std::io::Read::read(&mut c_read, &mut buf) {
                        if n == 0 || std::io::Write::write_all(&mut s_write, &buf[..n]).is_err() {
                            break;
                        }
                        counter.fetch_add(n as u64, Ordering::SeqCst);
                    }
                    let _ = s_write.shutdown(std::net::Shutdown::Both);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_read, &mut c_write);
                    let _ = c_write.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        Forwarder { port, sent }
    }
}

/// A minimal HTTP/1.1 request to 127.0.0.1:`port`: (status code, body).
pub fn http(port: u16, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    http_with_authorization(port, method, path, auth.as_deref())
}

/// [`http`] with any `Authorization` header value (or none): (status code, body).
pub fn http_with_authorization(
    port: u16,
    method: &str,
    path: &str,
    authorization: Option<&str>,
) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    // Chunked bodies (axum's JSON) keep their chunk-size lines; callers search the text.
    (code, body)
}

/// Polls `f` every 100 ms until it returns `Some`, or panics with `what` after `secs`.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A local HTTP receiver that answers 200 and records (method, path, body) of each request:
/// the webhook and ping endpoint of the alert tests.
pub struct Receiver {
    pub port: u16,
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<Request>>>,
}

/// One request a [`Receiver`] got. Header names are lowercase.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Request {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Receiver {
    pub fn start() -> Receiver {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let (method, path) = (
                        parts.next().unwrap_or("").to_string(),
                        parts.next().unwrap_or("").to_string(),
                    );
                    let mut length = 0;
                    let mut headers = Vec::new();
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; length];
                    let _ = reader.read_exact(&mut body);
                    log.lock().unwrap().push(Request {
                        method,
                        path,
                        headers,
                        body: String::from_utf8_lossy(&body).into_owned(),
                    });
                    let mut conn = conn;
                    let _ = conn.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    );
                });
            }
        });
        Receiver { port, requests }
    }

    /// The requests so far, as (method, path, body).
    pub fn seen(&self) -> Vec<(String, String, String)> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| (r.method.clone(), r.path.clone(), r.body.clone()))
            .collect()
    }

    /// The requests so far, with their headers.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// A port that takes connections (the kernel's backlog) and never answers: a hung receiver.
pub struct Hanging {
    pub port: u16,
    _listener: std::net::TcpListener,
}

impl Hanging {
    pub fn start() -> Hanging {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        Hanging {
            port: listener.local_addr().unwrap().port(),
            _listener: listener,
        }
    }
}

/// A real SMTP server: aiosmtpd (Debian's python3-aiosmtpd) writing mail into a Maildir,
/// started by `tests/support/smtp_server.py`.
pub struct SmtpServer {
    pub port: u16,
    pub maildir: PathBuf,
    child: std::process::Child,
    log: PathBuf,
}

/// How an [`SmtpServer`] is secured and whether it wants a login.
#[derive(Default)]
pub struct SmtpOptions<'a> {
    /// `none` (default), `starttls` (required before MAIL) or `tls` (SMTPS).
    pub security: &'a str,
    /// Certificate and key PEM files, for `starttls` and `tls`.
    pub cert: Option<(&'a Path, &'a Path)>,
    /// The only login accepted; AUTH is then required.
    pub login: Option<(&'a str, &'a str)>,
}

impl SmtpServer {
    pub fn start(maildir: &Path) -> SmtpServer {
        Self::start_with(maildir, SmtpOptions::default())
    }

    pub fn start_with(maildir: &Path, opts: SmtpOptions) -> SmtpServer {
        let port = free_port();
        let log = maildir.with_extension("log");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_server.py");
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg("-W").arg("ignore").arg(script);
        cmd.args(["--port", &port.to_string()])
            .arg("--maildir")
            .arg(maildir);
        cmd.args([
            "--security",
            if opts.security.is_empty() {
                "none"
            } else {
                opts.security
            },
        ]);
        if let Some((cert, key)) = opts.cert {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        if let Some((login, password)) = opts.login {
            cmd.args(["--login", login, "--password", password]);
        }
        let child = cmd
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with aiosmtpd (scripts/deps.sh installs python3-aiosmtpd)");
        wait_for(20, "aiosmtpd to listen", || {
            std::fs::read_to_string(&log)
                .ok()
                .filter(|l| l.contains("listening"))
        });
        SmtpServer {
            port,
            maildir: maildir.to_path_buf(),
            child,
            log,
        }
    }

    /// What the server printed: `auth ok USER` / `auth refused USER` per login attempt.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The messages delivered so far, as text.
    pub fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return vec![];
        };
        entries
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
