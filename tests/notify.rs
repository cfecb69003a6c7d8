//! Notification URLs as an operator uses them, from a running daemon:
//! - **Matrix for real**: a Synapse homeserver (PyPI) with a bot user and a room; the failure
//!   arrives in the room (read back through the client API), the room given by its alias.
//! - **MQTT for real**: Mosquitto (Debian) with a password; a subscriber gets the event JSON.
//! - ntfy, Gotify, Telegram and Pushover have no server installable here: local receivers
//!   check the request each service's documentation specifies (method, path, auth header,
//!   body fields).
//! - Routing: a `success`-only channel gets only the success; a `targets = "labelled"` channel
//!   only because the target's `stowage.notify` label names it; a URL in the label works too.
//! - A receiver that hangs and one that refuses delay nothing: the others have delivered
//!   before the hung one times out, the next backup runs; both are counted as failures.
//! - Secrets (`url_file`, `STOWAGE_…__URL_FILE`, tokens in URLs) never reach the log, `plan`
//!   or `alert-test`'s output; `alert-test` reaches every channel, label URLs included.

mod common;
mod notify_support;

use std::process::Stdio;

use common::*;
use notify_support::{Mosquitto, Synapse};

/// Every secret in this test's URLs holds this, so one search finds any leak.
const MARK: &str = "S3CRET";

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn metric(port: u16, channel: &str) -> u64 {
    let (_, body) = http(port, "GET", "/metrics", None);
    let needle = format!("stowage_alert_delivery_failures_total{{channel=\"{channel}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[test]
fn notification_urls_reach_real_matrix_and_mqtt_and_each_service_as_documented() {
    let instance = unique("notify");
    let dir = Scratch::new("notify");
    let synapse = Synapse::start();
    let mut mqtt = Mosquitto::start("stowage", &format!("mqtt-{MARK}"));
    mqtt.subscribe("stowage", &format!("mqtt-{MARK}"), "home/#");
    let (ntfy, gotify, tgram, pover, successes) = (
        Receiver::start(),
        Receiver::start(),
        Receiver::start(),
        Receiver::start(),
        Receiver::start(),
    );
    let hung = Hanging::start();
    let http_port = free_port();
    let token = "api-token-for-tests";
    // Secrets from files: the Matrix URL through url_file, Telegram's through the environment.
    let matrix_file = dir.path().join("matrix-url");
    std::fs::write(
        &matrix_file,
        format!(
            "matrix://:{}@127.0.0.1:{}/#backups:localhost\n",
            synapse.token, synapse.port
        ),
    )
    .unwrap();
    let tg_file = dir.path().join("tg-url");
    std::fs::write(
        &tg_file,
        format!(
            "tgram://123456:Tg{MARK}x/4242?api=http://127.0.0.1:{}",
            tgram.port
        ),
    )
    .unwrap();
    let config = dir.path().join("stowage.toml");
    std::fs::write(
        &config,
        format!(
            r#"backup_dir = "{backup}"
[http]
listen = "127.0.0.1:{http_port}"
token = "{token}"
[alerts.notify.phone]
url = "ntfy://alice:ntfy-{MARK}@127.0.0.1:{ntfy}/backups"
[alerts.notify.successes]
url = "ntfy://tk_{MARK}@127.0.0.1:{successes}/done"
events = ["success"]
[alerts.notify.gotify]
url = "gotify://127.0.0.1:{gotify}/sub/Gotify{MARK}"
[alerts.notify.hung]
url = "gotify://127.0.0.1:{hung}/Hung{MARK}"
[alerts.notify.refused]
url = "ntfy://127.0.0.1:{closed}/nobody?events=failure"
[alerts.notify.room]
url_file = "{matrix_file}"
[alerts.notify.home]
url = "mqtt://stowage:mqtt-{MARK}@127.0.0.1:{mqtt}/home/backups"
[alerts.notify.tg]
targets = "labelled"
"#,
            backup = dir.path().join("backups").display(),
            ntfy = ntfy.port,
            successes = successes.port,
            gotify = gotify.port,
            hung = hung.port,
            closed = free_port(),
            matrix_file = matrix_file.display(),
            mqtt = mqtt.port,
        ),
    )
    .unwrap();
    let env = [
        ("STOWAGE_CONFIG", config.display().to_string()),
        (
            "STOWAGE_ALERTS__NOTIFY__TG__URL_FILE",
            tg_file.display().to_string(),
        ),
    ];
    // The database does not exist yet: the first backup fails, the second succeeds.
    let mut labels = target_labels(&instance);
    let pover_url = format!(
        "pover://PoverUser{MARK}@PoverApp{MARK}/phone?api=http://127.0.0.1:{}",
        pover.port
    );
    labels.extend([
        ("stowage.name", "shop".to_string()),
        ("stowage.database", "later".to_string()),
        ("stowage.schedule", "0 0 1 1 *".to_string()),
        ("stowage.notify", format!("tg {pover_url}")),
    ]);
    let pg = Pg::start(
        "notify",
        PgOptions {
            labels,
            env: vec![("POSTGRES_PASSWORD", "pw".into())],
            ..Default::default()
        },
    );
    let stowage_cmd = || {
        let mut cmd = stowage(dir.path(), &instance);
        cmd.env_remove("STOWAGE_BACKUP_DIR").envs(env.clone());
        cmd
    };

    // `plan` shows where the alerts go, without a secret.
    let (code, plan, plan_err) = outcome(stowage_cmd().arg("plan"));
    assert_eq!(code, 0, "{plan}{plan_err}");
    assert!(plan.contains("notify:    tg pover://…"), "{plan}");
    assert!(
        !plan.contains(MARK) && !plan_err.contains(MARK),
        "{plan}{plan_err}"
    );

    let log_path = dir.path().join("daemon.log");
    let daemon = Daemon(
        stowage_cmd()
            .env("STOWAGE_DAEMON__DISCOVERY_INTERVAL", "1")
            .arg("run")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for(60, "the target to be planned", || {
        let (code, body) = http(http_port, "GET", "/api/targets", Some(token));
        (code == 200 && body.contains("\"shop\"")).then_some(())
    });

    // 1. A failure reaches every channel that takes failures.
    assert_eq!(
        http(http_port, "POST", "/api/targets/shop/backup", Some(token)).0,
        202
    );
    let ntfy_req = wait_for(60, "ntfy", || ntfy.requests().into_iter().next());
    assert_eq!(
        (ntfy_req.method.as_str(), ntfy_req.path.as_str()),
        ("POST", "/")
    );
    let expected_basic = format!(
        "Basic {}",
        data_encoding::BASE64.encode(format!("alice:ntfy-{MARK}").as_bytes())
    );
    assert_eq!(
        ntfy_req.header("authorization"),
        Some(expected_basic.as_str())
    );
    let body = json(&ntfy_req.body);
    assert_eq!(body["topic"], "backups");
    assert_eq!(body["title"], "stowage: backup of shop FAILED");
    assert_eq!(body["priority"], 4);
    assert!(
        body["message"].as_str().unwrap().contains("does not exist"),
        "{body}"
    );

    let gotify_req = wait_for(30, "gotify", || gotify.requests().into_iter().next());
    assert_eq!(
        (gotify_req.method.as_str(), gotify_req.path.as_str()),
        ("POST", "/sub/message")
    );
    let gotify_key = format!("Gotify{MARK}");
    assert_eq!(gotify_req.header("x-gotify-key"), Some(gotify_key.as_str()));
    let body = json(&gotify_req.body);
    assert_eq!(body["title"], "stowage: backup of shop FAILED");
    assert_eq!(body["priority"], 8);
    assert!(body["message"].as_str().unwrap().contains("shop"), "{body}");

    // Telegram: only because the label names the `labelled` channel.
    let tg_req = wait_for(30, "telegram", || tgram.requests().into_iter().next());
    assert_eq!(tg_req.method, "POST");
    assert_eq!(tg_req.path, format!("/bot123456:Tg{MARK}x/sendMessage"));
    let body = json(&tg_req.body);
    assert_eq!(body["chat_id"], "4242");
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .starts_with("stowage: backup of shop FAILED")
    );

    // Pushover: a URL in the label, form-encoded as its API documents.
    let pover_req = wait_for(30, "pushover", || pover.requests().into_iter().next());
    assert_eq!(
        (pover_req.method.as_str(), pover_req.path.as_str()),
        ("POST", "/1/messages.json")
    );
    assert_eq!(
        pover_req.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let form: Vec<(String, String)> = url::form_urlencoded::parse(pover_req.body.as_bytes())
        .into_owned()
        .collect();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(field("token"), Some(format!("PoverApp{MARK}").as_str()));
    assert_eq!(field("user"), Some(format!("PoverUser{MARK}").as_str()));
    assert_eq!(field("device"), Some("phone"));
    assert_eq!(field("priority"), Some("1"));
    assert_eq!(field("title"), Some("stowage: backup of shop FAILED"));
    assert!(
        field("message").unwrap().contains("reason: dump_failed"),
        "{form:?}"
    );

    // Matrix: the message is in the room, read back from the real homeserver.
    let in_room = wait_for(30, "the Matrix message", || {
        synapse
            .messages()
            .into_iter()
            .find(|m| m.starts_with("stowage: backup of shop FAILED"))
    });
    assert!(in_room.contains("does not exist"), "{in_room}");

    // MQTT: the event's JSON on the topic.
    let line = wait_for(30, "the MQTT message", || {
        mqtt.received().into_iter().next()
    });
    let (topic, payload) = line.split_once(' ').unwrap();
    assert_eq!(topic, "home/backups");
    let event = json(payload);
    assert_eq!(
        (event["event"].as_str(), event["target"].as_str()),
        (Some("failure"), Some("shop"))
    );

    // Every working channel delivered while the hung one is still waiting (its timeout is
    // 20 s): it delayed none of them. The refused one is already counted.
    assert_eq!(
        metric(http_port, "gotify"),
        0,
        "the hung delivery has not ended yet"
    );
    wait_for(30, "the refused delivery to be counted", || {
        (metric(http_port, "ntfy") == 1).then_some(())
    });
    assert!(
        successes.requests().is_empty(),
        "a success-only channel got the failure"
    );

    // 2. The next backup runs while the hung delivery still hangs, and succeeds: success
    // and recovery go where they are routed.
    pg.psql("CREATE DATABASE later");
    assert_eq!(
        http(http_port, "POST", "/api/targets/shop/backup", Some(token)).0,
        202
    );
    let success = wait_for(60, "the success", || {
        successes.requests().into_iter().next()
    });
    let body = json(&success.body);
    assert_eq!(body["topic"], "done");
    assert_eq!(body["title"], "stowage: backup of shop succeeded");
    assert_eq!(
        success.header("authorization"),
        Some(format!("Bearer tk_{MARK}").as_str())
    );
    wait_for(30, "the recovery on ntfy", || {
        ntfy.requests()
            .into_iter()
            .find(|r| r.body.contains("stowage: backup of shop recovered"))
    });
    wait_for(30, "the recovery in the Matrix room", || {
        synapse
            .messages()
            .into_iter()
            .find(|m| m.starts_with("stowage: backup of shop recovered"))
    });
    assert_eq!(successes.requests().len(), 1, "one success, nothing else");
    assert!(
        ntfy.requests()
            .iter()
            .all(|r| !r.body.contains("backup of shop succeeded")),
        "success is not routed to channels that did not ask for it"
    );
    // The hung channel times out (failure and recovery): counted, never delivered.
    wait_for(60, "the hung deliveries to be counted", || {
        (metric(http_port, "gotify") == 2).then_some(())
    });
    assert_eq!(metric(http_port, "ntfy"), 1, "refused takes failures only");
    drop(daemon);
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("alert delivery failed"), "{log}");
    assert!(!log.contains(MARK), "a secret reached the log:\n{log}");

    // 3. alert-test reaches every channel, the label's URL too, all at once.
    let (code, out, err) = outcome(stowage_cmd().arg("alert-test"));
    assert_eq!(code, 1, "the hung and refused channels fail: {out}{err}");
    for line in [
        format!("notify.phone: ntfy (127.0.0.1:{}): delivered", ntfy.port),
        format!(
            "notify.room: matrix (127.0.0.1:{}): delivered",
            synapse.port
        ),
        format!("notify.home: mqtt (127.0.0.1:{}): delivered", mqtt.port),
        "notify.tg: telegram (1 chat(s)): delivered".to_string(),
        "shop: pushover: delivered".to_string(),
        format!(
            "notify.hung: gotify (127.0.0.1:{}): FAILED: no answer within 20 s",
            hung.port
        ),
    ] {
        assert!(out.contains(&line), "{line:?} in:\n{out}");
    }
    assert!(!out.contains(MARK) && !err.contains(MARK), "{out}{err}");
    wait_for(30, "the test alert in the Matrix room", || {
        synapse
            .messages()
            .into_iter()
            .find(|m| m.starts_with("stowage: test alert"))
    });
    wait_for(30, "the test alert on MQTT", || {
        mqtt.received()
            .into_iter()
            .find(|l| l.contains("\"event\":\"test\""))
    });
    assert_eq!(
        successes.requests().len(),
        2,
        "the test alert reaches every channel"
    );
}
