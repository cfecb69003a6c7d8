//! The write path: dump stream → sha256 · zstd ([`super::compress`]: fixed or adaptive level,
//! optional worker threads) · (age) · sha256 → file ([`super::writeback`]), fsync.
//!
//! [`PipelineWriter::write`] gathers exec frames (7 KiB each from a plain pg_dump, 11–21 KiB
//! under `stdbuf`) into blocks, so there is one hand-over per block instead of one per frame.
//! When the disk or the compressor is slower than the dump, the channel fills, `write` waits,
//! the exec stream is not read, and the dump tool blocks on its pipe.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use sha2::{Digest, Sha256};

use super::adapt::{self, Adapt};
use super::compress::{Params, Zstd};
use super::encryption::Encryption;
use super::rows::{RowCounter, RowFormat};
use super::writeback::Writeback;
use super::{BLOCK_SIZE, CHANNEL_BLOCKS, Compression, HashingWriter, Level};

/// Sizes and hashes of what was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Bytes of the dump.
    pub raw_bytes: u64,
    /// Hex sha256 of the dump.
    pub raw_sha256: String,
    /// Bytes in the file.
    pub stored_bytes: u64,
    /// Hex sha256 of the file.
    pub stored_sha256: String,
    /// The zstd level: the fixed one, or the one that compressed the most when adaptive.
    pub level: i32,
    /// Dump bytes compressed at each level, when the level was adaptive (else empty).
    pub levels: BTreeMap<i32, u64>,
    /// Rows per table, when counting was asked for (see [`super::rows`]).
    pub rows: Option<BTreeMap<String, u64>>,
}

enum Msg {
    Data(Bytes),
    Finish,
}

/// The async end of the pipeline. Dropping it without [`PipelineWriter::finish`] abandons
/// the file's content (the caller removes the file).
pub struct PipelineWriter {
    tx: mpsc::Sender<Msg>,
    task: JoinHandle<io::Result<Written>>,
    block: BytesMut,
}

impl PipelineWriter {
    /// Starts the writer thread on an open, empty file; encrypts when `encryption` is given,
    /// counts rows per table when `rows` names the dump's format (on the writer thread, so
    /// counting never holds up the exec stream's async side).
    pub fn start(
        file: File,
        settings: Compression,
        encryption: Option<Arc<Encryption>>,
        rows: Option<RowFormat>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(CHANNEL_BLOCKS);
        let counter = rows.map(RowCounter::new);
        let task =
            tokio::task::spawn_blocking(move || write_all(file, settings, encryption, counter, rx));
        Self {
            tx,
            task,
            block: BytesMut::with_capacity(BLOCK_SIZE),
        }
    }

    /// Adds a chunk; hands a block to the writer thread when one is full, waiting while the
    /// channel is full.
    pub async fn write(&mut self, chunk: Bytes) -> io::Result<()> {
        if self.block.is_empty() && chunk.len() >= BLOCK_SIZE {
            return self.send(chunk).await;
        }
        self.block.extend_from_slice(&chunk);
        if self.block.len() >= BLOCK_SIZE {
            let block = self.block.split().freeze();
            self.block.reserve(BLOCK_SIZE);
            self.send(block).await?;
        }
        Ok(())
    }

    async fn send(&mut self, block: Bytes) -> io::Result<()> {
        if self.tx.send(Msg::Data(block)).await.is_err() {
            // The thread stopped early: its result says why.
            return Err(self.take_error().await);
        }
        Ok(())
    }

    /// Writes what is gathered, flushes the compressor, fsyncs the file and returns sizes
    /// and hashes.
    pub async fn finish(mut self) -> io::Result<Written> {
        if !self.block.is_empty() {
            let block = self.block.split().freeze();
            self.send(block).await?;
        }
        let _ = self.tx.send(Msg::Finish).await;
        self.task.await.map_err(io::Error::other)?
    }

    async fn take_error(&mut self) -> io::Error {
        match (&mut self.task).await {
            Ok(Err(e)) => e,
            Ok(Ok(_)) => io::Error::other("writer finished before the stream ended"),
            Err(e) => io::Error::other(e),
        }
    }
}

/// Where compressed bytes go: the hashed file, or age in front of it.
enum Sink {
    Plain(HashingWriter<Writeback>),
    Age(age::stream::StreamWriter<HashingWriter<Writeback>>),
}

impl Sink {
    fn finish(self) -> io::Result<HashingWriter<Writeback>> {
        match self {
            Self::Plain(w) => Ok(w),
            Self::Age(w) => w.finish(),
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(w) => w.write(buf),
            Self::Age(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(w) => w.flush(),
            Self::Age(w) => w.flush(),
        }
    }
}

fn write_all(
    file: File,
    settings: Compression,
    encryption: Option<Arc<Encryption>>,
    mut counter: Option<RowCounter>,
    mut rx: mpsc::Receiver<Msg>,
) -> io::Result<Written> {
    let stored = HashingWriter::new(Writeback::new(file));
    let sink = match encryption {
        Some(e) => Sink::Age(e.wrap(stored)?),
        None => Sink::Plain(stored),
    };
    let threads = settings.threads.resolve();
    let mut adapt = (settings.level == Level::Auto).then(Adapt::default);
    let params = match settings.level {
        Level::Fixed(n) => Params::level(n),
        Level::Auto => adapt::params(adapt::START),
    };
    let mut zstd = Zstd::new(sink, params, threads)?;
    let mut raw = Sha256::new();
    let mut raw_bytes = 0u64;
    loop {
        match rx.blocking_recv() {
            Some(Msg::Data(chunk)) => {
                raw.update(&chunk);
                raw_bytes += chunk.len() as u64;
                zstd.write_all(&chunk)?;
                if let Some(c) = &mut counter {
                    c.feed(&chunk);
                }
                if let Some(a) = &mut adapt {
                    // Blocks queued while this one was compressed: the dump waited.
                    let backlog = rx.len() >= CHANNEL_BLOCKS / 4;
                    if let Some(next) = a.record(chunk.len(), backlog, adapt::cpu_times) {
                        tracing::debug!(level = next, "adaptive compression: new level");
                        zstd = zstd.set_params(adapt::params(next))?;
                    }
                }
            }
            Some(Msg::Finish) => break,
            None => return Err(io::Error::other("pipeline abandoned")),
        }
    }
    let stored = zstd.finish()?.finish()?;
    let (file, stored_sha256, stored_bytes) = stored.into_parts();
    file.into_inner().sync_all()?;
    let (levels, level) = match adapt {
        Some(a) => a.finish(),
        None => (BTreeMap::new(), params.level),
    };
    Ok(Written {
        raw_bytes,
        raw_sha256: hex::encode(raw.finalize()),
        stored_bytes,
        stored_sha256,
        level,
        levels,
        rows: counter.map(|c| c.finish().0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[tokio::test]
    async fn output_is_standard_zstd_and_hashes_match() {
        let dir = std::env::temp_dir().join(format!("stowage-pipeline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.zst");
        let file = File::create(&path).unwrap();
        let mut w = PipelineWriter::start(
            file,
            Compression {
                level: Level::Fixed(3),
                threads: super::super::Threads::Fixed(0),
            },
            None,
            None,
        );
        let mut expected = Vec::new();
        for i in 0..20_000u32 {
            let chunk = format!("line {i} ünïcode\n").into_bytes();
            expected.extend_from_slice(&chunk);
            w.write(Bytes::from(chunk)).await.unwrap();
        }
        // A chunk larger than a block passes straight through, between small ones.
        let big = vec![b'x'; BLOCK_SIZE + 7];
        expected.extend_from_slice(&big);
        w.write(Bytes::from(big)).await.unwrap();
        expected.extend_from_slice(b"tail");
        w.write(Bytes::from_static(b"tail")).await.unwrap();
        let written = w.finish().await.unwrap();
        let stored = std::fs::read(&path).unwrap();
        assert_eq!(zstd::decode_all(&stored[..]).unwrap(), expected);
        assert_eq!(written.raw_bytes, expected.len() as u64);
        assert_eq!(written.raw_sha256, hex::encode(Sha256::digest(&expected)));
        assert_eq!(written.stored_bytes, stored.len() as u64);
        assert_eq!(written.stored_sha256, hex::encode(Sha256::digest(&stored)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn adaptive_level_with_workers_writes_standard_zstd_and_accounts_every_byte() {
        let dir = std::env::temp_dir().join(format!("stowage-adapt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.zst");
        let settings = Compression {
            level: Level::Auto,
            threads: super::super::Threads::Auto,
        };
        let mut w = PipelineWriter::start(File::create(&path).unwrap(), settings, None, None);
        let mut expected = Vec::new();
        // Three windows of text that compresses a little, so several decisions are taken.
        let mut x = 1u64;
        while expected.len() < 3 * adapt::WINDOW as usize {
            let mut line = Vec::with_capacity(64 * 1024);
            while line.len() < 64 * 1024 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                line.extend_from_slice(format!("{} row {}\n", x % 1000, x % 97).as_bytes());
            }
            expected.extend_from_slice(&line);
            w.write(Bytes::from(line)).await.unwrap();
        }
        let written = w.finish().await.unwrap();
        let stored = std::fs::read(&path).unwrap();
        assert_eq!(zstd::decode_all(&stored[..]).unwrap(), expected);
        assert_eq!(written.levels.values().sum::<u64>(), expected.len() as u64);
        assert!(written.levels.contains_key(&written.level));
        assert!(
            written
                .levels
                .keys()
                .all(|l| (adapt::MIN..=adapt::MAX).contains(l))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
