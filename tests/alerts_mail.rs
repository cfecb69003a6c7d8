//! Email alerts over each connection security stowage offers, against a real SMTP server
//! (aiosmtpd) with a certificate from a private CA, through `stowage alert-test`: STARTTLS with
//! a login, implicit TLS, a certificate stowage must refuse, a wrong password, and a server
//! that does not offer the STARTTLS stowage requires (no mail may then go out in plain text).
//! Also: `alert-test` reaches a webhook with the documented JSON.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A private CA and a certificate for `localhost` signed by it.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn pki(dir: &Path) -> Pki {
    let key = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    let ca = format!("req -x509 {key} -keyout ca.key -out ca.pem -days 2");
    let csr = format!("req {key} -keyout server.key -out server.csr");
    for (args, subject) in [(ca, "/CN=stowage test CA"), (csr, "/CN=localhost")] {
        let mut argv: Vec<&str> = args.split(' ').collect();
        argv.extend(["-subj", subject]);
        openssl(dir, &argv);
    }
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    Pki {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    }
}

/// Writes a config with `[alerts.email]` made of `email` lines (and `extra` after it).
fn config(dir: &Path, port: u16, email: &str, extra: &str) -> PathBuf {
    let path = dir.join("stowage.toml");
    std::fs::write(
        &path,
        format!(
            "[alerts.email]\nhost = \"localhost\"\nport = {port}\nfrom = \"stowage@example.test\"\nto = [\"ops@example.test\"]\n{email}\n{extra}"
        ),
    )
    .unwrap();
    path
}

/// Runs `stowage alert-test` with `config`: (exit code, stdout, stderr).
fn alert_test(config: &Path, env: &[(&str, &Path)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stowage"));
    cmd.arg("alert-test").env("STOWAGE_CONFIG", config);
    for (k, v) in env {
        cmd.env(k, v);
    }
    outcome(&mut cmd)
}

#[test]
fn starttls_with_login_and_a_private_ca() {
    let dir = Scratch::new("mail-starttls");
    let pki = pki(dir.path());
    let smtp = SmtpServer::start_with(
        &dir.path().join("maildir"),
        SmtpOptions {
            security: "starttls",
            cert: Some((&pki.cert, &pki.key)),
            login: Some(("stowage", "m4il-pw")),
        },
    );
    let password = dir.path().join("password");
    std::fs::write(&password, "m4il-pw\n").unwrap();
    let receiver = Receiver::start();
    let cfg = config(
        dir.path(),
        smtp.port,
        &format!(
            "security = \"starttls\"\nusername = \"stowage\"\nca_file = \"{}\"",
            pki.ca.display()
        ),
        &format!(
            "[[alerts.webhooks]]\nurl = \"http://127.0.0.1:{}/hook\"",
            receiver.port
        ),
    );
    // The password comes from a file, as a secret should.
    let (code, out, err) = alert_test(&cfg, &[("STOWAGE_ALERTS__EMAIL__PASSWORD_FILE", &password)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("webhook 1 (json): delivered"), "{out}");
    assert!(
        out.contains(&format!(
            "via localhost:{} (STARTTLS): delivered",
            smtp.port
        )),
        "{out}"
    );
    let mail = smtp.messages();
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert!(
        mail[0].contains("Subject: stowage: test alert"),
        "{}",
        mail[0]
    );
    // The body is quoted-printable: undo its soft line breaks.
    let body = mail[0].replace("=\r\n", "").replace("=\n", "");
    assert!(body.contains("If you read it, alerts reach you."), "{body}");
    assert!(smtp.log().contains("auth ok stowage"), "{}", smtp.log());
    let hooks = receiver.seen();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let body: serde_json::Value = serde_json::from_str(&hooks[0].2).unwrap();
    assert_eq!(body["event"], "test", "{body}");

    // A wrong password: the delivery fails, says why, and nothing is delivered.
    std::fs::write(&password, "wrong\n").unwrap();
    let (code, out, err) = alert_test(&cfg, &[("STOWAGE_ALERTS__EMAIL__PASSWORD_FILE", &password)]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("(STARTTLS): FAILED"), "{out}");
    assert!(out.to_lowercase().contains("auth"), "{out}");
    assert!(!out.contains("wrong"), "the password is printed: {out}");
    assert!(
        smtp.log().contains("auth refused stowage"),
        "{}",
        smtp.log()
    );
    assert_eq!(smtp.messages().len(), 1);
}

#[test]
fn implicit_tls_trusts_only_the_configured_ca() {
    let dir = Scratch::new("mail-tls");
    let pki = pki(dir.path());
    let smtp = SmtpServer::start_with(
        &dir.path().join("maildir"),
        SmtpOptions {
            security: "tls",
            cert: Some((&pki.cert, &pki.key)),
            login: Some(("stowage", "pw")),
        },
    );
    let login = "username = \"stowage\"\npassword = \"pw\"";
    let cfg = config(
        dir.path(),
        smtp.port,
        &format!(
            "security = \"tls\"\n{login}\nca_file = \"{}\"",
            pki.ca.display()
        ),
        "",
    );
    let (code, out, err) = alert_test(&cfg, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("(TLS): delivered"), "{out}");
    assert_eq!(smtp.messages().len(), 1);

    // Without the CA the server's certificate is not trusted: refused, nothing sent.
    let cfg = config(
        dir.path(),
        smtp.port,
        &format!("security = \"tls\"\n{login}"),
        "",
    );
    let (code, out, err) = alert_test(&cfg, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("(TLS): FAILED"), "{out}");
    assert!(out.to_lowercase().contains("certificate"), "{out}");
    assert_eq!(smtp.messages().len(), 1);
}

#[test]
fn required_starttls_never_falls_back_to_plain_text() {
    let dir = Scratch::new("mail-nostarttls");
    // A server that offers no STARTTLS at all.
    let smtp = SmtpServer::start(&dir.path().join("maildir"));
    let cfg = config(dir.path(), smtp.port, "security = \"starttls\"", "");
    let (code, out, err) = alert_test(&cfg, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("(STARTTLS): FAILED"), "{out}");
    assert!(smtp.messages().is_empty(), "mail went out without TLS");

    // A bad CA file is a configuration error, found before anything is sent.
    let cfg = config(
        dir.path(),
        smtp.port,
        "ca_file = \"/nonexistent/ca.pem\"",
        "",
    );
    let (code, out, err) = alert_test(&cfg, &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("alerts.email.ca_file /nonexistent/ca.pem"),
        "{err}"
    );
}

#[test]
fn alert_test_without_channels_says_what_to_configure() {
    let dir = Scratch::new("mail-none");
    let cfg = dir.path().join("stowage.toml");
    std::fs::write(&cfg, "").unwrap();
    let (code, out, err) = alert_test(&cfg, &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("[alerts.email]"), "{err}");
}

#[test]
fn a_server_that_never_answers_is_given_up_on() {
    let dir = Scratch::new("mail-silent");
    // Connections complete (the kernel accepts them) but no greeting ever comes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let cfg = config(dir.path(), port, "security = \"none\"", "");
    let started = std::time::Instant::now();
    let (code, out, err) = alert_test(&cfg, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("FAILED"), "{out}");
    assert!(
        started.elapsed().as_secs() < 60,
        "took {:?}",
        started.elapsed()
    );
}
