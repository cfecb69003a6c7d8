//! zstd on the writer thread: the streaming encoder at a level and its parameters, with frame
//! checksums, optionally with worker threads; a change of parameters ends the frame.
//!
//! The output is standard: a file of one or more concatenated frames, each with its
//! checksum, which `zstd -d` and every zstd library read as one stream.
//!
//! **Tried and not adopted: one-shot frames.** Compressing 4 MiB buffers in one call each
//! avoids the streaming encoder's ring-buffer copy and its slower "external dictionary" match
//! path, and on a dump sample held in memory took 12–25% less zstd CPU (`bench/frames.sh`).
//! In the backup pipeline it measured no gain at level 3 (1.26× raw against 1.14×, own CPU
//! 11.1 s against 10.6 s; BENCHMARKS.md, "One-shot zstd frames: tried, not adopted"), likely
//! because the streaming encoder compresses each 128 KiB block as it arrives, still in cache,
//! where a 4 MiB frame is compressed after its start has left the core's 2 MiB L2. It also
//! cost 4 MiB of memory. The streaming encoder stays.
//!
//! This module knows nothing of hashing, encryption or files: it writes to any [`Write`].

use std::io::{self, Write};

use zstd::stream::write::Encoder;
use zstd::zstd_safe::CParameter;

/// How a frame is compressed: the zstd level, and a hash table size other than the level's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// zstd level.
    pub level: i32,
    /// log2 of the match finder's hash table entries; `None`: the level's own.
    pub hash_log: Option<u32>,
}

impl Params {
    /// A plain zstd level.
    pub fn level(level: i32) -> Self {
        Self {
            level,
            hash_log: None,
        }
    }
}

/// A zstd compressor writing frames to `W`.
pub struct Zstd<W: Write> {
    encoder: Encoder<'static, W>,
    threads: u32,
}

impl<W: Write> Zstd<W> {
    /// A compressor on `sink` with `threads` workers (0: on the calling thread).
    pub fn new(sink: W, params: Params, threads: u32) -> io::Result<Self> {
        let mut encoder = Encoder::new(sink, params.level)?;
        encoder.include_checksum(true)?;
        if let Some(log) = params.hash_log {
            encoder.set_parameter(CParameter::HashLog(log))?;
        }
        if threads > 0 {
            encoder.multithread(threads)?;
        }
        Ok(Self { encoder, threads })
    }

    /// Compresses `data`.
    pub fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.encoder.write_all(data)
    }

    /// Ends the current frame and compresses what follows with `params`.
    pub fn set_params(self, params: Params) -> io::Result<Self> {
        Self::new(self.encoder.finish()?, params, self.threads)
    }

    /// Ends the last frame and returns the sink.
    pub fn finish(self) -> io::Result<W> {
        self.encoder.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text that compresses a little, like a dump: `len` bytes.
    fn dump(len: usize) -> Vec<u8> {
        let mut x = 7u64;
        let mut out = Vec::with_capacity(len + 64);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let line = format!("{}\t{}\tword{}\n", x % 10_000, x % 97, x % 31);
            out.extend_from_slice(line.as_bytes());
        }
        out.truncate(len);
        out
    }

    /// Compresses `data` written in 128 KiB pieces; returns the file.
    fn compress(data: &[u8], params: Params, threads: u32) -> Vec<u8> {
        let mut z = Zstd::new(Vec::new(), params, threads).unwrap();
        for piece in data.chunks(128 * 1024) {
            z.write_all(piece).unwrap();
        }
        z.finish().unwrap()
    }

    /// The number of frames in a file, found the way `zstd -l` does.
    fn frames(mut file: &[u8]) -> usize {
        let mut n = 0;
        while !file.is_empty() {
            file = &file[zstd::zstd_safe::find_frame_compressed_size(file).unwrap()..];
            n += 1;
        }
        n
    }

    #[test]
    fn a_change_of_params_starts_a_frame_and_the_file_decodes_whole() {
        let data = dump(1 << 20);
        for threads in [0, 1] {
            let mut z = Zstd::new(Vec::new(), Params::level(3), threads).unwrap();
            z.write_all(&data[..1000]).unwrap();
            let tuned = Params {
                level: 1,
                hash_log: Some(15),
            };
            z = z.set_params(tuned).unwrap();
            z.write_all(&data[1000..]).unwrap();
            let file = z.finish().unwrap();
            assert_eq!(frames(&file), 2, "threads {threads}");
            assert_eq!(zstd::decode_all(&file[..]).unwrap(), data);
        }
        let empty = compress(&[], Params::level(3), 0);
        assert_eq!(frames(&empty), 1);
        assert!(zstd::decode_all(&empty[..]).unwrap().is_empty());
    }

    #[test]
    fn a_hash_log_is_applied_and_a_change_of_params_resets_it() {
        // Whether it pays is the benchmark's question (realistic data, BENCHMARKS.md); here:
        // that the parameter reaches zstd, and that the next frame gets the level's own back.
        let data = dump(2 << 20);
        let plain = compress(&data, Params::level(1), 0);
        let tuned = Params {
            level: 1,
            hash_log: Some(15),
        };
        let bigger = compress(&data, tuned, 0);
        assert_eq!(zstd::decode_all(&bigger[..]).unwrap(), data);
        assert_ne!(bigger, plain, "hash_log changed nothing");
        let mut z = Zstd::new(Vec::new(), tuned, 0).unwrap();
        z = z.set_params(Params::level(1)).unwrap();
        for piece in data.chunks(128 * 1024) {
            z.write_all(piece).unwrap();
        }
        let file = z.finish().unwrap();
        let second = &file[zstd::zstd_safe::find_frame_compressed_size(&file).unwrap()..];
        assert_eq!(second, &plain[..], "the level's own hash table again");
    }
}
