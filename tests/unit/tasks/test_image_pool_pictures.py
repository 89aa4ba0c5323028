"""An array pool's pictures (the labelling page serves one per request): the file is read once while it stays the
same, read again once it changes, and a pool file that is gone is a clear input error."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tunesmith.errors import InputError
from tunesmith.tasks.image_classification import pool as image_pool
from tunesmith.tasks.image_classification.pool import ImagePool


def _pixels(value: int) -> np.ndarray:
    return np.full((5, 8, 8, 3), value, dtype=np.uint8) + np.arange(5, dtype=np.uint8)[:, None, None, None]


def test_an_npz_pool_is_read_once_per_version_of_the_file(tmp_path, monkeypatch):
    path = tmp_path / "pool.npz"
    np.savez(path, images=_pixels(10))
    loads: list[str] = []
    real_load = np.load
    monkeypatch.setattr(image_pool.np, "load", lambda *a, **k: loads.append(str(a[0])) or real_load(*a, **k))
    image_pool._read_array_images.cache_clear()
    kind = ImagePool()

    assert [int(kind.picture(path, f"pool.npz[{i}]")[0, 0, 0]) for i in range(5)] == [10, 11, 12, 13, 14]
    assert len(loads) == 1

    np.savez(path, images=_pixels(100))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert int(kind.picture(path, "pool.npz[2]")[0, 0, 0]) == 102
    assert len(loads) == 2

    with pytest.raises(InputError, match="no such image"):
        kind.picture(path, "pool.npz[5]")
    path.unlink()
    with pytest.raises(InputError, match="the pool file is gone"):
        kind.picture(path, "pool.npz[0]")
