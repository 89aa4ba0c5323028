"""A content-addressed cache for tokenized data and frozen-model features.

Entries are safetensors files named by a hash of everything that determines their content
(data fingerprint, tokenizer or model fingerprint, max_length...), written atomically so a crash
never leaves a half-written entry behind.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from tunesmith.files import atomic_path


def cache_root(configured: str | None = None) -> Path:
    root = configured or os.environ.get("TUNESMITH_CACHE") or Path.home() / ".cache" / "tunesmith"
    return Path(root)


def cache_key(*parts: object) -> str:
    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()[:24]


class ArrayCache:
    """Named groups of numpy arrays under one cache folder (``kind`` separates tokens from features)."""

    def __init__(self, root: Path, kind: str):
        self.folder = root / kind

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.safetensors"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            return load_file(str(p))
        except Exception:  # a damaged entry is rebuilt, not trusted
            return None

    def put(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        with atomic_path(self.path(key)) as tmp:
            save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp))


def pack_ragged(seqs: list[list[int]]) -> dict[str, np.ndarray]:
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    flat = np.fromiter((t for s in seqs for t in s), dtype=np.int32, count=int(lengths.sum()))
    return {"flat": flat, "lengths": lengths}


def unpack_ragged(arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
    offsets = np.concatenate([[0], np.cumsum(arrays["lengths"])])
    flat = arrays["flat"]
    return [flat[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
