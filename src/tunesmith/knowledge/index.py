"""The index of a knowledge base: one SQLite file (Python's own sqlite3, no server) holding files, chunks and
their vectors, searched exactly.

Search is exact (every vector scored): at the example knowledge base's size and at ten times it, one query over
float32 vectors takes milliseconds with NumPy (docs/benchmarks.md, "Knowledge base"), as fast as faiss's flat
index, and approximate indexes would only trade recall for time that is not needed. sqlite-vec was a candidate
but needs ``enable_load_extension``, which the Python builds of Debian and others leave out."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tunesmith.knowledge.chunking import Chunk, line_range

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
                                  chunks INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (id INTEGER PRIMARY KEY, path TEXT NOT NULL, first_line INTEGER NOT NULL,
                                   last_line INTEGER NOT NULL, heading TEXT NOT NULL, text TEXT NOT NULL,
                                   digest TEXT NOT NULL, vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_path ON chunks(path);
"""


@dataclass(frozen=True)
class Hit:
    id: int
    score: float
    source: str
    first_line: int
    last_line: int
    heading: str
    text: str

    def where(self) -> str:
        return line_range(self.source, self.first_line, self.last_line)

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "lines": [self.first_line, self.last_line],
            "heading": self.heading,
            "score": round(self.score, 4),
            "text": self.text,
        }


@dataclass(frozen=True)
class FileRecord:
    path: str
    sha256: str
    size: int
    chunks: int


class Index:
    def __init__(self, path: Path):
        self.path = path
        self._matrix: tuple[np.ndarray, np.ndarray] | None = None

    def connect(self, write: bool = False) -> sqlite3.Connection:
        """Reads open the file read-only (a registered knowledge base's files are read-only links)."""
        if not write:
            return sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
        con = sqlite3.connect(self.path)
        con.executescript(SCHEMA)
        return con

    def files(self) -> dict[str, FileRecord]:
        if not self.path.exists():
            return {}
        with self.connect() as con:
            rows = con.execute("SELECT path, sha256, size, chunks FROM files").fetchall()
        return {r[0]: FileRecord(*r) for r in rows}

    def digests(self, excluding: Iterable[str] = ()) -> dict[str, tuple[str, int]]:
        """digest -> (path, first line) of the stored chunks, leaving out the files named."""
        if not self.path.exists():
            return {}
        skip = set(excluding)
        with self.connect() as con:
            rows = con.execute("SELECT digest, path, first_line FROM chunks ORDER BY id").fetchall()
        return {d: (p, n) for d, p, n in rows if p not in skip}

    def replace(
        self, stale: Iterable[str], records: list[FileRecord], chunks: list[Chunk], vectors: np.ndarray
    ) -> None:
        """One transaction: drop the ``stale`` files' chunks, add the new ones with their vectors. A failure leaves
        the index as it was."""
        con = self.connect(write=True)
        try:
            with con:
                for path in stale:
                    con.execute("DELETE FROM chunks WHERE path = ?", (path,))
                    con.execute("DELETE FROM files WHERE path = ?", (path,))
                con.executemany(
                    "INSERT INTO files (path, sha256, size, chunks) VALUES (?, ?, ?, ?)",
                    [(r.path, r.sha256, r.size, r.chunks) for r in records],
                )
                con.executemany(
                    "INSERT INTO chunks (path, first_line, last_line, heading, text, digest, vector) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (c.source, c.first_line, c.last_line, c.title, c.text, c.digest, v.astype(np.float32).tobytes())
                        for c, v in zip(chunks, vectors)
                    ],
                )
        finally:
            con.close()
        self._matrix = None

    def count(self) -> int:
        if not self.path.exists():
            return 0
        with self.connect() as con:
            return int(con.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])

    def matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of every chunk, read once per Index object."""
        if self._matrix is None:
            with self.connect() as con:
                rows = con.execute("SELECT id, vector FROM chunks ORDER BY id").fetchall()
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            vecs = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows]) if rows else np.zeros((0, 0))
            self._matrix = ids, vecs.astype(np.float32, copy=False)
        return self._matrix

    def search(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        """The ``k`` chunks with the highest dot product (cosine: vectors are unit length) for each query."""
        ids, vecs = self.matrix()
        if len(ids) == 0:
            return [[] for _ in range(len(queries))]
        k = min(k, len(ids))
        scores = queries.astype(np.float32) @ vecs.T
        out: list[list[tuple[int, float]]] = []
        for row in scores:
            top = np.argpartition(-row, k - 1)[:k]
            top = top[np.lexsort((ids[top], -row[top]))]  # by score, ties by the chunk's order
            out.append([(int(ids[i]), float(row[i])) for i in top])
        return self._hits(out)

    def _hits(self, found: list[list[tuple[int, float]]]) -> list[list[Hit]]:
        wanted = sorted({i for hits in found for i, _ in hits})
        if not wanted:
            return [[] for _ in found]
        with self.connect() as con:
            marks = ",".join("?" * len(wanted))
            rows = con.execute(
                f"SELECT id, path, first_line, last_line, heading, text FROM chunks WHERE id IN ({marks})", wanted
            ).fetchall()
        by_id = {r[0]: r for r in rows}
        return [[Hit(i, s, *by_id[i][1:]) for i, s in hits] for hits in found]

    def chunks(self) -> list[Hit]:
        """Every chunk in order (score 0): for training data made from the knowledge base."""
        with self.connect() as con:
            rows = con.execute(
                "SELECT id, path, first_line, last_line, heading, text FROM chunks ORDER BY id"
            ).fetchall()
        return [Hit(r[0], 0.0, *r[1:]) for r in rows]
