//! The error policy, written once for every module.
//!
//! 1. **One typed error per module boundary.** A function another module calls returns that
//!    module's `thiserror` enum or struct, never `Result<_, String>` and never `anyhow`
//!    (`anyhow` lives only at the binary's edge, `cli`, and in tests).
//! 2. **Context is added, never replaced.** The underlying error stays reachable as the
//!    `#[source]`; the outer error adds what the user needs to find the problem: the
//!    container, the engine, the database, the storage and key, the step. `error_text`
//!    prints the whole chain on one line.
//! 3. **Every message says what to do** ("start it", "check helper_image", "free space in
//!    the backup directory"), unless the cause is self-explanatory.
//! 4. **Every error answers "can a retry help?"** through [`Temporary`]: a dropped
//!    connection, a 503 or a timeout is temporary; a wrong password, a missing database, a
//!    bad label or a full disk is not, until someone changes something. The daemon logs and
//!    alerts the answer, and its retry passes act on it.
//! 5. **Secrets never appear**: errors are built from names and [`crate::secret::Secret`]
//!    values are redacted; a URL that may hold a token is replaced by its storage or channel
//!    name.

/// Whether doing the same thing again, unchanged, may succeed.
pub trait Temporary {
    /// `true` for transient causes (network, timeouts, an engine that is restarting); `false`
    /// when something must change first (configuration, credentials, data, disk space).
    fn is_temporary(&self) -> bool;
}

/// The words an alert or log line uses for [`Temporary::is_temporary`].
pub fn retry_advice(temporary: bool) -> &'static str {
    if temporary {
        "this looks temporary: the next run may succeed by itself"
    } else {
        "this will fail again until the cause is fixed"
    }
}

/// Whether an I/O error is worth retrying: interruptions and timeouts are; a full disk, a
/// permission or a missing file is not.
pub fn io_is_temporary(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        Interrupted | TimedOut | WouldBlock | ConnectionReset | ConnectionAborted | BrokenPipe
    )
}
