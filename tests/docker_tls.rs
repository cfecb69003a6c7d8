//! Docker over TLS with client certificates (DOCKER_HOST=tcp://…, DOCKER_TLS_VERIFY,
//! DOCKER_CERT_PATH), through a real TLS endpoint: stunnel terminating mutual TLS in front of
//! the engine's unix socket, with certificates from a CA made here by openssl. (socat cannot
//! be the endpoint: it leaves OpenSSL's session-id context unset, so the TLS session
//! resumption that rustls clients do on a second connection fails.)

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// ca.pem, server-cert.pem/server-key.pem (for 127.0.0.1) and the client's cert.pem/key.pem.
fn make_certs(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=stowage test CA",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
        ],
    );
    for (name, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth",
        ),
        ("client", "extendedKeyUsage=clientAuth"),
    ] {
        std::fs::write(
            dir.join(format!("{name}.ext")),
            format!("{ext}\nbasicConstraints=CA:FALSE\n"),
        )
        .unwrap();
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{name}-key.pem"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}-cert.pem"),
            ],
        );
    }
    std::fs::rename(dir.join("client-cert.pem"), dir.join("cert.pem")).unwrap();
    std::fs::rename(dir.join("client-key.pem"), dir.join("key.pem")).unwrap();
}

struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn backs_up_over_mutual_tls() {
    let certs = Scratch::new("tls-certs");
    make_certs(certs.path());
    let port = free_port();
    let socket = docker_socket();
    let c = certs.path().display();
    let conf = certs.path().join("stunnel.conf");
    std::fs::write(
        &conf,
        format!(
            "foreground = yes\npid =\n[docker]\naccept = 127.0.0.1:{port}\nconnect = {socket}\n\
             cert = {c}/server-cert.pem\nkey = {c}/server-key.pem\nCAfile = {c}/ca.pem\n\
             verifyChain = yes\nrequireCert = yes\n"
        ),
    )
    .unwrap();
    let proxy = Proxy(
        Command::new("stunnel")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("stunnel (scripts/deps.sh installs it)"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "stunnel did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }

    let instance = unique("tls");
    let dir = Scratch::new("tls");
    let _pg = Pg::start_target("tls", &instance);
    let tls = |cmd: &mut Command| {
        cmd.env("DOCKER_HOST", format!("tcp://127.0.0.1:{port}"))
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", certs.path());
    };
    let mut backup = stowage(dir.path(), &instance);
    tls(backup.arg("backup"));
    let out = backup.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "backup over TLS failed:\n{stderr}");
    assert_eq!(artifacts(dir.path()).len(), 1);

    // Without a client certificate the TLS endpoint refuses us: a clear error, exit 2.
    let empty = Scratch::new("tls-nocert");
    std::fs::copy(certs.path().join("ca.pem"), empty.path().join("ca.pem")).unwrap();
    let mut plan = stowage(dir.path(), &instance);
    tls(plan.arg("plan"));
    plan.env("DOCKER_CERT_PATH", empty.path());
    let out = plan.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot reach the Docker engine at tcp://127.0.0.1:{port} (TLS"
        )),
        "{stderr}"
    );
    drop(proxy);
}
