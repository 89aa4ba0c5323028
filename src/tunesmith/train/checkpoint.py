"""Atomic checkpoints: files go to a temp folder, each fsynced, a manifest with checksums is written
last, then the folder is renamed into place. A checkpoint without a valid manifest is ignored."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from tunesmith.files import atomic_path

MANIFEST = "manifest.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(
    root: Path, step: int, weights: dict[str, torch.Tensor], state: dict[str, Any], meta: dict[str, Any], keep: int
) -> Path:
    """Write ``ckpt-<step>`` under root and keep only the newest ``keep`` complete checkpoints."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"ckpt-{step:08d}"
    tmp = root / f".ckpt-{step:08d}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    # Written straight to disk (no in-memory copy of weights or optimizer state), then fsynced.
    save_file({k: v.detach().contiguous().cpu() for k, v in weights.items()}, str(tmp / "weights.safetensors"))
    with open(tmp / "state.pt", "wb") as fh:
        torch.save(state, fh)
    _write(tmp / "trainer.json", json.dumps(meta, indent=1).encode())
    names = ["weights.safetensors", "state.pt", "trainer.json"]
    for name in names[:2]:
        _fsync_file(tmp / name)
    manifest = {"step": step, "files": {name: _sha256(tmp / name) for name in names}}
    _write(tmp / MANIFEST, json.dumps(manifest, indent=1).encode())
    _fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    for old in complete_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def is_complete(path: Path) -> bool:
    manifest = path / MANIFEST
    if not manifest.is_file():
        return False
    try:
        files = json.loads(manifest.read_text())["files"]
        return all((path / n).is_file() and _sha256(path / n) == digest for n, digest in files.items())
    except (ValueError, KeyError, OSError):
        return False


def complete_checkpoints(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return [p for p in sorted(root.glob("ckpt-*")) if p.is_dir() and is_complete(p)]


def latest_checkpoint(root: Path) -> Path | None:
    done = complete_checkpoints(root)
    return done[-1] if done else None


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    weights = load_file(str(path / "weights.safetensors"))
    state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    meta = json.loads((path / "trainer.json").read_text())
    return weights, state, meta


def save_weights(path: Path, weights: dict[str, torch.Tensor]) -> None:
    """Atomically (files.atomic_path): temp file, fsync, rename."""
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in weights.items()}, str(tmp))
