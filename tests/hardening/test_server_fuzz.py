"""A fuzz pass over every route of the classifier's and the generator's server: malformed JSON, wrong types,
NaN / Infinity, huge numbers, invalid Unicode, oversize bodies (Hypothesis), then slow bodies and dropped
connections on a real socket. Nothing answers 5xx, and afterwards the server still answers correctly."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hardening.server_kit import AUTH, TOKEN, client, live
from tunesmith.serve import ServeSettings, create_app

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
NASTY_NUMBERS = st.sampled_from([float("nan"), float("inf"), -float("inf"), 2**70, -(2**70), 1e308, -1, 0, 0.5])
NASTY_TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", " ", "\ud800", "a\udfffb", "\x00", "\u2028", "x" * 20_000, "<script>", "../../etc/passwd"]),
)
VALUES = st.recursive(
    st.none() | st.booleans() | NASTY_NUMBERS | st.integers() | NASTY_TEXT,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(NASTY_TEXT, inner, max_size=5),
    max_leaves=15,
)
MESSAGES = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "assistant", "x"]),
                                           "content": NASTY_TEXT}), max_size=4)  # fmt: skip
CHAT = st.fixed_dictionaries(
    {"model": st.one_of(st.just("m@v1"), NASTY_TEXT), "messages": st.one_of(MESSAGES, VALUES)},
    optional={"max_tokens": NASTY_NUMBERS | st.integers(), "temperature": NASTY_NUMBERS, "top_p": NASTY_NUMBERS,
              "n": st.integers(), "stop": st.one_of(NASTY_TEXT, st.lists(NASTY_TEXT, max_size=6)),
              "stream": st.booleans(), "stream_options": VALUES, "seed": NASTY_NUMBERS, "tools": VALUES},
)  # fmt: skip
SHAPED = st.one_of(
    CHAT,
    st.fixed_dictionaries({"inputs": st.one_of(st.lists(NASTY_TEXT, max_size=70), VALUES)}),
    st.fixed_dictionaries(
        {"prompt": st.one_of(NASTY_TEXT, MESSAGES, VALUES)},
        optional={
            "max_new_tokens": NASTY_NUMBERS | st.integers(),
            "temperature": NASTY_NUMBERS,
            "top_p": NASTY_NUMBERS,
            "seed": NASTY_NUMBERS | st.integers(),
            "stream": VALUES,
            "system": NASTY_TEXT,
            "extra": VALUES,
        },  # fmt: skip
    ),
)


def _encode(value) -> bytes:
    """JSON as a careless client writes it: NaN and Infinity literals, lone surrogates as \\u escapes."""
    return json.dumps(value, allow_nan=True).encode()


BODIES = st.one_of(SHAPED.map(_encode), VALUES.map(_encode), st.binary(max_size=300),
                   st.just(b'{"inputs": ["\xff\xfe"]}'), st.just(b"{" * 5000))  # fmt: skip


def _routes(app) -> list[tuple[str, str]]:
    return sorted((r.path, m) for r in app.routes if isinstance(r, APIRoute) for m in r.methods)


@pytest.mark.parametrize("which", ["classifier", "generator"])
def test_no_route_answers_5xx_to_anything(which, request):
    model = request.getfixturevalue(which)
    app = create_app(model, "m@v1", ServeSettings(token=TOKEN, max_new_tokens=4, timeout_s=20))
    routes = _routes(app) + [("/v1/predict", "GET"), ("/nowhere", "POST"), ("/v1/generate", "PUT")]
    headers = st.sampled_from([AUTH, {}, {"Authorization": "Bearer " + "x" * 30}, {"Authorization": "Basic abc"}])
    seen: dict[int, int] = {}
    with client(model, max_new_tokens=4, timeout_s=20) as c:

        @SETTINGS
        @given(route=st.sampled_from(routes), body=BODIES, head=headers,
               ctype=st.sampled_from(["application/json", "text/plain", "multipart/form-data"]))  # fmt: skip
        def probe(route, body, head, ctype):
            path, method = route
            r = c.request(method, path, content=body, headers={**head, "Content-Type": ctype})
            seen[r.status_code] = seen.get(r.status_code, 0) + 1
            assert r.status_code < 500, (path, method, body[:120], r.status_code, r.text[:200])

        probe()
        # The pass reached the token check and the body's checks (which of 400 / 422 answers depends on the draw).
        assert 401 in seen and {400, 422} & set(seen), seen
        path = "/v1/generate" if model.generates else "/v1/predict"
        assert c.post(path, json={"inputs": ["a"], "prompt": "a"}).status_code == 401
        for bad in ({"inputs": 5, "prompt": 5}, {"inputs": [["a"]], "prompt": ["a"]}, {"max_new_tokens": "x"}):
            assert c.post(path, headers=AUTH, json=bad).status_code in (400, 422), bad
        if model.generates:
            r = c.post("/v1/generate", headers=AUTH, json={"prompt": "What does a cat say?", "max_new_tokens": 4})
            assert r.status_code == 200 and r.json()["text"] == model.generate("What does a cat say?", max_new_tokens=4)
        else:
            r = c.post("/v1/predict", headers=AUTH, json={"inputs": ["great superb film"]})
            assert r.json()["predictions"][0]["label"] == model.predict(["great superb film"])[0].label


def test_dropped_and_slow_connections_leave_the_server_answering(classifier):
    head = b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode()
    request = head + b"\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n" + b'{"inputs": ["great'
    with live(classifier, body_timeout_s=0.5) as (url, port):
        for cut in (5, 30, len(request) - 10, len(request)):  # mid-headers, mid-body, after a partial body
            for _ in range(3):
                with socket.create_connection(("127.0.0.1", port)) as s:
                    s.sendall(request[:cut])
        slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
        for s in slow:
            s.sendall(request)  # 18 of the 40 promised bytes, then nothing
        time.sleep(1.0)
        r = httpx.post(f"{url}/v1/predict", headers=AUTH, json={"inputs": ["great superb film"]}, timeout=10)
        assert (
            r.status_code == 200
            and r.json()["predictions"][0]["label"] == classifier.predict(["great superb film"])[0].label
        )
        for s in slow:
            s.settimeout(2)
            assert s.recv(4096).startswith(b"HTTP/1.1 408")
            s.close()
        assert httpx.get(f"{url}/health").json() == {"status": "ok"}
