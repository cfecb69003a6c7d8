//! Table tests of [`super`]: each case states what a user would expect.

use super::*;
use chrono::TimeZone;

fn at(m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, m, d, h, 0, 0).unwrap()
}

/// Five months of daily backups at 03:00 (2026-01-01 to 05-31), plus one at 05-31 15:00.
fn months() -> Vec<DateTime<Utc>> {
    let mut t: Vec<DateTime<Utc>> = (0..151).map(|d| at(1, 1, 3) + Duration::days(d)).collect();
    assert_eq!(*t.last().unwrap(), at(5, 31, 3));
    t.push(at(5, 31, 15));
    // Input order must not matter.
    t.reverse();
    t.swap(3, 77);
    t
}

fn kept(policy: &str, times: &[DateTime<Utc>]) -> Vec<DateTime<Utc>> {
    let p = Policy::parse_label(policy).unwrap();
    let d = plan(&p, times, at(12, 31, 0));
    let mut out: Vec<DateTime<Utc>> = times
        .iter()
        .zip(&d)
        .filter(|(_, d)| d.keep)
        .map(|(t, _)| *t)
        .collect();
    out.sort_by(|a, b| b.cmp(a));
    out
}

#[test]
fn each_rule_over_months() {
    let t = months();
    let cases: Vec<(&str, Vec<DateTime<Utc>>)> = vec![
        ("last=3", vec![at(5, 31, 15), at(5, 31, 3), at(5, 30, 3)]),
        ("daily=3", vec![at(5, 31, 15), at(5, 30, 3), at(5, 29, 3)]),
        // 2026-05-31 is a Sunday: ISO week 22 is 05-25..05-31, week 21 ends 05-24.
        ("weekly=2", vec![at(5, 31, 15), at(5, 24, 3)]),
        ("monthly=2", vec![at(5, 31, 15), at(4, 30, 3)]),
        // More months asked for than exist: every month, and the oldest backup too.
        (
            "monthly=12",
            vec![
                at(5, 31, 15),
                at(4, 30, 3),
                at(3, 31, 3),
                at(2, 28, 3),
                at(1, 31, 3),
                at(1, 1, 3),
            ],
        ),
        ("yearly=1", vec![at(5, 31, 15)]),
        ("yearly=3", vec![at(5, 31, 15), at(1, 1, 3)]),
        // Relative to the newest backup (05-31 15:00), not to now.
        (
            "within=7d",
            std::iter::once(at(5, 31, 15))
                .chain((0..7).map(|d| at(5, 31, 3) - Duration::days(d)))
                .collect(),
        ),
        (
            "within=1w",
            std::iter::once(at(5, 31, 15))
                .chain((0..7).map(|d| at(5, 31, 3) - Duration::days(d)))
                .collect(),
        ),
    ];
    for (policy, expected) in cases {
        assert_eq!(kept(policy, &t), expected, "{policy}");
    }
    // A calendar month: everything after 04-30 15:00.
    assert_eq!(kept("within=1m", &t).len(), 32);
    assert_eq!(kept("within=1y", &t).len(), t.len());
}

#[test]
fn rules_combine_as_a_union_with_every_reason() {
    let t = months();
    let got = kept("daily=7,weekly=4,monthly=3", &t);
    let mut expected: Vec<DateTime<Utc>> = vec![at(5, 31, 15)];
    expected.extend((25..=30).rev().map(|d| at(5, d, 3)));
    expected.extend([
        at(5, 24, 3),
        at(5, 17, 3),
        at(5, 10, 3),
        at(4, 30, 3),
        at(3, 31, 3),
    ]);
    assert_eq!(got, expected);

    let p = Policy::parse_label("daily=7,weekly=4,monthly=3").unwrap();
    let d = plan(&p, &t, at(12, 31, 0));
    let newest = t.iter().position(|x| *x == at(5, 31, 15)).unwrap();
    assert_eq!(d[newest].reasons, ["newest", "daily", "weekly", "monthly"]);
    let april = t.iter().position(|x| *x == at(4, 30, 3)).unwrap();
    assert_eq!(d[april].reasons, ["monthly"]);
    let deleted = t.iter().position(|x| *x == at(5, 31, 3)).unwrap();
    assert_eq!(
        d[deleted],
        Decision {
            keep: false,
            reasons: vec![]
        }
    );
}

#[test]
fn hourly_and_the_safety_rules() {
    // Every 20 minutes for a day.
    let t: Vec<DateTime<Utc>> = (0..72)
        .map(|i| at(3, 1, 0) + Duration::minutes(20 * i))
        .collect();
    let got = kept("hourly=4", &t);
    let expected: Vec<DateTime<Utc>> = (20..24)
        .rev()
        .map(|h| at(3, 1, h) + Duration::minutes(40))
        .collect();
    assert_eq!(got, expected);

    // An empty policy keeps everything; the newest is kept by any policy.
    let all = plan(&Policy::default(), &t, at(12, 31, 0));
    assert!(all.iter().all(|d| d.keep));
    let only_old = Policy {
        keep_within: Some(Span::parse("1h").unwrap()),
        ..Default::default()
    };
    // A backup stamped in the future (clock skew) does not move the window: the window
    // is measured from the newest one that is not in the future.
    let mut skewed = t.clone();
    skewed.push(at(12, 1, 0));
    let d = plan(&only_old, &skewed, at(3, 2, 0));
    assert!(d.last().unwrap().keep, "the newest is always kept");
    assert_eq!(
        d.iter().filter(|d| d.keep).count(),
        1 + 3,
        "within 1h of 23:40"
    );
    assert!(plan(&only_old, &[], at(3, 2, 0)).is_empty());
}

#[test]
fn labels_and_spans_parse_or_say_why() {
    let p = Policy::parse_label("keep-last=2, daily=7,within=1y6m").unwrap();
    assert_eq!(p.keep_last, 2);
    assert_eq!(p.to_string(), "last=2,within=1y6m,daily=7");
    assert!(Policy::parse_label("all").unwrap().is_empty());
    for bad in [
        "",
        "daily",
        "daily=x",
        "fortnightly=2",
        "within=3q",
        "within=5",
        "within=1d1d",
    ] {
        assert!(Policy::parse_label(bad).is_err(), "{bad}");
    }
    assert_eq!(Span::parse("2w").unwrap().to_string(), "14d");
}

#[test]
fn absurd_spans_are_refused_and_never_overflow() {
    for text in ["4000000000d", "300000y1d", "999999999y", "4294967295w"] {
        let e = Span::parse(text).unwrap_err().to_string();
        assert!(
            e.contains("thousand years") || e.contains("not a span"),
            "{text}: {e}"
        );
    }
    let e = Policy::parse_label("within=4000000000d")
        .unwrap_err()
        .to_string();
    assert!(e.contains("thousand years"), "{e}");
    // The largest accepted span, measured back from a real date, saturates rather than panics.
    let longest = Span::parse("1000y").unwrap();
    let now = Utc::now();
    assert!(longest.before(now) < now);
    let huge = Span {
        years: u32::MAX,
        months: u32::MAX,
        days: u32::MAX,
        hours: u32::MAX,
    };
    assert_eq!(huge.before(now), DateTime::<Utc>::MIN_UTC);
    let long_label = "x".repeat(100_000);
    let e = Policy::parse_label(&long_label).unwrap_err().to_string();
    assert!(
        e.len() < 200,
        "a 100 kB label is not echoed whole: {} bytes",
        e.len()
    );
}
