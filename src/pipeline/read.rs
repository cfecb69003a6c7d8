//! The read path: artifact file → (age) → zstd → blocks, with the raw dump's sha256.
//!
//! A restore (or any reader of an artifact's content) gets the decompressed dump as
//! [`BLOCK_SIZE`] blocks on a channel of [`CHANNEL_BLOCKS`]; the decoding runs on a blocking
//! thread and waits while the channel is full, so a slow database slows the reader down and
//! memory stays bounded.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::encryption::{EncryptionInfo, Identities};
use super::rows::{RowCounter, RowFormat};
use super::{BLOCK_SIZE, CHANNEL_BLOCKS};

/// The keys for an encrypted artifact and what its manifest says about them.
pub type Decryption = (Arc<Identities>, Option<EncryptionInfo>);

/// What the reader thread found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadSummary {
    /// Raw bytes.
    pub bytes: u64,
    /// Their hex sha256.
    pub sha256: String,
    /// Rows per table, when counting was asked for.
    pub rows: Option<BTreeMap<String, u64>>,
}

/// The reader thread's result.
pub type ReadDone = io::Result<ReadSummary>;

/// Starts reading `path` on a blocking thread; the blocks arrive on the receiver, the sizes
/// and hash (and row counts, when `rows` names the dump's format) when the handle completes.
/// Counting runs on the reader thread, beside decompression.
pub fn spawn(
    path: &Path,
    decryption: Option<Decryption>,
    rows: Option<RowFormat>,
) -> (mpsc::Receiver<Bytes>, JoinHandle<ReadDone>) {
    let (tx, rx) = mpsc::channel::<Bytes>(CHANNEL_BLOCKS);
    let path: PathBuf = path.to_path_buf();
    let counter = rows.map(RowCounter::new);
    let task = tokio::task::spawn_blocking(move || decompress(&path, decryption, counter, tx));
    (rx, task)
}

/// Reads (decrypts) and decompresses the artifact into blocks; returns the raw size and
/// sha256.
fn decompress(
    path: &Path,
    decryption: Option<Decryption>,
    mut counter: Option<RowCounter>,
    tx: mpsc::Sender<Bytes>,
) -> ReadDone {
    let file = io::BufReader::new(File::open(path)?);
    let input: Box<dyn Read> = match decryption {
        Some((ids, info)) => Box::new(ids.open(file, info.as_ref()).map_err(io::Error::other)?),
        None => Box::new(file),
    };
    let mut decoder = zstd::stream::read::Decoder::new(input)?;
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    loop {
        let mut block = vec![0u8; BLOCK_SIZE];
        let mut filled = 0;
        while filled < BLOCK_SIZE {
            let n = decoder.read(&mut block[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            return Ok(ReadSummary {
                bytes: total,
                sha256: hex::encode(hasher.finalize()),
                rows: counter.map(|c| c.finish().0),
            });
        }
        block.truncate(filled);
        hasher.update(&block);
        if let Some(c) = &mut counter {
            c.feed(&block);
        }
        total += filled as u64;
        if tx.blocking_send(Bytes::from(block)).is_err() {
            return Err(io::Error::other("the restore stopped reading"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{Compression, PipelineWriter};

    #[tokio::test]
    async fn reads_back_what_the_writer_wrote() {
        let dir = std::env::temp_dir().join(format!("stowage-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.zst");
        let compression = Compression {
            level: crate::pipeline::Level::Fixed(3),
            threads: crate::pipeline::Threads::Fixed(0),
        };
        let mut w = PipelineWriter::start(File::create(&path).unwrap(), compression, None, None);
        let data: Vec<u8> = (0..400_000u32).flat_map(|i| i.to_le_bytes()).collect();
        w.write(Bytes::from(data.clone())).await.unwrap();
        let written = w.finish().await.unwrap();
        let (mut rx, task) = spawn(&path, None, None);
        let mut back = Vec::new();
        while let Some(block) = rx.recv().await {
            assert!(block.len() <= BLOCK_SIZE);
            back.extend_from_slice(&block);
        }
        let read = task.await.unwrap().unwrap();
        assert_eq!(back, data);
        assert_eq!(
            (read.bytes, read.sha256),
            (written.raw_bytes, written.raw_sha256)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
