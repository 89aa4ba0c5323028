"""The HTTP server: the token rule on every route, limits, malformed input, micro-batching, generation."""

from __future__ import annotations

import base64
import io
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

import tunesmith
from tests.conftest import image_config, llm_config, tiny_config
from tunesmith.errors import InputError
from tunesmith.inference.base import Predictor
from tunesmith.serve import ServeSettings, create_app
from tunesmith.serve.security import load_token

TOKEN = "t0ken-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def classifier(tiny_model, toy_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("serve-runs")
    os.environ["TUNESMITH_CACHE"] = str(out / "cache")
    run = tunesmith.finetune(tiny_config(tiny_model, *toy_data, out, train__epochs=2))
    return tunesmith.load(run.path)


def client(model, **settings) -> TestClient:
    return TestClient(create_app(model, "sent@v1", ServeSettings(token=TOKEN, **settings)))


def test_every_route_but_health_requires_the_token(classifier):
    app = create_app(classifier, "sent@v1", ServeSettings(token=TOKEN))
    routes = [(r.path, m) for r in app.routes if isinstance(r, APIRoute) for m in r.methods]
    assert {p for p, _ in routes} == {"/health", "/v1/model", "/openapi.json", "/v1/predict", "/v1/generate",
                                      "/v1/models", "/v1/models/{model_id:path}", "/v1/chat/completions",
                                      "/v1/embeddings"}  # fmt: skip
    with TestClient(app) as c:
        for path, method in routes:
            for headers in ({}, {"Authorization": "Bearer wrong-token-xxxxxxxx"}, {"Authorization": TOKEN}):
                r = c.request(method, path, headers=headers, json={"inputs": ["great"]})
                assert (r.status_code == 401) == (path != "/health"), (path, method, headers, r.status_code)
            r = c.request(method, path, headers=AUTH, json={"inputs": ["great"]})
            assert r.status_code != 401, path
        spec = c.get("/openapi.json", headers=AUTH).json()
        assert "/v1/predict" in spec["paths"] and "/v1/generate" in spec["paths"]
        assert c.get("/docs", headers=AUTH).status_code == 404
        assert c.get("/docs").status_code == 401  # no route is probed without the token


def test_predict_matches_the_model_and_describes_it(classifier):
    texts = ["great superb moving film", "dull awful boring plot"]
    with client(classifier) as c:
        r = c.post("/v1/predict", headers=AUTH, json={"inputs": texts})
        assert r.status_code == 200
        got = r.json()["predictions"]
        want = classifier.predict(texts)
        assert [g["label"] for g in got] == [w.label for w in want]
        assert got[0]["probabilities"]["pos"] == pytest.approx(want[0].probabilities["pos"], abs=1e-6)
        info = c.get("/v1/model", headers=AUTH).json()
        assert info["labels"] == ["pos", "neg"] and info["task"] == "text-classification"
        assert info["metrics"]["accuracy"] == classifier.manifest["metrics"]["accuracy"]
        assert c.post("/v1/generate", headers=AUTH, json={"prompt": "hi"}).status_code == 400


@pytest.mark.parametrize(
    "body, status",
    [
        (b"{not json", 422),
        (b"[1, 2]", 422),
        (json.dumps({"inputs": []}).encode(), 422),
        (json.dumps({"inputs": "great"}).encode(), 422),
        (json.dumps({"inputs": [1, 2]}).encode(), 422),
        (json.dumps({"inputs": ["ok"], "extra": 1}).encode(), 422),
        (json.dumps({"inputs": ["  "]}).encode(), 422),
        (json.dumps({"inputs": ["a"] * 9}).encode(), 422),
        (json.dumps({"inputs": ["a" * 101]}).encode(), 422),
        (b"x" * 5000, 413),
        (b"", 422),
    ],
)
def test_malformed_and_oversized_requests_get_4xx(classifier, body, status):
    with client(classifier, max_inputs=8, max_input_chars=100, max_body_bytes=4096) as c:
        r = c.post("/v1/predict", headers={**AUTH, "Content-Type": "application/json"}, content=body)
        assert r.status_code == status, r.text


def test_chunked_body_over_the_limit_is_refused(classifier):
    def chunks():
        for _ in range(10):
            yield b"x" * 1000

    with client(classifier, max_body_bytes=4096) as c:
        r = c.post("/v1/predict", headers={**AUTH, "Content-Type": "application/json"}, content=chunks())
        assert r.status_code == 413


def test_micro_batching_returns_each_caller_its_own_result(classifier):
    texts = [f"{w} film {i}" for i, w in enumerate(["great", "dull", "superb", "awful"] * 6)]
    want = [p.probabilities["pos"] for p in classifier.predict(texts)]
    with client(classifier, max_wait_ms=100, max_batch=64) as c:
        with ThreadPoolExecutor(len(texts)) as pool:
            got = list(pool.map(lambda t: c.post("/v1/predict", headers=AUTH, json={"inputs": [t]}).json(), texts))
        sizes = c.app.state.batcher.batch_sizes
    assert [g["predictions"][0]["probabilities"]["pos"] for g in got] == pytest.approx(want, abs=1e-6)
    assert max(sizes) > 1 and sum(n * k for n, k in sizes.items()) == len(texts)


class Slow(Predictor):
    """The real classifier, each model call held for ``delay`` seconds (a busy server)."""

    def __init__(self, model, delay: float):
        self.model, self.delay = model, delay
        self.manifest, self.labels = model.manifest, model.labels

    def predict(self, inputs):
        time.sleep(self.delay)
        return self.model.predict(inputs)


def test_a_full_queue_answers_429_at_once_and_recovers(classifier):
    with client(Slow(classifier, 0.6), max_queue=2, max_wait_ms=1) as c:
        first = {}

        def call() -> None:
            first["r"] = c.post("/v1/predict", headers=AUTH, json={"inputs": ["a", "b"]})

        t = threading.Thread(target=call)
        t.start()
        time.sleep(0.2)
        start = time.perf_counter()
        busy = c.post("/v1/predict", headers=AUTH, json={"inputs": ["great"]})
        assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
        assert time.perf_counter() - start < 0.3  # refused without waiting for the model
        t.join()
        assert first["r"].status_code == 200
        assert c.post("/v1/predict", headers=AUTH, json={"inputs": ["great"]}).status_code == 200


def test_a_slow_answer_times_out_with_504(classifier):
    with client(Slow(classifier, 0.8), timeout_s=0.2) as c:
        r = c.post("/v1/predict", headers=AUTH, json={"inputs": ["great"]})
        assert r.status_code == 504


def test_images_are_sent_as_base64(tiny_resnet, image_data, tmp_path, cache_dir):
    from PIL import Image

    run = tunesmith.finetune(image_config(tiny_resnet, *image_data, tmp_path / "runs", train__epochs=1))
    model = tunesmith.load(run.path)
    files = sorted(p for p in image_data[1].rglob("*.png"))[:3]
    encoded = [base64.b64encode(p.read_bytes()).decode() for p in files]
    with client(model, max_body_bytes=1 << 20) as c:
        r = c.post("/v1/predict", headers=AUTH, json={"inputs": encoded})
        assert r.status_code == 200
        assert [p["label"] for p in r.json()["predictions"]] == [p.label for p in model.predict(files)]
        bad = c.post("/v1/predict", headers=AUTH, json={"inputs": [encoded[0], "bm90IGFuIGltYWdl"]})
        assert bad.status_code == 422 and "inputs[1]" in bad.json()["detail"]
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="PNG")
    with client(model, max_body_bytes=1 << 20) as c:
        r = c.post("/v1/predict", headers=AUTH, json={"inputs": [base64.b64encode(buf.getvalue()).decode()]})
        assert r.status_code == 200 and r.json()["predictions"][0]["label"] in model.labels


def test_generation_and_streaming(tiny_llama, chat_data, tmp_path, cache_dir):
    run = tunesmith.finetune(llm_config(tiny_llama, *chat_data, tmp_path / "runs", train__epochs=1))
    gen = tunesmith.load(run.path)
    want = gen.generate("What does a cat say?", max_new_tokens=12)
    with client(gen) as c:
        r = c.post("/v1/generate", headers=AUTH, json={"prompt": "What does a cat say?", "max_new_tokens": 12})
        assert r.status_code == 200 and r.json()["text"] == want
        with c.stream("POST", "/v1/generate", headers=AUTH,
                      json={"prompt": "What does a cat say?", "max_new_tokens": 12, "stream": True}) as s:  # fmt: skip
            events = [line[6:] for line in s.iter_lines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        assert "".join(json.loads(e)["text"] for e in events[:-1]) == want
        assert c.post("/v1/predict", headers=AUTH, json={"inputs": ["x"]}).status_code == 400
        too_long = {"prompt": "hi", "max_new_tokens": 100000}
        assert c.post("/v1/generate", headers=AUTH, json=too_long).status_code == 422
        bad_role = {"prompt": [{"role": "wizard", "content": "hi"}]}
        assert c.post("/v1/generate", headers=AUTH, json=bad_role).status_code == 422


def test_token_rules(tmp_path, monkeypatch):
    monkeypatch.delenv("TUNESMITH_TOKEN", raising=False)
    token, source = load_token("127.0.0.1", None)
    assert len(token) >= 16 and source == "generated for this run"
    with pytest.raises(InputError, match="reachable from other machines"):
        load_token("0.0.0.0", None)
    short = tmp_path / "short"
    short.write_text("abc")
    with pytest.raises(InputError, match="at least 16"):
        load_token("0.0.0.0", str(short))
    monkeypatch.setenv("TUNESMITH_TOKEN", "x" * 20)
    assert load_token("0.0.0.0", None) == ("x" * 20, "$TUNESMITH_TOKEN")


def test_serve_prints_a_request_that_works(classifier, tmp_path):
    """`tunesmith serve` says where it listens, where the token came from, and a ready curl line; sent as printed
    (with the generated token), that request gets predictions back."""
    import re
    import shlex
    import socket
    import subprocess
    import sys

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "TUNESMITH_TOKEN"}
    cmd = [sys.executable, "-m", "tunesmith.cli", "serve", str(classifier.run_dir), "--port", str(port)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    try:
        banner = [proc.stderr.readline() for _ in range(5)]
        assert banner[0].startswith(f"serving {classifier.run_dir} (text-classification") and f":{port}" in banner[0]
        token = re.search(r"token: (\S+)  \(from generated for this run\)", banner[1]).group(1)
        line = shlex.split(banner[3].strip())
        assert line[:2] == ["curl", "-s"]
        url = line[2]
        headers = dict(h.split(": ", 1) for h in (line[i + 1] for i, a in enumerate(line) if a == "-H"))
        body = line[line.index("-d") + 1]
        assert headers["Authorization"] == f"Bearer {token}", "the generated token is in the line, ready to paste"
        for _ in range(100):  # the banner comes before uvicorn binds
            try:
                got = httpx.post(url, headers=headers, content=body, timeout=10)
                break
            except httpx.ConnectError:
                time.sleep(0.1)
        assert got.status_code == 200, got.text
        assert got.json()["predictions"][0]["label"] in {"pos", "neg"}
        assert httpx.get(banner[4].split("health: ")[1].strip(), timeout=10).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
