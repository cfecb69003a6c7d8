//! The byte pipeline between a dump stream and an artifact file, both ways.
//!
//! Write path ([`mod@write`]): sha256 of the raw dump, zstd ([`compress`]), optionally age,
//! sha256 of the stored bytes, file written out as it grows ([`writeback`]), fsync. Read path
//! ([`read`]): file, optionally age, zstd, sha256 of the raw dump, into blocks for a restore's
//! stdin. Both run their codecs on one blocking thread and
//! meet the async side at a bounded channel of [`CHANNEL_BLOCKS`] blocks of up to
//! [`BLOCK_SIZE`] bytes, so memory stays bounded whatever the dump size and the slower side
//! sets the pace (backpressure). This module knows nothing of containers or file names;
//! [`crate::local::artifact`] owns the files.

pub mod adapt;
pub mod compress;
pub mod encryption;
pub mod read;
pub mod rows;
pub mod sched;
pub mod write;
pub mod writeback;

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
    /// zstd level 1..=19, or `auto` (see [`adapt`]).
    pub level: Level,
    /// zstd worker threads; 0 = compress on the writer thread; `auto`: cores − 1, at least 1.
    pub threads: Threads,
}

/// A zstd level, or adaptive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// This level throughout.
    Fixed(i32),
    /// Starts at [`adapt::START`] and moves within [`adapt::MIN`]..=[`adapt::MAX`].
    Auto,
}

/// zstd worker threads, or as many as the machine has cores to spare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// This many (0: none, compression on the writer thread).
    Fixed(u32),
    /// Cores − 1, at least 1.
    Auto,
}

impl Threads {
    /// The number of zstd workers this means on this machine.
    pub fn resolve(self) -> u32 {
        match self {
            Self::Fixed(n) => n,
            Self::Auto => std::thread::available_parallelism()
                .map_or(1, |n| n.get().saturating_sub(1).max(1) as u32),
        }
    }
}

/// A number, or the word `auto` (also as a string from the environment: `"3"` or `"auto"`).
fn number_or_auto<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(i64),
        S(String),
    }
    match Raw::deserialize(d)? {
        Raw::N(n) => Ok(Some(n)),
        Raw::S(s) if s.trim().eq_ignore_ascii_case("auto") => Ok(None),
        Raw::S(s) => s.trim().parse().map(Some).map_err(|_| {
            serde::de::Error::custom(format!("{s:?} is neither a number nor \"auto\""))
        }),
    }
}

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match number_or_auto(d)? {
            None => Self::Auto,
            Some(n) => Self::Fixed(i32::try_from(n).unwrap_or(i32::MAX)),
        })
    }
}

impl<'de> Deserialize<'de> for Threads {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match number_or_auto(d)? {
            None => Self::Auto,
            Some(n) => Self::Fixed(u32::try_from(n).unwrap_or(u32::MAX)),
        })
    }
}

impl Compression {
    /// The problems with these settings, as (key, reason).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Level::Fixed(level) = self.level
            && !(1..=19).contains(&level)
        {
            out.push((
                "compression.level",
                format!("{level} is outside 1..=19 (or write \"auto\")"),
            ));
        }
        if let Threads::Fixed(threads) = self.threads
            && threads > 64
        {
            out.push((
                "compression.threads",
                format!("{threads} is more than 64 (or write \"auto\")"),
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
