//! One conformance scenario, generic over engines, run against every engine that can run on
//! this machine (PostgreSQL, MariaDB and SQLite; no MongoDB server can be installed here). What a user
//! relies on, for any engine: the plan names it, the backup yields one artifact that lists and
//! verifies, `stowage restore` into a fresh container gives back equal data, and a tampered
//! artifact is refused.

mod common;

use common::*;

/// A database container under test.
trait Db: Sized {
    /// The engine name stowage should choose.
    const ENGINE: &'static str;
    /// A labelled container of `instance`.
    fn start_target(instance: &str) -> Self;
    /// An unlabelled container with an empty database of the same name.
    fn start_fresh() -> Self;
    fn container(&self) -> &str;
    fn seed(&self);
    /// Everything that must survive the round trip.
    fn snapshot(&self) -> Vec<String>;
}

impl Db for Pg {
    const ENGINE: &'static str = "postgres";
    fn start_target(instance: &str) -> Self {
        Pg::start_target("conf-pg", instance)
    }
    fn start_fresh() -> Self {
        Pg::start_target("conf-pg-fresh", &unique("none"))
    }
    fn container(&self) -> &str {
        &self.c.name
    }
    fn seed(&self) {
        Pg::seed(self, 1)
    }
    fn snapshot(&self) -> Vec<String> {
        self.table_checksums()
            .into_iter()
            .map(|(t, s)| format!("{t} {s}"))
            .collect()
    }
}

impl Db for Maria {
    const ENGINE: &'static str = "mysql";
    fn start_target(instance: &str) -> Self {
        Maria::start("conf-maria", target_labels(instance), "app")
    }
    fn start_fresh() -> Self {
        Maria::start("conf-maria-fresh", vec![], "app")
    }
    fn container(&self) -> &str {
        &self.c.name
    }
    fn seed(&self) {
        Maria::seed(self, "app")
    }
    fn snapshot(&self) -> Vec<String> {
        Maria::snapshot(self, "app")
    }
}

impl Db for SqliteApp {
    const ENGINE: &'static str = "sqlite";
    fn start_target(instance: &str) -> Self {
        SqliteApp::start(
            SQLITE_APP_CLI,
            "conf-sqlite",
            Some(instance),
            &["sleep", "600"],
        )
    }
    fn start_fresh() -> Self {
        SqliteApp::start(SQLITE_APP_CLI, "conf-sqlite-fresh", None, &["sleep", "600"])
    }
    fn container(&self) -> &str {
        &self.c.name
    }
    fn seed(&self) {
        self.app(&["seed", "/data/app.db", "wal", "2000"]);
    }
    fn snapshot(&self) -> Vec<String> {
        vec![self.app(&["summary", "/data/app.db"])]
    }
}

fn conformance<D: Db>() {
    let instance = unique(&format!("conf-{}", D::ENGINE));
    let dir = Scratch::new("conf");
    let src = D::start_target(&instance);
    src.seed();
    let before = src.snapshot();
    assert!(!before.is_empty());

    let (code, plan, _) = run_stowage(dir.path(), &instance, &["plan"]);
    assert_eq!(code, 0, "{plan}");
    assert!(
        plan.contains(&format!("engine:    {} ", D::ENGINE)) && plan.contains(src.container()),
        "{plan}"
    );

    let (code, stdout, stderr) = run_stowage(dir.path(), &instance, &["backup"]);
    assert_eq!(code, 0, "{stderr}");
    let found = artifacts(dir.path());
    assert_eq!(found.len(), 1, "{found:?}");
    let artifact = stdout.trim().to_string();
    assert!(artifact.ends_with(&found[0]));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{artifact}.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["engine"], D::ENGINE);

    let (code, listing, _) = run_stowage(dir.path(), &instance, &["list"]);
    assert!(code == 0 && listing.contains(" ok "), "{listing}");
    let (code, verified, _) = run_stowage(dir.path(), &instance, &["verify"]);
    assert!(
        code == 0 && verified.contains("1 verified, 0 failed"),
        "{verified}"
    );

    let dst = D::start_fresh();
    let (code, _, stderr) = run_stowage(
        dir.path(),
        &instance,
        &["restore", &artifact, "--to", dst.container()],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(dst.snapshot(), before);

    let mut bytes = std::fs::read(&artifact).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x80;
    std::fs::write(&artifact, &bytes).unwrap();
    let fresh = D::start_fresh();
    let (code, _, stderr) = run_stowage(
        dir.path(),
        &instance,
        &["restore", &artifact, "--to", fresh.container()],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("Refusing to restore it"), "{stderr}");
    let (code, _, _) = run_stowage(dir.path(), &instance, &["verify"]);
    assert_eq!(code, 1);
}

#[test]
fn postgres_conforms() {
    conformance::<Pg>();
}

#[test]
fn mariadb_conforms() {
    conformance::<Maria>();
}

#[test]
fn sqlite_conforms() {
    conformance::<SqliteApp>();
}
