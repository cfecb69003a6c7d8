//! Logging: the subscriber every command runs with.
//!
//! `STOWAGE_LOG` sets the levels (an `EnvFilter`: `debug`, `stowage=trace`, …; default
//! `info`). Whatever it says, events from other crates pass only at INFO and above:
//! dependencies' debug and trace output prints request and response bodies, and bollard's
//! holds every inspected container's environment and every exec's `Env` (passwords). stowage's
//! own events never carry a secret at any level (they hold [`crate::secret::Secret`]s, which
//! redact), so every level is safe to turn on.

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

/// Installs the subscriber: human-readable lines on stderr, levels from `STOWAGE_LOG`, other
/// crates capped at [`DEPENDENCY_LEVEL`].
pub fn init() {
    let levels = EnvFilter::try_from_env("STOWAGE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let cap = filter_fn(|meta| own(meta.target()) || *meta.level() <= DEPENDENCY_LEVEL);
    let layer = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(levels.and(cap));
    tracing_subscriber::registry().with(layer).init();
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
