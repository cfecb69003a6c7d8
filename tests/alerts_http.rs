//! `stowage run` as an operator sees it, with real receivers: a failing backup sends a JSON
//! webhook, a Slack-shaped webhook, an email through a real SMTP server (aiosmtpd) and a
//! `/fail` ping; the fix is announced as a recovery; a target without a recent success goes
//! stale. A webhook receiver that is down is counted and delays nothing. The same run serves `/healthz`, `/readyz`, a `/metrics` scrape that `promtool check
//! metrics` accepts, and the token-guarded JSON API that triggers the backups.

mod common;

use std::process::{Command, Stdio};

use common::*;

#[test]
fn failure_recovery_and_stale_alerts_metrics_and_api() {
    let instance = unique("alerts");
    let dir = Scratch::new("alerts");
    let mail = Scratch::new("alerts-mail");
    let smtp = SmtpServer::start(&mail.path().join("maildir"));
    let receiver = Receiver::start();
    let http_port = free_port();
    let token = "t0ken-for-tests";
    let config = dir.path().join("stowage.toml");
    let hook = format!("http://127.0.0.1:{}", receiver.port);
    std::fs::write(
        &config,
        format!(
            r#"backup_dir = "{backup}"
[http]
listen = "127.0.0.1:{http_port}"
token = "{token}"
[storage.disk]
url = "file://{disk}"
[alerts]
stale_after = 3
webhooks = [
  {{ url = "{hook}/hook" }},
  {{ url = "{hook}/slack", format = "slack" }},
  {{ url = "http://127.0.0.1:{closed}/nobody-listens" }},
]
[alerts.email]
host = "127.0.0.1"
port = {smtp}
security = "none"
from = "stowage@example.test"
to = ["ops@example.test"]
"#,
            backup = dir.path().join("backups").display(),
            disk = dir.path().join("disk").display(),
            closed = free_port(),
            smtp = smtp.port,
        ),
    )
    .unwrap();
    // A database that does not exist yet: the first backup fails, the second succeeds. The
    // schedule is once a year, so only the API starts backups here.
    let mut labels = target_labels(&instance);
    labels.extend([
        ("stowage.name", "flaky".to_string()),
        ("stowage.database", "later".to_string()),
        ("stowage.schedule", "0 0 1 1 *".to_string()),
        ("stowage.ping_url", format!("{hook}/ping")),
    ]);
    let pg = Pg::start(
        "alerts",
        PgOptions {
            labels,
            env: vec![("POSTGRES_PASSWORD", "pw".into())],
            ..Default::default()
        },
    );
    let _daemon = Daemon(
        stowage(dir.path(), &instance)
            .env("STOWAGE_CONFIG", &config)
            .env_remove("STOWAGE_BACKUP_DIR")
            .env("STOWAGE_DAEMON__DISCOVERY_INTERVAL", "1")
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let get = |path: &str, token: Option<&str>| http(http_port, "GET", path, token);
    let post = |path: &str, token: Option<&str>| http(http_port, "POST", path, token);

    wait_for(30, "/healthz", || {
        (get("/healthz", None).0 == 200).then_some(())
    });
    wait_for(30, "/readyz", || {
        (get("/readyz", None).0 == 200).then_some(())
    });
    wait_for(30, "the target to be planned", || {
        let (code, body) = get("/api/targets", Some(token));
        (code == 200 && body.contains("\"flaky\"")).then_some(())
    });
    // The API needs the token.
    assert_eq!(get("/api/targets", None).0, 401);
    assert_eq!(get("/api/targets", Some("wrong")).0, 401);
    assert_eq!(post("/api/targets/nope/backup", Some(token)).0, 404);

    // 1. Failure.
    assert_eq!(post("/api/targets/flaky/backup", Some(token)).0, 202);
    let failure = wait_for(60, "the failure webhook", || {
        receiver
            .seen()
            .into_iter()
            .find(|(_, path, body)| path == "/hook" && body.contains("\"event\":\"failure\""))
    });
    let event: serde_json::Value = serde_json::from_str(&failure.2).unwrap();
    assert_eq!(event["target"], "flaky");
    assert_eq!(event["container"], pg.c.name.as_str());
    assert_eq!(event["engine"], "postgres");
    assert_eq!(event["reason"], "dump_failed");
    assert!(
        event["message"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{event}"
    );
    wait_for(30, "the Slack-shaped message", || {
        receiver.seen().into_iter().find(|(_, path, body)| {
            path == "/slack" && body.starts_with("{\"text\":") && body.contains("FAILED")
        })
    });
    let pings = || -> Vec<String> {
        receiver
            .seen()
            .into_iter()
            .filter(|(_, p, _)| p.starts_with("/ping"))
            .map(|(_, p, _)| p)
            .collect()
    };
    wait_for(30, "the /start and /fail pings", || {
        let p = pings();
        (p == ["/ping/start", "/ping/fail"]).then_some(())
    });
    let mail_text = wait_for(30, "the failure email", || {
        smtp.messages()
            .into_iter()
            .find(|m| m.contains("Subject: stowage: backup of flaky FAILED"))
    });
    assert!(mail_text.contains("ops@example.test") && mail_text.contains("dump_failed"));

    // 2. Stale: no success within 3 s of start.
    wait_for(30, "the stale alert", || {
        receiver
            .seen()
            .into_iter()
            .find(|(_, path, body)| path == "/hook" && body.contains("\"event\":\"stale\""))
    });

    // 3. Recovery.
    pg.psql("CREATE DATABASE later");
    pg.psql_in(
        "later",
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('recovered')",
    );
    wait_for(30, "the target to be idle", || {
        (post("/api/targets/flaky/backup", Some(token)).0 == 202).then_some(())
    });
    wait_for(60, "the recovery webhook", || {
        receiver
            .seen()
            .into_iter()
            .find(|(_, path, body)| path == "/hook" && body.contains("\"event\":\"recovery\""))
    });
    wait_for(30, "the success ping", || {
        (pings().last().map(String::as_str) == Some("/ping")).then_some(())
    });
    wait_for(30, "the recovery email", || {
        smtp.messages()
            .into_iter()
            .find(|m| m.contains("Subject: stowage: backup of flaky recovered"))
    });

    // Metrics: what happened, in a scrape that promtool accepts. The receiver that is down
    // failed all three alerts (counted), and the others still got everything.
    wait_for(30, "three failed deliveries to the dead webhook", || {
        get("/metrics", None)
            .1
            .contains("stowage_alert_delivery_failures_total{channel=\"webhook\"} 3")
            .then_some(())
    });
    let (code, metrics) = get("/metrics", None);
    assert_eq!(code, 200);
    for expected in [
        "stowage_backup_last_result{target=\"flaky\"} 1",
        "stowage_backup_failures_total{reason=\"dump_failed\",target=\"flaky\"} 1",
        "stowage_backup_duration_seconds_count{target=\"flaky\"} 1",
        "stowage_docker_up 1",
        "stowage_alert_delivery_failures_total{channel=\"email\"} 0",
        "stowage_targets 1",
        "stowage_uploads_total{result=\"ok\",storage=\"disk\"} 1",
        "stowage_uploads_total{result=\"failed\",storage=\"disk\"} 0",
        "stowage_build_info{version=",
    ] {
        assert!(metrics.contains(expected), "{expected} in:\n{metrics}");
    }
    assert!(
        !metrics.contains("does not exist"),
        "no error text in labels"
    );
    let scrape = dir.path().join("scrape.txt");
    std::fs::write(&scrape, &metrics).unwrap();
    let check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&scrape).unwrap())
        .output()
        .expect("promtool (scripts/deps.sh installs prometheus)");
    assert!(
        check.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    // The shipped examples use only metrics that exist, and the rules are valid.
    let root = env!("CARGO_MANIFEST_DIR");
    let rules = format!("{root}/examples/prometheus/stowage-alerts.yml");
    let check = Command::new("promtool")
        .args(["check", "rules", &rules])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let dashboard =
        std::fs::read_to_string(format!("{root}/examples/grafana/stowage-dashboard.json")).unwrap();
    let _: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let examples = std::fs::read_to_string(&rules).unwrap() + &dashboard;
    let mut used: Vec<&str> = examples
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("stowage_"))
        .map(|w| w.trim_end_matches("_bucket"))
        .collect();
    used.sort();
    used.dedup();
    assert!(used.len() >= 8, "{used:?}");
    // Drill and shrink series appear once a drill ran or a backup shrank (tests/drill.rs
    // scrapes them); here they must at least be registered under that name.
    let registered = std::fs::read_to_string(format!("{root}/src/daemon/metrics.rs")).unwrap();
    for name in used {
        let later = (name.starts_with("stowage_drill_")
            || name == "stowage_suspicious_shrink_total")
            && registered.contains(&format!("\"{name}\""));
        assert!(
            metrics.contains(&format!("# TYPE {name} ")) || later,
            "{name} is not exported"
        );
    }
    let (code, artifacts) = get("/api/artifacts?target=flaky", Some(token));
    assert!(
        code == 200 && artifacts.contains("_flaky_later.sql.zst"),
        "{artifacts}"
    );
}
