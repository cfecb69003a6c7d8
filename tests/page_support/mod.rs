//! A real headless Chromium (Debian's package) for `tests/page.rs`, driven over the Chrome
//! DevTools Protocol (a WebSocket): navigate, evaluate JavaScript in the page as a person's
//! clicks and typing, read the page's text, take screenshots. Killed when dropped.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use crate::common::{Scratch, free_port, http, wait_for};

pub struct Browser {
    child: Child,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next: u64,
    _profile: Scratch,
}

impl Browser {
    pub fn start() -> Browser {
        let profile = Scratch::new("chromium");
        let port = free_port();
        let child = Command::new("chromium")
            .args([
                "--headless=new",
                "--no-sandbox", // tests run as root in CI
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--window-size=1280,900",
                &format!("--remote-debugging-port={port}"),
                &format!("--user-data-dir={}", profile.path().display()),
                "about:blank",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium (Debian's chromium: run scripts/deps.sh)");
        let ws_url = wait_for(60, "Chromium's DevTools endpoint", || {
            let (code, body) = http(port, "GET", "/json/list", None);
            if code != 200 {
                return None;
            }
            let list: Value = serde_json::from_str(&body).ok()?;
            // The listed URL names the Host our request sent; the page's id is what counts.
            list.as_array()?
                .iter()
                .find(|t| t["type"] == "page")
                .and_then(|t| t["id"].as_str())
                .map(|id| format!("ws://127.0.0.1:{port}/devtools/page/{id}"))
        });
        let (ws, _) = tungstenite::connect(ws_url.as_str()).expect("the DevTools WebSocket");
        Browser {
            child,
            ws,
            next: 0,
            _profile: profile,
        }
    }

    /// One DevTools command; its result (events in between are skipped).
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let msg = json!({ "id": id, "method": method, "params": params });
        self.ws.send(Message::text(msg.to_string())).unwrap();
        loop {
            let Message::Text(text) = self.ws.read().unwrap() else {
                continue;
            };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluates `js` in the page; its value.
    pub fn eval(&mut self, js: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": js, "returnByValue": true, "awaitPromise": true }),
        );
        assert!(r.get("exceptionDetails").is_none(), "{js}: {r}");
        r["result"]["value"].clone()
    }

    /// Goes to `url` and waits until it has loaded.
    pub fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
        self.wait_loaded(url);
    }

    /// Waits until the page at `url` (a prefix) has loaded.
    pub fn wait_loaded(&mut self, url: &str) {
        let js = format!(
            "document.readyState === 'complete' && location.href.startsWith({})",
            json!(url)
        );
        wait_for(30, &format!("{url} to load"), || {
            (self.eval(&js) == json!(true)).then_some(())
        });
    }

    /// What a person reads on the page.
    pub fn text(&mut self) -> String {
        self.eval("document.body ? document.body.innerText : ''")
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// A PNG of the viewport.
    pub fn screenshot(&mut self) -> Vec<u8> {
        let r = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        data_encoding::BASE64
            .decode(r["data"].as_str().unwrap().as_bytes())
            .unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many distinct colours a PNG has, and the share of pixels that differ from its most
/// common colour (the background): a blank page has one colour and a share of 0.
pub fn ink(png_bytes: &[u8]) -> (usize, f64) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = info.color_type.samples();
    let mut counts = std::collections::HashMap::new();
    for p in buf[..info.buffer_size()].chunks(px) {
        *counts.entry(p.to_vec()).or_insert(0usize) += 1;
    }
    let total: usize = counts.values().sum();
    let background = counts.values().copied().max().unwrap_or(0);
    (counts.len(), 1.0 - background as f64 / total.max(1) as f64)
}
