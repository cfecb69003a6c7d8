//! The status page at `/` on the daemon's HTTP port: every target at a glance (last backup,
//! next run, last drill, storages, the last failure in plain words, sizes over the last
//! backups), a page per target with its artifacts, and a "Back up now" button. Server-side
//! HTML only; it works with JavaScript off. Who may see it: [`access`].

pub mod access;
pub mod data;
mod render;
mod words;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde::Deserialize;

pub use access::PageMode;
use data::Sources;

use crate::daemon::status::TriggerError;
use crate::secret::Secret;

/// What the page's handlers share.
#[derive(Clone)]
struct Page {
    sources: Arc<Sources>,
    token: Option<Secret>,
    mode: PageMode,
}

/// The page's routes (none when `mode` is off).
pub fn router(sources: Sources, token: Option<Secret>, mode: PageMode) -> Router {
    if mode == PageMode::Off {
        return Router::new();
    }
    let page = Page {
        sources: Arc::new(sources),
        token,
        mode,
    };
    Router::new()
        .route("/", get(overview))
        .route("/targets/{name}", get(target))
        .route("/targets/{name}/backup", post(backup))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .with_state(page)
}

/// An HTML answer with the page's headers.
fn html(code: StatusCode, markup: maud::Markup) -> Response {
    (code, access::PAGE_HEADERS, Html(markup.into_string())).into_response()
}

impl Page {
    /// `Ok(logged_in)` when the visitor may see targets; else the page to show instead.
    fn gate(&self, headers: &HeaderMap) -> Result<bool, Box<Response>> {
        let logged_in = access::logged_in(headers, self.token.as_ref());
        match (self.mode, &self.token) {
            (PageMode::Public, _) => Ok(logged_in),
            (_, None) => Err(Box::new(html(StatusCode::FORBIDDEN, render::no_token()))),
            (_, Some(_)) if logged_in => Ok(true),
            (_, Some(_)) => Err(Box::new(html(
                StatusCode::UNAUTHORIZED,
                render::login(None),
            ))),
        }
    }

    /// How the page is shown to this visitor.
    fn viewer(&self, logged_in: bool, flash: Flash) -> render::Viewer {
        render::Viewer {
            logged_in,
            csrf: self.token.as_ref().map(access::csrf).unwrap_or_default(),
            flash: flash.line(),
            now: Utc::now(),
        }
    }
}

#[derive(Deserialize)]
struct Flash {
    queued: Option<String>,
    busy: Option<String>,
}

impl Flash {
    /// Only names of real targets are echoed: a link cannot make the page say anything else.
    fn known(self, rows: &[data::Row]) -> Self {
        let keep = |n: Option<String>| n.filter(|n| rows.iter().any(|r| &r.view.name == n));
        Flash {
            queued: keep(self.queued),
            busy: keep(self.busy),
        }
    }

    fn line(self) -> Option<String> {
        match (self.queued, self.busy) {
            (Some(t), _) => Some(format!(
                "A backup of {t} was started: reload the page to follow it."
            )),
            (None, Some(t)) => Some(format!("A backup of {t} is already running.")),
            (None, None) => None,
        }
    }
}

async fn overview(State(p): State<Page>, headers: HeaderMap, Query(f): Query<Flash>) -> Response {
    let logged_in = match p.gate(&headers) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let rows = p.sources.rows(None).await;
    let flash = f.known(&rows);
    html(
        StatusCode::OK,
        render::overview(&rows, &p.viewer(logged_in, flash)),
    )
}

async fn target(
    State(p): State<Page>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(f): Query<Flash>,
) -> Response {
    let logged_in = match p.gate(&headers) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let rows = p.sources.rows(Some(&name)).await;
    let Some(row) = rows.first() else {
        return (
            StatusCode::NOT_FOUND,
            access::PAGE_HEADERS,
            "no such target\n",
        )
            .into_response();
    };
    let flash = f.known(&rows);
    html(
        StatusCode::OK,
        render::target(row, &p.viewer(logged_in, flash)),
    )
}

async fn login_form(State(p): State<Page>) -> Response {
    match p.token {
        None => html(StatusCode::FORBIDDEN, render::no_token()),
        Some(_) => html(StatusCode::OK, render::login(None)),
    }
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(p): State<Page>, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    let Some(token) = &p.token else {
        return html(StatusCode::FORBIDDEN, render::no_token());
    };
    if !access::same_origin(&headers) {
        return refused("a login from another site");
    }
    if !access::same(&f.token, token.expose()) {
        tracing::warn!("status page: a login with a wrong token");
        return html(
            StatusCode::UNAUTHORIZED,
            render::login(Some("That is not the token.")),
        );
    }
    (
        [(header::SET_COOKIE, access::set_cookie(Some(token)))],
        Redirect::to("/"),
    )
        .into_response()
}

async fn logout() -> Response {
    (
        [(header::SET_COOKIE, access::set_cookie(None))],
        Redirect::to("/"),
    )
        .into_response()
}

#[derive(Deserialize)]
struct ButtonForm {
    csrf: String,
}

async fn backup(
    State(p): State<Page>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<ButtonForm>,
) -> Response {
    let Some(token) = &p.token else {
        return html(StatusCode::FORBIDDEN, render::no_token());
    };
    if !access::logged_in(&headers, Some(token)) {
        return html(StatusCode::UNAUTHORIZED, render::login(None));
    }
    if !access::same_origin(&headers) || !access::same(&f.csrf, &access::csrf(token)) {
        return refused("a request from another site");
    }
    let back = |key: &str| {
        let name = url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>();
        Redirect::to(&format!("/?{key}={name}")).into_response()
    };
    match p.sources.status.trigger(&name) {
        Ok(()) => {
            tracing::info!(target = %name, "backup started from the status page");
            back("queued")
        }
        Err(TriggerError::Running) => back("busy"),
        Err(TriggerError::Unknown) => (StatusCode::NOT_FOUND, "no such target\n").into_response(),
        Err(TriggerError::Closed) => {
            (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
        }
    }
}

/// A cross-site request, refused and logged.
fn refused(what: &str) -> Response {
    tracing::warn!("status page: refused {what}");
    (
        StatusCode::FORBIDDEN,
        access::PAGE_HEADERS,
        format!("refused: {what}\n"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::view::TargetView;

    #[test]
    fn a_flash_names_only_real_targets() {
        let rows = vec![data::Row {
            view: TargetView::new("shop-db", None),
            artifacts: vec![],
            drills: vec![],
            next_drill: None,
            copies: vec![],
        }];
        let flash = |queued: &str| Flash {
            queued: Some(queued.to_string()),
            busy: None,
        };
        let line = flash("shop-db").known(&rows).line().unwrap();
        assert!(line.contains("A backup of shop-db was started"), "{line}");
        assert_eq!(
            flash("Your account is locked, call us").known(&rows).line(),
            None
        );
    }
}
