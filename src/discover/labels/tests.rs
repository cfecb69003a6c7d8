//! Label parsing, as a user writes labels.

use super::*;

/// Labels from pairs (also for the other discovery tests).
pub(crate) fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn parses_core_and_vars() {
    let l = Labels::parse(&labels(&[
        ("stowage.enable", "TRUE"),
        ("stowage.engine", "Postgres"),
        ("stowage.database", "app, audit"),
        ("stowage.user", "bob"),
        ("stowage.password_file", "/run/secrets/pg"),
        ("com.docker.compose.project", "x"),
    ]))
    .unwrap();
    assert!(l.enable);
    assert_eq!(l.engine.as_deref(), Some("postgres"));
    assert_eq!(l.database.as_deref(), Some("app, audit"));
    assert_eq!(l.vars.get("user").map(|v| v.value.as_str()), Some("bob"));
    assert_eq!(l.vars.len(), 2);
}

#[test]
fn baktainer_labels_map_and_stowage_wins() {
    let l = Labels::parse(&labels(&[
        ("baktainer.backup", "true"),
        ("baktainer.db.engine", "postgresql"),
        ("baktainer.db.name", "app"),
        ("baktainer.db.user", "bob"),
        ("baktainer.db.password", "pw"),
        ("baktainer.name", "My App DB"),
        ("baktainer.compress", "false"),
    ]))
    .unwrap();
    assert!(l.enable);
    assert_eq!(
        l.engine.as_deref(),
        Some("postgresql"),
        "the registry resolves aliases"
    );
    assert_eq!(l.database.as_deref(), Some("app"));
    assert_eq!(l.name.as_deref(), Some("My_App_DB"));
    assert_eq!(l.vars["user"].label, "baktainer.db.user");
    assert_eq!(l.vars["password"].value, "pw");
    assert_eq!(l.notes.len(), 1);

    let l = Labels::parse(&labels(&[
        ("baktainer.backup", "true"),
        ("baktainer.db.all", "true"),
        ("baktainer.db.name", "app"),
        ("baktainer.db.user", "bob"),
        ("stowage.user", "alice"),
        ("stowage.enable", "false"),
    ]))
    .unwrap();
    assert!(!l.enable, "stowage.enable wins");
    assert_eq!(
        l.database.as_deref(),
        Some("all"),
        "db.all wins over db.name"
    );
    assert_eq!(l.vars["user"].value, "alice");
    assert_eq!(l.vars["user"].label, "stowage.user");
    let err = Labels::parse(&labels(&[("baktainer.backup", "perhaps")])).unwrap_err();
    assert_eq!(err.label, "baktainer.backup");
}

#[test]
fn rejects_dangerous_values() {
    for (k, v) in [
        ("stowage.enable", "maybe"),
        ("stowage.name", "../../etc"),
        ("stowage.name", ".hidden"),
        ("stowage.name", "a/b"),
        ("stowage.database", "-h evil"),
        ("stowage.database", "host=evil dbname=x"),
        ("stowage.database", "postgresql://evil/db"),
        ("stowage.database", "ok,--all"),
    ] {
        let err = Labels::parse(&labels(&[(k, v)])).unwrap_err();
        assert_eq!(err.label, k, "{v}");
    }
}

#[test]
fn hooks_are_json_argv_arrays_never_shell_strings() {
    let l = Labels::parse(&labels(&[
        (
            "stowage.pre",
            r#"["occ", "maintenance:mode", "--on; rm -rf /"]"#,
        ),
        ("stowage.post", r#"["redis-cli", "BGSAVE"]"#),
        ("stowage.hook_timeout", "60"),
    ]))
    .unwrap();
    assert_eq!(
        l.pre.unwrap(),
        ["occ", "maintenance:mode", "--on; rm -rf /"]
    );
    assert_eq!(l.post.unwrap(), ["redis-cli", "BGSAVE"]);
    assert_eq!(l.hook_timeout, Some(60));
    assert!(l.vars.is_empty());
    for (k, v) in [
        ("stowage.pre", "redis-cli BGSAVE"),
        ("stowage.pre", "[]"),
        ("stowage.post", r#"["", "x"]"#),
        ("stowage.post", r#"["a", 1]"#),
        ("stowage.hook_timeout", "0"),
        ("stowage.hook_timeout", "5m"),
    ] {
        let err = Labels::parse(&labels(&[(k, v)])).unwrap_err();
        assert_eq!(err.label, k, "{v}");
    }
}

#[test]
fn file_safe_never_escapes() {
    assert_eq!(file_safe("../../etc/passwd"), "_.._.._etc_passwd");
    assert_eq!(file_safe(""), "_");
    assert_eq!(file_safe("db ü"), "db__");
    assert_eq!(file_safe("app-db_1.x"), "app-db_1.x");
    assert!(!file_safe(&"x".repeat(500)).contains('/'));
}
