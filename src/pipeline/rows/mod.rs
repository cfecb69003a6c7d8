//! Counting a dump's rows per table (documents per collection) while it streams past, for
//! shrink detection and restore drills.
//!
//! The format is named by an engine spec's `[drill] count`:
//! - `copy`: pg_dump's plain format. A `COPY schema.table (…) FROM stdin;` line starts a
//!   block; every line until `\.` is one row (COPY text escapes newlines inside values, so a
//!   row is always one line).
//! - `insert` / `insert-backslash`: `INSERT INTO table … VALUES (…),(…);` statements
//!   (mariadb-dump and mysqldump write many rows per statement; sqlite3's `.dump` one). Each
//!   top-level parenthesised tuple after `VALUES` is a row. Quoted strings are skipped (`''`
//!   doubling; with `-backslash` also `\'`, as MySQL escapes), and a statement may span lines.
//!   A `USE db;` line (an all-databases dump) prefixes the following tables with `db.`.
//! - `mongo-archive`: mongodump's `--archive` format; each BSON document after a namespace
//!   header counts for `db.collection` ([`archive`]; written from the format's documentation,
//!   never run against a real mongodump).

mod archive;
mod sql;

use std::collections::BTreeMap;

use serde::Deserialize;

pub use sql::qualified_name;

/// How many distinct tables are counted; more are ignored (and the count marked partial).
pub const MAX_TABLES: usize = 100_000;

/// Adds `n` rows to `key`, or, with [`MAX_TABLES`] keys already, marks the count partial.
fn add(counts: &mut BTreeMap<String, u64>, partial: &mut bool, key: &str, n: u64) {
    if let Some(c) = counts.get_mut(key) {
        *c += n;
    } else if counts.len() < MAX_TABLES {
        counts.insert(key.to_string(), n);
    } else {
        *partial = true;
    }
}

/// The dump format an engine spec declares for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RowFormat {
    /// pg_dump plain COPY blocks.
    Copy,
    /// INSERT statements with SQL-standard strings (`''`).
    Insert,
    /// INSERT statements whose strings also use backslash escapes (MySQL, MariaDB).
    InsertBackslash,
    /// mongodump's archive format (documents per collection).
    MongoArchive,
}

/// Counts rows per table from a dump's bytes, fed in any chunking.
#[derive(Debug, Clone)]
pub enum RowCounter {
    /// A plain SQL dump.
    Sql(sql::SqlCounter),
    /// A mongodump archive.
    Archive(archive::ArchiveCounter),
}

impl RowCounter {
    /// A counter for `format`.
    pub fn new(format: RowFormat) -> Self {
        match format {
            RowFormat::MongoArchive => Self::Archive(archive::ArchiveCounter::default()),
            sql => Self::Sql(sql::SqlCounter::new(sql)),
        }
    }

    /// Feeds the next bytes of the dump.
    pub fn feed(&mut self, buf: &[u8]) {
        match self {
            Self::Sql(c) => c.feed(buf),
            Self::Archive(c) => c.feed(buf),
        }
    }

    /// Rows per table so far, and whether some tables were left out ([`MAX_TABLES`]).
    pub fn finish(self) -> (BTreeMap<String, u64>, bool) {
        match self {
            Self::Sql(c) => c.finish(),
            Self::Archive(c) => c.finish(),
        }
    }
}
