//! The HTML (maud: escaped by default, no scripts): the overview, a target's page, the login
//! form and the page that explains how to turn the page on. Readable on a phone: one column
//! of cards that become a grid on wider screens.

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::data::{Artifact, CHART, Copy, Row};
use super::words;
use crate::drill::record::Outcome;
use crate::human;

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:.8rem 1rem;display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;justify-content:space-between}
header h1{font-size:1.15rem;margin:0}header a{color:#fff}
main{padding:1rem;display:grid;gap:1rem;grid-template-columns:repeat(auto-fill,minmax(min(100%,24rem),1fr))}
.card{background:#fff;border-radius:8px;padding:1rem;box-shadow:0 1px 3px #0002;overflow-wrap:anywhere}
.card h2{font-size:1.1rem;margin:0 0 .5rem;display:flex;gap:.5rem;align-items:center}
.badge{font-size:.75rem;padding:.1rem .5rem;border-radius:1rem;color:#fff}
.ok{background:#1a7f37}.failed{background:#c62828}.running{background:#1565c0}.never{background:#6b7280}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem .8rem;margin:0}dt{color:#555}dd{margin:0}
.why{background:#fdecea;border-left:4px solid #c62828;padding:.5rem;margin:.6rem 0}
.why p{margin:.2rem 0}.msg{font-family:monospace;font-size:.85rem;white-space:pre-wrap}
.flash{grid-column:1/-1;background:#e8f0fe;padding:.6rem 1rem;border-radius:8px}
button{font-size:1rem;padding:.4rem .9rem;border-radius:6px;border:1px solid #1d2330;background:#fff;cursor:pointer}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.3rem;border-bottom:1px solid #ddd;font-size:.9rem}
svg{width:100%;height:3rem;margin-top:.6rem;border-bottom:1px solid #ccc}
.cap{font-size:.75rem;color:#666;margin:.1rem 0 .6rem}
form.login{max-width:22rem;margin:3rem auto;background:#fff;padding:1.5rem;border-radius:8px;box-shadow:0 1px 3px #0002}
form.login input{width:100%;box-sizing:border-box;font-size:1rem;padding:.4rem;margin:.5rem 0 1rem}
";

/// A whole page.
fn page(title: &str, top: Markup, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header { h1 { a href="/" { "stowage" } } (top) }
                (body)
            }
        }
    }
}

/// The login form (`error`: why the last try failed).
pub fn login(error: Option<&str>) -> Markup {
    page(
        "stowage: log in",
        html! {},
        html! {
            form.login method="post" action="/login" {
                h2 { "Log in" }
                @if let Some(e) = error { p.why { (e) } }
                label for="token" { "API token (http.token)" }
                input #token type="password" name="token" autocomplete="current-password" required;
                button type="submit" { "Log in" }
            }
        },
    )
}

/// The page when `http.page = "token"` but no token is configured.
pub fn no_token() -> Markup {
    page(
        "stowage: set a token",
        html! {},
        html! {
            main {
                div.card {
                    h2 { "The status page needs a token" }
                    p { "The page shows your backups only to people who know the API token, and no token is configured." }
                    p { "Set " code { "http.token" } " in the config, or " code { "STOWAGE_HTTP__TOKEN_FILE" } " to a file that holds it (a Docker secret), and restart stowage. Then log in here with that token." }
                    p { "To show the page without a login, set " code { "http.page = \"public\"" } "; to serve no page, " code { "http.page = \"off\"" } "." }
                }
            }
        },
    )
}

/// What the header holds for a logged-in visitor, or a link to log in.
fn top(logged_in: bool, now: DateTime<Utc>) -> Markup {
    html! {
        span { "as of " (now.format("%Y-%m-%d %H:%M:%S UTC")) }
        @if logged_in {
            form method="post" action="/logout" { button type="submit" { "Log out" } }
        } @else {
            a href="/login" { "Log in" }
        }
    }
}

/// How the page is being viewed.
pub struct Viewer {
    /// Whether the button may be shown.
    pub logged_in: bool,
    /// The CSRF value the button's form carries.
    pub csrf: String,
    /// A line after a button press.
    pub flash: Option<String>,
    /// The time the page is made.
    pub now: DateTime<Utc>,
}

/// The overview: one card per target.
pub fn overview(rows: &[Row], v: &Viewer) -> Markup {
    let failed = rows
        .iter()
        .filter(|r| r.view.last_result == Some("failed"))
        .count();
    let title = format!("stowage: {} target(s), {failed} failing", rows.len());
    page(
        &title,
        top(v.logged_in, v.now),
        html! {
            main {
                @if let Some(f) = &v.flash { p.flash { (f) } }
                @if rows.is_empty() {
                    div.card { p { "No targets yet: label a database container with " code { "stowage.enable=true" } "." } }
                }
                @for row in rows { (card(row, v, true)) }
            }
        },
    )
}

/// One target with its artifacts.
pub fn target(row: &Row, v: &Viewer) -> Markup {
    page(
        &format!("stowage: {}", row.view.name),
        top(v.logged_in, v.now),
        html! {
            main {
                @if let Some(f) = &v.flash { p.flash { (f) } }
                (card(row, v, false))
                div.card style="grid-column:1/-1" {
                    h2 { "Artifacts (" (row.artifacts.len()) ")" }
                    table {
                        tr { th { "started" } th { "database" } th { "size" } th { "took" } th { "file" } }
                        @for a in row.artifacts.iter().rev() {
                            tr {
                                td { (a.at.format("%Y-%m-%d %H:%M UTC")) }
                                td { (a.database) }
                                td { (human::bytes(a.bytes)) }
                                td { (format!("{:.1} s", a.seconds)) }
                                td { (a.file) @if a.encrypted { " (age)" } }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// A target's card.
fn card(row: &Row, v: &Viewer, link: bool) -> Markup {
    let t = &row.view;
    let (class, state) = match (t.running, t.last_result) {
        (true, _) => ("running", "running"),
        (false, Some("failed")) => ("failed", "failed"),
        (false, Some(_)) => ("ok", "ok"),
        (false, None) if t.last_success.is_some() => ("ok", "ok"),
        (false, None) => ("never", "not yet run"),
    };
    html! {
        section.card {
            h2 {
                @if link { a href={ "/targets/" (t.name) } { (t.name) } } @else { (t.name) }
                span.badge.(class) { (state) }
            }
            dl {
                dt { "container" } dd { (t.container) }
                dt { "engine" } dd { (t.engine) }
                dt { "database" } dd { (t.databases) }
                dt { "last backup" } dd { (last_backup(row, v.now)) }
                dt { "next run" } dd { (when(t.next_run, v.now)) }
                dt { "last drill" } dd { (last_drill(row, v.now)) }
                dt { "storages" } dd { (storages(&row.copies)) }
            }
            @if let Some((reason, message)) = &t.last_error {
                div.why {
                    p { strong { (words::reason(reason)) } }
                    p.msg { (crate::error_text::shorten(message, 600)) }
                }
            }
            (chart(row.sizes()))
            @if v.logged_in {
                form method="post" action={ "/targets/" (t.name) "/backup" } {
                    input type="hidden" name="csrf" value=(&v.csrf);
                    button type="submit" disabled[t.running] { "Back up now" }
                }
            }
        }
    }
}

fn last_backup(row: &Row, now: DateTime<Utc>) -> Markup {
    match (row.newest(), row.view.last_success) {
        (Some(a), _) => html! {
            (human::age(now - a.at)) " ago · " (human::bytes(a.bytes)) " · took "
            (format!("{:.1} s", a.seconds))
        },
        (None, Some(at)) => html! { (human::age(now - at)) " ago (no local copy)" },
        (None, None) => html! { "none yet" },
    }
}

fn when(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Markup {
    match at {
        Some(t) => html! { (t.format("%Y-%m-%d %H:%M UTC")) " (in " (human::age(t - now)) ")" },
        None => html! { "not scheduled" },
    }
}

fn last_drill(row: &Row, now: DateTime<Utc>) -> Markup {
    let Some(r) = row.drills.first() else {
        return match row.next_drill {
            Some(at) => html! { "none yet; next " (when(Some(at), now)) },
            None => html! { "off" },
        };
    };
    let outcome = match r.outcome {
        Outcome::Passed => "passed",
        Outcome::Failed => "FAILED",
        Outcome::Skipped => "skipped",
    };
    html! {
        (outcome) " " (human::age(now - r.started_at)) " ago (" (r.database) ")"
        @if let Some(reason) = &r.reason { ": " (words::reason(reason)) }
    }
}

fn storages(copies: &[(String, Copy)]) -> Markup {
    html! {
        @if copies.is_empty() { "local only" }
        @for (i, (name, copy)) in copies.iter().enumerate() {
            @if i > 0 { br; }
            (name) ": "
            @match copy {
                Copy::Held => "holds the newest backup",
                Copy::Missing => "does not hold the newest backup yet",
                Copy::NoLocal => "no local backup to compare with",
                Copy::Unknown(why) => { "unknown (" (why) ")" },
            }
        }
    }
}

/// Bars of the last backups' sizes; a backup under half the one before is red.
fn chart(sizes: &[Artifact]) -> Markup {
    let max = sizes.iter().map(|a| a.bytes).max().unwrap_or(0).max(1);
    let slot = 10;
    let width = CHART * slot;
    let label = format!("sizes of the last {} backups", sizes.len());
    html! {
        @if !sizes.is_empty() {
            svg viewBox={ "0 0 " (width) " 40" } preserveAspectRatio="none" role="img" aria-label=(label) {
                @for (i, a) in sizes.iter().enumerate() {
                    @let h = ((a.bytes as f64 / max as f64) * 38.0).max(1.0);
                    @let drop = i > 0 && a.bytes * 2 < sizes[i - 1].bytes;
                    rect x=(i * slot + 1) y=(format!("{:.1}", 40.0 - h)) width=(slot - 2) height=(format!("{:.1}", h))
                        fill=(if drop { "#c62828" } else { "#5b8def" }) {
                        title { (a.at.format("%Y-%m-%d %H:%M")) ": " (human::bytes(a.bytes)) " (" (a.database) ")" }
                    }
                }
            }
            p.cap { (label) ", oldest left; a red bar is under half the one before" }
        }
    }
}
