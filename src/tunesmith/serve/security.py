"""Who may call: a bearer token on every route but /health; request bodies bounded before they are read."""

from __future__ import annotations

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
    return hmac.compare_digest(header[7:].strip().encode(), token.encode())


class BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes gets 413, by Content-Length at once, else after reading at most
    ``limit`` + 1 bytes; the app then reads the buffered body (never more than the limit is held)."""

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await _json(send, 413, {"detail": f"request body over {self.limit} bytes"})
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            if len(body) > self.limit:
                await _json(send, 413, {"detail": f"request body over {self.limit} bytes"})
                return
            if not message.get("more_body"):
                break
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _json(send: Any, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
