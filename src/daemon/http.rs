//! The daemon's one HTTP port: `/metrics`, `/healthz`, `/readyz`, a small JSON API, and the
//! status page ([`crate::daemon::page`]).
//!
//! `/metrics` (Prometheus text format), `/healthz` (the process answers) and `/readyz` (the
//! Docker engine answered at the last look; 503 with the reason otherwise) need no token. The
//! API needs `Authorization: Bearer <http.token>`, and is off (403) while no token is
//! configured:
//! - `GET /api/targets`: every target with its schedule, next run and last result;
//! - `GET /api/artifacts[?target=NAME]`: the local artifacts;
//! - `POST /api/targets/NAME/backup`: back NAME up now (202; 404 unknown; 409 running).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::daemon::drills::Drills;
use crate::daemon::page::PageMode;
use crate::daemon::page::data::Sources;
use crate::daemon::status::{Status, TriggerError};
use crate::local::catalog;
use crate::secret::Secret;

/// `[http]` in config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// `host:port` to listen on; empty: no HTTP server.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Bearer token for the API; unset: the API is off.
    #[serde(default)]
    pub token: Option<Secret>,
    /// The status page at `/`: `token` (a login with the token), `public` or `off`.
    #[serde(default)]
    pub page: PageMode,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            token: None,
            page: PageMode::default(),
        }
    }
}

impl HttpConfig {
    /// The problems with these settings, as (key, reason).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !self.listen.is_empty() {
            let port = self.listen.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
            if !matches!(port, Some(Ok(_))) {
                out.push((
                    "http.listen",
                    format!(
                        "{:?} is not host:port (e.g. 0.0.0.0:9847); leave it empty for no HTTP server",
                        self.listen
                    ),
                ));
            }
        }
        if let Some(t) = &self.token
            && t.expose().trim().is_empty()
        {
            out.push((
                "http.token",
                "is empty or white space, which would leave the API without protection; set a real token or remove the key (the API is then off)".into(),
            ));
        }
        out
    }
}

fn default_listen() -> String {
    "0.0.0.0:9847".into()
}

#[derive(Clone)]
struct App {
    status: Arc<Status>,
    drills: Arc<Drills>,
    token: Option<Secret>,
    backup_dir: PathBuf,
}

/// Binds `config.listen` now (so a taken port is a start-up error) and serves the API and
/// the status page in the background.
pub async fn serve(config: &HttpConfig, sources: Sources) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(&config.listen).await?;
    let addr = listener.local_addr()?;
    let token = config.token.clone();
    let app = App {
        status: sources.status.clone(),
        drills: sources.drills.clone(),
        token: token.clone(),
        backup_dir: sources.backup_dir.clone(),
    };
    let page = crate::daemon::page::router(sources, token, config.page);
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/targets", get(targets))
        .route("/api/artifacts", get(artifacts))
        .route("/api/targets/{name}/backup", post(trigger))
        .route("/api/drills", get(list_drills))
        .route("/api/targets/{name}/drill", post(trigger_drill))
        .with_state(app)
        .merge(page);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!("the HTTP server stopped: {e}");
        }
    });
    let page = match config.page {
        PageMode::Off => "no status page",
        PageMode::Token => "status page at / (login with the token)",
        PageMode::Public => "status page at / (public)",
    };
    tracing::info!(%addr, "HTTP server listening: /metrics /healthz /readyz /api; {page}");
    Ok(addr)
}

async fn metrics(State(app): State<App>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.status.metrics.render(),
    )
        .into_response()
}

async fn readyz(State(app): State<App>) -> Response {
    match app.status.ready() {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()).into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

/// Checks the bearer token; `Some` is the refusal to send.
fn refuse(app: &App, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &app.token else {
        return Some(error(
            StatusCode::FORBIDDEN,
            "the API is off: set http.token (or STOWAGE_HTTP__TOKEN_FILE) to use it",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), token.expose().as_bytes()) {
        None
    } else {
        Some(error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
        ))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

fn error(code: StatusCode, message: &str) -> Response {
    (code, axum::Json(ErrorBody { error: message })).into_response()
}

async fn targets(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Some(r) = refuse(&app, &headers) {
        return r;
    }
    axum::Json(app.status.targets()).into_response()
}

#[derive(Deserialize)]
struct ArtifactQuery {
    target: Option<String>,
}

#[derive(Serialize)]
struct ArtifactView {
    target: String,
    file: String,
    state: &'static str,
    started_at: Option<chrono::DateTime<chrono::Utc>>,
    engine: Option<String>,
    database: Option<String>,
    stored_bytes: Option<u64>,
    encrypted: Option<bool>,
}

async fn artifacts(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<ArtifactQuery>,
) -> Response {
    if let Some(r) = refuse(&app, &headers) {
        return r;
    }
    let targets: Vec<String> = q.target.into_iter().collect();
    let dir = app.backup_dir.clone();
    let listed = tokio::task::spawn_blocking(move || catalog::list(&dir, &targets)).await;
    match listed {
        Ok(Ok(listed)) => axum::Json(
            listed
                .iter()
                .map(|l| {
                    let m = l.manifest.as_ref().ok();
                    ArtifactView {
                        target: l.target.clone(),
                        file: l
                            .path
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        state: l.state(),
                        started_at: m.map(|m| m.started_at),
                        engine: m.map(|m| m.engine.clone()),
                        database: m.map(|m| m.database.clone()),
                        stored_bytes: m.map(|m| m.stored.bytes),
                        encrypted: m.map(|m| m.stored.encrypted),
                    }
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn list_drills(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Some(r) = refuse(&app, &headers) {
        return r;
    }
    axum::Json(app.drills.views()).into_response()
}

async fn trigger_drill(
    State(app): State<App>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    if let Some(r) = refuse(&app, &headers) {
        return r;
    }
    queued(
        app.drills.trigger(&name),
        &name,
        "a drill of this target is running",
    )
}

async fn trigger(State(app): State<App>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    if let Some(r) = refuse(&app, &headers) {
        return r;
    }
    queued(
        app.status.trigger(&name),
        &name,
        "a backup of this target is running",
    )
}

/// The answer to a manual trigger.
fn queued(result: Result<(), TriggerError>, name: &str, running: &str) -> Response {
    match result {
        Ok(()) => (
            StatusCode::ACCEPTED,
            axum::Json(serde_json::json!({ "queued": name })),
        )
            .into_response(),
        Err(TriggerError::Unknown) => error(StatusCode::NOT_FOUND, "no such target"),
        Err(TriggerError::Running) => error(StatusCode::CONFLICT, running),
        Err(TriggerError::Closed) => error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
