"""The dashboard's rules at the HTTP level: a session from the token, CSRF on every state-changing request, paths
confined to the workspace's folders, uploads bounded; malformed input is a 4xx, never a 5xx."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.ui.conftest import TOKEN


@pytest.fixture()
def anon(server: str):
    with httpx.Client(base_url=server, follow_redirects=False, timeout=60) as c:
        yield c


@pytest.fixture()
def client(server: str):
    """A logged-in client and its CSRF token (read from the page, as the browser's forms carry it)."""
    with httpx.Client(base_url=server, follow_redirects=False, timeout=60) as c:
        r = c.post("/login", data={"token": TOKEN, "next": "/"})
        assert r.status_code == 303
        page = c.get("/").text
        csrf = re.search(r"<meta name=csrf content='([^']+)'>", page).group(1)
        yield c, csrf


def test_without_a_session_pages_send_to_login_and_everything_else_is_401(anon):
    r = anon.get("/models")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fmodels"
    assert anon.get("/api/progress", params={"path": "runs"}).status_code == 401
    assert anon.post("/new/start", data={"config": "x.yaml"}).status_code == 401
    assert anon.get("/health").json() == {"status": "ok"}
    assert anon.get("/static/ui.css").status_code == 200


def test_login_needs_the_token_and_sets_a_strict_http_only_cookie(anon):
    r = anon.post("/login", data={"token": "wrong-token-wrong-token", "next": "/"})
    assert r.status_code == 401 and "set-cookie" not in r.headers
    assert "That is not the token" in r.text
    r = anon.post("/login", data={"token": TOKEN, "next": "//evil.example/"})
    assert r.status_code == 303 and r.headers["location"] == "/"  # never redirected off the site
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie


def test_a_state_changing_request_without_the_csrf_token_is_refused(client, workspace: Path):
    c, csrf = client
    assert c.post("/label/set", data={"queue": "q", "index": "0", "label": "pos"}).status_code == 403
    assert c.post("/label/set", data={"queue": "q", "index": "0", "label": "pos", "csrf": "forged"}).status_code == 403
    r = c.post("/api/chat", json={"model": "x", "messages": []}, headers={"x-csrf-token": "forged"})
    assert r.status_code == 403
    r = c.post("/logout", data={"csrf": "forged"})
    assert r.status_code == 403
    # with the token the request is judged on its content: no such queue is a 400
    r = c.post("/label/set", data={"queue": "q", "index": "0", "label": "pos", "csrf": csrf})
    assert r.status_code == 400 and "no such labelling queue" in r.text


@pytest.mark.parametrize(
    "query",
    [
        {"path": "../../etc"},
        {"path": "/etc"},
        {"path": "data/../../"},
        {"path": "link-out"},
    ],
)
def test_no_parameter_reads_outside_the_workspace(client, workspace: Path, query):
    c, _ = client
    link = workspace / "link-out"
    if not link.exists():
        link.symlink_to("/etc", target_is_directory=True)
    r = c.get("/run", params=query)
    assert r.status_code == 400 and "outside the folders" in r.text
    r = c.get("/run/file", params={**query, "name": "config.yaml"})
    assert r.status_code == 400
    r = c.get("/api/progress", params=query)
    assert r.status_code == 400 and "outside the folders" in r.json()["detail"]


def test_a_run_file_is_one_of_the_named_documents_only(client):
    c, _ = client
    r = c.get("/run/file", params={"path": "data", "name": "../train.csv"})
    assert r.status_code == 400


def test_data_outside_the_workspace_is_refused_in_the_form(client, workspace: Path):
    c, csrf = client
    r = c.post("/new/check", data={"csrf": csrf, "task": "text-classification", "train": "/etc/passwd",
                                   "model": "models/tiny-bert"})  # fmt: skip
    assert r.status_code == 200 and "outside the folders" in r.text
    r = c.post("/new/start", data={"csrf": csrf, "task": "text-classification", "train": "/etc/passwd"})
    assert r.status_code == 400
    assert not (workspace / "configs").exists() or not list((workspace / "configs").glob("*.yaml"))


def test_uploads_are_bounded_and_named_safely(client, workspace: Path):
    c, csrf = client
    big = b"text,label\n" + b"word,pos\n" * 200_000  # 1.8 MB against the 1 MiB limit
    r = c.post("/upload", data={"csrf": csrf}, files={"file": ("big.csv", big, "text/csv")})
    assert r.status_code == 413
    r = c.post("/upload", data={"csrf": csrf}, files={"file": ("../escape.csv", b"text,label\na,pos\n", "text/csv")})
    assert r.status_code == 303  # the folder part of a browser's file name is dropped
    assert (workspace / "uploads" / "escape.csv").is_file() and not (workspace / "escape.csv").exists()
    r = c.post("/upload", data={"csrf": csrf}, files={"file": ("run.sh", b"#!/bin/sh\n", "text/plain")})
    assert r.status_code == 400 and "allowed kinds" in r.text
    assert not (workspace / "uploads" / "big.csv").exists() and not (workspace / "uploads" / "run.sh").exists()


def test_malformed_input_is_a_4xx(client):
    c, csrf = client
    h = {"x-csrf-token": csrf, "content-type": "application/json"}
    assert c.post("/api/chat", content=b"{not json", headers=h).status_code == 400
    assert c.post("/api/chat", json=[1, 2], headers={"x-csrf-token": csrf}).status_code in (400, 403)
    r = c.post("/api/chat", json={"model": "data", "messages": "hi"}, headers={"x-csrf-token": csrf})
    assert r.status_code == 400
    assert c.post("/label/set", data={"csrf": csrf, "queue": "q", "index": "abc"}).status_code == 400
    assert c.post("/label/set", data={"csrf": csrf, "queue": "../x", "index": "0"}).status_code == 400
    assert c.get("/jobs/..%2F..%2Fetc").status_code in (400, 404)
    assert c.get("/api/jobs/nonexistent").status_code == 400
    assert c.post("/run/export", data={"csrf": csrf, "path": "data", "kind": "zip"}).status_code == 400
    assert c.post("/models/gate", data={"csrf": csrf, "ref": "a b@c", "alias": "prod"}).status_code == 400


def test_the_data_checks_show_every_fatal_problem_with_its_line_before_anything_trains(client, workspace: Path):
    c, csrf = client
    r = c.post("/new/check", data={"csrf": csrf, "task": "text-classification", "model": "models/tiny-bert",
                                   "train": "data/bad.csv", "validation": "data/validation.csv"})  # fmt: skip
    assert r.status_code == 200
    check = r.text[r.text.index("<section id=check") :]
    assert "fatal problems" in check and "nothing was written" in check
    assert re.search(r"<td>3</td><td>text</td>", check) and re.search(r"<td>4</td><td>label</td>", check)
    assert not list(workspace.glob("runs/*"))


def test_the_command_serves_on_loopback_and_prints_the_address_and_a_fresh_token(workspace: Path, env):
    import os
    import subprocess
    import sys
    import time

    from tests.ui.conftest import free_port

    port = free_port()
    env_vars = {k: v for k, v in os.environ.items() if k != "TUNESMITH_TOKEN"}
    proc = subprocess.Popen([sys.executable, "-m", "tunesmith.cli", "ui", str(workspace), "--port", str(port)],
                            stderr=subprocess.PIPE, text=True, env=env_vars)  # fmt: skip
    try:
        lines = [proc.stderr.readline() for _ in range(4)]
        assert lines[0].strip() == f"tunesmith dashboard: http://127.0.0.1:{port}/"
        token = re.match(r"token: (\S+)  \(from generated for this run", lines[1]).group(1)
        assert len(token) >= 24 and lines[2].startswith(f"workspace: {workspace}")
        deadline = time.time() + 30
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/health").json() == {"status": "ok"}
                break
            except httpx.ConnectError:
                assert time.time() < deadline
                time.sleep(0.2)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            assert c.post("/login", data={"token": token}).status_code == 303
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_command_refuses_a_reachable_address_without_a_chosen_token(workspace: Path, monkeypatch, capsys):
    from tests.ui.conftest import free_port
    from tunesmith.cli import main

    monkeypatch.delenv("TUNESMITH_TOKEN", raising=False)
    assert main(["ui", str(workspace), "--host", "0.0.0.0", "--port", str(free_port())]) == 2
    assert "reachable from other machines: give a token" in capsys.readouterr().err
