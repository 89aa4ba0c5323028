"""Who may call: a bearer token on every route but /health; request bodies bounded before they are read."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import os
import secrets
import socket
from pathlib import Path
from typing import Any

from tunesmith.errors import InputError

TOKEN_ENV = "TUNESMITH_TOKEN"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(a[4][0]).is_loopback for a in socket.getaddrinfo(host, None))
        except OSError:
            return False


def load_token(host: str, token_file: str | None) -> tuple[str, str]:
    """(token, where it came from): --token-file, else $TUNESMITH_TOKEN, else (loopback only) a fresh random one.
    A server reachable from other machines without a token the operator chose is refused."""
    if token_file:
        path = Path(token_file)
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise InputError(f"--token-file {path}: cannot be read ({exc})") from None
        source = f"file {path}"
    elif os.environ.get(TOKEN_ENV):
        token, source = os.environ[TOKEN_ENV].strip(), f"${TOKEN_ENV}"
    elif is_loopback(host):
        return secrets.token_urlsafe(24), "generated for this run"
    else:
        raise InputError(
            f"--host {host} is reachable from other machines: give a token (--token-file or ${TOKEN_ENV}); "
            "serving without one is refused"
        )
    if len(token) < 16:
        raise InputError(f"the token from {source} has {len(token)} characters; use at least 16")
    return token, source


def token_matches(header: str | None, token: str) -> bool:
    if not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode("utf-8", "replace"), token.encode())


OPENAI_PATHS = ("/v1/chat/", "/v1/models", "/v1/embeddings")
_OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "invalid_request_error",
                 408: "timeout", 413: "invalid_request_error", 429: "rate_limit_error", 504: "timeout"}  # fmt: skip


def error_body(path: str, status: int, message: str, param: str | None = None) -> dict[str, Any]:
    """An error as the route's clients expect it: OpenAI's shape on the OpenAI-compatible routes, else
    ``{"detail": message}``."""
    if path.startswith(OPENAI_PATHS):
        kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        code = {401: "invalid_api_key", 404: "model_not_found" if "model" in message else "not_found"}.get(status)
        return {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return {"detail": message}


class Guard:
    """ASGI middleware in front of every route, in this order: the bearer token (401 before anything of the body
    is read; /health is open), then the body: over ``limit`` bytes is 413 (by Content-Length at once, else after
    reading at most ``limit`` + 1 bytes), and a body that has not fully arrived within ``timeout_s`` is 408 (a
    client sending 1 byte a second holds no worker). The app then reads the buffered body."""

    def __init__(
        self, app: Any, token: str | None, limit: int, timeout_s: float = 10.0, open_paths: tuple[str, ...] = ()
    ):
        self.app, self.token, self.limit, self.timeout_s, self.open_paths = app, token, limit, timeout_s, open_paths

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        path = str(scope.get("path", ""))
        if self.token is not None and path not in self.open_paths:  # None: the app checks who calls (the dashboard)
            given = headers.get(b"authorization", b"").decode("latin-1")
            if not token_matches(given, self.token):
                await _json(send, 401, error_body(path, 401, "a valid bearer token is required"),
                            [(b"www-authenticate", b"Bearer")])  # fmt: skip
                return
        too_big = error_body(path, 413, f"request body over {self.limit} bytes")
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await _json(send, 413, too_big)
            return
        try:
            body = await asyncio.wait_for(self._read(receive), self.timeout_s)
        except asyncio.TimeoutError:
            await _json(
                send, 408, error_body(path, 408, f"the request body did not arrive within {self.timeout_s:g} s")
            )
            return
        if body is None:  # the client went away
            return
        if len(body) > self.limit:
            await _json(send, 413, too_big)
            return
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read(self, receive: Any) -> bytearray | None:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            body += message.get("body", b"")
            if len(body) > self.limit or not message.get("more_body"):
                return body


async def _json(send: Any, status: int, body: dict, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    headers += extra or []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def check_can_listen(host: str, port: int) -> None:
    """InputError, before the model is loaded, when ``host:port`` cannot be listened on (in use, not an address
    of this machine, a privileged port)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise InputError(f"--host {host}: not an address this machine can listen on ({exc})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
