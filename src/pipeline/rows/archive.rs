//! Counting documents per collection in a mongodump `--archive` stream.
//!
//! The format, as mongo-tools documents it (`mongodump/archive`): a magic number
//! (`0x8199e26d`, little-endian), a header BSON document, one metadata BSON document per
//! collection, a terminator (`0xffffffff`); then the body, blocks of a namespace header
//! (`{db, collection, EOF, CRC}`) followed by that collection's BSON documents and a
//! terminator. Every BSON document starts with its length, so documents are skipped without
//! being read; only namespace headers are parsed, with a minimal BSON reader. **Unverified:**
//! no mongodump can run where stowage is tested; the unit test builds archives by the
//! documented layout. Anything that does not fit the layout stops the counting (the counts
//! so far are kept, marked partial).

use std::collections::BTreeMap;

const MAGIC: [u8; 4] = 0x8199_e26d_u32.to_le_bytes();
const TERMINATOR: u32 = 0xffff_ffff;
/// Larger than any BSON document mongod writes (16 MiB) with room to spare.
const MAX_DOC: u32 = 48 << 20;
/// Namespace headers are small; a larger "header" means the stream is not what we think.
const MAX_HEADER: u32 = 64 << 10;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Phase {
    #[default]
    Magic,
    /// The header and the collections' metadata, up to the first terminator.
    Prelude,
    /// Expecting a namespace header.
    Body,
    /// In a namespace's block: documents until a terminator.
    Block,
    /// Not an archive as documented: stop.
    Broken,
}

/// Counts documents per `db.collection`.
#[derive(Debug, Clone, Default)]
pub struct ArchiveCounter {
    phase: Phase,
    word: [u8; 4],
    have: usize,
    /// Bytes of the current document still to skip.
    skip: u64,
    /// The namespace header being gathered, and how many bytes it still needs.
    header: Option<(Vec<u8>, usize)>,
    current: Option<String>,
    counts: BTreeMap<String, u64>,
    partial: bool,
}

impl ArchiveCounter {
    /// Feeds the next bytes of the archive.
    pub fn feed(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() && self.phase != Phase::Broken {
            if self.skip > 0 {
                let n = (self.skip.min(buf.len() as u64)) as usize;
                self.skip -= n as u64;
                buf = &buf[n..];
                continue;
            }
            if let Some((doc, need)) = &mut self.header {
                let n = (*need).min(buf.len());
                doc.extend_from_slice(&buf[..n]);
                *need -= n;
                buf = &buf[n..];
                if *need == 0 {
                    let (doc, _) = self.header.take().expect("present");
                    self.namespace(&doc);
                }
                continue;
            }
            let n = (4 - self.have).min(buf.len());
            self.word[self.have..self.have + n].copy_from_slice(&buf[..n]);
            self.have += n;
            buf = &buf[n..];
            if self.have == 4 {
                self.have = 0;
                self.item();
            }
        }
    }

    /// Rows per collection, and whether the count is incomplete.
    pub fn finish(self) -> (BTreeMap<String, u64>, bool) {
        let broken = self.phase == Phase::Broken;
        (self.counts, self.partial || broken)
    }

    /// Acts on a 4-byte word: the magic, a terminator, or a document's length.
    fn item(&mut self) {
        if self.phase == Phase::Magic {
            self.phase = if self.word == MAGIC {
                Phase::Prelude
            } else {
                Phase::Broken
            };
            return;
        }
        let len = u32::from_le_bytes(self.word);
        if len == TERMINATOR {
            self.phase = match self.phase {
                Phase::Prelude | Phase::Block | Phase::Body => Phase::Body,
                other => other,
            };
            self.current = None;
            return;
        }
        if !(5..=MAX_DOC).contains(&len) {
            self.phase = Phase::Broken;
            return;
        }
        let rest = (len - 4) as usize;
        match self.phase {
            Phase::Prelude => self.skip = rest as u64,
            Phase::Block => {
                self.skip = rest as u64;
                self.add(1);
            }
            Phase::Body if len <= MAX_HEADER => {
                self.header = Some((Vec::with_capacity(rest), rest))
            }
            _ => self.phase = Phase::Broken,
        }
    }

    /// A namespace header: the block that follows counts for its `db.collection`.
    fn namespace(&mut self, doc: &[u8]) {
        let fields = bson_fields(doc);
        let text = |k: &str| match fields.get(k) {
            Some(Value::Str(s)) => Some(s.clone()),
            _ => None,
        };
        let eof = matches!(fields.get("EOF"), Some(Value::Bool(true)));
        self.phase = Phase::Block;
        self.current = match (text("db"), text("collection"), eof) {
            (Some(db), Some(c), false) => Some(format!("{db}.{c}")),
            _ => None,
        };
        self.add(0);
    }

    fn add(&mut self, n: u64) {
        if let Some(ns) = &self.current {
            super::add(&mut self.counts, &mut self.partial, ns, n);
        }
    }
}

/// The values a namespace header holds that matter here.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Bool(bool),
    Other,
}

/// The top-level fields of a BSON document given without its length prefix; parsing stops at
/// a type it does not know.
fn bson_fields(doc: &[u8]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut i = 0;
    let int = |at: usize| -> Option<usize> {
        let b = doc.get(at..at + 4)?;
        usize::try_from(i32::from_le_bytes(b.try_into().ok()?)).ok()
    };
    while let Some(&kind) = doc.get(i) {
        if kind == 0 {
            break;
        }
        let Some(end) = doc[i + 1..].iter().position(|&b| b == 0) else {
            break;
        };
        let key = String::from_utf8_lossy(&doc[i + 1..i + 1 + end]).into_owned();
        let at = i + 2 + end;
        let (value, size) = match kind {
            0x02 => match int(at) {
                Some(n) if n >= 1 && at + 4 + n <= doc.len() => (
                    Value::Str(String::from_utf8_lossy(&doc[at + 4..at + 3 + n]).into_owned()),
                    4 + n,
                ),
                _ => break,
            },
            0x08 => (Value::Bool(doc.get(at) == Some(&1)), 1),
            0x01 | 0x09 | 0x11 | 0x12 => (Value::Other, 8),
            0x10 => (Value::Other, 4),
            0x07 => (Value::Other, 12),
            0x13 => (Value::Other, 16),
            0x0A => (Value::Other, 0),
            0x03 | 0x04 => match int(at) {
                Some(n) => (Value::Other, n),
                None => break,
            },
            0x05 => match int(at) {
                Some(n) => (Value::Other, 5 + n),
                None => break,
            },
            _ => break,
        };
        out.insert(key, value);
        i = at + size;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BSON document of string, bool and int64 fields.
    fn doc(fields: &[(&str, &str)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (k, v) in fields {
            match *v {
                "true" | "false" => {
                    body.push(0x08);
                    body.extend_from_slice(k.as_bytes());
                    body.push(0);
                    body.push(u8::from(*v == "true"));
                }
                n if n.parse::<i64>().is_ok() => {
                    body.push(0x12);
                    body.extend_from_slice(k.as_bytes());
                    body.push(0);
                    body.extend_from_slice(&n.parse::<i64>().unwrap().to_le_bytes());
                }
                s => {
                    body.push(0x02);
                    body.extend_from_slice(k.as_bytes());
                    body.push(0);
                    body.extend_from_slice(&((s.len() + 1) as i32).to_le_bytes());
                    body.extend_from_slice(s.as_bytes());
                    body.push(0);
                }
            }
        }
        body.push(0);
        let mut out = ((body.len() + 4) as i32).to_le_bytes().to_vec();
        out.extend(body);
        out
    }

    fn archive() -> Vec<u8> {
        let t = TERMINATOR.to_le_bytes();
        let mut a = MAGIC.to_vec();
        a.extend(doc(&[("version", "0.1"), ("tool_version", "100.9.4")]));
        a.extend(doc(&[
            ("db", "shop"),
            ("collection", "orders"),
            ("metadata", "{}"),
        ]));
        a.extend(doc(&[
            ("db", "shop"),
            ("collection", "users"),
            ("metadata", "{}"),
        ]));
        a.extend(t);
        // Interleaved blocks, as concurrent collections produce them.
        let header = |c: &str, eof: &str| {
            doc(&[
                ("db", "shop"),
                ("collection", c),
                ("EOF", eof),
                ("CRC", "0"),
            ])
        };
        a.extend(header("orders", "false"));
        for i in 0..3 {
            a.extend(doc(&[("_id", &i.to_string()), ("note", "x);INSERT")]));
        }
        a.extend(t);
        a.extend(header("users", "false"));
        a.extend(doc(&[("name", "ünïcødé")]));
        a.extend(t);
        a.extend(header("orders", "false"));
        a.extend(doc(&[("_id", "9")]));
        a.extend(t);
        a.extend(header("orders", "true"));
        a.extend(t);
        a.extend(header("users", "true"));
        a.extend(t);
        a
    }

    #[test]
    fn counts_documents_per_collection_in_any_chunking() {
        let a = archive();
        for size in [1, 2, 3, 5, 7, 64, a.len()] {
            let mut c = ArchiveCounter::default();
            for chunk in a.chunks(size) {
                c.feed(chunk);
            }
            let (counts, partial) = c.finish();
            assert!(!partial, "chunk {size}");
            assert_eq!(counts.get("shop.orders"), Some(&4), "chunk {size}");
            assert_eq!(counts.get("shop.users"), Some(&1), "chunk {size}");
        }
    }

    #[test]
    fn not_an_archive_stops_counting() {
        let mut c = ArchiveCounter::default();
        c.feed(b"-- PostgreSQL database dump\n");
        let (counts, partial) = c.finish();
        assert!(counts.is_empty() && partial);
        let mut a = MAGIC.to_vec();
        a.extend(TERMINATOR.to_le_bytes());
        a.extend([0xff, 0xff, 0xff, 0x7f]); // a length no document has
        let mut c = ArchiveCounter::default();
        c.feed(&a);
        assert!(c.finish().1);
    }
}
