//! Who may see the status page and press its button.
//!
//! `http.page = "token"` (the default) shows a login form until the browser holds the session
//! cookie, which the form sets from the API token: `HttpOnly` (scripts cannot read it),
//! `SameSite=Strict` (other sites' pages cannot send it). The cookie holds a value derived
//! from the token, not the token, so a copied cookie is no API credential. `"public"` shows
//! the page to anyone (the button still needs the login); `"off"` serves no page.
//!
//! A POST (log in, back up now) is also refused unless its `Origin` (or, without one, its
//! `Referer`) is this server, and the button's form carries a CSRF value derived from the
//! token: three independent checks against a cross-site request.

use axum::http::{HeaderMap, header};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// The cookie's name.
pub const COOKIE: &str = "stowage_session";

/// `http.page`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PageMode {
    /// A login with the API token.
    #[default]
    Token,
    /// Anyone may look; the button needs the login.
    Public,
    /// No page.
    Off,
}

/// A value derived from the token for one purpose (hex SHA-256 of purpose and token).
fn derive(purpose: &str, token: &Secret) -> String {
    let mut h = Sha256::new();
    h.update(b"stowage status page\0");
    h.update(purpose.as_bytes());
    h.update(b"\0");
    h.update(token.expose().as_bytes());
    hex::encode(h.finalize())
}

/// The session cookie's value for `token`.
pub fn session(token: &Secret) -> String {
    derive("session", token)
}

/// The CSRF value forms carry.
pub fn csrf(token: &Secret) -> String {
    derive("csrf", token)
}

/// Equal, in time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Whether the request carries the session cookie of `token`.
pub fn logged_in(headers: &HeaderMap, token: Option<&Secret>) -> bool {
    let Some(token) = token else {
        return false;
    };
    let want = session(token);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(name, value)| name == COOKIE && same(value, &want))
}

/// The `Set-Cookie` value that logs in (`Some(token)`) or out.
pub fn set_cookie(token: Option<&Secret>) -> String {
    match token {
        Some(t) => format!(
            "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000",
            session(t)
        ),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    }
}

/// Whether a POST comes from a page of this server: its `Origin` (else `Referer`) names the
/// `Host` it was sent to. A request with neither is refused: browsers send `Origin` on
/// every form POST.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let from = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| url::Url::parse(v).ok());
    from.is_some_and(|u| {
        let authority = match u.port() {
            Some(p) => format!("{}:{p}", u.host_str().unwrap_or("")),
            None => u.host_str().unwrap_or("").to_string(),
        };
        authority.eq_ignore_ascii_case(host)
    })
}

/// Headers every page answer carries: no caching, no framing, no scripts, forms only to
/// this server.
pub const PAGE_HEADERS: [(header::HeaderName, &str); 4] = [
    (header::CACHE_CONTROL, "no-store"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "same-origin"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn the_cookie_is_derived_and_checked() {
        let t = Secret::new("tok");
        let value = session(&t);
        assert_ne!(value, "tok");
        assert_ne!(value, csrf(&t));
        let cookie = format!("a=b; {COOKIE}={value}");
        assert!(logged_in(&headers(&[("cookie", &cookie)]), Some(&t)));
        assert!(!logged_in(
            &headers(&[("cookie", &cookie)]),
            Some(&Secret::new("other"))
        ));
        assert!(!logged_in(
            &headers(&[("cookie", "stowage_session=tok")]),
            Some(&t)
        ));
        assert!(!logged_in(&headers(&[("cookie", &cookie)]), None));
        assert!(set_cookie(Some(&t)).contains("HttpOnly; SameSite=Strict"));
    }

    #[test]
    fn only_this_server_may_post() {
        let host = ("host", "127.0.0.1:9847");
        assert!(same_origin(&headers(&[
            host,
            ("origin", "http://127.0.0.1:9847")
        ])));
        assert!(same_origin(&headers(&[
            host,
            ("referer", "http://127.0.0.1:9847/x")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "http://127.0.0.1:9848")
        ])));
        assert!(!same_origin(&headers(&[host, ("origin", "null")])));
        assert!(!same_origin(&headers(&[host])));
    }
}
