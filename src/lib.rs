//! stowage: backs up the databases running in Docker containers.
//!
//! # Layout
//!
//! The folders follow the data path (ARCHITECTURE.md has the picture). Each module depends
//! only on modules listed above it; `tests/module_graph.rs` fails on any import circle.
//!
//! - [`fault`]: named crash points for the fault suite (debug builds only).
//! - [`secret`], [`error_text`], [`error`], [`log`]: the redacting wrapper for secrets, errors
//!   on one line, the error policy every module follows (context kept, retry answered), and
//!   logging (other crates capped at INFO, so no level prints a container's environment).
//! - [`docker`]: the connection to the engine, and argv execs with streamed stdout.
//! - [`discover`]: labelled containers (Swarm task containers named for their service) and
//!   the `stowage.*` label vocabulary.
//! - [`engine`]: engine specs (`engines/*.toml`), their interpreter, where commands run
//!   (the target or a helper container), and credentials read inside containers.
//! - [`schedule`], [`retention`]: cron times in a zone, and restic's keep rules; both pure.
//! - [`plan`]: containers → targets (or skip reasons), a pure function.
//! - [`pipeline`]: sha256 · zstd · (age) · sha256 → file, and the reverse for restores.
//! - [`local`]: the backup directory: artifact files and manifests, listing, pruning.
//! - [`remote`]: object storage: verified uploads, the copies each storage holds, replication,
//!   host prefixes in a shared storage, and leases between daemons.
//! - [`backup`]: one database of one target, from exec to committed artifact.
//! - [`restore`]: an artifact back into a container, verified first.
//! - [`drill`]: restore drills: the newest artifact into a throwaway container, its rows and
//!   checks compared, a record written.
//! - [`job`]: one target's run (each database, local retention, upload), target selection
//!   and the concurrency limit; the CLI and the daemon both run targets through it.
//! - [`daemon`]: `stowage run`: scheduling, leases before scheduled runs, status, metrics,
//!   HTTP, alerts.
//! - [`config`]: defaults < file < environment; gathers each component's section and checks
//!   them all before any command works.
//! - [`app`]: a checked configuration turned into the live parts a command uses (the Docker
//!   connection, this host's name, storages scoped to it).
//! - [`cli`]: the command line (the binary's edge): parsing, printing, exit codes.

pub mod app;
pub mod backup;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod discover;
pub mod docker;
pub mod drill;
pub mod engine;
pub mod error;
pub mod error_text;
pub mod fault;
pub mod human;
pub mod job;
pub mod local;
pub mod log;
pub mod pipeline;
pub mod plan;
pub mod remote;
pub mod restore;
pub mod retention;
pub mod schedule;
pub mod secret;
