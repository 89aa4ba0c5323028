"""What this machine offers a training run: cores, memory (inside any container limit), the GPU."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tunesmith.runtime import available_cores

GIB = 1 << 30


@dataclass(frozen=True)
class Hardware:
    cores: int
    memory_total: int  # bytes this process may use in all (the smaller of RAM and a cgroup limit)
    memory_available: int  # bytes free for a new run now
    gpu: str | None = None
    gpu_memory_total: int = 0
    gpu_memory_available: int = 0

    @property
    def device(self) -> str:
        return "cuda" if self.gpu else "cpu"

    @property
    def budget_bytes(self) -> int:
        """Memory a run may use where its model lives: GPU memory on a GPU, else RAM."""
        return self.gpu_memory_available if self.gpu else self.memory_available

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        text = f"{self.cores} CPU cores, {self.memory_available / GIB:.1f} of {self.memory_total / GIB:.1f} GiB free"
        if self.gpu:
            free, total = self.gpu_memory_available / GIB, self.gpu_memory_total / GIB
            text += f", {self.gpu} ({free:.1f} of {total:.1f} GiB free)"
        else:
            text += ", no GPU"
        return text


def _meminfo() -> dict[str, int]:
    out = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts:
                out[key] = int(parts[0]) * 1024
    except OSError:
        pass
    return out


def _cgroup_limit() -> tuple[int | None, int]:
    """(limit, current use) of a cgroup v2 or v1 memory limit, or (None, 0) without one."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            raw = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if raw == "max" or not raw.isdigit() or int(raw) >= 1 << 60:
            return None, 0
        try:
            used = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            used = 0
        return int(raw), used
    return None, 0


def detect() -> Hardware:
    info = _meminfo()
    total = info.get("MemTotal", 0) or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    available = info.get("MemAvailable", total)
    limit, used = _cgroup_limit()
    if limit is not None:
        total = min(total, limit)
        available = min(available, max(0, limit - used))
    gpu, gpu_total, gpu_free = None, 0, 0
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
            gpu_free, gpu_total = torch.cuda.mem_get_info(0)
    except Exception:  # noqa: BLE001 - no usable GPU is an answer, not an error
        gpu = None
    return Hardware(available_cores(), total, available, gpu, gpu_total, gpu_free)
