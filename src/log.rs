//! Logging: the subscriber every command runs with.
//!
//! `STOWAGE_LOG` sets the levels (an `EnvFilter`: `debug`, `stowage=trace`, …; default
//! `info`). Whatever it says, events from other crates pass only at INFO and above:
//! dependencies' debug and trace output prints request and response bodies, and bollard's
//! holds every inspected container's environment and every exec's `Env` (passwords). stowage's
//! own events never carry a secret at any level (they hold [`crate::secret::Secret`]s, which
//! redact), so every level is safe to turn on.
//!
//! `STOWAGE_LOG_FORMAT=json` writes one JSON object per line instead (for Loki, Vector and
//! the like): `timestamp`, `level`, `message` and the event's fields at the top level, the same
//! fields the text lines show as `key=value` (`target` is stowage's target name; the module
//! path is left out, so that key is never doubled).

use std::io::IsTerminal;

use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

/// The most verbose level other crates' events may have.
pub const DEPENDENCY_LEVEL: Level = Level::INFO;

/// Whether an event's target is stowage's own (the library or the binary).
fn own(target: &str) -> bool {
    target == "stowage" || target.starts_with("stowage::")
}

/// The log line format (`STOWAGE_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object per line.
    Json,
}

impl Format {
    /// Reads `STOWAGE_LOG_FORMAT`: `text` (or unset) or `json`.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var("STOWAGE_LOG_FORMAT")
            .as_deref()
            .map(str::trim)
        {
            Err(_) | Ok("" | "text") => Ok(Self::Text),
            Ok("json") => Ok(Self::Json),
            Ok(other) => Err(format!(
                "STOWAGE_LOG_FORMAT={other:?} is not a log format: use text or json"
            )),
        }
    }
}

/// Installs the subscriber: lines on stderr in `format`, levels from `STOWAGE_LOG`, other
/// crates capped at [`DEPENDENCY_LEVEL`].
pub fn init(format: Format) {
    let levels = EnvFilter::try_from_env("STOWAGE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let cap = filter_fn(|meta| own(meta.target()) || *meta.level() <= DEPENDENCY_LEVEL);
    let layer = match format {
        Format::Text => fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .boxed(),
        Format::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_target(false)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(layer.with_filter(levels.and(cap)))
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_own_targets_pass_below_info() {
        assert!(own("stowage"));
        assert!(own("stowage::backup"));
        assert!(!own("stowage_extra"));
        assert!(!own("bollard::docker"));
        assert!(Level::DEBUG > DEPENDENCY_LEVEL && Level::WARN < DEPENDENCY_LEVEL);
    }
}
