//! Completeness checks for binary dump formats: what a whole stream of that format ends with.
//!
//! A text dump proves it is whole with a marker line near its end (`complete_marker`). A
//! binary format has no such line, so a spec names its format (`trailer = "tar"`) and
//! [`Checker`] follows the stream as it passes (holding back only the format's trailer) and
//! checks what the format's own definition puts at the end. A stream cut short (a killed tool,
//! a dropped connection) fails the check even when the exit code was lost.
//!
//! - `tar`: whole 512-byte blocks, ending with two zero blocks.
//! - `etcd`: an etcd snapshot (a bbolt file) followed by the SHA-256 of everything before it,
//!   as `etcdctl snapshot save` writes it and `snapshot restore` checks it.
//! - `rdb`: a Redis RDB file: `REDIS` and a version, then the data, the EOF opcode `0xFF` and
//!   the CRC-64 (Jones) of everything before it, little-endian (zero when the server runs with
//!   `rdbchecksum no`).

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The size of a tar block; an archive is a whole number of them.
const TAR_BLOCK: u64 = 512;

/// Redis's CRC-64 (Jones polynomial, reflected), as `crc64.c` computes it.
const REDIS_CRC: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);

/// A binary format whose end stowage can check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trailer {
    /// A tar archive (POSIX/GNU).
    Tar,
    /// An etcd snapshot with its SHA-256 appended.
    Etcd,
    /// A Redis RDB file with its CRC-64.
    Rdb,
}

impl Trailer {
    /// The format's name, as a spec writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tar => "tar",
            Self::Etcd => "etcd snapshot",
            Self::Rdb => "Redis RDB",
        }
    }

    /// How many bytes at the end the check holds back.
    fn held(self) -> usize {
        match self {
            Self::Tar => 2 * TAR_BLOCK as usize,
            Self::Etcd => 32,
            Self::Rdb => 9,
        }
    }
}

/// Follows one stream and checks its end.
pub struct Checker {
    kind: Trailer,
    total: u64,
    /// The first bytes (the RDB header).
    head: Vec<u8>,
    /// The last [`Trailer::held`] bytes seen.
    tail: Vec<u8>,
    sha: Option<Sha256>,
    crc: Option<crc::Digest<'static, u64>>,
}

impl Checker {
    /// A checker for `kind`.
    pub fn new(kind: Trailer) -> Self {
        Self {
            kind,
            total: 0,
            head: Vec::new(),
            tail: Vec::with_capacity(2 * kind.held()),
            sha: (kind == Trailer::Etcd).then(Sha256::new),
            crc: (kind == Trailer::Rdb).then(|| REDIS_CRC.digest()),
        }
    }

    /// Feeds the next bytes of the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if self.head.len() < 9 {
            let want = (9 - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..want]);
        }
        let held = self.kind.held();
        if bytes.len() >= held {
            // The old tail and all but the last `held` new bytes are the body.
            let old = std::mem::take(&mut self.tail);
            self.body(&old);
            let split = bytes.len() - held;
            self.body(&bytes[..split]);
            self.tail = old;
            self.tail.clear();
            self.tail.extend_from_slice(&bytes[split..]);
        } else {
            self.tail.extend_from_slice(bytes);
            let excess = self.tail.len().saturating_sub(held);
            if excess > 0 {
                let gone: Vec<u8> = self.tail.drain(..excess).collect();
                self.body(&gone);
            }
        }
    }

    fn body(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Some(sha) = &mut self.sha {
            sha.update(bytes);
        }
        if let Some(crc) = &mut self.crc {
            crc.update(bytes);
        }
    }

    /// Checks the end; `Err` says what is missing.
    pub fn finish(self) -> Result<(), String> {
        let Self {
            kind,
            total,
            head,
            tail,
            sha,
            crc,
        } = self;
        if tail.len() < kind.held() {
            return Err(format!(
                "the stream is {total} bytes: too short to be complete"
            ));
        }
        match kind {
            Trailer::Tar => {
                if !total.is_multiple_of(TAR_BLOCK) {
                    return Err(format!(
                        "the archive is {total} bytes, not a whole number of 512-byte tar blocks: it was cut short"
                    ));
                }
                if tail.iter().any(|b| *b != 0) {
                    return Err(
                        "the archive does not end with tar's two zero end blocks: it was cut short"
                            .into(),
                    );
                }
            }
            Trailer::Etcd => {
                let digest = sha.expect("etcd checks hash").finalize();
                if digest.as_slice() != tail.as_slice() {
                    return Err("the snapshot does not end with the SHA-256 of its content: it was cut short or damaged".into());
                }
            }
            Trailer::Rdb => {
                if !head.starts_with(b"REDIS") {
                    return Err(
                        "the stream does not start with an RDB header (REDIS and a version)".into(),
                    );
                }
                let mut crc = crc.expect("rdb checks crc");
                crc.update(&tail[..1]);
                let stored = u64::from_le_bytes(tail[1..9].try_into().expect("8 bytes"));
                if tail[0] != 0xFF {
                    return Err(
                        "the RDB does not end with its EOF opcode and checksum: it was cut short"
                            .into(),
                    );
                }
                if stored != 0 && stored != crc.finalize() {
                    return Err(
                        "the RDB's CRC-64 does not match its content: it was cut short or damaged"
                            .into(),
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `data` in chunks of `size` bytes.
    fn check(kind: Trailer, data: &[u8], size: usize) -> Result<(), String> {
        let mut c = Checker::new(kind);
        for chunk in data.chunks(size.max(1)) {
            c.push(chunk);
        }
        c.finish()
    }

    fn all_sizes(kind: Trailer, data: &[u8]) -> Result<(), String> {
        for size in [1, 7, 31, 32, 33, 512, 1000, data.len()] {
            check(kind, data, size).map_err(|e| format!("chunks of {size}: {e}"))?;
        }
        Ok(())
    }

    #[test]
    fn tar_end_blocks_are_required() {
        let mut whole = vec![7u8; 1024];
        whole.extend([0u8; 1024]);
        assert_eq!(all_sizes(Trailer::Tar, &whole), Ok(()));
        assert!(
            check(Trailer::Tar, &whole[..1500], 64)
                .unwrap_err()
                .contains("cut short")
        );
        assert!(
            check(Trailer::Tar, &whole[..1536], 64)
                .unwrap_err()
                .contains("end blocks")
        );
        assert!(
            check(Trailer::Tar, &[], 1)
                .unwrap_err()
                .contains("too short")
        );
    }

    #[test]
    fn etcd_snapshots_end_with_their_sha256() {
        let body: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let mut whole = body.clone();
        whole.extend_from_slice(&Sha256::digest(&body));
        assert_eq!(all_sizes(Trailer::Etcd, &whole), Ok(()));
        assert!(check(Trailer::Etcd, &whole[..whole.len() - 1], 100).is_err());
        let mut flipped = whole.clone();
        flipped[10] ^= 1;
        assert!(check(Trailer::Etcd, &flipped, 100).is_err());
    }

    #[test]
    fn rdb_files_end_with_eof_and_their_crc64() {
        // Redis's own test vector for its CRC-64.
        assert_eq!(REDIS_CRC.checksum(b"123456789"), 0xe9c6_d914_c4b8_d9ca);
        let mut whole =
            b"REDIS0010\xfa\x09redis-ver\x067.0.15\xfe\x00\xfb\x01\x00\x00\x01a\xc0\x01\xff"
                .to_vec();
        let sum = REDIS_CRC.checksum(&whole);
        whole.extend_from_slice(&sum.to_le_bytes());
        assert_eq!(all_sizes(Trailer::Rdb, &whole), Ok(()));
        assert!(check(Trailer::Rdb, &whole[..whole.len() - 3], 5).is_err());
        let mut flipped = whole.clone();
        flipped[20] ^= 1;
        assert!(
            check(Trailer::Rdb, &flipped, 5)
                .unwrap_err()
                .contains("CRC-64")
        );
        // rdbchecksum no: a zero checksum is accepted, the EOF opcode still required.
        let mut unchecked = whole[..whole.len() - 8].to_vec();
        unchecked.extend([0u8; 8]);
        assert_eq!(check(Trailer::Rdb, &unchecked, 3), Ok(()));
        assert!(check(Trailer::Rdb, b"NOTREDIS0000000000000", 4).is_err());
    }

    #[test]
    fn spec_words() {
        #[derive(Deserialize)]
        struct T {
            trailer: Trailer,
        }
        let t: T = toml::from_str("trailer = \"rdb\"").unwrap();
        assert_eq!(t.trailer, Trailer::Rdb);
        assert!(toml::from_str::<T>("trailer = \"zip\"").is_err());
    }
}
