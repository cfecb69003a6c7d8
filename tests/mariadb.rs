//! MariaDB end to end: an image built from Debian's packages whose entrypoint honours the
//! official image's variables; data with routines, a trigger and unicode; backup, then
//! `stowage restore` into a fresh container; data, routines and triggers equal.

mod common;

use std::time::{Duration, Instant};

use common::*;

const IMAGE: &str = "stowage-test/mariadb:test";
const PASSWORD: &str = "r00t 'pw\" $(touch /tmp/x); `id`";

struct Maria {
    c: Container,
}

impl Maria {
    fn start(prefix: &str, labels: Vec<(&str, String)>, db: &str) -> Maria {
        require_image(IMAGE);
        let name = unique(prefix);
        let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.clone()];
        for (k, v) in labels {
            args.extend(["--label".into(), format!("{k}={v}")]);
        }
        args.extend(["-e".into(), format!("MARIADB_ROOT_PASSWORD={PASSWORD}")]);
        args.extend(["-e".into(), format!("MARIADB_DATABASE={db}")]);
        args.push(IMAGE.into());
        docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let m = Maria {
            c: Container { name },
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let logs = docker_output(&["logs", &m.c.name]);
            let text = String::from_utf8_lossy(&logs.stdout).into_owned()
                + &String::from_utf8_lossy(&logs.stderr);
            if text.contains("Ready for start up")
                && m.sql_output("mysql", "SELECT 1").status.success()
            {
                return m;
            }
            assert!(Instant::now() < deadline, "mariadb did not start:\n{text}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn sql_output(&self, db: &str, sql: &str) -> std::process::Output {
        let pw = format!("MYSQL_PWD={PASSWORD}");
        docker_output(&[
            "exec",
            "-e",
            &pw,
            &self.c.name,
            "mariadb",
            "-uroot",
            "--default-character-set=utf8mb4",
            "--batch",
            "--skip-column-names",
            db,
            "-e",
            sql,
        ])
    }

    fn sql(&self, db: &str, sql: &str) -> String {
        let out = self.sql_output(db, sql);
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Everything the round trip must keep: rows, routines, triggers.
    fn snapshot(&self, db: &str) -> Vec<String> {
        vec![
            self.sql(db, "SELECT id, name, price, HEX(data) FROM items ORDER BY id"),
            self.sql(db, "SELECT id, item_id, note FROM audit ORDER BY id"),
            self.sql(db, &format!("SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{db}' ORDER BY 2")),
            self.sql(db, &format!("SELECT TRIGGER_NAME, EVENT_MANIPULATION FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{db}' ORDER BY 1")),
        ]
    }
}

#[test]
fn mariadb_round_trip_with_routines_triggers_and_unicode() {
    let instance = unique("maria");
    let dir = Scratch::new("maria");
    let src = Maria::start("maria-src", target_labels(&instance), "app");
    src.sql(
        "app",
        "CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) CHARACTER SET utf8mb4, price DECIMAL(10,2), data BLOB) ENGINE=InnoDB;
         CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, item_id INT, note VARCHAR(200) CHARACTER SET utf8mb4) ENGINE=InnoDB;
         CREATE TRIGGER items_ai AFTER INSERT ON items FOR EACH ROW INSERT INTO audit (item_id, note) VALUES (NEW.id, CONCAT('added ', NEW.name));
         CREATE FUNCTION double_price(p DECIMAL(10,2)) RETURNS DECIMAL(10,2) DETERMINISTIC RETURN p * 2;
         CREATE PROCEDURE count_items(OUT n INT) SELECT COUNT(*) INTO n FROM items;
         INSERT INTO items (name, price, data) VALUES ('Grüße ✓ 日本語 🚀', 9.99, 0x00FF10DEADBEEF), ('plain', 1.50, NULL), ('quote '' and \\\\ backslash', 0.01, '');",
    );
    let before = src.snapshot("app");
    assert!(
        before[1].contains("added Grüße"),
        "the trigger ran: {before:?}"
    );

    let (code, plan, _) = run_stowage(dir.path(), &instance, &["plan"]);
    assert_eq!(code, 0, "{plan}");
    assert!(
        plan.contains("engine:    mysql") && plan.contains("app (env MARIADB_DATABASE)"),
        "{plan}"
    );
    assert!(
        plan.contains("the first of mariadb-dump, mysqldump found in the container"),
        "{plan}"
    );
    assert!(!plan.contains("r00t"), "{plan}");

    let (code, stdout, stderr) = run_stowage(dir.path(), &instance, &["backup"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("r00t"));
    let artifact = stdout.trim().to_string();
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{artifact}.json")).unwrap())
            .unwrap();
    assert!(
        m["dump_tool_version"].as_str().unwrap().contains("MariaDB"),
        "{m}"
    );

    let dst = Maria::start("maria-dst", vec![], "app");
    let (code, _, stderr) = run_stowage(
        dir.path(),
        &instance,
        &["restore", &artifact, "--to", &dst.c.name],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(dst.snapshot("app"), before);
    // The routines and the trigger work in the restored database.
    assert_eq!(dst.sql("app", "SELECT double_price(2.25)").trim(), "4.50");
    dst.sql(
        "app",
        "INSERT INTO items (name, price) VALUES ('after restore', 1)",
    );
    assert!(
        dst.sql("app", "SELECT note FROM audit ORDER BY id DESC LIMIT 1")
            .contains("added after restore")
    );
    assert!(
        docker(&["exec", &src.c.name, "ls", "/tmp"])
            .lines()
            .all(|l| l != "x"),
        "no shell ran the password"
    );
}
