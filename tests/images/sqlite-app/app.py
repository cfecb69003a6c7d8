#!/usr/bin/env python3
"""A stand-in application that keeps an SQLite database busy, for stowage's SQLite tests.

  app.py write DB MODE SEED   create DB in journal MODE (wal, delete), add SEED rows, then
                              insert one event per transaction, forever
  app.py seed DB MODE SEED    only create and seed, then exit
  app.py count DB             the committed event count
  app.py summary DB           the row count and a hash of every row
  app.py check DB             integrity_check, then "ok N" if the events are exactly 1..N and
                              meta.count is N (a consistent prefix of the writes)
"""
import hashlib
import sqlite3
import sys
import time


def connect(path):
    return sqlite3.connect(path, timeout=60, isolation_level=None)


def write(path, mode, seed, forever=True):
    db = connect(path)
    db.execute(f"PRAGMA journal_mode={mode}")
    db.execute("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, body TEXT NOT NULL, data BLOB)")
    db.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, n INTEGER NOT NULL)")
    db.execute("INSERT OR IGNORE INTO meta VALUES ('count', 0)")
    n = db.execute("SELECT n FROM meta WHERE k = 'count'").fetchone()[0]
    db.execute("BEGIN IMMEDIATE")
    for _ in range(seed):
        n += 1
        db.execute("INSERT INTO events VALUES (?, ?, randomblob(64))", (n, f"seed {n} Grüße ✓ 日本"))
    db.execute("UPDATE meta SET n = ? WHERE k = 'count'", (n,))
    db.execute("COMMIT")
    print(f"seeded {n}", flush=True)
    while forever:
        n += 1
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO events VALUES (?, ?, randomblob(64))", (n, f"event {n} 'quoted' \\ ✓"))
        db.execute("UPDATE meta SET n = ? WHERE k = 'count'", (n,))
        db.execute("COMMIT")
        time.sleep(0.001)


def count(path):
    print(connect(path).execute("SELECT n FROM meta WHERE k = 'count'").fetchone()[0])


def summary(path):
    db = connect(path)
    digest = hashlib.sha256()
    for row in db.execute("SELECT id, body, hex(data) FROM events ORDER BY id"):
        digest.update(repr(row).encode())
    rows = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    print(f"{rows} rows, sha256 {digest.hexdigest()}")


def check(path):
    db = connect(path)
    integrity = db.execute("PRAGMA integrity_check").fetchall()
    if integrity != [("ok",)]:
        sys.exit(f"integrity_check: {integrity}")
    rows, lo, hi = db.execute("SELECT COUNT(*), MIN(id), MAX(id) FROM events").fetchone()
    meta = db.execute("SELECT n FROM meta WHERE k = 'count'").fetchone()[0]
    if not (rows == hi == meta and lo == 1):
        sys.exit(f"not a consistent prefix: {rows} rows, ids {lo}..{hi}, meta.count {meta}")
    print(f"ok {rows}")


if __name__ == "__main__":
    cmd, path = sys.argv[1], sys.argv[2]
    if cmd == "write":
        write(path, sys.argv[3], int(sys.argv[4]))
    elif cmd == "seed":
        write(path, sys.argv[3], int(sys.argv[4]), forever=False)
    elif cmd == "summary":
        summary(path)
    elif cmd == "count":
        count(path)
    elif cmd == "check":
        check(path)
    else:
        sys.exit(__doc__)
