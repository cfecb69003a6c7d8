//! Real notification servers for `tests/notify.rs`: Synapse (a Matrix homeserver from PyPI,
//! installed by `scripts/deps.sh` into a venv) and Mosquitto (Debian's MQTT broker), each
//! started on a free loopback port and stopped when its guard drops, also when a test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::common::{Scratch, free_port, wait_for};

/// The venv `scripts/deps.sh` installs Synapse into (`STOWAGE_SYNAPSE_VENV` overrides).
fn synapse_venv() -> PathBuf {
    std::env::var_os("STOWAGE_SYNAPSE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME");
            Path::new(&home).join(".cache/stowage-test/synapse")
        })
}

/// `curl` with a JSON body and a bearer token: the response body.
pub fn curl(method: &str, url: &str, token: Option<&str>, body: Option<&str>) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "-X", method, url]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    let out = cmd.output().expect("curl");
    assert!(out.status.success(), "curl {method} {url}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A Synapse homeserver (`server_name` localhost, SQLite), with a user that has joined a room
/// with the alias `#backups:localhost`.
pub struct Synapse {
    child: Child,
    pub port: u16,
    pub token: String,
    pub room_id: String,
    /// Its config, database and log: kept until the server has stopped.
    _dir: Scratch,
}

impl Synapse {
    pub fn start() -> Synapse {
        let venv = synapse_venv();
        let python = venv.join("bin/python");
        assert!(
            python.exists(),
            "Synapse is not installed at {}: run scripts/deps.sh",
            venv.display()
        );
        let dir = Scratch::new("synapse");
        let config = dir.path().join("homeserver.yaml");
        // The generated log config names homeserver.log relative to the working directory.
        let generated = Command::new(&python)
            .current_dir(dir.path())
            .args(["-m", "synapse.app.homeserver", "--server-name", "localhost"])
            .arg("--config-path")
            .arg(&config)
            .arg("--data-directory")
            .arg(dir.path())
            .args(["--generate-config", "--report-stats=no"])
            .output()
            .unwrap();
        assert!(generated.status.success(), "{generated:?}");
        let port = free_port();
        let text = std::fs::read_to_string(&config).unwrap();
        let text = text
            .replace("    - ::1\n", "")
            .replace("port: 8008", &format!("port: {port}"));
        std::fs::write(&config, text).unwrap();
        // Its log config names homeserver.log relative to the working directory.
        let child = Command::new(&python)
            .current_dir(dir.path())
            .args(["-m", "synapse.app.homeserver", "-c"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("synapse.stderr")).unwrap())
            .spawn()
            .unwrap();
        let mut synapse = Synapse {
            child,
            port,
            token: String::new(),
            room_id: String::new(),
            _dir: dir,
        };
        let base = synapse.base();
        wait_for(60, "Synapse to answer", || {
            let out = Command::new("curl")
                .args(["-sf", &format!("{base}/_matrix/client/versions")])
                .output()
                .ok()?;
            out.status.success().then_some(())
        });
        let registered = Command::new(venv.join("bin/register_new_matrix_user"))
            .args([
                "-u",
                "stowage-bot",
                "-p",
                "bot-password",
                "--no-admin",
                "-c",
            ])
            .arg(&config)
            .arg(&base)
            .output()
            .unwrap();
        assert!(registered.status.success(), "{registered:?}");
        let login = curl(
            "POST",
            &format!("{base}/_matrix/client/v3/login"),
            None,
            Some(
                r#"{"type":"m.login.password","identifier":{"type":"m.id.user","user":"stowage-bot"},"password":"bot-password"}"#,
            ),
        );
        let login: serde_json::Value = serde_json::from_str(&login).unwrap();
        synapse.token = login["access_token"].as_str().expect("a token").to_string();
        let room = curl(
            "POST",
            &format!("{base}/_matrix/client/v3/createRoom"),
            Some(&synapse.token),
            Some(r#"{"room_alias_name":"backups","name":"Backups"}"#),
        );
        let room: serde_json::Value = serde_json::from_str(&room).unwrap();
        synapse.room_id = room["room_id"].as_str().expect("a room").to_string();
        synapse
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The bodies of the room's `m.room.message` events, newest first, read back through the
    /// client API.
    pub fn messages(&self) -> Vec<String> {
        let url = format!(
            "{}/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50",
            self.base(),
            self.room_id.replace('!', "%21").replace(':', "%3A")
        );
        let page: serde_json::Value =
            serde_json::from_str(&curl("GET", &url, Some(&self.token), None)).unwrap();
        page["chunk"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["type"] == "m.room.message")
            .filter_map(|e| e["content"]["body"].as_str().map(str::to_string))
            .collect()
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Mosquitto broker that wants a user and password, and a `mosquitto_sub` subscribed to
/// `topic/#` writing what arrives to a file.
pub struct Mosquitto {
    broker: Child,
    subscriber: Option<Child>,
    pub port: u16,
    pub dir: Scratch,
}

impl Mosquitto {
    pub fn start(user: &str, password: &str) -> Mosquitto {
        let dir = Scratch::new("mosquitto");
        let passwd = dir.path().join("passwd");
        let made = Command::new("mosquitto_passwd")
            .args(["-b", "-c"])
            .arg(&passwd)
            .args([user, password])
            .output()
            .expect("mosquitto_passwd (Debian's mosquitto: run scripts/deps.sh)");
        assert!(made.status.success(), "{made:?}");
        let port = free_port();
        let config = dir.path().join("mosquitto.conf");
        std::fs::write(
            &config,
            format!(
                "user root\nlistener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\npersistence false\nlog_dest stderr\nlog_type all\n",
                passwd.display()
            ),
        )
        .unwrap();
        let broker = Command::new("mosquitto")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("broker.log")).unwrap())
            .spawn()
            .expect("mosquitto (Debian's mosquitto: run scripts/deps.sh)");
        wait_for(20, "Mosquitto to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Mosquitto {
            broker,
            subscriber: None,
            port,
            dir,
        }
    }

    /// Subscribes to `filter` with `-v` (each line: topic, space, payload).
    pub fn subscribe(&mut self, user: &str, password: &str, filter: &str) {
        let out = std::fs::File::create(self.dir.path().join("received")).unwrap();
        let child = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-u", user, "-P", password, "-t", filter, "-v", "-q", "1"])
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub (Debian's mosquitto-clients: run scripts/deps.sh)");
        self.subscriber = Some(child);
        // The broker logs (log_type all) each subscription it acknowledges.
        let log = self.dir.path().join("broker.log");
        wait_for(20, "the subscription", || {
            let text = std::fs::read_to_string(&log).ok()?;
            text.contains("Sending SUBACK").then_some(())
        });
    }

    /// What the subscriber received, one line per message.
    pub fn received(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("received"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        for child in self.subscriber.iter_mut().chain([&mut self.broker]) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
