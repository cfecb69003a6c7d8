//! The backup directory: one sub-directory per target, each artifact beside its manifest.
//!
//! - [`artifact`]: file names, temp files, the atomic commit, manifests, crash clean-up.
//! - [`cleanup`]: the directory lock, and removing what a crash left behind.
//! - [`catalog`]: what is there, listed and verified against manifests (reads only).
//! - [`prune`]: retention applied to a target's valid artifacts, and deletion.
//! - [`space`]: free space, checked before a backup starts.
//!
//! Nothing here knows engines or containers beyond the names a manifest records.

pub mod artifact;
pub mod catalog;
pub mod cleanup;
pub mod prune;
pub mod shrink;
pub mod space;
