//! zstd on the writer thread: a level and its parameters, frame checksums, optionally worker
//! threads; a change of parameters ends the frame.
//!
//! The output is standard: a file of concatenated frames, each with its checksum, which
//! `zstd -d` and every zstd library read as one stream.
//!
//! **Without worker threads (the default) the dump is cut into frames of [`FRAME_SIZE`]**
//! (1 MiB of dump each), gathered in a buffer and compressed in one call. zstd's streaming
//! encoder copies its input into a ring buffer and, once the ring has wrapped, searches for
//! matches in two pieces of memory (its slower "external dictionary" path); a whole frame in
//! one buffer avoids both. In the backup pipeline (BENCHMARKS.md, "1 MiB zstd frames") level
//! 3 took 15% less of stowage's own CPU (median of ten paired runs) and 3% less wall time,
//! for a file 0.9% larger (each frame starts with an empty window); `auto` 8% less CPU. Other
//! sizes measured: 512 KiB saved less (11%) and stored 2.2% more, 2 MiB saved half as much,
//! and 4 MiB (on another host) cost more CPU than streaming. The gathering buffer and the
//! compressed frame take about 2 MiB, in place of the streaming encoder's own window buffer:
//! peak memory is unchanged (21–22 MiB).
//!
//! **With worker threads** the streaming encoder stays: zstd's workers cut their own jobs.
//!
//! This module knows nothing of hashing, encryption or files: it writes to any [`Write`].

use std::io::{self, Write};

use zstd::bulk::Compressor;
use zstd::stream::write::Encoder;
use zstd::zstd_safe::{CParameter, compress_bound};

/// Dump bytes per frame without worker threads.
pub const FRAME_SIZE: usize = 1 << 20;

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
    inner: Inner<W>,
    threads: u32,
}

enum Inner<W: Write> {
    Frames(Frames<W>),
    Stream(Encoder<'static, W>),
}

impl<W: Write> Zstd<W> {
    /// A compressor on `sink` with `threads` workers (0: on the calling thread, in frames of
    /// [`FRAME_SIZE`]).
    pub fn new(sink: W, params: Params, threads: u32) -> io::Result<Self> {
        let inner = if threads == 0 {
            Inner::Frames(Frames::new(sink, params)?)
        } else {
            let mut encoder = Encoder::new(sink, params.level)?;
            encoder.include_checksum(true)?;
            if let Some(log) = params.hash_log {
                encoder.set_parameter(CParameter::HashLog(log))?;
            }
            encoder.multithread(threads)?;
            Inner::Stream(encoder)
        };
        Ok(Self { inner, threads })
    }

    /// Compresses `data`.
    pub fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.inner {
            Inner::Frames(f) => f.write_all(data),
            Inner::Stream(e) => e.write_all(data),
        }
    }

    /// Ends the current frame and compresses what follows with `params`.
    pub fn set_params(self, params: Params) -> io::Result<Self> {
        let threads = self.threads;
        Self::new(self.finish()?, params, threads)
    }

    /// Ends the last frame and returns the sink.
    pub fn finish(self) -> io::Result<W> {
        match self.inner {
            Inner::Frames(f) => f.finish(),
            Inner::Stream(e) => e.finish(),
        }
    }
}

/// Frames of up to [`FRAME_SIZE`] dump bytes, each compressed in one call.
struct Frames<W: Write> {
    sink: W,
    cctx: Compressor<'static>,
    /// The frame being gathered (never grows past [`FRAME_SIZE`], so never reallocates).
    pending: Vec<u8>,
    /// The last compressed frame (room for the worst case, so never reallocates).
    out: Vec<u8>,
    /// Whether a frame was written (an empty dump still gets one).
    wrote: bool,
}

impl<W: Write> Frames<W> {
    fn new(sink: W, params: Params) -> io::Result<Self> {
        let mut cctx = Compressor::new(params.level)?;
        cctx.include_checksum(true)?;
        if let Some(log) = params.hash_log {
            cctx.set_parameter(CParameter::HashLog(log))?;
        }
        Ok(Self {
            sink,
            cctx,
            pending: Vec::with_capacity(FRAME_SIZE),
            out: Vec::with_capacity(compress_bound(FRAME_SIZE)),
            wrote: false,
        })
    }

    fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = (FRAME_SIZE - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.pending.len() == FRAME_SIZE {
                self.frame()?;
            }
        }
        Ok(())
    }

    /// Compresses what is gathered into one frame and writes it.
    fn frame(&mut self) -> io::Result<()> {
        self.out.clear();
        self.cctx.compress_to_buffer(&self.pending, &mut self.out)?;
        self.sink.write_all(&self.out)?;
        self.pending.clear();
        self.wrote = true;
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        if !self.pending.is_empty() || !self.wrote {
            self.frame()?;
        }
        Ok(self.sink)
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
    fn without_threads_the_dump_is_cut_into_frames_of_frame_size() {
        let data = dump(2 * FRAME_SIZE + 12_345);
        let file = compress(&data, Params::level(3), 0);
        assert_eq!(frames(&file), 3);
        let mut rest = &file[..];
        let mut sizes = Vec::new();
        while !rest.is_empty() {
            let len = zstd::zstd_safe::find_frame_compressed_size(rest).unwrap();
            sizes.push(zstd::decode_all(&rest[..len]).unwrap().len());
            rest = &rest[len..];
        }
        assert_eq!(sizes, [FRAME_SIZE, FRAME_SIZE, 12_345]);
        assert_eq!(zstd::decode_all(&file[..]).unwrap(), data);
        // Writes that stop a byte short of a frame's end, then span more than a whole frame.
        let mut z = Zstd::new(Vec::new(), Params::level(3), 0).unwrap();
        z.write_all(&data[..FRAME_SIZE - 1]).unwrap();
        z.write_all(&data[FRAME_SIZE - 1..2 * FRAME_SIZE + 1])
            .unwrap();
        z.write_all(&data[2 * FRAME_SIZE + 1..]).unwrap();
        let file = z.finish().unwrap();
        assert_eq!(frames(&file), 3);
        assert_eq!(zstd::decode_all(&file[..]).unwrap(), data);
        // With a worker, zstd's streaming encoder: one frame.
        let file = compress(&data, Params::level(3), 1);
        assert_eq!(frames(&file), 1);
        assert_eq!(zstd::decode_all(&file[..]).unwrap(), data);
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
