//! Table tests of [`super`]: each case states what a user would expect.

use super::*;
use crate::discover::Env;

fn c(name: &str, image: &str, state: &str, labels: &[(&str, &str)], env: &[&str]) -> ContainerInfo {
    ContainerInfo {
        id: format!("{name}-id"),
        name: name.into(),
        image: image.into(),
        state: state.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        env: Env::from_list(&env.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
        mounts: Vec::new(),
    }
}

fn run(containers: &[ContainerInfo]) -> Vec<Entry> {
    plan_with(containers, false)
}

fn plan_with(containers: &[ContainerInfo], encryption: bool) -> Vec<Entry> {
    plan_full(containers, encryption, &Storages::default())
}

fn plan_full(containers: &[ContainerInfo], encryption: bool, storages: &Storages) -> Vec<Entry> {
    plan(
        containers,
        &Defaults {
            registry: &Registry::builtin().unwrap(),
            schedule: &Schedule::parse("0 3 * * *").unwrap(),
            drill: None,
            encryption,
            retention: &Policy::parse_label("daily=7").unwrap(),
            storages,
        },
    )
}

#[test]
fn storages_and_retention_by_label() {
    let dir = std::env::temp_dir().join(format!("stowage-plan-st-{}", std::process::id()));
    let config = |default: bool| crate::remote::config::StorageConfig {
        url: format!("file://{}", dir.display()),
        options: Default::default(),
        default,
        verify_readback: true,
        max_retries: 0,
        retry_timeout: 1,
    };
    let storages = Storages::from_config(
        &[
            ("main".to_string(), config(true)),
            ("usb".to_string(), config(false)),
        ]
        .into_iter()
        .collect(),
    )
    .unwrap();
    let on = ("stowage.enable", "true");
    let pg = |name: &str, extra: &[(&str, &str)]| {
        let mut labels = vec![on];
        labels.extend_from_slice(extra);
        c(name, "postgres:16", "running", &labels, &[])
    };
    let entries = plan_full(
        &[
            pg("a", &[]),
            pg("b", &[("stowage.storage", "usb, main")]),
            pg(
                "c",
                &[("stowage.storage", "none"), ("stowage.retention", "last=3")],
            ),
            pg("d", &[("stowage.storage", "tape")]),
            pg("e", &[("stowage.retention", "daily")]),
        ],
        false,
        &storages,
    );
    let target = |i: usize| match &entries[i] {
        Entry::Target(t) => t.clone(),
        Entry::Skipped(s) => panic!("{}: {}", s.container, s.reason),
    };
    assert_eq!(target(0).storages, ["main"], "only default storages");
    assert_eq!(target(0).retention.to_string(), "daily=7");
    assert_eq!(target(1).storages, ["usb", "main"]);
    assert!(target(2).storages.is_empty());
    assert_eq!(target(2).retention.keep_last, 3);
    assert!(skip_reason(&entries[3]).contains("\"tape\", which is not configured"));
    assert!(skip_reason(&entries[4]).contains("stowage.retention"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn encryption_by_default_when_keys_exist_and_by_label() {
    let on = ("stowage.enable", "true");
    let pg = |name: &str, extra: &[(&str, &str)]| {
        let mut labels = vec![on];
        labels.extend_from_slice(extra);
        c(name, "postgres:16", "running", &labels, &[])
    };
    let containers = [
        pg("plain", &[]),
        pg("yes", &[("stowage.encrypt", "true")]),
        pg("no", &[("stowage.encrypt", "false")]),
    ];
    let without = plan_with(&containers, false);
    assert!(matches!(&without[0], Entry::Target(t) if !t.encrypt));
    assert!(skip_reason(&without[1]).contains("no encryption key is configured"));
    let with = plan_with(&containers, true);
    let flags: Vec<bool> = with
        .iter()
        .map(|e| matches!(e, Entry::Target(t) if t.encrypt))
        .collect();
    assert_eq!(flags, [true, true, false]);
}

fn skip_reason(e: &Entry) -> &str {
    match e {
        Entry::Skipped(s) => &s.reason,
        Entry::Target(t) => panic!("{} was planned", t.name),
    }
}

#[test]
fn one_bad_container_never_stops_the_others() {
    let on = ("stowage.enable", "true");
    let entries = run(&[
        c(
            "a",
            "postgres:16",
            "running",
            &[on],
            &["POSTGRES_PASSWORD=x"],
        ),
        c("b", "nginx:1", "running", &[on], &[]),
        c(
            "c",
            "postgres:16",
            "running",
            &[on, ("stowage.schedule", "every day")],
            &[],
        ),
        c(
            "d",
            "postgres:16",
            "running",
            &[on, ("stowage.engine", "oracle")],
            &[],
        ),
        c(
            "e",
            "postgres:16",
            "running",
            &[("stowage.enable", "false")],
            &[],
        ),
        c(
            "f",
            "postgres:16",
            "running",
            &[on, ("stowage.database", "-x")],
            &[],
        ),
        c("g", "postgres:16", "running", &[on], &["POSTGRES_DB=x=y"]),
        c(
            "h",
            "postgres:16",
            "running",
            &[on, ("stowage.name", "a")],
            &[],
        ),
    ]);
    assert!(
        matches!(&entries[0], Entry::Target(t) if t.name == "a" && t.databases == Databases::Default)
    );
    assert!(skip_reason(&entries[1]).contains("set the label stowage.engine"));
    assert!(skip_reason(&entries[2]).contains("stowage.schedule"));
    assert!(skip_reason(&entries[3]).contains("known: postgres"));
    assert!(skip_reason(&entries[4]).contains("disabled"));
    assert!(skip_reason(&entries[5]).contains("option"));
    assert!(skip_reason(&entries[6]).contains("POSTGRES_DB"));
    assert!(skip_reason(&entries[7]).contains("already used by container a"));
}

#[test]
fn stopped_containers_are_skipped_without_hiding_label_mistakes() {
    let on = ("stowage.enable", "true");
    let entries = run(&[
        c("s", "postgres", "exited", &[on], &[]),
        c(
            "t",
            "postgres",
            "exited",
            &[on, ("stowage.database", "-x")],
            &[],
        ),
    ]);
    let Entry::Skipped(s) = &entries[0] else {
        panic!()
    };
    assert!(
        s.reason.contains("exited (not running)") && !s.is_error,
        "{s:?}"
    );
    let Entry::Skipped(t) = &entries[1] else {
        panic!()
    };
    assert!(t.reason.contains("option") && t.is_error, "{t:?}");
}

#[test]
fn databases_and_warnings() {
    let on = ("stowage.enable", "yes");
    let entries = run(&[
        c(
            "all",
            "postgres",
            "running",
            &[on, ("stowage.database", "all")],
            &[],
        ),
        c(
            "two",
            "postgres",
            "running",
            &[
                on,
                ("stowage.database", "a, b"),
                ("stowage.pasword", "x"),
                ("stowage.password", "y"),
            ],
            &[],
        ),
    ]);
    let Entry::Target(all) = &entries[0] else {
        panic!()
    };
    assert_eq!(all.databases, Databases::All);
    let Entry::Target(two) = &entries[1] else {
        panic!()
    };
    assert_eq!(
        two.databases,
        Databases::Named(vec!["a".into(), "b".into()])
    );
    assert!(
        two.warnings.iter().any(|w| w.contains("stowage.pasword")
            && w.contains("did you mean stowage.password?")
            && w.matches("database").count() == 1),
        "{:?}",
        two.warnings
    );
    assert!(
        two.warnings
            .iter()
            .any(|w| w.contains("puts a secret in a label"))
    );
    assert!(!format!("{two:?}").contains("\"y\""));
}

#[test]
fn sqlite_needs_its_file_named_and_mongodb_defaults_to_everything() {
    let on = ("stowage.enable", "true");
    let sqlite = ("stowage.engine", "sqlite");
    let entries = run(&[
        c("app", "myorg/app:1", "running", &[on, sqlite], &[]),
        c(
            "app2",
            "myorg/app:1",
            "running",
            &[on, sqlite, ("stowage.database", "/data/a.db,/data/b.db")],
            &[],
        ),
        c("mongo", "mongo:7", "running", &[on], &["MONGO_MAJOR=7.0"]),
    ]);
    assert!(
        skip_reason(&entries[0]).contains("set label stowage.database"),
        "{entries:?}"
    );
    let Entry::Target(two) = &entries[1] else {
        panic!("{entries:?}")
    };
    assert_eq!(
        two.databases,
        Databases::Named(vec!["/data/a.db".into(), "/data/b.db".into()])
    );
    let Entry::Target(mongo) = &entries[2] else {
        panic!("{entries:?}")
    };
    assert_eq!(mongo.engine.name(), "mongodb");
    assert_eq!(mongo.databases, Databases::All);
}

#[test]
fn long_label_values_are_not_echoed_whole() {
    let on = ("stowage.enable", "true");
    let long = format!("-{}", "x".repeat(100_000));
    let retention = format!("within={}", "9".repeat(100_000));
    let entries = run(&[
        c(
            "a",
            "postgres",
            "running",
            &[on, ("stowage.database", &long)],
            &[],
        ),
        c(
            "b",
            "postgres",
            "running",
            &[on, ("stowage.retention", &retention)],
            &[],
        ),
        c(
            "c",
            "postgres",
            "running",
            &[on, ("stowage.schedule", &long)],
            &[],
        ),
    ]);
    for e in &entries {
        let reason = skip_reason(e);
        assert!(
            reason.len() < 600,
            "{} bytes: {}",
            reason.len(),
            &reason[..200]
        );
    }
}

#[test]
fn volumes_make_a_files_target_beside_or_instead_of_the_database() {
    let with_mounts = |mut c: ContainerInfo| {
        c.mounts = vec![crate::discover::Mount {
            kind: "volume".into(),
            name: "pgdata".into(),
            destination: "/var/lib/postgresql/data".into(),
        }];
        c
    };
    let on = ("stowage.enable", "true");
    let entries = run(&[
        with_mounts(c(
            "db",
            "postgres:16",
            "running",
            &[on, ("stowage.volumes", "all"), ("stowage.user", "app")],
            &["POSTGRES_PASSWORD=x"],
        )),
        with_mounts(c(
            "app",
            "nextcloud",
            "running",
            &[on, ("stowage.volumes", "pgdata")],
            &[],
        )),
        c(
            "e",
            "alpine",
            "running",
            &[on, ("stowage.engine", "files")],
            &[],
        ),
        with_mounts(c(
            "f",
            "postgres:16",
            "running",
            &[on, ("stowage.paths", "/etc")],
            &[],
        )),
    ]);
    let target = |i: usize| match &entries[i] {
        Entry::Target(t) => t,
        Entry::Skipped(s) => panic!("entry {i} skipped: {}", s.reason),
    };
    // The database target keeps its name; the files target is named after it.
    assert_eq!(target(0).name, "db");
    assert_eq!(target(0).engine.name(), "postgres");
    assert_eq!(target(1).name, "db-files");
    assert_eq!(target(1).engine.name(), FILES_ENGINE);
    assert_eq!(
        target(1).databases,
        Databases::Files(vec![FileSet {
            name: "pgdata".into(),
            path: "/var/lib/postgresql/data".into()
        }])
    );
    assert!(
        target(1).warnings.is_empty(),
        "the database target reports the labels once: {:?}",
        target(1).warnings
    );
    // An image that is no database: a files target only, under the container's name.
    assert_eq!(target(2).name, "app");
    assert_eq!(target(2).engine.name(), FILES_ENGINE);
    assert!(skip_reason(&entries[3]).contains("stowage.volumes or stowage.paths"));
    // A bad path skips the files target, not the database one.
    assert_eq!(target(4).name, "f");
    assert!(skip_reason(&entries[5]).contains("not on a volume"));
    assert_eq!(entries.len(), 6);
}
