//! stowage: backs up the databases running in Docker containers.
//!
//! # Layout
//!
//! Data flows through the modules in this order (ARCHITECTURE.md has the picture):
//!
//! - [`config`]: typed configuration, defaults < file < `STOWAGE_*` environment.
//! - [`docker`]: the connection to the engine (socket, `DOCKER_HOST`, TLS).
//! - [`discovery`]: labelled containers, with image, state, labels and environment.
//! - [`labels`]: the `stowage.*` label vocabulary and value checks.
//! - [`engine`]: engine specs (`engines/*.toml`) and their interpreter.
//! - [`plan`]: containers → targets (or skip reasons), a pure function.
//! - [`schedule`]: cron schedules and next run times, in a time zone.
//! - [`scheduler`]: what is due when: jitter, missed runs, one run per target.
//! - [`helper`]: where commands run: the target, or a helper container with its volumes.
//! - [`exec`]: argv commands in containers, stdout streamed with backpressure.
//! - [`pipeline`]: sha256 · zstd · (age) · sha256 → file, on a bounded channel.
//! - [`encryption`]: age recipients, passphrase and identities.
//! - [`artifact`]: file names, temp files, atomic commit, manifests, crash clean-up.
//! - [`backup`]: one target's backup, step by step, with contextual errors.
//! - [`retention`]: restic's keep rules, a pure function.
//! - [`prune`]: retention applied to the backup directory.
//! - [`storage`]: remote object stores: verified uploads, listing, deletion.
//! - [`replicate`]: a target's artifacts to its storages, and remote retention.
//! - [`catalog`]: what is in the backup directory; listing and verification.
//! - [`restore`]: an artifact back into a container, verified first, streamed into stdin.
//! - [`daemon`]: `stowage run`'s loop: re-discovery, schedules, uploads, shutdown.
//! - [`cli`]: the command line (the binary's edge).
//! - [`secret`]: the redacting wrapper for secret strings.
//! - [`error_text`]: errors and their causes on one line, for logs and output.

pub mod alerts;
pub mod artifact;
pub mod backup;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod discovery;
pub mod docker;
pub mod encryption;
pub mod engine;
pub mod error_text;
pub mod exec;
pub mod helper;
pub mod http;
pub mod labels;
pub mod metrics;
pub mod pipeline;
pub mod plan;
pub mod prune;
pub mod replicate;
pub mod restore;
pub mod retention;
pub mod schedule;
pub mod scheduler;
pub mod secret;
pub mod status;
pub mod storage;
