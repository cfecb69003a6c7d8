//! The status page in a real browser (Debian's headless Chromium, driven over the DevTools
//! protocol) against a running daemon with two real PostgreSQL targets, one backed up and
//! one failing: what a person sees before and after logging in with the token, a screenshot
//! that is not blank, the page on a phone-sized screen, the "Back up now" button starting a
//! backup, and cross-site requests refused (from a page of another origin in the browser, and
//! forged requests that lack the right origin or CSRF value).

mod common;
mod page_support;

use std::io::{Read, Write};
use std::process::Stdio;

use common::*;
use page_support::{Browser, ink};
use serde_json::json;

const TOKEN: &str = "page-token-for-tests";

/// A form POST with extra headers: (status code, headers and body as text).
fn post_form(port: u16, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    let code = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, raw)
}

/// [`wait_for`], but a timeout shows the daemon's log (the test's directory is removed).
fn wait_logged<T>(
    log: &std::path::Path,
    secs: u64,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if std::time::Instant::now() > deadline {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            panic!("timed out waiting for {what}; the daemon's log:\n{text}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn artifact_count(dir: &std::path::Path, target: &str) -> usize {
    artifacts(&dir.join(target)).len()
}

#[test]
fn the_status_page_in_a_real_browser() {
    let instance = unique("page");
    let dir = Scratch::new("page");
    let backups = dir.path().join("backups");
    let port = free_port();
    let config = dir.path().join("stowage.toml");
    std::fs::write(
        &config,
        format!(
            "backup_dir = \"{}\"\n[retention]\nkeep_last = 100\n[http]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\n[storage.disk]\nurl = \"file://{}\"\n",
            backups.display(),
            dir.path().join("disk").display()
        ),
    )
    .unwrap();
    let labels = |name: &str, database: &str| {
        let mut l = target_labels(&instance);
        l.extend([
            ("stowage.name", name.to_string()),
            ("stowage.database", database.to_string()),
            ("stowage.schedule", "0 0 1 1 *".to_string()),
        ]);
        l
    };
    let shop = Pg::start(
        "page-shop",
        PgOptions {
            labels: labels("shop-db", "shop"),
            env: vec![
                ("POSTGRES_DB", "shop".into()),
                ("POSTGRES_PASSWORD", "pw".into()),
            ],
            ..Default::default()
        },
    );
    shop.psql_in(
        "shop",
        "CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS ref FROM generate_series(1, 20000) g",
    );
    let _wiki = Pg::start(
        "page-wiki",
        PgOptions {
            labels: labels("wiki-db", "wiki_missing"),
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
            .stderr(std::fs::File::create(dir.path().join("daemon.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let api = |method: &str, path: &str| http(port, method, path, Some(TOKEN));
    let log = dir.path().join("daemon.log");
    wait_logged(&log, 60, "both targets", || {
        let (code, body) = api("GET", "/api/targets");
        (code == 200 && body.contains("shop-db") && body.contains("wiki-db")).then_some(())
    });
    // Two backups of the shop (the size chart has bars), one failure of the wiki.
    for n in 1..=2 {
        assert_eq!(api("POST", "/api/targets/shop-db/backup").0, 202);
        wait_for(60, "a shop backup", || {
            (artifact_count(&backups, "shop-db") == n
                && !api("GET", "/api/targets").1.contains("\"running\":true"))
            .then_some(())
        });
    }
    assert_eq!(api("POST", "/api/targets/wiki-db/backup").0, 202);
    wait_for(60, "the wiki failure", || {
        api("GET", "/api/targets")
            .1
            .contains("\"last_result\":\"failed\"")
            .then_some(())
    });

    let base = format!("http://127.0.0.1:{port}");
    let mut b = Browser::start();

    // Without the token: a login form, no target names.
    b.goto(&format!("{base}/"));
    let text = b.text();
    assert!(
        text.contains("Log in") && text.contains("API token"),
        "{text}"
    );
    assert!(
        !text.contains("shop-db") && !text.contains("wiki-db"),
        "{text}"
    );
    // A wrong token is refused.
    let type_token = |b: &mut Browser, token: &str| {
        b.eval(&format!(
            "document.querySelector('#token').value = {}; document.querySelector('form.login button').click(); true",
            json!(token)
        ));
    };
    type_token(&mut b, "not-it");
    wait_for(30, "the refusal", || {
        b.text().contains("That is not the token.").then_some(())
    });

    // Logged in: what a person sees.
    type_token(&mut b, TOKEN);
    wait_for(30, "the overview", || {
        b.text().contains("shop-db").then_some(())
    });
    b.wait_loaded(&format!("{base}/"));
    let text = b.text();
    for seen in [
        "shop-db",
        "wiki-db",
        "postgres",
        "The dump command failed",
        "wiki_missing",
        "disk: holds the newest backup",
        "Back up now",
        "KiB",
    ] {
        assert!(text.contains(seen), "{seen:?} on the page:\n{text}");
    }
    let html = b
        .eval("document.documentElement.outerHTML")
        .as_str()
        .unwrap()
        .to_string();
    assert!(!html.contains(TOKEN), "the token is never rendered");
    assert_eq!(
        b.eval("document.querySelectorAll('svg rect').length"),
        json!(2),
        "two bars"
    );
    let cookie_visible = b.eval("document.cookie");
    assert_eq!(cookie_visible, json!(""), "the session cookie is HttpOnly");

    // A screenshot that shows something; kept for CI in the temp directory.
    let shot = b.screenshot();
    let (colours, share) = ink(&shot);
    assert!(
        colours > 20 && share > 0.05,
        "a blank screenshot? {colours} colours, {share:.3} ink"
    );
    let keep = std::env::var_os("PAGE_SCREENSHOT_TO")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("stowage-status-page.png"));
    std::fs::write(&keep, &shot).unwrap();
    println!("screenshot: {} ({colours} colours)", keep.display());

    // On a phone-sized screen nothing needs a sideways scroll.
    b.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true }),
    );
    b.goto(&format!("{base}/"));
    let wide = b
        .eval("document.documentElement.scrollWidth")
        .as_u64()
        .unwrap();
    assert!(wide <= 390, "the page is {wide} px wide on a 390 px screen");
    b.call("Emulation.clearDeviceMetricsOverride", json!({}));
    b.goto(&format!("{base}/"));

    // The button starts a backup: the artifact appears.
    b.eval(
        "document.querySelector('form[action=\"/targets/shop-db/backup\"] button').click(); true",
    );
    wait_for(30, "the confirmation", || {
        b.text()
            .contains("A backup of shop-db was started")
            .then_some(())
    });
    wait_for(60, "the button's backup", || {
        (artifact_count(&backups, "shop-db") == 3).then_some(())
    });
    wait_for(60, "the backup to end", || {
        (!api("GET", "/api/targets").1.contains("\"running\":true")).then_some(())
    });
    b.goto(&format!("{base}/targets/shop-db"));
    let text = b.text();
    assert!(text.contains("Artifacts (3)"), "{text}");
    assert!(text.contains(".sql.zst"), "{text}");

    // A page of another origin posts the button's form (with the right CSRF value, even):
    // the browser does not send the SameSite=Strict cookie, and stowage refuses.
    let csrf = b
        .eval("document.querySelector('input[name=csrf]').value")
        .as_str()
        .unwrap()
        .to_string();
    let attack = format!(
        "data:text/html,<form method=post action='{base}/targets/shop-db/backup'><input name=csrf value='{csrf}'></form>"
    );
    b.goto(&attack);
    b.eval("document.forms[0].submit(); true");
    wait_for(30, "stowage's answer to the cross-site post", || {
        let t = b.text();
        (t.contains("Log in") || t.contains("refused")).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(
        artifact_count(&backups, "shop-db"),
        3,
        "no backup from another site"
    );

    // Forged requests with the real cookie: refused without this server's origin or the
    // CSRF value; accepted with both (so the checks are what refused them).
    let cookie = {
        let (_, raw) = post_form(
            port,
            "/login",
            &[("Origin", &base)],
            &format!("token={TOKEN}"),
        );
        raw.lines()
            .find_map(|l| l.strip_prefix("set-cookie: "))
            .and_then(|c| c.split(';').next())
            .expect("a session cookie")
            .to_string()
    };
    let form = format!("csrf={csrf}");
    let evil = post_form(
        port,
        "/targets/shop-db/backup",
        &[("Cookie", &cookie), ("Origin", "http://evil.example")],
        &form,
    );
    assert_eq!(evil.0, 403, "{}", evil.1);
    let no_origin = post_form(
        port,
        "/targets/shop-db/backup",
        &[("Cookie", &cookie)],
        &form,
    );
    assert_eq!(no_origin.0, 403, "{}", no_origin.1);
    let bad_csrf = post_form(
        port,
        "/targets/shop-db/backup",
        &[("Cookie", &cookie), ("Origin", &base)],
        "csrf=guess",
    );
    assert_eq!(bad_csrf.0, 403, "{}", bad_csrf.1);
    let no_cookie = post_form(port, "/targets/shop-db/backup", &[("Origin", &base)], &form);
    assert_eq!(no_cookie.0, 401, "{}", no_cookie.1);
    let login_elsewhere = post_form(
        port,
        "/login",
        &[("Origin", "http://evil.example")],
        &format!("token={TOKEN}"),
    );
    assert_eq!(login_elsewhere.0, 403, "{}", login_elsewhere.1);
    assert_eq!(artifact_count(&backups, "shop-db"), 3);
    let ok = post_form(
        port,
        "/targets/shop-db/backup",
        &[("Cookie", &cookie), ("Origin", &base)],
        &form,
    );
    assert_eq!(ok.0, 303, "{}", ok.1);
    wait_for(60, "the accepted post's backup", || {
        (artifact_count(&backups, "shop-db") == 4).then_some(())
    });

    // Logging out shows the login form again.
    b.goto(&format!("{base}/"));
    b.eval("document.querySelector('form[action=\"/logout\"] button').click(); true");
    wait_for(30, "the login form after logging out", || {
        let t = b.text();
        (t.contains("API token") && !t.contains("shop-db")).then_some(())
    });
}

/// `http.page` = `public`, `off`, and `token` without a token: what each serves.
#[test]
fn page_modes_public_off_and_no_token() {
    let instance = unique("pagemodes");
    let dir = Scratch::new("pagemodes");
    let mut labels = target_labels(&instance);
    labels.extend([
        ("stowage.name", "notes-db".to_string()),
        ("stowage.schedule", "0 0 1 1 *".to_string()),
    ]);
    let _pg = Pg::start(
        "pagemodes",
        PgOptions {
            labels,
            env: vec![("POSTGRES_PASSWORD", "pw".into())],
            ..Default::default()
        },
    );
    let daemon = |page: &str, token: Option<&str>| -> (Daemon, u16) {
        let port = free_port();
        let mut cmd = stowage(dir.path(), &instance);
        cmd.env("STOWAGE_HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .env("STOWAGE_HTTP__PAGE", page)
            .env("STOWAGE_DAEMON__DISCOVERY_INTERVAL", "1")
            .arg("run")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join(format!("{page}.log"))).unwrap());
        if let Some(t) = token {
            cmd.env("STOWAGE_HTTP__TOKEN", t);
        }
        let d = Daemon(cmd.spawn().unwrap());
        let log = dir.path().join(format!("{page}.log"));
        wait_logged(&log, 60, "the daemon", || {
            (http(port, "GET", "/healthz", None).0 == 200).then_some(())
        });
        (d, port)
    };

    // Public: the targets without a login, but no button.
    let (d, port) = daemon("public", Some(TOKEN));
    let (code, body) = wait_for(60, "the target on the public page", || {
        let (code, body) = http(port, "GET", "/", None);
        body.contains("notes-db").then_some((code, body))
    });
    assert_eq!(code, 200);
    assert!(
        body.contains("Log in") && !body.contains("Back up now"),
        "{body}"
    );
    let (code, _) = http(port, "GET", "/targets/notes-db", None);
    assert_eq!(code, 200);
    let (_, raw) = post_form(
        port,
        "/targets/notes-db/backup",
        &[("Origin", &format!("http://127.0.0.1:{port}"))],
        "csrf=x",
    );
    assert!(
        raw.starts_with("HTTP/1.1 401"),
        "the button needs the login: {raw}"
    );
    drop(d);

    // Off: no page; the API and metrics stay.
    let (d, port) = daemon("off", Some(TOKEN));
    assert_eq!(http(port, "GET", "/", None).0, 404);
    assert_eq!(http(port, "GET", "/metrics", None).0, 200);
    drop(d);

    // The default (token) with no token configured: how to set one, and no targets.
    let (_d, port) = daemon("token", None);
    let (code, body) = http(port, "GET", "/", None);
    assert_eq!(code, 403);
    assert!(
        body.contains("needs a token") && body.contains("STOWAGE_HTTP__TOKEN_FILE"),
        "{body}"
    );
    assert!(!body.contains("notes-db"), "{body}");
}
