//! The connection to the Docker engine.
//!
//! Follows the Docker CLI's conventions: the unix socket `/var/run/docker.sock` by default,
//! `DOCKER_HOST` (`unix://`, `tcp://`, `http://`, `https://`), and TLS with client
//! certificates from `DOCKER_CERT_PATH` (default `~/.docker`) when `DOCKER_TLS_VERIFY` is set
//! or the scheme is `https://`. The API version is negotiated, so older engines work. This
//! module only connects; what is done over the connection lives in [`exec`] and [`crate::discover`].

pub mod exec;
pub mod pending;

use std::path::PathBuf;

use bollard::{API_DEFAULT_VERSION, Docker};

/// Seconds bollard waits for a response's headers. It does not bound a streaming exec's body.
const REQUEST_TIMEOUT: u64 = 120;

/// The engine could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// `DOCKER_HOST` has a scheme stowage does not speak.
    #[error(
        "DOCKER_HOST={0} is not supported: use unix:///path, tcp://host:port, http:// or https://"
    )]
    Unsupported(String),
    /// Connecting, negotiating or pinging failed.
    #[error("cannot reach the Docker engine at {endpoint}: {source}. {hint}")]
    Unreachable {
        /// Where stowage tried.
        endpoint: String,
        /// What to check.
        hint: &'static str,
        /// Why.
        #[source]
        source: bollard::errors::Error,
    },
    /// The engine's name (the default `host`) cannot be read or used.
    #[error(
        "cannot use the Docker engine's name as this host's name in storages ({reason}); set `host` in the configuration"
    )]
    Name {
        /// Why.
        reason: String,
    },
}

impl crate::error::Temporary for ConnectError {
    fn is_temporary(&self) -> bool {
        match self {
            Self::Unsupported(_) | Self::Name { .. } => false,
            Self::Unreachable { source, .. } => exec::api_is_temporary(source),
        }
    }
}

/// Where and how to connect, read from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket path.
    Unix(String),
    /// Plain HTTP to `host:port`.
    Http(String),
    /// HTTPS with client certificates from a directory (key.pem, cert.pem, ca.pem).
    Tls {
        /// `host:port`.
        addr: String,
        /// Directory of the PEM files.
        cert_path: PathBuf,
    },
}

impl Endpoint {
    /// Reads `DOCKER_HOST`, `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH` as the Docker CLI does.
    pub fn from_env() -> Result<Self, ConnectError> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self::from_parts(
            get("DOCKER_HOST").as_deref(),
            get("DOCKER_TLS_VERIFY").is_some_and(|v| v != "0"),
            get("DOCKER_CERT_PATH").map(PathBuf::from),
            get("HOME").map(PathBuf::from),
        )
    }

    fn from_parts(
        host: Option<&str>,
        tls_verify: bool,
        cert_path: Option<PathBuf>,
        home: Option<PathBuf>,
    ) -> Result<Self, ConnectError> {
        let host = host.unwrap_or("unix:///var/run/docker.sock");
        let cert_path = || {
            cert_path
                .clone()
                .or_else(|| home.clone().map(|h| h.join(".docker")))
                .unwrap_or_else(|| PathBuf::from("/root/.docker"))
        };
        if let Some(path) = host.strip_prefix("unix://") {
            return Ok(Self::Unix(path.to_string()));
        }
        for (scheme, tls) in [
            ("tcp://", tls_verify),
            ("http://", false),
            ("https://", true),
        ] {
            if let Some(addr) = host.strip_prefix(scheme) {
                let addr = addr.trim_end_matches('/').to_string();
                return Ok(if tls {
                    Self::Tls {
                        addr,
                        cert_path: cert_path(),
                    }
                } else {
                    Self::Http(addr)
                });
            }
        }
        Err(ConnectError::Unsupported(host.to_string()))
    }

    fn describe(&self) -> String {
        match self {
            Self::Unix(p) => format!("unix://{p}"),
            Self::Http(a) => format!("tcp://{a}"),
            Self::Tls { addr, cert_path } => {
                format!(
                    "tcp://{addr} (TLS, certificates in {})",
                    cert_path.display()
                )
            }
        }
    }
}

/// Connects, negotiates the API version and pings the engine.
pub async fn connect() -> Result<Docker, ConnectError> {
    let endpoint = Endpoint::from_env()?;
    connect_to(&endpoint).await
}

/// Connects to a given endpoint. See [`connect`].
pub async fn connect_to(endpoint: &Endpoint) -> Result<Docker, ConnectError> {
    let hint = match endpoint {
        Endpoint::Unix(_) => {
            "Is the engine running, and is the socket mounted into stowage's container (-v /var/run/docker.sock:/var/run/docker.sock)?"
        }
        Endpoint::Http(_) => "Is the engine listening there? Set DOCKER_HOST to its address.",
        Endpoint::Tls { .. } => {
            "Check the address and that DOCKER_CERT_PATH holds key.pem, cert.pem and ca.pem for it."
        }
    };
    let fail = |source| ConnectError::Unreachable {
        endpoint: endpoint.describe(),
        hint,
        source,
    };
    let docker = match endpoint {
        Endpoint::Unix(path) => {
            Docker::connect_with_unix(path, REQUEST_TIMEOUT, API_DEFAULT_VERSION)
        }
        Endpoint::Http(addr) => {
            Docker::connect_with_http(addr, REQUEST_TIMEOUT, API_DEFAULT_VERSION)
        }
        Endpoint::Tls { addr, cert_path } => Docker::connect_with_ssl(
            addr,
            &cert_path.join("key.pem"),
            &cert_path.join("cert.pem"),
            &cert_path.join("ca.pem"),
            REQUEST_TIMEOUT,
            API_DEFAULT_VERSION,
        ),
    }
    .map_err(fail)?;
    let docker = docker.negotiate_version().await.map_err(fail)?;
    docker.ping().await.map_err(fail)?;
    Ok(docker)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(host: Option<&str>, tls: bool) -> Endpoint {
        Endpoint::from_parts(host, tls, None, Some(PathBuf::from("/home/u"))).unwrap()
    }

    #[test]
    fn endpoints_follow_the_docker_cli() {
        assert_eq!(
            ep(None, false),
            Endpoint::Unix("/var/run/docker.sock".into())
        );
        assert_eq!(
            ep(Some("unix:///run/d.sock"), false),
            Endpoint::Unix("/run/d.sock".into())
        );
        assert_eq!(
            ep(Some("tcp://h:2375"), false),
            Endpoint::Http("h:2375".into())
        );
        assert_eq!(
            ep(Some("tcp://h:2376/"), true),
            Endpoint::Tls {
                addr: "h:2376".into(),
                cert_path: "/home/u/.docker".into()
            }
        );
        assert!(matches!(
            ep(Some("https://h:2376"), false),
            Endpoint::Tls { .. }
        ));
        let with_path =
            Endpoint::from_parts(Some("tcp://h:1"), true, Some("/certs".into()), None).unwrap();
        assert_eq!(
            with_path,
            Endpoint::Tls {
                addr: "h:1".into(),
                cert_path: "/certs".into()
            }
        );
        assert!(Endpoint::from_parts(Some("ssh://h"), false, None, None).is_err());
    }

    #[tokio::test]
    async fn unreachable_engine_is_an_error_not_a_panic() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let err = connect_to(&Endpoint::Unix("/nonexistent/docker.sock".into()))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("unix:///nonexistent/docker.sock"), "{err}");
        assert!(err.contains("socket mounted"), "{err}");
    }
}
