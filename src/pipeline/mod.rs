//! The byte pipeline between a dump stream and an artifact file, both ways.
//!
//! Write path ([`mod@write`]): sha256 of the raw dump, zstd, optionally age, sha256 of the stored
//! bytes, file, fsync. Read path ([`read`]): file, optionally age, zstd, sha256 of the raw
//! dump, into blocks for a restore's stdin. Both run their codecs on one blocking thread and
//! meet the async side at a bounded channel of [`CHANNEL_BLOCKS`] blocks of up to
//! [`BLOCK_SIZE`] bytes, so memory stays bounded whatever the dump size and the slower side
//! sets the pace (backpressure). This module knows nothing of containers or file names;
//! [`crate::local::artifact`] owns the files.

pub mod encryption;
pub mod read;
pub mod rows;
pub mod write;

use std::io::{self, Write};

use serde::Deserialize;
use sha2::{Digest, Sha256};

pub use write::{PipelineWriter, Written};

/// Blocks in flight between the async side and the blocking thread.
pub const CHANNEL_BLOCKS: usize = 16;
/// Size a block is gathered to before it crosses the channel.
pub const BLOCK_SIZE: usize = 128 * 1024;

/// `[compression]` in config: how dumps are compressed.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compression {
    /// zstd level, 1..=19.
    pub level: i32,
    /// zstd worker threads; 0 = compress on the writer thread.
    pub threads: u32,
}

impl Compression {
    /// The problems with these settings, as (key, reason).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !(1..=19).contains(&self.level) {
            out.push((
                "compression.level",
                format!("{} is outside 1..=19", self.level),
            ));
        }
        if self.threads > 64 {
            out.push((
                "compression.threads",
                format!("{} is more than 64", self.threads),
            ));
        }
        out
    }
}

/// A writer that hashes and counts what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The inner writer, the hex sha256 and the byte count.
    pub fn into_parts(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
