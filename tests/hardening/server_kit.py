"""The server under test: the app in-process (TestClient) or under uvicorn on a free loopback port."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from fastapi.testclient import TestClient

from tunesmith.serve import ServeSettings, create_app

TOKEN = "t0ken-for-hardening-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def client(model, **settings) -> TestClient:
    return TestClient(create_app(model, "m@v1", ServeSettings(token=TOKEN, **settings)))


@contextlib.contextmanager
def live(model, **settings):
    """The app under uvicorn in a thread, on a free loopback port: (base url, port)."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(model, "m@v1", ServeSettings(token=TOKEN, **settings))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}", port
    finally:
        server.should_exit = True
        thread.join(10)
