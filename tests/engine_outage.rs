//! The Docker engine goes away and comes back: stowage reaches it through a proxy that the
//! test cuts. It reports not ready (503 on `/readyz`, `stowage_docker_up 0`), keeps running,
//! and is ready again once the proxy is back, without a restart.

mod common;

use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;

/// TCP on localhost → the engine's unix socket, with a switch that cuts every connection.
struct SocketProxy {
    port: u16,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl SocketProxy {
    fn start(socket: String) -> SocketProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (up2, open2) = (up.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !up2.load(Ordering::SeqCst) {
                    drop(client); // the engine is "away": close at once
                    continue;
                }
                let Ok(engine) = UnixStream::connect(&socket) else {
                    continue;
                };
                open2.lock().unwrap().push(client.try_clone().unwrap());
                let (mut c_read, mut e_write) =
                    (client.try_clone().unwrap(), engine.try_clone().unwrap());
                let (mut e_read, mut c_write) = (engine, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_read, &mut e_write);
                    let _ = e_write.shutdown(std::net::Shutdown::Both);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut e_read, &mut c_write);
                    let _ = c_write.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        SocketProxy { port, up, open }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.open.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[test]
fn engine_away_means_not_ready_then_recovers() {
    let instance = unique("outage");
    let dir = Scratch::new("outage");
    let proxy = SocketProxy::start(docker_socket());
    let http_port = free_port();
    let mut child = stowage(dir.path(), &instance)
        .env("DOCKER_HOST", format!("tcp://127.0.0.1:{}", proxy.port))
        .env("STOWAGE_HTTP__LISTEN", format!("127.0.0.1:{http_port}"))
        .env("STOWAGE_DAEMON__DISCOVERY_INTERVAL", "1")
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let get = |path: &str| http(http_port, "GET", path, None);
    wait_for(30, "ready", || (get("/readyz").0 == 200).then_some(()));

    proxy.cut();
    let (_, body) = wait_for(30, "not ready", || {
        let r = get("/readyz");
        (r.0 == 503).then_some(r)
    });
    assert!(body.contains("not ready"), "{body}");
    assert!(get("/metrics").1.contains("stowage_docker_up 0"));
    assert_eq!(get("/healthz").0, 200, "alive while the engine is away");
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(child.try_wait().unwrap().is_none(), "stowage keeps running");

    proxy.restore();
    wait_for(60, "ready again", || {
        (get("/readyz").0 == 200).then_some(())
    });
    assert!(get("/metrics").1.contains("stowage_docker_up 1"));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("not ready") && log.contains("answers again"),
        "{log}"
    );
}
