//! The fault suite, part three: a storage that fails while the daemon runs. For each fault (a
//! server that answers 503, one that cuts every connection, wrong credentials, a server that is
//! down) the daemon's backup succeeds locally, and the upload failure is what a user's
//! monitoring sees: `stowage_uploads_total{result="failed"}`, the target's last result 0, its
//! last error, `stowage_storage_up` 0, an ERROR line, and a failure alert with reason
//! `upload`. When the server comes back, the next upload pass is announced as a recovery.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use common::*;

/// A server that reads each request's head and answers `503 Service Unavailable`.
fn unavailable() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line.trim() != "" {
                    line.clear();
                }
                let mut conn = conn;
                let _ = conn.write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            });
        }
    });
    port
}

/// A server that accepts every connection and closes it at once.
fn cutting() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            drop(conn);
        }
    });
    port
}

fn metric(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn storage_faults_fail_the_target_count_and_alert_then_recover() {
    let instance = unique("s3fault");
    let pg = Pg::start_target_with(
        "s3fault",
        &instance,
        &[("stowage.name", "db"), ("stowage.schedule", "0 0 1 1 *")],
    );
    pg.psql("CREATE TABLE t AS SELECT 1 AS x");
    let real = Scratch::new("s3fault-real");
    let server = S3Server::start(real.path());
    let down_port = free_port();
    let token = "token-for-the-storage-faults";
    for (fault, port, wrong_key, recovers) in [
        ("503", unavailable(), false, false),
        ("cut connections", cutting(), false, false),
        ("wrong credentials", server.port, true, false),
        ("server down", down_port, false, true),
    ] {
        let dir = Scratch::new("s3fault");
        let receiver = Receiver::start();
        let http_port = free_port();
        let secret = dir.path().join("secret");
        let mut env = server.stowage_env(port, &secret);
        if wrong_key {
            std::fs::write(&secret, "not-the-key\n").unwrap();
        }
        env.push((
            "STOWAGE_ALERTS__WEBHOOKS".into(),
            format!("[{{url=\"http://127.0.0.1:{}/hook\"}}]", receiver.port),
        ));
        let log = dir.path().join("daemon.log");
        let mut cmd = stowage(&dir.path().join("backups"), &instance);
        cmd.envs(env)
            .env("STOWAGE_HTTP__LISTEN", format!("127.0.0.1:{http_port}"))
            .env("STOWAGE_HTTP__TOKEN", token)
            .env("STOWAGE_DAEMON__DISCOVERY_INTERVAL", "1")
            .env("STOWAGE_DAEMON__UPLOAD_RETRY_INTERVAL", "2")
            .arg("run")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let _daemon = Daemon(cmd.spawn().unwrap());
        wait_for(30, "the target", || {
            let (code, body) = http(http_port, "GET", "/api/targets", Some(token));
            (code == 200 && body.contains("\"db\"")).then_some(())
        });
        let metrics = || http(http_port, "GET", "/metrics", None).1;
        // Start-up: the storage's health check failed.
        assert_eq!(
            metric(&metrics(), "stowage_storage_up{storage=\"offsite\"}"),
            Some(0.0),
            "{fault}"
        );
        assert_eq!(
            http(http_port, "POST", "/api/targets/db/backup", Some(token)).0,
            202
        );
        let alert = wait_for(90, "the upload failure alert", || {
            receiver.seen().into_iter().find(|(_, _, body)| {
                body.contains("\"event\":\"failure\"") && body.contains("\"reason\":\"upload\"")
            })
        });
        assert!(alert.2.contains("storage offsite"), "{fault}: {}", alert.2);
        let text = metrics();
        assert!(
            metric(
                &text,
                "stowage_uploads_total{result=\"failed\",storage=\"offsite\"}"
            )
            .is_some_and(|n| n >= 1.0),
            "{fault}: {text}"
        );
        assert_eq!(
            metric(&text, "stowage_backup_last_result{target=\"db\"}"),
            Some(0.0),
            "{fault}"
        );
        assert!(
            metric(
                &text,
                "stowage_backup_failures_total{reason=\"upload\",target=\"db\"}"
            )
            .is_some_and(|n| n >= 1.0),
            "{fault}: {text}"
        );
        let (_, targets) = http(http_port, "GET", "/api/targets", Some(token));
        assert!(
            targets.contains("\"upload\""),
            "{fault}: last_error: {targets}"
        );
        // The local copy is kept.
        assert_eq!(artifacts(&dir.path().join("backups")).len(), 1, "{fault}");
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(
            logged
                .lines()
                .any(|l| l.contains("ERROR") && l.contains("storage offsite")),
            "{fault}: no ERROR line names the storage:\n{logged}"
        );
        if recovers {
            // The server comes up on the address stowage was given: the next pass uploads
            // the kept copy and announces the recovery.
            let root = Scratch::new("s3fault-late");
            let _late = S3Server::start_on(root.path(), down_port);
            wait_for(60, "the recovery alert", || {
                receiver
                    .seen()
                    .into_iter()
                    .find(|(_, _, body)| body.contains("\"event\":\"recovery\""))
            });
            let text = metrics();
            assert_eq!(
                metric(&text, "stowage_backup_last_result{target=\"db\"}"),
                Some(1.0),
                "{text}"
            );
            assert!(
                metric(
                    &text,
                    "stowage_uploads_total{result=\"ok\",storage=\"offsite\"}"
                )
                .is_some_and(|n| n >= 1.0),
                "{text}"
            );
        }
    }
}
