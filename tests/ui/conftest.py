"""A dashboard over a workspace holding the tiny BERT and the toy data, served for real (uvicorn in a thread), with
its own model store and cache: what the browser tests and the security tests drive."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_rows, write_csv

TOKEN = "ui-test-token-0123456789"


@pytest.fixture(scope="module")
def workspace(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("ui-workspace")
    shutil.copytree(tiny_model, home / "models" / "tiny-bert")
    rows = make_rows(400, seed=5)
    (home / "data").mkdir()
    write_csv(home / "data" / "train.csv", rows[:160])
    write_csv(home / "data" / "validation.csv", rows[160:240])
    write_csv(home / "data" / "pool.csv", [{"text": r["text"]} for r in rows[240:400]])
    bad = home / "data" / "bad.csv"
    bad.write_text("text,label\nfine words,pos\n,neg\nmore words,\n", encoding="utf-8")
    return home


@pytest.fixture(scope="module")
def env(workspace: Path) -> Iterator[None]:
    mp = pytest.MonkeyPatch()
    mp.setenv("TUNESMITH_STORE", str(workspace / ".store"))
    mp.setenv("TUNESMITH_CACHE", str(workspace / ".cache"))
    mp.setenv("TUNESMITH_NO_PROGRESS", "1")
    yield
    mp.undo()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(workspace: Path, env: None) -> Iterator[str]:
    """The dashboard at http://127.0.0.1:PORT, as `tunesmith ui` serves it (uploads limited to 1 MiB here)."""
    import uvicorn

    from tunesmith import api
    from tunesmith.ui.app import create_app

    app = create_app(api.workspace([workspace]), TOKEN, max_upload_bytes=1 << 20)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started:
        if time.time() > deadline:
            raise RuntimeError("the dashboard did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)
