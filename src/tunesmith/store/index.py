"""The registry index: one embedded SQLite database, every change in one transaction.

WAL mode and ``BEGIN IMMEDIATE`` let several processes register at once: each takes the write lock in turn, reads
the highest version and inserts the next, so N parallel registrations give N distinct versions."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    task TEXT NOT NULL,
    method TEXT NOT NULL,
    created_at REAL NOT NULL,
    source TEXT NOT NULL,
    parent TEXT,
    files TEXT NOT NULL,
    data TEXT NOT NULL,
    manifest TEXT NOT NULL,
    deleted_at REAL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (name, alias)
);
CREATE TABLE IF NOT EXISTS evaluations (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    eval_set TEXT NOT NULL,
    metrics TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (name, version, eval_set)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    at REAL NOT NULL
);
"""

JSON_COLUMNS = ("files", "data", "manifest", "metrics", "detail")


class Index:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as con:
            con.executescript(SCHEMA)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        con.row_factory = sqlite3.Row
        try:
            con.execute("PRAGMA busy_timeout = 60000")
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = FULL")
            yield con
        finally:
            con.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The write lock from the start (BEGIN IMMEDIATE): reads inside see what no other writer can change."""
        with self.connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def rows(self, sql: str, args: tuple = ()) -> list[dict[str, Any]]:
        with self.connect() as con:
            return [decode(r) for r in con.execute(sql, args).fetchall()]


def decode(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for key in JSON_COLUMNS:
        if key in out and isinstance(out[key], str):
            out[key] = json.loads(out[key])
    return out


def event(con: sqlite3.Connection, name: str, action: str, **detail: Any) -> None:
    con.execute(
        "INSERT INTO events (name, action, detail, at) VALUES (?, ?, ?, ?)",
        (name, action, json.dumps(detail, default=str), time.time()),
    )
