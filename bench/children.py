"""What every bench shares: each contender runs as a fresh child process of the bench script (so its peak
memory is its own) and prints one JSON line of results."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys


def rss_mb() -> float:
    """This process's peak resident memory."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(script: str, kind: str, args: list[str], cache: str) -> dict:
    """Run ``script --child KIND ARGS`` offline with its own tunesmith cache; its last stdout line is JSON."""
    env = {
        **os.environ,
        "TUNESMITH_CACHE": cache,
        "TUNESMITH_NO_PROGRESS": "1",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    out = subprocess.run(
        [sys.executable, script, "--child", kind, *args], capture_output=True, text=True, env=env, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
