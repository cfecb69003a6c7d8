//! Writing an artifact out to disk while the backup runs, not all at its end.
//!
//! Without this, every byte of an artifact sits dirty in the page cache until the closing
//! `fsync`, which then writes the whole file while the backup waits (0.24 s for a 331 MB
//! artifact on the benchmark machine, BENCHMARKS.md), and the file's pages push the
//! database's own pages out of the cache. [`Writeback`] tells the kernel, once per [`WINDOW`]
//! written, `POSIX_FADV_DONTNEED` for the last two windows: on Linux this starts the
//! write-out of the newest window without waiting for it, and drops the pages of the window
//! before it, which has been written by then. The closing `fsync` is unchanged and is still
//! what makes the file durable; this only moves the disk work earlier. Advice the file system
//! refuses is ignored (the `fsync` does the work then). It must not be used on files that are
//! read back soon after (the page cache is what it gives up).

use std::fs::File;
use std::io::{self, Write};
use std::num::NonZeroU64;

use rustix::fs::{Advice, fadvise};

/// Bytes written between two pieces of advice.
pub const WINDOW: u64 = 8 * 1024 * 1024;

/// A file whose written bytes are sent to disk a window at a time.
pub struct Writeback {
    file: File,
    written: u64,
    advised: u64,
}

impl Writeback {
    /// Wraps a file opened for writing at offset 0.
    pub fn new(file: File) -> Self {
        Self {
            file,
            written: 0,
            advised: 0,
        }
    }

    /// The file, for its closing `fsync`.
    pub fn into_inner(self) -> File {
        self.file
    }

    /// Starts writing out the newest window and drops the one before it.
    fn advise(&mut self) {
        let from = self.advised.saturating_sub(WINDOW);
        // Best effort: the closing fsync writes whatever this did not.
        let _ = fadvise(
            &self.file,
            from,
            NonZeroU64::new(self.written - from),
            Advice::DontNeed,
        );
        self.advised = self.written;
    }
}

impl Write for Writeback {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.advised >= WINDOW {
            self.advise();
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_byte_and_advises_once_per_window() {
        let dir = std::env::temp_dir().join(format!("stowage-writeback-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out");
        let mut w = Writeback::new(File::create(&path).unwrap());
        let chunk: Vec<u8> = (0..=255u8).cycle().take(1_000_003).collect();
        let mut expected = Vec::new();
        let mut advised = Vec::new();
        while expected.len() < 4 * WINDOW as usize {
            w.write_all(&chunk).unwrap();
            expected.extend_from_slice(&chunk);
            advised.push(w.advised);
        }
        // Advice came at the first write past each window, not at every write.
        advised.dedup();
        assert!(
            advised.len() >= 4,
            "0 and at least three windows: {advised:?}"
        );
        for pair in advised.windows(2) {
            let step = pair[1] - pair[0];
            assert!(
                step >= WINDOW && step < WINDOW + chunk.len() as u64,
                "{advised:?}"
            );
        }
        let file = w.into_inner();
        file.sync_all().unwrap();
        drop(file);
        assert_eq!(std::fs::read(&path).unwrap(), expected);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
