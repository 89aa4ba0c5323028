"""The server as an attacker or a careless client meets it: every case answers 4xx (never 5xx), one bad caller
never fails the others, a client that goes away frees the model, and the server still answers afterwards. Some
cases need a real socket (slow bodies, dropped streams): those run against uvicorn on a free local port."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import socket
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from tests.hardening.server_kit import AUTH, TOKEN, client, live
from tunesmith.cli import main
from tunesmith.inference.base import Predictor
from tunesmith.serve.batcher import MemberFailed, MicroBatcher


class Paced(Predictor):
    """The real generator, each streamed piece held back ``delay`` seconds, so that a client can leave midway."""

    def __init__(self, model, delay: float):
        self.model, self.delay = model, delay
        self.manifest, self.labels, self.generates = model.manifest, model.labels, True

    def generate(self, prompt, **kwargs):
        return self.model.generate(prompt, **kwargs)

    def stream(self, prompt, **kwargs):
        for piece in self.model.stream(prompt, **kwargs):
            time.sleep(self.delay)
            yield piece


def test_a_client_that_drops_a_stream_frees_the_model(generator):
    """Before: the generation lock stayed held and every later generate answered 504 while /health said ok."""
    body = json.dumps({"prompt": "What does a cat say?", "max_new_tokens": 400, "stream": True, "temperature": 1.0,
                       "seed": 3}).encode()  # fmt: skip
    with live(Paced(generator, 0.05), timeout_s=30) as (url, port):
        for _ in range(2):
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"POST /v1/generate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode()
                          + b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
                          + b"\r\n\r\n" + body)  # fmt: skip
                got = b""
                while b"data: " not in got:
                    got += s.recv(4096)
                assert b"200 OK" in got
        start = time.monotonic()
        r = httpx.post(f"{url}/v1/generate", headers=AUTH, json={"prompt": "What does a cat say?",
                                                                  "max_new_tokens": 8}, timeout=30)  # fmt: skip
        assert r.status_code == 200 and r.json()["text"] == generator.generate("What does a cat say?", max_new_tokens=8)
        assert time.monotonic() - start < 10, "the dropped streams' generations were stopped, not run to the end"


def test_stopping_a_stream_early_ends_the_generation(generator):
    pieces = generator.stream("What does a cat say?", max_new_tokens=400, temperature=1.0, seed=1)
    next(pieces)
    threads = threading.active_count()
    pieces.close()  # returns once the generating thread has ended
    assert threading.active_count() <= threads - 1


@pytest.mark.parametrize(
    "body",
    [
        b'{"prompt": "hi", "temperature": NaN}',
        b'{"prompt": "hi", "temperature": Infinity}',
        b'{"prompt": "hi", "top_p": NaN}',
        b'{"prompt": "hi", "top_p": -Infinity}',
        b'{"prompt": "hi", "seed": 1180591620717411303424}',
        b'{"prompt": "hi", "seed": -1}',
        b'{"prompt": ""}',
        b'{"prompt": "   "}',
        b'{"prompt": []}',
        b'{"prompt": [{"role": "user", "content": ""}]}',
        b'{"prompt": "bad \\ud800 text"}',
        b'{"prompt": [{"role": "user", "content": "\\udfff"}]}',
        b'{"prompt": "hi", "system": "\\ud83d"}',
        json.dumps({"prompt": [{"role": "user", "content": "x" * 100_000}]}).encode(),
        json.dumps(
            {
                "prompt": [
                    {"role": "user", "content": "x" * 6000},
                    {"role": "assistant", "content": "y"},
                    {"role": "user", "content": "z" * 6000},
                ]
            }
        ).encode(),  # fmt: skip
        json.dumps(
            {
                "prompt": [
                    {"role": "user", "content": "a"},
                    {"role": "system", "content": "b"},
                    {"role": "user", "content": "c"},
                ]
            }
        ).encode(),  # fmt: skip
        json.dumps({"prompt": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}).encode(),
        json.dumps(
            {"prompt": [{"role": "system", "content": "a"}, {"role": "user", "content": "b"}], "system": "again"}
        ).encode(),  # fmt: skip
    ],
)
def test_generation_input_that_cannot_be_honoured_is_422(generator, body):
    with client(generator) as c:
        r = c.post("/v1/generate", headers={**AUTH, "Content-Type": "application/json"}, content=body)
        assert r.status_code == 422, (body[:80], r.status_code, r.text[:200])
        ok = c.post("/v1/generate", headers=AUTH, json={"prompt": "hi", "max_new_tokens": 2})
        assert ok.status_code == 200


def test_one_bad_input_fails_only_its_own_request(classifier):
    """Before: a lone surrogate answered 500 and failed 17 of the 30 requests that shared its micro-batch."""
    texts = [f"great film {i}" for i in range(29)] + ["bad \ud800"]
    bodies = [json.dumps({"inputs": [t]}) for t in texts]
    with client(classifier, max_wait_ms=100, max_batch=64) as c, ThreadPoolExecutor(30) as pool:
        codes = list(pool.map(lambda b: c.post("/v1/predict", headers={**AUTH, "Content-Type": "application/json"},
                                               content=b).status_code, bodies))  # fmt: skip
    assert codes == [200] * 29 + [422]


class Poisoned(Predictor):
    """The real classifier, except that a model call holding the text "poison" fails (an input the model cannot
    take that no check caught)."""

    def __init__(self, model):
        self.model, self.manifest, self.labels = model, model.manifest, model.labels

    def predict(self, inputs):
        if "poison" in inputs:
            raise RuntimeError("cannot encode")
        return self.model.predict(inputs)


def test_a_batch_that_fails_is_retried_caller_by_caller(classifier):
    texts = [f"great film {i}" for i in range(11)] + ["poison"]
    with client(Poisoned(classifier), max_wait_ms=150, max_batch=64) as c, ThreadPoolExecutor(12) as pool:
        got = list(pool.map(lambda t: c.post("/v1/predict", headers=AUTH, json={"inputs": [t]}), texts))
        sizes = c.app.state.batcher.batch_sizes
    assert [r.status_code for r in got] == [200] * 11 + [422]
    assert "RuntimeError" in got[-1].json()["detail"] and max(sizes) > 1
    want = [p.label for p in classifier.predict(texts[:11])]
    assert [r.json()["predictions"][0]["label"] for r in got[:11]] == want


def test_the_batcher_isolates_a_failing_member():
    async def run():
        from concurrent.futures import ThreadPoolExecutor as Pool

        def fn(items):
            if "bad" in items:
                raise ValueError("no")
            return [x.upper() for x in items]

        batcher = MicroBatcher(fn, Pool(1), max_batch=8, max_wait_s=0.05)
        results = await asyncio.gather(*(batcher.submit([x]) for x in ("a", "bad", "c")), return_exceptions=True)
        await batcher.close()
        return results

    a, bad, c = asyncio.run(run())
    assert a == ["A"] and c == ["C"] and isinstance(bad, MemberFailed)


def _png_claiming(width: int, height: int) -> bytes:
    """A valid 1 x 1 PNG whose header claims ``width`` x ``height`` (CRC fixed): what a decompression bomb sends."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = 8 + 8  # signature, then length + type of the IHDR chunk
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[12 : ihdr + 13])))
    return bytes(data)


def test_images_are_bounded_in_pixels_before_decoding(image_model):
    from PIL import Image

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    big = io.BytesIO()
    Image.new("L", (9000, 9000)).save(big, format="PNG")  # ~80 KB on the wire, 81 M pixels decoded
    medium = io.BytesIO()
    Image.fromarray(np.zeros((3000, 3000, 3), np.uint8)).save(medium, format="PNG")  # 9 M pixels: allowed alone
    with client(image_model, max_body_bytes=16 << 20) as c:
        for data in (_png_claiming(30000, 30000), big.getvalue()):
            r = c.post("/v1/predict", headers=AUTH, json={"inputs": [b64(data)]})
            assert r.status_code == 422 and "pixels" in r.json()["detail"]
        assert c.post("/v1/predict", headers=AUTH, json={"inputs": [b64(medium.getvalue())]}).status_code == 200
        r = c.post("/v1/predict", headers=AUTH, json={"inputs": [b64(medium.getvalue())] * 8})  # 72 M in all
        assert r.status_code == 422 and "inputs[7]" in r.json()["detail"]


def test_the_token_is_checked_before_the_body(classifier):
    with client(classifier) as c:
        for body in (b"{not json", b'{"inputs": 5}', b"x" * (2 << 20)):
            r = c.post("/v1/predict", headers={"Content-Type": "application/json"}, content=body)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


def test_a_slow_body_is_cut_off(classifier):
    """Before: a client sending 1 byte a second held a worker for 30 s."""
    with live(classifier, body_timeout_s=1.0) as (url, port), socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode()
                  + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")  # fmt: skip
        start = time.monotonic()
        got = b""
        s.settimeout(0.3)
        while b"\r\n\r\n" not in got and time.monotonic() - start < 8:
            with contextlib.suppress(OSError):
                s.sendall(b" ")
            with contextlib.suppress(TimeoutError):
                got += s.recv(4096)
        assert got.startswith(b"HTTP/1.1 408") and time.monotonic() - start < 4
        assert httpx.post(f"{url}/v1/predict", headers=AUTH, json={"inputs": ["great"]}).status_code == 200


def test_serve_refuses_a_port_it_cannot_use(classifier, capsys):
    run = str(classifier.run_dir)
    for port in ("99999", "0", "http"):
        with pytest.raises(SystemExit) as exc:
            main(["serve", run, "--port", port])
        assert exc.value.code == 2
    assert "allowed: 1-65535" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["serve", run, "--port", str(taken.getsockname()[1])]) == 2
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err


def test_a_client_that_leaves_while_queued_gives_its_place_back(generator):
    """Before: a generation request cancelled while waiting for the model kept counting as waiting, so enough
    impatient clients would have made every later request a 429."""
    from tunesmith.serve import ServeSettings
    from tunesmith.serve.app import ModelService

    async def run() -> int:
        service = ModelService(generator, "m@v1", ServeSettings(token=TOKEN))
        await service.lock.acquire()  # a generation in progress
        queued = [asyncio.create_task(service._acquire()) for _ in range(3)]
        await asyncio.sleep(0.05)
        assert service.waiting == 3
        for task in queued:
            task.cancel()
        await asyncio.gather(*queued, return_exceptions=True)
        service.lock.release()
        await service.close()
        return service.waiting

    assert asyncio.run(run()) == 0
