//! A container labelled for Baktainer, with no stowage.* label at all, is backed up.

mod common;

use common::*;

#[test]
fn baktainer_labelled_container_is_backed_up() {
    let dir = Scratch::new("bak");
    let pg = Pg::start(
        "bak",
        PgOptions {
            labels: vec![
                ("baktainer.backup", "true".into()),
                ("baktainer.db.engine", "postgres".into()),
                ("baktainer.db.name", "shop".into()),
                ("baktainer.db.user", "shopper".into()),
                ("baktainer.db.password", "bak-pw".into()),
                ("baktainer.name", "Shop DB".into()),
                ("baktainer.compress", "true".into()),
            ],
            env: vec![
                ("POSTGRES_USER", "shopper".into()),
                ("POSTGRES_PASSWORD", "bak-pw".into()),
                ("POSTGRES_DB", "shop".into()),
                // The password must really arrive: local connections need it.
                ("POSTGRES_INITDB_ARGS", "--auth-local=scram-sha-256".into()),
            ],
            ..Default::default()
        },
    );
    pg.psql("CREATE TABLE orders (id int); INSERT INTO orders VALUES (42)");
    // No stowage.instance either (it is a stowage.* label): name the target instead, so other
    // labelled containers on this engine are left alone.
    let run = |args: &[&str]| {
        outcome(
            stowage(dir.path(), "unused")
                .env_remove("STOWAGE_INSTANCE")
                .args(args),
        )
    };
    let (code, stdout, stderr) = run(&["backup", "Shop_DB"]);
    assert_eq!(code, 0, "{stderr}");
    let artifact = stdout.trim();
    assert!(
        artifact.contains("/Shop_DB/") && artifact.ends_with("_Shop_DB_shop.sql.zst"),
        "{artifact}"
    );
    let sql = String::from_utf8(zstd::decode_all(&std::fs::read(artifact).unwrap()[..]).unwrap())
        .unwrap();
    assert!(
        sql.contains("COPY public.orders") && sql.contains("42"),
        "the labelled database was dumped"
    );

    let (_, plan, _) = run(&["plan"]);
    assert!(
        plan.contains(&format!("container: {}", pg.c.name)),
        "{plan}"
    );
    assert!(plan.contains("shopper (label baktainer.db.user)"), "{plan}");
    assert!(
        plan.contains("baktainer.db.password puts a secret in a label"),
        "{plan}"
    );
    assert!(!plan.contains("bak-pw"), "{plan}");
}
