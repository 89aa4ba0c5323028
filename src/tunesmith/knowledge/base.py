"""Knowledge bases: named folders of chunks and their vectors, built from documents, rebuilt incrementally.

Layout under the root (``TUNESMITH_KNOWLEDGE``, default ``~/.local/share/tunesmith/knowledge``)::

    NAME/knowledge.json   the encoder, the chunking, the build history (versions with their fingerprints)
    NAME/index.sqlite     files (SHA-256), chunks (source, line range, heading, text) and vectors (index.py)

A rebuild reads every given file, and embeds only the chunks of files whose bytes changed; files no longer
given are dropped. A changed encoder or chunking rebuilds everything. Every problem names its file and line;
fatal ones (a missing or unreadable file, a kind no reader knows) stop the build before anything is written."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.data.validate import DataReport
from tunesmith.errors import DataError, InputError
from tunesmith.files import write_json
from tunesmith.knowledge.chunking import Chunk, chunk_paragraphs, text_length
from tunesmith.knowledge.documents import collect, read_document
from tunesmith.knowledge.index import FileRecord, Hit, Index

DEFAULT_ENCODER = "minilm-l6"
DEFAULT_CHUNK_SIZE = 800  # characters; see docs/knowledge.md for the measurement
DEFAULT_OVERLAP = 100
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
NAME_RULE = "1-64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit"
META = "knowledge.json"


def default_root() -> Path:
    if os.environ.get("TUNESMITH_KNOWLEDGE"):
        return Path(os.environ["TUNESMITH_KNOWLEDGE"])
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "tunesmith" / "knowledge"


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        raise InputError(f"knowledge base name {name!r} is not allowed: use {NAME_RULE}")
    return name


def display_path(path: Path) -> str:
    """A source as it is stored and shown: relative to the working folder when under it, else absolute."""
    full = path.resolve()
    try:
        return full.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return full.as_posix()


@dataclass
class BuildResult:
    name: str
    version: int
    files: dict[str, list[str]]  # added / changed / unchanged / removed -> paths
    chunks_embedded: int
    chunks: int
    seconds: float
    report: DataReport
    rebuilt_all: str | None = None  # why every file was embedded again
    fingerprint: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "files": {k: len(v) for k, v in self.files.items()},
            "chunks_embedded": self.chunks_embedded,
            "chunks": self.chunks,
            "seconds": round(self.seconds, 2),
            "rebuilt_all": self.rebuilt_all,
            "fingerprint": self.fingerprint,
            "problems": [str(p) for p in self.report.problems],
        }


class KnowledgeBase:
    def __init__(self, folder: Path):
        self.folder = folder
        self.name = folder.name
        self.index = Index(folder / "index.sqlite")
        self._encoder: Any = None

    # --- finding ----------------------------------------------------------------------------------
    @classmethod
    def named(cls, name: str, root: str | Path | None = None) -> KnowledgeBase:
        """An existing knowledge base: a name under the root, or a knowledge base folder's path."""
        p = Path(name)
        if (p / META).is_file():
            return cls(p)
        folder = Path(root or default_root()) / check_name(name)
        if not (folder / META).is_file():
            have = ", ".join(k["name"] for k in list_bases(root)) or "none yet"
            raise InputError(f"knowledge base {name!r}: not found under {folder.parent} (have: {have}); "
                             "build it with: tunesmith kb build DOCS... --name NAME")  # fmt: skip
        return cls(folder)

    @property
    def meta(self) -> dict[str, Any]:
        path = self.folder / META
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    @property
    def version(self) -> int:
        return len(self.meta.get("versions", []))

    @property
    def fingerprint(self) -> str:
        versions = self.meta.get("versions", [])
        return versions[-1]["fingerprint"] if versions else ""

    def encoder(self) -> Any:
        from tunesmith.knowledge.encoder import TextEncoder

        if self._encoder is None:
            self._encoder = TextEncoder(self.meta["encoder"])
        return self._encoder

    # --- searching --------------------------------------------------------------------------------
    def search(self, queries: list[str], k: int = 5) -> list[list[Hit]]:
        if k < 1:
            raise InputError(f"k: {k} is not allowed; ask for at least 1 chunk")
        return self.index.search(self.encoder().encode(queries), k)

    def chunks(self) -> list[Hit]:
        return self.index.chunks()

    # --- building ---------------------------------------------------------------------------------
    def build(
        self,
        paths: list[str | Path],
        encoder: str | None = None,
        chunk_size: int | None = None,
        overlap: int | None = None,
    ) -> BuildResult:
        from tunesmith.knowledge.encoder import TextEncoder
        from tunesmith.models.catalog import resolve

        start = time.perf_counter()
        old = self.meta
        settings = {
            "encoder": encoder or old.get("encoder") or DEFAULT_ENCODER,
            "chunk_size": chunk_size or old.get("chunk_size") or DEFAULT_CHUNK_SIZE,
            "chunk_overlap": overlap if overlap is not None else old.get("chunk_overlap", DEFAULT_OVERLAP),
        }
        if not 0 <= settings["chunk_overlap"] < settings["chunk_size"]:
            raise InputError(
                f"--overlap {settings['chunk_overlap']}: must be at least 0 and below --chunk-size "
                f"{settings['chunk_size']}"
            )
        report = DataReport()
        files = collect(paths, report)
        if not files and not report.errors:
            kinds = ".txt, .md, .rst (and .rst.txt), .html"
            report.add("error", "no_documents", f"no documents of a kind tunesmith reads ({kinds}) under the given "
                       "paths", ", ".join(str(p) for p in paths))  # fmt: skip
        settings["encoder_fingerprint"] = resolve(settings["encoder"]).fingerprint
        changed_settings = [k for k in settings if old and old.get(k) != settings[k]]
        rebuilt_all = f"{', '.join(changed_settings)} changed" if changed_settings else None
        stored = {} if rebuilt_all else self.index.files()

        status: dict[str, list[str]] = {"added": [], "changed": [], "unchanged": [], "removed": []}
        records: list[FileRecord] = []
        new_chunks: list[Chunk] = []
        seen_paths: set[str] = set()
        for f in files:
            rel = display_path(f)
            seen_paths.add(rel)
            try:
                data = f.read_bytes()
            except OSError as e:
                report.add("error", "unreadable", f"cannot be read: {e.strerror or e}", str(f))
                continue
            sha = hashlib.sha256(data).hexdigest()
            if rel in stored and stored[rel].sha256 == sha:
                status["unchanged"].append(rel)
                continue
            status["changed" if rel in stored else "added"].append(rel)
            paragraphs = read_document(f, report)
            if paragraphs is None:
                records.append(FileRecord(rel, sha, len(data), 0))  # kept as seen: a rebuild skips it unchanged
                continue
            chunks = chunk_paragraphs(rel, paragraphs, settings["chunk_size"], settings["chunk_overlap"])
            for p in paragraphs:
                if text_length(p.words) > settings["chunk_size"]:
                    why = f"a paragraph of {len(p.text)} characters is longer than the chunk size "
                    why += f"({settings['chunk_size']}); cut into overlapping windows"
                    report.add("warning", "long_paragraph", why, rel, p.words[0][1])
            records.append(FileRecord(rel, sha, len(data), len(chunks)))
            new_chunks += chunks
        if report.errors:
            raise DataError(report.problems)
        enc = TextEncoder(settings["encoder"])
        status["removed"] = sorted(p for p in stored if p not in seen_paths)
        stale = [*status["changed"], *status["removed"]] if not rebuilt_all else list(self.index.files())
        new_chunks = self._drop_duplicates(new_chunks, stale, report)
        self._check_budget(enc, new_chunks, report)
        per_file = Counter(c.source for c in new_chunks)
        records = [FileRecord(r.path, r.sha256, r.size, per_file[r.path]) for r in records]
        vectors = enc.encode([c.embedded_text for c in new_chunks]) if new_chunks else np.zeros((0, enc.dim))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.index.replace(stale, records, new_chunks, vectors)
        total = self.index.count()
        versions = list(old.get("versions", []))
        fingerprint = self._fingerprint(settings)
        changed = bool(status["added"] or status["changed"] or status["removed"] or rebuilt_all)
        if changed or not versions:
            versions.append({
                "version": len(versions) + 1, "fingerprint": fingerprint, "built_at": time.time(),
                "files": {k: len(v) for k, v in status.items()}, "chunks": total,
            })  # fmt: skip
        meta = {**settings, "name": self.name, "max_length": enc.max_length, "dim": enc.dim,
                "sources": [display_path(Path(p)) for p in paths], "versions": versions}  # fmt: skip
        write_json(self.folder / META, meta)
        self._encoder = enc
        return BuildResult(
            self.name, len(versions), status, len(new_chunks), total, time.perf_counter() - start, report,
            rebuilt_all, fingerprint,
        )  # fmt: skip

    def _drop_duplicates(self, chunks: list[Chunk], stale: list[str], report: DataReport) -> list[Chunk]:
        """A chunk whose text (case and spacing aside) is already in the index or earlier in this build is stored
        once: the repeat is reported with where the first copy is."""
        seen = self.index.digests(excluding=stale)
        out = []
        for c in chunks:
            first = seen.get(c.digest)
            if first is not None:
                report.add("warning", "duplicate_chunk", f"repeats the text at {first[0]}:{first[1]}; stored once",
                           c.source, c.first_line)  # fmt: skip
                continue
            seen[c.digest] = (c.source, c.first_line)
            out.append(c)
        return out

    @staticmethod
    def _check_budget(enc: Any, chunks: list[Chunk], report: DataReport) -> None:
        """Chunks the encoder would cut: what is past its longest input is invisible to search."""
        if not chunks:
            return
        counts = enc.token_counts([c.embedded_text for c in chunks])
        for c, n in zip(chunks, counts):
            if n > enc.max_length:
                report.add("warning", "over_budget",
                           f"a chunk of {n} tokens; the encoder reads {enc.max_length}, so its end is not searchable "
                           "(lower --chunk-size)", c.source, c.first_line)  # fmt: skip

    def _fingerprint(self, settings: dict[str, Any]) -> str:
        h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
        for path, rec in sorted(self.index.files().items()):
            h.update(f"{path}\0{rec.sha256}\0".encode())
        return h.hexdigest()[:16]

    def pairs(self, min_words: int = 2) -> list[dict[str, str]]:
        """Training pairs for an encoder from the knowledge base itself: each section's title (a FAQ's question, a
        heading) as the query and the first chunk under it as the passage; titles of fewer than ``min_words``
        words ("Examples") are left out, as is a title that heads several sections."""
        first: dict[tuple[str, str], Hit] = {}
        for h in self.chunks():
            title = h.heading.rsplit(" > ", 1)[-1].strip()
            if len(title.split()) >= min_words:
                first.setdefault((h.source, h.heading), h)
        titles = Counter(h.heading.rsplit(" > ", 1)[-1].strip().casefold() for h in first.values())
        return [
            {"query": h.heading.rsplit(" > ", 1)[-1].strip(), "passage": h.text, "source": h.where()}
            for h in first.values()
            if titles[h.heading.rsplit(" > ", 1)[-1].strip().casefold()] == 1
        ]

    def remove(self) -> None:
        shutil.rmtree(self.folder)


def list_bases(root: str | Path | None = None) -> list[dict[str, Any]]:
    base = Path(root or default_root())
    out = []
    for folder in sorted(base.iterdir()) if base.is_dir() else []:
        if (folder / META).is_file():
            kb = KnowledgeBase(folder)
            meta = kb.meta
            last = (meta.get("versions") or [{}])[-1]
            out.append({
                "name": folder.name, "version": kb.version, "chunks": last.get("chunks", 0),
                "files": sum(1 for _ in kb.index.files()), "encoder": meta.get("encoder"),
                "chunk_size": meta.get("chunk_size"), "fingerprint": last.get("fingerprint", ""),
                "built_at": last.get("built_at"),
            })  # fmt: skip
    return out


def create(name: str, root: str | Path | None = None) -> KnowledgeBase:
    return KnowledgeBase(Path(root or default_root()) / check_name(name))
