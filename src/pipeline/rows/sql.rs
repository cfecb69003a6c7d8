//! Counting a plain SQL dump's rows per table: pg_dump's COPY blocks, or the tuples of
//! `INSERT … VALUES (…),(…);` statements (see [`super`] for the formats).
//!
//! Costs: lines outside data are skipped with `memchr`; a COPY row costs one newline search
//! and at most three copied bytes; INSERT data is scanned byte by byte, with strings skipped
//! by `memchr`. Memory is one short line head and one map entry per table (at most
//! [`super::MAX_TABLES`]). Table names are normalised the same way on both sides of a drill:
//! qualified parts joined by `.`, quotes removed.

use std::collections::BTreeMap;

use super::RowFormat;
/// The longest line head kept to read a `COPY`/`INSERT` line's table name.
const HEAD: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// At a line start, gathering its head.
    Head,
    /// Skipping to the end of the line, then `Head`.
    Skip,
    /// Inside `INSERT INTO t`, before `VALUES`: how much of `VALUES` matched.
    Prelude(usize),
    /// In the values: tuple depth, and whether inside a string (and after a backslash).
    Values {
        depth: u32,
        string: bool,
        escaped: bool,
    },
}

/// Counts rows per table from a SQL dump's bytes, fed in any chunking.
#[derive(Debug, Clone)]
pub struct SqlCounter {
    format: RowFormat,
    state: State,
    head: Vec<u8>,
    /// The table whose COPY block (or INSERT statement) is being read.
    table: Option<String>,
    /// In a COPY block.
    copying: bool,
    database: Option<String>,
    counts: BTreeMap<String, u64>,
    partial: bool,
}

impl SqlCounter {
    /// A counter for `format`.
    pub fn new(format: RowFormat) -> Self {
        Self {
            format,
            state: State::Head,
            head: Vec::with_capacity(64),
            table: None,
            copying: false,
            database: None,
            counts: BTreeMap::new(),
            partial: false,
        }
    }

    /// Rows per table so far, and whether some tables were left out ([`super::MAX_TABLES`]).
    pub fn finish(self) -> (BTreeMap<String, u64>, bool) {
        (self.counts, self.partial)
    }

    /// Feeds the next bytes of the dump.
    pub fn feed(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() {
            buf = match self.state {
                State::Head => self.head_bytes(buf),
                State::Skip => match memchr::memchr(b'\n', buf) {
                    Some(i) => {
                        self.state = State::Head;
                        &buf[i + 1..]
                    }
                    None => &[],
                },
                State::Prelude(matched) => self.prelude(buf, matched),
                State::Values { .. } => self.values(buf),
            };
        }
    }

    /// Gathers the line head; decides at its newline or when enough is known.
    fn head_bytes<'a>(&mut self, buf: &'a [u8]) -> &'a [u8] {
        // In a COPY block only `\.` matters: three bytes tell.
        let limit = if self.copying { 3 } else { HEAD };
        let room = limit - self.head.len();
        let newline = memchr::memchr(b'\n', &buf[..buf.len().min(room + 1)]);
        let take = newline.unwrap_or(buf.len().min(room));
        self.head.extend_from_slice(&buf[..take]);
        let (complete, rest) = match newline {
            Some(i) => (true, &buf[i + 1..]),
            // A byte past a full head: the line is longer than the head.
            None if buf.len() > room => (false, &buf[take..]),
            None => return &[],
        };
        let head = std::mem::take(&mut self.head);
        let rest = self.decide(&head, complete, rest);
        self.head = head;
        self.head.clear();
        rest
    }

    /// Acts on a line head (the whole line when `complete`); returns the bytes to go on with.
    fn decide<'a>(&mut self, head: &[u8], complete: bool, rest: &'a [u8]) -> &'a [u8] {
        self.state = if complete { State::Head } else { State::Skip };
        if self.copying {
            let line = head.strip_suffix(b"\r").unwrap_or(head);
            if complete && line == b"\\." {
                self.copying = false;
                self.table = None;
            } else {
                self.add(1);
            }
            return rest;
        }
        match self.format {
            RowFormat::Copy => {
                if let Some(after) = head.strip_prefix(b"COPY ")
                    && let Some((table, _)) = qualified_name(after)
                {
                    self.table = Some(table);
                    self.copying = true;
                    // A COPY line longer than the head is skipped; the block starts after it.
                    self.counts_entry();
                }
                rest
            }
            // Not a SQL format: RowCounter never builds a SqlCounter for it.
            RowFormat::MongoArchive => rest,
            RowFormat::Insert | RowFormat::InsertBackslash => {
                if let Some(after) = head.strip_prefix(b"USE ") {
                    self.database = qualified_name(after).map(|(n, _)| n);
                    return rest;
                }
                let Some(after) = head.strip_prefix(b"INSERT INTO ") else {
                    return rest;
                };
                let Some((table, used)) = qualified_name(after) else {
                    return rest;
                };
                self.table = Some(match &self.database {
                    Some(db) => format!("{db}.{table}"),
                    None => table,
                });
                self.counts_entry();
                // Go on with the rest of the head, then the rest of the line.
                self.state = State::Prelude(0);
                let mut tail = after[used..].to_vec();
                if complete {
                    tail.push(b'\n');
                }
                let mut left: &[u8] = &tail;
                while !left.is_empty() && self.state != State::Head && self.state != State::Skip {
                    left = match self.state {
                        State::Prelude(m) => self.prelude(left, m),
                        _ => self.values(left),
                    };
                }
                if complete && self.state == State::Skip {
                    // The statement ended on this line, which is over.
                    self.state = State::Head;
                }
                rest
            }
        }
    }

    /// Looks for `VALUES` after the table name.
    fn prelude<'a>(&mut self, buf: &'a [u8], mut matched: usize) -> &'a [u8] {
        const WORD: &[u8] = b"VALUES";
        for (i, &b) in buf.iter().enumerate() {
            matched = if b == WORD[matched] {
                matched + 1
            } else {
                usize::from(b == WORD[0])
            };
            if matched == WORD.len() {
                self.state = State::Values {
                    depth: 0,
                    string: false,
                    escaped: false,
                };
                return &buf[i + 1..];
            }
            if b == b';' {
                self.state = State::Skip;
                return &buf[i + 1..];
            }
        }
        self.state = State::Prelude(matched);
        &[]
    }

    /// Counts top-level tuples until the statement's `;`.
    fn values<'a>(&mut self, buf: &'a [u8]) -> &'a [u8] {
        let State::Values {
            mut depth,
            mut string,
            mut escaped,
        } = self.state
        else {
            return buf;
        };
        let backslash = self.format == RowFormat::InsertBackslash;
        let mut i = 0;
        let mut rows = 0;
        while i < buf.len() {
            if string {
                if escaped {
                    escaped = false;
                    i += 1;
                    continue;
                }
                let found = if backslash {
                    memchr::memchr2(b'\'', b'\\', &buf[i..])
                } else {
                    memchr::memchr(b'\'', &buf[i..])
                };
                match found {
                    Some(j) => {
                        if buf[i + j] == b'\\' {
                            escaped = true;
                        } else {
                            string = false;
                        }
                        i += j + 1;
                    }
                    None => i = buf.len(),
                }
                continue;
            }
            match buf[i] {
                b'\'' => string = true,
                b'(' => {
                    depth += 1;
                    if depth == 1 {
                        rows += 1;
                    }
                }
                b')' => depth = depth.saturating_sub(1),
                b';' if depth == 0 => {
                    self.add(rows);
                    self.table = None;
                    self.state = State::Skip;
                    return &buf[i + 1..];
                }
                _ => {}
            }
            i += 1;
        }
        self.add(rows);
        self.state = State::Values {
            depth,
            string,
            escaped,
        };
        &[]
    }

    fn counts_entry(&mut self) {
        self.add(0);
    }

    fn add(&mut self, rows: u64) {
        if let Some(table) = &self.table {
            super::add(&mut self.counts, &mut self.partial, table, rows);
        }
    }
}

/// A possibly qualified, possibly quoted name at the start of `s` (`public.t`, `"a b"`,
/// `` `t` ``), normalised: parts unquoted and joined by `.`. Returns it and the bytes used.
pub fn qualified_name(s: &[u8]) -> Option<(String, usize)> {
    let mut parts = Vec::new();
    let mut i = 0;
    loop {
        let (part, used) = name_part(&s[i..])?;
        parts.push(part);
        i += used;
        if s.get(i) == Some(&b'.') {
            i += 1;
        } else {
            break;
        }
    }
    Some((parts.join("."), i))
}

/// One name part: quoted with `"` or `` ` `` (doubled quote inside), or bare up to a space,
/// `(`, `.`, `;` or `,`.
fn name_part(s: &[u8]) -> Option<(String, usize)> {
    let first = *s.first()?;
    if first == b'"' || first == b'`' {
        let mut out = Vec::new();
        let mut i = 1;
        while i < s.len() {
            if s[i] == first {
                if s.get(i + 1) == Some(&first) {
                    out.push(first);
                    i += 2;
                    continue;
                }
                return Some((String::from_utf8_lossy(&out).into_owned(), i + 1));
            }
            out.push(s[i]);
            i += 1;
        }
        return None;
    }
    let end = s
        .iter()
        .position(|b| matches!(b, b' ' | b'(' | b'.' | b';' | b',' | b'\n' | b'\r' | b'\t'))
        .unwrap_or(s.len());
    (end > 0).then(|| (String::from_utf8_lossy(&s[..end]).into_owned(), end))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts `dump` fed in chunks of every size from 1 to 17 bytes, and whole; all must agree.
    fn count(format: RowFormat, dump: &str) -> BTreeMap<String, u64> {
        let mut whole = SqlCounter::new(format);
        whole.feed(dump.as_bytes());
        let (expected, _) = whole.finish();
        for size in 1..=17 {
            let mut c = SqlCounter::new(format);
            for chunk in dump.as_bytes().chunks(size) {
                c.feed(chunk);
            }
            assert_eq!(c.finish().0, expected, "chunk size {size}");
        }
        expected
    }

    fn map(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn pg_copy_blocks() {
        let dump = "--\n-- PostgreSQL database dump\n--\nCREATE TABLE public.t (a int);\n\
            COPY public.t (a, b) FROM stdin;\n1\tx\n2\t\\\\.\n3\tCOPY public.u\n\\.\n\n\
            COPY public.\"Odd \"\"name\"\"\" (a) FROM stdin;\n\\.\n\
            COPY public.u (a) FROM stdin;\n1\n\\.\n-- PostgreSQL database dump complete\n";
        assert_eq!(
            count(RowFormat::Copy, dump),
            map(&[("public.t", 3), ("public.Odd \"name\"", 0), ("public.u", 1)])
        );
    }

    #[test]
    fn mysql_extended_inserts_with_strings() {
        let dump = "/*!40101 SET NAMES utf8mb4 */;\n\
            INSERT INTO `t` VALUES (1,'a),(b'),(2,'it\\'s (x)'),(3,NULL);\n\
            INSERT INTO `t` VALUES (4,'line\nINSERT INTO `t` VALUES (9);\n');\n\
            INSERT INTO `w``x` (`a`, `b`) VALUES (1,2);\n\
            INSERT INTO `e` VALUES ();\n-- Dump completed\n";
        assert_eq!(
            count(RowFormat::InsertBackslash, dump),
            map(&[("t", 4), ("w`x", 1), ("e", 1)])
        );
    }

    #[test]
    fn sqlite_inserts_and_use_lines() {
        let dump = "BEGIN TRANSACTION;\nCREATE TABLE t(a);\nINSERT INTO t VALUES(1);\n\
            INSERT INTO t VALUES('it''s');\nINSERT INTO \"a b\" VALUES(X'00','\\');\nCOMMIT;\n";
        assert_eq!(count(RowFormat::Insert, dump), map(&[("t", 2), ("a b", 1)]));
        let all = "USE `one`;\nINSERT INTO `t` VALUES (1),(2);\nUSE `two`;\nINSERT INTO `t` VALUES (1);\n";
        assert_eq!(
            count(RowFormat::InsertBackslash, all),
            map(&[("one.t", 2), ("two.t", 1)])
        );
    }

    #[test]
    fn long_lines_and_garbage_do_not_break_counting() {
        let long = format!(
            "INSERT INTO `t` VALUES ({}),(2);\nCOPY x\n",
            "9,".repeat(5000) + "9"
        );
        assert_eq!(count(RowFormat::InsertBackslash, &long), map(&[("t", 2)]));
        let copy = format!("COPY public.t (a) FROM stdin;\n{}\n\\.\n", "x".repeat(5000));
        assert_eq!(count(RowFormat::Copy, &copy), map(&[("public.t", 1)]));
        // Unterminated quotes and stray bytes: no panic, some answer.
        count(
            RowFormat::Insert,
            "INSERT INTO \"t VALUES ('\n\u{0}INSERT INTO",
        );
        count(RowFormat::Copy, "COPY \nCOPY \"");
    }

    #[test]
    fn names() {
        assert_eq!(
            qualified_name(b"public.t (a)"),
            Some(("public.t".into(), 8))
        );
        assert_eq!(
            qualified_name(b"\"S\".\"a.b\" x"),
            Some(("S.a.b".into(), 9))
        );
        assert_eq!(qualified_name(b"`t` VALUES"), Some(("t".into(), 3)));
        assert_eq!(qualified_name(b" x"), None);
        assert_eq!(qualified_name(b"\"open"), None);
    }
}
