use super::*;

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

#[test]
fn splits_userinfo_host_port_path_and_events() {
    let (p, events) =
        split("ntfys://alice:p%40ss@ntfy.example:8443/backups?events=failure,stale").unwrap();
    assert_eq!(p.scheme, "ntfys");
    assert_eq!(p.user.as_deref(), Some("alice"));
    assert_eq!(p.password.as_deref(), Some("p@ss"));
    assert_eq!((p.host.as_str(), p.port), ("ntfy.example", Some(8443)));
    assert_eq!(p.path, ["backups"]);
    assert!(p.query.is_empty(), "events is taken out");
    let events = events.unwrap();
    assert!(events.contains(crate::daemon::alerts::Kind::Stale));
    assert!(!events.contains(crate::daemon::alerts::Kind::Recovery));
    assert_eq!(p.base("ntfy"), "https://ntfy.example:8443");
}

#[test]
fn a_telegram_token_with_a_colon_is_the_host() {
    let (p, _) = split("tgram://123456:ABC-def_9/-1001234/@chan").unwrap();
    assert_eq!(p.authority(), "123456:ABC-def_9");
    assert_eq!(p.path, ["-1001234", "@chan"]);
    // A token whose part after the colon is all digits reads as a port; authority() joins it.
    let (p, _) = split("tgram://123456:789/42").unwrap();
    assert_eq!(p.authority(), "123456:789");
}

#[test]
fn every_scheme_builds_and_mistakes_are_explained_without_the_url() {
    for url in [
        "ntfy://ntfy.local/topic",
        "ntfys://tk_secret@ntfy.sh/topic",
        "gotifys://push.example/sub/path/AppToken1",
        "tgram://123456:ABCdef/42",
        "matrixs://:syt_token@matrix.example/!room:matrix.example",
        "matrix://bot:syt_token@localhost:8008/#ops:localhost",
        "mqtt://user:pw@broker.lan/home/stowage",
        "mqtts://broker.lan:8884/stowage?qos=0&retain=yes",
        "pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGDORePK8gMaC0QOYAMyEEuzJnyUi",
    ] {
        let parsed = parse(&Secret::new(url), &client());
        assert!(parsed.is_ok(), "{url}: {:?}", parsed.err());
    }
    for (url, says) in [
        ("slack://x/y", "unknown scheme"),
        ("ntfys://ntfy.sh/", "one topic"),
        ("gotify://push.example", "application token"),
        ("tgram://S3CR3T/42", "bot token"),
        ("tgram://1:A", "no chat"),
        ("matrixs://matrix.example/!r:x", "access token"),
        ("matrixs://:S3CR3T@matrix.example/room", "room id"),
        ("mqtt://broker/t?qos=2", "qos"),
        ("pover://S3CR3Tapptoken", "user key"),
        ("ntfys://ntfy.sh/t?priority=5", "unknown query parameter"),
        (
            "ntfys://ntfy.sh/t?events=failure,oops",
            "unknown event \"oops\"",
        ),
        ("no-scheme-S3CR3T", "not a notification URL"),
    ] {
        let err = parse(&Secret::new(url), &client())
            .err()
            .unwrap_or_default();
        assert!(err.contains(says), "{url}: {err}");
        assert!(
            !err.contains("S3CR3T"),
            "{url}: the error shows the secret: {err}"
        );
    }
}

#[test]
fn redacted_forms_keep_only_scheme_and_host() {
    assert_eq!(
        redact("ntfys://user:pw@ntfy.sh/secret-topic?events=failure"),
        "ntfys://ntfy.sh/…"
    );
    assert_eq!(redact("tgram://123:ABC/42"), "tgram://…");
    assert_eq!(redact("pover://user@token"), "pover://…");
    assert_eq!(
        redact("matrixs://:syt@m.example:8448/!r:m"),
        "matrixs://m.example:8448/…"
    );
}

#[test]
fn clip_marks_a_cut() {
    assert_eq!(clip("abc", 3), "abc");
    assert_eq!(clip("abcdef", 4), "abc…");
}
